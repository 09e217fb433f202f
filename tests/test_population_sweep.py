"""Sweep parsing and population membership: the grid x seeds, and one-line errors for what cannot be swept."""

import pytest

from rltorch.agents import PPOConfig
from rltorch.agents.population.sweep import grid, members, parse_sweep, sweep_items

PER_AGENT = ("learning_rate", "ent_coef", "clip_coef", "gamma", "max_grad_norm")
SHAPE = ("hidden_sizes", "num_envs", "num_steps", "num_minibatches")


def parse(*items, base=None):
    return parse_sweep(PPOConfig, list(items), base=base, per_agent=PER_AGENT, shape=SHAPE)


def test_grid_times_seeds():
    sweep = parse("learning_rate=3e-4,1e-3,3e-3", "ent_coef=0,0.01")
    assert sweep == {"learning_rate": (3e-4, 1e-3, 3e-3), "ent_coef": (0.0, 0.01)}
    settings = grid(sweep)
    assert len(settings) == 6 and settings[0] == {"learning_rate": 3e-4, "ent_coef": 0.0}
    assert settings[1] == {"learning_rate": 3e-4, "ent_coef": 0.01}  # the last field varies fastest
    population = members(10, 4, sweep)
    assert len(population) == 24
    assert [m.index for m in population] == list(range(24))
    assert [m.seed for m in population[:8]] == [10, 11, 12, 13] * 2  # every setting sees the same seeds
    assert population[13].setting == 3 and population[13].values == {"learning_rate": 1e-3, "ent_coef": 0.01}
    assert [(m.seed, m.setting, m.values) for m in members(0, 3)] == [(0, 0, {}), (1, 0, {}), (2, 0, {})]


def test_values_parse_as_their_flags_and_round_trip():
    sweep = parse("max_grad_norm=none,0.5", "gamma=0.9,1")
    assert sweep == {"max_grad_norm": (None, 0.5), "gamma": (0.9, 1.0)}
    assert parse(*sweep_items(sweep)) == sweep
    assert parse("learning-rate=1e-3") == {"learning_rate": (1e-3,)}


@pytest.mark.parametrize("item,message", [
    ("hidden_sizes=32,64", "hidden_sizes sets the shape of every agent's tensors.*hidden_sizes, num_envs, num_steps"),
    ("num_envs=8,16", "--sweep num_envs: num_envs sets the shape"),
    ("device=cpu", "device cannot differ between the agents of one population; sweepable: learning_rate"),
    ("learnin_rate=1e-3", "has no field 'learnin_rate'"),
    ("learning_rate", "expects FIELD=VALUE"),
    ("learning_rate=", "expected comma-separated values"),
    ("learning_rate=1e-3,,2e-3", "expected comma-separated values"),
    ("learning_rate=1e-3,abc", "learning_rate"),
    ("learning_rate=1e-3,-1", r"--sweep learning_rate=-1: PPOConfig: `learning_rate` must lie in \(0, 1\]"),
    ("gamma=0.9,2", r"`gamma` must lie in \[0, 1\]"),
    ("learning_rate=1e-3,0.001", "repeat"),
])
def test_rejected_sweeps_say_why_in_one_line(item, message):
    with pytest.raises(ValueError, match=message) as info:
        parse(item)
    assert "\n" not in str(info.value)


def test_a_field_swept_twice_and_values_checked_against_the_base_config():
    with pytest.raises(ValueError, match="given twice"):
        parse("learning_rate=1e-3", "learning_rate=2e-3")
    # Each value is validated on top of the rest of the config; the error names the swept item.
    with pytest.raises(ValueError, match="--sweep clip_coef=0"):
        parse("clip_coef=0.1,0", base={"num_envs": 4})


def test_members_rejects_bad_counts_and_seeds():
    with pytest.raises(ValueError, match="num_agents"):
        members(0, 0)
    with pytest.raises(ValueError, match="seed"):
        members(2**63 - 2, 4)
