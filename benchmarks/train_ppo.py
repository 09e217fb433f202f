"""Time to solve CartPole-v1 with rltorch's PPO, over several seeds, beside stable-baselines3 and CleanRL.

Not a test: a script over the installed suite's functions (rltorch.bench.cases.agents,
the ``ppo_time_to_solve`` group of ``rltorch bench``). Each seed trains in a fresh
process (so one run's warm caches never help the next) until a greedy evaluation over 100 episodes
reaches a mean of 475; evaluation time counts. Reported per seed: time to solve
from the start of training and from process start (imports included), env
steps, and env steps per second of training.

``--sb3`` also runs stable-baselines3's PPO with the rl-zoo3 CartPole-v1
hyperparameters (8 envs x 32 steps, batch 256, 20 epochs, gamma 0.98, lambda
0.8, learning rate and clip range linear from 1e-3 and 0.2) in this interpreter,
or in a virtualenv of its own made on first use at ``--sb3-venv`` (torch 2.13.0 and
SB3 2.9.2, for when SB3's pins conflict with this one's), with the same greedy
100-episode criterion checked every 2048 steps. Its evaluation runs the 100
episodes as one gymnasium vector env (SB3's own ``evaluate_policy`` steps one
env at a time and would dominate); the time spent in it is reported apart, so
SB3's training-only time is the figure to compare. ``--cleanrl PATH`` runs
CleanRL's ``ppo.py`` from that checkout unmodified and reports when the rolling
mean of its last 100 training episodes first reaches 475 (its own criterion).

Every process runs with ``--threads`` CPU threads (default 1: the networks are
small, and an oversubscribed thread pool only waits).

    python benchmarks/train_ppo.py --seeds 5
    python benchmarks/train_ppo.py --seeds 5 --sb3
    python benchmarks/train_ppo.py --seeds 5 --sb3 --sb3-venv /tmp/sb3-venv
    python benchmarks/train_ppo.py --profile        # time split: rollout, gradient steps, evaluation
    python benchmarks/train_ppo.py --seeds 3 --cleanrl ~/src/cleanrl -- --num-envs 32
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.train_dqn import compare_with_sb3, run_seeds, summarize  # noqa: E402
from rltorch.bench.cases.agents import SOLVE_THREADS, run_cleanrl  # noqa: E402


def profile_breakdown(seeds: list[int], threads: int, extra: list[str]) -> None:
    """Where the time to solve goes (rollout, gradient steps, evaluation), timed in this process."""
    import torch

    from rltorch.agents import PPO, PPOConfig
    from rltorch.agents.base import Agent
    from rltorch.cli import _config_from_args, build_parser

    torch.set_num_threads(threads)
    # The config `rltorch train ppo` builds from the same flags.
    args = build_parser().parse_args(["train", "ppo", "--device", "cpu", *extra])
    base = _config_from_args(args, PPOConfig, "ppo").to_dict()
    totals: dict[str, list[float]] = {}
    for seed in seeds:
        spent = {"collect": 0.0, "learn": 0.0, "evaluate": 0.0}

        def timed(name, fn):
            def wrapper(*a, **k):
                start = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    spent[name] += time.perf_counter() - start
            return wrapper

        agent = PPO(PPOConfig.from_dict({**base, "seed": seed}))
        agent.collect = timed("collect", agent.collect)
        agent.update = timed("learn", agent.update)
        original = Agent.evaluate_returns
        agent.evaluate_returns = timed("evaluate", lambda *a, **k: original(agent, *a, **k))
        result = agent.train()
        spent["other"] = result.wall_time_s - sum(spent.values())
        spent["total"] = result.wall_time_s
        print(f"seed {seed}: solved={result.solved} steps={result.env_steps} updates={result.updates} "
              + " ".join(f"{k}={v:.3f}s" for k, v in spent.items()), flush=True)
        for k, v in spent.items():
            totals.setdefault(k, []).append(v)
        agent.close()
    total = statistics.median(totals["total"])
    print("median: " + ", ".join(f"{k} {statistics.median(v):.3f} s ({100 * statistics.median(v) / total:.0f}%)"
                                 for k, v in totals.items() if k != "total") + f", total {total:.3f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=SOLVE_THREADS, help="CPU threads per process (default 1)")
    parser.add_argument("--sb3", action="store_true", help="also run stable-baselines3's PPO (zoo hyperparameters)")
    parser.add_argument("--sb3-venv", default=None,
                        help="run SB3 in this virtualenv (created when missing) instead of this interpreter")
    parser.add_argument("--sb3-eval-every", type=int, default=2048, help="env steps between SB3's evaluations")
    parser.add_argument("--cleanrl", default=None, help="path to a CleanRL checkout, to run its ppo.py side by side")
    parser.add_argument("--profile", action="store_true",
                        help="only time rollout, gradient steps and evaluation of each seed, in this process")
    parser.add_argument("extra", nargs="*", help="extra arguments for `rltorch train ppo` (after --)")
    args = parser.parse_args()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    if args.profile:
        profile_breakdown(seeds, args.threads, args.extra)
        return 0

    results = run_seeds("ppo", seeds, args.threads, args.extra)
    ours = summarize("rltorch PPO (from the start of training, evaluation included)", results)
    summarize("rltorch PPO (from process start, imports included)", results, key="from_process_start_s")

    if args.sb3:
        compare_with_sb3("ppo", args, seeds, ours, eval_every=args.sb3_eval_every)
    else:
        print("\n(--sb3 times stable-baselines3's PPO on the same seeds in this run)")

    if args.cleanrl:
        cleanrl = []
        for seed in seeds:
            r = run_cleanrl(os.path.expanduser(args.cleanrl), seed, "ppo.py", args.threads)
            cleanrl.append(r)
            print(f"cleanrl seed {seed}: {r}", flush=True)
        summarize("CleanRL ppo.py (rolling mean of 100 training episodes, from process start)", cleanrl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
