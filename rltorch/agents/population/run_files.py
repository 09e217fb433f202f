"""What a population run leaves in its run directory.

- ``metrics.csv``: one long table, one row per agent per log point, with the
  agent's index, seed and swept values (``sweep.FIELD``) first, then the
  algorithm's columns;
- ``result.json``: each agent's outcome (solved, env steps and seconds to
  solve, last greedy evaluation) and the aggregates (solve rate, median and
  IQM of steps and time to solve, IQM of the final evaluation, each with a 95%
  stratified bootstrap interval), for the whole population and per sweep
  setting;
- ``learning_curves.png``: the greedy evaluation return over env steps, the
  median across seeds with the interquartile band, one line per sweep
  setting; an agent that stopped once solved keeps its solving evaluation;
- ``sensitivity_<field>.png``, one per swept field: solve rate and IQM of env
  steps to solve against the field's values (the other swept fields pooled).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rltorch._io import atomic_write
from rltorch.agents.population import stats
from rltorch.agents.population.sweep import Member, grid

__all__ = ["MetricsTable", "read_metrics", "population_result", "plot_learning_curves", "plot_sensitivity",
           "METRICS_FILE", "CURVES_FILE"]

METRICS_FILE = "metrics.csv"
CURVES_FILE = "learning_curves.png"
_MEMBER_COLUMNS = ("agent", "seed")
SWEPT_PREFIX = "sweep."


class MetricsTable:
    """Appends per-agent rows to ``metrics.csv`` (flushed per log point, so a killed run keeps its log)."""

    def __init__(self, run_dir: str, swept: Sequence[str], columns: Sequence[str], append: bool = False):
        # Swept values as "sweep.FIELD": an algorithm may log a field's current value under its own name
        # (PPO's annealed learning_rate).
        self.columns = [*_MEMBER_COLUMNS, *(f"{SWEPT_PREFIX}{name}" for name in swept), *columns]
        path = os.path.join(run_dir, METRICS_FILE)
        resume = append and os.path.exists(path)
        self.file = open(path, "a" if resume else "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.columns, extrasaction="ignore")
        if not resume:
            self.writer.writeheader()
        self.swept = tuple(swept)

    def write(self, members: Sequence[Member], rows: Sequence[dict]) -> None:
        """One log point: ``rows[i]`` holds the algorithm's columns for ``members[i]``."""
        if len(members) != len(rows):
            raise ValueError(f"MetricsTable.write: {len(members)} members but {len(rows)} rows")
        for member, row in zip(members, rows):
            self.writer.writerow({**row, "agent": member.index, "seed": member.seed,
                                  **{f"{SWEPT_PREFIX}{name}": _cell(member.values[name]) for name in self.swept}})
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _cell(value):
    return "none" if value is None else value


def read_metrics(run_dir: str) -> list[dict]:
    """metrics.csv's rows, numbers as floats (a swept ``none`` stays the string)."""
    with open(os.path.join(run_dir, METRICS_FILE), newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


# ---------------------------------------------------------------------------------------------- result.json

def _outcome_arrays(outcomes: Sequence[dict]) -> dict[str, np.ndarray]:
    solved = np.array([bool(o["solved"]) for o in outcomes])
    steps = np.array([o["steps_to_solve"] if o["solved"] else math.inf for o in outcomes], dtype=np.float64)
    seconds = np.array([o["time_to_solve_s"] if o["solved"] else math.inf for o in outcomes], dtype=np.float64)
    final = np.array([math.nan if o.get("last_eval_return") is None else o["last_eval_return"] for o in outcomes],
                     dtype=np.float64)
    return {"solved": solved, "steps": steps, "seconds": seconds, "final": final}


def aggregate(outcomes: Sequence[dict], reps: int = stats.DEFAULT_REPS, seed: int = 0) -> dict[str, Any]:
    """Solve rate and the median and IQM of env steps and seconds to solve (an agent that never solved counts
    as infinitely slow, so they become null once too many failed), and the IQM of the last greedy
    evaluation, each with a 95% stratified bootstrap interval."""
    arrays = _outcome_arrays(outcomes)
    out: dict[str, Any] = {"agents": len(outcomes),
                           "solve_rate": stats.summarize(arrays["solved"].astype(float), ("mean",), reps,
                                                         seed=seed)["mean"],
                           "steps_to_solve": stats.summarize(arrays["steps"], ("median", "iqm"), reps, seed=seed),
                           "time_to_solve_s": stats.summarize(arrays["seconds"], ("median", "iqm"), reps, seed=seed)}
    evaluated = arrays["final"][~np.isnan(arrays["final"])]
    out["final_eval_return"] = (stats.summarize(evaluated, ("median", "iqm"), reps, seed=seed) if evaluated.size
                                else None)
    return out


def population_result(members: Sequence[Member], outcomes: Sequence[dict], sweep: dict[str, tuple],
                      threshold: float, reps: int = stats.DEFAULT_REPS, **extra) -> dict[str, Any]:
    """result.json's payload: every agent's outcome beside its seed and swept values, and the aggregates of
    the population and of each sweep setting."""
    if len(members) != len(outcomes):
        raise ValueError(f"population_result: {len(members)} members but {len(outcomes)} outcomes")
    agents = [{"agent": m.index, "seed": m.seed, **m.values, **o} for m, o in zip(members, outcomes)]
    settings = []
    for s, values in enumerate(grid(sweep)):
        chosen = [o for m, o in zip(members, outcomes) if m.setting == s]
        if chosen:
            settings.append({"setting": s, "values": values, **aggregate(chosen, reps)})
    return {"threshold": threshold, "num_agents": len(members), "sweep": {k: list(v) for k, v in sweep.items()},
            **extra, "aggregate": aggregate(outcomes, reps), "settings": settings, "agents": agents}


# ---------------------------------------------------------------------------------------------- plots

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(values: dict) -> str:
    return ", ".join(f"{k}={'none' if v is None else f'{v:g}' if isinstance(v, float) else v}"
                     for k, v in values.items()) or "all agents"


def _curves(rows: list[dict], column: str) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The env steps of every log point and, per agent, ``column`` at each of them, carried forward
    from the agent's last logged value (NaN before its first)."""
    steps = np.array(sorted({r["env_steps"] for r in rows}), dtype=np.float64)
    by_agent: dict[int, list[tuple[float, float]]] = {}
    for r in rows:
        value = r.get(column)
        if isinstance(value, float) and not math.isnan(value):
            by_agent.setdefault(int(r["agent"]), []).append((r["env_steps"], value))
    curves = {}
    for agent, points in by_agent.items():
        points.sort()
        at = np.searchsorted(np.array([p[0] for p in points]), steps, side="right") - 1
        values = np.array([p[1] for p in points])
        curves[agent] = np.where(at >= 0, values[np.maximum(at, 0)], np.nan)
    return steps, curves


def plot_learning_curves(run_dir: str, members: Sequence[Member], sweep: dict[str, tuple],
                         threshold: float | None = None, column: str = "eval_return",
                         lower_bounds: bool = False) -> str:
    """learning_curves.png: per sweep setting, the median of ``column`` across its agents with the
    interquartile band, against env steps."""
    plt = _pyplot()
    steps, curves = _curves(read_metrics(run_dir), column)
    fig, ax = plt.subplots(figsize=(7, 4))
    for s, values in enumerate(grid(sweep)):
        chosen = [curves[m.index] for m in members if m.setting == s and m.index in curves]
        if not chosen:
            continue
        table = np.vstack(chosen)
        seen = ~np.isnan(table).all(axis=0)
        low, mid, high = (np.full(steps.shape, np.nan) for _ in range(3))
        low[seen], mid[seen], high[seen] = np.nanpercentile(table[:, seen], [25, 50, 75], axis=0)
        line, = ax.plot(steps, mid, label=f"{_label(values)} ({len(chosen)} seeds)")
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if threshold is not None and math.isfinite(threshold):
        ax.axhline(threshold, ls="--", color="gray", label=f"solved ({threshold:g})")
    ax.set_xlabel("env steps per agent")
    ax.set_ylabel("greedy evaluation return" if column == "eval_return" else column)
    bounds = "; evaluations below the threshold stopped early (lower bounds)" if lower_bounds else ""
    ax.set_title(f"{len(members)} agents: median and interquartile range per setting\n(an agent that solved keeps "
                 f"its solving evaluation{bounds})", fontsize=8)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(run_dir, CURVES_FILE)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sensitivity(run_dir: str, members: Sequence[Member], outcomes: Sequence[dict], sweep: dict[str, tuple],
                     reps: int = stats.DEFAULT_REPS) -> list[str]:
    """sensitivity_<field>.png per swept field: solve rate and IQM of env steps to solve (95% intervals)
    at each of its values, pooling the other swept fields."""
    plt = _pyplot()
    paths = []
    for name, values in sweep.items():
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        xs = list(values) if numeric else list(range(len(values)))
        rate, rate_ci, iqm, iqm_ci = [], [], [], []
        for value in values:
            chosen = [o for m, o in zip(members, outcomes) if m.values[name] == value]
            summary = aggregate(chosen, reps)
            rate.append(summary["solve_rate"]["value"])
            rate_ci.append(summary["solve_rate"]["ci"])
            iqm.append(summary["steps_to_solve"]["iqm"]["value"])
            iqm_ci.append(summary["steps_to_solve"]["iqm"]["ci"])
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
        _errorbar(left, xs, rate, rate_ci)
        left.set_ylabel("solve rate")
        left.set_ylim(-0.05, 1.05)
        _errorbar(right, xs, iqm, iqm_ci)
        right.set_ylabel("IQM env steps to solve")
        for ax in (left, right):
            ax.set_xlabel(name)
            if numeric and min(xs) > 0 and max(xs) / min(xs) >= 10:
                ax.set_xscale("log")
            if numeric:  # label the swept values themselves, not the axis's own ticks
                ax.minorticks_off()
                ax.set_xticks(xs, [f"{v:g}" for v in values])
            else:
                ax.set_xticks(xs, ["none" if v is None else str(v) for v in values])
                ax.set_xlim(-0.5, len(xs) - 0.5)
            ax.grid(alpha=0.3)
        fig.suptitle(f"sensitivity to {name} (95% bootstrap intervals; no IQM where over a quarter failed)",
                     fontsize=9)
        fig.tight_layout()
        path = os.path.join(run_dir, f"sensitivity_{name}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _errorbar(ax, xs, values, intervals) -> None:
    """Points with their intervals; a missing value (null) is left out, a missing upper end drawn open."""
    for x, value, (low, high) in zip(xs, values, intervals):
        if value is None:
            continue
        top = high if high is not None else value
        ax.errorbar([x], [value], yerr=[[value - low], [top - value]], fmt="o", color="tab:blue", capsize=4)
        if high is None:
            ax.annotate("upper end unbounded", (x, value), textcoords="offset points", xytext=(4, 6), fontsize=7)


# ---------------------------------------------------------------------------------------------- a run

class PopulationRunFiles:
    """What ``rltorch train`` writes for a population: the long metrics table while it trains (:meth:`row`
    is the training callback), then result.json and the plots (:meth:`finish`)."""

    def __init__(self, run_dir: str, agent):
        self.run_dir, self.agent = run_dir, agent
        self.table = MetricsTable(run_dir, list(agent.sweep), agent.metric_columns())

    def row(self, row: dict) -> None:
        self.table.write([self.agent.members[row["agent"]]], [row])

    def close(self) -> None:
        self.table.close()

    def finish(self, result, reps: int = stats.DEFAULT_REPS) -> list[str]:
        """Writes result.json, learning_curves.png and one sensitivity plot per swept field; returns the paths."""
        import json

        agent = self.agent
        payload = population_result(
            agent.members, [_outcome(a) for a in result.agents], agent.sweep, agent.threshold, reps=reps,
            solved=result.solved, time_to_solve_s=result.time_to_solve_s, steps_to_solve=result.steps_to_solve,
            wall_time_s=result.wall_time_s, env_steps=result.env_steps, updates=result.updates)
        path = atomic_write(os.path.join(self.run_dir, "result.json"), "result.json",
                            lambda f: f.write((json.dumps(payload, indent=2) + "\n").encode()))
        written = [path, plot_learning_curves(self.run_dir, agent.members, agent.sweep, agent.threshold,
                                              lower_bounds=agent.config.eval_stop_early)]
        written += plot_sensitivity(self.run_dir, agent.members, [_outcome(a) for a in result.agents], agent.sweep,
                                    reps=reps)
        return written


def _outcome(entry: dict) -> dict:
    return {key: entry[key] for key in ("solved", "steps_to_solve", "time_to_solve_s", "last_eval_return", "env_steps")}


def summary(result, threshold: float) -> str:
    """One line on how a population did."""
    agents = result.agents
    solved = [a for a in agents if a["solved"]]
    line = f"{len(solved)}/{len(agents)} agents solved (greedy mean >= {threshold:g})"
    if solved:
        steps = sorted(a["steps_to_solve"] for a in solved)
        line += (f"; env steps to solve per agent: median {steps[len(steps) // 2]}, last {steps[-1]}; "
                 f"the last after {max(a['time_to_solve_s'] for a in solved):.1f} s")
    return line + f" ({result.wall_time_s:.1f} s in all)"
