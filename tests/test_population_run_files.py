"""A population's run files: the long metrics table, result.json's outcomes and aggregates, the plots."""

import csv
import json
import math
import os

import pytest

from rltorch.agents.population import stats
from rltorch.agents.population.run_files import (
    MetricsTable,
    aggregate,
    plot_learning_curves,
    plot_sensitivity,
    population_result,
    read_metrics,
)
from rltorch.agents.population.sweep import members

SWEEP = {"learning_rate": (1e-3, 1e-2), "max_grad_norm": (None, 0.5)}


def fake_run(tmp_path):
    population = members(0, 3, SWEEP)  # 4 settings x 3 seeds
    table = MetricsTable(str(tmp_path), list(SWEEP), ["env_steps", "train_return", "eval_return"])
    for point in range(1, 4):
        # Agents 0 and 5 solve at the second point and are not logged after it.
        active = [m for m in population if point < 3 or m.index not in (0, 5)]
        table.write(active, [{"env_steps": 1000 * point, "train_return": 10.0 * point + m.index,
                              "eval_return": 500.0 if m.index in (0, 5) and point == 2 else 100.0 * point}
                             for m in active])
    table.close()
    outcomes = [{"solved": m.index in (0, 5), "steps_to_solve": 2000 if m.index in (0, 5) else None,
                 "time_to_solve_s": 1.5 if m.index in (0, 5) else None, "env_steps": 3000,
                 "last_eval_return": 500.0 if m.index in (0, 5) else 300.0} for m in population]
    return population, outcomes


def test_metrics_table_is_one_long_table(tmp_path):
    population, _ = fake_run(tmp_path)
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["agent", "seed", "sweep.learning_rate", "sweep.max_grad_norm", "env_steps",
                             "train_return", "eval_return"]
    assert len(rows) == 12 + 12 + 10
    first = rows[4]  # agent 4: setting 1 (lr 1e-3, max_grad_norm 0.5), seed 1
    assert (first["agent"], first["seed"], first["sweep.learning_rate"], first["sweep.max_grad_norm"]) == (
        "4", "1", "0.001", "0.5")
    assert rows[2]["sweep.max_grad_norm"] == "none"
    assert read_metrics(str(tmp_path))[4]["train_return"] == 14.0
    with pytest.raises(ValueError, match="members"):
        MetricsTable(str(tmp_path / "."), [], ["x"], append=True).write(population, [{}])


def test_result_holds_each_agent_and_the_aggregates(tmp_path):
    population, outcomes = fake_run(tmp_path)
    result = population_result(population, outcomes, SWEEP, threshold=475.0, reps=500, wall_time_s=3.0)
    assert json.loads(json.dumps(result)) == result  # plain JSON: no inf or NaN
    assert result["num_agents"] == 12 and result["wall_time_s"] == 3.0 and len(result["settings"]) == 4
    agent5 = result["agents"][5]
    assert (agent5["seed"], agent5["learning_rate"], agent5["max_grad_norm"], agent5["solved"]) == (2, 1e-3, 0.5, True)
    whole = result["aggregate"]
    assert whole["solve_rate"]["value"] == pytest.approx(2 / 12)
    assert whole["steps_to_solve"]["median"]["value"] is None  # 10 of 12 never solved
    assert result["settings"][0]["values"] == {"learning_rate": 1e-3, "max_grad_norm": None}
    assert result["settings"][0]["solve_rate"]["value"] == pytest.approx(1 / 3)
    assert whole["final_eval_return"]["iqm"]["value"] == pytest.approx(300.0)
    # The aggregates are the stats module's, with unsolved agents as infinitely slow.
    seconds = [1.5 if o["solved"] else math.inf for o in outcomes]
    assert aggregate(outcomes, 500)["time_to_solve_s"] == stats.summarize(seconds, ("median", "iqm"), 500)
    with pytest.raises(ValueError, match="outcomes"):
        population_result(population, outcomes[:3], SWEEP, 475.0)


def test_plots_are_written(tmp_path):
    population, outcomes = fake_run(tmp_path)
    curves = plot_learning_curves(str(tmp_path), population, SWEEP, threshold=475.0)
    sensitivity = plot_sensitivity(str(tmp_path), population, outcomes, SWEEP, reps=200)
    assert [os.path.basename(p) for p in sensitivity] == ["sensitivity_learning_rate.png",
                                                          "sensitivity_max_grad_norm.png"]
    for path in (curves, *sensitivity):
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
