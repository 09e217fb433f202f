"""PPO: the loss, advantages across episode ends, learning, exact resume, export, other envs, the CLI."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.vector import VectorWrapper

from rltorch.agents import ALGORITHMS, PPO, PPOConfig
from rltorch.agents.actor_critic import ActorCritic
from rltorch.agents.ppo import ppo_loss
from rltorch.envs import CartPoleVecEnv
from tests.checks import run_without_rltorch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def small_config(**overrides) -> PPOConfig:
    values = dict(num_envs=16, num_steps=16, seed=3, device="cpu", total_steps=16 * 16 * 6, eval_interval=10_000,
                  eval_episodes=10, stop_when_solved=False, log_interval=256)
    values.update(overrides)
    return PPOConfig(**values)


# ---------------------------------------------------------------- the loss


def hand_written_loss(new_logprob, entropy, new_value, old_logprob, old_value, advantage, returns, clip, *,
                      clip_vloss, ent_coef, vf_coef, norm_adv, weight):
    rows = [i for i in range(len(advantage)) if weight is None or weight[i] > 0]
    n = len(rows)
    adv = {i: float(advantage[i]) for i in rows}
    if norm_adv:
        mean = sum(adv.values()) / n
        std = math.sqrt(sum((a - mean) ** 2 for a in adv.values()) / (n - 1))
        adv = {i: (a - mean) / (std + 1e-8) for i, a in adv.items()}
    policy = value = ent = kl = clipped = 0.0
    for i in rows:
        ratio = math.exp(float(new_logprob[i]) - float(old_logprob[i]))
        policy += max(-adv[i] * ratio, -adv[i] * min(max(ratio, 1 - clip), 1 + clip)) / n
        v, v_old, ret = float(new_value[i]), float(old_value[i]), float(returns[i])
        if clip_vloss:
            v_clipped = v_old + min(max(v - v_old, -clip), clip)
            value += 0.5 * max((v - ret) ** 2, (v_clipped - ret) ** 2) / n
        else:
            value += 0.5 * (v - ret) ** 2 / n
        ent += float(entropy[i]) / n
        kl += ((ratio - 1) - math.log(ratio)) / n
        clipped += (abs(ratio - 1) > clip) / n
    return policy - ent_coef * ent + vf_coef * value, [policy, value, ent, kl, clipped]


@pytest.mark.parametrize("clip_vloss", [False, True])
@pytest.mark.parametrize("norm_adv", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_loss_equals_a_hand_written_reference(clip_vloss, norm_adv, masked):
    g = torch.Generator().manual_seed(7)
    B = 12
    old_logprob = -torch.rand(B, generator=g) * 2
    new_logprob = old_logprob + 0.4 * torch.randn(B, generator=g)  # ratios on both sides of the clip range
    old_value, returns = torch.randn(B, generator=g), torch.randn(B, generator=g)
    new_value = old_value + 0.5 * torch.randn(B, generator=g)
    advantage, entropy = torch.randn(B, generator=g), torch.rand(B, generator=g)
    weight = (torch.arange(B) % 3 != 1).float() if masked else None
    kwargs = dict(clip_vloss=clip_vloss, ent_coef=0.01, vf_coef=0.7, norm_adv=norm_adv, weight=weight)
    args = (new_logprob, entropy, new_value, old_logprob, old_value, advantage, returns, 0.2)
    loss, stats = ppo_loss(*args, **kwargs)
    expected_loss, expected_stats = hand_written_loss(*args, **kwargs)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-5, abs=1e-6)
    assert stats.tolist() == pytest.approx(expected_stats, rel=1e-5, abs=1e-6)
    assert 0 < expected_stats[4] < 1  # some ratios were clipped, some not


def test_log_probabilities_and_entropies_match_torch_distributions():
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(9, 3, generator=g)
    discrete = ActorCritic((3,), 4, continuous=False, hidden_sizes=(8,))
    torch.nn.init.normal_(discrete.actor[-1].weight, generator=g)  # away from the near-uniform initial policy
    action, logprob = discrete.sample(obs, g)
    dist = torch.distributions.Categorical(logits=discrete.actor(obs))
    torch.testing.assert_close(logprob, dist.log_prob(action))
    new_logprob, entropy, value = discrete.evaluate_actions(obs, action)
    torch.testing.assert_close(new_logprob, dist.log_prob(action))
    torch.testing.assert_close(entropy, dist.entropy())
    torch.testing.assert_close(value, discrete.critic(obs).squeeze(-1))

    gaussian = ActorCritic((3,), 2, continuous=True, hidden_sizes=(8,), init_log_std=-0.5,
                           action_low=torch.tensor([-1.0, -2.0]), action_high=torch.tensor([1.0, 2.0]))
    action, logprob = gaussian.sample(obs, g)
    dist = torch.distributions.Normal(gaussian.actor(obs), gaussian.log_std.exp())
    torch.testing.assert_close(logprob, dist.log_prob(action).sum(-1))
    new_logprob, entropy, _ = gaussian.evaluate_actions(obs, action)
    torch.testing.assert_close(new_logprob, dist.log_prob(action).sum(-1))
    torch.testing.assert_close(entropy, dist.entropy().sum(-1))
    clipped = gaussian.env_action(action * 10)
    assert bool((clipped.abs() <= torch.tensor([1.0, 2.0])).all())
    matrix = ActorCritic((3,), 6, continuous=True, hidden_sizes=(8,), action_shape=(2, 3))
    assert matrix.deterministic(obs).shape == (9, 2, 3) and matrix.sample(obs, g)[0].shape == (9, 6)
    with pytest.raises(ValueError, match="action_shape"):
        ActorCritic((3,), 6, continuous=True, action_shape=(2, 2))


def test_the_first_minibatch_sees_ratio_one():
    # Observation statistics change only after an update, so the rollout's log-probabilities are the
    # ones the first minibatch recomputes: approx KL 0 and nothing clipped.
    agent = PPO(small_config(normalize_obs=True, update_epochs=1, num_minibatches=1))
    agent.collect()
    agent.update()
    agent.collect()
    agent.compute_advantages()
    batch = agent._agent_major()  # [agents, rows, ...]: one agent here
    new_logprob, _, _ = agent.net.evaluate_actions(batch.obs, batch.action)
    torch.testing.assert_close(new_logprob, batch.logprob)
    agent.close()


# ---------------------------------------------------------------- advantages across episode ends


class Recorder(VectorWrapper):
    """Keeps every observation, reward, flag and final observation the env hands out."""

    def __init__(self, env):
        super().__init__(env)
        self.obs, self.reward, self.terminated, self.truncated, self.final = [], [], [], [], []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.obs.append(torch.as_tensor(obs).clone())
        return obs, info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.obs.append(torch.as_tensor(obs).clone())
        self.reward.append(torch.as_tensor(reward).float())
        self.terminated.append(torch.as_tensor(terminated))
        self.truncated.append(torch.as_tensor(truncated))
        self.final.append(info.get("final_obs"))
        return obs, reward, terminated, truncated, info


def by_hand_advantages(agent, recorder, successor, valid, gamma, lmbda):
    T, N = agent.buffer.num_steps, agent.buffer.num_envs

    def value(o):
        with torch.no_grad():
            return agent.net.value(torch.as_tensor(o, dtype=torch.float32).view(1, 1, -1)).item()

    expected = torch.zeros(T, N)
    for n in range(N):
        carry = 0.0
        for t in reversed(range(T)):
            terminated, truncated = bool(recorder.terminated[t][n]), bool(recorder.truncated[t][n])
            bootstrap = 0.0 if terminated else gamma * value(successor(t, n))
            delta = float(recorder.reward[t][n]) + bootstrap - value(recorder.obs[t][n])
            carry = delta if (terminated or truncated) else delta + gamma * lmbda * carry
            expected[t, n] = carry if valid(t, n) else float("nan")
    return expected


def test_advantages_bootstrap_truncated_episodes_from_their_final_observation_same_step():
    recorder = Recorder(CartPoleVecEnv(4, autoreset_mode="same_step", max_episode_steps=12))
    agent = PPO(small_config(num_envs=4, num_steps=40, gamma=0.9, gae_lambda=0.8), env=recorder)
    agent.collect()
    agent.compute_advantages()
    terminated, truncated = torch.stack(recorder.terminated), torch.stack(recorder.truncated)
    assert bool(terminated.any()) and bool(truncated.any()), "the rollout must end episodes both ways"

    def successor(t, n):  # SAME_STEP: the final observation arrives in info, the obs is the next episode's first
        done = bool(recorder.terminated[t][n]) or bool(recorder.truncated[t][n])
        return recorder.final[t][n] if done else recorder.obs[t + 1][n]

    expected = by_hand_advantages(agent, recorder, successor, lambda t, n: True, 0.9, 0.8)
    torch.testing.assert_close(agent.buffer.advantage, expected, rtol=1e-5, atol=1e-5)
    assert bool(agent.buffer.valid.all())
    agent.close()


def test_advantages_bootstrap_truncated_episodes_from_their_final_observation_next_step():
    # gymnasium's own vector CartPole: NEXT_STEP autoreset, numpy arrays.
    recorder = Recorder(CartPoleVectorEnv(num_envs=6, max_episode_steps=16))
    agent = PPO(small_config(num_envs=6, num_steps=48, gamma=0.9, gae_lambda=0.8), env=recorder)
    assert agent.masked
    agent.collect()
    agent.compute_advantages()
    done = torch.stack(recorder.terminated) | torch.stack(recorder.truncated)
    assert bool(torch.stack(recorder.terminated).any()) and bool(torch.stack(recorder.truncated).any())
    # The call after an episode ends only resets that env: no transition, weight 0 in the loss.
    reset_rows = torch.cat([torch.zeros(1, 6, dtype=torch.bool), done[:-1]])
    assert torch.equal(agent.buffer.valid, ~reset_rows)

    def successor(t, n):  # NEXT_STEP: the obs returned on the done step is the final one
        return recorder.obs[t + 1][n]

    expected = by_hand_advantages(agent, recorder, successor, lambda t, n: not bool(reset_rows[t, n]), 0.9, 0.8)
    valid = agent.buffer.valid
    torch.testing.assert_close(agent.buffer.advantage[valid], expected[valid], rtol=1e-5, atol=1e-5)
    agent.close()


# ---------------------------------------------------------------- learning and resume


def params(agent):
    return [p.detach().clone() for p in agent.net.parameters()] + [b.clone() for b in agent.net.buffers()]


def test_short_seeded_run_improves_the_return():
    agent = PPO(PPOConfig(seed=1, device="cpu", total_steps=16_384, stop_when_solved=False, eval_interval=100_000))
    before = agent.evaluate(20, seed=99)
    result = agent.train()
    after = agent.evaluate(20, seed=99)
    assert result.env_steps == 16_384 and result.updates == 8 * 8
    assert after >= max(4 * before, 50.0), (before, after, result.history[-2:])
    agent.close()


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(normalize_obs=True, clip_vloss=True, ent_coef=0.01, target_kl=0.01, num_minibatches=4, anneal_lr=False),
])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, overrides):
    full = PPO(small_config(**overrides))
    full.train()
    half = PPO(small_config(**overrides))
    half.train(stop_at=700)  # pauses after the iteration that crosses 700 steps
    assert half.env_steps == 768
    half.save(tmp_path / "ckpt.pt")
    resumed = PPO.load(tmp_path / "ckpt.pt")
    resumed.train()
    assert resumed.env_steps == full.env_steps and resumed.updates == full.updates
    assert resumed.iterations == full.iterations
    for a, b in zip(params(resumed), params(full)):
        assert torch.equal(a, b)
    assert torch.equal(resumed.generator.get_state(), full.generator.get_state())
    for agent in (full, half, resumed):
        agent.close()


def test_checkpoint_of_another_algorithm_is_refused(tmp_path):
    from rltorch.agents import DQN, DQNConfig

    dqn = DQN(DQNConfig(num_envs=2, device="cpu", total_steps=10))
    dqn.save(tmp_path / "dqn.pt")
    with pytest.raises(ValueError, match="'dqn' checkpoint, not 'ppo'"):
        PPO.load(tmp_path / "dqn.pt")
    dqn.close()


def test_evaluation_stops_early_only_once_the_threshold_is_out_of_reach():
    agent = PPO(small_config())
    full = agent.evaluate_returns(50, seed=4)
    assert float(full.mean()) < 100  # an untrained policy
    early = agent.evaluate_returns(50, seed=4, stop_below=475.0)
    assert float(early.mean()) < 475 and bool((early <= full).all())
    assert not torch.equal(early, full)  # it stopped before every episode ended
    # Shortfalls past 50 * (500 - 475) = 1250 prove the mean below 475; the first 16-step check sees them.
    assert float((500 - early[early == full]).sum()) > 50 * 25
    assert torch.equal(agent.evaluate_returns(50, seed=4, stop_below=float(full.mean()) - 1), full)
    gym_agent = PPO(small_config(env_backend="gymnasium", num_envs=2, num_steps=4))
    # gymnasium's envs do not bound an episode's return: no early stop.
    assert torch.equal(gym_agent.evaluate_returns(5, seed=4, stop_below=475.0), gym_agent.evaluate_returns(5, seed=4))
    agent.close()
    gym_agent.close()


# ---------------------------------------------------------------- export


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_export_loads_without_rltorch(tmp_path, env_id):
    agent = PPO(small_config(env_id=env_id, num_envs=4, num_steps=32, total_steps=128, normalize_obs=True))
    agent.train()
    assert bool((agent.net.obs_norm.count > 1).all())  # the exported normalizer is not the identity
    obs = torch.randn(32, *agent.env.obs_shape) * 2
    expected = agent.act(obs)
    ts = agent.export(tmp_path / "policy.ts", format="torchscript")
    pt2 = agent.export(tmp_path / "policy.pt2", format="export")
    a, b = run_without_rltorch(tmp_path, ts, pt2, obs)
    torch.testing.assert_close(a, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(b, expected, rtol=0, atol=1e-6)
    agent.close()


# ---------------------------------------------------------------- other envs


def test_pendulum_box_actions_run():
    agent = PPO(small_config(env_id="Pendulum-v1", num_envs=4, num_steps=32, total_steps=384, eval_episodes=2,
                             eval_interval=384, normalize_obs=True, init_log_std=-0.5))
    assert agent.net.continuous and agent.buffer.action.shape == (32, 4, 1)
    result = agent.train()
    assert result.updates == 3 * 4 * 2 and math.isfinite(result.last_eval_return)
    actions = agent.act(torch.randn(50, 3) * 5, deterministic=False)
    assert actions.shape == (50, 1) and bool((actions.abs() <= 2.0).all())
    assert math.isfinite(agent.net.log_std.item()) and agent.net.log_std.item() != -0.5  # it learns
    agent.close()


def test_acrobot_runs():
    agent = PPO(small_config(env_id="Acrobot-v1", num_envs=4, num_steps=32, total_steps=256, eval_episodes=1,
                             eval_interval=256))
    assert agent.env.num_actions == 3
    result = agent.train()
    assert result.env_steps == 256 and result.updates == 2 * 4 * 2 and result.last_eval_return is not None
    agent.close()


# ---------------------------------------------------------------- config and command line


def test_registered_and_config_errors_name_the_field():
    assert ALGORITHMS["ppo"] is PPO and PPO.config_class is PPOConfig
    for field, value in (("gamma", 1.5), ("gae_lambda", -0.1), ("learning_rate", 0.0), ("clip_coef", 0.0),
                         ("update_epochs", 0), ("num_steps", 0), ("max_grad_norm", -1.0), ("target_kl", 0.0),
                         ("activation", "sigmoid"), ("hidden_sizes", ()), ("ent_coef", -0.1)):
        with pytest.raises(ValueError, match=f"`{field}`"):
            PPOConfig(**{field: value})
    with pytest.raises(ValueError, match="at least 2 transitions per minibatch"):
        PPOConfig(num_envs=2, num_steps=3, num_minibatches=4)
    with pytest.raises(ValueError, match="unknown field"):
        PPOConfig.from_dict({"clip_range": 0.1})
    config = small_config(hidden_sizes=[32, 16], target_kl=0.02)
    assert PPOConfig.from_dict(config.to_dict()) == config


def cli(*args, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "rltorch", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_cli_train_eval_export(tmp_path):
    run_dir = tmp_path / "run"
    proc = cli("train", "ppo", "--total-steps", "1024", "--num-envs", "16", "--num-steps", "32", "--seed", "2",
               "--eval-interval", "512", "--eval-episodes", "5", "--hidden-sizes", "32,32", "--target-kl", "0.05",
               "--no-anneal-clip", "--no-stop", "--quiet", "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "result.json"):
        assert (run_dir / name).exists(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["hidden_sizes"] == [32, 32] and config["target_kl"] == 0.05 and config["anneal_clip"] is False
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "eval_return"} <= set(header)
    proc = cli("eval", str(run_dir), "--episodes", "7")
    assert proc.returncode == 0 and "over 7 episodes" in proc.stdout, proc.stderr
    proc = cli("export", str(run_dir), "--format", "export")
    assert proc.returncode == 0 and (run_dir / "policy.pt2").exists(), proc.stderr


def test_cli_errors(tmp_path):
    proc = cli("train", "ppo", "--gamma", "2", "--run-dir", str(tmp_path / "r1"))
    assert proc.returncode == 2 and "`gamma` must lie in [0, 1]" in proc.stderr
    proc = cli("train", "ppo", "--num-envs", "2", "--num-steps", "2", "--num-minibatches", "4",
               "--run-dir", str(tmp_path / "r2"))
    assert proc.returncode == 2 and "`num_minibatches`" in proc.stderr
    proc = cli("train", "ppo", "--activation", "sigmoid", "--run-dir", str(tmp_path / "r3"))
    assert proc.returncode == 2 and "`activation` must be one of" in proc.stderr
    proc = cli("train", "ppo", "--clip-range", "0.1")
    assert proc.returncode == 2 and "unrecognized arguments: --clip-range" in proc.stderr
    assert not any((tmp_path / name).exists() for name in ("r1", "r2", "r3"))
