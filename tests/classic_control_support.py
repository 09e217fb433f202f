"""Helpers of the classic-control tests: gymnasium's own envs stepped from given
states (the oracle), states and actions inside each env's box and beyond it."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch

from rltorch import ops
from rltorch._reference_classic import SPECS
from rltorch.envs.classic_control import CLASSIC_ENVS

NAMES = list(SPECS)
ENV_CLASSES = {cls.facts.name: cls for cls in CLASSIC_ENVS.values()}
CONTINUOUS = [name for name in NAMES if SPECS[name].continuous]


def gym_env(name: str):
    """gymnasium's scalar env without its wrappers (no TimeLimit, no checker)."""
    return gym.make(SPECS[name].gym_id).unwrapped


def set_gym_state(name: str, env, state: np.ndarray, fresh: bool) -> None:
    """Puts a float64 state row into gymnasium's env the way its own reset/step leave it:
    MountainCarContinuous holds float64 after a reset (``fresh``) and float32 after a step."""
    if name == "mountain_car_continuous" and not fresh:
        env.state = np.asarray(state, dtype=np.float32)
    else:
        env.state = np.array(state, dtype=np.float64)


def gym_action(name: str, action):
    if SPECS[name].continuous:
        return np.array([action], dtype=np.float32).reshape(1)
    return int(action)


def gym_step_all(name: str, states: np.ndarray, actions: np.ndarray, fresh: bool = True):
    """One gymnasium step from each state: (new states float64 [N, D], obs float32 [N, O],
    reward float64 [N], terminated bool [N])."""
    env = gym_env(name)
    env.reset(seed=0)
    new, obs, reward, terminated = [], [], [], []
    for state, action in zip(states, actions):
        set_gym_state(name, env, state, fresh)
        o, r, term, _, _ = env.step(gym_action(name, action))
        new.append(np.asarray(env.state, dtype=np.float64))
        obs.append(o)
        reward.append(float(r))
        terminated.append(bool(term))
    return np.array(new), np.array(obs, dtype=np.float32), np.array(reward), np.array(terminated)


def random_states(name: str, n: int, rng: np.random.Generator, beyond: bool = False) -> np.ndarray:
    """float64 [N, D] states inside the region episodes reach, or (``beyond``) well outside it."""
    pi = math.pi
    if name in ("mountain_car", "mountain_car_continuous"):
        high = np.array([1.5, 0.2]) if beyond else None
        if high is None:
            return np.stack([rng.uniform(-1.2, 0.6, n), rng.uniform(-0.07, 0.07, n)], axis=1)
        return rng.uniform(-high, high, size=(n, 2)) + np.array([-0.3, 0.0])
    if name == "pendulum":
        high = np.array([100.0, 20.0]) if beyond else np.array([pi, 8.0])
        return rng.uniform(-high, high, size=(n, 2))
    high = np.array([30.0, 30.0, 20.0, 40.0]) if beyond else np.array([pi, pi, 4 * pi, 9 * pi])
    return rng.uniform(-high, high, size=(n, 4))


def random_actions(name: str, n: int, rng: np.random.Generator, beyond: bool = False) -> np.ndarray:
    """Every discrete action, or float32 torques inside the Box, its edges and (``beyond``) far outside it."""
    spec = SPECS[name]
    if not spec.continuous:
        return rng.integers(0, spec.num_actions, size=n)
    scale = 50.0 if beyond else 1.5
    actions = rng.uniform(-scale * spec.action_high, scale * spec.action_high, size=n).astype(np.float32)
    edges = np.array([spec.action_high, -spec.action_high, 0.0, -0.0], dtype=np.float32)[:n]
    actions[: len(edges)] = edges
    return actions


def as_action_tensor(name: str, actions: np.ndarray, device="cpu") -> torch.Tensor:
    tensor = torch.as_tensor(actions, device=device)
    return tensor.reshape(-1, 1).to(torch.float32) if SPECS[name].continuous else tensor.to(torch.int64)


def fresh_tensors(name: str, n: int, device="cpu", seed: int = 5):
    tensors = ops.new_classic_state(name, n, device)
    ops.classic_reset_(name, *tensors, None, seed)
    return tensors


def make_env(name: str, n: int, **kwargs):
    return ENV_CLASSES[name](n, **kwargs)
