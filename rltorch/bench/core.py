"""What every benchmark case is made of: settings of a run, the case itself, its
result, and the timing loop.

A case is one implementation (``impl``) of one measured thing (``group``) at one
size. Cases of one group and size are compared with each other: ``impl ==
"rltorch"`` is the subject, any other impl starting with ``"rltorch"`` is a
variant of ours (shown, not used as an anchor), and every other impl is an
anchor whose speed the subject is divided by.

A case's ``setup`` does everything that should not be timed (inputs, warm-up,
compilation) and returns what the runner times: for ``kind == "timed"`` a
zero-argument call, for ``kind == "solve"`` a function ``seed -> SolveRun``
that trains until solved. If what it returns has a ``close`` method (a case
holding processes, like the Ray cluster of the distributed cases), the
runner calls it once the case is measured, also when measuring failed. A peer that cannot run here raises
:class:`Unavailable` from ``setup``; the runner reports it as skipped with the
reason and the command that installs it, never as a failure.
"""

from __future__ import annotations

import datetime
import gc
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

CAPABILITIES = ("ops", "env", "replay", "agents", "classifiers", "distributed")
MODES = ("tiny", "quick", "full")
SUBJECT = "rltorch"


class Unavailable(Exception):
    """A peer (or a device) this machine cannot run; ``install`` is the command that would fix it."""

    def __init__(self, reason: str, install: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.install = install


@dataclass(frozen=True)
class Settings:
    """How hard a run measures. ``tiny`` exists for the test suite: smallest sizes,
    a few rounds, training runs capped short of solving."""

    mode: str = "quick"
    device: str = "cpu"
    seeds: int = 3
    seconds_per_case: float = 0.25
    min_rounds: int = 5
    max_rounds: int = 2000
    round_seconds: float = 1e-3
    python: str | None = None  # interpreter for SB3's solve runs; None: $RLTORCH_BENCH_SB3_PYTHON or this one
    cleanrl: str | None = None  # a CleanRL checkout for its solve runs; None: $RLTORCH_BENCH_CLEANRL
    rejax_python: str | None = None  # interpreter of rejax's venv; None: $RLTORCH_BENCH_REJAX_PYTHON
    train_args: tuple[str, ...] = ()  # extra `rltorch train ALGO` flags for rltorch's solve runs
    # Set by the runner for its "one thread" condition: solve cases start their training processes on one
    # thread with serial kernels (timed cases run in this process, which the runner sets itself).
    one_thread: bool = False

    @classmethod
    def for_mode(cls, mode: str, device: str = "cpu", **overrides) -> Settings:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        base = {
            "tiny": dict(seeds=1, seconds_per_case=0.01, min_rounds=3, max_rounds=20, round_seconds=1e-4),
            "quick": dict(seeds=3, seconds_per_case=0.2),
            "full": dict(seeds=5, seconds_per_case=1.0, min_rounds=10, round_seconds=2e-3),
        }[mode]
        return cls(mode=mode, device=device, **{**base, **overrides})

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def pick(self, tiny, quick, full):
        """The value for this run's mode: sizes and seed counts per mode in one expression."""
        return {"tiny": tiny, "quick": quick, "full": full}[self.mode]


@dataclass(frozen=True)
class SolveRun:
    """One seed of a time-to-solve case: ``seconds`` from the start of training to a
    solved evaluation (evaluation included), or to giving up when ``solved`` is False."""

    seconds: float
    env_steps: int
    solved: bool
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    capability: str
    group: str
    impl: str
    setup: Callable[[Settings], Any]
    size: int | None = None
    size_label: str = ""
    params: tuple[tuple[str, Any], ...] = ()  # fixed parameters shown beside the group name
    items: int = 1  # items per call, for throughput
    item: str = "call"  # what an item is: "env step", "transition", "sample", ...
    kind: str = "timed"  # or "solve"
    devices: tuple[str, ...] = ("cpu", "cuda")  # where this impl can run
    max_seeds: int | None = None  # a solve case that takes minutes per seed runs at most this many

    def __post_init__(self):
        if self.capability not in CAPABILITIES:
            raise ValueError(f"capability must be one of {CAPABILITIES}, got {self.capability!r}")
        if self.kind not in ("timed", "solve"):
            raise ValueError(f"kind must be 'timed' or 'solve', got {self.kind!r}")

    @property
    def where(self) -> str:
        """The group with its fixed parameters: the title cases are compared under."""
        if not self.params:
            return self.group
        return f"{self.group} " + " ".join(f"{k}={v}" for k, v in self.params)

    @property
    def key(self) -> str:
        size = f" {self.size_label}={self.size}" if self.size is not None else ""
        return f"{self.capability}/{self.where}{size}/{self.impl}"


@dataclass
class Result:
    """What one case measured. ``samples`` are seconds per call (timed) or per seed (solve)."""

    capability: str
    group: str
    where: str
    impl: str
    key: str
    kind: str
    size: int | None
    size_label: str
    items: int
    item: str
    device: str
    status: str  # "ok", "skipped" or "error"
    condition: str = "idle"  # or, in a --contention run, "loaded" / "loaded, 1 thread" (rltorch.bench.contention)
    samples: list[float] = field(default_factory=list)
    solved: list[bool] = field(default_factory=list)
    env_steps: list[int] = field(default_factory=list)
    reason: str | None = None
    install: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, case: Case, device: str, status: str, **kw) -> Result:
        return cls(capability=case.capability, group=case.group, where=case.where, impl=case.impl, key=case.key,
                   kind=case.kind, size=case.size, size_label=case.size_label, items=case.items, item=case.item,
                   device=device, status=status, **kw)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median: how much to trust a ratio."""
        low, high = self.quartiles
        return (high - low) / self.median if self.median > 0 else 0.0

    def speedup_over(self, anchor: Result) -> float:
        """How many times faster than ``anchor`` per item (the same as per call when both do the same work)."""
        return (anchor.median / anchor.items) / (self.median / self.items)

    @property
    def throughput(self) -> float:
        """Items per second at the median."""
        return self.items / self.median

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        return cls(**data)


def _sync_for(device: str) -> Callable[[], None] | None:
    if torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return None


def time_call(call: Callable[[], Any], settings: Settings) -> list[float]:
    """Seconds per call, one sample per round.

    A round repeats the call enough times to last ``round_seconds`` so the
    timer's resolution and the loop around it vanish from small calls; rounds
    continue until ``seconds_per_case`` is spent (at least ``min_rounds``). CUDA
    work is synchronized inside every call, so the device's time is counted.
    The garbage collector is paused while timing, as pytest-benchmark does:
    a collection landing in one round says nothing about the case.
    """
    return time_calls([call], settings)[0]


def time_calls(calls: list[Callable[[], Any]], settings: Settings) -> list[list[float]]:
    """Seconds per call of each of ``calls``, timed in alternating rounds (one round of each per lap, as
    :func:`time_call` times one), so a machine that gets busier or quieter meanwhile slows every one of
    them alike and their ratios hold. The laps fill ``seconds_per_case`` per call."""
    sync = _sync_for(settings.device)
    if sync is not None:
        calls = [_synced(call, sync) for call in calls]
    iterations = []
    for call in calls:
        call()  # one more warm-up: caches, lazy allocations
        start = time.perf_counter()
        call()
        estimate = max(time.perf_counter() - start, 1e-9)
        iterations.append(max(1, int(settings.round_seconds / estimate)))
    samples: list[list[float]] = [[] for _ in calls]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        deadline = time.perf_counter() + settings.seconds_per_case * len(calls)
        while len(samples[0]) < settings.max_rounds:
            for call, repeat, out in zip(calls, iterations, samples):
                start = time.perf_counter()
                for _ in range(repeat):
                    call()
                out.append((time.perf_counter() - start) / repeat)
            if len(samples[0]) >= settings.min_rounds and time.perf_counter() >= deadline:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def _synced(call: Callable[[], Any], sync: Callable[[], None]) -> Callable[[], None]:
    def synced():
        call()
        sync()

    return synced


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


PEER_PACKAGES = ("gymnasium", "envpool", "cpprb", "torchrl", "tensordict", "stable-baselines3", "numpy", "ray")


def machine_info(device: str = "cpu") -> dict:
    """Enough to tell whether two runs can be compared: hardware, software, date."""
    from rltorch._version import __version__

    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "rltorch": __version__,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "gpu": None,
        # Timings from a busy machine are not comparable; the report says so.
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "packages": {name: _version(name) for name in PEER_PACKAGES},
    }
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        info["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, sm_{props.major}{props.minor}"
    return info
