"""Env-steps per second of vectorized CartPole-v1: rltorch vs gymnasium.

One group per num_envs N. Actions are generated before timing and cycled.
Each case's `extra_info` records env-steps/s and ns per env-step
(time per call / N); read them with `--benchmark-json` or the table's mean.

Cases: rltorch's raw op (``torch.ops.rltorch.cartpole_step_``), rltorch's
``CartPoleVecEnv.step`` (op + argument checks + info dict), gymnasium's
``CartPoleVectorEnv`` (NumPy, same float64 math) and, at small N only,
``SyncVectorEnv`` of ``gym.make("CartPole-v1")`` (a Python loop over envs).
EnvPool is an anchor when importable.
"""

from __future__ import annotations

import importlib.util
import resource

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

from benchmarks.conftest import sync
from rltorch.envs import CartPoleVecEnv

SIZES = [1, 256, 16384, 1 << 18, 1 << 20]
NUM_ACTION_ROWS = 16


def _rounds(n: int) -> dict:
    # About 2^17 env-steps per round (at least one call); more rounds at large N,
    # where one slow round on this shared machine would move the median.
    return {"rounds": 8 if n <= 16384 else 20, "iterations": max(1, min(500, (1 << 17) // n)), "warmup_rounds": 2}


def _record(benchmark, n: int) -> None:
    mean = benchmark.stats.stats.mean
    benchmark.extra_info["num_envs"] = n
    benchmark.extra_info["env_steps_per_s"] = n / mean
    benchmark.extra_info["ns_per_env_step"] = mean / n * 1e9


def _cycler(items):
    state = {"k": 0}

    def next_item():
        k = state["k"]
        state["k"] = (k + 1) % len(items)
        return items[k]

    return next_item


@pytest.mark.parametrize("n", SIZES)
def test_rltorch_op(benchmark, device, n):
    benchmark.group = f"cartpole N={n}"
    env = CartPoleVecEnv(n, device=device, seed=0)
    env.reset()
    actions = _cycler(list(torch.randint(0, 2, (NUM_ACTION_ROWS, n), device=device).unbind(0)))
    op = torch.ops.rltorch.cartpole_step_.default
    state, steps, prev_done, episode = env.state, env.steps, env.prev_done, env.episode
    seed = env._seed

    def step():
        op(state, steps, prev_done, episode, actions(), seed, -0.05, 0.05, 500, 0, False)
        sync(device)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    benchmark.pedantic(step, **_rounds(n))
    calls = benchmark.stats.stats.rounds * _rounds(n)["iterations"]
    benchmark.extra_info["minor_faults_per_call"] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls
    _record(benchmark, n)


@pytest.mark.parametrize("n", SIZES)
def test_rltorch_env_step(benchmark, device, n):
    benchmark.group = f"cartpole N={n}"
    env = CartPoleVecEnv(n, device=device, seed=0)
    env.reset()
    actions = _cycler(list(torch.randint(0, 2, (NUM_ACTION_ROWS, n), device=device).unbind(0)))

    def step():
        env.step(actions())
        sync(device)

    benchmark.pedantic(step, **_rounds(n))
    _record(benchmark, n)


@pytest.mark.parametrize("n", SIZES)
def test_gymnasium_cartpole_vector_env(benchmark, n):
    benchmark.group = f"cartpole N={n}"
    env = CartPoleVectorEnv(num_envs=n)
    env.reset(seed=0)
    actions = _cycler(list(np.random.default_rng(0).integers(0, 2, size=(NUM_ACTION_ROWS, n))))
    benchmark.pedantic(lambda: env.step(actions()), **_rounds(n))
    _record(benchmark, n)


@pytest.mark.parametrize("n", [1, 256])
def test_gymnasium_sync_vector_env(benchmark, n):
    benchmark.group = f"cartpole N={n}"
    env = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(n)])
    env.reset(seed=0)
    actions = _cycler(list(np.random.default_rng(0).integers(0, 2, size=(NUM_ACTION_ROWS, n))))
    benchmark.pedantic(lambda: env.step(actions()), rounds=8, iterations=max(1, 2048 // n), warmup_rounds=1)
    _record(benchmark, n)


@pytest.mark.skipif(importlib.util.find_spec("envpool") is None, reason="envpool is not installed (optional anchor)")
@pytest.mark.parametrize("n", [256, 16384])
def test_envpool(benchmark, n):
    import envpool

    benchmark.group = f"cartpole N={n}"
    env = envpool.make("CartPole-v1", env_type="gymnasium", num_envs=n, seed=0)
    env.reset()
    actions = _cycler(list(np.random.default_rng(0).integers(0, 2, size=(NUM_ACTION_ROWS, n)).astype(np.int32)))
    benchmark.pedantic(lambda: env.step(actions()), **_rounds(n))
    _record(benchmark, n)


@pytest.mark.parametrize("n", [256, 16384])
@pytest.mark.parametrize("impl", ["rltorch", "gymnasium_cartpole_vector_env"])
def test_reset(benchmark, device, n, impl):
    """A full reset of N envs (fresh uniform(-0.05, 0.05) states): rltorch's counter-based
    generator vs gymnasium's PCG64 draw."""
    if impl == "gymnasium_cartpole_vector_env" and device.type != "cpu":
        pytest.skip("gymnasium runs on the CPU")
    benchmark.group = f"cartpole reset N={n}"
    if impl == "rltorch":
        env = CartPoleVecEnv(n, device=device, seed=0)
        env.reset()

        def reset():
            env.reset()
            sync(device)
    else:
        env = CartPoleVectorEnv(num_envs=n)
        env.reset(seed=0)

        def reset():
            env.reset()

    benchmark.pedantic(reset, rounds=20, iterations=50, warmup_rounds=2)
