"""MountainCar-v0, MountainCarContinuous-v0, Pendulum-v1 and Acrobot-v1 on rltorch's
kernels: gymnasium's golden values, the env surface (spaces, registration, autoreset
modes, seeding, set_state, checkpoints, NumPy face, rendering) and the ops' contract
(kernel = reference, opcheck, compile, sizes, thread counts, CPU = CUDA).
Fidelity against gymnasium over many states and episodes: test_classic_control_fidelity.py;
bad input: test_classic_control_robustness.py."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import rltorch
from rltorch import _ext, _reference_classic, ops
from rltorch._reference_classic import SPECS
from tests.classic_control_support import (
    CONTINUOUS,
    ENV_CLASSES,
    NAMES,
    as_action_tensor,
    fresh_tensors,
    gym_env,
    make_env,
    random_actions,
    random_states,
)
from tests.conftest import requires_cuda, requires_ext

# ---------------------------------------------------------------- gymnasium's golden values

# gymnasium 1.4: gym.make(ID).reset(seed=42) leaves these states; one step with the action
# gives the next (values printed by Python's repr; MountainCarContinuous's is float32).
GOLDEN = {
    "mountain_car": ([-0.44520879028880733, 0.0], 2, [-4.4479131095562391e-01, 4.1747933318344926e-04], -1.0),
    "mountain_car_continuous": ([-0.44520879028880733, 0.0], 0.5, [-4.4504130e-01, 1.6747933e-04], -0.025),
    "pendulum": ([1.721316619099806, -0.12224312049589536], 1.0, [1.7597804577973981, 0.7692767739518424],
                 -2.965425241287541),
    "acrobot": ([0.05479121, -0.012224312, 0.07171959, 0.039473604], 2,
                [0.04845445617775009, 0.03643306730983822, -0.1319823183538383, 0.43717728508877896], -1.0),
}


@pytest.mark.parametrize("name", NAMES)
def test_golden_step_from_gymnasiums_seed42_reset(name, device):
    start, action, after, reward = GOLDEN[name]
    env = gym_env(name)
    env.reset(seed=42)
    start = np.asarray(env.state, dtype=np.float64)  # the exact float32/float64 values behind the repr
    np.testing.assert_allclose(start, GOLDEN[name][0], rtol=1e-7)
    ours = make_env(name, 1, device=device)
    ours.reset(seed=0)
    ours.set_state(start[None])
    obs, rew, term, trunc, _ = ours.step(as_action_tensor(name, np.array([action]), device))
    after = np.asarray(after, dtype=np.float32 if name == "mountain_car_continuous" else np.float64)
    np.testing.assert_allclose(ours.state[:, 0].cpu().numpy(), after, rtol=1e-13 if name == "acrobot" else 1e-15,
                               atol=1e-18)
    assert rew.item() == np.float32(reward)
    assert not term.item() and not trunc.item()
    o, _, _, _, _ = env.step(np.array([action], dtype=np.float32) if SPECS[name].continuous else action)
    np.testing.assert_allclose(obs[0].cpu().numpy(), o, rtol=2e-7, atol=1e-9)


def test_mountain_car_continuous_golden_is_bit_exact():
    # NumPy 2's float32/float64 mix reproduced exactly: state bits and reward.
    env = make_env("mountain_car_continuous", 1)
    env.reset(seed=0)
    env.set_state(np.array([[-0.44520879028880733, 0.0]]))
    _, reward, _, _, _ = env.step(torch.tensor([[0.5]]))
    assert env.state[:, 0].tolist() == [float(np.float32(-4.4504130e-01)), float(np.float32(1.6747933e-04))]
    assert reward.item() == np.float32(-0.025)


# ---------------------------------------------------------------- the env surface


@pytest.mark.parametrize("name", NAMES)
def test_spaces_match_gymnasium(name):
    ref = gym.make(SPECS[name].gym_id)
    env = make_env(name, 5)
    for ours, theirs in ((env.single_observation_space, ref.observation_space),
                         (env.single_action_space, ref.action_space)):
        assert type(ours) is type(theirs)
        if isinstance(ours, gym.spaces.Box):
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            np.testing.assert_array_equal(ours.low, theirs.low)
            np.testing.assert_array_equal(ours.high, theirs.high)
        else:
            assert ours.n == theirs.n
    assert env.observation_space.shape == (5, *ref.observation_space.shape)
    assert env.max_episode_steps == ref.spec.max_episode_steps


@pytest.mark.parametrize("name", NAMES)
def test_make_vec_registration(name):
    spec = SPECS[name]
    env = gym.make_vec(f"rltorch/{spec.gym_id}", num_envs=3)
    assert type(env) is ENV_CLASSES[name] and env.max_episode_steps == spec.max_episode_steps
    assert gym.spec(f"rltorch/{spec.gym_id}").reward_threshold == gym.spec(spec.gym_id).reward_threshold
    custom = gym.make_vec(f"rltorch/{spec.gym_id}", num_envs=2, max_episode_steps=7, autoreset_mode="same_step")
    assert custom.max_episode_steps == 7 and custom.autoreset_mode is AutoresetMode.SAME_STEP
    # A single env is gymnasium's own scalar env.
    single = gym.make_vec(f"rltorch/{spec.gym_id}", num_envs=2, vectorization_mode="sync")
    assert isinstance(single, gym.vector.SyncVectorEnv)


def test_env_parameters_reach_the_kernel():
    pend = gym.make_vec("rltorch/Pendulum-v1", num_envs=1, g=9.81)
    assert pend.g == 9.81 and pend.numpy().g == 9.81
    ref = gym.make("Pendulum-v1", g=9.81).unwrapped
    ref.reset(seed=0)
    pend.reset(seed=0)
    pend.set_state(np.array([[2.0, 0.5]]))
    ref.state = np.array([2.0, 0.5])
    pend.step(torch.tensor([[0.3]]))
    ref.step(np.array([0.3], dtype=np.float32))
    np.testing.assert_allclose(pend.state[:, 0].numpy(), ref.state, rtol=1e-15)
    # goal_velocity: at the flag but slower than the goal velocity is not the goal.
    for goal, expected in ((0.0, True), (0.05, False)):
        car = make_env("mountain_car", 1, goal_velocity=goal)
        car.reset(seed=0)
        car.set_state(np.array([[0.55, 0.01]]))
        _, _, term, _, _ = car.step(torch.tensor([1]))
        assert term.item() is expected


@pytest.mark.parametrize("name", NAMES)
def test_step_outputs_dtypes_shapes_and_info(name, device):
    spec = SPECS[name]
    n = 6
    for mode in ("next_step", "same_step", "disabled"):
        env = make_env(name, n, device=device, seed=1, autoreset_mode=mode, episode_statistics=True)
        obs, info = env.reset()
        assert obs.shape == (n, spec.obs_dim) and obs.dtype == torch.float32 and obs.device.type == device.type
        assert info == {}
        actions = as_action_tensor(name, random_actions(name, n, np.random.default_rng(0)), device)
        obs, reward, term, trunc, info = env.step(actions)
        assert obs.shape == (n, spec.obs_dim) and obs.dtype == torch.float32
        assert reward.shape == (n,) and reward.dtype == torch.float32
        assert term.dtype == trunc.dtype == torch.bool
        assert info["episode"]["r"].dtype == torch.float32 and info["episode"]["l"].dtype == torch.int32
        expected = {"episode", "_episode"} | ({"final_obs", "_final_obs", "final_info", "_final_info"}
                                              if mode == "same_step" else set())
        assert set(info) == expected
        assert env.observation_space.contains(obs.cpu().numpy())


def _ending_states(name: str, n: int) -> np.ndarray:
    """States where env 0 ends on its next step (terminates, or is truncated for Pendulum) and the others do not."""
    states = random_states(name, n, np.random.default_rng(0))
    if name in ("mountain_car", "mountain_car_continuous"):
        states[:, 0] = -0.5
        states[:, 1] = 0.0
        states[0] = [0.59, 0.06]
    elif name == "acrobot":
        states[:] = 0.0
        states[0] = [np.pi, 0.0, 0.0, 0.0]  # the tip straight above the pivot
    return states


def _ending_steps(name: str, n: int) -> np.ndarray:
    steps = np.zeros(n, dtype=np.int64)
    if name == "pendulum":  # never terminates: env 0 is truncated instead
        steps[0] = SPECS[name].max_episode_steps - 1
    else:
        steps[1:] = 1  # MountainCarContinuous: the envs that must not end step in float32
    return steps


@pytest.mark.parametrize("name", NAMES)
def test_next_step_autoreset_row(name, device):
    n = 3
    actions = as_action_tensor(name, np.ones(n), device)
    env = make_env(name, n, device=device, seed=11, episode_statistics=True)
    env.reset()
    episode_before = env.episode.clone()
    env.set_state(_ending_states(name, n), _ending_steps(name, n))
    _, _, term, trunc, info = env.step(actions)
    assert (term | trunc).tolist() == [True, False, False]
    assert info["_episode"].tolist() == [True, False, False]
    # The next call resets env 0 only: reward 0, flags False, the action ignored.
    for action in (0, 2) if not SPECS[name].continuous else (-1.0, 1.0):
        again = make_env(name, n, device=device, seed=11, episode_statistics=True)
        again.reset()
        again.set_state(_ending_states(name, n), _ending_steps(name, n))
        again.step(actions)
        first = np.array([action, 1, 1])
        obs, reward, term, trunc, info = again.step(as_action_tensor(name, first, device))
        assert reward[0].item() == 0.0 and not term[0] and not trunc[0] and not info["_episode"].any()
        fresh = _reference_classic.initial_state(name, again._seed, episode_before.cpu(), *SPECS[name].default_bounds)
        assert torch.equal(again.state[:, 0].cpu(), fresh[:, 0])
        torch.testing.assert_close(obs[0].cpu(), _reference_classic.observe(name, fresh)[0], rtol=0, atol=1e-7)
        assert again.steps[0].item() == 0 and again.returns[0].item() == 0.0
        assert again.steps[1:].tolist() == (_ending_steps(name, n)[1:] + 2).tolist()


@pytest.mark.parametrize("name", NAMES)
def test_same_step_autoreset_final_obs(name, device):
    n = 3
    actions = as_action_tensor(name, np.ones(n), device)
    nxt = make_env(name, n, device=device, seed=4, episode_statistics=True)
    same = make_env(name, n, device=device, seed=4, autoreset_mode="same_step", episode_statistics=True)
    for e in (nxt, same):
        e.reset()
        e.set_state(_ending_states(name, n), _ending_steps(name, n))
    n_obs, n_rew, n_term, n_trunc, n_info = nxt.step(actions)
    obs, rew, term, trunc, info = same.step(actions)
    assert torch.equal(rew, n_rew) and torch.equal(term, n_term) and torch.equal(trunc, n_trunc)
    assert info["_final_obs"].tolist() == [True, False, False]
    assert torch.equal(info["final_obs"][0], n_obs[0]) and not info["final_obs"][1:].any()
    assert torch.equal(obs[1:], n_obs[1:])
    assert torch.equal(info["episode"]["r"], n_info["episode"]["r"])
    # Env 0 restarted in this call, with the draw NEXT_STEP makes one call later.
    n_obs2, *_ = nxt.step(actions)
    assert torch.equal(obs[0], n_obs2[0])
    assert same.steps[0].item() == 0 and not same.prev_done.any()


@pytest.mark.parametrize("name", NAMES)
def test_disabled_autoreset_with_reset_mask(name):
    n = 3
    actions = as_action_tensor(name, np.ones(n))
    env = make_env(name, n, seed=2, autoreset_mode=AutoresetMode.DISABLED)
    env.reset()
    env.set_state(_ending_states(name, n), _ending_steps(name, n))
    _, _, term, trunc, _ = env.step(actions)
    assert (term | trunc).tolist() == [True, False, False]
    before = [t.clone() for t in (env.state, env.steps, env.prev_done, env.episode, env.returns)]
    with pytest.raises(RuntimeError, match="autoreset is disabled"):
        env.step(actions)
    for t, b in zip((env.state, env.steps, env.prev_done, env.episode, env.returns), before):
        assert torch.equal(t, b)  # nothing moved
    kept = env.state[:, 1:].clone()
    env.reset(options={"reset_mask": np.array([True, False, False])})
    assert torch.equal(env.state[:, 1:], kept) and env.steps[0].item() == 0
    _, _, term, trunc, _ = env.step(actions)
    assert not (term | trunc)[0]


@pytest.mark.parametrize("name", NAMES)
def test_truncation_at_the_time_limit_and_both_flags(name):
    spec = SPECS[name]
    n = 3
    env = make_env(name, n, seed=0, max_episode_steps=spec.max_episode_steps, episode_statistics=True)
    env.reset()
    states = _ending_states(name, n)
    limit = spec.max_episode_steps
    env.set_state(states, np.array([limit - 1, limit - 2, limit - 1]))
    _, reward, term, trunc, info = env.step(as_action_tensor(name, np.ones(n)))
    assert trunc.tolist() == [True, False, True]
    if name != "pendulum":  # env 0 also terminates on that step: both flags, as gymnasium's TimeLimit gives
        assert term.tolist() == [True, False, False]
    assert info["episode"]["l"].tolist() == [limit, 0, limit]
    # The reported return is the reward of the one step since set_state.
    assert info["episode"]["r"][0].item() == reward[0].item()


@pytest.mark.parametrize("name", NAMES)
def test_episode_statistics_sum_the_rewards(name):
    n = 64
    env = make_env(name, n, seed=3, autoreset_mode="same_step", episode_statistics=True, max_episode_steps=40)
    env.reset()
    rng = np.random.default_rng(1)
    running = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    ended = 0
    for _ in range(90):
        _, reward, term, trunc, info = env.step(as_action_tensor(name, random_actions(name, n, rng)))
        running += reward.double().numpy()
        lengths += 1
        done = (term | trunc).numpy()
        assert info["_episode"].numpy().tolist() == done.tolist()
        np.testing.assert_allclose(info["episode"]["r"].numpy()[done], running[done], rtol=1e-5, atol=1e-4)
        assert info["episode"]["l"].numpy()[done].tolist() == lengths[done].tolist()
        running[done] = 0.0
        lengths[done] = 0
        ended += done.sum()
    assert ended >= n


@pytest.mark.parametrize("name", NAMES)
def test_reset_options_bounds_and_seeding(name, device):
    spec = SPECS[name]
    env = make_env(name, 4000, device=device)
    first, second = spec.bound_names
    obs, _ = env.reset(seed=3, options={first: 0.1, second: 0.2} if first == "low" else {first: 0.3, second: 0.0})
    state = env.state.cpu()
    if name in ("mountain_car", "mountain_car_continuous"):
        assert (state[0] >= 0.1).all() and (state[0] < 0.2).all() and (state[1] == 0).all()
    elif name == "pendulum":
        assert (state[0].abs() <= 0.3).all() and (state[1] == 0).all()
        assert state[0].std() > 0.15
    else:
        assert (state >= np.float32(0.1)).all() and (state <= np.float32(0.2)).all()
        assert torch.equal(state, state.float().double())  # float32 draws, as gymnasium's astype
    assert env.bounds == ((0.1, 0.2) if first == "low" else (0.3, 0.0))
    # The bounds stay for the autoresets; a reset without options restores the defaults.
    env.reset(seed=3)
    assert env.bounds == spec.default_bounds


@pytest.mark.parametrize("name", NAMES)
def test_default_reset_distribution_matches_gymnasium(name):
    # The same distribution as gymnasium's reset (uniform bounds per component), other numbers.
    spec = SPECS[name]
    env = make_env(name, 20_000)
    env.reset(seed=9)
    ours = env.state.numpy()
    ref = gym_env(name)
    theirs = np.array([np.asarray((ref.reset(seed=s), ref.state)[1], dtype=np.float64) for s in range(2000)]).T
    for row, (a, b) in enumerate(zip(ours, theirs)):
        assert a.min() >= b.min() - 0.01 * (np.ptp(b) + 1e-12) and a.max() <= b.max() + 0.01 * (np.ptp(b) + 1e-12)
        assert abs(a.mean() - b.mean()) < 0.05 * (np.ptp(b) + 1e-12) + 1e-12, (spec.state_rows[row], a.mean(), b.mean())


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_trajectories_other_seed_differs(name, device):
    def rollout(seed):
        env = make_env(name, 50, device=device, seed=seed)
        env.reset()
        rng = np.random.default_rng(0)
        for _ in range(30):
            obs, *_ = env.step(as_action_tensor(name, random_actions(name, 50, rng), device))
        return obs.cpu()

    assert torch.equal(rollout(1), rollout(1))
    assert not torch.equal(rollout(1), rollout(2))


@pytest.mark.parametrize("name", NAMES)
def test_thread_count_and_parallel_mode_do_not_change_results(name):
    n = 20_000 if name != "acrobot" else 6000  # several parallel_for chunks
    results = []
    previous_threads, previous_mode = torch.get_num_threads(), ops.cpu_parallel()
    try:
        for threads, mode in ((1, "serial"), (2, "static"), (2, "adaptive")):
            torch.set_num_threads(threads)
            ops.set_cpu_parallel(mode)
            env = make_env(name, n, seed=9, autoreset_mode="same_step", max_episode_steps=25)
            env.reset()
            rng = np.random.default_rng(1)
            for _ in range(30):
                out = env.step(as_action_tensor(name, random_actions(name, n, rng)))
            results.append((env.state.clone(), env.steps.clone(), env.episode.clone(), env.returns.clone(),
                            out[0], out[1], out[2]))
    finally:
        torch.set_num_threads(previous_threads)
        ops.set_cpu_parallel(previous_mode)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_set_state_steps_and_state_dict_round_trip(name, device):
    n = 33
    env = make_env(name, n, device=device, seed=5, autoreset_mode="same_step", max_episode_steps=30)
    env.reset()
    rng = np.random.default_rng(2)
    for _ in range(17):
        env.step(as_action_tensor(name, random_actions(name, n, rng), device))
    saved = env.state_dict()
    assert set(saved) == {"num_envs", "state", "steps", "prev_done", "episode", "returns", "seed",
                          *SPECS[name].bound_names, "needs_reset"}
    actions = [as_action_tensor(name, random_actions(name, n, rng), device) for _ in range(20)]
    first = [env.step(a)[0].clone() for a in actions]
    restored = make_env(name, n, device=device, seed=99, autoreset_mode="same_step", max_episode_steps=30)
    restored.load_state_dict(saved)
    second = [restored.step(a)[0] for a in actions]
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_mountain_car_continuous_set_state_steps_choose_float64_or_float32():
    env = make_env("mountain_car_continuous", 2)
    env.reset(seed=0)
    row = np.array([[-0.5123456789012345, 0.0123456789012345]] * 2)
    env.set_state(row, np.array([0, 3]))
    assert env.state[:, 0].tolist() == row[0].tolist()
    assert env.state[:, 1].tolist() == row[0].astype(np.float32).astype(np.float64).tolist()


@pytest.mark.parametrize("name", CONTINUOUS)
def test_box_actions_take_n_or_n_by_1_and_float64(name):
    a = make_env(name, 4, seed=0)
    b = make_env(name, 4, seed=0)
    a.reset()
    b.reset()
    values = np.array([0.3, -0.7, 1.9, -2.5])
    out_a = a.step(torch.tensor(values, dtype=torch.float64))  # [N] float64: rounded to float32
    out_b = b.step(torch.tensor(values, dtype=torch.float32).reshape(4, 1))
    assert torch.equal(out_a[0], out_b[0]) and torch.equal(out_a[1], out_b[1])
    with pytest.raises(TypeError, match="floating"):
        a.step(torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="shape"):
        a.step(torch.zeros(4, 2))


@pytest.mark.parametrize("name", NAMES)
def test_numpy_face_follows_gymnasium_api(name):
    env = make_env(name, 4, seed=1, autoreset_mode="same_step", max_episode_steps=3)
    face = env.numpy()
    obs, info = face.reset()
    assert isinstance(obs, np.ndarray) and obs.dtype == np.float32 and info == {}
    for _ in range(3):
        obs, reward, term, trunc, info = face.step(face.action_space.sample())
    assert trunc.all() and reward.dtype == np.float32
    assert info["final_obs"].dtype == object and info["final_obs"][0].shape == (SPECS[name].obs_dim,)
    assert face.autoreset_mode is AutoresetMode.SAME_STEP and face.max_episode_steps == 3
    for attribute in ENV_CLASSES[name].numpy_attributes:
        assert getattr(face, attribute) == getattr(env, attribute)
    with pytest.raises(AttributeError):
        face.state_dict  # noqa: B018  (the torch env's extras stay on the torch env)


@pytest.mark.parametrize("name", NAMES)
def test_render_rgb_array(name):
    env = make_env(name, 2, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert (frame != 255).any() and (frame == 255).any()
    assert make_env(name, 2).render() is None


def test_info_lists_classic_control_ops():
    listed = rltorch.info()["ops"]
    expected = "extension" if _ext.HAS_EXT else "reference"
    for name in NAMES:
        for kind in ("step", "reset"):
            assert listed[f"{name}_{kind}_"]["cpu"] == expected


# ---------------------------------------------------------------- the ops


@requires_ext
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_extension_matches_reference(name, mode, device):
    spec = SPECS[name]
    n = 301
    ext, ref = fresh_tensors(name, n, device), fresh_tensors(name, n, device)
    rng = np.random.default_rng(mode)
    ext[0].copy_(torch.as_tensor(random_states(name, n, rng).T, device=device))
    ref[0].copy_(ext[0])
    for t in range(40):
        if mode == 2:  # disabled: reset what ended, as a user would
            mask = ext[2].clone()
            ops.classic_reset_(name, *ext, mask, 5)
            _reference_classic.classic_reset_(name, *ref, mask, 5, *spec.default_bounds)
        a = as_action_tensor(name, random_actions(name, n, rng), device)
        out_e = ops.classic_step_(name, *ext, a, 5, max_episode_steps=25, autoreset_mode=mode)
        out_r = _reference_classic.classic_step_(name, *ref, a, 5, *spec.default_bounds, 25, mode, spec.default_param)
        for x, y in zip(out_e, out_r):
            assert x.dtype == y.dtype and x.shape == y.shape
            if x.dtype == torch.float32:
                torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)
            else:
                assert torch.equal(x, y), t
        torch.testing.assert_close(ext[0], ref[0], rtol=1e-12, atol=1e-12)
        for x, y in zip(ext[1:], ref[1:]):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-9)
        ref[0].copy_(ext[0])  # lockstep: Acrobot is chaotic, ulps grow
        ref[4].copy_(ext[4])


@requires_ext
@pytest.mark.parametrize("name", NAMES)
def test_reset_op_matches_reference_generator(name, device):
    spec = SPECS[name]
    ext, ref = ops.new_classic_state(name, 257, device), ops.new_classic_state(name, 257, device)
    for tensors in (ext, ref):
        tensors[3].fill_(3)
        tensors[4].fill_(7.0)
    mask = torch.arange(257, device=device) % 3 == 0
    bounds = (-0.2, 0.3) if spec.bound_names[0] == "low" else (0.7, 0.2)
    o1 = ops.classic_reset_(name, *ext, mask, -12345, *bounds)
    o2 = _reference_classic.classic_reset_(name, *ref, mask, -12345, *bounds)
    torch.testing.assert_close(o1, o2, rtol=0, atol=1e-7)
    for x, y in zip(ext, ref):
        assert torch.equal(x, y)
    assert ext[3].tolist() == [4 if i % 3 == 0 else 3 for i in range(257)]
    assert ext[4].tolist() == [0.0 if i % 3 == 0 else 7.0 for i in range(257)]


@requires_ext
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_opcheck(name, mode, device):
    spec = SPECS[name]
    state = fresh_tensors(name, 17, device)
    a = as_action_tensor(name, random_actions(name, 17, np.random.default_rng(0)), device)
    params = (spec.default_param,) if spec.param_name else ()
    step = getattr(torch.ops.rltorch, spec.step_op).default
    reset = getattr(torch.ops.rltorch, spec.reset_op).default
    torch.library.opcheck(step, (*state, a, 3, *spec.default_bounds, spec.max_episode_steps, mode, *params))
    mask = torch.arange(17, device=device) % 2 == 0
    torch.library.opcheck(reset, (*state, mask, 3, *spec.default_bounds))
    torch.library.opcheck(reset, (*state, None, 3, *spec.default_bounds))


@requires_ext
@pytest.mark.parametrize("name", ["mountain_car", "pendulum"])
def test_torch_compile_fullgraph(name):
    n = 64

    def step(state, steps, prev_done, episode, returns, actions):
        out = ops.classic_step_(name, state, steps, prev_done, episode, returns, actions, 8)
        return out[0] * 2.0, out[1].sum(), out[4]

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    a_state, b_state = fresh_tensors(name, n, seed=8), fresh_tensors(name, n, seed=8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = as_action_tensor(name, random_actions(name, n, rng))
        for x, y in zip(step(*a_state, a), compiled(*b_state, a)):
            assert torch.equal(x, y)
        for x, y in zip(a_state, b_state):
            assert torch.equal(x, y)  # the in-place updates survive compilation


@requires_ext
@pytest.mark.parametrize("name", ["acrobot", "pendulum"])
def test_env_step_and_state_dict_compile_fullgraph(name):
    # The env's own step (argument checks, info dict) traces too, and state read between two
    # steps of one graph keeps its value (it goes through rltorch's snapshot op).
    env = make_env(name, 4, seed=0, episode_statistics=True)
    env.reset()
    actions = as_action_tensor(name, np.ones(4))

    def two_steps(actions):
        env.step(actions)
        saved = env.state_dict()
        obs, reward, *_ = env.step(actions)
        return saved["steps"], saved["returns"], obs, reward

    steps, returns, obs, reward = torch.compile(two_steps, backend="aot_eager", fullgraph=True)(actions)
    assert steps.tolist() == [1, 1, 1, 1] and env.steps.tolist() == [2, 2, 2, 2]
    assert not torch.equal(returns, env.returns) and obs.shape == (4, SPECS[name].obs_dim)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 3, 5, 1 << 12])
def test_edge_sizes(name, n, device):
    env = make_env(name, n, device=device, seed=0)
    obs, _ = env.reset()
    ref = fresh_tensors(name, n, device, env._seed)
    torch.testing.assert_close(obs, _reference_classic.observe(name, ref[0]), rtol=0, atol=1e-7)
    rng = np.random.default_rng(0)
    spec = SPECS[name]
    for _ in range(20):
        a = as_action_tensor(name, random_actions(name, n, rng), device)
        env.step(a)
        _reference_classic.classic_step_(name, *ref, a, env._seed, *spec.default_bounds, spec.max_episode_steps, 0,
                                         spec.default_param)
        torch.testing.assert_close(env.state, ref[0], rtol=1e-12, atol=1e-12)
        ref[0].copy_(env.state)
    assert torch.equal(env.steps, ref[1]) and torch.equal(env.episode, ref[3])


@pytest.mark.parametrize("name", NAMES)
def test_same_state_same_bits_in_vector_lanes_and_scalar_tail(name):
    # The CPU kernel steps 4 envs per vector operation and the last n % 4 one at a time:
    # the same state gives the same bits wherever it sits, also for states far outside the box.
    rng = np.random.default_rng(8)
    states = np.concatenate([random_states(name, 20, rng), random_states(name, 20, rng, beyond=True)])
    actions = random_actions(name, 40, rng, beyond=True)
    env = make_env(name, 40 * 7)
    env.reset(seed=0)
    env.set_state(
        np.repeat(states, 7, axis=0), np.tile([0, 1, 2, 3, 0, 1, 2], 40) * (name != "mountain_car_continuous")
    )
    obs, reward, term, _, _ = env.step(as_action_tensor(name, np.repeat(actions, 7)))
    for values in (env.state.t(), obs, reward, term):
        grouped = values.reshape(40, 7, -1)
        assert torch.equal(grouped, grouped[:, :1].expand_as(grouped))


@requires_ext
@pytest.mark.parametrize("name", NAMES)
def test_zero_envs(name, device):
    state = ops.new_classic_state(name, 0, device)
    assert ops.classic_reset_(name, *state, None, 1).shape == (0, SPECS[name].obs_dim)
    out = ops.classic_step_(name, *state, as_action_tensor(name, np.zeros(0), device), 1)
    assert out[0].shape == (0, SPECS[name].obs_dim) and out[1].shape == (0,)


@requires_cuda
@requires_ext
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_cuda_matches_cpu(name, mode):
    # One header, no FMA contraction on either device, the same counter-based resets:
    # bit-identical, wide states and resets included.
    n = 5000
    envs = [make_env(name, n, device=d, seed=3, autoreset_mode=mode, max_episode_steps=40) for d in ("cpu", "cuda")]
    rng = np.random.default_rng(0)
    start = np.concatenate([random_states(name, n // 2, rng), random_states(name, n - n // 2, rng, beyond=True)])
    for e in envs:
        e.reset()
        e.set_state(start)
    for _ in range(60):
        a = as_action_tensor(name, random_actions(name, n, rng, beyond=True))
        cpu, cuda = [e.step(a.to(e.device)) for e in envs]
        for want, got in zip(cpu[:4], cuda[:4]):
            assert torch.equal(got.cpu(), want)
        assert torch.equal(envs[1].state.cpu(), envs[0].state)
        assert torch.equal(envs[1].returns.cpu(), envs[0].returns)
    assert torch.equal(envs[0].episode, envs[1].episode.cpu()) and (envs[0].episode > 1).any()
