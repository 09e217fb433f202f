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
from typing import Any, Callable, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rltorch.agents.legacy import is_lone_adam_state, renumbered_body, stacked_adam_state, stacked_module_state
from rltorch.agents.networks import GreedyPolicy
from rltorch.agents.offpolicy import (
    OffPolicyAgent,
    OffPolicyConfig,
    epsilon_greedy,
    linear_schedule,
    q_and_target,
    update_target,
)
from rltorch.agents.stacked_q import StackedGreedyPolicy, StackedQNetwork
from rltorch.config import HiddenSizes, LearningRate, Positive, PositiveInt, Unit
from rltorch.nn.stacked_adam import StackedAdam


@dataclass(kw_only=True)
class DQNConfig(OffPolicyConfig):
    """DQN hyperparameters. The defaults solve CartPole-v1 in seconds on two CPU cores."""

    per_agent_fields: ClassVar[tuple[str, ...] | None] = ("seed", "learning_rate", "max_grad_norm", "tau",
                                                          "eps_start", "eps_end", "eps_decay_steps")
    shape_fields: ClassVar[tuple[str, ...]] = ("num_envs", "hidden_sizes", "batch_size", "buffer_size", "n_step")

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
    """A DQN agent, or a population of them (see the module docstring); ``train``, ``evaluate``, ``act``,
    ``save``/``load``, ``export``."""

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
        # Agent k's initial weights from its own seed, drawn as a QNetwork built under that seed draws them.
        seeded = [torch.Generator().manual_seed(member.seed) for member in self.members]
        self.q = StackedQNetwork(self.num_agents, obs_dim, self.env.num_actions, cfg.hidden_sizes, cfg.dueling,
                                 generators=seeded).to(self.device)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.greedy = StackedGreedyPolicy(self.q)
        self.optimizer = StackedAdam(self.q.parameters(), lr=self.per_agent("learning_rate"),
                                     max_grad_norm=self._grad_bound())
        self._update_fn = torch.compile(self._update) if cfg.compile else self._update
        self._schedules()

    def _grad_bound(self) -> Tensor | None:
        bound = self.per_agent("max_grad_norm")
        return None if bool(torch.isinf(bound).all()) else bound

    def _schedules(self) -> None:
        """Each agent's epsilon schedule and Polyak factor, and which agents still learn (a population's
        solved agents stop: no gradient step, no target update)."""
        column = (self.num_agents, 1)
        self._eps = [self.per_agent(name).view(column).to(self.device)
                     for name in ("eps_start", "eps_end", "eps_decay_steps")]
        learning = torch.zeros(self.num_agents, dtype=torch.bool)
        learning[self.active] = True
        self._learning = None if bool(learning.all()) else learning.to(self.device)
        self.learning_rows = None if self._learning is None else self.active.to(self.device)
        tau = self.per_agent("tau") * learning
        self._tau = [tau.to(self.device, torch.float32).view(shape) for shape in
                     ((self.num_agents,) + (1,) * (p.dim() - 1) for p in self.q.parameters())]

    def retire(self, agents: Tensor) -> None:
        self._schedules()

    def after_load(self) -> None:
        self._schedules()

    # ------------------------------------------------------------------ acting

    def epsilon(self, step: int | None = None) -> float | Tensor:
        """Exploration epsilon at ``step`` (default: now): a number, or a population's ``[K, 1]`` tensor."""
        cfg = self.config
        step = self.env_steps if step is None else step
        if self.num_agents == 1:
            return linear_schedule(cfg.eps_start, cfg.eps_end, cfg.eps_decay_steps, step)
        start, end, duration = self._eps
        return start + (step / duration).clamp(max=1.0) * (end - start)

    def policy_module(self) -> nn.Module:
        return self.greedy

    def agent_policy(self, agent: int) -> nn.Module:
        return GreedyPolicy(self.q.agent(agent))

    def population_policy(self, agents: Tensor) -> Callable[[Tensor], Tensor]:
        q = self.q if agents.numel() == self.num_agents else self.q.select(agents)
        return lambda rows: q(rows).argmax(dim=-1)

    def explore(self, obs: Tensor) -> Tensor:
        """Epsilon-greedy at the current epsilon; each agent draws from its own generator."""
        q_values = self.q(self.per_agent_rows(obs) if self.num_agents > 1 else obs.unsqueeze(0))
        if self.num_agents == 1:
            return epsilon_greedy(q_values[0], self.epsilon(), self.generator)
        epsilon = self.epsilon()
        actions = [epsilon_greedy(q_values[k], epsilon[k], generator) for k, generator in enumerate(self.generators)]
        return torch.cat(actions)

    # ------------------------------------------------------------------ learning

    def gradient_step(self, batch) -> Tensor:
        return self._update_fn(batch)

    def _update(self, batch) -> Tensor:
        cfg = self.config
        if self.num_agents == 1:  # one buffer's batch: [B, ...]; the stacked network takes [1, B, ...]
            batch = type(batch)(*(field.unsqueeze(0) for field in batch))
        rows, q, target_q = self.learning_rows, self.q, self.target
        if rows is not None:
            # Agents that solved stopped learning: the networks run on the others' rows only, so the work
            # shrinks as agents solve (their TD errors come back as 0 and their priorities stay as they are).
            batch = type(batch)(*(field.index_select(0, rows) for field in batch))
            q, target_q = _agents_of(self.q, rows), _agents_of(self.target, rows)
        q_taken, target = q_and_target(q, target_q, batch, cfg.double_dqn)
        td_error = q_taken - target
        if cfg.loss == "huber":
            elementwise = F.smooth_l1_loss(q_taken, target, reduction="none")
        else:
            elementwise = td_error.square()
        if cfg.prioritized:
            elementwise = elementwise * batch.weight
        loss = elementwise.mean(dim=-1).sum()  # each agent's mean loss; its gradient reaches its rows only
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step(self._learning)
        td_error = td_error.detach()
        if rows is not None:
            td_error = td_error.new_zeros(self.num_agents, td_error.shape[1]).index_copy_(0, rows, td_error)
        return td_error[0] if self.num_agents == 1 else td_error

    def after_update(self) -> None:
        if self.num_agents == 1 or self.config.target_update == "hard":
            update_target(self.target, self.q, self.config, self.updates)
        else:  # each agent's own Polyak factor (0 for an agent that stopped)
            with torch.no_grad():
                torch._foreach_lerp_(list(self.target.parameters()), list(self.q.parameters()), self._tau)

    def learn_from(self, new_transitions: int) -> int:
        """Deprecated: count ``new_transitions`` with ``self.schedule.collected`` and call :meth:`update`."""
        warnings.warn("DQN.learn_from(n) is deprecated: call schedule.collected(n), then update()",
                      DeprecationWarning, stacklevel=2)
        before = self.updates
        self.schedule.collected(new_transitions)
        self.update()
        return self.updates - before

    def log_metrics(self) -> dict[str, Any]:
        epsilon = self.epsilon()
        return {**super().log_metrics(), "epsilon": epsilon if self.num_agents == 1 else epsilon.flatten().tolist()}

    @classmethod
    def legacy_section(cls, flat: dict[str, Any]) -> dict[str, Any]:
        section = dict(flat)
        if "update_debt" in section:
            section["schedule"] = {"debt": section.pop("update_debt"), "pending": 0}
        return section

    def upgraded_section(self, section: dict[str, Any]) -> dict[str, Any]:
        """Formats 1 to 3 held one agent's plain Q networks and torch Adam: the lone row of today's."""
        if not is_lone_adam_state(section.get("optimizer")):
            return section
        if self.num_agents != 1:
            raise ValueError(f"the checkpoint holds one agent (written before population training); this DQN "
                             f"trains {self.num_agents}")
        if not isinstance(section.get("q"), dict):
            raise ValueError("`q` must be a network's state dict")
        rename = renumbered_body(list(section["q"]))
        q, parameters = stacked_module_state(section["q"], self.q, "q", rename)
        target, _ = stacked_module_state(section.get("target"), self.target, "target", rename)
        optimizer = stacked_adam_state(section["optimizer"], parameters, self.q, self.optimizer.state_dict(),
                                       "optimizer", rename)
        return {**section, "q": q, "target": target, "optimizer": optimizer}


def _agents_of(network: nn.Module, rows: Tensor) -> Callable[[Tensor], Tensor]:
    """The stacked ``network``'s agents ``rows`` as a function of their observations ``[len(rows), B, ...]``;
    gradients reach the population's parameters (through ``index_select``), zero in the other agents' rows."""
    parameters = {name: p.index_select(0, rows) for name, p in network.named_parameters()}
    return lambda obs: torch.func.functional_call(network, parameters, (obs,))
