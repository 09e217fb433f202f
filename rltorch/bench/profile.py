"""Where an agent's time to solve goes: collecting, learning, evaluating, the rest (``rltorch bench --profile``).

Each seed trains in this process with the config ``rltorch train ALGO`` would build, its hooks timed from
outside: the split explains a time-to-solve figure, it is not one (the timers cost a little per call).
"""

from __future__ import annotations

import functools
import statistics
import time
from typing import Callable

PARTS = ("collect", "learn", "evaluate")


def _timed(spent: dict[str, float], name: str, fn: Callable) -> Callable:
    """``fn``, adding the seconds each call takes to ``spent[name]``."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - start

    return wrapper


def time_split(agent_class, config, seeds: list[int], report: Callable[[str], None] = print) -> dict[str, float]:
    """Trains one agent per seed and returns the median seconds per part (and ``total``), reporting a line
    per seed and one for the medians."""
    from rltorch.agents.base import Agent

    totals: dict[str, list[float]] = {}
    for seed in seeds:
        spent = dict.fromkeys(PARTS, 0.0)

        agent = agent_class(type(config).from_dict({**config.to_dict(), "seed": seed}))
        try:
            agent.collect = _timed(spent, "collect", agent.collect)
            agent.update = _timed(spent, "learn", agent.update)  # the per-update hook (was named learn)
            agent.evaluate_returns = _timed(spent, "evaluate", functools.partial(Agent.evaluate_returns, agent))
            result = agent.train()
        finally:
            agent.close()
        spent["other"] = result.wall_time_s - sum(spent.values())
        spent["total"] = result.wall_time_s
        report(f"seed {seed}: solved={result.solved} env steps={result.env_steps} updates={result.updates} "
               + " ".join(f"{k}={v:.3f} s" for k, v in spent.items()))
        for key, value in spent.items():
            totals.setdefault(key, []).append(value)
    medians = {key: statistics.median(values) for key, values in totals.items()}
    total = medians["total"]
    report("median: " + ", ".join(f"{k} {v:.3f} s ({100 * v / total:.0f}%)" for k, v in medians.items()
                                  if k != "total") + f", total {total:.3f} s")
    return medians
