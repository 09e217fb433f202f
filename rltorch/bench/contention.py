"""``rltorch bench --contention``: every case measured on the idle machine, beside a competing busy
process on one core, and (rltorch's own cases) on one thread under that same load.

A figure that holds only on an idle machine is not a figure: a second training run, Ray actors
beside a learner or a CI neighbour all hold a core, and a fork-join region waits for its slowest
thread. The busy process is started and stopped by the bench itself, pinned to one core, and
ends by itself after a bounded time even if the bench is killed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace

from rltorch.bench.core import SUBJECT, Settings

IDLE, LOADED, LOADED_ONE_THREAD = "idle", "loaded", "loaded, 1 thread"
CONDITIONS = (IDLE, LOADED, LOADED_ONE_THREAD)
#: The busy process never outlives this, whatever happens to the bench (a case takes seconds to a minute).
BUSY_SECONDS_MAX = 900.0

# It also stops as soon as the bench that started it is gone (a bench killed by a signal runs no
# `finally`): an orphan kept a core busy for the next quarter of an hour, under whatever ran next.
_BUSY_LOOP = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
end = time.monotonic() + float(sys.argv[2])
parent = int(sys.argv[3])
while time.monotonic() < end and os.getppid() == parent:
    for _ in range(20000):
        pass
"""


def busy_core() -> int:
    """The core the competing process takes: the last one this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(os.sched_getaffinity(0))
    return (os.cpu_count() or 1) - 1


@contextlib.contextmanager
def competing_process(core: int | None = None, max_seconds: float = BUSY_SECONDS_MAX) -> Iterator[int]:
    """A process spinning on ``core`` inside the block (its pid is yielded); stopped on the way out."""
    core = busy_core() if core is None else core
    proc = subprocess.Popen([sys.executable, "-c", _BUSY_LOOP, str(core), str(max_seconds), str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread and rltorch's kernels serial inside the block (this process only)."""
    from rltorch import _ext
    from rltorch._threads import torch_threads

    has_kernels = _ext.has_kernel("td_target", "cpu")
    if has_kernels:
        from rltorch.ops import set_cpu_parallel

        before = set_cpu_parallel("serial")
    try:
        with torch_threads(1):
            yield
    finally:
        if has_kernels:
            set_cpu_parallel(before)


@dataclass(frozen=True)
class Condition:
    name: str
    loaded: bool
    single_thread: bool

    def applies_to(self, impl: str) -> bool:
        """Peers run idle and loaded, as their users run them; rltorch's cases also on one thread."""
        return not self.single_thread or impl.startswith(SUBJECT)

    def settings(self, settings: Settings) -> Settings:
        return replace(settings, one_thread=self.single_thread)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if self.loaded:
                stack.enter_context(competing_process())
            if self.single_thread:
                stack.enter_context(one_thread())
            # Every condition starts as a fresh process would: the kernels forget what they measured.
            _forget_kernel_measurements()
            yield


def _forget_kernel_measurements() -> None:
    from rltorch import _ext

    if _ext.has_kernel("td_target", "cpu"):
        from rltorch.ops import cpu_parallel, set_cpu_parallel

        set_cpu_parallel(cpu_parallel())


PLAN = (Condition(IDLE, loaded=False, single_thread=False), Condition(LOADED, loaded=True, single_thread=False),
        Condition(LOADED_ONE_THREAD, loaded=True, single_thread=True))

