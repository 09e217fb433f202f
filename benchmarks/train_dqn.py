"""Time to solve CartPole-v1 with rltorch's DQN, over several seeds, beside stable-baselines3 and CleanRL.

Not a test: a script over the installed suite's functions (rltorch.bench.cases.agents,
the ``dqn_time_to_solve`` group of ``rltorch bench``). Each seed trains in a fresh
process (so one run's warm caches or threads never help the next) with one torch
thread until greedy evaluation reaches 475 over 100 episodes; evaluation time counts.

``--sb3`` also runs stable-baselines3's DQN with the rl-zoo3 CartPole-v1
hyperparameters and the same greedy criterion (its evaluation time reported
apart). ``--cleanrl PATH`` runs CleanRL's ``dqn.py`` from that checkout, in a
virtualenv of its own (it pins gymnasium 0.29.1), and reports when its rolling
mean of 100 training episodes first reaches 475, timed from process start.

    python benchmarks/train_dqn.py --seeds 5
    python benchmarks/train_dqn.py --seeds 3 --sb3
    python benchmarks/train_dqn.py --seeds 3 --cleanrl ~/src/cleanrl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's rltorch, when run as a script

from rltorch.bench.cases.agents import (SOLVE_THREADS, run_cleanrl, run_rltorch, run_sb3, sb3_python,  # noqa: E402
                                        sb3_venv, sb3_version)

CLEANRL_ANCHOR = ("CleanRL dqn.py (anchor measured on this 2-core machine, not this run): median 61 s, 52-67 s, "
                  "254k-327k steps")


def summarize(name: str, results: list[dict], key: str = "time_to_solve_s") -> float | None:
    solved = [r for r in results if r["solved"] and r.get(key) is not None]
    print(f"\n{name}: {len(solved)} of {len(results)} seeds solved")
    if not solved:
        return None
    times = [r[key] for r in solved]
    steps = [r["steps_to_solve"] for r in solved]
    print(f"  time to solve: median {statistics.median(times):.3f} s, worst {max(times):.3f} s, "
          f"best {min(times):.3f} s")
    print(f"  env steps:     median {statistics.median(steps):,.0f}, worst {max(steps):,}")
    rates = [r["steps_per_s"] for r in solved if "steps_per_s" in r]
    if rates:
        print(f"  env steps/s:   median {statistics.median(rates):,.0f} (training, evaluation included)")
    return statistics.median(times)


def run_seeds(algorithm: str, seeds: list[int], threads: int, extra: list[str]) -> list[dict]:
    """rltorch's ``algorithm`` once per seed, each in a fresh process, printing a line per seed."""
    results = []
    for seed in seeds:
        r = run_rltorch(algorithm, seed, threads, extra)
        results.append(r)
        print(f"rltorch seed {seed}: solved={r['solved']} time_to_solve={r['time_to_solve_s']} s "
              f"(from process start {r['from_process_start_s']:.2f} s) steps={r['steps_to_solve']} "
              f"updates={r['updates']} steps/s={r.get('steps_per_s', 0):,.0f}", flush=True)
    return results


def compare_with_sb3(algorithm: str, args, seeds: list[int], ours: float | None, **sb3_kwargs) -> None:
    """SB3's ``algorithm`` over the same seeds (in ``--sb3-venv`` or this interpreter), against ``ours``."""
    label = f"SB3 {algorithm.upper()}"
    python = sb3_venv(args.sb3_venv) if args.sb3_venv else sb3_python()
    print(f"\nstable-baselines3 {sb3_version(python)} in {python}", flush=True)
    sb3 = []
    for seed in seeds:
        r = run_sb3(algorithm, python, seed, args.threads, **sb3_kwargs)
        sb3.append(r)
        print(f"sb3 seed {seed}: {json.dumps(r)}", flush=True)
    theirs = summarize(f"{label}, training only (its evaluation time left out)", sb3, key="training_only_s")
    summarize(f"{label}, evaluation included (vectorized greedy evaluation)", sb3)
    summarize(f"{label}, from process start", sb3, key="from_process_start_s")
    if ours and theirs:
        print(f"\nrltorch {algorithm.upper()} (evaluation included) vs {label} training only: "
              f"{theirs / ours:.1f}x faster (medians)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=SOLVE_THREADS, help="CPU threads per process (default 1)")
    parser.add_argument("--sb3", action="store_true", help="also run stable-baselines3's DQN (zoo hyperparameters)")
    parser.add_argument("--sb3-venv", default=None,
                        help="run SB3 in this virtualenv (created when missing) instead of this interpreter")
    parser.add_argument("--sb3-total-steps", type=int, default=100_000, help="SB3's step cap (default 1e5)")
    parser.add_argument("--cleanrl", default=None, help="path to a CleanRL checkout, to run its dqn.py side by side")
    parser.add_argument("extra", nargs="*", help="extra arguments for `rltorch train dqn` (after --)")
    args = parser.parse_args()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    results = run_seeds("dqn", seeds, args.threads, args.extra)
    ours = summarize("rltorch DQN (from the start of training, evaluation included)", results)
    summarize("rltorch DQN (from process start, like the CleanRL clock)", results, key="from_process_start_s")

    if args.sb3:
        compare_with_sb3("dqn", args, seeds, ours, total_steps=args.sb3_total_steps)

    if args.cleanrl:
        cleanrl = []
        for seed in seeds:
            r = run_cleanrl(os.path.expanduser(args.cleanrl), seed, "dqn.py", args.threads)
            cleanrl.append(r)
            print(f"cleanrl seed {seed}: {r}", flush=True)
        summarize("CleanRL dqn.py (rolling mean of 100 training episodes, from process start)", cleanrl)
    else:
        print(f"\n{CLEANRL_ANCHOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
