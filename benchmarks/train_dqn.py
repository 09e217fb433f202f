"""Time to solve CartPole-v1 with rltorch's DQN, over several seeds.

Not a test: a script. Each seed trains in a fresh subprocess (so one run's
warm caches or threads never help the next) until greedy evaluation reaches
475 over 100 episodes; evaluation time counts. With ``--cleanrl PATH`` it also
runs CleanRL's ``dqn.py`` from that checkout, in a virtualenv of its own (it
pins gymnasium 0.29.1), on the same machine in the same session, and reports
when its rolling mean of 100 training episodes first reaches 475.

    python benchmarks/train_dqn.py --seeds 5
    python benchmarks/train_dqn.py --seeds 3 --cleanrl ~/src/cleanrl
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLEANRL_ANCHOR = "CleanRL dqn.py (anchor measured on this 2-core machine, not this run): median 61 s, 52-67 s, 254k-327k steps"


def run_rltorch(seed: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-u", "-m", "rltorch", "train", "dqn", "--seed", str(seed), "--quiet",
               "--run-dir", os.path.join(tmp, "run"), *extra]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        solved_line_at = None
        for line in proc.stdout:  # timestamp the "solved" line: process start to solved, like CleanRL's clock
            if line.startswith("solved ") and solved_line_at is None:
                solved_line_at = time.perf_counter() - start
        stderr = proc.stderr.read()
        proc.wait()
        elapsed = time.perf_counter() - start
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"seed {seed} failed:\n{stderr}")
        with open(os.path.join(tmp, "run", "result.json")) as f:
            result = json.load(f)
    result["process_s"] = elapsed
    result["from_process_start_s"] = solved_line_at
    return result


def cleanrl_venv(path: str) -> str:
    venv = os.path.join(path, ".rltorch-bench-venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        # dqn.py pins gymnasium 0.29.1, which needs NumPy 1.x.
        subprocess.run([python, "-m", "pip", "install", "-q", "torch", "gymnasium==0.29.1", "numpy<2", "tyro",
                        "tensorboard"], check=True)
    return python


def run_cleanrl(path: str, seed: int, script: str = "dqn.py", env: dict | None = None) -> dict:
    """One seed of CleanRL's ``cleanrl/SCRIPT`` from the checkout at ``path``, timed from process start
    until the rolling mean of its last 100 training episodes first reaches 475 (its own criterion)."""
    python = cleanrl_venv(path)
    start = time.perf_counter()
    proc = subprocess.Popen([python, "-u", os.path.join(path, "cleanrl", script), "--seed", str(seed),
                             "--env-id", "CartPole-v1", "--no-track", "--no-capture-video"], cwd=path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**(env or os.environ), "PYTHONPATH": path})  # cleanrl_utils lives at the root
    returns: list[float] = []
    solved_at = None
    for line in proc.stdout:
        match = re.search(r"global_step=(\d+), episodic_return=\[?([\d.]+)", line)
        if not match:
            continue
        returns.append(float(match.group(2)))
        if solved_at is None and len(returns) >= 100 and statistics.fmean(returns[-100:]) >= 475:
            solved_at = (time.perf_counter() - start, int(match.group(1)))
            proc.kill()
            break
    proc.wait()
    return {"solved": solved_at is not None, "time_to_solve_s": solved_at[0] if solved_at else None,
            "steps_to_solve": solved_at[1] if solved_at else None}


def summarize(name: str, results: list[dict]) -> None:
    solved = [r for r in results if r["solved"]]
    print(f"\n{name}: {len(solved)} of {len(results)} seeds solved")
    if solved:
        times = [r["time_to_solve_s"] for r in solved]
        steps = [r["steps_to_solve"] for r in solved]
        print(f"  time to solve: median {statistics.median(times):.1f} s, worst {max(times):.1f} s, best {min(times):.1f} s")
        print(f"  env steps:     median {statistics.median(steps):,.0f}, worst {max(steps):,}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--cleanrl", default=None, help="path to a CleanRL checkout, to run its dqn.py side by side")
    parser.add_argument("extra", nargs="*", help="extra arguments for `rltorch train dqn` (after --)")
    args = parser.parse_args()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    results = []
    for seed in seeds:
        result = run_rltorch(seed, args.extra)
        results.append(result)
        print(f"rltorch seed {seed}: solved={result['solved']} time_to_solve={result['time_to_solve_s']} s "
              f"(from process start {result['from_process_start_s']} s) steps={result['steps_to_solve']} "
              f"updates={result['updates']} (whole process {result['process_s']:.1f} s)", flush=True)
    summarize("rltorch DQN (from the start of training)", results)
    summarize("rltorch DQN (from process start, like the CleanRL clock)",
              [dict(r, time_to_solve_s=r["from_process_start_s"]) for r in results])
    if args.cleanrl:
        cleanrl = []
        for seed in seeds:
            result = run_cleanrl(os.path.expanduser(args.cleanrl), seed)
            cleanrl.append(result)
            print(f"cleanrl seed {seed}: {result}", flush=True)
        summarize("CleanRL dqn.py (rolling mean of 100 training episodes)", cleanrl)
    else:
        print(f"\n{CLEANRL_ANCHOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
