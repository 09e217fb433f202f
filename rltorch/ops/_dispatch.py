"""Picks the compiled operator or the reference for a tensor's device."""

from __future__ import annotations

from typing import Callable

import torch

from rltorch import _ext


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
