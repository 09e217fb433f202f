"""The cases of each capability: one module per capability, each with
``cases(settings) -> list[Case]`` choosing its sizes and peers for the run's mode."""

from __future__ import annotations

import importlib

from rltorch.bench.core import CAPABILITIES, Case, Settings


def collect(capabilities: tuple[str, ...] | list[str], settings: Settings) -> list[Case]:
    """Every case of ``capabilities`` that can run on ``settings.device``, in capability order."""
    unknown = [c for c in capabilities if c not in CAPABILITIES]
    if unknown:
        raise ValueError(f"unknown capability {', '.join(map(repr, unknown))}; choose from {', '.join(CAPABILITIES)}")
    device_type = settings.torch_device.type
    found: list[Case] = []
    for capability in CAPABILITIES:
        if capability in capabilities:
            module = importlib.import_module(f"rltorch.bench.cases.{capability}")
            found.extend(case for case in module.cases(settings) if device_type in case.devices)
    return found
