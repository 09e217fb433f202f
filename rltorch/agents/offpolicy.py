"""What every replay-based (off-policy) algorithm shares, in one place: DQN, Ape-X's actors and learner, and
whatever comes next (SAC, TD3) use these rather than copies.

- :class:`OffPolicyConfig`: the replay, update-schedule and target-network fields;
- :func:`replay_buffer`: the uniform or prioritized buffer a config describes;
- :class:`UpdateSchedule`: gradient updates owed per collected transition (a fixed
  samples-per-insert ratio, the fractional remainder carried as debt);
- :func:`epsilon_greedy`, :func:`linear_schedule`: exploration and annealing;
- :func:`q_and_target`, :func:`td_priorities`: TD targets with ``rltorch.ops.td_target``
  (Double DQN optional) and the priorities they give;
- :func:`polyak_update`, :func:`update_target`: soft or hard target-network updates;
- :class:`OffPolicyAgent`: the frame's ``collect`` (one vector step into the buffer) and
  ``update`` (sample, one gradient step, priorities, target update; as many as owed). An
  algorithm adds its networks in ``build``, ``explore``, ``gradient_step`` and
  ``after_update``; ``tests/algorithms/linear_q.py`` is a complete one in one short file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn

from rltorch import ops
from rltorch._checks import Range
from rltorch.agents.base import Agent
from rltorch.agents.config import RunConfig
from rltorch.config import NonNegativeInt, PositiveInt, Unit
from rltorch.replay import PrioritizedReplayBuffer, ReplayBuffer


@dataclass(kw_only=True)
class OffPolicyConfig(RunConfig):
    """Replay, update schedule and target network of an off-policy algorithm."""

    batch_size: PositiveInt = 128
    """Transitions per gradient update."""
    gamma: Unit = 0.99
    """Discount factor."""
    updates_per_step: Annotated[float, Range(0, 1000, low_open=True)] = 0.125
    """Gradient updates per env step (summed over envs)."""
    train_freq: PositiveInt = 1
    """Vector steps between rounds of gradient updates (SB3's train_freq): the updates owed meanwhile run
    together after every train_freq-th step, so exploration acts on one network for that many steps in a
    row (rl-zoo3's MountainCar-v0 DQN needs 16 with one env: a network that changes every step or two
    dithers instead of swinging the car)."""

    buffer_size: PositiveInt = 50_000
    """Replay buffer capacity in transitions."""
    learning_starts: NonNegativeInt = 1_000
    """Transitions in the buffer before the first update."""
    n_step: PositiveInt = 1
    """n-step returns (1: one-step TD targets)."""
    prioritized: bool = False
    """Prioritized replay (proportional, with importance weights)."""
    alpha: Annotated[float, Range(0, 1, low_open=True)] = 0.6
    """Priority exponent of prioritized replay."""
    beta_start: Unit = 0.4
    """Importance-weight exponent at the start, annealed linearly to beta_end over total_steps."""
    beta_end: Unit = 1.0
    """Importance-weight exponent at total_steps."""
    priority_eps: Annotated[float, Range(0, 1, low_open=True)] = 1e-6
    """Added to |TD error| so no transition's priority is zero."""

    target_update: Literal["soft", "hard"] = "soft"
    """'soft' (Polyak, every update) or 'hard' (copy every target_update_interval updates)."""
    tau: Annotated[float, Range(0, 1, low_open=True)] = 0.02
    """Polyak factor of soft target updates."""
    target_update_interval: PositiveInt = 250
    """Updates between hard target copies."""

    def check(self, values: dict[str, Any]) -> None:
        super().check(values)
        need = self.requirement
        need(values["buffer_size"] >= values["batch_size"], "buffer_size",
             f"({values['buffer_size']}) must be >= batch_size ({values['batch_size']})")
        need(values["learning_starts"] >= values["batch_size"], "learning_starts",
             f"({values['learning_starts']}) must be >= batch_size ({values['batch_size']})")


def replay_buffer(config: OffPolicyConfig, obs_shape: tuple[int, ...], device: torch.device, *,
                  action_shape: tuple[int, ...] = (), action_dtype: torch.dtype = torch.int64,
                  capacity: int | None = None, prioritized: bool | None = None,
                  seed: int | None = None, num_buffers: int | None = None) -> ReplayBuffer:
    """The buffer ``config`` describes (``capacity``, ``prioritized`` and ``seed`` override its fields;
    the seed defaults to ``config.seed + 1``), forming ``config.n_step``-step transitions; ``num_buffers=K``:
    one buffer per agent of a population, in one storage."""
    kwargs = dict(capacity=config.buffer_size if capacity is None else capacity, obs_shape=obs_shape,
                  obs_dtype=torch.float32, action_shape=action_shape, action_dtype=action_dtype, device=device,
                  seed=config.seed + 1 if seed is None else seed, n_step=config.n_step, gamma=config.gamma,
                  num_buffers=num_buffers)
    if config.prioritized if prioritized is None else prioritized:
        # The priority check costs a host sync per update on CUDA; an agent's own TD errors
        # only go non-finite if training diverged, which the evaluation shows anyway.
        return PrioritizedReplayBuffer(alpha=config.alpha, beta=config.beta_start, eps=config.priority_eps,
                                       validate=device.type == "cpu", **kwargs)
    return ReplayBuffer(**kwargs)


class UpdateSchedule:
    """Gradient updates owed for the transitions collected: ``updates_per_step`` per transition once the
    buffer holds ``learning_starts``; the fractional remainder carries over as debt."""

    def __init__(self, updates_per_step: float, learning_starts: int):
        self.updates_per_step = float(updates_per_step)
        self.learning_starts = int(learning_starts)
        self.debt = 0.0
        self.pending = 0

    def collected(self, transitions: int) -> None:
        """``transitions`` more were added to the buffer since the last :meth:`owed`."""
        self.pending += int(transitions)

    def owed(self, stored: int) -> int:
        """Updates to run now, with ``stored`` transitions in the buffer."""
        new, self.pending = self.pending, 0
        if stored < self.learning_starts:
            return 0
        self.debt += new * self.updates_per_step
        owed = int(self.debt)
        self.debt -= owed
        return owed

    def state_dict(self) -> dict[str, Any]:
        return {"debt": self.debt, "pending": self.pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        debt, pending = (state.get("debt"), state.get("pending")) if isinstance(state, dict) else (None, None)
        if isinstance(debt, bool) or not isinstance(debt, (int, float)) or not 0 <= debt < 1:
            raise ValueError(f"`schedule.debt` must be a number in [0, 1), got {debt!r:.60}")
        if isinstance(pending, bool) or not isinstance(pending, int) or pending < 0:
            raise ValueError(f"`schedule.pending` must be an integer >= 0, got {pending!r:.60}")
        self.debt, self.pending = float(debt), pending


def linear_schedule(start: float, end: float, duration: int, step: int) -> float:
    """``start`` at step 0, moving linearly to ``end`` at ``duration`` and staying there."""
    frac = min(1.0, step / duration)
    return start + frac * (end - start)


def epsilon_greedy(q_values: Tensor, epsilon: float, generator: torch.Generator) -> Tensor:
    """Greedy actions of ``q_values`` [B, A], each replaced by a uniform random one with probability ``epsilon``."""
    greedy = q_values.argmax(dim=1)
    explore = torch.rand(greedy.shape, generator=generator, device=greedy.device) < epsilon
    random_actions = torch.randint(0, q_values.shape[1], greedy.shape, generator=generator, device=greedy.device)
    return torch.where(explore, random_actions, greedy)


def q_and_target(q: nn.Module, target_q: nn.Module, batch: Any, double: bool) -> tuple[Tensor, Tensor]:
    """``(Q(s, a), TD target)`` for a batch of transitions (``obs``, ``action``, ``reward``, ``terminated``,
    ``next_obs``, ``discount``; ``[B, ...]``, or ``[K, B, ...]`` for K agents' stacked Q-networks). Double
    DQN: ``q`` picks the next action, ``target_q`` values it (pass the same network twice to let one play both
    roles). The target carries no gradient."""
    with torch.no_grad():
        next_q = target_q(batch.next_obs)
        online = (next_q if target_q is q else q(batch.next_obs)) if double else None
        target = ops.td_target(batch.reward, batch.terminated, next_q, batch.discount, next_q_online=online)
    q_taken = q(batch.obs).gather(-1, batch.action.long().unsqueeze(-1)).squeeze(-1)
    return q_taken, target


@torch.no_grad()
def td_priorities(q: nn.Module, batch: Any, double: bool) -> Tensor:
    """``|Q(s, a) - target|`` of each transition under one network: the initial priorities Ape-X's actors send."""
    q_taken, target = q_and_target(q, q, batch, double)
    return (q_taken - target).abs()


def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``target <- target + tau * (online - target)`` for every parameter, in one fused call."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)


def update_target(target: nn.Module, online: nn.Module, config: OffPolicyConfig, updates: int) -> None:
    """The config's target update after update number ``updates``: soft every time, or a hard copy every
    ``target_update_interval``."""
    if config.target_update == "soft":
        polyak_update(target, online, config.tau)
    elif updates % config.target_update_interval == 0:
        target.load_state_dict(online.state_dict())


class OffPolicyAgent(Agent):
    """The frame's hooks for a replay-based algorithm: ``collect`` steps the env once into ``self.buffer``
    (actions from ``explore``), ``update`` runs the gradient steps owed (``gradient_step`` on a sampled batch,
    its TD errors as new priorities, then ``after_update``). Subclasses build their networks in ``build``
    (calling ``super().build()``) and list them in ``checkpoint_attrs``."""

    config_class = OffPolicyConfig
    config: OffPolicyConfig
    checkpoint_attrs = ("schedule",)
    buffer_attrs = ("buffer",)
    #: A population's agents that still learn (increasing indices, on the device); None while every agent does.
    #: ``gradient_step`` computes only their rows, and only their buffers' priorities change.
    learning_rows: Tensor | None = None

    def build(self) -> None:
        cfg = self.config
        discrete = self.env.discrete
        # A population: one buffer per agent in one storage (K sum trees for prioritized replay).
        self.buffer = replay_buffer(cfg, self.env.obs_shape, self.device, action_shape=self.env.action_shape,
                                    action_dtype=torch.int64 if discrete else torch.float32,
                                    num_buffers=self.num_agents if self.num_agents > 1 else None)
        self.schedule = UpdateSchedule(cfg.updates_per_step, cfg.learning_starts)

    def per_agent_rows(self, x: Tensor) -> Tensor:
        """A vector step's rows ``[num_agents * num_envs, ...]`` as the buffer takes them: ``[K, num_envs, ...]``
        for a population, as they are for one agent."""
        return x if self.num_agents == 1 else x.view(self.num_agents, -1, *x.shape[1:])

    def gradient_step(self, batch) -> Tensor:
        """One gradient update on a sampled batch; returns its TD errors (the new priorities)."""
        raise NotImplementedError

    def after_update(self) -> None:
        """After each gradient update (``self.updates`` already counts it): target networks."""

    def collect(self) -> None:
        """One vector step: act with ``explore``, store the transitions, count them."""
        obs = self.current_obs()
        with torch.no_grad():
            action = self.explore(obs)
        step = self.env.step(action)
        rows = self.per_agent_rows
        self.buffer.add_vector_step(rows(obs), rows(action), rows(step.reward), rows(step.next_obs),
                                    rows(step.terminated), rows(step.truncated),
                                    valid=None if step.valid is None else rows(step.valid))
        self.advance(step)
        self.schedule.collected(self.env.num_envs // self.num_agents)  # one gradient step updates every agent

    def update(self) -> None:
        """The gradient updates owed for what was collected (``updates_per_step`` per transition), after every
        ``train_freq``-th vector step (the schedule holds the transitions collected in between)."""
        cfg = self.config
        if cfg.train_freq > 1 and (self.env_steps // (self.env.num_envs // self.num_agents)) % cfg.train_freq:
            return
        owed = self.schedule.owed(len(self.buffer))
        if owed and cfg.prioritized:
            self.buffer.beta = linear_schedule(cfg.beta_start, cfg.beta_end, cfg.total_steps, self.env_steps)
        for _ in range(owed):
            batch = self.buffer.sample(cfg.batch_size)
            td_error = self.gradient_step(batch)
            if cfg.prioritized:
                index = batch.index
                if self.learning_rows is not None:  # id -1: skipped, so those agents keep their priorities
                    index = torch.full_like(index, -1).index_copy_(0, self.learning_rows,
                                                                    index.index_select(0, self.learning_rows))
                self.buffer.update_priorities(index, td_error)
            self.updates += 1
            self.after_update()

    def fresh_episodes(self, section: dict[str, Any]) -> dict[str, Any]:
        buffer = section.get("buffer")
        if isinstance(buffer, dict) and buffer.get("window") is not None:
            # The n-step window holds the interrupted episodes' last steps; the env restarts its
            # episodes, so completing them with the new episodes' rewards would splice two episodes.
            section = {**section, "buffer": {**buffer, "window": None}}
        return section
