"""rltorch/agents/offpolicy.py: the update schedule, exploration, TD targets and priorities, target updates and
buffers that DQN and Ape-X share, and an algorithm written on them in one file (tests/algorithms/linear_q.py):
it trains, resumes exactly, exports, and runs from `rltorch train` after one registry line."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from rltorch import ops
from rltorch.agents import ALGORITHMS, Agent, register
from rltorch.agents.offpolicy import (
    OffPolicyConfig,
    UpdateSchedule,
    epsilon_greedy,
    linear_schedule,
    polyak_update,
    q_and_target,
    replay_buffer,
    td_priorities,
    update_target,
)
from rltorch.replay import PrioritizedReplayBuffer, ReplayBuffer
from tests.algorithms.linear_q import LinearQ, LinearQConfig
from tests.checks import assert_same_state

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")]


def test_update_schedule_owes_updates_per_transition_and_carries_the_fraction():
    schedule = UpdateSchedule(updates_per_step=0.3, learning_starts=100)
    schedule.collected(16)
    assert schedule.owed(stored=50) == 0 and schedule.debt == 0.0  # before learning_starts nothing accrues
    owed = []
    for _ in range(4):
        schedule.collected(5)
        owed.append(schedule.owed(stored=200))
    assert owed == [1, 2, 1, 2] and schedule.debt == pytest.approx(0.0, abs=1e-12)
    schedule.collected(3)
    state = schedule.state_dict()
    other = UpdateSchedule(0.3, 100)
    other.load_state_dict(state)
    assert other.owed(200) == schedule.owed(200)
    for bad, field in (({"debt": -0.5, "pending": 0}, "schedule.debt"), ({"debt": 0.5, "pending": -1},
                       "schedule.pending"), ({"debt": "x", "pending": 0}, "schedule.debt"), ([], "schedule.debt")):
        before = other.state_dict()
        with pytest.raises(ValueError, match=f"`{field}`"):
            other.load_state_dict(bad)
        assert other.state_dict() == before


def test_epsilon_greedy_and_linear_schedule():
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(10_000, 3, generator=gen)
    assert torch.equal(epsilon_greedy(q, 0.0, gen), q.argmax(1))
    uniform = epsilon_greedy(q, 1.0, gen)
    counts = torch.bincount(uniform, minlength=3).float() / len(uniform)
    assert bool(((counts - 1 / 3).abs() < 0.03).all())
    mixed = epsilon_greedy(q, 0.25, torch.Generator().manual_seed(1))
    changed = (mixed != q.argmax(1)).float().mean().item()
    assert 0.25 * 2 / 3 - 0.03 < changed < 0.25 * 2 / 3 + 0.03  # a random action is the greedy one 1/3 of the time
    assert torch.equal(mixed, epsilon_greedy(q, 0.25, torch.Generator().manual_seed(1)))
    assert linear_schedule(1.0, 0.1, 100, 0) == 1.0 and linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 100, 10**6) == pytest.approx(0.1)


@pytest.mark.parametrize("double", [False, True])
def test_q_and_target_and_priorities_follow_the_td_target_op(double):
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    q, target_q = nn.Linear(4, 2), nn.Linear(4, 2)
    batch = SimpleNamespace(obs=torch.randn(32, 4, generator=gen), next_obs=torch.randn(32, 4, generator=gen),
                            action=torch.randint(0, 2, (32,), generator=gen), reward=torch.randn(32, generator=gen),
                            terminated=torch.rand(32, generator=gen) < 0.2, discount=torch.full((32,), 0.9))
    q_taken, target = q_and_target(q, target_q, batch, double)
    with torch.no_grad():
        next_q = target_q(batch.next_obs)
        next_action = q(batch.next_obs).argmax(1) if double else next_q.argmax(1)
        bootstrap = next_q.gather(1, next_action.unsqueeze(1)).squeeze(1)
    expected = batch.reward + 0.9 * bootstrap * (~batch.terminated).float()
    torch.testing.assert_close(target, expected)
    torch.testing.assert_close(q_taken, q(batch.obs).gather(1, batch.action.unsqueeze(1)).squeeze(1))
    assert q_taken.requires_grad and not target.requires_grad
    same, same_target = q_and_target(q, q, batch, double)
    torch.testing.assert_close(td_priorities(q, batch, double), (same - same_target).abs().detach())
    with torch.no_grad():
        alone = ops.td_target(batch.reward, batch.terminated, q(batch.next_obs), batch.discount)
    torch.testing.assert_close(same_target, alone)  # one network in both roles: plain max either way


def test_target_updates():
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.detach().clone() for p in target.parameters()]
    polyak_update(target, online, 0.25)
    for new, old, o in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(new, old + 0.25 * (o - old))
    hard = OffPolicyConfig(target_update="hard", target_update_interval=5)
    copied = nn.Linear(3, 2)
    update_target(copied, online, hard, updates=4)
    assert not torch.equal(copied.weight, online.weight)
    update_target(copied, online, hard, updates=5)
    assert torch.equal(copied.weight, online.weight) and torch.equal(copied.bias, online.bias)


def test_replay_buffer_from_a_config():
    cpu = torch.device("cpu")
    uniform = replay_buffer(OffPolicyConfig(buffer_size=256, batch_size=32, learning_starts=32, n_step=3), (4,), cpu)
    assert type(uniform) is ReplayBuffer and uniform.capacity == 256 and uniform.n_step == 3
    per = replay_buffer(OffPolicyConfig(prioritized=True, alpha=0.5, batch_size=8, learning_starts=8), (4,), cpu,
                        capacity=64)
    assert isinstance(per, PrioritizedReplayBuffer) and per.capacity == 64 and per.alpha == 0.5


# ---------------------------------------------------------------- an algorithm in one file


def small(**overrides) -> LinearQConfig:
    values = dict(device="cpu", num_envs=8, seed=2, total_steps=1_000, learning_starts=128, batch_size=32,
                  buffer_size=2_048, eval_interval=500, eval_episodes=4, log_interval=250, stop_when_solved=False,
                  updates_per_step=0.25, prioritized=True, n_step=2)
    values.update(overrides)
    return LinearQConfig(**values)


def test_a_one_file_algorithm_trains_resumes_exactly_and_exports(tmp_path):
    full = LinearQ(small())
    result = full.train()
    assert result.env_steps == 1_000 and result.updates > 0 and len(result.history) == 4
    half = LinearQ(small())
    half.train(stop_at=504)
    half.save(tmp_path / "half.pt", include_buffer=True)
    resumed = LinearQ.load(tmp_path / "half.pt")
    resumed.train()
    assert_same_state(full.state_dict(include_buffer=True), resumed.state_dict(include_buffer=True))
    obs = torch.randn(16, 4)  # the frame's export, loaded here (without rltorch: tests/test_dqn.py, test_ppo.py)
    scripted = torch.jit.load(full.export(tmp_path / "p.ts"))
    program = torch.export.load(full.export(tmp_path / "p.pt2", "export")).module()
    assert torch.equal(scripted(obs), full.act(obs)) and torch.equal(program(obs), full.act(obs))
    for agent in (full, half, resumed):
        agent.close()


def test_train_freq_runs_the_owed_updates_in_rounds_and_resumes_exactly_between_them(tmp_path):
    rounds = LinearQ(small(total_steps=800, eval_interval=800, train_freq=3))
    counts = []
    while rounds.env_steps < 800:
        rounds.collect()
        rounds.update()
        counts.append(rounds.updates)
    # 8 envs x 0.25: 2 updates owed per vector step once 128 transitions are stored, 6 after every third.
    made = {step: now - before for step, (before, now) in enumerate(zip([0, *counts], counts), start=1)
            if now != before}
    assert made and all(step % 3 == 0 for step in made) and set(made.values()) == {6}
    full = LinearQ(small(train_freq=3))
    full.train()
    half = LinearQ(small(train_freq=3))
    half.train(stop_at=8 * 61)  # a round's first vector step collected, its updates not yet run
    assert half.schedule.pending == 8
    half.save(tmp_path / "half.pt", include_buffer=True)
    resumed = LinearQ.load(tmp_path / "half.pt")
    resumed.train()
    assert_same_state(full.state_dict(include_buffer=True), resumed.state_dict(include_buffer=True))
    for agent in (rounds, full, half, resumed):
        agent.close()


def test_one_registry_line_puts_it_on_the_command_line(tmp_path, capsys):
    from rltorch.cli import main

    register("linear_q", "tests.algorithms.linear_q:LinearQ")
    try:
        run_dir = tmp_path / "run"
        code = main(["train", "linear_q", "--total-steps", "800", "--learning-starts", "128", "--batch-size", "32",
                     "--epsilon", "0.2", "--eval-interval", "400", "--eval-episodes", "3", "--num-envs", "4",
                     "--device", "cpu", "--quiet", "--no-stop", "--run-dir", str(run_dir)])
        assert code == 0, capsys.readouterr().err
        assert json.loads((run_dir / "config.json").read_text())["algorithm"] == "linear_q"
        assert type(Agent.load(run_dir / "checkpoint.pt")) is LinearQ
        assert main(["eval", str(run_dir), "--episodes", "3"]) == 0
        with pytest.raises(SystemExit):
            main(["train", "linear_q", "--help"])
        assert "Probability of a random action while collecting." in " ".join(capsys.readouterr().out.split())
    finally:
        del ALGORITHMS["linear_q"]
