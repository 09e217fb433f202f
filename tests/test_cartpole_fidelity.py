"""How closely rltorch's CartPole follows gymnasium's, and CPU = CUDA bit for bit.

What can be promised, and is tested here:
- one step from the same float64 state agrees to within a measured bound (a couple
  of ulps: sin/cos are rltorch's own, < 0.8 ulp from exact, where gymnasium calls
  libm's);
- short (random-policy) episodes from the same states end on the same step with the
  same flags;
- long episodes are statistically indistinguishable (episode-length distributions
  under a noisy controller);
- CPU and CUDA compute the same bits for every state, wide angles included.

Bit-identical long episodes with gymnasium are not a meaningful target: glibc's own
sin and cos (which gymnasium calls) are not correctly rounded either (about 0.2% of sin
results are one ulp off the correctly rounded value), and CartPole under a good
controller is chaotic, so any one-ulp difference eventually flips an action and
changes an episode's length. Even gymnasium's CartPoleEnv run against a different libm
would not reproduce its own long episodes.
"""

import math

import mpmath
import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

from rltorch.envs import CartPoleVecEnv
from tests.conftest import requires_cuda

THETA_LIMIT = 12 * 2 * math.pi / 360
# The observation box of CartPole-v1 (x, theta: its bounds; the velocities, unbounded
# there, over the range episodes reach).
BOX_HIGH = np.array([4.8, 3.5, 2 * THETA_LIMIT, 3.5])

# Largest |rltorch - gymnasium| of any state component after one step, measured over
# 10^7 states of the box (test_one_step_error_bound): 4.44e-16, one ulp of a value in
# [2, 4); 99.7% of the states came out bit-identical and no flag differed.
ONE_STEP_BOUND = 4.5e-16


def _step_both(states: np.ndarray, actions: np.ndarray):
    n = len(states)
    ref = CartPoleVectorEnv(num_envs=n)
    ref.reset(seed=0)
    ref.state = states.T.copy()
    _, _, ref_term, _, _ = ref.step(actions)
    env = CartPoleVecEnv(n)
    env.reset(seed=0)
    env.set_state(states)
    _, _, term, _, _ = env.step(torch.from_numpy(actions))
    return env.state.numpy(), ref.state, term.numpy(), ref_term


def test_one_step_error_bound():
    # 10^7 uniform states of the box, one step each, in chunks; random actions.
    rng = np.random.default_rng(2026)
    worst = 0.0
    for _ in range(10):
        states = rng.uniform(-BOX_HIGH, BOX_HIGH, size=(1_000_000, 4))
        actions = rng.integers(0, 2, size=len(states))
        ours, ref, term, ref_term = _step_both(states, actions)
        worst = max(worst, float(np.abs(ours - ref).max()))
        # Termination flags can only differ for a state within the bound of a threshold.
        differ = term != ref_term
        if differ.any():
            near = np.minimum(np.abs(np.abs(ref[0]) - 2.4), np.abs(np.abs(ref[2]) - THETA_LIMIT))
            assert (near[differ] <= ONE_STEP_BOUND).all()
    assert worst <= ONE_STEP_BOUND, worst


def test_random_policy_episodes_identical_flags():
    # From the same initial states with the same random actions, every env's first
    # episode ends on the same step with the same terminated/truncated flags.
    n = 20_000
    rng = np.random.default_rng(7)
    ref = CartPoleVectorEnv(num_envs=n)
    ref.reset(seed=3)
    env = CartPoleVecEnv(n)
    env.reset(seed=0)
    env.set_state(ref.state.T.copy())
    alive = np.ones(n, dtype=bool)
    for step in range(1, 501):  # noqa: B007  (read after the loop)
        actions = rng.integers(0, 2, size=n)
        _, ref_reward, ref_term, ref_trunc, _ = ref.step(actions)
        _, reward, term, trunc, _ = env.step(torch.from_numpy(actions))
        np.testing.assert_array_equal(term.numpy()[alive], ref_term[alive])
        np.testing.assert_array_equal(trunc.numpy()[alive], ref_trunc[alive])
        np.testing.assert_array_equal(reward.numpy()[alive], ref_reward[alive])
        alive &= ~(ref_term | ref_trunc)
        if not alive.any():
            break
    assert not alive.any() and step >= 30


def _noisy_controller_lengths(env, obs, n: int, seed: int, noise: float = 1.6) -> np.ndarray:
    """First-episode lengths of n envs under a linear controller with Gaussian action
    noise: about a third of the episodes reach the 500-step limit."""
    gains = np.array([0.1, 0.5, 10.0, 1.5])
    rng = np.random.default_rng(seed)
    length = np.zeros(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    for step in range(1, 501):
        actions = ((np.asarray(obs) @ gains + noise * rng.standard_normal(n)) > 0).astype(np.int64)
        obs, _, term, trunc, _ = env.step(actions)
        ended = alive & (np.asarray(term) | np.asarray(trunc))
        length[ended] = step
        alive &= ~ended
    assert not alive.any()
    return length


def _ks_two_sample(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value (conservative
    for discrete data such as episode lengths)."""
    values = np.union1d(a, b)
    cdf_a = np.searchsorted(np.sort(a), values, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), values, side="right") / len(b)
    d = float(np.abs(cdf_a - cdf_b).max())
    m = len(a) * len(b) / (len(a) + len(b))
    lam = (math.sqrt(m) + 0.12 + 0.11 / math.sqrt(m)) * d
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, min(max(p, 0.0), 1.0)


def test_long_episode_lengths_indistinguishable_from_gymnasium():
    n = 5000
    ref = CartPoleVectorEnv(num_envs=n)
    ref_obs, _ = ref.reset(seed=11)
    ref_lengths = _noisy_controller_lengths(ref, ref_obs, n, seed=12)
    env = CartPoleVecEnv(n, seed=13).numpy()
    obs, _ = env.reset()
    lengths = _noisy_controller_lengths(env, obs, n, seed=14)
    # The test has power: long episodes are common, and many end early.
    assert 0.2 < (ref_lengths == 500).mean() < 0.6 and (ref_lengths < 200).mean() > 0.1
    d, p = _ks_two_sample(lengths, ref_lengths)
    assert p > 0.01, (d, p, lengths.mean(), ref_lengths.mean())
    # ... and it has the power to see a real difference: a 10% change of the
    # controller's noise on gymnasium's own env is told apart.
    ref2 = CartPoleVectorEnv(num_envs=n)
    obs2, _ = ref2.reset(seed=15)
    noisier = _noisy_controller_lengths(ref2, obs2, n, seed=16, noise=1.76)
    assert _ks_two_sample(noisier, ref_lengths)[1] < 1e-3


def _wide_states(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    states = rng.uniform(-BOX_HIGH, BOX_HIGH, size=(n, 4))
    scale = np.array([1.0, 10.0, 1e3, 1e6, 1.6e6, 1e12])[rng.integers(0, 6, size=n)]
    states[:, 2] = rng.uniform(-1, 1, size=n) * scale
    states[:3, 2] = [math.pi / 2, -math.pi, 1e300]
    return states


def test_wide_angle_one_step_matches_gymnasium():
    # Any angle set_state can load: the reduced sin/cos keep one step within a few ulps
    # of gymnasium's (libm) step up to the reduction's exact range (|theta| <= 1.6e6).
    states = _wide_states(20_001, seed=5)
    actions = np.random.default_rng(6).integers(0, 2, size=len(states))
    with np.errstate(invalid="ignore", over="ignore"):  # gymnasium's sin(inf), float32 overflow
        ours, ref, _, _ = _step_both(states, actions)
    exact_range = np.abs(states[:, 2]) <= 1.6e6
    scale = np.maximum(np.abs(ref[:, exact_range]), 1.0)
    err = np.abs(ours[:, exact_range] - ref[:, exact_range]) / scale
    assert err.max() <= 8 * np.finfo(np.float64).eps, err.max()


def test_non_finite_angles_step_to_nan_like_libm():
    # set_state refuses non-finite states, but the op's state tensor is the caller's:
    # an inf/NaN angle written there gives NaN velocities, as libm's sin/cos of it would.
    env = CartPoleVecEnv(2)
    env.reset(seed=0)
    env.state[2] = torch.tensor([float("inf"), float("nan")], dtype=torch.float64)
    env.step(torch.zeros(2, dtype=torch.int64))
    assert torch.isnan(env.state[1]).all() and torch.isnan(env.state[3]).all()


def test_wide_angles_same_bits_in_vector_lanes_and_scalar_tail():
    # The CPU kernel steps 4 envs per vector operation and the last n % 4 one at a time:
    # the same state gives the same bits wherever it sits.
    states = np.repeat(_wide_states(40, seed=8), 7, axis=0)  # 7 copies: lanes 0-3 and the tail
    env = CartPoleVecEnv(len(states))
    env.reset(seed=0)
    env.set_state(states)
    env.step(torch.ones(len(states), dtype=torch.int64))
    result = env.state.t().reshape(40, 7, 4).numpy()
    assert np.array_equal(result, np.broadcast_to(result[:, :1], result.shape), equal_nan=True)


def test_sin_cos_accuracy_reaches_the_step():
    # sin and cos of the kernel, read back through a step from x_dot = theta_dot = 0:
    # theta_dot' = tau * theta_acc depends on (sin, cos) alone, so a step with correctly
    # rounded sin/cos (mpmath, 200 bits) must give the same bits for most angles and be
    # within a few ulps for the rest.
    mpmath.mp.prec = 200
    rng = np.random.default_rng(9)
    theta = np.concatenate(
        [rng.uniform(-0.8, 0.8, 3000), rng.uniform(-1e4, 1e4, 3000), rng.uniform(-1.6e6, 1.6e6, 3000)]
    )
    states = np.zeros((len(theta), 4))
    states[:, 2] = theta
    env = CartPoleVecEnv(len(theta))
    env.reset(seed=0)
    env.set_state(states)
    env.step(torch.ones(len(theta), dtype=torch.int64))
    ours = env.state[3].numpy()
    s = np.array([float(mpmath.sin(mpmath.mpf(float(t)))) for t in theta])
    c = np.array([float(mpmath.cos(mpmath.mpf(float(t)))) for t in theta])
    # gymnasium's equations with those sin/cos, in its order of operations (float64).
    temp = (10.0 + 0.05 * 0.0 * s) / 1.1
    theta_acc = (9.8 * s - c * temp) / (0.5 * (4.0 / 3.0 - 0.1 * (c * c) / 1.1))
    exact = 0.0 + 0.02 * theta_acc
    # In ulps of the terms' magnitude (g*sin - cos*temp cancels near tan(theta) = temp/g).
    scale = 0.02 * (9.8 * np.abs(s) + np.abs(c) * temp) / (0.5 * (4.0 / 3.0 - 0.1 * (c * c) / 1.1))
    ulps = np.abs(ours - exact) / np.spacing(scale)
    assert ulps.max() <= 4, ulps.max()
    assert (ulps == 0).mean() > 0.9


@requires_cuda
def test_cpu_and_cuda_same_bits_for_every_state():
    states = _wide_states(100_003, seed=10)
    actions = np.random.default_rng(11).integers(0, 2, size=len(states))
    results = []
    for device in ("cpu", "cuda"):
        env = CartPoleVecEnv(len(states), device=device, seed=3, autoreset_mode="same_step")
        env.reset(options={"low": -1e3, "high": 1e3})  # wide reset bounds: |theta| far beyond pi/4
        run = [env.state.cpu().clone()]
        env.set_state(states)
        for _ in range(3):
            obs, *_ = env.step(torch.as_tensor(actions, device=device))
            run += [env.state.cpu().clone(), obs.cpu()]
        results.append(run)
    for cpu, cuda in zip(*results):
        assert torch.equal(cpu.nan_to_num(), cuda.nan_to_num()) and torch.equal(cpu.isnan(), cuda.isnan())
