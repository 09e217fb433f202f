"""Env plumbing shared by every agent: build a vector env, pick a device, read
the solve threshold, and see any gymnasium vector env as torch tensors.

rltorch's own envs return torch tensors and can reset in the same step
(SAME_STEP: the final observation comes back in ``info["final_obs"]``), so
every row of every step is a valid transition and nothing leaves the device.
gymnasium's envs return numpy arrays and default to NEXT_STEP autoreset: the
call after an episode ends only resets (its action is ignored), so that row is
no transition at all and is masked out here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import Tensor

from rltorch._checks import resolve_device

#: gymnasium ids rltorch's own vectorized envs implement, with the class of each
#: (env_backend "auto" picks rltorch's for these; "rltorch/<id>" names the same env).
RLTORCH_ENVS = {
    "CartPole-v1": "CartPoleVecEnv",
    "MountainCar-v0": "MountainCarVecEnv",
    "MountainCarContinuous-v0": "MountainCarContinuousVecEnv",
    "Pendulum-v1": "PendulumVecEnv",
    "Acrobot-v1": "AcrobotVecEnv",
}
RLTORCH_ENV_IDS = tuple(RLTORCH_ENVS) + tuple(f"rltorch/{env_id}" for env_id in RLTORCH_ENVS)
ENV_BACKENDS = ("auto", "rltorch", "gymnasium")

#: Mean returns that count as solved where gymnasium's registration sets none: gymnasium registers
#: no reward_threshold for Pendulum-v1; rltorch's bench and agents use -200 (issue #22's bar).
SOLVE_THRESHOLDS = {"Pendulum-v1": -200.0}


def _gym_id(env_id: str) -> str:
    return env_id.removeprefix("rltorch/") if env_id in RLTORCH_ENV_IDS else env_id


def make_env(env_id: str, num_envs: int, *, backend: str = "auto", device: torch.device | str | None = None):
    """The vector env for ``env_id``: rltorch's own (backend "rltorch", or "auto" for the ids in
    :data:`RLTORCH_ENV_IDS`: CartPole-v1, MountainCar-v0, MountainCarContinuous-v0, Pendulum-v1,
    Acrobot-v1), resetting in the same step, or gymnasium's ``make_vec`` (backend "gymnasium")."""
    if backend not in ENV_BACKENDS:
        raise ValueError(f"`backend` must be one of {', '.join(ENV_BACKENDS)}, got {backend!r}")
    if backend == "auto":
        backend = "rltorch" if env_id in RLTORCH_ENV_IDS else "gymnasium"
    if backend == "rltorch":
        if env_id not in RLTORCH_ENV_IDS:
            raise ValueError(
                f"rltorch implements {', '.join(RLTORCH_ENVS)}; use env_backend='gymnasium' for {env_id!r}"
            )
        from rltorch import envs

        env_class = getattr(envs, RLTORCH_ENVS[_gym_id(env_id)])
        return env_class(num_envs, device=resolve_device(device or "auto"), autoreset_mode="same_step")
    try:
        return gym.make_vec(_gym_id(env_id), num_envs=num_envs)
    except gym.error.Error as exc:
        raise ValueError(f"unknown or unusable env id {env_id!r}: {exc}") from exc


def solve_threshold(env_id: str, override: float | None = None) -> float:
    """``override`` if given, else the env spec's ``reward_threshold`` (475 for CartPole-v1, -100 for
    Acrobot-v1, -110 for MountainCar-v0, 90 for MountainCarContinuous-v0), else
    :data:`SOLVE_THRESHOLDS` (-200 for Pendulum-v1), else ``inf``."""
    if override is not None:
        return float(override)
    spec_id = _gym_id(env_id)
    try:
        threshold = gym.spec(spec_id).reward_threshold
    except gym.error.Error:
        threshold = None
    if threshold is None:
        threshold = SOLVE_THRESHOLDS.get(spec_id)
    return math.inf if threshold is None else float(threshold)


def max_episode_return(env) -> float | None:
    """The most one episode of ``env`` can return, where the env makes it known (rltorch's envs:
    CartPole 1 per step up to its time limit, MountainCar -1, Acrobot and Pendulum 0,
    MountainCarContinuous 100); ``None`` otherwise."""
    from rltorch.envs.kernel_env import KernelVecEnv

    if isinstance(env, KernelVecEnv):
        return env.max_episode_return
    return None


@dataclass
class Step:
    obs: Tensor             # observation to act on next
    next_obs: Tensor        # successor of the previous observation (the final one where an episode ended)
    reward: Tensor          # float32 [N]
    terminated: Tensor      # bool [N]
    truncated: Tensor       # bool [N]
    valid: Tensor | None    # bool [N]: rows that are real transitions; None means all


def as_tensor(x, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
    if isinstance(x, Tensor):
        return x.to(device=device, dtype=dtype) if (x.device != device or (dtype and x.dtype != dtype)) else x
    return torch.as_tensor(np.asarray(x), device=device, dtype=dtype)


class VectorEnvAdapter:
    """Torch-tensor view of a gymnasium ``VectorEnv`` with a Box observation space and a Discrete or Box
    action space. ``num_actions`` is the Discrete action count (``None`` for Box actions)."""

    def __init__(self, env: gym.vector.VectorEnv, device: torch.device):
        obs_space, act_space = env.single_observation_space, env.single_action_space
        if not isinstance(obs_space, gym.spaces.Box):
            raise ValueError(f"rltorch agents need a Box observation space, got {obs_space}")
        if not isinstance(act_space, (gym.spaces.Discrete, gym.spaces.Box)):
            raise ValueError(f"rltorch agents need a Discrete or Box action space, got {act_space}")
        self.env = env
        self.device = device
        self.num_envs = env.num_envs
        self.obs_shape = tuple(obs_space.shape)
        self.action_space = act_space
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        self.num_actions = int(act_space.n) if self.discrete else None
        self.action_shape = () if self.discrete else tuple(act_space.shape)
        self.action_offset = int(act_space.start) if self.discrete else 0
        self.autoreset_mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if isinstance(self.autoreset_mode, str):
            self.autoreset_mode = AutoresetMode(self.autoreset_mode)
        if self.autoreset_mode == AutoresetMode.DISABLED:
            raise ValueError(
                "rltorch agents need an env that resets itself (autoreset NEXT_STEP or SAME_STEP), not DISABLED"
            )
        self._prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=device)
        self.native_torch = False

    @property
    def restorable(self) -> bool:
        """Whether the wrapped env can save and restore its episodes (rltorch's envs can, gymnasium's cannot)."""
        return hasattr(self.env, "state_dict") and hasattr(self.env, "load_state_dict")

    def reset(self, seed: int | None = None) -> Tensor:
        obs, _ = self.env.reset(seed=seed)
        self.native_torch = isinstance(obs, Tensor)
        self._prev_done.zero_()
        return as_tensor(obs, self.device, torch.float32)

    def step(self, actions: Tensor) -> Step:
        env_actions = actions + self.action_offset if self.action_offset else actions
        if not self.native_torch:
            env_actions = env_actions.cpu().numpy()
        obs, reward, terminated, truncated, info = self.env.step(env_actions)
        obs = as_tensor(obs, self.device, torch.float32)
        reward = as_tensor(reward, self.device, torch.float32)
        terminated = as_tensor(terminated, self.device, torch.bool)
        truncated = as_tensor(truncated, self.device, torch.bool)
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            next_obs = obs
            if "final_obs" in info:
                next_obs = self._merge_final(obs, info)
            return Step(obs, next_obs, reward, terminated, truncated, None)
        valid = ~self._prev_done
        self._prev_done = terminated | truncated
        return Step(obs, obs, reward, terminated, truncated, valid)

    def _merge_final(self, obs: Tensor, info: dict) -> Tensor:
        final, mask = info["final_obs"], info.get("_final_obs")
        if isinstance(final, Tensor):
            mask_t = (
                as_tensor(mask, self.device, torch.bool)
                if mask is not None
                else torch.ones_like(obs[:, 0], dtype=torch.bool)
            )
            return torch.where(mask_t.view(-1, *([1] * (obs.dim() - 1))), final.to(obs), obs)
        # gymnasium's SyncVectorEnv: an object array holding an observation where the mask is set.
        merged = obs.clone()
        for i in np.flatnonzero(np.asarray(mask)):
            merged[i] = as_tensor(final[i], self.device, torch.float32)
        return merged

    def state_dict(self) -> dict[str, Any]:
        """The adapter's reset bookkeeping, plus the env's own state when it is :attr:`restorable`."""
        state: dict[str, Any] = {"prev_done": self._prev_done.clone()}
        if self.restorable:
            state["env"] = self.env.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        """Restores what :meth:`state_dict` saved; returns whether the env itself was restored (its
        episodes continue), which needs a restorable env and a state that holds one."""
        prev_done = state["prev_done"]
        if not isinstance(prev_done, Tensor) or prev_done.shape != self._prev_done.shape:
            raise ValueError(f"`prev_done` must be a bool tensor of shape [{self.num_envs}], got {prev_done!r}")
        restore_env = "env" in state and self.restorable
        if restore_env:
            self.env.load_state_dict(state["env"])
        self._prev_done = prev_done.to(device=self.device, dtype=torch.bool).clone()
        if restore_env:
            self.native_torch = True
        return restore_env

    def take_rows(self, rows: Tensor) -> VectorEnvAdapter | None:
        """An adapter over an env of the envs ``rows`` of this one, continuing their episodes bit for bit
        (:meth:`~rltorch.envs.kernel_env.KernelVecEnv.take_rows`), or None when the env cannot make one
        (gymnasium's envs)."""
        take = getattr(self.env, "take_rows", None)
        if take is None:
            return None
        part = VectorEnvAdapter(take(rows), self.device)
        part._prev_done = self._prev_done.index_select(0, rows.to(self._prev_done.device))
        part.native_torch = self.native_torch
        return part

    def close(self) -> None:
        self.env.close()
