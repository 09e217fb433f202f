"""Turns any gymnasium vector env into what a value-based learner needs.

rltorch's own CartPole returns torch tensors and can reset in the same step
(SAME_STEP: the final observation comes back in ``info["final_obs"]``), so
every row of every step is a valid transition and nothing leaves the device.
gymnasium's envs return numpy arrays and default to NEXT_STEP autoreset: the
call after an episode ends only resets (its action is ignored), so that row is
no transition at all and is masked out here.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import Tensor


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
    """Torch-tensor view of a gymnasium ``VectorEnv`` with a Box observation and a Discrete action space."""

    def __init__(self, env: gym.vector.VectorEnv, device: torch.device):
        obs_space, act_space = env.single_observation_space, env.single_action_space
        if not isinstance(obs_space, gym.spaces.Box):
            raise ValueError(f"DQN needs a Box observation space, got {obs_space}")
        if not isinstance(act_space, gym.spaces.Discrete):
            raise ValueError(f"DQN needs a Discrete action space, got {act_space}")
        self.env = env
        self.device = device
        self.num_envs = env.num_envs
        self.obs_shape = tuple(obs_space.shape)
        self.num_actions = int(act_space.n)
        self.action_offset = int(act_space.start)
        self.autoreset_mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if isinstance(self.autoreset_mode, str):
            self.autoreset_mode = AutoresetMode(self.autoreset_mode)
        if self.autoreset_mode == AutoresetMode.DISABLED:
            raise ValueError("DQN needs an env that resets itself (autoreset NEXT_STEP or SAME_STEP), not DISABLED")
        self._prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=device)
        self.native_torch = False

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
            mask_t = as_tensor(mask, self.device, torch.bool) if mask is not None else torch.ones_like(obs[:, 0], dtype=torch.bool)
            return torch.where(mask_t.view(-1, *([1] * (obs.dim() - 1))), final.to(obs), obs)
        # gymnasium's SyncVectorEnv: an object array holding an observation where the mask is set.
        merged = obs.clone()
        for i in np.flatnonzero(np.asarray(mask)):
            merged[i] = as_tensor(final[i], self.device, torch.float32)
        return merged

    def close(self) -> None:
        self.env.close()
