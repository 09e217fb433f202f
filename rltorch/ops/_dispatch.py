"""Picks the compiled operator or the reference for a tensor's device."""

from __future__ import annotations

from typing import Callable

import torch

from rltorch import _ext
from rltorch._checks import same_device as check_same_device  # noqa: F401  (re-exported for the op wrappers)


def resolve(op_name: str, reference: Callable) -> tuple[Callable | None, Callable | None, Callable]:
    """(cpu kernel, cuda kernel, reference) for ``rltorch::op_name``.

    The OpOverload objects are looked up once here, so a call costs one
    attribute check on top of the dispatcher.
    """
    if not _ext.HAS_EXT:
        return None, None, reference
    overload = getattr(torch.ops.rltorch, op_name).default
    # The OpOverload itself, not its faster private `_op`: dynamo traces only the former.
    cpu = overload if _ext.has_kernel(op_name, "cpu") else None
    cuda = overload if _ext.has_kernel(op_name, "cuda") else None
    return cpu, cuda, reference


def pick(kernels: tuple[Callable | None, Callable | None, Callable], tensor: torch.Tensor) -> Callable:
    """The kernel for ``tensor``'s device. CPU, meta and fake tensors (torch.compile)
    take the operator, whose fake kernel handles the latter two."""
    cpu, cuda, reference = kernels
    if tensor.is_cuda:
        return cuda if cuda is not None else reference
    return cpu if cpu is not None else reference


def implementation(kernels: tuple[Callable | None, Callable | None, Callable], device_type: str) -> str:
    """'extension' or 'reference': what a call on ``device_type`` runs."""
    cpu, cuda, _ = kernels
    kernel = {"cpu": cpu, "cuda": cuda}.get(device_type)
    return "extension" if kernel is not None else "reference"


# ---- compile-safe reads of state that rltorch ops mutate in place ----
#
# Inductor (torch 2.15) can return the value *after* a later mutation for a
# plain copy (``clone``, ``x + 0``, ...) of a tensor read between two mutating
# custom ops in one graph: the copy is removed as a no-op and the re-inplaced
# mutation then overwrites what it aliased (docs/compile.md has the 10-line
# repro). A copy made by an opaque custom op cannot be removed, so state reads
# (SumTree.total(), state_dict(), an env's counters) go through ``snapshot``.
# Eager calls skip the op: there a clone is a clone.


@torch.library.custom_op("rltorch::snapshot", mutates_args=())
def _snapshot_op(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.clone()


@_snapshot_op.register_fake
def _snapshot_fake(tensor: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(tensor)


def snapshot(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of ``tensor`` as it is now, also inside ``torch.compile`` graphs
    that mutate it afterwards (see docs/compile.md)."""
    if torch.compiler.is_compiling():
        return _snapshot_op(tensor)
    return tensor.clone()


def non_tensor_argument(op: str, required: dict, optional: dict | None = None) -> TypeError | None:
    """A TypeError naming the first argument that should be a tensor and is not
    (None allowed for ``optional``), or None. Wrappers call it only in an
    ``except`` clause after the dispatcher or ``.device`` failed, so the hot
    path pays nothing for a message that names the argument."""
    for name, value in required.items():
        if not isinstance(value, torch.Tensor):
            return TypeError(f"rltorch.{op}: `{name}` must be a torch.Tensor, got {type(value).__name__}")
    for name, value in (optional or {}).items():
        if value is not None and not isinstance(value, torch.Tensor):
            return TypeError(f"rltorch.{op}: `{name}` must be a torch.Tensor or None, got {type(value).__name__}")
    return None


def as_float(op: str, name: str, value) -> float:
    """``float(value)``, with an error naming the argument (Python or NumPy real, or 0-dim tensor)."""
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"rltorch.{op}: `{name}` must be a real number, got {value!r:.60}") from None
