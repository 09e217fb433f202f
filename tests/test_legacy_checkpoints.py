"""Checkpoints written by earlier rltorch releases keep loading and training (tests/data/agent_checkpoints).

The files are real: written by rltorch at 7f53795 (format 2, one flat dict) and f155e46 (format 3, sections, the
last layout before population training), with what that code did next (write_fixtures.py there). A user who
paused a run before the upgrade resumes it after: the same greedy actions at once, and for DQN and PPO on
CartPole the same parameters after training on as the old code reached, up to float rounding (the stacked layers
multiply in another order); PPO on Pendulum draws its action noise differently since, so it is held to
training on from the file's state.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from rltorch.agents import DQN, PPO, DQNConfig, PPOConfig
from rltorch.agents.base import CHECKPOINT_FORMAT, Agent, read_checkpoint

DATA = Path(__file__).parent / "data" / "agent_checkpoints"
SAME_AS_OLD = ["dqn_format2", "ppo_format2", "dqn_format3", "ppo_format3"]
ALL = [*SAME_AS_OLD, "ppo_pendulum_format3"]


def expected(name: str) -> dict:
    return torch.load(DATA / f"{name}_expected.pt", weights_only=True)


def flat_params(agent: Agent) -> list[torch.Tensor]:
    return [p.detach().flatten() for p in agent.policy_module().parameters()]


@pytest.mark.parametrize("name", ALL)
def test_old_checkpoint_acts_as_it_did(name):
    agent = Agent.load(DATA / f"{name}.pt")
    ref = expected(name)
    assert agent.env_steps == 256
    assert torch.equal(agent.act(ref["obs"]).reshape(ref["actions"].shape), ref["actions"])


@pytest.mark.parametrize("name", SAME_AS_OLD)
def test_old_checkpoint_trains_on_as_the_old_code_did(name):
    agent = Agent.load(DATA / f"{name}.pt")
    ref = expected(name)
    agent.train()
    assert agent.env_steps == ref["env_steps_after_training"]
    assert torch.equal(agent.act(ref["obs"]).reshape(ref["actions"].shape), ref["actions_after_training"])
    for ours, theirs in zip(flat_params(agent), ref["params_after_training"], strict=True):
        torch.testing.assert_close(ours, theirs.flatten(), atol=1e-6, rtol=1e-5)


def test_old_pendulum_checkpoint_trains_on_from_its_state():
    agent = Agent.load(DATA / "ppo_pendulum_format3.pt")
    old = read_checkpoint(DATA / "ppo_pendulum_format3.pt")["ppo"]
    # The moments of torch's Adam moved to the stacked optimiser, matched by parameter name.
    names = [name for name, _ in agent.live.named_parameters()]
    stacked = agent.optimizer.state_dict()
    for index, name in enumerate(list(n for n in old["net"] if n in names)):
        slot = names.index(name)
        assert torch.equal(stacked["exp_avg"][slot][0], old["optimizer"]["state"][index]["exp_avg"])
        assert torch.equal(stacked["exp_avg_sq"][slot][0], old["optimizer"]["state"][index]["exp_avg_sq"])
    assert stacked["step"].tolist() == [float(old["optimizer"]["state"][0]["step"])]
    # PPO annealed torch Adam's rate in place: the same rate now comes from the stacked optimiser's scale.
    rate = old["optimizer"]["param_groups"][0]["lr"]
    assert float(stacked["lr"][0] * stacked["lr_scale"]) == pytest.approx(rate)
    agent.train()
    assert agent.env_steps == expected("ppo_pendulum_format3")["env_steps_after_training"]
    assert all(torch.isfinite(p).all() for p in flat_params(agent))


@pytest.mark.parametrize("name", ALL)
def test_old_checkpoint_saves_in_todays_format(name, tmp_path):
    agent = Agent.load(DATA / f"{name}.pt")
    agent.save(tmp_path / "again.pt", include_buffer=True)
    assert read_checkpoint(tmp_path / "again.pt")["format"] == CHECKPOINT_FORMAT
    again = Agent.load(tmp_path / "again.pt")
    ref = expected(name)
    assert torch.equal(again.act(ref["obs"]), agent.act(ref["obs"]))


def test_format1_dqn_checkpoint_loads():
    """Format 1 was format 2's DQN dict without the algorithm tag."""
    state = read_checkpoint(DATA / "dqn_format2.pt")
    state.pop("algorithm")
    state["format"] = 1
    agent = DQN(DQNConfig.from_dict(state["config"]))
    agent.load_state_dict(state)
    ref = expected("dqn_format2")
    assert torch.equal(agent.act(ref["obs"]).reshape(ref["actions"].shape), ref["actions"])


def test_old_checkpoint_into_a_population_is_refused():
    state = read_checkpoint(DATA / "ppo_format3.pt")
    config = PPOConfig.from_dict({**state["config"], "num_agents": 2})
    agent = PPO(config)
    with pytest.raises(ValueError, match="holds one agent .* trains 2"):
        agent.load_state_dict(state)


@pytest.mark.parametrize(("name", "section", "damage", "message"), [
    ("dqn_format3", "dqn", lambda s: s["optimizer"]["state"][0].update(exp_avg=torch.zeros(3)),
     r"optimizer.state.0.exp_avg` does not fit parameter 'body.0.weight'"),
    ("dqn_format3", "dqn", lambda s: s["q"].pop("head.bias"), r"`q` does not fit the network: missing \['head.bias'\]"),
    ("dqn_format3", "dqn", lambda s: s["target"].update({"head.weight": torch.zeros(5, 16)}),
     r"`target.head.weight` is torch.float32 \[5, 16\]"),
    ("ppo_format3", "ppo", lambda s: s["optimizer"]["state"][1].update(step=torch.tensor(7.0)),
     r"different step counts"),
    ("ppo_format3", "ppo", lambda s: s["optimizer"]["param_groups"][0]["params"].pop(), r"holds 11 parameters"),
    ("ppo_format2", "ppo", lambda s: s["net"].update({"actor.0.weight": torch.zeros(16, 4, dtype=torch.float64)}),
     r"`net.actor.0.weight` is torch.float64"),
])
def test_damaged_old_checkpoint_names_the_entry_and_changes_nothing(name, section, damage, message):
    state = read_checkpoint(DATA / f"{name}.pt")
    damage(state[section] if section in state else state)
    agent = Agent.load(DATA / f"{name}.pt")
    obs = expected(name)["obs"]
    actions, optimizer = agent.act(obs), copy.deepcopy(agent.optimizer.state_dict())
    with pytest.raises(ValueError, match=message):
        agent.load_state_dict(state)
    assert torch.equal(agent.act(obs), actions) and agent.env_steps == 256
    assert torch.equal(agent.optimizer.state_dict()["exp_avg"][0], optimizer["exp_avg"][0])
