"""The shared agent frame (rltorch/agents/base.py, config.py): the loop's hooks and cadence, checkpoints
tagged with the algorithm, the registry, and configs read as command-line flags."""

import argparse
import dataclasses
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rltorch.agents import ALGORITHMS, DQN, Agent, DQNConfig, RunConfig, algorithm_class
from rltorch.agents.base import CHECKPOINT_FORMAT, EnvDataError, read_checkpoint
from rltorch.agents.config import field_docs, parse_field
from rltorch.config import Unit
from rltorch.nn import mlp
from tests.checks import assert_same_state, legacy_layout


@dataclass(kw_only=True)
class ToyConfig(RunConfig):
    """A config for the toy agent."""

    width: int = 8
    """Hidden width."""
    scale: float = 1.0
    rate: Unit = 0.5
    """A rate."""


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
        class Clash(ToyAgent):
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
    # Bounds declared on a field are in its help and checked like its type, naming it.
    assert "--rate X" in text and "A rate. (must lie in [0, 1]; default: 0.5)" in " ".join(text.split())
    assert parse_field(ToyConfig, "rate", "0.25") == 0.25
    with pytest.raises(ValueError, match="ToyConfig: `rate` must lie in \\[0, 1\\], got 2.0"):
        ToyConfig(rate=parse_field(ToyConfig, "rate", "2"))
    with pytest.raises(ValueError, match="`rate` must be a finite number"):
        ToyConfig(rate=float("nan"))


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


# ---------------------------------------------------------------- seeding, registry, names


def test_building_agents_leaves_the_callers_random_stream_alone(tmp_path):
    from rltorch.agents import BC, PPO, BCConfig, PPOConfig

    torch.manual_seed(123)
    before = torch.get_rng_state()
    agents = [DQN(DQNConfig(device="cpu", num_envs=4, seed=5)), PPO(PPOConfig(device="cpu", num_envs=4, seed=5)),
              BC(BCConfig(device="cpu", num_envs=4, seed=5))]
    assert torch.equal(torch.get_rng_state(), before)
    # The same seed still gives the same initial weights, whatever the caller's RNG holds.
    torch.manual_seed(999)
    again = DQN(DQNConfig(device="cpu", num_envs=4, seed=5))
    assert all(torch.equal(a, b) for a, b in zip(agents[0].q.parameters(), again.q.parameters()))
    # Loading no longer restores the process-wide RNG state that format 1 and 2 files carry.
    agents[0].save(tmp_path / "dqn.pt")
    torch.save(legacy_layout(agents[0].state_dict(), format=2), tmp_path / "v2.pt")
    state = torch.get_rng_state()
    for path in ("dqn.pt", "v2.pt"):
        DQN.load(tmp_path / path).close()
        assert torch.equal(torch.get_rng_state(), state)
    for agent in (*agents, again):
        agent.close()


def test_registry_imports_on_first_use_and_takes_new_algorithms():
    import subprocess
    import sys

    code = ("import sys, rltorch.agents as a; print('rltorch.distributed' in sys.modules, 'apex' in a.ALGORITHMS); "
            "print(a.ALGORITHMS['apex'].__module__, 'rltorch.distributed' in sys.modules, 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "rltorch.distributed.apex", "True", "False"]
    from rltorch.agents import register

    register("toy", "tests.test_agent_frame:ToyAgent")
    try:
        assert algorithm_class("toy") is ToyAgent and "toy" in ALGORITHMS
        with pytest.raises(TypeError, match="Agent"):
            register("bad", 42)
    finally:
        del ALGORITHMS["toy"]
    with pytest.warns(DeprecationWarning, match="no longer needed"):
        from rltorch.agents import register_extensions

        register_extensions()


def test_learn_is_the_deprecated_name_of_update():
    agent = toy()
    with pytest.warns(DeprecationWarning, match="call update"):
        agent.learn()
    assert agent.learn_calls == 1

    class OldStyle(ToyAgent):  # an algorithm written when the hook was called learn()
        update = Agent.update

        def learn(self):
            self.learn_calls += 1
            self.updates += 1

    old = OldStyle(ToyConfig(device="cpu", num_envs=2, total_steps=8, eval_interval=100, log_interval=100))
    with pytest.warns(DeprecationWarning, match="rename it update"):
        assert old.train().updates == 4


# ---------------------------------------------------------------- checkpoints: sections, old formats, checksums


def test_a_checkpoint_holds_the_declared_attributes_in_sections():
    state = toy().state_dict()
    assert set(state) == {"format", "algorithm", "config", "frame", "toy"}
    assert set(state["toy"]) == {"net", "learn_calls"} and "torch_rng" not in state["frame"]
    dqn = DQN(DQNConfig(device="cpu", num_envs=4))
    assert set(dqn.state_dict()["dqn"]) == {"q", "target", "optimizer", "schedule"}
    assert set(dqn.state_dict(include_buffer=True)["dqn"]) == {"q", "target", "optimizer", "schedule", "buffer"}
    dqn.close()


@pytest.mark.parametrize("algorithm", ["dqn", "ppo", "bc"])
def test_format_2_files_with_the_old_layout_still_load(tmp_path, algorithm):
    from rltorch.agents import BC, PPO, BCConfig, PPOConfig

    small = {"dqn": (DQN, DQNConfig(device="cpu", num_envs=4, total_steps=600, learning_starts=200, batch_size=32,
                                    eval_interval=10**6, hidden_sizes=(16,))),
             "ppo": (PPO, PPOConfig(device="cpu", num_envs=4, num_steps=16, total_steps=256, eval_interval=10**6)),
             "bc": (BC, BCConfig(device="cpu", num_envs=16, num_samples=500, total_steps=1500, eval_interval=10**6))}
    klass, config = small[algorithm]
    agent = klass(config)
    agent.train(stop_at=config.total_steps // 2)
    old = legacy_layout(agent.state_dict(include_buffer=True), format=2)
    assert "frame" not in old and "torch_rng" in old  # the layout of rltorch's format 2
    torch.save(old, tmp_path / "v2.pt")
    loaded = Agent.load(tmp_path / "v2.pt")
    assert type(loaded) is klass and loaded.env_steps == agent.env_steps and loaded.updates == agent.updates
    assert_same_state(agent.state_dict(include_buffer=True), loaded.state_dict(include_buffer=True))
    # ...and the run goes on from it exactly as from the live agent (but for the clock).
    agent.train()
    loaded.train()
    assert_same_state(*(_timeless(a.state_dict(include_buffer=True)) for a in (agent, loaded)))
    agent.close()
    loaded.close()


def _timeless(value):
    """``value`` without the wall-clock entries a classifier's history keeps."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in ("wall_time_s", "samples_per_s")}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _flip_a_tensor_byte(path):
    import zipfile

    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        at = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))


def test_a_flipped_byte_is_caught_naming_the_file(tmp_path):
    agent = DQN(DQNConfig(device="cpu", num_envs=4, hidden_sizes=(16,)))
    path = tmp_path / "ckpt.pt"
    agent.save(path)
    _flip_a_tensor_byte(path)
    torch.load(path, weights_only=True)  # torch reads it without noticing
    with pytest.raises(ValueError, match="is damaged") as info:
        DQN.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    agent.close()


def test_save_and_export_to_an_unwritable_place_name_the_path(tmp_path):
    import os

    agent = toy()
    for target in (tmp_path / "no" / "dir.pt", tmp_path):
        for call in (lambda p: agent.save(p), lambda p: agent.export(p)):
            with pytest.raises(ValueError, match="`path`") as info:
                call(target)
            assert str(target) in str(info.value)
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="not writable"):
            agent.save(locked / "x.pt")
    with pytest.raises(ValueError, match="`path`") as info:
        agent.export("/proc/rltorch-policy.ts")
    assert "/proc/rltorch-policy.ts" in str(info.value)
    assert os.listdir(tmp_path) == (["locked"] if os.geteuid() != 0 else [])


# ---------------------------------------------------------------- the env the agent is given


def test_a_config_num_envs_other_than_the_envs_is_refused_before_anything_runs():
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    from rltorch.agents import BC, PPO, BCConfig, PPOConfig
    from rltorch.distributed import Apex, ApexConfig

    for config_envs, env_envs in ((4, 8), (8, 4)):
        for klass, config in ((PPO, PPOConfig(num_envs=config_envs, num_steps=16, device="cpu")),
                              (DQN, DQNConfig(num_envs=config_envs, device="cpu")),
                              (BC, BCConfig(num_envs=config_envs, device="cpu")),
                              (Apex, ApexConfig(num_envs=config_envs, device="cpu"))):  # refused before Ray starts
            env = CartPoleVectorEnv(num_envs=env_envs)
            with pytest.raises(ValueError, match=f"`num_envs` is {config_envs} but the env given steps {env_envs}"):
                klass(config, env=env)
            env.close()
    agent = PPO(PPOConfig(num_envs=8, num_steps=16, device="cpu"), env=CartPoleVectorEnv(num_envs=8))
    assert agent.env.num_envs == 8
    agent.close()


class Poison(gym.vector.VectorWrapper):
    """Returns a NaN or infinite reward, or a NaN observation, on its ``at``-th step."""

    def __init__(self, env, at: int, what: str):
        super().__init__(env)
        self.at, self.what, self.calls = at, what, 0

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.calls += 1
        if self.calls == self.at:
            obs, reward = np.array(obs), np.array(reward, dtype=np.float64)
            if self.what == "nan reward":
                reward[1] = np.nan
            elif self.what == "inf reward":
                reward[0] = np.inf
            else:
                obs[2, 1] = np.nan
        return obs, reward, terminated, truncated, info


@pytest.mark.parametrize("what", ["nan reward", "inf reward", "nan obs"])
@pytest.mark.parametrize("algorithm", ["ppo", "dqn", "dqn-prioritized"])
def test_non_finite_env_data_stops_training_naming_the_env_and_the_step(what, algorithm):
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    from rltorch.agents import PPO, PPOConfig

    common = dict(num_envs=4, device="cpu", total_steps=400, log_interval=100, eval_interval=10**6)
    if algorithm == "ppo":
        agent = PPO(PPOConfig(num_steps=5, **common), env=Poison(CartPoleVectorEnv(num_envs=4), 30, what))
    else:
        agent = DQN(DQNConfig(learning_starts=32, batch_size=32, prioritized=algorithm.endswith("prioritized"),
                              hidden_sizes=(16,), **common), env=Poison(CartPoleVectorEnv(num_envs=4), 30, what))
    rows = []
    with pytest.raises(EnvDataError) as info:
        agent.train(callback=rows.append)
    # Step 30 of the env follows env step 29 * 4 = 116: the row at 100 went out, the one at 200 did not.
    assert "env 'CartPole-v1'" in str(info.value) and "after env step 116" in str(info.value)
    assert [row["env_steps"] for row in rows] == [100]
    agent.close()


def test_rltorchs_cartpole_is_not_watched_and_other_envs_are():
    from rltorch.envs import CartPoleVecEnv

    assert not toy()._watch_env_data
    wrapped = ToyAgent(ToyConfig(device="cpu", num_envs=2), env=gym.vector.VectorWrapper(CartPoleVecEnv(2)))
    assert wrapped._watch_env_data
