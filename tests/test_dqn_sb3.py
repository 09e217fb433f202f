"""rltorch's DQN against stable-baselines3's DQN (the peer the bench runs with rl-zoo3's settings): one gradient
step from the same weights on the same batch, the update cadence of SB3's train_freq / gradient_steps, and
the epsilon schedule. Skipped where SB3 is not installed."""

import pytest
import torch

from rltorch.agents import DQN, DQNConfig
from rltorch.agents.offpolicy import linear_schedule
from rltorch.replay.buffers import ReplayBatch

sb3 = pytest.importorskip("stable_baselines3")

pytestmark = pytest.mark.usefixtures("one_thread")


def _sb3_dqn(env_id: str, **overrides):
    from stable_baselines3.common.logger import Logger

    values = dict(learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1000, gamma=0.98,
                  target_update_interval=600, train_freq=16, gradient_steps=8, exploration_fraction=0.2,
                  exploration_final_eps=0.07, policy_kwargs=dict(net_arch=[256, 256]), seed=0, device="cpu")
    values.update(overrides)
    model = sb3.DQN("MlpPolicy", env_id, **values)
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def _linears(sequential) -> list[torch.nn.Linear]:
    return [m for m in sequential if isinstance(m, torch.nn.Linear)]


def test_one_gradient_step_matches_sb3_dqn_from_the_same_weights_and_batch():
    """Huber loss, the max over the target network, terminations that stop bootstrapping, gradient clipping at
    10 (reached here: rewards of -100) and Adam: three steps on the same batch agree to float rounding."""
    sb = _sb3_dqn("MountainCar-v0")
    agent = DQN(DQNConfig(env_id="MountainCar-v0", num_envs=1, hidden_sizes=(256, 256), learning_rate=4e-3,
                          gamma=0.98, double_dqn=False, batch_size=128, buffer_size=10_000, learning_starts=1000,
                          target_update="hard", target_update_interval=300, device="cpu", seed=0))
    mine = [*agent.q.body, agent.q.head]
    with torch.no_grad():
        for ours, theirs in ((mine, _linears(sb.q_net.q_net)),
                             ([*agent.target.body, agent.target.head], _linears(sb.q_net_target.q_net))):
            for a, b in zip(ours, theirs, strict=True):
                a.weight.copy_(b.weight.unsqueeze(0))
                a.bias.copy_(b.bias.unsqueeze(0))
    gen = torch.Generator().manual_seed(1)
    size = 128
    obs = torch.stack([torch.rand(size, generator=gen) * 1.8 - 1.2, torch.rand(size, generator=gen) * 0.14 - 0.07], 1)
    next_obs = obs + 0.01 * torch.randn(size, 2, generator=gen)
    action = torch.randint(0, 3, (size,), generator=gen)
    reward = torch.full((size,), -100.0)
    terminated = torch.rand(size, generator=gen) < 0.2
    batch = ReplayBatch(obs, action, reward, next_obs, terminated, torch.full((size,), 0.98),
                        torch.zeros(size, dtype=torch.long), torch.ones(size))
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    samples = ReplayBufferSamples(obs, action.view(-1, 1), next_obs, terminated.float().view(-1, 1),
                                  reward.view(-1, 1), None)
    sb.replay_buffer.sample = lambda batch_size, env=None: samples
    for _ in range(3):
        agent.gradient_step(batch)
        sb.train(gradient_steps=1, batch_size=size)
        for a, b in zip(mine, _linears(sb.q_net.q_net), strict=True):
            torch.testing.assert_close(a.weight[0], b.weight, rtol=0, atol=1e-6)
            torch.testing.assert_close(a.bias[0], b.bias, rtol=0, atol=1e-6)
    assert sb.policy.optimizer.state[sb.policy.q_net.q_net[0].weight]["step"] == 3


def test_train_freq_runs_the_updates_of_sb3s_train_freq_and_gradient_steps_at_the_same_env_steps():
    """SB3 with one env collects train_freq steps, then runs gradient_steps updates; rltorch's train_freq with
    updates_per_step = gradient_steps / train_freq makes the same updates after the same env steps (with the
    default train_freq 1 they would be spread one every other step, and with 16 envs each env would act on
    a new network at every step)."""
    from stable_baselines3.common.callbacks import BaseCallback

    steps, learning_starts = 704, 100  # SB3 collects whole rollouts of train_freq steps
    sb_updates = []

    class Record(BaseCallback):
        def _on_step(self):  # after each env step, before any update that step ends a rollout with
            sb_updates.append(self.model._n_updates)
            return True

    sb = _sb3_dqn("CartPole-v1", learning_starts=learning_starts, batch_size=32, policy_kwargs=dict(net_arch=[8]))
    sb.learn(steps, callback=Record())
    agent = DQN(DQNConfig(env_id="CartPole-v1", num_envs=1, train_freq=16, updates_per_step=0.5, batch_size=32,
                          learning_starts=learning_starts, hidden_sizes=(8,), device="cpu", seed=0,
                          total_steps=steps))
    ours = []
    while agent.env_steps < steps:
        agent.collect()
        ours.append(agent.updates)
        agent.update()
    assert len(sb_updates) == steps and ours == sb_updates
    assert ours[-1] == 8 * 37  # after the rollouts ending at env steps 112, 128, ..., 688
    agent.close()


def test_epsilon_follows_sb3s_exploration_schedule():
    """SB3 anneals over exploration_fraction of the run's total_timesteps; rltorch over eps_decay_steps."""
    from stable_baselines3.common.utils import LinearSchedule

    total = 120_000
    schedule = LinearSchedule(1.0, 0.07, 0.2)
    for step in (0, 1, 999, 12_000, 23_999, 24_000, 24_001, 119_999):
        assert linear_schedule(1.0, 0.07, int(0.2 * total), step) == pytest.approx(schedule(1 - step / total),
                                                                                  abs=1e-12)
