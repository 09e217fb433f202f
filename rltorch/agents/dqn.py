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
shared frame's (:mod:`rltorch.agents.base`), replay, update schedule and
target updates the off-policy module's (:mod:`rltorch.agents.offpolicy`);
this file is the algorithm.

Example::

    from rltorch.agents import DQN, DQNConfig
    agent = DQN(DQNConfig(env_id="CartPole-v1", seed=1))
    result = agent.train()            # stops once greedy evaluation reaches 475
    print(result.solved, result.wall_time_s, agent.evaluate(100))
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rltorch.agents.networks import GreedyPolicy, QNetwork
from rltorch.agents.offpolicy import (
    OffPolicyAgent,
    OffPolicyConfig,
    epsilon_greedy,
    linear_schedule,
    q_and_target,
    update_target,
)
from rltorch.config import HiddenSizes, LearningRate, Positive, PositiveInt, Unit


@dataclass(kw_only=True)
class DQNConfig(OffPolicyConfig):
    """DQN hyperparameters. The defaults solve CartPole-v1 in seconds on two CPU cores."""

    hidden_sizes: HiddenSizes = (128, 128)
    """Widths of the Q-network's hidden layers."""
    dueling: bool = False
    """Dueling heads: Q = V + A - mean(A)."""

    learning_rate: LearningRate = 2.5e-3
    """Adam's learning rate."""
    loss: Literal["huber", "mse"] = "huber"
    """'huber' (smooth L1) or 'mse'."""
    max_grad_norm: Positive | None = 10.0
    """Clip the gradient's global norm to this; none disables clipping."""
    double_dqn: bool = True
    """Double DQN: the online network picks the next action, the target network values it."""

    eps_start: Unit = 1.0
    """Exploration epsilon at the start."""
    eps_end: Unit = 0.05
    """Exploration epsilon after eps_decay_steps."""
    eps_decay_steps: PositiveInt = 6_000
    """Env steps over which epsilon decays linearly."""

    def check(self, values: dict[str, Any]) -> None:
        super().check(values)
        self.requirement(values["eps_end"] <= values["eps_start"], "eps_start",
                         f"must lie in [eps_end, 1], got {values['eps_start']}")


class DQN(OffPolicyAgent):
    """A DQN agent (see the module docstring); ``train``, ``evaluate``, ``act``, ``save``/``load``, ``export``."""

    name = "dqn"
    config_class = DQNConfig
    log_columns = (*OffPolicyAgent.log_columns, "epsilon")
    progress_columns = ("train_return", "epsilon")
    checkpoint_attrs = ("q", "target", "optimizer", *OffPolicyAgent.checkpoint_attrs)
    config: DQNConfig

    def build(self) -> None:
        if not self.env.discrete:
            raise ValueError(f"{type(self).__name__} needs a Discrete action space, got {self.env.action_space}")
        super().build()
        cfg = self.config
        obs_dim = math.prod(self.env.obs_shape)
        self.q = QNetwork(obs_dim, self.env.num_actions, cfg.hidden_sizes, cfg.dueling).to(self.device)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.greedy = GreedyPolicy(self.q)
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=cfg.learning_rate, fused=fused)
        self._update_fn = torch.compile(self._update) if cfg.compile else self._update

    # ------------------------------------------------------------------ acting

    def epsilon(self, step: int | None = None) -> float:
        cfg = self.config
        step = self.env_steps if step is None else step
        return linear_schedule(cfg.eps_start, cfg.eps_end, cfg.eps_decay_steps, step)

    def policy_module(self) -> nn.Module:
        return self.greedy

    def explore(self, obs: Tensor) -> Tensor:
        """Epsilon-greedy at the current epsilon."""
        return epsilon_greedy(self.q(obs), self.epsilon(), self.generator)

    # ------------------------------------------------------------------ learning

    def gradient_step(self, batch) -> Tensor:
        return self._update_fn(batch)

    def _update(self, batch) -> Tensor:
        cfg = self.config
        q_taken, target = q_and_target(self.q, self.target, batch, cfg.double_dqn)
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

    def after_update(self) -> None:
        update_target(self.target, self.q, self.config, self.updates)

    def learn_from(self, new_transitions: int) -> int:
        """Deprecated: count ``new_transitions`` with ``self.schedule.collected`` and call :meth:`update`."""
        warnings.warn("DQN.learn_from(n) is deprecated: call schedule.collected(n), then update()",
                      DeprecationWarning, stacklevel=2)
        before = self.updates
        self.schedule.collected(new_transitions)
        self.update()
        return self.updates - before

    def log_metrics(self) -> dict[str, float]:
        return {**super().log_metrics(), "epsilon": self.epsilon()}

    @classmethod
    def legacy_section(cls, flat: dict[str, Any]) -> dict[str, Any]:
        section = dict(flat)
        if "update_debt" in section:
            section["schedule"] = {"debt": section.pop("update_debt"), "pending": 0}
        return section
