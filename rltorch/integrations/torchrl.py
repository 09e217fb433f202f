"""TorchRL on rltorch: native ``EnvBase`` classes over rltorch's vector envs:
:class:`CartPoleEnv`, :class:`MountainCarEnv`, :class:`MountainCarContinuousEnv`,
:class:`PendulumEnv` and :class:`AcrobotEnv`.

``torchrl.envs.GymWrapper`` also wraps rltorch's vector envs (``autoreset_mode="same_step"`` or
``"disabled"``); these classes skip gymnasium's API: actions, observations and flags stay
tensors on the env's device (CUDA included) and TorchRL's partial resets (``"_reset"``)
go straight to the kernel's masked reset.

```python
from rltorch.integrations.torchrl import PendulumEnv
from torchrl.envs.utils import check_env_specs

env = PendulumEnv(num_envs=1024, device="cuda", seed=0)
check_env_specs(env)
rollout = env.rollout(200, break_when_any_done=False)   # TensorDict [1024, 200]
```
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from rltorch.envs import (
    AcrobotVecEnv,
    CartPoleVecEnv,
    KernelVecEnv,
    MountainCarContinuousVecEnv,
    MountainCarVecEnv,
    PendulumVecEnv,
)

__all__ = ["KernelEnv", "CartPoleEnv", "MountainCarEnv", "MountainCarContinuousEnv", "PendulumEnv", "AcrobotEnv"]


class KernelEnv(EnvBase):
    """One of rltorch's vector envs (``vec_env_class``), ``num_envs`` at once, as a TorchRL env with
    batch size ``[num_envs]``.

    Keys: ``observation`` float32 ``[N, O]``, ``action`` int64 ``[N]`` (Discrete) or float32
    ``[N, 1]`` (Box), ``reward`` float32 ``[N, 1]``, ``done``/``terminated``/``truncated`` bool
    ``[N, 1]``. Finished envs are reset by TorchRL (``"_reset"`` masks), as its rollouts and
    collectors do; stepping a finished env without a reset is an error.

    Args:
        num_envs, device, seed, max_episode_steps and the env's own arguments (``goal_velocity``,
        ``g``, ``sutton_barto_reward``): as for the vector env class.
    """

    vec_env_class: ClassVar[type[KernelVecEnv]]

    def __init__(self, num_envs: int = 1, device: torch.device | str = "cpu", seed: int | None = None,
                 **env_kwargs: Any):
        self.env = self.vec_env_class(num_envs, device=device, seed=seed, autoreset_mode="disabled", **env_kwargs)
        super().__init__(device=self.env.device, batch_size=torch.Size([self.env.num_envs]))
        n, dev = self.env.num_envs, self.env.device
        box = self.env.single_observation_space
        width = box.shape[0]
        self.observation_spec = Composite(
            observation=Bounded(low=torch.as_tensor(box.low).expand(n, width),
                                high=torch.as_tensor(box.high).expand(n, width), shape=(n, width),
                                dtype=torch.float32, device=dev),
            shape=(n,),
        )
        actions = self.env.single_action_space
        if self.env.discrete:
            self.action_spec = Categorical(int(actions.n), shape=(n,), dtype=torch.int64, device=dev)
        else:
            self.action_spec = Bounded(low=torch.as_tensor(actions.low).expand(n, 1),
                                       high=torch.as_tensor(actions.high).expand(n, 1), shape=(n, 1),
                                       dtype=torch.float32, device=dev)
        self.reward_spec = Unbounded(shape=(n, 1), dtype=torch.float32, device=dev)
        self.done_spec = Composite(
            done=Categorical(2, shape=(n, 1), dtype=torch.bool, device=dev),
            terminated=Categorical(2, shape=(n, 1), dtype=torch.bool, device=dev),
            truncated=Categorical(2, shape=(n, 1), dtype=torch.bool, device=dev),
            shape=(n,),
        )
        self._next_seed: int | None = None

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        mask = None
        if tensordict is not None and "_reset" in tensordict.keys():
            mask = tensordict.get("_reset").reshape(self.env.num_envs)
        options = None if mask is None else {"reset_mask": mask}
        obs, _ = self.env.reset(seed=self._next_seed, options=options)
        self._next_seed = None
        flags = torch.zeros(self.env.num_envs, 1, dtype=torch.bool, device=self.device)
        return TensorDict(observation=obs, done=flags, terminated=flags.clone(), truncated=flags.clone(),
                          batch_size=self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs, reward, terminated, truncated, _ = self.env.step(tensordict.get("action"))
        return TensorDict(observation=obs, reward=reward.unsqueeze(-1), done=(terminated | truncated).unsqueeze(-1),
                          terminated=terminated.unsqueeze(-1), truncated=truncated.unsqueeze(-1),
                          batch_size=self.batch_size, device=self.device)

    def _set_seed(self, seed: int | None) -> None:
        # Takes effect at the next reset, which draws every env's state from it.
        self._next_seed = seed


class CartPoleEnv(KernelEnv):
    """CartPole-v1 (gymnasium's dynamics and time limit) as a TorchRL env (:class:`KernelEnv`);
    ``action`` 0 pushes left, 1 right; ``sutton_barto_reward`` as for :class:`~rltorch.envs.CartPoleVecEnv`."""

    vec_env_class = CartPoleVecEnv

    def __init__(self, num_envs: int = 1, device: torch.device | str = "cpu", seed: int | None = None,
                 max_episode_steps: int | None = 500, sutton_barto_reward: bool = False):
        super().__init__(num_envs, device, seed, max_episode_steps=max_episode_steps,
                         sutton_barto_reward=sutton_barto_reward)


class MountainCarEnv(KernelEnv):
    """MountainCar-v0 as a TorchRL env (:class:`KernelEnv`); ``action`` 0, 1, 2."""

    vec_env_class = MountainCarVecEnv


class MountainCarContinuousEnv(KernelEnv):
    """MountainCarContinuous-v0 as a TorchRL env (:class:`KernelEnv`); ``action`` float32 ``[N, 1]``."""

    vec_env_class = MountainCarContinuousVecEnv


class PendulumEnv(KernelEnv):
    """Pendulum-v1 as a TorchRL env (:class:`KernelEnv`); ``action`` float32 ``[N, 1]`` torques."""

    vec_env_class = PendulumVecEnv


class AcrobotEnv(KernelEnv):
    """Acrobot-v1 as a TorchRL env (:class:`KernelEnv`); ``action`` 0, 1, 2 (torque -1, 0, +1)."""

    vec_env_class = AcrobotVecEnv
