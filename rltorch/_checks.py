"""Argument checks shared by the stateful objects (envs, buffers)."""

from __future__ import annotations

import torch


def storage_device(owner: str, device, what: str) -> torch.device:
    """``device`` as a ``torch.device`` that can hold ``owner``'s state, else a ValueError naming `device`.

    ``what`` says why a meta device will not do (e.g. "an env needs real memory to step").
    """
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"{owner}: `device` must name a torch device, got {device!r} ({exc})") from None
    if device.type == "meta":
        raise ValueError(f"{owner}: `device` cannot be 'meta' ({what})")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{owner}: `device` is {device} but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{owner}: `device` is {device} but only {torch.cuda.device_count()} "
                             "CUDA device(s) exist")
    return device
