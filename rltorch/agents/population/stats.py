"""Aggregate statistics of many runs, with stratified bootstrap confidence intervals as rliable computes them.

Deep-RL results are reported over many seeds as an interquartile mean (IQM,
the mean of the middle half: scipy's ``trim_mean(x, 0.25)`` over all runs)
with 95% percentile-bootstrap intervals whose resamples draw runs with
replacement, separately for each task (Agarwal et al., 2021, "Deep RL at the
edge of the statistical precipice"; the ``rliable`` package). This module
computes the same numbers with NumPy alone, vectorised over the resamples, so
``import rltorch`` needs neither rliable nor SciPy; ``tests/test_population_stats.py``
checks them against ``rliable.library.get_interval_estimates`` on the same
resampling indices.

Scores are ``[runs]`` or ``[runs, tasks]``. A run that never reached
something (an agent that did not solve) enters "steps to solve" as ``inf``:
the median and IQM stay finite while few enough runs failed, and become
``inf`` (JSON ``null``) when too many did, which is the honest answer.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["iqm", "median", "mean", "interval", "summarize", "STATISTICS", "finite_or_none"]

#: Resamples per interval. rliable's default is 50,000; 10,000 puts the Monte Carlo error of a 95%
#: percentile interval's ends well below the spread between seeds, in a fraction of the time.
DEFAULT_REPS = 10_000


def _as_scores(values) -> np.ndarray:
    scores = np.asarray(values, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]
    if scores.ndim != 2 or scores.shape[0] < 1 or scores.shape[1] < 1:
        raise ValueError(f"scores must be [runs] or [runs, tasks] with at least one run, got shape "
                         f"{list(np.shape(values))}")
    if np.isnan(scores).any():
        raise ValueError("scores must not hold NaN (an unreached value is +inf)")
    return scores


def _flat_sorted(samples: np.ndarray) -> np.ndarray:
    """``samples [..., runs, tasks]`` -> every run and task of each resample, sorted: ``[..., runs * tasks]``."""
    return np.sort(samples.reshape(*samples.shape[:-2], -1), axis=-1)


def iqm(samples: np.ndarray) -> np.ndarray:
    """Interquartile mean over the last two axes (runs, tasks): scipy ``trim_mean(x, 0.25, axis=None)``."""
    flat = _flat_sorted(samples)
    cut = int(0.25 * flat.shape[-1])
    return flat[..., cut:flat.shape[-1] - cut].mean(axis=-1)


def median(samples: np.ndarray) -> np.ndarray:
    """Median over every run and task (``np.median``; ``inf`` once half the runs are ``inf``)."""
    flat = _flat_sorted(samples)
    n = flat.shape[-1]
    low, high = flat[..., (n - 1) // 2], flat[..., n // 2]
    return np.where(low == high, low, (low + high) / 2)


def mean(samples: np.ndarray) -> np.ndarray:
    """Mean over every run and task (a solve rate, with 0/1 scores)."""
    return samples.reshape(*samples.shape[:-2], -1).mean(axis=-1)


STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"iqm": iqm, "median": median, "mean": mean}


def _percentile(values: np.ndarray, q: float) -> float:
    """NumPy's 'linear' percentile of a 1-D array, except that an interval between two infinities (or
    exactly at an infinity) stays infinite instead of becoming NaN."""
    ordered = np.sort(values)
    position = (ordered.size - 1) * q / 100.0
    low = int(math.floor(position))
    high = min(low + 1, ordered.size - 1)
    gamma = position - low
    a, b = ordered[low], ordered[high]
    if gamma == 0 or a == b:
        return float(a)
    diff = b - a
    if math.isinf(diff):  # between a finite value and +inf: +inf (NumPy's formula gives NaN)
        return float(b)
    # numpy's _lerp: from the nearer end, for the same rounding.
    return float(b - diff * (1 - gamma)) if gamma >= 0.5 else float(a + diff * gamma)


def resample_indices(runs: int, tasks: int, reps: int, rng: np.random.Generator | np.random.RandomState) -> np.ndarray:
    """``[reps, runs, tasks]`` run indices: each resample draws every task's runs with replacement
    (rliable's StratifiedBootstrap, one stratum per task)."""
    if isinstance(rng, np.random.RandomState):
        return rng.randint(0, runs, size=(reps, runs, tasks))
    return rng.integers(0, runs, size=(reps, runs, tasks))


def interval(values, statistic: str | Callable[[np.ndarray], np.ndarray], reps: int = DEFAULT_REPS,
             size: float = 0.95, rng: np.random.Generator | np.random.RandomState | int | None = 0,
             indices: np.ndarray | None = None) -> tuple[float, float]:
    """The percentile-bootstrap ``size`` interval of ``statistic`` (a name in :data:`STATISTICS` or a
    function of ``[..., runs, tasks]`` arrays reducing the last two axes) over stratified resamples.

    ``indices`` (``[reps, runs, tasks]``) replaces the random draws, to replay another implementation's."""
    scores = _as_scores(values)
    func = STATISTICS[statistic] if isinstance(statistic, str) else statistic
    if not 0.0 < size < 1.0:
        raise ValueError(f"interval: `size` must lie strictly between 0 and 1, got {size!r}")
    runs, tasks = scores.shape
    if indices is None:
        if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
            raise ValueError(f"interval: `reps` must be an integer >= 1, got {reps!r}")
        if rng is None or isinstance(rng, int):
            rng = np.random.default_rng(rng)
        indices = resample_indices(runs, tasks, reps, rng)
    indices = np.asarray(indices)
    if indices.ndim != 3 or indices.shape[1:] != (runs, tasks):
        raise ValueError(f"interval: `indices` must be [reps, {runs}, {tasks}], got {list(indices.shape)}")
    resampled = scores[indices, np.arange(tasks)]
    replicates = np.asarray(func(resampled), dtype=np.float64)
    alpha = (1.0 - size) / 2
    return _percentile(replicates, 100 * alpha), _percentile(replicates, 100 * (1 - alpha))


def finite_or_none(value: float) -> float | None:
    """JSON has no infinity: an unreached value (``inf``) is written as null."""
    return float(value) if math.isfinite(value) else None


def summarize(values, statistics: tuple[str, ...] = ("median", "iqm"), reps: int = DEFAULT_REPS,
              size: float = 0.95, seed: int = 0) -> dict[str, dict]:
    """``{name: {"value": v, "ci": [low, high]}}`` for each statistic, JSON-ready (``inf`` -> None)."""
    scores = _as_scores(values)
    rng = np.random.default_rng(seed)
    indices = resample_indices(*scores.shape, reps, rng)
    out = {}
    for name in statistics:
        value = float(STATISTICS[name](scores[None])[0])
        low, high = interval(scores, name, size=size, indices=indices)
        out[name] = {"value": finite_or_none(value), "ci": [finite_or_none(low), finite_or_none(high)]}
    return out
