"""stable-baselines3 on rltorch: a ``VecEnv`` over any of rltorch's vector envs
(:class:`~rltorch.envs.CartPoleVecEnv`, :class:`~rltorch.envs.PendulumVecEnv`, ...),
and prioritized experience replay for SB3's DQN on rltorch's sum tree.

```python
from stable_baselines3 import PPO
from rltorch.envs import PendulumVecEnv
from rltorch.integrations.sb3 import PrioritizedDQN, SB3VecEnv

env = SB3VecEnv(num_envs=8, seed=0)              # CartPole-v1, stepped by one kernel call
model = PrioritizedDQN("MlpPolicy", env, per_alpha=0.6, per_beta=0.4)
model.learn(50_000)
model.save("per_dqn")
model = PrioritizedDQN.load("per_dqn", env=env)  # SB3's own save/load

pendulum = SB3VecEnv(PendulumVecEnv(4, seed=0, autoreset_mode="same_step"))
PPO("MlpPolicy", pendulum).learn(10_000)         # Box actions work the same way
```

:class:`PrioritizedReplayBuffer` is an SB3 ``ReplayBuffer`` whose storage and sampling are
:class:`rltorch.replay.PrioritizedReplayBuffer` (proportional PER, Schaul et al. 2016);
:class:`PrioritizedDQN` is SB3's ``DQN`` whose loss is weighted by the importance weights
and which writes ``|TD error|`` back as priorities. Plain SB3 DQN can use the buffer too
(``DQN(..., replay_buffer_class=PrioritizedReplayBuffer)``): it then samples by priority
but neither weights the loss nor updates priorities.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape
from stable_baselines3.common.vec_env import VecEnv

from rltorch import replay
from rltorch.envs import CartPoleVecEnv, KernelVecEnv

__all__ = ["SB3VecEnv", "PrioritizedReplayBuffer", "PrioritizedReplayBufferSamples", "PrioritizedDQN"]


class SB3VecEnv(VecEnv):
    """SB3's ``VecEnv`` API over one of rltorch's vector envs (Discrete or Box actions).

    SB3's semantics: finished envs reset in the same call; ``dones`` is
    ``terminated | truncated``; ``infos[i]["terminal_observation"]`` holds a finished
    episode's last observation and ``infos[i]["TimeLimit.truncated"]`` says it was cut
    by the time limit only; ``infos[i]["episode"] = {"r", "l", "t"}`` reports each
    finished episode as SB3's ``Monitor`` does, so SB3 logs ``rollout/ep_rew_mean``.
    Arrays are NumPy (obs float32, rewards float32, dones bool).

    Args:
        env: one of rltorch's vector envs (:class:`~rltorch.envs.CartPoleVecEnv`,
            :class:`~rltorch.envs.MountainCarVecEnv`, :class:`~rltorch.envs.PendulumVecEnv`, ...)
            in ``autoreset_mode="same_step"``; or leave it out and pass ``num_envs`` and the
            other :class:`CartPoleVecEnv` arguments for CartPole-v1.
    """

    def __init__(self, env: KernelVecEnv | None = None, **env_kwargs: Any):
        if env is None:
            env = CartPoleVecEnv(**{"autoreset_mode": "same_step", **env_kwargs})
        elif env_kwargs:
            raise TypeError(
                f"SB3VecEnv: pass either `env` or CartPoleVecEnv arguments, not both ({sorted(env_kwargs)})"
            )
        if not isinstance(env, KernelVecEnv):
            raise TypeError("SB3VecEnv: `env` must be one of rltorch's vector envs (rltorch.envs.CartPoleVecEnv, "
                            f"PendulumVecEnv, ...), got {type(env).__name__}")
        if env.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                "SB3VecEnv: `env` must reset in the same step as SB3 expects (autoreset_mode='same_step'), "
                f"got {env.autoreset_mode}"
            )
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._start_time = time.time()
        self._ep_return = np.zeros(self.num_envs, dtype=np.float64)
        self._ep_length = np.zeros(self.num_envs, dtype=np.int64)

    # ---- VecEnv API ----

    def reset(self) -> np.ndarray:
        # One env stepped as a batch takes one seed: SB3's seed(s) gives seeds s, s+1, ...
        # and the first one seeds the batch (rltorch keys every env's draws by its index).
        options = self._options[0] or None
        obs, _ = self.env.reset(seed=self._seeds[0], options=options)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        return obs.cpu().numpy()

    def step_async(self, actions: np.ndarray) -> None:
        array = np.asarray(actions)
        per_env = int(np.prod(self.action_space.shape))  # 1: a Discrete index, or a Box(shape=(1,)) value
        if array.size != self.num_envs * per_env or array.ndim > 2:
            raise ValueError(f"SB3VecEnv.step: `actions` must hold one action per env ({self.num_envs}), "
                             f"got shape {list(array.shape)}")
        self._actions = array.reshape((self.num_envs, *self.action_space.shape))

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("SB3VecEnv: step_wait() without step_async()")
        actions, self._actions = self._actions, None
        obs, reward, terminated, truncated, info = self.env.step(actions)
        obs, reward = obs.cpu().numpy(), reward.cpu().numpy()
        terminated, truncated = terminated.cpu().numpy(), truncated.cpu().numpy()
        dones = terminated | truncated
        time_limit = truncated & ~terminated
        infos: list[dict[str, Any]] = [{"TimeLimit.truncated": bool(t)} for t in time_limit]
        self._ep_return += reward
        self._ep_length += 1
        if dones.any():
            final_obs = info["final_obs"].cpu().numpy()
            elapsed = round(time.time() - self._start_time, 6)
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = final_obs[i]
                infos[i]["episode"] = {"r": float(self._ep_return[i]), "l": int(self._ep_length[i]), "t": elapsed}
            self._ep_return[dones] = 0.0
            self._ep_length[dones] = 0
        return obs, reward, dones, infos

    def close(self) -> None:
        self.env.close()

    def get_images(self) -> list[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None] * self.num_envs
        states = self.env.state.t().double().cpu().numpy()
        return [self.env.draw(states[i]) for i in range(self.num_envs)]

    # The envs share one batched object, so attributes are read from and written to it.
    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.env, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError(f"SB3VecEnv: the envs share one {type(self.env).__name__}; set attributes on all of them "
                             "(indices=None)")
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError(f"SB3VecEnv: the envs share one {type(self.env).__name__}; call methods on all of them "
                             "(indices=None)")
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * self.num_envs

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


class PrioritizedReplayBufferSamples(NamedTuple):
    """SB3's ``ReplayBufferSamples`` fields, plus the importance weights and the
    transitions' ids for :meth:`PrioritizedReplayBuffer.update_priorities`."""

    observations: torch.Tensor
    actions: torch.Tensor
    next_observations: torch.Tensor
    dones: torch.Tensor
    rewards: torch.Tensor
    weights: torch.Tensor  # [B, 1]
    indices: torch.Tensor  # [B]
    discounts: torch.Tensor | None = None


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay for SB3, stored and sampled by
    :class:`rltorch.replay.PrioritizedReplayBuffer` (a sum tree; sampling and priority
    updates are single kernel calls).

    Created by SB3 from ``replay_buffer_class=PrioritizedReplayBuffer``; its own
    arguments go in ``replay_buffer_kwargs`` (:class:`PrioritizedDQN` fills them in):

    Args:
        alpha: priority exponent, ``priority = (|td| + eps) ** alpha``.
        beta: importance-weight exponent at the start of training.
        final_beta: the exponent reached at the end (annealed linearly by
            :class:`PrioritizedDQN` through :meth:`anneal_beta`).
        eps: added to ``|td|`` so no transition's priority is 0.
        seed: seeds the sampler (``None``: random).

    New transitions get the largest priority seen so far. Time-limit truncations are
    not terminations (SB3's ``handle_timeout_termination``): their target bootstraps.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        alpha: float = 0.6,
        beta: float = 0.4,
        final_beta: float = 1.0,
        eps: float = 1e-6,
        seed: int | None = None,
    ):
        if optimize_memory_usage:
            raise ValueError("PrioritizedReplayBuffer: `optimize_memory_usage` is not supported (keep it False)")
        if not isinstance(observation_space, spaces.Box):
            raise ValueError(f"PrioritizedReplayBuffer: `observation_space` must be a Box, got {observation_space}")
        if not 0.0 <= final_beta <= 1.0:
            raise ValueError(f"PrioritizedReplayBuffer: `final_beta` must lie in [0, 1], got {final_beta}")
        # SB3's ReplayBuffer.__init__ would allocate NumPy storage this class never uses.
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.buffer_size = max(buffer_size // n_envs, 1)  # per env, as SB3 counts it
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.initial_beta, self.final_beta = float(beta), float(final_beta)
        self._storage_args = dict(
            capacity=self.buffer_size * n_envs,
            obs_shape=tuple(get_obs_shape(observation_space)),
            obs_dtype=torch.from_numpy(np.zeros(0, dtype=observation_space.dtype)).dtype,
            action_shape=(get_action_dim(action_space),),
            action_dtype=torch.int64 if isinstance(action_space, spaces.Discrete) else torch.float32,
            device=self.device,
            alpha=alpha,
            beta=beta,
            eps=eps,
            seed=seed,
        )
        self.storage = replay.PrioritizedReplayBuffer(**self._storage_args)

    @property
    def beta(self) -> float:
        return self.storage.beta

    def anneal_beta(self, progress: float) -> None:
        """Sets beta for ``progress`` in [0, 1] of training (0: ``beta``, 1: ``final_beta``)."""
        progress = min(max(float(progress), 0.0), 1.0)
        self.storage.beta = self.initial_beta + (self.final_beta - self.initial_beta) * progress

    def add(self, obs, next_obs, action, reward, done, infos: list[dict[str, Any]]) -> None:
        done = np.asarray(done, dtype=bool).reshape(self.n_envs)
        if self.handle_timeout_termination:
            time_limit = np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos])
            done = done & ~time_limit
        obs_shape = self._storage_args["obs_shape"]
        self.storage.add(
            np.asarray(obs).reshape(self.n_envs, *obs_shape),
            np.asarray(action).reshape(self.n_envs, -1),
            np.asarray(reward, dtype=np.float32).reshape(self.n_envs),
            np.asarray(next_obs).reshape(self.n_envs, *obs_shape),
            done,
        )
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    def size(self) -> int:
        return len(self.storage) // self.n_envs

    def sample(self, batch_size: int, env=None) -> PrioritizedReplayBufferSamples:
        batch = self.storage.sample(batch_size)
        obs, next_obs, reward = batch.obs, batch.next_obs, batch.reward
        if env is not None:  # VecNormalize: the buffer keeps raw values, like SB3's
            obs = self.to_torch(self._normalize_obs(obs.cpu().numpy(), env))
            next_obs = self.to_torch(self._normalize_obs(next_obs.cpu().numpy(), env))
            reward = self.to_torch(self._normalize_reward(reward.cpu().numpy(), env))
        return PrioritizedReplayBufferSamples(
            observations=obs,
            actions=batch.action,
            next_observations=next_obs,
            dones=batch.terminated.to(torch.float32).reshape(-1, 1),
            rewards=reward.reshape(-1, 1),
            weights=batch.weight.reshape(-1, 1),
            indices=batch.index,
        )

    def update_priorities(self, indices: torch.Tensor, td_errors: torch.Tensor) -> None:
        self.storage.update_priorities(indices, td_errors.reshape(-1))

    def reset(self) -> None:
        super().reset()
        self.storage = replay.PrioritizedReplayBuffer(**self._storage_args)

    # save_replay_buffer pickles the buffer: keep the rltorch buffer as its state_dict
    # (tensors and plain values), rebuilt on load.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["storage"] = self.storage.state_dict()
        return state

    def __setstate__(self, state: dict) -> None:
        storage_state = state.pop("storage")
        self.__dict__.update(state)
        self.storage = replay.PrioritizedReplayBuffer(**self._storage_args)
        self.storage.load_state_dict(storage_state)


class PrioritizedDQN(DQN):
    """SB3's DQN with prioritized replay on rltorch's sum tree: the Huber loss of each
    sampled transition is weighted by its importance weight, ``|TD error|`` becomes its
    new priority, and beta is annealed from ``per_beta`` to ``per_final_beta`` over
    ``learn``. Every other argument, and ``learn``/``save``/``load``/``predict``, are SB3's.

    Args:
        per_alpha, per_beta, per_final_beta, per_eps: see :class:`PrioritizedReplayBuffer`.
    """

    def __init__(
        self,
        policy,
        env,
        *args,
        per_alpha: float = 0.6,
        per_beta: float = 0.4,
        per_final_beta: float = 1.0,
        per_eps: float = 1e-6,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        **kwargs,
    ):
        if replay_buffer_class is None:
            replay_buffer_class = PrioritizedReplayBuffer
        if not issubclass(replay_buffer_class, PrioritizedReplayBuffer):
            raise ValueError(
                f"PrioritizedDQN: `replay_buffer_class` must be a PrioritizedReplayBuffer, got {replay_buffer_class}"
            )
        buffer_kwargs = dict(alpha=per_alpha, beta=per_beta, final_beta=per_final_beta, eps=per_eps)
        buffer_kwargs.update(replay_buffer_kwargs or {})
        self.per_alpha, self.per_beta, self.per_final_beta, self.per_eps = per_alpha, per_beta, per_final_beta, per_eps
        super().__init__(policy, env, *args, replay_buffer_class=replay_buffer_class,
                         replay_buffer_kwargs=buffer_kwargs, **kwargs)

    def _setup_model(self) -> None:
        if self.replay_buffer_kwargs.get("seed") is None and self.seed is not None:
            self.replay_buffer_kwargs["seed"] = self.seed
        super()._setup_model()

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        buffer: PrioritizedReplayBuffer = self.replay_buffer  # type: ignore[assignment]
        buffer.anneal_beta(1.0 - self._current_progress_remaining)
        losses = []
        for _ in range(gradient_steps):
            data = buffer.sample(batch_size, env=self._vec_normalize_env)
            gamma = data.discounts if data.discounts is not None else self.gamma
            with torch.no_grad():
                next_q = self.q_net_target(data.next_observations).max(dim=1, keepdim=True).values
                target = data.rewards + (1.0 - data.dones) * gamma * next_q
            q = self.q_net(data.observations).gather(1, data.actions.long())
            # Importance weights correct the bias of sampling by priority.
            loss = (data.weights * F.smooth_l1_loss(q, target, reduction="none")).mean()
            losses.append(loss.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
            buffer.update_priorities(data.indices, (q - target).detach())
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", np.mean(losses))
        self.logger.record("train/per_beta", buffer.beta)
