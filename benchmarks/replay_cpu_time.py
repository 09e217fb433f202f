"""The issue #23 replay cases in process CPU time, rltorch and its peers in one process.

On a machine shared with other work, wall-clock medians swing with the load; the
CPU time a process spends is inflated far less. Each figure is the fastest of
``ROUNDS`` rounds of many calls, on the trees, batches and buffers of
``rltorch.bench.cases.replay`` (2^20 leaves). Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/replay_cpu_time.py

For wall time and the report, use ``rltorch bench --only replay --interleave``.
"""

from __future__ import annotations

import itertools
import time

import torch

from rltorch.bench.cases import replay as cases
from rltorch.bench.core import Unavailable

ROUNDS = 7
LEAVES = 1 << 20


def cpu_us(fn, calls: int) -> float:
    """Fastest round's process CPU time per call, in microseconds."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.process_time_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time_ns() - start) / calls / 1e3)
    return best


def cycled(fn, *pools):
    args = itertools.cycle(list(zip(*pools))).__next__
    return lambda: fn(*args())


def tree_cases() -> None:
    tree = cases.filled_tree(LEAVES, torch.device("cpu"))
    try:
        peer = cases.torchrl_segment_tree(LEAVES)
    except Unavailable as missing:
        peer = None
        print(f"TorchRL skipped: {missing}")
    for batch in (256, 4096):
        index, priority, mass = cases.batches(LEAVES, batch)
        calls = max(20, 200_000 // batch)
        timed = {
            "update": (cycled(tree.update, index, priority),
                       peer and cycled(peer.update, index, priority)),
            "search": (cycled(tree.find, mass), peer and cycled(peer.scan_lower_bound, mass)),
        }
        for op, (mine, theirs) in timed.items():
            ours = cpu_us(mine, calls)
            line = f"{op:6s} B={batch:5d}: rltorch {ours:8.1f} us ({ours * 1e3 / batch:5.1f} ns/item)"
            if theirs is not None:
                peer_us = cpu_us(theirs, calls)
                line += f"   TorchRL {peer_us:8.1f} us   {peer_us / ours:4.1f}x"
            print(line)


def cycle_cases(batch: int = 256) -> None:
    settings = type("Settings", (), {"torch_device": torch.device("cpu")})()
    ours = None
    for impl in ("rltorch", "TorchRL PrioritizedSampler", "cpprb"):
        case = cases._per_cycle_case(impl, LEAVES, batch)
        try:
            step = case.setup(settings)
        except Unavailable as missing:
            print(f"{impl} skipped: {missing}")
            continue
        spent = cpu_us(step, 2000 if impl == "rltorch" else 300)
        ours = ours or spent
        print(f"PER cycle B={batch}: {impl:28s} {spent:8.1f} us   {spent / ours:4.1f}x")


if __name__ == "__main__":
    tree_cases()
    cycle_cases()
