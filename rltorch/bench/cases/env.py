"""Vectorized envs: env steps per second and full resets. CartPole-v1: rltorch
beside gymnasium (its NumPy ``CartPoleVectorEnv`` and a ``SyncVectorEnv`` of scalar
envs) and EnvPool. MountainCar-v0, MountainCarContinuous-v0, Pendulum-v1 and
Acrobot-v1: rltorch beside gymnasium's ``SyncVectorEnv`` (gymnasium ships no
vector version of these).

Every impl steps with actions drawn before timing and cycled, and rltorch runs
in its gymnasium-faithful mode (float64 state, float32 obs), so all impls do
the same arithmetic. Peers run on the CPU only: in a ``--device cuda`` run the
CUDA rows stand alone and the CPU anchors come from a CPU run on the same
machine (``collect`` drops cases whose ``devices`` exclude the run's device).
"""

from __future__ import annotations

import itertools
import os
import warnings

import numpy as np
import torch

from rltorch.bench.core import Case, Settings, Unavailable

ACTION_ROWS = 16
ACTION_BYTES_CACHED = 1 << 25
INSTALL_GYMNASIUM = "pip install 'rltorch[bench]'  (or: pip install gymnasium)"
INSTALL_ENVPOOL = "pip install 'rltorch[bench]'  (or: pip install envpool)"

# The largest N each peer is timed at. SyncVectorEnv steps one Python env after
# another (about 5 us each: 0.2 M steps/s), and EnvPool pays a fixed 65-100 us
# per call plus about 2 us per env on two cores, so beyond these sizes one call
# takes most of a second and says nothing the smaller sizes do not.
SYNC_VECTOR_MAX_N = 256
ENVPOOL_MAX_N = 16384
# gymnasium has no vector version of the other classic-control envs: SyncVectorEnv is their only
# anchor, timed at every size the issue names (at 16,384 envs one call takes 0.1-1 s).
CLASSIC_SYNC_VECTOR_MAX_N = 16384


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _action_rows(num_envs: int) -> int:
    # Distinct rows so a small N does not replay one cached action vector; past
    # a few MiB no row stays in cache between calls anyway, and 16 rows of 2^24
    # int64 actions would take 2 GiB.
    return max(2, min(ACTION_ROWS, ACTION_BYTES_CACHED // (8 * num_envs)))


def _numpy_actions(num_envs: int, dtype=np.int64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return list(rng.integers(0, 2, size=(_action_rows(num_envs), num_envs)).astype(dtype))


def _torch_actions(num_envs: int, device: torch.device) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 2, (_action_rows(num_envs), num_envs), generator=generator)
    return list(rows.to(device).unbind(0))


def _gymnasium():
    try:
        import gymnasium
        from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
    except Exception as exc:
        raise Unavailable(f"gymnasium not importable: {type(exc).__name__}: {exc}", INSTALL_GYMNASIUM) from None
    return gymnasium, CartPoleVectorEnv


def _rltorch_env(num_envs: int, device: torch.device):
    from rltorch.envs import CartPoleVecEnv

    env = CartPoleVecEnv(num_envs, device=device, seed=0)
    env.reset()
    return env


def _step_case(impl: str, num_envs: int, devices: tuple[str, ...] = ("cpu", "cuda")) -> Case:
    def setup(settings: Settings):
        if impl == "rltorch":
            env = _rltorch_env(num_envs, settings.torch_device)
            next_actions = itertools.cycle(_torch_actions(num_envs, settings.torch_device)).__next__
            return lambda: env.step(next_actions())
        if impl == "rltorch op":
            # The registered op without CartPoleVecEnv's argument checks and info dict:
            # what the env wrapper itself costs.
            env = _rltorch_env(num_envs, settings.torch_device)  # loads the extension, if there is one
            if not hasattr(torch.ops.rltorch, "cartpole_step_"):
                raise Unavailable("rltorch's compiled extension is not loaded: only the Python reference runs",
                                  "pip install --force-reinstall rltorch  (a build with the C++ extension)")
            op = torch.ops.rltorch.cartpole_step_.default
            state, steps, prev_done, episode, seed = env.state, env.steps, env.prev_done, env.episode, env._seed
            next_actions = itertools.cycle(_torch_actions(num_envs, settings.torch_device)).__next__
            return lambda: op(state, steps, prev_done, episode, next_actions(), seed, -0.05, 0.05, 500, 0, False)
        if impl == "gymnasium CartPoleVectorEnv":
            _, CartPoleVectorEnv = _gymnasium()
            env = CartPoleVectorEnv(num_envs=num_envs)
            env.reset(seed=0)
            next_actions = itertools.cycle(_numpy_actions(num_envs)).__next__
            return lambda: env.step(next_actions())
        if impl == "gymnasium SyncVectorEnv":
            gymnasium, _ = _gymnasium()
            env = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("CartPole-v1") for _ in range(num_envs)])
            env.reset(seed=0)
            next_actions = itertools.cycle(_numpy_actions(num_envs)).__next__
            return lambda: env.step(next_actions())
        if impl == "EnvPool":
            try:
                import envpool
            except Exception as exc:
                raise Unavailable(f"envpool not importable: {type(exc).__name__}: {exc}", INSTALL_ENVPOOL) from None
            with warnings.catch_warnings():  # its spaces are float64 bounds on float32 boxes; harmless
                warnings.simplefilter("ignore")
                env = envpool.make("CartPole-v1", env_type="gymnasium", num_envs=num_envs, batch_size=num_envs,
                                   num_threads=min(num_envs, _usable_cores()), seed=0)
                env.reset()
            next_actions = itertools.cycle(_numpy_actions(num_envs, np.int32)).__next__
            return lambda: env.step(next_actions())
        raise ValueError(f"unknown cartpole_step impl {impl!r}")

    return Case("env", "cartpole_step", impl, setup, size=num_envs, size_label="N", items=num_envs,
                item="env step", devices=devices)


def _reset_case(impl: str, num_envs: int, devices: tuple[str, ...] = ("cpu", "cuda")) -> Case:
    """A full reset of N envs to fresh uniform(-0.05, 0.05) states: rltorch's
    counter-based generator against gymnasium's PCG64 draw."""

    def setup(settings: Settings):
        if impl == "rltorch":
            env = _rltorch_env(num_envs, settings.torch_device)
            return lambda: env.reset()
        _, CartPoleVectorEnv = _gymnasium()
        env = CartPoleVectorEnv(num_envs=num_envs)
        env.reset(seed=0)
        return lambda: env.reset()

    return Case("env", "cartpole_reset", impl, setup, size=num_envs, size_label="N", items=num_envs,
                item="env reset", devices=devices)


# ---- the classic-control suite ----

#: op prefix -> gymnasium id, for the cases' group names (``<prefix>_step``).
CLASSIC_ENVS = {"mountain_car": "MountainCar-v0", "mountain_car_continuous": "MountainCarContinuous-v0",
                "pendulum": "Pendulum-v1", "acrobot": "Acrobot-v1"}


def _classic_actions(name: str, num_envs: int, device: torch.device | None):
    """Action rows drawn before timing (float32 [N, 1] torques inside the Box, or 0/1/2): torch
    tensors on ``device``, or NumPy arrays when ``device`` is None."""
    from rltorch._reference_classic import SPECS

    spec = SPECS[name]
    rows = _action_rows(num_envs)
    generator = torch.Generator().manual_seed(0)
    if spec.continuous:
        actions = (torch.rand((rows, num_envs, 1), generator=generator) * 2 - 1) * spec.action_high
    else:
        actions = torch.randint(0, spec.num_actions, (rows, num_envs), generator=generator)
    if device is None:
        return list(actions.numpy())
    return list(actions.to(device).unbind(0))


def _classic_step_case(name: str, impl: str, num_envs: int, devices: tuple[str, ...] = ("cpu", "cuda")) -> Case:
    def setup(settings: Settings):
        from rltorch.envs.classic_control import CLASSIC_ENVS as ENV_CLASSES

        gym_id = CLASSIC_ENVS[name]
        if impl in ("rltorch", "rltorch op"):
            env = ENV_CLASSES[gym_id](num_envs, device=settings.torch_device, seed=0)
            env.reset()
            next_actions = itertools.cycle(_classic_actions(name, num_envs, settings.torch_device)).__next__
            if impl == "rltorch":
                return lambda: env.step(next_actions())
            # The registered op without the env's argument checks and info dict: what the env wrapper costs.
            spec = env.facts
            if not hasattr(torch.ops.rltorch, spec.step_op):
                raise Unavailable("rltorch's compiled extension is not loaded: only the Python reference runs",
                                  "pip install --force-reinstall rltorch  (a build with the C++ extension)")
            op = getattr(torch.ops.rltorch, spec.step_op).default
            tensors = (env.state, env.steps, env.prev_done, env.episode, env.returns)
            scalars = (env._seed, *env.bounds, env.max_episode_steps, 0, *env._param())
            return lambda: op(*tensors, next_actions(), *scalars)
        if impl == "gymnasium SyncVectorEnv":
            gymnasium, _ = _gymnasium()
            env = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make(gym_id) for _ in range(num_envs)])
            env.reset(seed=0)
            next_actions = itertools.cycle(_classic_actions(name, num_envs, None)).__next__
            return lambda: env.step(next_actions())
        raise ValueError(f"unknown {name}_step impl {impl!r}")

    return Case("env", f"{name}_step", impl, setup, size=num_envs, size_label="N", items=num_envs,
                item="env step", devices=devices)


def cases(settings: Settings) -> list[Case]:
    sizes = settings.pick(tiny=[16], quick=[1, 256, 16384], full=[1, 256, 16384, 1 << 18, 1 << 20])
    if settings.torch_device.type == "cuda" and settings.mode == "full":
        # Where a GPU is bound by memory bandwidth; benchmarks/bench_cuda.py sets the same
        # size against a device-to-device copy of the bytes one env step moves.
        sizes = sizes + [1 << 24]
    found = []
    for num_envs in sizes:
        found.append(_step_case("rltorch", num_envs))
        found.append(_step_case("rltorch op", num_envs))
        if num_envs <= 1 << 20:
            found.append(_step_case("gymnasium CartPoleVectorEnv", num_envs, devices=("cpu",)))
        if num_envs <= SYNC_VECTOR_MAX_N:
            found.append(_step_case("gymnasium SyncVectorEnv", num_envs, devices=("cpu",)))
        if num_envs <= ENVPOOL_MAX_N:
            found.append(_step_case("EnvPool", num_envs, devices=("cpu",)))
    for num_envs in settings.pick(tiny=[16], quick=[256, 16384], full=[256, 16384]):
        found.append(_reset_case("rltorch", num_envs))
        found.append(_reset_case("gymnasium CartPoleVectorEnv", num_envs, devices=("cpu",)))
    classic_sizes = settings.pick(tiny=[16], quick=[1, 256, 16384], full=[1, 256, 16384])
    if settings.torch_device.type == "cuda" and settings.mode == "full":
        classic_sizes = classic_sizes + [1 << 22]
    for name in CLASSIC_ENVS:
        for num_envs in classic_sizes:
            found.append(_classic_step_case(name, "rltorch", num_envs))
            found.append(_classic_step_case(name, "rltorch op", num_envs))
            if num_envs <= CLASSIC_SYNC_VECTOR_MAX_N:
                found.append(_classic_step_case(name, "gymnasium SyncVectorEnv", num_envs, devices=("cpu",)))
    return found
