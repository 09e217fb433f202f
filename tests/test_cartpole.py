"""CartPole-v1: parity with gymnasium, autoreset modes, determinism, ops contract."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.vector import AutoresetMode

import rltorch.envs
from rltorch import _ext, _reference
from rltorch.envs import CartPoleVecEnv, CartPoleVecEnvNumpy
from rltorch.ops import cartpole as cp_ops
from tests.conftest import requires_cuda, requires_ext

THETA_LIMIT = 12 * 2 * math.pi / 360


def gym_vector_state(num_envs: int, seed: int) -> np.ndarray:
    """float64 [4, N] initial states from gymnasium's own CartPoleVectorEnv."""
    env = CartPoleVectorEnv(num_envs=num_envs)
    env.reset(seed=seed)
    return env.state.copy()


def random_states(n: int, seed: int, spread: float = 1.0) -> np.ndarray:
    """[N, 4] float64 states covering the reachable region (and some beyond pi/4)."""
    rng = np.random.default_rng(seed)
    scale = np.array([2.4, 3.0, 0.25, 3.5]) * spread
    return rng.uniform(-1, 1, size=(n, 4)) * scale


# ---------------------------------------------------------------- gymnasium parity


def test_golden_vector_reset_seed42_then_step():
    # FACTS.md: CartPoleVectorEnv(3).reset(seed=42), step([1, 0, 1]).
    env = CartPoleVecEnv(3)
    env.reset(seed=0)
    obs = env.set_state(gym_vector_state(3, 42).T)
    np.testing.assert_allclose(
        obs.numpy(),
        [[0.0273956, 0.0197368, 0.02611397, -0.00496141], [-0.00611216, -0.04058227, 0.02860643, -0.0129202],
         [0.03585979, 0.04756223, -0.03718864, 0.0426765]], atol=1e-7)
    obs, reward, term, trunc, _ = env.step(torch.tensor([1, 0, 1]))
    np.testing.assert_allclose(
        obs.numpy(),
        [[0.02779034, 0.2144747, 0.02601474, -0.289292], [-0.0069238, -0.23610254, 0.02834803, 0.28864938],
         [0.03681104, 0.24319717, -0.03633511, -0.26150396]], atol=1e-7)
    assert reward.tolist() == [1.0, 1.0, 1.0]
    assert not term.any() and not trunc.any()


@pytest.mark.parametrize("action,steps,final", [
    (1, 10, [0.20159529, 1.9464185, -0.22034578, -2.9908078]),
    (0, 8, [-0.0832091, -1.573571, 0.21172485, 2.5488186]),
])
def test_golden_constant_policy_terminates(device, action, steps, final):
    # FACTS.md: from CartPoleEnv.reset(seed=42), always-1 ends on step 10, always-0 on step 8.
    ref = gym.make("CartPole-v1")
    ref.reset(seed=42)
    env = CartPoleVecEnv(1, device=device, episode_statistics=True)
    env.set_state(np.asarray(ref.unwrapped.state)[None])
    for t in range(1, steps + 1):
        obs, reward, term, trunc, info = env.step(torch.tensor([action], device=device))
        assert reward.item() == 1.0
        assert bool(term.item()) == (t == steps)
        assert not trunc.item()
    np.testing.assert_allclose(obs.cpu().numpy()[0], final, rtol=1e-6)
    assert info["_episode"].tolist() == [True]
    assert info["episode"]["l"].tolist() == [steps] and info["episode"]["r"].tolist() == [float(steps)]


def test_one_step_matches_gymnasium_vector_env(device):
    # Identical float64 states and actions: gymnasium's CartPoleVectorEnv step vs ours.
    n = 4097  # odd: exercises the scalar tail after the 4-wide vector loop
    states = random_states(n, 1, spread=1.5)  # |theta| up to 0.375; add some beyond pi/4
    states[::97, 2] = np.linspace(-3.0, 3.0, len(states[::97]))
    actions = np.random.default_rng(2).integers(0, 2, size=n)
    ref = CartPoleVectorEnv(num_envs=n)
    ref.reset(seed=0)
    ref.state = states.T.copy()
    ref_obs, ref_reward, ref_term, ref_trunc, _ = ref.step(actions)
    env = CartPoleVecEnv(n, device=device)
    env.reset(seed=0)
    env.set_state(states)
    obs, reward, term, trunc, _ = env.step(torch.as_tensor(actions, device=device))
    np.testing.assert_allclose(env.state.cpu().numpy(), ref.state, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(obs.cpu().numpy(), ref_obs, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(reward.cpu().numpy(), ref_reward)
    np.testing.assert_array_equal(term.cpu().numpy(), ref_term)
    np.testing.assert_array_equal(trunc.cpu().numpy(), ref_trunc)


def test_random_policy_episodes_match_gym_make(device):
    # gym.make("CartPole-v1") (CartPoleEnv + TimeLimit) episode by episode, from the
    # same initial states, with the same random actions: identical flags and rewards.
    n = 48
    refs = [gym.make("CartPole-v1") for _ in range(n)]
    for i, r in enumerate(refs):
        r.reset(seed=1000 + i)
    init = np.stack([np.asarray(r.unwrapped.state, dtype=np.float64) for r in refs])
    env = CartPoleVecEnv(n, device=device)
    env.reset(seed=0)
    env.set_state(init)
    rng = np.random.default_rng(3)
    alive = np.ones(n, dtype=bool)
    steps = 0
    while alive.any():
        actions = rng.integers(0, 2, size=n)
        obs, reward, term, trunc, _ = env.step(torch.as_tensor(actions, device=device))
        obs, reward, term, trunc = (t.cpu().numpy() for t in (obs, reward, term, trunc))
        for i in np.flatnonzero(alive):
            r_obs, r_reward, r_term, r_trunc, _ = refs[i].step(int(actions[i]))
            np.testing.assert_allclose(obs[i], r_obs, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(env.state[:, i].cpu().numpy(), refs[i].unwrapped.state, rtol=1e-10, atol=1e-10)
            assert (reward[i], term[i], trunc[i]) == (r_reward, r_term, r_trunc), (i, steps)
            if r_term or r_trunc:
                alive[i] = False
        steps += 1
    assert steps >= 10


@pytest.mark.parametrize("terminal", [False, True])
def test_truncation_on_step_500(device, terminal):
    # 499 steps taken; the 500th truncates, and also terminates when the pole falls then.
    state = [0.0, 0.0, 0.2094 if terminal else 0.0, 1.0 if terminal else 0.0]
    ref = gym.make("CartPole-v1")
    ref.reset(seed=0)
    ref.unwrapped.state = np.array(state)
    ref._elapsed_steps = 499
    _, r_reward, r_term, r_trunc, _ = ref.step(1)
    assert r_trunc and r_term == terminal
    env = CartPoleVecEnv(1, device=device, episode_statistics=True)
    env.set_state(np.array([state]), steps=499)
    _, reward, term, trunc, info = env.step(torch.tensor([1], device=device))
    assert (reward.item(), bool(term.item()), bool(trunc.item())) == (r_reward, r_term, r_trunc)
    assert info["_episode"].tolist() == [True] and info["episode"]["l"].tolist() == [500]


def test_full_500_step_episode_truncates(device):
    # A balancing controller survives: truncated exactly on step 500, never before.
    env = CartPoleVecEnv(2, device=device, seed=5, episode_statistics=True)
    obs, _ = env.reset()
    for t in range(1, 501):
        actions = ((obs[:, 2] + 0.5 * obs[:, 3] + 0.01 * obs[:, 0] + 0.1 * obs[:, 1]) > 0).long()
        obs, reward, term, trunc, info = env.step(actions)
        assert not term.any()
        assert bool(trunc.all()) == (t == 500)
    assert info["episode"]["l"].tolist() == [500, 500]
    assert info["episode"]["r"].tolist() == [500.0, 500.0]


# ---------------------------------------------------------------- autoreset modes


def _one_step_from_death(n: int = 3) -> np.ndarray:
    """States where env 0 terminates on its next step and the others do not."""
    states = np.zeros((n, 4))
    states[0] = [0.0, 0.0, 0.2094, 1.0]
    return states


def test_next_step_autoreset_row_matches_gymnasium(device):
    ref = CartPoleVectorEnv(num_envs=3)
    ref.reset(seed=0)
    ref.state = _one_step_from_death().T.copy()
    env = CartPoleVecEnv(3, device=device, seed=11)
    env.reset()
    episode_before = env.episode.clone()
    env.set_state(_one_step_from_death())
    r = ref.step(np.array([1, 1, 1]))
    o = env.step(torch.tensor([1, 1, 1], device=device))
    np.testing.assert_array_equal(o[2].cpu().numpy(), r[2])  # env 0 terminated
    assert o[2].tolist() == [True, False, False]
    # The next call resets env 0 only: reward 0, flags False, action ignored.
    r = ref.step(np.array([0, 0, 0]))
    for action in (0, 1):  # the ignored action does not matter
        env2 = CartPoleVecEnv(3, device=device, seed=11, episode_statistics=True)
        env2.reset()
        env2.set_state(_one_step_from_death())
        env2.step(torch.tensor([1, 1, 1], device=device))
        obs, reward, term, trunc, info = env2.step(torch.tensor([action, 0, 0], device=device))
        np.testing.assert_array_equal(reward.cpu().numpy(), r[1])
        np.testing.assert_array_equal(term.cpu().numpy(), r[2])
        np.testing.assert_array_equal(trunc.cpu().numpy(), r[3])
        assert reward.tolist() == [0.0, 1.0, 1.0]
        fresh = _reference.cartpole_initial_state(env2._seed, episode_before.cpu(), -0.05, 0.05)[:, 0]
        np.testing.assert_array_equal(env2.state[:, 0].cpu().numpy(), fresh.numpy())
        np.testing.assert_array_equal(obs[0].cpu().numpy(), fresh.numpy().astype(np.float32))
        assert env2.steps.tolist() == [0, 2, 2]
        assert not info["_episode"].any()
    # Gymnasium's reset obs is its own RNG's: only its bounds can be compared.
    assert np.all(np.abs(r[0][0]) <= 0.05)


def test_same_step_autoreset_final_obs(device):
    nxt = CartPoleVecEnv(3, device=device, seed=4)
    same = CartPoleVecEnv(3, device=device, seed=4, autoreset_mode="same_step", episode_statistics=True)
    assert same.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    for e in (nxt, same):
        e.reset()
        e.set_state(_one_step_from_death())
    a = torch.tensor([1, 0, 1], device=device)
    n_obs, n_rew, n_term, n_trunc, _ = nxt.step(a)
    obs, rew, term, trunc, info = same.step(a)
    assert torch.equal(rew, n_rew) and torch.equal(term, n_term) and torch.equal(trunc, n_trunc)
    assert info["_final_obs"].tolist() == [True, False, False]
    assert torch.equal(info["final_obs"][0], n_obs[0])
    assert not info["final_obs"][1:].any()
    assert torch.equal(obs[1:], n_obs[1:])
    # Env 0 restarted in this call, with the draw NEXT_STEP makes one call later.
    n_obs2, *_ = nxt.step(a)
    assert torch.equal(obs[0], n_obs2[0])
    assert same.steps.tolist() == [0, 1, 1] and not same.prev_done.any()
    assert info["episode"]["l"].tolist() == [1, 0, 0]


def test_disabled_autoreset_with_reset_mask(device):
    env = CartPoleVecEnv(3, device=device, seed=2, autoreset_mode=AutoresetMode.DISABLED)
    env.reset()
    env.set_state(_one_step_from_death())
    before = env.state.clone()
    _, _, term, _, _ = env.step(torch.tensor([1, 1, 1], device=device))
    assert term.tolist() == [True, False, False]
    if device.type == "cpu":  # on CUDA this is a device-side assert, which would poison the context
        with pytest.raises(RuntimeError, match="autoreset is disabled"):
            env.step(torch.tensor([1, 1, 1], device=device))
        with pytest.raises(RuntimeError, match="reset"):
            env.step(torch.tensor([1, 1, 1], device=device))
        env.reset(seed=2)
        env.set_state(_one_step_from_death())
        env.step(torch.tensor([1, 1, 1], device=device))
    kept = env.state[:, 1:].clone()
    obs, _ = env.reset(options={"reset_mask": np.array([True, False, False])})
    assert torch.equal(env.state[:, 1:], kept)
    assert env.steps.tolist() == [0, 1, 1]
    assert (obs[0].abs() <= 0.05).all() and not torch.equal(env.state[:, 0], before[:, 0])
    obs, reward, term, trunc, _ = env.step(torch.tensor([0, 0, 0], device=device))
    assert reward.tolist() == [1.0, 1.0, 1.0] and env.steps.tolist() == [1, 2, 2]


def test_sutton_barto_reward_matches_gymnasium(device):
    n = 64
    states = random_states(n, 9)
    actions = np.random.default_rng(1).integers(0, 2, size=(30, n))
    ref = CartPoleVectorEnv(num_envs=n, sutton_barto_reward=True)
    ref.reset(seed=0)
    ref.state = states.T.copy()
    env = CartPoleVecEnv(n, device=device, sutton_barto_reward=True, episode_statistics=True)
    env.reset(seed=0)
    env.set_state(states)
    saw_termination = False
    for t in range(3):  # the reset rows differ in obs (different generators) after that
        _, r_rew, r_term, _, _ = ref.step(actions[t])
        _, rew, term, _, info = env.step(torch.as_tensor(actions[t], device=device))
        np.testing.assert_array_equal(rew.cpu().numpy(), r_rew)
        np.testing.assert_array_equal(np.signbit(rew.cpu().numpy()), np.signbit(r_rew))  # -0.0 like gymnasium
        np.testing.assert_array_equal(term.cpu().numpy(), r_term)
        saw_termination |= bool(term.any())
        ret = info["episode"]["r"].cpu().numpy()
        assert np.all(ret[term.cpu().numpy()] == -1.0)
    assert saw_termination


# ---------------------------------------------------------------- gymnasium API


def test_spaces_dtypes_shapes_and_info(device):
    env = CartPoleVecEnv(5, device=device, seed=0)
    ref = CartPoleVectorEnv(num_envs=5)
    assert env.single_observation_space == ref.single_observation_space
    assert env.observation_space == ref.observation_space
    assert env.single_action_space == ref.single_action_space
    assert env.action_space == ref.action_space
    assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    obs, info = env.reset()
    assert obs.dtype == torch.float32 and obs.shape == (5, 4) and obs.device.type == device.type
    assert info == {}
    assert env.observation_space.contains(obs.cpu().numpy())
    obs, reward, term, trunc, info = env.step(torch.as_tensor(env.action_space.sample(), device=device))
    assert obs.shape == (5, 4) and obs.dtype == torch.float32
    assert reward.shape == (5,) and reward.dtype == torch.float32
    assert term.dtype == torch.bool and trunc.dtype == torch.bool and term.shape == trunc.shape == (5,)
    assert info == {}  # gymnasium's CartPoleVectorEnv: episode statistics are opt-in
    stats_env = CartPoleVecEnv(5, device=device, seed=0, episode_statistics=True)
    stats_env.reset()
    *_, info = stats_env.step(torch.as_tensor(env.action_space.sample(), device=device))
    assert set(info) == {"episode", "_episode"}
    assert info["episode"]["r"].dtype == torch.float32 and info["episode"]["l"].dtype == torch.int32
    assert info["_episode"].dtype == torch.bool and info["_episode"].shape == (5,)
    for t in (obs, reward, term, trunc, info["_episode"]):
        assert t.device.type == device.type
    env.close()
    assert env.closed


def test_make_vec_registration():
    env = gym.make_vec("rltorch/CartPole-v1", num_envs=8, vectorization_mode="vector_entry_point")
    assert isinstance(env.unwrapped, CartPoleVecEnv)
    assert env.num_envs == 8 and env.max_episode_steps == 500
    assert gym.spec("rltorch/CartPole-v1").reward_threshold == 475.0
    obs, _ = env.reset(seed=1)
    assert obs.shape == (8, 4)
    default = gym.make_vec("rltorch/CartPole-v1", num_envs=2)
    assert isinstance(default.unwrapped, CartPoleVecEnv)
    custom = gym.make_vec("rltorch/CartPole-v1", num_envs=2, max_episode_steps=7, autoreset_mode="same_step")
    assert custom.unwrapped.max_episode_steps == 7
    assert custom.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP


def test_autoreset_mode_strings():
    for name, mode in [("next_step", AutoresetMode.NEXT_STEP), ("same_step", AutoresetMode.SAME_STEP),
                       ("disabled", AutoresetMode.DISABLED), ("NextStep", AutoresetMode.NEXT_STEP)]:
        assert CartPoleVecEnv(1, autoreset_mode=name).autoreset_mode is mode
    with pytest.raises(ValueError, match="autoreset_mode"):
        CartPoleVecEnv(1, autoreset_mode="sometimes")


def test_numpy_wrapper_follows_gymnasium_api():
    env = CartPoleVecEnv(4, seed=3, episode_statistics=True).numpy()
    assert isinstance(env, CartPoleVecEnvNumpy)
    obs, info = env.reset()
    assert isinstance(obs, np.ndarray) and obs.dtype == np.float32 and obs.shape == (4, 4)
    obs, reward, term, trunc, info = env.step([0, 1, 0, 1])
    assert reward.dtype == np.float32 and term.dtype == np.bool_ and trunc.dtype == np.bool_
    assert isinstance(info["episode"]["l"], np.ndarray) and isinstance(info["_episode"], np.ndarray)
    obs2, *_ = env.step(np.array([1, 1, 1, 1]))
    assert env.observation_space.contains(obs2)


def test_reset_bounds_options_and_seeding(device):
    env = CartPoleVecEnv(1000, device=device)
    obs, _ = env.reset(seed=123, options={"low": -0.1, "high": 0.1})
    assert obs.abs().max() <= 0.1 and obs.abs().max() > 0.09
    assert abs(env.state.mean().item()) < 0.01  # uniform, centred
    with pytest.raises(ValueError):
        env.reset(options={"low": 0.2, "high": 0.1})
    a, _ = env.reset(seed=7)
    b, _ = env.reset()  # no seed: the generator moves on
    c, _ = env.reset(seed=7)
    assert torch.equal(a, c) and not torch.equal(a, b)
    # Envs draw independent numbers (no two envs alike; components differ).
    assert torch.unique(env.state[2]).numel() == 1000


def test_same_seed_same_trajectories_other_seed_differs(device):
    def rollout(seed):
        env = CartPoleVecEnv(33, device=device, seed=seed)
        obs, _ = env.reset()
        g = torch.Generator().manual_seed(0)
        out = [obs]
        for _ in range(120):
            out.append(env.step(torch.randint(0, 2, (33,), generator=g).to(device))[0])
        return torch.stack(out)

    assert torch.equal(rollout(1), rollout(1))
    assert not torch.equal(rollout(1), rollout(2))


def test_thread_count_does_not_change_results():
    n = 40_000  # several parallel_for chunks
    results = []
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            env = CartPoleVecEnv(n, seed=9)
            env.reset()
            g = torch.Generator().manual_seed(1)
            for _ in range(40):
                out = env.step(torch.randint(0, 2, (n,), generator=g))
            results.append((env.state.clone(), env.steps.clone(), env.episode.clone(), out[0], out[2]))
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(*results):
        assert torch.equal(a, b)


@requires_cuda
@requires_ext
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_cuda_matches_cpu(mode):
    # Both devices compile the shared math without FMA contraction and draw
    # resets from the same counter-based generator: bit-identical, resets included.
    n = 5000
    envs = [CartPoleVecEnv(n, device=d, seed=3, autoreset_mode=mode) for d in ("cpu", "cuda")]
    for e in envs:
        e.reset()
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        a = torch.randint(0, 2, (n,), generator=g)
        cpu, cuda = [e.step(a.to(e.device)) for e in envs]
        for want, got in zip(cpu[:4], cuda[:4]):
            assert torch.equal(got.cpu(), want)
        assert torch.equal(envs[1].state.cpu(), envs[0].state)
    assert torch.equal(envs[0].episode, envs[1].episode.cpu())
    assert (envs[0].episode > 1).any()  # resets happened on the way


# ---------------------------------------------------------------- the ops


def _fresh(n, device, seed=5):
    tensors = cp_ops.new_cartpole_state(n, device)
    cp_ops.cartpole_reset_(*tensors, None, seed)
    return tensors


@requires_ext
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("sutton_barto", [False, True])
def test_extension_matches_reference(device, mode, sutton_barto):
    n = 301
    ext, ref = _fresh(n, device), _fresh(n, device)
    g = torch.Generator().manual_seed(mode)
    ext[0].copy_(torch.as_tensor(random_states(n, 4, spread=0.9).T, device=device))
    ref[0].copy_(ext[0])
    for t in range(60):
        if mode == 2:  # disabled: reset what ended, as a user would
            mask = ext[2].clone()
            cp_ops.cartpole_reset_(*ext, mask, 5)
            _reference.cartpole_reset_(*ref, mask, 5)
        a = torch.randint(0, 2, (n,), generator=g).to(device)
        out_e = torch.ops.rltorch.cartpole_step_(*ext, a, 5, -0.05, 0.05, 25, mode, sutton_barto)
        out_r = _reference.cartpole_step_(*ref, a, 5, -0.05, 0.05, 25, mode, sutton_barto)
        for x, y in zip(out_e, out_r):
            assert x.dtype == y.dtype and x.shape == y.shape
            if x.dtype == torch.float32:
                torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)
            else:
                assert torch.equal(x, y), t
        torch.testing.assert_close(ext[0], ref[0], rtol=1e-10, atol=1e-10)
        for x, y in zip(ext[1:], ref[1:]):
            assert torch.equal(x, y)


@requires_ext
def test_reset_op_matches_reference_generator(device):
    ext, ref = cp_ops.new_cartpole_state(257, device), cp_ops.new_cartpole_state(257, device)
    ext[3].fill_(3)
    ref[3].fill_(3)
    mask = torch.arange(257, device=device) % 3 == 0
    o1 = torch.ops.rltorch.cartpole_reset_(*ext, mask, -12345, -0.2, 0.3)
    o2 = _reference.cartpole_reset_(*ref, mask, -12345, -0.2, 0.3)
    assert torch.equal(o1, o2)
    for x, y in zip(ext, ref):
        assert torch.equal(x, y)
    assert ext[3].tolist() == [4 if i % 3 == 0 else 3 for i in range(257)]


def test_unit_draws_look_uniform():
    x = _reference.cartpole_initial_state(1, torch.zeros(200_000, dtype=torch.int64), 0.0, 1.0)
    assert 0.0 <= x.min() and x.max() < 1.0
    assert abs(x.mean().item() - 0.5) < 0.003 and abs(x.var().item() - 1 / 12) < 0.001
    # Neighbouring envs and components are uncorrelated.
    assert abs(torch.corrcoef(torch.stack([x[0, :-1], x[0, 1:], x[1, :-1]]))[0, 1:]).max() < 0.01


@requires_ext
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_opcheck(device, mode):
    state = _fresh(17, device)
    a = torch.randint(0, 2, (17,), device=device)
    torch.library.opcheck(torch.ops.rltorch.cartpole_step_.default, (*state, a, 3, -0.05, 0.05, 500, mode, False))
    mask = torch.arange(17, device=device) % 2 == 0
    torch.library.opcheck(torch.ops.rltorch.cartpole_reset_.default, (*state, mask, 3, -0.05, 0.05))
    torch.library.opcheck(torch.ops.rltorch.cartpole_reset_.default, (*state, None, 3, -0.05, 0.05))


@requires_ext
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph(device, backend):
    # aot_eager checks capture and functionalization of the in-place op;
    # inductor also compiles the surrounding code (~8 s cold on this machine).
    n = 64

    def step(state, steps, prev_done, episode, actions):
        out = torch.ops.rltorch.cartpole_step_(state, steps, prev_done, episode, actions, 8, -0.05, 0.05, 500, 0, False)
        return out[0] * 2.0, out[1].sum(), out[4]

    compiled = torch.compile(step, fullgraph=True, backend=backend)
    a_state, b_state = _fresh(n, device, 8), _fresh(n, device, 8)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        a = torch.randint(0, 2, (n,), generator=g).to(device)
        eager = step(*a_state, a)
        comp = compiled(*b_state, a)
        for x, y in zip(eager, comp):
            assert torch.equal(x, y)
        for x, y in zip(a_state, b_state):
            assert torch.equal(x, y)  # the in-place updates survive compilation


@pytest.mark.parametrize("n", [1, 3, 7, 1 << 16])
def test_edge_sizes(device, n):
    env = CartPoleVecEnv(n, device=device, seed=0)
    obs, _ = env.reset()
    ref = _fresh(n, device, env._seed)
    assert torch.equal(obs, ref[0].t().float())
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        a = torch.randint(0, 2, (n,), generator=g).to(device)
        obs, *_ = env.step(a)
        _reference.cartpole_step_(*ref, a, env._seed)
    torch.testing.assert_close(env.state, ref[0], rtol=1e-10, atol=1e-10)
    assert torch.equal(env.steps, ref[1]) and torch.equal(env.episode, ref[3])


@requires_ext
def test_zero_envs_op_and_env_error(device):
    state = cp_ops.new_cartpole_state(0, device)
    assert cp_ops.cartpole_reset_(*state, None, 1).shape == (0, 4)
    out = cp_ops.cartpole_step_(*state, torch.zeros(0, dtype=torch.long, device=device), 1)
    assert out[0].shape == (0, 4) and out[1].shape == (0,)
    with pytest.raises(ValueError, match="num_envs"):
        CartPoleVecEnv(0)


def test_action_dtypes_accepted(device):
    outs = []
    for dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        env = CartPoleVecEnv(5, device=device, seed=0)
        env.reset()
        outs.append(env.step(torch.tensor([0, 1, 1, 0, 1], dtype=dtype, device=device))[0])
    for o in outs[1:]:
        assert torch.equal(o, outs[0])
    env = CartPoleVecEnv(2, seed=0)
    env.reset()
    env.step([0, 1])
    env.step(np.array([1, 0], dtype=np.int32))


def test_bad_inputs_raise_clear_errors():
    env = CartPoleVecEnv(4, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(4, dtype=torch.long))
    env.reset()
    with pytest.raises(TypeError, match="actions"):
        env.step(torch.zeros(4))
    with pytest.raises(TypeError, match="actions"):
        env.step(np.zeros(4))
    with pytest.raises(TypeError, match="actions"):
        env.step(torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.zeros(4, dtype=torch.long, device="meta"))
    before = env.state.clone()
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.tensor([0, -1, 1, 0]))
    assert torch.equal(env.state, before)  # rejected before any env moved
    env.step(torch.zeros(4, dtype=torch.long))  # and no reset is needed
    with pytest.raises(ValueError):
        CartPoleVecEnv(2, max_episode_steps=0)
    with pytest.raises(ValueError):
        env.reset(options={"reset_mask": np.ones(3, dtype=bool)})
    with pytest.raises(ValueError):
        env.set_state(np.zeros((3, 4)))


@requires_ext
def test_op_argument_errors_name_the_argument():
    state, steps, prev_done, episode = cp_ops.new_cartpole_state(5)
    a = torch.zeros(5, dtype=torch.long)
    op = torch.ops.rltorch.cartpole_step_
    with pytest.raises(RuntimeError, match="`actions` must be an integer"):
        op(state, steps, prev_done, episode, torch.zeros(5), 0)
    with pytest.raises(RuntimeError, match="`actions` must have shape"):
        op(state, steps, prev_done, episode, a[:3], 0)
    with pytest.raises(RuntimeError, match="`state` must be float64"):
        op(state.float(), steps, prev_done, episode, a, 0)
    with pytest.raises(RuntimeError, match="`state` must have shape"):
        op(state.t().contiguous(), steps, prev_done, episode, a, 0)
    with pytest.raises(RuntimeError, match="`steps` must be Int"):
        op(state, steps.long(), prev_done, episode, a, 0)
    with pytest.raises(RuntimeError, match="`state` must be contiguous"):
        op(torch.zeros(4, 10, dtype=torch.float64)[:, ::2], steps, prev_done, episode, a, 0)
    with pytest.raises(ValueError, match="max_episode_steps"):
        op(state, steps, prev_done, episode, a, 0, -0.05, 0.05, 0)
    with pytest.raises(ValueError, match="autoreset_mode"):
        op(state, steps, prev_done, episode, a, 0, -0.05, 0.05, 500, 3)
    with pytest.raises(ValueError, match="low"):
        torch.ops.rltorch.cartpole_reset_(state, steps, prev_done, episode, None, 0, 0.1, 0.0)
    with pytest.raises(RuntimeError, match="reset_mask"):
        torch.ops.rltorch.cartpole_reset_(state, steps, prev_done, episode, torch.ones(3, dtype=torch.bool), 0)


def test_render_rgb_array():
    env = CartPoleVecEnv(2, seed=0, render_mode="rgb_array")
    env.reset()
    frame = env.render()
    assert frame.shape == (400, 600, 3) and frame.dtype == np.uint8
    assert (frame == 0).any() and (frame == 255).any()
    assert CartPoleVecEnv(1).render() is None


def test_info_lists_cartpole_ops():
    ops = rltorch.info()["ops"]
    expected = "extension" if _ext.HAS_EXT else "reference"
    assert ops["cartpole_step_"]["cpu"] == expected and ops["cartpole_reset_"]["cpu"] == expected
