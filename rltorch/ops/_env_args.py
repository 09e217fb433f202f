"""Typing of the env ops' scalar arguments and their tensors' devices, shared by
the CartPole and classic-control wrappers: the kernel (whose dispatcher converts
scalars) and the reference fallback see the same values and reject the same calls."""

from __future__ import annotations

import numbers

import numpy as np
from torch import Tensor


def as_seed(op: str, seed) -> int:
    """``seed`` as the int64 the ops take: any integer in [-2**63, 2**64) (the generator keys on its
    64 bits, so ``s`` and ``s - 2**64`` are the same seed)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"rltorch.{op}: `seed` must be an integer, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"rltorch.{op}: `seed` must lie in [-2**63, 2**64), got {seed}")
    return seed - 2**64 if seed >= 2**63 else seed


def as_real(op: str, name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"rltorch.{op}: `{name}` must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def as_int(op: str, name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"rltorch.{op}: `{name}` must be an integer, got {type(value).__name__} {value!r}")
    return int(value)


def as_bool(op: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"rltorch.{op}: `{name}` must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_env_devices(op: str, state: Tensor, **tensors: Tensor | None) -> None:
    # The dispatcher sends a call with a meta (or other higher-priority) tensor
    # to that device's kernel, which cannot know the env lives elsewhere.
    for name, tensor in tensors.items():
        if isinstance(tensor, Tensor) and tensor.device != state.device:
            raise RuntimeError(f"rltorch.{op}: `{name}` is on {tensor.device} but `state` is on {state.device}; "
                               "move them to one device")
