"""Interleaved A/B rounds of the replay bench cases in one process: rltorch and its peers
take turns round after round, and each ratio is the median of the per-round ratios, so a
busy machine slows both sides of a ratio alike. Prints one line per case.

    PYTHONPATH=$PWD python benchmarks/replay_ab.py                 # update, search, cycle, population
    PYTHONPATH=$PWD python benchmarks/replay_ab.py cycle --threads 2 --rounds 31

Cases come from rltorch.bench.cases.replay (the same setups ``rltorch bench --only replay`` times).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rltorch.bench.cases import replay
from rltorch.bench.core import Settings

LEAVES = 1 << 20


def _per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleaved(name: str, fns: dict, rounds: int, round_seconds: float = 0.02) -> str:
    for fn in fns.values():  # warm-up
        for _ in range(10):
            fn()
    calls = {k: max(1, int(round_seconds / _per_call(fn, 10))) for k, fn in fns.items()}
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].append(_per_call(fn, calls[k]))
    subject = next(iter(fns))
    line = f"{name}: " + ", ".join(f"{k} {statistics.median(v) * 1e6:.1f} us" for k, v in times.items())
    for k in list(fns)[1:]:
        ratio = statistics.median(b / a for a, b in zip(times[subject], times[k]))
        line += f" | {k} / {subject} = {ratio:.2f}x"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="*", default=["update", "search", "cycle", "population"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the update splits large batches)")
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = Settings.for_mode("quick")
    setup = lambda case: case.setup(settings)  # noqa: E731
    if "update" in args.what:
        for batch in (256, 4096):
            print(interleaved(f"update B={batch}", {
                "rltorch": setup(replay._update_case("rltorch", LEAVES, batch)),
                "TorchRL": setup(replay._update_case("TorchRL SumSegmentTree", LEAVES, batch))}, args.rounds), flush=True)
    if "search" in args.what:
        print(interleaved("search B=4096", {
            "rltorch": setup(replay._search_case("rltorch", LEAVES, 4096)),
            "TorchRL": setup(replay._search_case("TorchRL SumSegmentTree", LEAVES, 4096))}, args.rounds), flush=True)
    if "cycle" in args.what:
        print(interleaved("PER cycle B=256", {
            "rltorch": setup(replay._per_cycle_case("rltorch", LEAVES, 256)),
            "rltorch, column storage": setup(replay._per_cycle_case("rltorch, column storage", LEAVES, 256)),
            "TorchRL PrioritizedSampler": setup(replay._per_cycle_case("TorchRL PrioritizedSampler", LEAVES, 256)),
            "cpprb": setup(replay._per_cycle_case("cpprb", LEAVES, 256))}, args.rounds), flush=True)
    if "population" in args.what:
        for op in ("update", "sample"):
            print(interleaved(f"16 trees of 2^16, {op} B=64 each", {
                "rltorch": setup(replay._population_case(op, "rltorch", 16, 1 << 16, 64)),
                "16 separate": setup(replay._population_case(op, "K separate SumTrees", 16, 1 << 16, 64))},
                args.rounds), flush=True)
        print(interleaved("16 buffers of 2^16, PER cycle B=64 each", {
            "rltorch": setup(replay._population_cycle_case("rltorch", 16, 1 << 16, 64)),
            "16 separate": setup(replay._population_cycle_case("K separate buffers", 16, 1 << 16, 64))},
            args.rounds), flush=True)


if __name__ == "__main__":
    main()
