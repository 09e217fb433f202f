"""Vectorized environments whose step is one rltorch kernel call, and the env
plumbing every agent shares (:mod:`rltorch.envs.vector`).

Importing this package registers ``rltorch/CartPole-v1`` with gymnasium, so
``gym.make_vec("rltorch/CartPole-v1", num_envs=N)`` builds a
:class:`CartPoleVecEnv` (``vectorization_mode`` defaults to the vector entry point).
"""

from __future__ import annotations

import gymnasium

from rltorch.envs.cartpole import CartPoleVecEnv, CartPoleVecEnvNumpy
from rltorch.envs.latency import SimulatedLatency
from rltorch.envs.vector import VectorEnvAdapter, make_env, resolve_device, solve_threshold

__all__ = ["CartPoleVecEnv", "CartPoleVecEnvNumpy", "SimulatedLatency", "VectorEnvAdapter", "make_env", "resolve_device",
           "solve_threshold"]

ENV_ID = "rltorch/CartPole-v1"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID,
        # A single env (vectorization_mode="sync"/"async") is gymnasium's own
        # CartPoleEnv: it has the same dynamics; rltorch only batches them.
        entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
        vector_entry_point="rltorch.envs.cartpole:CartPoleVecEnv",
        max_episode_steps=500,
        reward_threshold=475.0,
    )
