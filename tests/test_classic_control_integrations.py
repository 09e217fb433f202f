"""The classic-control envs in the stacks users run them in: gymnasium's vector wrappers on
the NumPy face (Box actions included), TorchRL (GymWrapper on both faces, the native EnvBase
classes), stable-baselines3 (the VecEnv adapter, Discrete and Box actions), and rltorch's own
agents (make_env picks rltorch's kernels for these ids, gymnasium's on request)."""

from __future__ import annotations

import gymnasium as gym
import gymnasium.wrappers.vector as vw
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rltorch._reference_classic import SPECS
from rltorch.envs import vector
from tests.classic_control_support import CONTINUOUS, ENV_CLASSES, NAMES, as_action_tensor, make_env, random_actions


@pytest.mark.parametrize("name", NAMES)
def test_record_episode_statistics_on_the_numpy_face(name):
    env = vw.RecordEpisodeStatistics(make_env(name, 8, seed=1, max_episode_steps=30).numpy())
    ours = make_env(name, 8, seed=1, max_episode_steps=30, episode_statistics=True).numpy()
    env.reset()
    ours.reset()
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(100):
        actions = random_actions(name, 8, rng)
        actions = actions.reshape(8, 1) if SPECS[name].continuous else actions
        *_, info = env.step(actions)
        *_, own = ours.step(actions)
        if "_episode" in info:
            done = info["_episode"]
            # gymnasium's wrapper sums float32 rewards in float64; rltorch sums the float64 rewards.
            np.testing.assert_allclose(info["episode"]["r"][done], own["episode"]["r"][done], rtol=1e-5, atol=1e-3)
            np.testing.assert_array_equal(info["episode"]["l"][done], own["episode"]["l"][done])
            episodes += done.sum()
    assert episodes >= 16


@pytest.mark.parametrize("name", CONTINUOUS)
def test_box_action_wrappers_on_the_numpy_face(name):
    high = SPECS[name].action_high
    env = vw.ClipAction(vw.RescaleAction(make_env(name, 4, seed=2).numpy(), min_action=-1.0, max_action=1.0))
    twin = make_env(name, 4, seed=2).numpy()
    env.reset()
    twin.reset()
    for value in (-5.0, -0.5, 0.25, 1.0, 9.0):
        actions = np.full((4, 1), value, dtype=np.float32)
        obs, *_ = env.step(actions)
        # ClipAction first clips to [-1, 1], RescaleAction then maps it onto the env's Box.
        twin_obs, *_ = twin.step(np.clip(actions, -1, 1) * high)
        np.testing.assert_allclose(obs, twin_obs, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_standard_vector_wrappers_run(name):
    env = vw.NormalizeReward(vw.NormalizeObservation(make_env(name, 4, seed=3, max_episode_steps=20).numpy()))
    env.reset(seed=3)
    rng = np.random.default_rng(1)
    for _ in range(50):
        actions = random_actions(name, 4, rng)
        obs, rewards, *_ = env.step(actions.reshape(4, 1) if SPECS[name].continuous else actions)
        assert obs.shape == (4, SPECS[name].obs_dim) and np.isfinite(obs).all() and np.isfinite(rewards).all()


@pytest.mark.parametrize("name", NAMES)
def test_same_step_final_obs_layout_is_sync_vector_envs(name):
    n = 3
    ref = SyncVectorEnv([lambda: gym.make(SPECS[name].gym_id, max_episode_steps=2)] * n,
                        autoreset_mode=AutoresetMode.SAME_STEP)
    ref.reset(seed=0)
    env = make_env(name, n, seed=0, autoreset_mode="same_step", max_episode_steps=2).numpy()
    env.reset()
    actions = ref.action_space.sample()
    for _ in range(2):
        *_, ref_info = ref.step(actions)
        *_, info = env.step(actions)
    assert set(info) == set(ref_info) == {"final_obs", "_final_obs", "final_info", "_final_info"}
    assert info["final_obs"].dtype == ref_info["final_obs"].dtype == object
    assert info["final_obs"][0].shape == ref_info["final_obs"][0].shape and info["final_obs"][0].dtype == np.float32


@pytest.mark.parametrize("name", NAMES)
def test_vector_env_checks(name):
    # gymnasium's env_checker checks, applied to the vector env: seeded resets and steps are
    # deterministic, returned arrays are fresh, obs lie in the space.
    def rollout(seed):
        env = make_env(name, 5).numpy()
        obs, _ = env.reset(seed=seed)
        out = [obs]
        rng = np.random.default_rng(0)
        for _ in range(30):
            actions = random_actions(name, 5, rng)
            out.append(env.step(actions.reshape(5, 1) if SPECS[name].continuous else actions)[0])
        return env, out

    env_a, a = rollout(123)
    _, b = rollout(123)
    _, c = rollout(124)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert all(env_a.observation_space.contains(x) for x in a)
    assert not any(np.shares_memory(x, y) for x, y in zip(a, a[1:]))


# ---------------------------------------------------------------- TorchRL

torchrl_envs = pytest.importorskip("torchrl.envs", reason="torchrl is in the test extra")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("face", ["torch", "numpy"])
def test_torchrl_gym_wrapper_check_env_specs_and_rollout(name, face):
    from torchrl.envs.utils import check_env_specs

    base = make_env(name, 4, seed=5, autoreset_mode="same_step", max_episode_steps=30)
    env = torchrl_envs.GymWrapper(base if face == "torch" else base.numpy())
    assert env.batch_size == torch.Size([4])
    check_env_specs(env)
    td = env.rollout(70, break_when_any_done=False)
    assert td.batch_size == torch.Size([4, 70]) and td["next", "done"].sum() >= 8


@pytest.mark.parametrize("name", NAMES)
def test_torchrl_native_env(name):
    from torchrl.envs.utils import check_env_specs

    from rltorch.integrations import torchrl as rltorch_torchrl

    cls = getattr(rltorch_torchrl, ENV_CLASSES[name].__name__.replace("VecEnv", "Env"))
    env = cls(num_envs=4, seed=0, max_episode_steps=25)
    check_env_specs(env)
    env.set_seed(7)
    td = env.rollout(60, break_when_any_done=False)
    assert td.batch_size == torch.Size([4, 60])
    assert td["action"].dtype == (torch.float32 if SPECS[name].continuous else torch.int64)
    done = td["next", "done"].squeeze(-1)
    assert done.sum() >= 8  # truncated at 25 and restarted by TorchRL's "_reset"
    # The same rollout driven by hand on the vector env: TorchRL's plumbing changes nothing.
    ref = make_env(name, 4, max_episode_steps=25, autoreset_mode="disabled")
    obs, _ = ref.reset(seed=7)
    for t in range(60):
        assert torch.equal(td["observation"][:, t], obs)
        obs, reward, term, trunc, _ = ref.step(td["action"][:, t])
        assert torch.equal(td["next", "observation"][:, t], obs)
        assert torch.equal(td["next", "reward"][:, t, 0], reward)
        if (term | trunc).any():
            obs, _ = ref.reset(options={"reset_mask": term | trunc})


# ---------------------------------------------------------------- stable-baselines3

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in the test extra")


@pytest.mark.parametrize("name", NAMES)
def test_sb3_vec_env_semantics(name):
    from rltorch.integrations.sb3 import SB3VecEnv

    env = SB3VecEnv(make_env(name, 3, seed=4, max_episode_steps=5, autoreset_mode="same_step"))
    assert env.observation_space == make_env(name, 1).single_observation_space
    assert env.action_space == make_env(name, 1).single_action_space
    obs = env.reset()
    assert obs.dtype == np.float32 and obs.shape == (3, SPECS[name].obs_dim)
    env.action_space.seed(0)
    for _ in range(5):
        actions = np.stack([env.action_space.sample() for _ in range(3)])  # SB3 hands Box actions as [N, 1]
        obs, rewards, dones, infos = env.step(actions)
    assert dones.all() and rewards.dtype == np.float32
    assert all(i["TimeLimit.truncated"] for i in infos) and all(i["episode"]["l"] == 5 for i in infos)
    assert infos[0]["terminal_observation"].shape == (SPECS[name].obs_dim,)


@pytest.mark.parametrize("name", ["mountain_car", "pendulum"])
def test_sb3_ppo_runs_on_rltorch_env(name, one_thread):
    from stable_baselines3 import PPO

    from rltorch.integrations.sb3 import SB3VecEnv

    env = SB3VecEnv(make_env(name, 4, seed=0, autoreset_mode="same_step"))
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(512)
    assert model.num_timesteps == 512
    actions, _ = model.predict(env.reset(), deterministic=True)
    assert actions.shape == ((4,) if name == "mountain_car" else (4, 1))


# ---------------------------------------------------------------- rltorch's agents


@pytest.mark.parametrize("name", NAMES)
def test_make_env_picks_rltorch_kernels_for_these_ids(name):
    gym_id = SPECS[name].gym_id
    for env_id in (gym_id, f"rltorch/{gym_id}"):
        env = vector.make_env(env_id, 3, device="cpu")
        assert type(env) is ENV_CLASSES[name] and env.autoreset_mode is AutoresetMode.SAME_STEP
    assert not isinstance(vector.make_env(gym_id, 3, backend="gymnasium"), ENV_CLASSES[name])
    assert (
        vector.max_episode_return(vector.make_env(gym_id, 2, device="cpu")) == ENV_CLASSES[name](1).max_episode_return
    )
    threshold = vector.solve_threshold(gym_id)
    assert threshold == {"mountain_car": -110.0, "mountain_car_continuous": 90.0, "pendulum": -200.0,
                         "acrobot": -100.0}[name]
    assert vector.solve_threshold(f"rltorch/{gym_id}") == threshold


@pytest.mark.parametrize("name", NAMES)
def test_max_episode_return_bounds_every_episode(name):
    env = make_env(name, 200, seed=0, autoreset_mode="same_step", episode_statistics=True, max_episode_steps=60)
    env.reset()
    rng = np.random.default_rng(0)
    best = -np.inf
    for _ in range(120):
        *_, info = env.step(as_action_tensor(name, random_actions(name, 200, rng)))
        if info["_episode"].any():
            best = max(best, float(info["episode"]["r"][info["_episode"]].max()))
    assert best <= env.max_episode_return


def test_agents_train_on_the_kernels_by_default(one_thread):
    from rltorch.agents.dqn import DQN, DQNConfig
    from rltorch.agents.ppo import PPO, PPOConfig

    for env_id, cls, config in (("Pendulum-v1", PPO, PPOConfig), ("Acrobot-v1", PPO, PPOConfig),
                                ("MountainCar-v0", DQN, DQNConfig)):
        agent = cls(config(env_id=env_id, total_steps=600, eval_interval=600, eval_episodes=4, device="cpu",
                           log_interval=600))
        try:
            assert type(agent.env.env).__name__ == vector.RLTORCH_ENVS[env_id]
            result = agent.train()
            assert result.env_steps >= 600 and np.isfinite(result.last_eval_return)
        finally:
            agent.close()
    agent = PPO(PPOConfig(env_id="Pendulum-v1", env_backend="gymnasium", total_steps=64, device="cpu"))
    try:
        assert isinstance(agent.env.env, gym.vector.SyncVectorEnv)
    finally:
        agent.close()


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Acrobot-v1"])
def test_agent_resumed_on_a_classic_env_continues_bit_for_bit(env_id, tmp_path, one_thread):
    # The env's own state (states, step counts, running returns, reset generator) is in the
    # checkpoint, so the resumed run is the uninterrupted one.
    from rltorch.agents.ppo import PPO, PPOConfig

    def config():
        return PPOConfig(env_id=env_id, num_envs=8, num_steps=16, seed=3, device="cpu", total_steps=8 * 16 * 6,
                         eval_interval=10_000, eval_episodes=4, stop_when_solved=False, log_interval=256)

    full = PPO(config())
    full.train()
    half = PPO(config())
    half.train(stop_at=300)
    half.save(tmp_path / "ckpt.pt")
    resumed = PPO.load(tmp_path / "ckpt.pt")
    resumed.train()
    try:
        assert resumed.env_steps == full.env_steps
        for a, b in zip(resumed.net.parameters(), full.net.parameters()):
            assert torch.equal(a, b)
        assert torch.equal(resumed.env.env.state, full.env.env.state)
        assert torch.equal(resumed.env.env.returns, full.env.env.returns)
    finally:
        for agent in (full, half, resumed):
            agent.close()
