"""The DQN agent and the command line: learning, exact resume, export, flags and errors."""

import json
import os
import subprocess
import sys

import gymnasium as gym
import pytest
import torch

from rltorch.agents import DQN, DQNConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


# ---------------------------------------------------------------- command line


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "rltorch", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_train_eval_export(tmp_path):
    run_dir = tmp_path / "run"
    proc = cli("train", "dqn", "--total-steps", "2000", "--seed", "2", "--no-stop", "--quiet", "--run-dir",
               str(run_dir), "--set", "eval_interval=1000", "--set", "eval_episodes=5", "--set", "learning_starts=500")
    assert proc.returncode == 0, proc.stderr
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "result.json"):
        assert (run_dir / name).exists(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["seed"] == 2 and config["eval_interval"] == 1000
    result = json.loads((run_dir / "result.json").read_text())
    assert result["env_steps"] >= 2000
    proc = cli("eval", str(run_dir), "--episodes", "7")
    assert proc.returncode == 0, proc.stderr
    assert "greedy return over 7 episodes" in proc.stdout
    proc = cli("export", str(run_dir))
    assert proc.returncode == 0 and (run_dir / "policy.ts").exists(), proc.stderr


def test_cli_errors(tmp_path):
    proc = cli("train", "dqn", "--bogus-flag")
    assert proc.returncode == 2 and "unrecognized arguments: --bogus-flag" in proc.stderr
    proc = cli("train", "dqn", "--env", "NoSuchEnv-v9", "--quiet", "--run-dir", str(tmp_path / "r1"))
    assert proc.returncode == 2 and "unknown or unusable env id 'NoSuchEnv-v9'" in proc.stderr
    proc = cli("train", "dqn", "--set", "gamma=2", "--run-dir", str(tmp_path / "r2"))
    assert proc.returncode == 2 and "gamma must lie in [0, 1]" in proc.stderr
    proc = cli("train", "dqn", "--set", "nonsense", "--run-dir", str(tmp_path / "r3"))
    assert proc.returncode == 2 and "KEY=VALUE" in proc.stderr
    if not torch.cuda.is_available():
        proc = cli("train", "dqn", "--device", "cuda", "--run-dir", str(tmp_path / "r4"))
        assert proc.returncode == 2 and "needs CUDA" in proc.stderr
    proc = cli("eval", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli("eval", str(empty))
    assert proc.returncode == 2 and "no checkpoint" in proc.stderr
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "checkpoint.pt").write_bytes(b"definitely not a checkpoint")
    proc = cli("eval", str(corrupt))
    assert proc.returncode == 2 and "not a readable rltorch checkpoint" in proc.stderr
    proc = cli("train", "dqn", "--config", str(tmp_path / "nope.toml"))
    assert proc.returncode == 2 or "does not exist" in proc.stderr


def test_cli_config_file(tmp_path):
    cfg = tmp_path / "fast.toml"
    cfg.write_text('[dqn]\ntotal_steps = 600\nlearning_starts = 200\neval_interval = 600\neval_episodes = 3\n'
                   'hidden_sizes = [32, 32]\nstop_when_solved = false\n')
    proc = cli("train", "dqn", "--config", str(cfg), "--quiet", "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["hidden_sizes"] == [32, 32] and config["total_steps"] == 600
