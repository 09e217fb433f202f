"""A vector env whose every step also waits: a stand-in for a slow simulator.

Scale-out (many actors stepping envs, :mod:`rltorch.distributed`) pays when
stepping is slow, and stepping is slow in practice because of the simulator,
not the arithmetic. ``SimulatedLatency(env, seconds=1e-3)`` makes each of the
vector env's sub-envs take that long per step, one after another as gymnasium's
``SyncVectorEnv`` steps a slow simulator: a vector step of N envs waits N times
``seconds`` (``time.sleep``, which releases the GIL and the core). A wait costs
no CPU, so on a 2-core machine N actors can overlap N waits where one process
waits N times: the case where scale-out pays. Resets do not wait.

    from rltorch.envs import CartPoleVecEnv, SimulatedLatency
    env = SimulatedLatency(CartPoleVecEnv(8), seconds=1e-3)
"""

from __future__ import annotations

import math
import time

import gymnasium as gym


class SimulatedLatency(gym.vector.VectorWrapper):
    """Each vector step of ``env`` first waits ``seconds`` per sub-env (``num_envs * seconds`` in all)."""

    def __init__(self, env: gym.vector.VectorEnv, seconds: float):
        number = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
        if not number or not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"SimulatedLatency: `seconds` must be a finite number >= 0, got {seconds!r}")
        super().__init__(env)
        self.seconds = float(seconds)

    def step(self, actions):
        if self.seconds:
            time.sleep(self.seconds * self.num_envs)
        return self.env.step(actions)
