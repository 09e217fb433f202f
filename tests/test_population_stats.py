"""Population statistics against rliable: IQM, median and solve rate with stratified bootstrap intervals."""

import math
import subprocess
import sys

import numpy as np
import pytest

from rltorch.agents.population import stats

rliable_library = pytest.importorskip("rliable.library", reason="rliable is in the test extra")
rliable_metrics = pytest.importorskip("rliable.metrics", reason="rliable is in the test extra")


def rliable_interval(scores, func, reps, seed):
    """rliable's estimate and 95% interval, and the resampling indices it drew (it draws from NumPy's
    global generator, one ``choice`` per resample)."""
    np.random.seed(seed)
    point, interval = rliable_library.get_interval_estimates({"x": scores}, func, reps=reps)
    np.random.seed(seed)
    runs, tasks = scores.shape
    indices = np.stack([np.random.choice(runs, (runs, tasks), replace=True) for _ in range(reps)])
    return point["x"], interval["x"], indices


@pytest.mark.parametrize("runs,tasks", [(64, 1), (10, 3), (5, 1)])
def test_iqm_and_median_and_intervals_equal_rliables(runs, tasks):
    rng = np.random.default_rng(runs * 10 + tasks)
    scores = rng.gamma(2.0, 1000.0, size=(runs, tasks)).round()  # ties happen, as with env-step counts
    for ours, theirs in (("iqm", lambda x: np.array([rliable_metrics.aggregate_iqm(x)])),
                         ("median", lambda x: np.array([np.median(x)]))):
        point, interval, indices = rliable_interval(scores, theirs, reps=500, seed=3)
        assert stats.STATISTICS[ours](scores[None])[0] == pytest.approx(point[0], rel=1e-12)
        low, high = stats.interval(scores, ours, indices=indices)
        assert (low, high) == pytest.approx((interval[0, 0], interval[1, 0]), rel=1e-12)


def test_solve_rate_interval_equals_rliables():
    solved = (np.arange(40) % 5 != 0).astype(float)[:, None]  # 80%
    point, interval, indices = rliable_interval(solved, lambda x: np.array([rliable_metrics.aggregate_mean(x)]),
                                                reps=400, seed=1)
    assert stats.mean(solved[None])[0] == pytest.approx(point[0])
    assert stats.interval(solved, "mean", indices=indices) == pytest.approx((interval[0, 0], interval[1, 0]))


def test_unreached_runs_are_infinite_not_nan():
    steps = np.array([1000.0, 2000, 3000, 4000, math.inf, math.inf, 5000, 6000])
    summary = stats.summarize(steps, reps=2000)
    assert summary["median"]["value"] == 4500.0  # 2 of 8 failed: the median is still finite
    assert summary["iqm"]["value"] == pytest.approx(np.mean([3000, 4000, 5000, 6000]))
    low, high = summary["iqm"]["ci"]
    assert low is not None and low <= summary["iqm"]["value"] and high is None  # some resamples fail more
    mostly_failed = np.array([1000.0, math.inf, math.inf, math.inf])
    # 3 of 4 failed: no median; resamples that draw the solved run twice or more still have one.
    assert stats.summarize(mostly_failed, reps=100)["median"] == {"value": None, "ci": [1000.0, None]}


def test_percentiles_next_to_an_infinity():
    values = np.array([1.0, 2.0, math.inf])
    assert stats._percentile(values, 100 * 0.75) == math.inf  # between 2 and inf: inf, not NaN
    assert stats._percentile(values, 25) == np.percentile(values[:2], 50)
    assert stats._percentile(values, 50) == 2.0


def test_summarize_is_reproducible_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    steps = rng.integers(8_000, 40_000, size=64).astype(float)
    a, b = stats.summarize(steps, seed=5), stats.summarize(steps, seed=5)
    assert a == b
    for name in ("median", "iqm"):
        low, high = a[name]["ci"]
        assert low <= a[name]["value"] <= high and high - low < 0.5 * a[name]["value"]


def test_bad_scores_and_arguments():
    with pytest.raises(ValueError, match="NaN"):
        stats.summarize([1.0, float("nan")])
    with pytest.raises(ValueError, match="at least one run"):
        stats.interval(np.zeros((0,)), "iqm")
    with pytest.raises(ValueError, match="size"):
        stats.interval([1.0, 2.0], "iqm", size=1.5)
    with pytest.raises(ValueError, match="reps"):
        stats.interval([1.0, 2.0], "iqm", reps=0)
    with pytest.raises(ValueError, match="indices"):
        stats.interval([1.0, 2.0], "iqm", indices=np.zeros((3, 3, 1), dtype=int))


def test_import_rltorch_imports_neither_rliable_nor_scipy():
    code = ("import sys, rltorch, rltorch.agents, rltorch.agents.population; "
            "bad = [m for m in ('rliable', 'scipy', 'arch') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
