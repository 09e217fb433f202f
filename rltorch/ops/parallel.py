"""How the CPU kernels split work across threads (``csrc/cpu/parallel.h``), at run time."""

from __future__ import annotations

import torch

from rltorch import _ext

PARALLEL_MODES = ("adaptive", "static", "serial")


def _require_kernels() -> None:
    if not _ext.has_kernel("td_target", "cpu"):
        raise RuntimeError(f"rltorch: the CPU kernels are not loaded ({_ext.LOAD_ERROR}); the pure-PyTorch "
                           "fallback follows torch's own threading")


def cpu_parallel() -> str:
    """The mode in force: 'adaptive' (default), 'static' or 'serial'."""
    _require_kernels()
    return torch.ops.rltorch._cpu_parallel_mode()


def set_cpu_parallel(mode: str) -> str:
    """Sets how the CPU kernels use threads and returns the previous mode.

    'adaptive' (default): work under ~30 us stays on the calling thread; above it each kernel runs parallel
    or serial, whichever it has measured to be faster lately, so it stays fast when another process shares
    the cores. 'static': parallel whenever the work is above ~30 us (fastest on a machine known to be idle,
    collapses under load). 'serial': never fork (as ``torch.set_num_threads(1)`` for rltorch's kernels
    alone). The kernels' results are the same bits in every mode. Changing the mode forgets what the
    kernels measured."""
    if mode not in PARALLEL_MODES:
        raise ValueError(f"set_cpu_parallel: `mode` must be one of {', '.join(PARALLEL_MODES)}, got {mode!r}")
    _require_kernels()
    before = torch.ops.rltorch._cpu_parallel_mode()
    torch.ops.rltorch._cpu_parallel_mode(mode)
    return before


def cpu_parallel_report() -> list[str]:
    """What each kernel call site has measured: ns per item serial and parallel per size class, and its choice."""
    _require_kernels()
    return list(torch.ops.rltorch._cpu_parallel_report())
