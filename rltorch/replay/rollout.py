"""A time-major on-policy rollout buffer, preallocated on its device.

Row ``[t, n]`` is step ``t`` of env ``n``: the observation acted on, the
action, its log-probability, the reward, whether the step terminated or
truncated the episode, and the step's successor observation ``next_obs`` (the
final observation where an episode ended, whichever autoreset mode the env
uses). Values are computed after the rollout in one batched call over
``obs`` and ``next_obs``, and :meth:`RolloutBuffer.compute_advantages` runs
:func:`rltorch.ops.gae` over the whole ``[T, N]`` block: a terminated step
does not bootstrap, a truncated one bootstraps from the value of its final
observation, and either ends the lambda chain.

``valid`` marks rows that are real transitions. gymnasium's NEXT_STEP
autoreset spends one call per finished episode on the reset alone (its action
is ignored, its reward is 0): such rows are stored, to keep the block
rectangular, but must carry no weight in the loss.

Writing a step is a handful of slice copies into the preallocated tensors:
no Python lists and no host synchronisation, so a CUDA rollout never waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from rltorch.ops.returns import gae

__all__ = ["RolloutBuffer", "RolloutBatch"]


class RolloutBatch(NamedTuple):
    """A rollout flattened to ``[T * N, ...]`` rows (views, no copies)."""

    obs: Tensor
    action: Tensor
    logprob: Tensor
    value: Tensor
    advantage: Tensor
    returns: Tensor
    valid: Tensor


class RolloutBuffer:
    """``num_steps`` x ``num_envs`` transitions of one policy.

    Args:
        num_steps: steps per env per rollout (T).
        num_envs: parallel envs (N).
        obs_shape, obs_dtype: one observation.
        action_shape, action_dtype: one action (``()`` and int64 for Discrete).
        device: where every tensor lives.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_shape: Sequence[int] = (),
        action_shape: Sequence[int] = (),
        obs_dtype: torch.dtype = torch.float32,
        action_dtype: torch.dtype = torch.int64,
        device: torch.device | str = "cpu",
    ):
        for name, value in (("num_steps", num_steps), ("num_envs", num_envs)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"RolloutBuffer: `{name}` must be an integer >= 1, got {value!r}")
        self.num_steps, self.num_envs = int(num_steps), int(num_envs)
        self.obs_shape, self.action_shape = tuple(obs_shape), tuple(action_shape)
        self.device = torch.device(device)
        shape, dev = (self.num_steps, self.num_envs), self.device
        self.obs = torch.zeros(*shape, *self.obs_shape, dtype=obs_dtype, device=dev)
        self.next_obs = torch.zeros_like(self.obs)
        self.action = torch.zeros(*shape, *self.action_shape, dtype=action_dtype, device=dev)
        self.logprob = torch.zeros(shape, dtype=torch.float32, device=dev)
        self.reward = torch.zeros(shape, dtype=torch.float32, device=dev)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=dev)
        self.done = torch.zeros(shape, dtype=torch.bool, device=dev)
        self.valid = torch.ones(shape, dtype=torch.bool, device=dev)
        self.value = torch.zeros(shape, dtype=torch.float32, device=dev)
        self.next_value = torch.zeros(shape, dtype=torch.float32, device=dev)
        self.advantage = torch.zeros(shape, dtype=torch.float32, device=dev)
        self.returns = torch.zeros(shape, dtype=torch.float32, device=dev)
        self.step = 0

    @property
    def full(self) -> bool:
        return self.step == self.num_steps

    def reset(self) -> None:
        """Start a new rollout (the storage is reused as is)."""
        self.step = 0

    def _check(self, name: str, value: Tensor, shape: tuple) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"RolloutBuffer.add: `{name}` must be a torch.Tensor, got {type(value).__name__}")
        if tuple(value.shape) != shape:
            raise ValueError(f"RolloutBuffer.add: `{name}` must have shape {shape}, got {tuple(value.shape)}")
        if value.device != self.device:
            raise ValueError(f"RolloutBuffer.add: `{name}` is on {value.device}, the buffer on {self.device}")

    def add(
        self,
        obs: Tensor,
        action: Tensor,
        logprob: Tensor,
        reward: Tensor,
        terminated: Tensor,
        truncated: Tensor,
        next_obs: Tensor,
        valid: Tensor | None = None,
    ) -> None:
        """Stores one vector step (rows are envs). ``valid=None`` means every row is a transition."""
        if self.step >= self.num_steps:
            raise RuntimeError(f"RolloutBuffer.add: the buffer is full ({self.num_steps} steps); call reset() first")
        n = self.num_envs
        self._check("obs", obs, (n, *self.obs_shape))
        self._check("action", action, (n, *self.action_shape))
        self._check("next_obs", next_obs, (n, *self.obs_shape))
        for name, value in (("logprob", logprob), ("reward", reward), ("terminated", terminated),
                            ("truncated", truncated)):
            self._check(name, value, (n,))
        if valid is not None:
            self._check("valid", valid, (n,))
        t = self.step
        self.obs[t] = obs
        self.action[t] = action
        self.logprob[t] = logprob
        self.reward[t] = reward
        self.terminated[t] = terminated
        torch.logical_or(terminated, truncated, out=self.done[t])
        self.next_obs[t] = next_obs
        if valid is None:
            self.valid[t] = True
        else:
            self.valid[t] = valid
        self.step = t + 1

    def compute_advantages(self, value: Tensor, next_value: Tensor, gamma: float, lmbda: float) -> None:
        """Stores ``value`` and ``next_value`` (``[T, N]``: V(obs) and V(next_obs)) and the GAE
        advantages and TD(lambda) returns of the full rollout."""
        if not self.full:
            raise RuntimeError(f"RolloutBuffer.compute_advantages: the rollout holds {self.step} of "
                               f"{self.num_steps} steps")
        shape = (self.num_steps, self.num_envs)
        for name, v in (("value", value), ("next_value", next_value)):
            if tuple(v.shape) != shape:
                raise ValueError(f"RolloutBuffer.compute_advantages: `{name}` must have shape {shape}, "
                                 f"got {tuple(v.shape)}")
        self.value.copy_(value)
        self.next_value.copy_(next_value)
        advantage, returns = gae(self.reward, self.value, self.next_value, self.terminated, self.done, gamma, lmbda)
        self.advantage.copy_(advantage)
        self.returns.copy_(returns)

    def flatten(self) -> RolloutBatch:
        rows = self.num_steps * self.num_envs
        return RolloutBatch(
            obs=self.obs.reshape(rows, *self.obs_shape), action=self.action.reshape(rows, *self.action_shape),
            logprob=self.logprob.reshape(rows), value=self.value.reshape(rows),
            advantage=self.advantage.reshape(rows), returns=self.returns.reshape(rows),
            valid=self.valid.reshape(rows),
        )
