"""Run directories: what ``rltorch train`` leaves behind and ``eval``/``export`` read.

A run directory holds ``config.json`` (the algorithm's name and its exact
config), ``metrics.csv`` (one row per log interval, columns from the agent), ``checkpoint.pt``,
``result.json`` (time and steps to solve), ``learning_curve.png`` (matplotlib) and, when tensorboard is
installed, TensorBoard event files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time

from rltorch.agents.base import CHECKPOINT_FILE  # noqa: F401  (the run directory's checkpoint)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
RESULT_FILE = "result.json"
CURVE_FILE = "learning_curve.png"



def plan_run_dir(root: str, algo: str, env_id: str, seed: int) -> str:
    """A fresh run directory path under ``root`` (not created: see :func:`check_run_dir`)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join(root, f"{algo}-{env_id.replace('/', '_')}-s{seed}-{stamp}")
    path, k = base, 1
    while os.path.exists(path):
        k += 1
        path = f"{base}-{k}"
    return path


def check_run_dir(path: str, what: str = "run directory") -> None:
    """Raises ValueError (naming ``what``) unless ``path`` is a directory or can be created as one."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError(f"{what} {path!r} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {path!r} is not writable")
        return
    ancestor = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ValueError(f"{what} {path!r} cannot be created: {ancestor!r} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path!r} cannot be created: {ancestor!r} is not writable")


def write_config(run_dir: str, algorithm: str, config) -> None:
    """config.json: ``{"algorithm": name, **config.to_dict()}``."""
    write_json(os.path.join(run_dir, CONFIG_FILE), {"algorithm": algorithm, **config.to_dict()})


def read_algorithm(run_dir: str) -> str | None:
    """The algorithm recorded in a run's config.json ("dqn" for runs older than the tag; None without the file)."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path!r} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path!r} does not hold a config object")
    return str(data.get("algorithm", "dqn"))


class MetricsWriter:
    """Appends metric rows to metrics.csv (flushed per row, so a killed run keeps its log) and TensorBoard."""

    def __init__(self, run_dir: str, columns: list[str]):
        self.file = open(os.path.join(run_dir, METRICS_FILE), "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=columns, extrasaction="ignore")
        self.writer.writeheader()
        self.tensorboard = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(log_dir=run_dir)
        except Exception:  # tensorboard is optional
            self.tensorboard = None

    def __call__(self, row: dict) -> None:
        self.writer.writerow(row)
        self.file.flush()
        if self.tensorboard is not None:
            for key, value in row.items():
                if key != "env_steps" and isinstance(value, (int, float)) and not math.isnan(value):
                    self.tensorboard.add_scalar(key, value, row["env_steps"])

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def read_metrics(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, METRICS_FILE), newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def plot_learning_curve(run_dir: str, threshold: float | None = None, eval_lower_bounds: bool = False) -> str | None:
    """Writes learning_curve.png; returns its path, or None when matplotlib is missing.

    ``eval_lower_bounds``: the run stopped evaluations early once the threshold was out
    of reach, so an evaluation below it is a lower bound (the legend says so)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = read_metrics(run_dir)
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["env_steps"] for r in rows]
    if rows and "train_return" in rows[0]:
        ax.plot(steps, [r["train_return"] for r in rows], label="training episodes (mean return)", color="tab:blue")
    evals = [
        (r["env_steps"], r["eval_return"]) for r in rows if "eval_return" in r and not math.isnan(r["eval_return"])
    ]
    if evals:
        label = "greedy evaluation" + (" (below the threshold: a lower bound)" if eval_lower_bounds else "")
        ax.plot(*zip(*evals), "o-", label=label, color="tab:orange")
    if threshold is not None and math.isfinite(threshold):
        ax.axhline(threshold, ls="--", color="gray", label=f"solved ({threshold:g})")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(os.path.basename(os.path.normpath(run_dir)))
    ax.legend(loc="best")  # rising curves fill the lower right late, the upper left early
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(run_dir, CURVE_FILE)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_json(path: str, payload: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
