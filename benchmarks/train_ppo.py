"""Time to solve CartPole-v1 with rltorch's PPO, over several seeds, beside stable-baselines3 and CleanRL.

Not a test: a script. Each seed trains in a fresh subprocess (so one run's warm
caches never help the next) until a greedy evaluation over 100 episodes
reaches a mean of 475; evaluation time counts. Reported per seed: time to solve
from the start of training and from process start (imports included), env
steps, and env steps per second of training.

``--sb3`` also runs stable-baselines3's PPO with the rl-zoo3 CartPole-v1
hyperparameters (8 envs x 32 steps, batch 256, 20 epochs, gamma 0.98, lambda
0.8, learning rate and clip range linear from 1e-3 and 0.2) in a virtualenv of
its own (created on first use at ``--sb3-venv``), with the same greedy
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
    python benchmarks/train_ppo.py --profile        # time split: rollout, gradient steps, evaluation
    python benchmarks/train_ppo.py --seeds 3 --cleanrl ~/src/cleanrl -- --num-envs 32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.train_dqn import run_cleanrl as run_cleanrl_script  # noqa: E402  (one CleanRL runner and venv)

SB3_ANCHOR = ("stable-baselines3 2.9.2 PPO, rl-zoo3 hyperparameters (anchor measured on this 2-core machine, not this "
              "run): median 2.2 s of training (1.2-3.6 s), median 14k env steps (8k-25k)")
SB3_REQUIREMENTS = ["torch==2.13.0", "stable-baselines3==2.9.2"]

# Runs inside the SB3 venv. argv: seed, threads, eval_every.
SB3_CHILD = r"""
import sys, time, json
process_start = time.perf_counter()
import numpy as np, torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger

seed, threads, eval_every = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)

def linear(start):
    return lambda progress_remaining: progress_remaining * start

def greedy_mean(model, episodes=100):
    # All 100 episodes side by side in one vector env (NEXT_STEP autoreset: count each env's first episode).
    env = CartPoleVectorEnv(num_envs=episodes, max_episode_steps=500)
    obs, _ = env.reset(seed=seed + 10_000 + model.num_timesteps)
    returns, finished = np.zeros(episodes), np.zeros(episodes, dtype=bool)
    while not finished.all():
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action)
        returns += reward * ~finished
        finished |= terminated | truncated
    env.close()
    return float(returns.mean())

class Evaluate(BaseCallback):
    def __init__(self):
        super().__init__()
        self.next_eval, self.eval_s, self.solved = eval_every, 0.0, None

    def _on_step(self):
        if self.num_timesteps < self.next_eval:
            return True
        self.next_eval += eval_every
        start = time.perf_counter()
        mean = greedy_mean(self.model)
        self.eval_s += time.perf_counter() - start
        if mean >= 475:
            now = time.perf_counter()
            self.solved = dict(time_to_solve_s=now - train_start, training_only_s=now - train_start - self.eval_s,
                               from_process_start_s=now - process_start, steps_to_solve=self.num_timesteps,
                               eval_s=self.eval_s, last_eval_return=mean)
            return False
        return True

env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0,
            learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu", verbose=0)
model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default logger makes a folder in /tmp per run
callback = Evaluate()
train_start = time.perf_counter()
model.learn(total_timesteps=100_000, callback=callback)
wall = time.perf_counter() - train_start
result = dict(solved=callback.solved is not None, env_steps=model.num_timesteps, wall_time_s=wall,
              steps_per_s=model.num_timesteps / wall, **(callback.solved or {}))
print("RESULT " + json.dumps(result))
"""


def child_env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def run_rltorch(seed: int, threads: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-u", "-m", "rltorch", "train", "ppo", "--seed", str(seed), "--quiet",
               "--run-dir", os.path.join(tmp, "run"), *extra]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=child_env(threads))
        solved_line_at = None
        for line in proc.stdout:  # timestamp the "solved" line: process start to solved
            if line.startswith("solved ") and solved_line_at is None:
                solved_line_at = time.perf_counter() - start
        stderr = proc.stderr.read()
        proc.wait()
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"seed {seed} failed:\n{stderr}")
        with open(os.path.join(tmp, "run", "result.json")) as f:
            result = json.load(f)
    result["from_process_start_s"] = solved_line_at
    result["steps_per_s"] = result["env_steps"] / result["wall_time_s"]
    return result


def sb3_python(venv: str) -> str:
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        print(f"creating {venv} with {' '.join(SB3_REQUIREMENTS)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        for requirement in SB3_REQUIREMENTS:  # torch first: the CPU wheel, then SB3 against it
            subprocess.run([python, "-m", "pip", "install", "-q", requirement], check=True)
    return python


def run_sb3(python: str, seed: int, threads: int, eval_every: int) -> dict:
    proc = subprocess.run([python, "-u", "-c", SB3_CHILD, str(seed), str(threads), str(eval_every)],
                          capture_output=True, text=True, env=child_env(threads))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"SB3 seed {seed} failed:\n{proc.stderr[-3000:]}")


def run_cleanrl(path: str, seed: int, threads: int) -> dict:
    return run_cleanrl_script(path, seed, script="ppo.py", env=child_env(threads))


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
        agent.learn = timed("learn", agent.learn)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process (default 1)")
    parser.add_argument("--sb3", action="store_true", help="also run stable-baselines3's PPO (zoo hyperparameters)")
    parser.add_argument("--sb3-venv", default="/tmp/sb3-venv", help="virtualenv for SB3 (created when missing)")
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

    results = []
    for seed in seeds:
        r = run_rltorch(seed, args.threads, args.extra)
        results.append(r)
        print(f"rltorch seed {seed}: solved={r['solved']} time_to_solve={r['time_to_solve_s']} s "
              f"(from process start {r['from_process_start_s']} s) steps={r['steps_to_solve']} "
              f"updates={r['updates']} steps/s={r['steps_per_s']:,.0f}", flush=True)
    ours = summarize("rltorch PPO (from the start of training, evaluation included)", results)
    summarize("rltorch PPO (from process start, imports included)", results, key="from_process_start_s")

    if args.sb3:
        python = sb3_python(args.sb3_venv)
        sb3 = []
        for seed in seeds:
            r = run_sb3(python, seed, args.threads, args.sb3_eval_every)
            sb3.append(r)
            print(f"sb3 seed {seed}: {json.dumps(r)}", flush=True)
        theirs = summarize("SB3 PPO, training only (its evaluation time left out)", sb3, key="training_only_s")
        summarize("SB3 PPO, evaluation included (vectorized greedy evaluation)", sb3)
        summarize("SB3 PPO, from process start", sb3, key="from_process_start_s")
        if ours and theirs:
            print(f"\nrltorch PPO (evaluation included) vs SB3 training only: {theirs / ours:.1f}x faster (medians)")
    else:
        print(f"\n{SB3_ANCHOR}")

    if args.cleanrl:
        cleanrl = []
        for seed in seeds:
            r = run_cleanrl(os.path.expanduser(args.cleanrl), seed, args.threads)
            cleanrl.append(r)
            print(f"cleanrl seed {seed}: {r}", flush=True)
        summarize("CleanRL ppo.py (rolling mean of 100 training episodes, from process start)", cleanrl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
