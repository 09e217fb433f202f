"""The DQN agent: learning, exact resume, export, config and input errors (the CLI: tests/test_cli.py)."""

import os
import subprocess
import sys

import gymnasium as gym
import pytest
import torch

from rltorch.agents import DQN, DQNConfig


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
    code = (
        "import sys; sys.modules['rltorch'] = None\n"  # rltorch's Python code is not importable here
        "import torch\n"
        f"obs = torch.load({str(tmp_path / 'obs.pt')!r})\n"
        f"a = torch.jit.load({ts!r})(obs)\n"
        f"b = torch.export.load({pt2!r}).module()(obs)\n"
        f"torch.save((a, b), {str(tmp_path / 'out.pt')!r})\n"
    )
    torch.save(obs, tmp_path / "obs.pt")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    a, b = torch.load(tmp_path / "out.pt")
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
