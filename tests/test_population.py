"""PPO populations: agents that never influence each other, one agent as the same code, resume bit for bit,
and the command line (sweeps, run files, export of one agent)."""

import copy
import json
import os
import subprocess
import sys

import pytest
import torch

from rltorch.agents import PPO, PPOConfig
from tests.checks import run_without_rltorch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def population(**overrides) -> PPO:
    # A low bar so agents solve, stop and leave the batch at different evaluations within a short run.
    values = dict(device="cpu", num_envs=4, num_steps=32, update_epochs=2, num_minibatches=4, hidden_sizes=(16, 16),
                  learning_rate=3e-3, total_steps=128 * 24, eval_interval=256, eval_episodes=8, log_interval=256,
                  solve_threshold=100.0)
    values.update(overrides)
    return PPO(PPOConfig(**values))


def agent_state(agent: PPO, k: int) -> list[torch.Tensor]:
    return [p.detach()[k].clone() for p in agent.net.parameters()]


def test_changing_one_agents_seed_changes_nothing_in_the_others():
    runs = []
    for seeds in ("seed=0,1,2,3", "seed=0,1,2,9"):
        agent = population(sweep=(seeds,))
        rows = []
        result = agent.train(callback=rows.append)
        runs.append((agent, result, rows))
    (a, ra, rows_a), (b, rb, rows_b) = runs
    # Agent 3 left the batch at 768 env steps in one run and at 1536 in the other, while agents 0 and 2 still
    # trained: the batch they trained in shrank at different times (the bar is low, so agents solve early).
    assert [o["env_steps"] for o in ra.agents] == [1280, 512, 1792, 768]
    assert [o["env_steps"] for o in rb.agents] == [1280, 512, 1792, 1536]
    for k in range(3):
        assert ra.agents[k] | {"time_to_solve_s": 0} == rb.agents[k] | {"time_to_solve_s": 0}
        assert all(torch.equal(x, y) for x, y in zip(agent_state(a, k), agent_state(b, k)))
        keys = ("env_steps", "episodes", "train_return", "policy_loss", "value_loss", "entropy", "eval_return")
        mine = [[r[key] for key in keys] for r in rows_a if r["agent"] == k]
        assert mine == [[r[key] for key in keys] for r in rows_b if r["agent"] == k]
    assert not all(torch.equal(x, y) for x, y in zip(agent_state(a, 3), agent_state(b, 3)))


def test_a_sweep_gives_each_agent_its_settings_and_seeds():
    agent = population(num_agents=2, sweep=("learning_rate=1e-3,3e-3", "ent_coef=0,0.01"), total_steps=128)
    assert agent.num_agents == 8 and [m.seed for m in agent.members] == [0, 1] * 4
    assert agent.per_agent("learning_rate").tolist() == [1e-3] * 4 + [3e-3] * 4
    assert agent.per_agent("ent_coef").tolist() == [0, 0, 0.01, 0.01] * 2
    assert agent.optimizer.lr.tolist() == [1e-3] * 4 + [3e-3] * 4
    # Agents with the same seed start from the same weights; the env rows differ.
    assert all(torch.equal(x, y) for x, y in zip(agent_state(agent, 0), agent_state(agent, 6)))
    with pytest.raises(ValueError, match="hidden_sizes sets the shape"):
        PPOConfig(sweep=("hidden_sizes=32,64",))
    from rltorch.envs import CartPoleVecEnv

    with pytest.raises(ValueError, match="4 x 3 agents = 12 but the env given steps 4 envs"):
        PPO(PPOConfig(num_agents=3, num_envs=4, device="cpu"), env=CartPoleVecEnv(4))


def test_resume_reproduces_the_uninterrupted_population(tmp_path):
    full = population(sweep=("seed=0,1,2,3",), target_kl=0.05, normalize_obs=True)
    full.train()
    half = population(sweep=("seed=0,1,2,3",), target_kl=0.05, normalize_obs=True)
    half.train(stop_at=1000)  # agents 1 and 2 solved at 256, agent 3 at 768; agent 0 still trains
    assert half.active.tolist() == [0]
    path = half.save(tmp_path / "half.pt")
    resumed = PPO.load(path)
    resumed.train()
    assert [o["solved"] for o in resumed.outcomes] == [o["solved"] for o in full.outcomes]
    assert [o["steps_to_solve"] for o in resumed.outcomes] == [o["steps_to_solve"] for o in full.outcomes]
    for x, y in zip(resumed.net.parameters(), full.net.parameters()):
        assert torch.equal(x, y)
    with pytest.raises(ValueError, match="population"):
        PPO(PPOConfig(device="cpu", num_envs=4, num_steps=32, hidden_sizes=(16, 16))).load_state_dict(
            torch.load(path, weights_only=True) | {})


def cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "rltorch", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_the_command_line_trains_a_sweep_and_exports_one_agent(tmp_path):
    flags = ["--num-envs", "4", "--num-steps", "32", "--update-epochs", "1", "--num-minibatches", "2",
             "--hidden-sizes", "16,16", "--total-steps", "512", "--eval-interval", "256", "--eval-episodes", "4",
             "--log-interval", "256", "--device", "cpu", "--quiet", "--no-stop"]
    bad = cli("train", "ppo", "--agents", "2", "--sweep", "num_steps=16,32", *flags, cwd=tmp_path)
    assert bad.returncode == 2 and "num_steps sets the shape" in bad.stderr and len(bad.stderr.splitlines()) <= 2
    assert not os.path.exists(tmp_path / "runs")
    proc = cli("train", "ppo", "--agents", "2", "--sweep", "learning_rate=1e-3,3e-3", "--run-dir", "run", *flags,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "run"
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "result.json", "learning_curves.png",
                 "sensitivity_learning_rate.png"):
        assert (run / name).exists(), name
    result = json.loads((run / "result.json").read_text())
    assert result["num_agents"] == 4 and result["sweep"] == {"learning_rate": [1e-3, 3e-3]}
    assert [a["learning_rate"] for a in result["agents"]] == [1e-3, 1e-3, 3e-3, 3e-3]
    assert len(result["settings"]) == 2 and "iqm" in result["aggregate"]["steps_to_solve"]
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["agent", "seed", "sweep.learning_rate"]
    assert cli("export", str(run), cwd=tmp_path).returncode == 2  # which agent?
    for fmt in ("torchscript", "export"):
        proc = cli("export", str(run), "--agent", "best", "--format", fmt, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    agent = PPO.load(run / "checkpoint.pt")
    best = agent.best_agent()
    obs = torch.randn(7, 4)
    scripted, exported = run_without_rltorch(tmp_path, run / "policy.ts", run / "policy.pt2", obs)
    assert torch.equal(scripted, agent.act(obs, agent=best)) and torch.equal(exported, scripted)


def dqn(**overrides):
    from rltorch.agents import DQN, DQNConfig

    values = dict(device="cpu", num_envs=4, hidden_sizes=(16, 16), batch_size=16, learning_starts=64,
                  buffer_size=512, updates_per_step=0.5, prioritized=True, total_steps=800, eval_interval=200,
                  eval_episodes=4, log_interval=200, solve_threshold=20.0, eps_decay_steps=400)
    values.update(overrides)
    return DQN(DQNConfig(**values))


def test_dqn_population_agents_are_independent_and_one_agent_is_the_lone_dqn():
    runs = [(lambda agent: (agent, agent.train()))(dqn(sweep=(seeds,))) for seeds in ("seed=0,1,2,3", "seed=0,1,2,9")]
    (a, ra), (b, rb) = runs
    assert a.buffer.num_buffers == 4 and a.updates > 0
    for k in range(3):
        assert ra.agents[k]["steps_to_solve"] == rb.agents[k]["steps_to_solve"]
        assert all(torch.equal(x[k], y[k]) for x, y in zip(a.q.parameters(), b.q.parameters()))
    assert not all(torch.equal(x[3], y[3]) for x, y in zip(a.q.parameters(), b.q.parameters()))
    # Agents that solved stopped learning: their networks are those they solved with.
    solved = [k for k, o in enumerate(ra.agents) if o["solved"]]
    assert solved and a.active.numel() == 4 - len(solved)
    lone = dqn(total_steps=400)
    assert lone.buffer.num_buffers is None and lone.optimizer.lone
    lone.train()


def test_a_dqn_population_computes_only_the_agents_still_learning():
    agent = dqn(sweep=("seed=0,1,2,3",), total_steps=200, stop_when_solved=False)
    agent.train()
    agent._retire([1, 3])
    assert agent.learning_rows.tolist() == [0, 2]
    batch = agent.buffer.sample(16)
    before = [p.detach().clone() for p in agent.q.parameters()]
    optimizer = copy.deepcopy(agent.optimizer.state_dict())
    td_rows = agent.gradient_step(batch)
    after_rows = [p.detach().clone() for p in agent.q.parameters()]
    # The same step computed over every agent (the agents that stopped masked in the optimiser only).
    with torch.no_grad():
        for p, old in zip(agent.q.parameters(), before):
            p.copy_(old)
    agent.optimizer.load_state_dict(optimizer)
    agent.learning_rows = None
    td_all = agent.gradient_step(batch)
    after_all = [p.detach() for p in agent.q.parameters()]
    for k in (0, 2):
        assert torch.equal(td_rows[k], td_all[k])
        assert all(torch.equal(x[k], y[k]) and not torch.equal(x[k], old[k])
                   for x, y, old in zip(after_rows, after_all, before))
    for k in (1, 3):
        assert bool((td_rows[k] == 0).all()) and not bool((td_all[k] == 0).all())
        assert all(torch.equal(x[k], old[k]) for x, old in zip(after_rows, before))
    # The update loop changes only the learning agents' priorities.
    agent.after_load()
    trees = agent.buffer.tree.tree.clone()
    agent.schedule.collected(32)
    agent.update()
    changed = [not torch.equal(agent.buffer.tree.tree[k], trees[k]) for k in range(4)]
    assert changed == [True, False, True, False]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("sweep", [(), ("seed=0,1,2,3",)])
def test_cuda_graphs_replay_what_the_eager_steps_compute(sweep):
    # Low bar: population agents solve and leave the batch mid-run, so the graphs are captured again.
    runs = []
    for graphs in (False, True):
        agent = population(device="cuda", cuda_graphs=graphs, sweep=sweep)
        rows = []
        result = agent.train(callback=rows.append)
        runs.append((agent, result, rows))
    (eager, r1, rows1), (graphed, r2, rows2) = runs
    assert graphed._graphs is not None and eager._graphs is None
    counts = ("env_steps", "updates", "iterations")
    assert [getattr(graphed, c) for c in counts] == [getattr(eager, c) for c in counts]
    assert [o["steps_to_solve"] for o in r2.agents] == [o["steps_to_solve"] for o in r1.agents]
    for x, y in zip(graphed.net.parameters(), eager.net.parameters()):
        torch.testing.assert_close(x, y)
    keys = ("env_steps", "episodes", "train_return", "policy_loss", "eval_return")
    assert [[r[k] for k in keys] for r in rows2] == pytest.approx([[r[k] for k in keys] for r in rows1], nan_ok=True)
