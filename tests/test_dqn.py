"""The DQN agent: learning, exact resume, export, config and input errors (the CLI: tests/test_cli.py)."""

import copy

import gymnasium as gym
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rltorch.agents import DQN, DQNConfig
from tests.checks import (
    assert_same_state,
    check_config_case,
    config_dicts,
    run_without_rltorch,
)


def small_config(**overrides) -> DQNConfig:
    values = dict(num_envs=8, seed=3, device="cpu", total_steps=4_000, learning_starts=500, batch_size=64,
                  buffer_size=10_000, eps_decay_steps=2_000, eval_interval=2_000, eval_episodes=10,
                  stop_when_solved=False, log_interval=1_000, hidden_sizes=(64, 64))
    values.update(overrides)
    return DQNConfig(**values)


def params(agent: DQN) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.q.parameters()]


def test_short_run_improves_the_greedy_return():
    torch.set_num_threads(1)  # one thread: the same float sums on every machine
    agent = DQN(small_config(total_steps=12_000, learning_rate=2e-3))
    before = agent.evaluate(20, seed=99)
    result = agent.train()
    after = agent.evaluate(20, seed=99)
    assert result.env_steps >= 12_000 and result.updates > 0
    assert after >= max(2 * before, 60.0), (before, after, result.history[-3:])
    agent.close()


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(n_step=3, prioritized=True, dueling=True, target_update="hard", target_update_interval=50, loss="mse"),
])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, overrides):
    torch.set_num_threads(1)
    full = DQN(small_config(total_steps=3_000, **overrides))
    full.train()
    half = DQN(small_config(total_steps=3_000, **overrides))
    half.train(stop_at=1_504)  # a stop in the middle of every schedule
    assert half.env_steps == 1_504
    path = tmp_path / "ckpt.pt"
    half.save(path, include_buffer=True)
    resumed = DQN.load(path)
    resumed.train()
    assert resumed.env_steps == full.env_steps and resumed.updates == full.updates
    for a, b in zip(params(resumed), params(full)):
        assert torch.equal(a, b)
    for agent in (full, half, resumed):
        agent.close()


def test_export_loads_without_rltorch(tmp_path):
    agent = DQN(small_config(total_steps=1_000))
    agent.train()
    obs = torch.randn(32, 4)
    expected = agent.act(obs)
    ts = agent.export(tmp_path / "policy.ts", format="torchscript")
    pt2 = agent.export(tmp_path / "policy.pt2", format="export")
    a, b = run_without_rltorch(tmp_path, ts, pt2, obs)
    assert torch.equal(a, expected) and torch.equal(b, expected)
    agent.close()


def test_runs_on_gymnasium_cartpole_with_next_step_resets():
    # gymnasium's own vector CartPole (NEXT_STEP autoreset, numpy): reset rows must never be stored.
    agent = DQN(small_config(env_backend="gymnasium", total_steps=2_000, n_step=3))
    assert agent.env.autoreset_mode == gym.vector.AutoresetMode.NEXT_STEP
    agent.train()
    # No stored transition jumps from a terminal state: every stored reward is 1 per step summed over <= 3 steps.
    n = len(agent.buffer)
    rewards = agent.buffer.reward[:n]
    assert n > 0 and bool(((rewards >= 1.0) & (rewards <= 1 + 0.99 + 0.99**2 + 1e-5)).all())
    agent.close()


def test_runs_on_other_gymnasium_envs():
    agent = DQN(small_config(env_id="Acrobot-v1", total_steps=600, learning_starts=200, eval_episodes=2,
                             eval_interval=10_000))
    assert agent.env.num_actions == 3
    agent.train()
    agent.close()


def test_config_errors():
    with pytest.raises(ValueError, match="gamma"):
        DQN(small_config(gamma=1.5))
    with pytest.raises(ValueError, match="unknown field"):
        DQNConfig.from_dict({"learning_rat": 1e-3})
    with pytest.raises(ValueError, match="unknown or unusable env id"):
        DQN(small_config(env_id="NoSuchEnv-v9"))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            DQN(small_config(device="cuda"))


def test_act_on_an_empty_batch_returns_no_actions():
    agent = DQN(small_config())
    for deterministic in (True, False):
        actions = agent.act(torch.zeros(0, 4), deterministic=deterministic)
        assert actions.shape == (0,) and actions.dtype == torch.int64
    assert agent.act(torch.zeros(4)).shape == ()
    agent.close()


def test_config_rejects_what_it_cannot_mean():
    # Each names the field: non-finite floats, non-integers, bools for numbers, wrong choices.
    cases = {
        "learning_rate": [float("inf"), float("nan"), True, "0.1"],
        "batch_size": [64.5, float("inf"), True, "64"],
        "updates_per_step": [float("inf"), 0.0],
        "seed": [-1, 2**64, 1.5],
        "hidden_sizes": [(), (64, 0), (64.5,), "64"],
        "double_dqn": [1, "yes", None],
        "loss": ["l1", 1],
        "device": ["foo", "cuda:x"],
        "env_backend": ["numpy"],
        "max_grad_norm": [0.0, float("inf")],
    }
    for name, values in cases.items():
        for value in values:
            with pytest.raises(ValueError, match=f"`{name}"):
                DQNConfig(**{name: value})
    config = DQNConfig(total_steps=1e5, max_grad_norm=None, hidden_sizes=[32])  # whole floats count as integers
    assert config.total_steps == 100_000 and isinstance(config.total_steps, int) and config.hidden_sizes == (32,)


def state_snapshot(agent: DQN) -> dict:
    return copy.deepcopy(agent.state_dict(include_buffer=True))


def test_rejected_calls_leave_the_agent_unchanged(tmp_path):
    torch.set_num_threads(1)
    agent = DQN(small_config(total_steps=1_200, n_step=3, prioritized=True))
    agent.train()
    before = state_snapshot(agent)
    bad_obs = [torch.zeros(3, 5), torch.zeros(2, 2, 4), [["a", "b", "c", "d"]], object()]
    for obs in bad_obs:
        for deterministic in (True, False):
            with pytest.raises(ValueError, match="`obs`"):
                agent.act(obs, deterministic=deterministic)
    # A checkpoint of another architecture: rejected before anything is written.
    other = DQN(small_config(hidden_sizes=(32,)))
    with pytest.raises(ValueError, match="`q"):
        agent.load_state_dict(other.state_dict())
    # A checkpoint that fails midway (its buffer was built for another capacity): rolled back.
    bigger = DQN(small_config(total_steps=1_200, n_step=3, prioritized=True, buffer_size=20_000))
    bigger.train(stop_at=600)
    with pytest.raises(ValueError, match="nothing was changed"):
        agent.load_state_dict(bigger.state_dict(include_buffer=True))
    with pytest.raises(ValueError, match="'ppo' checkpoint"):
        agent.load_state_dict({**agent.state_dict(), "algorithm": "ppo"})
    with pytest.raises(ValueError, match="`episodes`"):
        agent.evaluate(0)
    with pytest.raises(ValueError, match="`format`"):
        agent.export(tmp_path / "p", format="onnx")
    assert_same_state(before, state_snapshot(agent))
    for a in (agent, other, bigger):
        a.close()


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling this would create the marker file


def test_load_refuses_a_checkpoint_that_would_run_code(tmp_path):
    agent = DQN(small_config())
    state = agent.state_dict()
    marker = tmp_path / "pwned"
    state["optimizer"] = _Exploit(marker)
    path = tmp_path / "evil.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match="never runs code") as info:
        DQN.load(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    agent.close()


def test_gymnasium_resume_does_not_splice_episodes(tmp_path):
    """gymnasium's envs cannot be restored: the resumed run starts fresh episodes, so the n-step window
    of the interrupted ones is dropped instead of being completed with the new episodes' rewards."""
    torch.set_num_threads(1)
    config = small_config(env_backend="gymnasium", total_steps=2_000, n_step=3)
    agent = DQN(config)
    agent.train(stop_at=1_000)
    path = tmp_path / "ckpt.pt"
    agent.save(path, include_buffer=True)
    window = agent.buffer.state_dict()["window"]["tensors"]
    interrupted_obs = window["obs"][window["pending"]]
    assert len(interrupted_obs) > 0  # there are unfinished n-step entries to splice
    resumed = DQN.load(path)
    stored = len(resumed.buffer)
    for _ in range(6):
        resumed.collect()
    new_obs = resumed.buffer.obs[stored:len(resumed.buffer)]
    assert len(new_obs) > 0
    spliced = (new_obs.unsqueeze(1) == interrupted_obs.unsqueeze(0)).all(-1).any()
    assert not bool(spliced), "a transition from the interrupted episode was completed in the new one"
    rewards = resumed.buffer.reward[stored:len(resumed.buffer)]
    assert bool(((rewards >= 1.0) & (rewards <= 1 + 0.99 + 0.99**2 + 1e-5)).all())
    assert bool((resumed._episodes.episode_length <= 6).all())  # episode statistics restarted too
    # rltorch's env is restored: there the window is kept and the run continues bit for bit (see above).
    for a in (agent, resumed):
        a.close()


# Per field: a strategy of valid values and a list of invalid ones. Valid ranges keep the cross-field rules
# (buffer_size and learning_starts >= batch_size, eps_end <= eps_start) satisfied.
_INF, _NAN = float("inf"), float("nan")
CONFIG_FIELDS = {
    "num_envs": (st.integers(1, 64), [0, -1, 1.5, True, "4", _INF]),
    "seed": (st.integers(0, 2**63 - 1), [-1, 2**64, 1.5, False, _NAN]),
    "learning_rate": (st.floats(1e-6, 1.0), [0.0, -1.0, _INF, _NAN, True, "x"]),
    "batch_size": (st.integers(1, 256), [64.5, 0, True, _INF]),
    "buffer_size": (st.integers(256, 100_000), [255.5, "big", None]),
    "learning_starts": (st.integers(256, 5_000), [-1, _NAN]),
    "gamma": (st.floats(0.0, 1.0), [1.5, -0.1, _NAN, None]),
    "loss": (st.sampled_from(["huber", "mse"]), ["l1", 1, None]),
    "max_grad_norm": (st.none() | st.floats(0.1, 100.0), [0.0, -1.0, _INF]),
    "hidden_sizes": (st.lists(st.integers(1, 64), min_size=1, max_size=3), [[], [0], [1.5], "64", 64]),
    "double_dqn": (st.booleans(), [1, "true", None]),
    "target_update": (st.sampled_from(["soft", "hard"]), ["polyak"]),
    "device": (st.sampled_from(["cpu", "auto", "cuda:1"]), ["foo", 3, ""]),
    "updates_per_step": (st.floats(0.01, 4.0), [_INF, 0.0, -1.0]),
    "n_step": (st.integers(1, 10), [0, 2.5]),
    "eps_start": (st.floats(0.5, 1.0), [1.5, _NAN]),
    "eps_end": (st.floats(0.0, 0.5), [-0.1, _INF]),
    "tau": (st.floats(0.001, 1.0), [0.0, 1.5]),
    "solve_threshold": (st.none() | st.floats(-1e6, 1e6), [_INF, "475"]),
    "stop_when_solved": (st.booleans(), [0]),
    "env_id": (st.sampled_from(["CartPole-v1", "Acrobot-v1"]), ["", 7]),
}


@settings(max_examples=300, deadline=None)
@given(config_dicts(CONFIG_FIELDS))
def test_config_property(case):
    check_config_case(DQNConfig, case)
