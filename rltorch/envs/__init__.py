"""Vectorized environments whose step is one rltorch kernel call, and the env
plumbing every agent shares (:mod:`rltorch.envs.vector`).

Importing this package registers ``rltorch/CartPole-v1``, ``rltorch/MountainCar-v0``,
``rltorch/MountainCarContinuous-v0``, ``rltorch/Pendulum-v1`` and ``rltorch/Acrobot-v1``
with gymnasium, so ``gym.make_vec("rltorch/Pendulum-v1", num_envs=N)`` builds a
:class:`PendulumVecEnv` (``vectorization_mode`` defaults to the vector entry point).
"""

from __future__ import annotations

import gymnasium

from rltorch.envs.cartpole import CartPoleVecEnv, CartPoleVecEnvNumpy
from rltorch.envs.classic_control import (
    CLASSIC_ENVS,
    AcrobotVecEnv,
    MountainCarContinuousVecEnv,
    MountainCarVecEnv,
    PendulumVecEnv,
)
from rltorch.envs.kernel_env import KernelVecEnv, KernelVecEnvNumpy
from rltorch.envs.latency import SimulatedLatency
from rltorch.envs.vector import VectorEnvAdapter, make_env, resolve_device, solve_threshold

__all__ = ["CartPoleVecEnv", "CartPoleVecEnvNumpy", "MountainCarVecEnv", "MountainCarContinuousVecEnv",
           "PendulumVecEnv", "AcrobotVecEnv", "KernelVecEnv", "KernelVecEnvNumpy", "SimulatedLatency",
           "VectorEnvAdapter", "make_env", "resolve_device", "solve_threshold"]

ENV_ID = "rltorch/CartPole-v1"

# A single env (vectorization_mode="sync"/"async") is gymnasium's own scalar env:
# it has the same dynamics; rltorch only batches them.
_REGISTRATIONS = [
    dict(id=ENV_ID, entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
         vector_entry_point="rltorch.envs.cartpole:CartPoleVecEnv", max_episode_steps=500, reward_threshold=475.0),
]
for _cls in CLASSIC_ENVS.values():
    _spec = gymnasium.spec(_cls.facts.gym_id)
    _REGISTRATIONS.append(dict(
        id=f"rltorch/{_cls.facts.gym_id}", entry_point=_spec.entry_point,
        vector_entry_point=f"{_cls.__module__}:{_cls.__name__}", max_episode_steps=_cls.facts.max_episode_steps,
        reward_threshold=_cls.facts.reward_threshold))

for _registration in _REGISTRATIONS:
    if _registration["id"] not in gymnasium.registry:
        gymnasium.register(**_registration)
