"""rltorch inside other stacks: gymnasium's vector wrappers (CleanRL-style loops),
TorchRL's GymWrapper, stable-baselines3 (VecEnv adapter, prioritized DQN)."""

import math
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import vector as vw

from rltorch.envs import CartPoleVecEnv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THETA_LIMIT = 12 * 2 * math.pi / 360


def _one_step_from_death(n: int) -> np.ndarray:
    """States where env 0 terminates on the next step whatever the action."""
    states = np.zeros((n, 4))
    states[0] = [0.0, 0.0, 0.2094, 3.0]
    return states


def test_import_rltorch_does_not_import_integration_frameworks():
    code = ("import sys, rltorch, rltorch.integrations\n"
            "print(sorted(m for m in ('stable_baselines3', 'torchrl', 'tensordict') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ---------------------------------------------------------------- gymnasium


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_cleanrl_style_loop_with_record_episode_statistics(mode):
    # CleanRL wraps its vector env in gymnasium's RecordEpisodeStatistics and reads
    # infos["episode"] where infos["_episode"]; the kernel's own statistics (opt-in) of
    # a twin env with the same seed and actions must agree.
    n = 8
    env = vw.RecordEpisodeStatistics(CartPoleVecEnv(n, seed=1, autoreset_mode=mode).numpy())
    twin = CartPoleVecEnv(n, seed=1, autoreset_mode=mode, episode_statistics=True).numpy()
    obs, _ = env.reset(seed=1)
    twin_obs, _ = twin.reset(seed=1)
    np.testing.assert_array_equal(obs, twin_obs)
    rng = np.random.default_rng(0)
    returns, twin_returns = [], []
    for _ in range(300):
        actions = rng.integers(0, 2, size=n)
        obs, rewards, terminations, truncations, infos = env.step(actions)
        *_, twin_infos = twin.step(actions)
        if "episode" in infos:
            done = infos["_episode"]
            np.testing.assert_array_equal(done, terminations | truncations)
            returns += infos["episode"]["r"][done].tolist()
            np.testing.assert_array_equal(infos["episode"]["l"][done], twin_infos["episode"]["l"][done])
        twin_returns += twin_infos["episode"]["r"][twin_infos["_episode"]].tolist()
    assert len(returns) >= 50 and returns == twin_returns
    assert len(env.return_queue) == min(len(returns), env.return_queue.maxlen)


def test_numpy_face_forwards_what_gymnasium_and_torchrl_read():
    base = CartPoleVecEnv(3, seed=0, autoreset_mode="same_step", max_episode_steps=77)
    env = base.numpy()
    assert env.autoreset_mode is AutoresetMode.SAME_STEP
    assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP and env.metadata["render_fps"] == 50
    assert env.num_envs == 3 and env.render_mode is None and env.max_episode_steps == 77
    assert env.single_observation_space == base.single_observation_space and env.action_space == base.action_space
    assert env.unwrapped is base and not env.sutton_barto_reward and not env.episode_statistics
    obs = env.set_state(_one_step_from_death(3))
    assert isinstance(obs, np.ndarray) and obs.dtype == np.float32


def test_standard_vector_wrappers_run_on_the_numpy_face():
    env = CartPoleVecEnv(4, seed=2).numpy()
    env = vw.RecordEpisodeStatistics(env)
    env = normalized = vw.NormalizeObservation(env)
    env = vw.NormalizeReward(env, gamma=0.99)
    env = vw.ClipReward(env, min_reward=-5.0, max_reward=5.0)
    env = vw.TransformObservation(env, lambda o: np.clip(o, -10.0, 10.0), env.observation_space)
    env = vw.DtypeObservation(env, np.float64)
    obs, _ = env.reset(seed=2)
    rng = np.random.default_rng(1)
    episodes = 0
    for _ in range(200):
        obs, rewards, term, trunc, infos = env.step(rng.integers(0, 2, size=4))
        assert obs.shape == (4, 4) and obs.dtype == np.float64 and np.all(np.abs(obs) <= 10.0)
        assert rewards.shape == (4,) and np.all(np.abs(rewards) <= 5.0)
        episodes += int(infos.get("_episode", np.zeros(4, bool)).sum())
    assert episodes >= 20
    assert normalized.obs_rms.count > 200 * 4 - 1  # the running statistics saw every observation
    # NormalizeObservation only supports NEXT_STEP autoreset; it says so for SAME_STEP.
    with pytest.raises(ValueError, match="NEXT_STEP"):
        vw.NormalizeObservation(CartPoleVecEnv(2, autoreset_mode="same_step").numpy())


def test_same_step_final_obs_layout_is_sync_vector_envs():
    # gymnasium's SyncVectorEnv in SAME_STEP: final_obs is an object array (None where no
    # episode ended) present only on calls where one did, with the masks and final_info.
    n = 3
    ref = SyncVectorEnv([lambda: gym.make("CartPole-v1")] * n, autoreset_mode=AutoresetMode.SAME_STEP)
    ref.reset(seed=0)
    ref_info = None
    while ref_info is None:
        *_, info = ref.step(np.ones(n, dtype=np.int64))
        if "final_obs" in info:
            ref_info = info
    env = CartPoleVecEnv(n, seed=0, autoreset_mode="same_step").numpy()
    env.reset()
    env.set_state(_one_step_from_death(n))
    _, _, term, _, info = env.step(np.array([1, 1, 1]))
    assert set(info) == set(ref_info) == {"final_obs", "_final_obs", "final_info", "_final_info"}
    assert info["final_obs"].dtype == ref_info["final_obs"].dtype == object
    assert info["final_info"] == ref_info["final_info"] == {}
    assert info["_final_obs"].tolist() == info["_final_info"].tolist() == term.tolist() == [True, False, False]
    assert info["final_obs"][1] is None and info["final_obs"][2] is None
    final = info["final_obs"][0]
    assert final.dtype == np.float32 and final.shape == (4,) and final[2] > THETA_LIMIT
    # No episode ended: no final keys at all (SyncVectorEnv's layout).
    *_, info = env.step(np.array([1, 1, 1]))
    assert info == {}


def test_vector_env_checks():
    # gymnasium's env_checker checks, applied to the vector env: seeded resets are
    # deterministic, steps are deterministic, returned arrays are fresh, obs lie in the space.
    def rollout(seed):
        env = CartPoleVecEnv(5, seed=None).numpy()
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for t in range(30):
            out.append(env.step(np.arange(5) % 2 ^ (t % 2))[0])
        return env, out

    env_a, a = rollout(123)
    env_b, b = rollout(123)
    _, c = rollout(124)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert all(env_a.observation_space.contains(x) for x in a[:10])
    assert not any(np.shares_memory(x, y) for x, y in zip(a, a[1:]))
    obs, _ = env_a.reset(options={"low": -0.01, "high": 0.01})
    assert np.all(np.abs(obs) <= 0.01)


# ---------------------------------------------------------------- TorchRL

torchrl_envs = pytest.importorskip("torchrl.envs", reason="torchrl is in the test extra")


@pytest.mark.parametrize("face", ["torch", "numpy"])
@pytest.mark.parametrize("mode", ["same_step", "disabled"])
def test_torchrl_gym_wrapper_check_env_specs_and_rollout(face, mode):
    from torchrl.envs.utils import check_env_specs

    base = CartPoleVecEnv(4, seed=5, autoreset_mode=mode)
    env = torchrl_envs.GymWrapper(base if face == "torch" else base.numpy())
    assert env.batch_size == torch.Size([4])
    check_env_specs(env)
    td = env.rollout(120, break_when_any_done=False)
    assert td.batch_size == torch.Size([4, 120])
    done = td["next", "done"].squeeze(-1)
    assert done.sum() >= 4  # episodes ended and the rollout went on
    # At a done step "next" holds the episode's last observation (out of bounds when it
    # terminated), and the next row starts a fresh episode.
    last = td["next", "observation"][done & td["next", "terminated"].squeeze(-1)]
    assert ((last[:, 0].abs() > 2.4) | (last[:, 2].abs() > THETA_LIMIT)).all()
    env_i, t_i = done[:, :-1].nonzero(as_tuple=True)
    assert (td["observation"][env_i, t_i + 1].abs() <= 0.05).all()
    assert (td["next", "reward"] == 1.0).all()


def _balancing_policy(td):
    td["action"] = (td["observation"][..., 2] + 0.5 * td["observation"][..., 3] > 0).long()
    return td


def test_torchrl_native_env():
    from torchrl.envs.utils import check_env_specs

    from rltorch.integrations.torchrl import CartPoleEnv

    env = CartPoleEnv(num_envs=4, seed=0, max_episode_steps=40)
    check_env_specs(env)
    env.set_seed(7)
    td = env.rollout(150, policy=_balancing_policy, break_when_any_done=False)
    assert td.batch_size == torch.Size([4, 150]) and td["action"].dtype == torch.int64
    done = td["next", "done"].squeeze(-1)
    truncated = td["next", "truncated"].squeeze(-1)
    assert truncated.sum() >= 4 and torch.equal(done, truncated | td["next", "terminated"].squeeze(-1))
    env_i, t_i = done[:, :-1].nonzero(as_tuple=True)
    assert (td["observation"][env_i, t_i + 1].abs() <= 0.05).all()  # TorchRL's "_reset" restarted them
    # TorchRL's plumbing (next/root keys, "_reset" masks) matches driving the env by hand.
    ref = CartPoleVecEnv(4, max_episode_steps=40, autoreset_mode="disabled")
    obs, _ = ref.reset(seed=7)
    for t in range(150):
        assert torch.equal(td["observation"][:, t], obs)
        action = (obs[:, 2] + 0.5 * obs[:, 3] > 0).long()
        obs, reward, term, trunc, _ = ref.step(action)
        assert torch.equal(td["next", "observation"][:, t], obs) and torch.equal(truncated[:, t], trunc)
        assert torch.equal(td["next", "reward"][:, t, 0], reward)
        if (term | trunc).any():
            obs, _ = ref.reset(options={"reset_mask": term | trunc})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torchrl_native_env_on_cuda():
    from torchrl.envs.utils import check_env_specs

    from rltorch.integrations.torchrl import CartPoleEnv

    env = CartPoleEnv(num_envs=256, device="cuda", seed=0)
    check_env_specs(env)
    td = env.rollout(100, break_when_any_done=False)
    assert td.device.type == "cuda" and td["next", "observation"].device.type == "cuda"


# ---------------------------------------------------------------- stable-baselines3

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in the test extra")




def test_sb3_vec_env_semantics():
    from rltorch.integrations.sb3 import SB3VecEnv

    env = SB3VecEnv(num_envs=3, seed=4, max_episode_steps=5)
    assert env.num_envs == 3 and env.observation_space == CartPoleVecEnv(1).single_observation_space
    env.seed(4)
    obs = env.reset()
    assert obs.dtype == np.float32 and obs.shape == (3, 4) and np.all(np.abs(obs) <= 0.05)
    env.env.set_state(_one_step_from_death(3))
    obs, rewards, dones, infos = env.step(np.array([1, 1, 1]))
    assert dones.tolist() == [True, False, False] and rewards.dtype == np.float32
    terminal = infos[0]["terminal_observation"]
    assert terminal[2] > THETA_LIMIT and np.all(np.abs(obs[0]) <= 0.05)  # reset in the same call
    assert infos[0]["TimeLimit.truncated"] is False and infos[0]["episode"]["l"] == 1
    assert "terminal_observation" not in infos[1]
    for _ in range(4):  # envs 1 and 2 reach the 5-step limit upright: truncated only
        obs, rewards, dones, infos = env.step(np.array([0, 1, 0]))
    assert dones.tolist() == [False, True, True]
    assert [i["TimeLimit.truncated"] for i in infos] == [False, True, True]
    assert infos[1]["episode"] == {"r": 5.0, "l": 5, "t": infos[1]["episode"]["t"]}
    assert env.get_attr("max_episode_steps") == [5, 5, 5] and env.env_is_wrapped(gym.Wrapper) == [False] * 3
    with pytest.raises(ValueError, match="same_step"):
        SB3VecEnv(CartPoleVecEnv(2))


def test_sb3_vec_env_names_the_actions_that_do_not_fit():
    from rltorch.integrations.sb3 import SB3VecEnv
    from tests.checks import assert_same_state

    env = SB3VecEnv(num_envs=4, seed=0)
    env.reset()
    before = env.env.state_dict()
    for actions in (np.array([0, 1, 0]), np.zeros((2, 4), dtype=np.int64), np.zeros(5, dtype=np.int64)):
        with pytest.raises(ValueError, match="`actions` must hold one action per env \\(4\\)"):
            env.step(actions)
    assert_same_state(before, env.env.state_dict())
    obs, _, _, _ = env.step(np.array([0, 1, 0, 1]))  # still usable
    assert obs.shape == (4, 4)


def _greedy_mean_return(model, n_episodes: int = 16) -> float:
    from stable_baselines3.common.evaluation import evaluate_policy

    from rltorch.integrations.sb3 import SB3VecEnv

    mean, _ = evaluate_policy(model, SB3VecEnv(num_envs=8, seed=99), n_eval_episodes=n_episodes, warn=False)
    return mean


def test_sb3_ppo_learns_on_rltorch_env(one_thread):
    from stable_baselines3 import PPO

    from rltorch.integrations.sb3 import SB3VecEnv

    model = PPO("MlpPolicy", SB3VecEnv(num_envs=8, seed=0), n_steps=32, batch_size=256, n_epochs=20, gamma=0.98,
                gae_lambda=0.8, learning_rate=1e-3, ent_coef=0.0, seed=0, device="cpu")
    model.learn(8192)
    assert model.num_timesteps == 8192
    assert _greedy_mean_return(model) >= 100  # random play: about 22


# rl-zoo3's CartPole-v1 DQN settings, scaled down: with 4 envs a train_freq of 16 calls
# is 64 transitions, so 32 gradient steps keep the zoo's 1 update per 2 transitions.
DQN_ARGS = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=20_000, learning_starts=1000, gamma=0.99,
                target_update_interval=10, train_freq=16, gradient_steps=32, exploration_fraction=0.16,
                exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[64, 64]), seed=0, device="cpu")


@pytest.mark.parametrize("per", [False, True])
def test_sb3_dqn_learns_on_rltorch_env(per, one_thread):
    from stable_baselines3 import DQN

    from rltorch.integrations.sb3 import PrioritizedDQN, SB3VecEnv

    cls = PrioritizedDQN if per else DQN
    model = cls("MlpPolicy", SB3VecEnv(num_envs=4, seed=0), **DQN_ARGS)
    model.learn(10_000)
    assert _greedy_mean_return(model) >= 100  # random play: about 22
    if per:
        buffer = model.replay_buffer
        assert buffer.beta == pytest.approx(1.0, abs=0.01)  # annealed to final_beta
        batch = buffer.sample(256)
        assert batch.weights.max() <= 1.0 and batch.weights.min() < 0.9  # priorities differ


def test_prioritized_dqn_updates_priorities_with_td_errors():
    from rltorch.integrations.sb3 import PrioritizedDQN, SB3VecEnv

    model = PrioritizedDQN("MlpPolicy", SB3VecEnv(num_envs=2, seed=1), buffer_size=10_000, learning_starts=1000,
                           per_alpha=0.5, per_eps=0.0, seed=1, device="cpu")
    model.learn(200)  # collects only: no training before learning_starts
    buffer = model.replay_buffer
    storage = buffer.storage
    assert torch.equal(storage.tree.total(), torch.tensor(float(len(storage)), dtype=storage.tree.total().dtype))
    # One gradient step: the sampled transitions' priorities become |q - target| ** alpha.
    state = storage.generator.get_state()
    batch = buffer.sample(model.batch_size)
    storage.generator.set_state(state)
    with torch.no_grad():
        q = model.q_net(batch.observations).gather(1, batch.actions.long())
    model.train(gradient_steps=1, batch_size=model.batch_size)
    with torch.no_grad():
        next_q = model.q_net_target(batch.next_observations).max(dim=1, keepdim=True).values
    td = (q - (batch.rewards + (1 - batch.dones) * model.gamma * next_q)).abs().reshape(-1)
    slots = batch.indices % storage.capacity
    got = storage.tree.priorities()[slots]
    torch.testing.assert_close(got, td.to(got.dtype) ** 0.5, rtol=1e-5, atol=1e-7)


def test_prioritized_dqn_matches_sb3_dqn_api(tmp_path):
    from stable_baselines3 import DQN

    from rltorch.integrations.sb3 import PrioritizedDQN, PrioritizedReplayBuffer, SB3VecEnv

    env = SB3VecEnv(num_envs=2, seed=3)
    model = PrioritizedDQN("MlpPolicy", env, buffer_size=10_000, learning_starts=100, train_freq=8, gradient_steps=2,
                           per_alpha=0.7, seed=3, device="cpu")
    model.learn(600)
    obs = env.reset()
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (2,)
    model.save(tmp_path / "per_dqn")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = PrioritizedDQN.load(tmp_path / "per_dqn", env=env, device="cpu")  # SB3's own loader
    assert isinstance(loaded, DQN) and loaded.per_alpha == 0.7
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], actions)
    loaded.load_replay_buffer(tmp_path / "buffer")
    assert isinstance(loaded.replay_buffer, PrioritizedReplayBuffer)
    restored, original = loaded.replay_buffer.storage, model.replay_buffer.storage
    assert len(restored) == len(original) and torch.equal(restored.tree.total(), original.tree.total())
    loaded.learn(200, reset_num_timesteps=False)
    assert loaded.num_timesteps >= model.num_timesteps + 200  # continued, not restarted
    # Plain SB3 DQN can sample from the buffer too (by priority, unweighted).
    plain = DQN("MlpPolicy", env, replay_buffer_class=PrioritizedReplayBuffer, buffer_size=10_000, learning_starts=100,
                seed=3, device="cpu")
    plain.learn(300)
    with pytest.raises(ValueError, match="optimize_memory_usage"):
        DQN("MlpPolicy", env, replay_buffer_class=PrioritizedReplayBuffer, buffer_size=10_000,
            optimize_memory_usage=True, replay_buffer_kwargs={"handle_timeout_termination": False})


def test_sb3_per_dqn_example_runs():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "sb3_per_dqn.py"), "--steps", "1100"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    assert "PrioritizedDQN: 1100 steps" in proc.stdout and "same greedy actions: True" in proc.stdout
