"""pytest-benchmark over the installed suite's cases (rltorch.bench.cases): the
same inputs, peers and sizes as ``rltorch bench``, timed by pytest-benchmark.

    python -m pytest benchmarks --benchmark-only                       # the full sizes
    RLTORCH_BENCH_MODE=quick python -m pytest benchmarks/bench_ops.py --benchmark-only
    RLTORCH_BENCH_DEVICE=cuda python -m pytest benchmarks --benchmark-only

Cases of one group and size share a benchmark group, so pytest-benchmark's
table puts rltorch beside its anchors; a peer that is not installed is skipped
with the reason and the command that installs it.
"""

from __future__ import annotations

import os
import time

import pytest

from rltorch.bench.cases import collect
from rltorch.bench.core import Case, Settings, Unavailable


def bench_settings() -> Settings:
    return Settings.for_mode(os.environ.get("RLTORCH_BENCH_MODE", "full"),
                             device=os.environ.get("RLTORCH_BENCH_DEVICE", "cpu"))


def timed_cases(capability: str) -> list:
    """``pytest.param`` per timed case of ``capability``, named by its key."""
    settings = bench_settings()
    return [pytest.param(case, id=case.key.split("/", 1)[1])
            for case in collect([capability], settings) if case.kind == "timed"]


def run_case(benchmark, case: Case) -> None:
    settings = bench_settings()
    try:
        prepared = case.setup(settings)
    except Unavailable as exc:
        pytest.skip(f"{exc.reason} (install: {exc.install})" if exc.install else exc.reason)
    try:
        _time(benchmark, case, settings, prepared)
    finally:
        close = getattr(prepared, "close", None)  # cases holding processes (the Ray cluster) stop them
        if close is not None:
            close()


def _torch_version() -> str:
    import torch

    return torch.__version__


def _time(benchmark, case: Case, settings, call) -> None:
    if settings.torch_device.type == "cuda":
        import torch

        inner = call

        def call():
            inner()
            torch.cuda.synchronize()

    size = f" {case.size_label}={case.size}" if case.size is not None else ""
    benchmark.group = f"{case.where}{size} {settings.device}"
    # Everything `rltorch bench --report` needs to render this JSON like its own runs.
    benchmark.extra_info.update(impl=case.impl, items=case.items, item=case.item, capability=case.capability,
                                group_name=case.group, where=case.where, size=case.size, size_label=case.size_label,
                                key=case.key, device=settings.device, torch=_torch_version())
    # Enough calls per round that the timer's resolution vanishes from the small cases.
    call()
    start = time.perf_counter()
    call()
    estimate = max(time.perf_counter() - start, 1e-9)
    iterations = max(1, int(settings.round_seconds / estimate))
    # Rounds fill the case's time budget (a 1M-sample epoch gets the minimum, a 2 us op the maximum).
    rounds = max(settings.min_rounds, min(settings.pick(5, 50, 200),
                                          int(settings.seconds_per_case * 5 / (estimate * iterations))))
    benchmark.pedantic(call, rounds=rounds, iterations=iterations, warmup_rounds=min(2, rounds))
