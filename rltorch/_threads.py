"""rltorch's thread policy: what its loops use, and a context that sets and restores torch's thread count.

Two levels, measured on a 2-core machine with and without another busy process
(BENCHMARKS.md, "Running beside other work"):

- **Kernels** (``csrc/cpu/parallel.h``): work estimated under ~30 us never
  forks; above that each call site runs parallel or serial, whichever it has
  measured to be faster lately, so a busy machine turns it serial within a
  call or two. ``RLTORCH_CPU_PARALLEL=adaptive|static|serial`` (or
  :func:`rltorch.ops.set_cpu_parallel`) overrides.
- **Agent loops**: ``RunConfig.threads="auto"`` runs training and evaluation
  on one intra-op thread, since their networks are small MLPs whose matrix
  products cannot gain from a second thread and lose 10x when another
  process holds a core (stable-baselines3 advises its users the same).
  ``threads=N`` (``--threads N``) asks for N; the caller's
  ``torch.get_num_threads()`` is restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

AUTO = "auto"
#: Threads an agent loop uses under ``threads="auto"``.
AUTO_AGENT_THREADS = 1


def agent_threads(threads: int | str) -> int:
    """The intra-op thread count an agent loop runs with for a ``RunConfig.threads`` value."""
    return AUTO_AGENT_THREADS if threads == AUTO else int(threads)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside the block; the caller's setting after it, even on error."""
    before = torch.get_num_threads()
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def policy() -> dict:
    """What rltorch does with threads in this process (for ``rltorch info``)."""
    from rltorch import _ext

    mode = torch.ops.rltorch._cpu_parallel_mode() if _ext.has_kernel("td_target", "cpu") else None
    return {
        "torch_threads": torch.get_num_threads(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "kernel_parallel_mode": mode,
        "agent_threads_auto": AUTO_AGENT_THREADS,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "RLTORCH_CPU_PARALLEL": os.environ.get("RLTORCH_CPU_PARALLEL"),
    }
