"""DQN and its known improvements, on rltorch's fast ops.

Every trick is a switch in :class:`DQNConfig`: Double DQN, prioritized replay
(alpha, annealed beta), n-step returns, dueling heads, hard or soft target
updates, linear epsilon-greedy, Huber or MSE loss, gradient-norm clipping,
Adam, gradient updates per env step. Targets come from ``rltorch.ops.td_target``,
transitions live in ``rltorch.replay`` buffers, and rltorch's CartPole steps
thousands of envs per call. When env, buffer and network share a device the
training iteration never waits on the host: exploration, targets, sampling
and priority updates stay tensor ops; logging reads back only every
``log_interval`` steps. The loop, evaluation, checkpoints and export are the
shared frame's (:mod:`rltorch.agents.base`); this file is the algorithm.

Example::

    from rltorch.agents import DQN, DQNConfig
    agent = DQN(DQNConfig(env_id="CartPole-v1", seed=1))
    result = agent.train()            # stops once greedy evaluation reaches 475
    print(result.solved, result.wall_time_s, agent.evaluate(100))
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rltorch import ops
from rltorch.agents.base import Agent, check_module_state
from rltorch.agents.config import RunConfig
from rltorch.agents.networks import GreedyPolicy, QNetwork


@dataclass(kw_only=True)
class DQNConfig(RunConfig):
    """DQN hyperparameters. The defaults solve CartPole-v1 in seconds on two CPU cores."""

    hidden_sizes: tuple[int, ...] = (128, 128)
    """Widths of the Q-network's hidden layers."""
    dueling: bool = False
    """Dueling heads: Q = V + A - mean(A)."""

    learning_rate: float = 2.5e-3
    """Adam's learning rate."""
    batch_size: int = 128
    """Transitions per gradient update."""
    gamma: float = 0.99
    """Discount factor."""
    loss: Literal["huber", "mse"] = "huber"
    """'huber' (smooth L1) or 'mse'."""
    max_grad_norm: float | None = 10.0
    """Clip the gradient's global norm to this; none disables clipping."""
    updates_per_step: float = 0.125
    """Gradient updates per env step (summed over envs)."""

    buffer_size: int = 50_000
    """Replay buffer capacity in transitions."""
    learning_starts: int = 1_000
    """Transitions in the buffer before the first update."""
    n_step: int = 1
    """n-step returns (1: one-step TD targets)."""
    prioritized: bool = False
    """Prioritized replay (proportional, with importance weights)."""
    alpha: float = 0.6
    """Priority exponent of prioritized replay."""
    beta_start: float = 0.4
    """Importance-weight exponent at the start, annealed linearly to beta_end over total_steps."""
    beta_end: float = 1.0
    """Importance-weight exponent at total_steps."""
    priority_eps: float = 1e-6
    """Added to |TD error| so no transition's priority is zero."""

    double_dqn: bool = True
    """Double DQN: the online network picks the next action, the target network values it."""
    target_update: Literal["soft", "hard"] = "soft"
    """'soft' (Polyak, every update) or 'hard' (copy every target_update_interval updates)."""
    tau: float = 0.02
    """Polyak factor of soft target updates."""
    target_update_interval: int = 250
    """Updates between hard target copies."""

    eps_start: float = 1.0
    """Exploration epsilon at the start."""
    eps_end: float = 0.05
    """Exploration epsilon after eps_decay_steps."""
    eps_decay_steps: int = 6_000
    """Env steps over which epsilon decays linearly."""

    def check(self, values: dict[str, Any]) -> None:
        super().check(values)
        need = self.requirement
        need(0.0 <= values["gamma"] <= 1.0, "gamma", f"must lie in [0, 1], got {values['gamma']}")
        need(values["learning_rate"] > 0, "learning_rate", f"must be > 0, got {values['learning_rate']}")
        need(values["batch_size"] >= 1, "batch_size", f"must be >= 1, got {values['batch_size']}")
        need(values["max_grad_norm"] is None or values["max_grad_norm"] > 0, "max_grad_norm",
             f"must be > 0 or none, got {values['max_grad_norm']}")
        need(values["updates_per_step"] > 0, "updates_per_step", f"must be > 0, got {values['updates_per_step']}")
        need(values["buffer_size"] >= values["batch_size"], "buffer_size",
             f"({values['buffer_size']}) must be >= batch_size ({values['batch_size']})")
        need(values["learning_starts"] >= values["batch_size"], "learning_starts",
             f"({values['learning_starts']}) must be >= batch_size ({values['batch_size']})")
        need(values["n_step"] >= 1, "n_step", f"must be >= 1, got {values['n_step']}")
        need(values["alpha"] >= 0, "alpha", f"must be >= 0, got {values['alpha']}")
        for name in ("beta_start", "beta_end"):
            need(0 <= values[name] <= 1, name, f"must lie in [0, 1], got {values[name]}")
        need(values["priority_eps"] > 0, "priority_eps", f"must be > 0, got {values['priority_eps']}")
        need(0 < values["tau"] <= 1, "tau", f"must lie in (0, 1], got {values['tau']}")
        need(values["target_update_interval"] >= 1, "target_update_interval",
             f"must be >= 1, got {values['target_update_interval']}")
        need(0 <= values["eps_end"] <= 1, "eps_end", f"must lie in [0, 1], got {values['eps_end']}")
        need(values["eps_end"] <= values["eps_start"] <= 1, "eps_start",
             f"must lie in [eps_end, 1], got {values['eps_start']}")
        need(values["eps_decay_steps"] >= 1, "eps_decay_steps", f"must be >= 1, got {values['eps_decay_steps']}")
        need(len(values["hidden_sizes"]) >= 1 and all(h >= 1 for h in values["hidden_sizes"]), "hidden_sizes",
             f"must be one or more integers >= 1, got {list(values['hidden_sizes'])}")


class DQN(Agent):
    """A DQN agent (see the module docstring); ``train``, ``evaluate``, ``act``, ``save``/``load``, ``export``."""

    name = "dqn"
    config_class = DQNConfig
    log_columns = (*Agent.log_columns, "epsilon")
    progress_columns = ("train_return", "epsilon")
    config: DQNConfig

    def __init__(self, config: DQNConfig | None = None, env: gym.vector.VectorEnv | None = None):
        from rltorch.replay import PrioritizedReplayBuffer, ReplayBuffer

        super().__init__(config, env)
        cfg = self.config
        if not self.env.discrete:
            raise ValueError(f"DQN needs a Discrete action space, got {self.env.action_space}")
        self.q = QNetwork(math.prod(self.env.obs_shape), self.env.num_actions, cfg.hidden_sizes, cfg.dueling).to(self.device)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.greedy = GreedyPolicy(self.q)
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=cfg.learning_rate, fused=fused)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        buffer_kwargs = dict(capacity=cfg.buffer_size, obs_shape=self.env.obs_shape, obs_dtype=torch.float32,
                             action_shape=(), action_dtype=torch.int64, device=self.device, seed=cfg.seed + 1,
                             n_step=cfg.n_step, gamma=cfg.gamma)
        if cfg.prioritized:
            # The priority check costs a host sync per update on CUDA; the agent's own TD errors
            # only go non-finite if training diverged, which the evaluation shows anyway.
            self.buffer = PrioritizedReplayBuffer(alpha=cfg.alpha, beta=cfg.beta_start, eps=cfg.priority_eps,
                                                  validate=self.device.type == "cpu", **buffer_kwargs)
        else:
            self.buffer = ReplayBuffer(**buffer_kwargs)
        self._update_debt = 0.0
        self._update_fn = self._update
        if cfg.compile:
            self._update_fn = torch.compile(self._update)

    # ------------------------------------------------------------------ acting

    def epsilon(self, step: int | None = None) -> float:
        cfg = self.config
        step = self.env_steps if step is None else step
        frac = min(1.0, step / cfg.eps_decay_steps)
        return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)

    def policy_module(self) -> nn.Module:
        return self.greedy

    def explore(self, obs: Tensor) -> Tensor:
        """Epsilon-greedy at the current epsilon."""
        greedy = self.q(obs).argmax(dim=1)
        explore = torch.rand(greedy.shape, generator=self.generator, device=self.device) < self.epsilon()
        random_actions = torch.randint(0, self.env.num_actions, greedy.shape, generator=self.generator, device=self.device)
        return torch.where(explore, random_actions, greedy)

    # ------------------------------------------------------------------ collecting

    def collect(self) -> None:
        """One vector step: act epsilon-greedily, store the transitions, count finished episodes."""
        obs = self.current_obs()
        with torch.no_grad():
            action = self.explore(obs)
        step = self.env.step(action)
        self.buffer.add_vector_step(obs, action, step.reward, step.next_obs, step.terminated, step.truncated,
                                    valid=step.valid)
        self.record_episodes(step)
        self._obs = step.obs
        self.env_steps += self.env.num_envs

    # ------------------------------------------------------------------ learning

    def learn(self) -> None:
        """The gradient updates owed for the env steps collected (``updates_per_step`` per env step)."""
        self.learn_from(self.env.num_envs)

    def learn_from(self, new_transitions: int) -> int:
        """The updates owed for ``new_transitions`` more env steps at ``updates_per_step`` (a fixed
        samples-per-insert ratio); returns how many ran. Ape-X's learner calls it per actor batch."""
        cfg = self.config
        if len(self.buffer) < cfg.learning_starts:
            return 0
        self._update_debt += new_transitions * cfg.updates_per_step
        owed = int(self._update_debt)
        self._update_debt -= owed
        if cfg.prioritized:
            progress = min(1.0, self.env_steps / cfg.total_steps)
            self.buffer.beta = cfg.beta_start + progress * (cfg.beta_end - cfg.beta_start)
        for _ in range(owed):
            batch = self.buffer.sample(cfg.batch_size)
            td_error = self._update_fn(batch)
            if cfg.prioritized:
                self.buffer.update_priorities(batch.index, td_error)
            self.updates += 1
            self._update_target()
        return owed

    def _update(self, batch) -> Tensor:
        cfg = self.config
        with torch.no_grad():
            next_q = self.target(batch.next_obs)
            online = self.q(batch.next_obs) if cfg.double_dqn else None
            target = ops.td_target(batch.reward, batch.terminated, next_q, batch.discount, next_q_online=online)
        q_taken = self.q(batch.obs).gather(1, batch.action.long().unsqueeze(1)).squeeze(1)
        td_error = q_taken - target
        if cfg.loss == "huber":
            elementwise = F.smooth_l1_loss(q_taken, target, reduction="none")
        else:
            elementwise = td_error.square()
        loss = (elementwise * batch.weight).mean() if cfg.prioritized else elementwise.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.q.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        return td_error.detach()

    def _update_target(self) -> None:
        cfg = self.config
        if cfg.target_update == "soft":
            with torch.no_grad():
                torch._foreach_lerp_(list(self.target.parameters()), list(self.q.parameters()), cfg.tau)
        elif self.updates % cfg.target_update_interval == 0:
            self.target.load_state_dict(self.q.state_dict())

    def log_metrics(self) -> dict[str, float]:
        return {**super().log_metrics(), "epsilon": self.epsilon()}

    # ------------------------------------------------------------------ persistence

    def algorithm_state(self, include_buffer: bool) -> dict[str, Any]:
        state = {
            "q": self.q.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "update_debt": self._update_debt,
            "generator": self.generator.get_state(),
        }
        if include_buffer:
            state["buffer"] = self.buffer.state_dict()
        return state

    def load_algorithm_state(self, state: dict[str, Any], continue_episodes: bool) -> None:
        for key in ("q", "target", "optimizer", "update_debt", "generator"):
            if key not in state:
                raise ValueError(f"DQN checkpoint lacks {key!r}")
        check_module_state(self.q, state["q"], "q")
        check_module_state(self.target, state["target"], "target")
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._update_debt = float(state["update_debt"])
        self.generator.set_state(state["generator"])
        if "buffer" in state:
            buffer_state = state["buffer"]
            if not continue_episodes and buffer_state.get("window") is not None:
                # The n-step window holds the interrupted episodes' last steps; the env restarts its
                # episodes, so completing them with the new episode's rewards would splice two episodes.
                buffer_state = {**buffer_state, "window": None}
            self.buffer.load_state_dict(buffer_state)

