"""The shared agent frame (rltorch/agents/base.py, config.py): the loop's hooks and cadence, checkpoints
tagged with the algorithm, the registry, and configs read as command-line flags."""

import argparse
import dataclasses
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from rltorch.agents import ALGORITHMS, DQN, Agent, DQNConfig, RunConfig, algorithm_class
from rltorch.agents.base import CHECKPOINT_FORMAT, read_checkpoint
from rltorch.agents.config import field_docs, parse_field
from rltorch.nn import mlp
from tests.checks import legacy_layout


@dataclass(kw_only=True)
class ToyConfig(RunConfig):
    """A config for the toy agent."""

    width: int = 8
    """Hidden width."""
    scale: float = 1.0


class ToyAgent(Agent):
    """The smallest online agent: a fixed random MLP policy, a counter instead of learning."""

    name = "toy"
    config_class = ToyConfig
    log_columns = (*Agent.log_columns, "learn_calls")
    checkpoint_attrs = ("net", "learn_calls")

    def build(self):
        self.net = nn.Sequential(mlp(4, [self.config.width], 2), ArgMax())
        self.calls: list[str] = []
        self.learn_calls = 0

    def collect(self):
        self.calls.append("collect")
        self.advance(self.env.step(self.act(self.current_obs())))

    def update(self):
        self.calls.append("learn")
        self.learn_calls += 1
        self.updates += 1

    def policy_module(self):
        return self.net

    def log_metrics(self):
        return {**super().log_metrics(), "learn_calls": self.learn_calls}


class ArgMax(nn.Module):
    def forward(self, x):
        return x.argmax(dim=1)


def toy(**overrides) -> ToyAgent:
    values = dict(num_envs=4, device="cpu", total_steps=400, eval_interval=200, eval_episodes=3, log_interval=100,
                  seed=1, stop_when_solved=False)
    values.update(overrides)
    return ToyAgent(ToyConfig(**values))


def test_loop_calls_collect_then_learn_and_logs_on_cadence():
    agent = toy()
    rows = []
    result = agent.train(callback=rows.append)
    assert agent.calls[:4] == ["collect", "learn", "collect", "learn"]
    assert result.env_steps == 400 and result.updates == 100
    assert [r["env_steps"] for r in rows] == [100, 200, 300, 400]
    assert list(rows[0]) == ToyAgent.metric_columns()
    assert ToyAgent.metric_columns() == ["env_steps", "updates", "wall_time_s", "steps_per_s", "episodes",
                                         "train_return", "train_length", "learn_calls", "eval_return"]
    evals = [r["eval_return"] for r in rows]
    assert evals[0] != evals[0] and evals[1] == evals[1] and evals[3] == evals[3]  # NaN except every 200 steps
    assert rows[-1]["learn_calls"] == 100 and result.history == rows
    assert sum(r["episodes"] for r in rows) > 0


def test_stop_when_solved_and_stop_at():
    agent = toy(solve_threshold=0.0, stop_when_solved=True)
    result = agent.train()
    assert result.solved and result.steps_to_solve == 200 and agent.env_steps == 200
    agent = toy()
    assert agent.train(stop_at=100).env_steps == 100
    with pytest.raises(ValueError, match="`stop_at`"):
        agent.train(stop_at=-1)
    with pytest.raises(ValueError, match="`callback`"):
        agent.train(callback=3)


def test_loop_refuses_hooks_that_make_no_progress():
    class Stuck(ToyAgent):
        def collect(self):
            pass

    with pytest.raises(RuntimeError, match="must advance env_steps"):
        Stuck(ToyConfig(device="cpu", num_envs=2)).train()


def test_checkpoint_round_trip_and_tags(tmp_path):
    agent = toy()
    agent.train(stop_at=200)
    path = tmp_path / "toy.pt"
    agent.save(path)
    state = read_checkpoint(path)
    assert state["format"] == CHECKPOINT_FORMAT and state["algorithm"] == "toy" and state["config"]["width"] == 8
    clone = ToyAgent.load(path)
    assert clone.env_steps == 200 and clone.learn_calls == 50
    for a, b in zip(agent.net.parameters(), clone.net.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="is a 'toy' checkpoint, not 'dqn'"):
        DQN.load(path)
    with pytest.raises(ValueError, match="unknown algorithm 'toy'"):
        Agent.load(path)  # the registry does not know the toy
    with pytest.raises(ValueError, match="`path`"):
        agent.save(tmp_path / "missing" / "x.pt")

    with pytest.raises(RuntimeError, match="reuses the frame's keys"):
        class Clash(ToyAgent):  # noqa: F841  (refused when the class is made)
            checkpoint_attrs = ("net", "extra")


def test_base_load_picks_the_class_and_reads_format_1(tmp_path):
    dqn = DQN(DQNConfig(device="cpu", num_envs=4, hidden_sizes=(16,), seed=4))
    path = tmp_path / "dqn.pt"
    dqn.save(path)
    assert type(Agent.load(path)) is DQN
    old = legacy_layout(dqn.state_dict(), format=1)  # written before the frame: untagged, DQN's
    torch.save(old, tmp_path / "v1.pt")
    loaded = Agent.load(tmp_path / "v1.pt")
    assert type(loaded) is DQN and torch.equal(loaded.q.head.weight, dqn.q.head.weight)
    torch.save({**old, "format": 99}, tmp_path / "v99.pt")
    with pytest.raises(ValueError, match="not an rltorch agent checkpoint"):
        DQN.load(tmp_path / "v99.pt")


def test_registry():
    assert ALGORITHMS["dqn"] is DQN and algorithm_class("dqn") is DQN
    for name, cls in ALGORITHMS.items():
        assert cls.name == name and issubclass(cls.config_class, RunConfig)
    with pytest.raises(ValueError, match="unknown algorithm 'nope'; known: (.*, )?dqn"):
        algorithm_class("nope")
    with pytest.raises(TypeError, match="`config` must be a DQNConfig"):
        DQN(ToyConfig(device="cpu"))


def test_docstrings_become_help_and_strings_become_values():
    docs = field_docs(ToyConfig)
    assert docs["width"] == "Hidden width." and "scale" not in docs
    assert docs["num_envs"].startswith("Environments stepped in parallel")  # inherited from RunConfig
    assert parse_field(ToyConfig, "width", "12") == 12
    assert parse_field(DQNConfig, "hidden_sizes", "64, 32") == (64, 32)
    assert parse_field(DQNConfig, "hidden_sizes", "[64,32]") == (64, 32)
    assert parse_field(DQNConfig, "max_grad_norm", "none") is None
    assert parse_field(DQNConfig, "double_dqn", "False") is False
    with pytest.raises(ValueError, match="`double_dqn` must be true or false"):
        parse_field(DQNConfig, "double_dqn", "maybe")
    with pytest.raises(ValueError, match="unknown field nope"):
        parse_field(DQNConfig, "nope", "1")
    from rltorch.cli import _config_flags

    parser = argparse.ArgumentParser()
    _config_flags(parser, ToyConfig)
    text = parser.format_help()
    assert "--width N" in text and "Hidden width. (default: 8)" in text
    assert "scale (number) (default: 1.0)" in text  # generated help for a field without a docstring
    args = parser.parse_args(["--no-compile", "--scale", "2"])
    assert vars(args) == {"compile": False, "scale": "2"}


def test_config_round_trip_and_errors_name_the_field():
    config = ToyConfig(width=3, device="cpu")
    assert ToyConfig.from_dict(config.to_dict()) == config
    assert [f.name for f in dataclasses.fields(ToyConfig)][:3] == ["env_id", "env_backend", "num_envs"]
    with pytest.raises(ValueError, match="ToyConfig: `width` must be an integer, got 2.5"):
        ToyConfig(width=2.5)
    with pytest.raises(ValueError, match="unknown field"):
        ToyConfig.from_dict({"widht": 3})
    config.width = 0.5  # assignment is not checked; validate() is, and changes nothing when it fails
    with pytest.raises(ValueError, match="`width`"):
        config.validate()
    assert config.width == 0.5


def test_deterministic_act_uses_eval_mode():
    agent = toy()
    agent.net = nn.Sequential(mlp(4, [8], 2, dropout=0.5), ArgMax())
    obs = torch.randn(64, 4)
    assert torch.equal(agent.act(obs), agent.act(obs)) and agent.net.training
