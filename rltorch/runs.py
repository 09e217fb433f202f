"""Run directories: what ``rltorch train`` leaves behind and ``eval``/``export`` read.

A run directory holds ``config.json`` (the exact DQNConfig), ``metrics.csv``
(one row per log interval), ``checkpoint.pt``, ``result.json`` (time and steps
to solve), ``learning_curve.png`` (matplotlib) and, when tensorboard is
installed, TensorBoard event files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
CHECKPOINT_FILE = "checkpoint.pt"
RESULT_FILE = "result.json"
CURVE_FILE = "learning_curve.png"

METRIC_COLUMNS = ["env_steps", "updates", "wall_time_s", "steps_per_s", "episodes", "train_return", "train_length",
                  "epsilon", "eval_return"]


def new_run_dir(root: str, algo: str, env_id: str, seed: int) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join(root, f"{algo}-{env_id.replace('/', '_')}-s{seed}-{stamp}")
    path, k = base, 1
    while os.path.exists(path):
        k += 1
        path = f"{base}-{k}"
    os.makedirs(path)
    return path


class MetricsWriter:
    """Appends metric rows to metrics.csv (flushed per row, so a killed run keeps its log) and TensorBoard."""

    def __init__(self, run_dir: str):
        self.file = open(os.path.join(run_dir, METRICS_FILE), "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
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


def plot_learning_curve(run_dir: str, threshold: float | None = None) -> str | None:
    """Writes learning_curve.png; returns its path, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = read_metrics(run_dir)
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["env_steps"] for r in rows]
    ax.plot(steps, [r["train_return"] for r in rows], label="training episodes (mean return)", color="tab:blue")
    evals = [(r["env_steps"], r["eval_return"]) for r in rows if not math.isnan(r["eval_return"])]
    if evals:
        ax.plot(*zip(*evals), "o-", label="greedy evaluation", color="tab:orange")
    if threshold is not None and math.isfinite(threshold):
        ax.axhline(threshold, ls="--", color="gray", label=f"solved ({threshold:g})")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(os.path.basename(os.path.normpath(run_dir)))
    ax.legend(loc="lower right")
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


def load_config_file(path: str) -> dict:
    """A DQNConfig as a dict, from .toml or .json."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    if path.endswith(".toml"):
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib

        with open(path, "rb") as f:
            data = tomllib.load(f)
        return data.get("dqn", data)
    with open(path) as f:
        return json.load(f)
