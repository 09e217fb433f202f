"""Argument checks shared across rltorch (ops wrappers, envs, buffers, configs, the command line).

One place for each kind of check: :func:`integer`, :func:`real`, :func:`integers` and :func:`choice` for
arguments, :class:`Range` for the bounds configs declare on their fields (and :func:`integer` phrases its
own with), :func:`same_device` for tensors that must share a device, :func:`resolve_device` /
:func:`storage_device` / :func:`is_device_name` for device names.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import torch

_INT64_MAX = 2**63 - 1
_BOUND_NAMES = {2**62: "2**62", 2**63 - 1: "2**63 - 1", 2**64 - 1: "2**64 - 1"}


def integer(owner: str, name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python int (Python or NumPy integers only: not bool, float or str),
    within ``[minimum, maximum]`` when given, else within int64; errors name ``name``."""
    if isinstance(value, bool):
        raise TypeError(f"{owner}: `{name}` must be an integer, got bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{owner}: `{name}` must be an integer, got {type(value).__name__} {_short(value)}") from None
    if minimum is None and maximum is None:
        if value > _INT64_MAX:
            raise ValueError(f"{owner}: `{name}` must fit in int64, got {value}")
    else:
        Range(minimum, maximum).check(owner, name, value)
    return value


@dataclass(frozen=True)
class Range:
    """Bounds on a number: ``low``/``high`` (None: unbounded), each closed unless ``low_open``/``high_open``.

    Config fields carry one as ``Annotated[float, Range(0, 1)]``; :func:`integer` and the configs phrase
    their errors with :meth:`describe`, e.g. "must lie in [0, 1]", "must be >= 1", "must be > 0"."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        """The constraint as the end of "`name` must ..."."""
        low, high = _bound_text(self.low), _bound_text(self.high)
        if self.low is not None and self.high is not None:
            return f"lie in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"be {'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"be {'<' if self.high_open else '<='} {high}"
        return "be a number"

    def check(self, owner: str, name: str, value: float) -> None:
        """ValueError ``"<owner>: `name` must <describe>, got <value>"`` unless ``value`` is in range."""
        if not self.contains(value):
            raise ValueError(f"{owner}: `{name}` must {self.describe()}, got {value!r}")


def _bound_text(bound: float | None) -> str:
    if bound is None:
        return ""
    if bound in _BOUND_NAMES:
        return _BOUND_NAMES[bound]
    if isinstance(bound, float) and math.isinf(bound):
        return "inf" if bound > 0 else "-inf"
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def same_device(op: str, anchor: torch.Tensor, anchor_name: str, **others: torch.Tensor | None) -> None:
    """Every tensor in ``others`` is on ``anchor``'s device (meta included), else a RuntimeError naming the
    argument. The compiled kernels, their fake kernels (torch.compile sends a call with one meta tensor
    there, which must not silently skip the work) and the pure-PyTorch fallback all check with this."""
    for name, other in others.items():
        if other is not None and other.device != anchor.device:
            raise RuntimeError(
                f"rltorch.{op}: `{name}` is on {other.device} but `{anchor_name}` is on {anchor.device}; "
                "move them to one device"
            )


def is_device_name(name: str) -> bool:
    """Whether ``name`` is 'auto' or names a device type agents run on (cpu, cuda[:N], mps, xpu), available or not."""
    if name == "auto":
        return True
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        return False
    return device.type in ("cpu", "cuda", "mps", "xpu")


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


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; anything else must name an available device."""
    if isinstance(name, str) and name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {str(name)!r} was requested but CUDA is not available (torch.cuda.is_available() is False)"
        )
    return device


def real(owner: str, name: str, value, low: float | None = None, high: float | None = None, *,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite Python float (Python or NumPy numbers: not bool or str), within the interval
    from ``low`` to ``high`` (each end closed unless ``*_open``; ``None`` is unbounded); errors name ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: `{name}` must be a number, got {type(value).__name__} {_short(value)}")
    number = float(value)
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if not math.isfinite(number) or below or above:
        interval = (f"{'(' if low_open or low is None else '['}{'-inf' if low is None else f'{low:g}'}, "
                    f"{'inf' if high is None else f'{high:g}'}{')' if high_open or high is None else ']'}")
        raise ValueError(f"{owner}: `{name}` must be a finite number in {interval}, got {_short(value)}")
    return number


def integers(owner: str, name: str, value, minimum: int = 1, min_length: int = 1) -> tuple[int, ...]:
    """``value`` (a list or tuple of integers, each >= ``minimum``, at least ``min_length`` of them) as a tuple
    of Python ints; errors name ``name``."""
    if not isinstance(value, (list, tuple)) or len(value) < min_length or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum for v in value):
        count = "" if min_length == 0 else f"{'one' if min_length == 1 else min_length} or more "
        raise ValueError(f"{owner}: `{name}` must be a list of {count}integers >= {minimum}, got {_short(value)}")
    return tuple(int(v) for v in value)


def choice(owner: str, name: str, value, choices) -> str:
    """``value`` when it is one of the strings ``choices``; ValueError naming ``name`` otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{owner}: `{name}` must be one of {', '.join(map(repr, choices))}, got {_short(value)}")
    return value


def _short(value, limit: int = 60) -> str:
    """``repr(value)`` on one line, cut at ``limit`` characters (a tensor's repr spans lines)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
