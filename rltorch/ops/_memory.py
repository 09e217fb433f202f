"""Large CPU tensors on transparent huge pages, where Linux offers them.

A 2^20-leaf sum tree or replay buffer is tens of megabytes touched at random:
with 4 KiB pages nearly every access also misses the TLB. ``madvise(MADV_HUGEPAGE)``
before the first touch lets the kernel back the tensor with 2 MiB pages (the
default THP mode, "madvise", does so only when asked). Measured on the 2-core
dev VM (BENCHMARKS.md, "what bounds it"): the tree's update 1.2x faster. A hint
only: where it is unavailable nothing changes, and the values never depend on it.
"""

from __future__ import annotations

import ctypes
import sys

import torch

_HUGE_PAGE = 2 << 20
# Smaller tensors fit in a few 4 KiB-page TLB entries anyway.
MIN_BYTES = 4 * _HUGE_PAGE
_MADV_HUGEPAGE = 14


def _load_madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


_madvise = _load_madvise()


def empty(shape, dtype: torch.dtype, device) -> torch.Tensor:
    """``torch.empty``, with huge pages requested for large CPU tensors (the whole 2 MiB pages inside it)."""
    tensor = torch.empty(shape, dtype=dtype, device=device)
    nbytes = tensor.numel() * tensor.element_size()
    if _madvise is not None and tensor.device.type == "cpu" and nbytes >= MIN_BYTES:
        start = tensor.data_ptr()
        first = -(-start // _HUGE_PAGE) * _HUGE_PAGE
        last = (start + nbytes) // _HUGE_PAGE * _HUGE_PAGE
        if last > first:
            _madvise(first, last - first, _MADV_HUGEPAGE)  # a hint: a refusal changes nothing
    return tensor
