"""Proximal Policy Optimization (clipped surrogate) on rltorch's GAE op.

One training iteration collects ``num_steps`` steps from each of ``num_envs``
envs into a preallocated :class:`~rltorch.replay.rollout.RolloutBuffer`,
computes values of every observation and successor observation in one
batched call, advantages and TD(lambda) returns with
:func:`rltorch.ops.gae` (terminated steps do not bootstrap; truncated ones
bootstrap from the value of their final observation), then runs
``update_epochs`` passes of ``num_minibatches`` shuffled minibatches over the
clipped surrogate, the (optionally clipped) value loss and an entropy bonus,
with linear learning-rate and clip annealing, gradient-norm clipping and an
optional target-KL early stop.

Nothing in the rollout or the update waits on the host when env, buffer and
network share a device, except the target-KL check (``target_kl`` set),
which reads one number per epoch.

Example::

    from rltorch.agents import PPO, PPOConfig
    agent = PPO(PPOConfig(env_id="CartPole-v1", seed=1))
    result = agent.train()            # stops once greedy evaluation reaches 475
    print(result.solved, result.time_to_solve_s, agent.evaluate(100))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Callable, ClassVar

import gymnasium as gym
import torch
from torch import Tensor, nn

from rltorch._checks import Range
from rltorch.agents.actor_critic import DeterministicPolicy
from rltorch.agents.base import EXTRA_KEY, Agent
from rltorch.agents.config import RunConfig
from rltorch.agents.legacy import is_lone_adam_state, stacked_adam_state, stacked_module_state
from rltorch.agents.stacked_actor_critic import StackedActorCritic, StackedDeterministicPolicy
from rltorch.config import HiddenSizes, LearningRate, Positive, PositiveInt, Unit
from rltorch.envs.cartpole import CartPoleVecEnv
from rltorch.nn import ACTIVATIONS
from rltorch.nn.stacked_adam import StackedAdam
from rltorch.ops.returns import gae
from rltorch.replay.rollout import RolloutBatch, RolloutBuffer

#: Bounds of the loss weights and of the KL early stop: beyond them a run only diverges.
_Weight = Annotated[float, Range(0, 1000)]


def ppo_loss(
    new_logprob: Tensor,
    entropy: Tensor,
    new_value: Tensor,
    old_logprob: Tensor,
    old_value: Tensor,
    advantage: Tensor,
    returns: Tensor,
    clip_coef: float | Tensor,
    *,
    clip_vloss: bool = False,
    ent_coef: float | Tensor = 0.0,
    vf_coef: float | Tensor = 0.5,
    norm_adv: bool = True,
    weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The PPO objective of one minibatch, for one agent or K agents at once.

    Tensors are ``[M]`` (one agent's rows) or ``[K, M]`` (K agents' rows): every mean, and the advantage
    normalisation, is over the last dimension, so each agent's loss sees its own rows only. Coefficients are
    numbers or ``[K, 1]`` tensors (one per agent). Returns ``(loss, stats)``: ``loss`` is the sum of the
    agents' losses (each agent's parameters get its own loss's gradient) and ``stats`` is ``[..., 5]`` =
    [policy loss, value loss, entropy, approx KL, clip fraction] per agent (detached). ``weight`` (0/1 per
    row) drops rows that are no transitions (gymnasium NEXT_STEP reset rows) from every mean.
    """
    if weight is None:
        def mean(x: Tensor) -> Tensor:
            return x.mean(dim=-1, keepdim=True)
    else:
        count = weight.sum(dim=-1, keepdim=True).clamp(min=1.0)

        def mean(x: Tensor) -> Tensor:
            return (x * weight).sum(dim=-1, keepdim=True) / count

    if norm_adv:
        centred = advantage - mean(advantage)
        if weight is None:
            std = advantage.std(dim=-1, keepdim=True)
        else:  # unbiased, as torch.std: the minibatch is a sample of the rollout
            std = ((centred.square() * weight).sum(dim=-1, keepdim=True) / (count - 1).clamp(min=1.0)).sqrt()
        advantage = centred / (std + 1e-8)

    logratio = new_logprob - old_logprob
    ratio = logratio.exp()
    low, high = 1 - clip_coef, 1 + clip_coef
    policy_loss = mean(torch.max(-advantage * ratio, -advantage * torch.clamp(ratio, low, high)))

    if clip_vloss:
        clipped_value = old_value + torch.clamp(new_value - old_value, -clip_coef, clip_coef)
        value_loss = 0.5 * mean(torch.max((new_value - returns).square(), (clipped_value - returns).square()))
    else:
        value_loss = 0.5 * mean((new_value - returns).square())

    entropy_mean = mean(entropy)
    loss = (policy_loss - ent_coef * entropy_mean + vf_coef * value_loss).sum()

    with torch.no_grad():
        approx_kl = mean((ratio - 1) - logratio)  # http://joschu.net/blog/kl-approx.html
        clip_fraction = mean(((ratio - 1).abs() > clip_coef).float())
        stats = torch.cat([policy_loss, value_loss, entropy_mean, approx_kl, clip_fraction], dim=-1).detach()
    return loss, stats


@dataclass(kw_only=True)
class PPOConfig(RunConfig):
    """PPO hyperparameters. The defaults solve CartPole-v1 in about half a second on two CPU cores."""

    per_agent_fields: ClassVar[tuple[str, ...]] = ("seed", "learning_rate", "adam_eps", "gamma", "gae_lambda",
                                                   "clip_coef", "ent_coef", "vf_coef", "max_grad_norm", "target_kl")
    shape_fields: ClassVar[tuple[str, ...]] = ("num_envs", "num_steps", "num_minibatches", "hidden_sizes")

    # RunConfig's fields with defaults that suit PPO (their help stays RunConfig's).
    num_envs: PositiveInt = 64
    eval_interval: PositiveInt = 2_048
    log_interval: PositiveInt = 2_048
    eval_stop_early: bool = True
    total_steps: PositiveInt = 200_000
    """Upper bound on env steps (summed over envs); the learning-rate and clip schedules run over it."""

    num_steps: PositiveInt = 32
    """Steps per env in each rollout (a rollout holds num_envs * num_steps transitions)."""
    hidden_sizes: HiddenSizes = (64, 64)
    """Widths of the hidden layers of the policy network and of the value network."""
    activation: str = "tanh"
    """Hidden-layer activation: relu, tanh, gelu, silu, elu or leaky_relu."""
    normalize_obs: bool = False
    """Normalize observations by their running mean and std (kept in checkpoints and exports)."""
    init_log_std: Annotated[float, Range(-20, 2)] = 0.0
    """Initial log standard deviation of the Gaussian policy (Box actions only). At most 2 (std 7.4: wider
    only piles actions on the bounds; 1000 would make them infinite), at least -20 (as good as deterministic)."""

    learning_rate: LearningRate = 1e-3
    """Adam's learning rate at the start of training."""
    anneal_lr: bool = True
    """Decay the learning rate linearly towards 0 over total_steps."""
    adam_eps: Annotated[float, Range(0, 1, low_open=True)] = 1e-5
    """Adam's epsilon."""
    gamma: Unit = 0.99
    """Discount factor."""
    gae_lambda: Unit = 0.95
    """GAE lambda (1: Monte Carlo returns, 0: one-step TD)."""
    update_epochs: PositiveInt = 4
    """Passes over each rollout."""
    num_minibatches: PositiveInt = 2
    """Minibatches per pass (each holds num_envs * num_steps / num_minibatches transitions)."""
    norm_adv: bool = True
    """Normalize the advantages of each minibatch to mean 0 and std 1."""
    clip_coef: Annotated[float, Range(0, 10, low_open=True)] = 0.2
    """Surrogate clipping range epsilon (also the value clipping range with clip_vloss)."""
    anneal_clip: bool = True
    """Decay clip_coef linearly towards 0 over total_steps."""
    clip_vloss: bool = False
    """Clip the value update around the rollout's values, as in the PPO paper's implementation."""
    ent_coef: _Weight = 0.0
    """Weight of the entropy bonus."""
    vf_coef: _Weight = 0.5
    """Weight of the value loss."""
    max_grad_norm: Positive | None = 0.5
    """Clip the gradient's global norm to this; none disables clipping."""
    target_kl: Annotated[float, Range(0, 1000, low_open=True)] | None = None
    """Stop an iteration's epochs once the approximate KL of the last minibatch exceeds this (none: never).
    Reads one number from the device per epoch."""
    cuda_graphs: bool = False
    """On a CUDA device with rltorch's CartPole: capture the rollout and the update in CUDA graphs (per number
    of training agents) and replay them, one launch instead of thousands per iteration (not the update when
    target_kl is set: it reads the device every epoch)."""

    @property
    def batch_size(self) -> int:
        """Transitions per rollout."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    def check(self, values: dict[str, Any]) -> None:
        super().check(values)
        need = self.requirement
        batch = values["num_envs"] * values["num_steps"]
        need(batch // values["num_minibatches"] >= 2, "num_minibatches",
             f"({values['num_minibatches']}) must leave at least 2 transitions per minibatch of the "
             f"{batch} in a rollout (num_envs * num_steps)")
        need(values["activation"] in ACTIVATIONS, "activation",
             f"must be one of {', '.join(sorted(ACTIVATIONS))}, got {values['activation']!r}")


class PPO(Agent):
    """A PPO agent, or a population of them (see the module docstring); ``train``, ``evaluate``, ``act``,
    ``save``/``load``, ``export``."""

    name = "ppo"
    config_class = PPOConfig
    checkpoint_attrs = ("net", "iterations", "loss_stats", "loss_count")
    log_columns = (*Agent.log_columns, "learning_rate", "policy_loss", "value_loss", "entropy", "approx_kl",
                   "clip_fraction")
    progress_columns = ("train_return", "entropy")
    config: PPOConfig

    def build(self) -> None:
        cfg = self.config
        space = self.env.action_space
        self.action_dim = self.env.num_actions if self.env.discrete else math.prod(self.env.action_shape)
        # Agent k's initial weights come from its own seed: a population's agent k starts as a lone agent would.
        seeded = [torch.Generator().manual_seed(member.seed) for member in self.members]
        #: Every agent's networks: the training agents' latest, the others' as they were when they stopped.
        self.net = StackedActorCritic(
            self.num_agents, self.env.obs_shape, self.action_dim, continuous=not self.env.discrete,
            hidden_sizes=cfg.hidden_sizes, activation=cfg.activation, normalize_obs=cfg.normalize_obs,
            init_log_std=cfg.init_log_std, action_low=None if self.env.discrete else torch.as_tensor(space.low),
            action_high=None if self.env.discrete else torch.as_tensor(space.high),
            action_shape=None if self.env.discrete else self.env.action_shape, generators=seeded,
        ).to(self.device)
        # Rows of gymnasium's NEXT_STEP reset calls are no transitions: the loss weighs them 0.
        self.masked = self.env.autoreset_mode != gym.vector.AutoresetMode.SAME_STEP
        self.num_iterations = -(-cfg.total_steps // cfg.batch_size)
        self.iterations = 0
        self.loss_stats = torch.zeros(self.num_agents, 5, device=self.device)  # per agent, since the last log row
        self.loss_count = 0
        self._minibatch_step = torch.compile(self._minibatch_update) if cfg.compile else self._minibatch_update
        self.live: StackedActorCritic | None = None
        self.optimizer: StackedAdam | None = None
        self._use_graphs = cfg.cuda_graphs and self.device.type == "cuda"
        if self._use_graphs and not isinstance(self.env.env, CartPoleVecEnv):
            raise ValueError("PPO: `cuda_graphs` needs rltorch's CartPole (an env stepped inside the graph)")
        self._static_obs = torch.zeros(self.env.num_envs, *self.env.obs_shape, device=self.device)
        self._train_agents(self.active)

    def _train_agents(self, agents: Tensor) -> None:
        """Trains ``agents`` (indices, in order) from now on: their networks (the population's own while every
        agent trains, else copies of their rows, written back after every update), their Adam states (kept
        from before, or fresh), their settings, the rollout buffer and the noise buffers."""
        cfg, dev = self.config, self.device
        before = None if self.live is None else self.live_agents
        self.live_agents = agents.clone()
        whole = agents.numel() == self.num_agents
        self.live = self.net if whole else self.net.select(agents)
        count = agents.numel()
        if before is None:
            self.optimizer = StackedAdam(self.live.parameters(), lr=self.per_agent("learning_rate")[agents],
                                         eps=self.per_agent("adam_eps")[agents],
                                         max_grad_norm=self._grad_bound(agents), lone=self.num_agents == 1)
        else:
            self.optimizer = self.optimizer.select(torch.searchsorted(before, agents), list(self.live.parameters()))
        column = (count, 1)
        self._rows = agents.to(dev)
        self._clip = self.per_agent("clip_coef")[agents].to(dev, torch.float32).view(column)
        self._ent = self.per_agent("ent_coef")[agents].to(dev, torch.float32).view(column)
        self._vf = self.per_agent("vf_coef")[agents].to(dev, torch.float32).view(column)
        self._target_kl = self.per_agent("target_kl")[agents]
        discounts = torch.stack([self.per_agent("gamma"), self.per_agent("gae_lambda")], dim=1)[agents]
        pairs = torch.unique(discounts, dim=0).tolist()
        self._discount_groups = [(g, lam, (discounts == torch.tensor([g, lam], dtype=torch.float64)).all(dim=1)
                                  .nonzero().flatten()) for g, lam in pairs]
        self.buffer = RolloutBuffer(
            cfg.num_steps, count * cfg.num_envs, self.env.obs_shape,
            action_shape=() if self.env.discrete else (self.action_dim,),
            action_dtype=torch.int64 if self.env.discrete else torch.float32, device=dev,
        )
        steps, envs = cfg.num_steps, cfg.num_envs
        self._exploration = torch.empty(count, steps, envs, self.action_dim, device=dev)
        self._clip_now = torch.empty_like(self._clip)
        # A CUDA graph holds the shapes it was captured with: a new set of training agents, new graphs.
        self._graphs = {} if self._use_graphs else None
        self._orders = torch.empty(count, cfg.update_epochs, cfg.batch_size, dtype=torch.long, device=dev)
        if not whole and not hasattr(self, "_all_actions"):
            # Agents that stopped still own envs, which keep stepping: on actions the env accepts.
            zero = torch.zeros(self.num_agents, envs, self.action_dim, device=dev)
            self._all_actions = self.net.env_action(zero if not self.env.discrete else zero[..., 0].long())

    def _grad_bound(self, agents: Tensor) -> Tensor | None:
        bound = self.per_agent("max_grad_norm")[agents]
        return None if bool(torch.isinf(bound).all()) else bound

    def retire(self, agents: Tensor) -> None:
        if self.active.numel():
            self._train_agents(self.active)

    # ------------------------------------------------------------------ acting

    def policy_module(self) -> nn.Module:
        return StackedDeterministicPolicy(self.net)

    def agent_policy(self, agent: int) -> nn.Module:
        return DeterministicPolicy(self.net.agent(agent))

    def population_policy(self, agents: Tensor) -> Callable[[Tensor], Tensor]:
        if self.num_agents == 1:  # a lone network: its own forward, no copy
            return self.net.deterministic
        # Whichever agents play, the same computation (an agent's evaluation never depends on who plays
        # beside it); the population's rows are current: the live agents' are written back after each update.
        return self.net.deterministic_subset(agents)

    def explore(self, obs: Tensor) -> Tensor:
        """Actions sampled from the lone agent's policy (Box actions clipped to their bounds)."""
        rows = obs.unsqueeze(0)
        shape = (1, obs.shape[0], self.action_dim)
        if self.net.continuous:
            noise = torch.randn(shape, generator=self.generator, device=self.device)
        else:
            noise = gumbel(torch.rand(shape, generator=self.generator, device=self.device))
        return self.net.env_action(self.net.sample(rows, noise)[0])[0]

    # ------------------------------------------------------------------ collecting

    def _draw_noise(self) -> None:
        """Each training agent's randomness for one rollout and one update, from its own generator: the
        exploration noise of every step in one call, then each epoch's minibatch order (the draws a lone
        agent made step by step before, in the same order, so it makes the same ones)."""
        draw = torch.randn if self.net.continuous else torch.rand
        batch = self.config.batch_size
        for row, k in enumerate(self.live_agents.tolist()):
            generator = self.generators[k]
            draw(self._exploration[row].shape, generator=generator, device=self.device, out=self._exploration[row])
            for epoch in range(self.config.update_epochs):
                torch.randperm(batch, generator=generator, device=self.device, out=self._orders[row, epoch])
        if not self.net.continuous:
            gumbel(self._exploration)

    def collect(self) -> None:
        """One rollout: ``num_steps`` vector steps of every training agent's envs into the buffer."""
        cfg = self.config
        self._static_obs.copy_(self.current_obs())
        self.buffer.reset()
        self._draw_noise()
        if self._graphs is None:
            with torch.no_grad():
                self._rollout(self.advance)
        else:  # the same steps, replayed from a CUDA graph; the host's counts after it
            self._graphed("rollout", self._rollout, self._episodes.record)
            self.buffer.step = self.buffer.num_steps
            self.env_steps += cfg.num_steps * cfg.num_envs
        self._obs = self._static_obs

    @torch.no_grad()
    def _rollout(self, record) -> None:
        """The rollout's tensor work, from and back into ``_static_obs`` (a CUDA graph captures it whole);
        ``record(step)`` counts each vector step."""
        envs, buffer = self.config.num_envs, self.buffer
        whole = self.live_agents.numel() == self.num_agents

        def rows_of(x: Tensor) -> Tensor:
            if whole:
                return x
            return x.view(self.num_agents, envs, *x.shape[1:]).index_select(0, self._rows).flatten(0, 1)

        obs = self._static_obs
        for t in range(buffer.num_steps):
            agent_obs = obs.view(self.num_agents, envs, *obs.shape[1:])
            if not whole:
                agent_obs = agent_obs.index_select(0, self._rows)
            action, logprob = self.live.sample(agent_obs, self._exploration[:, t])
            env_action = self.live.env_action(action)
            if not whole:
                env_action = self._all_actions.index_copy_(0, self._rows, env_action)
            step = self.env.step(env_action.flatten(0, 1))
            buffer.add(agent_obs.flatten(0, 1), action.flatten(0, 1), logprob.flatten(), rows_of(step.reward),
                       rows_of(step.terminated), rows_of(step.truncated), rows_of(step.next_obs),
                       None if step.valid is None else rows_of(step.valid))
            record(step)
            obs = step.obs
        self._static_obs.copy_(obs)

    # ------------------------------------------------------------------ learning

    def update(self) -> None:
        """One PPO update of every training agent on its rollout in the buffer."""
        cfg = self.config
        frac = 1.0 - self.iterations / self.num_iterations
        self.optimizer.lr_scale.fill_(frac if cfg.anneal_lr else 1.0)
        self._clip_now.copy_(self._clip * (frac if cfg.anneal_clip else 1.0))
        kl_bound = cfg.target_kl is not None or bool(torch.isfinite(self._target_kl).any())
        if self._graphs is None or kl_bound:  # the KL bound reads the device once per epoch: no graph
            steps = self._update_steps(kl_bound)
        else:
            steps = self._graphed("update", self._update_steps, False)
        self.loss_count += steps
        self.updates += steps
        self.iterations += 1

    def _update_steps(self, kl_bound: bool) -> int:
        """The update's tensor work (a CUDA graph captures it whole without a KL bound); returns the number
        of minibatch steps taken."""
        cfg = self.config
        self.compute_advantages()
        batch = self._agent_major()
        weight = batch.valid.float() if self.masked else None
        rows = cfg.minibatch_size
        taken = 0
        # Per agent: still updating this iteration (its approximate KL stays within target_kl); None: all.
        updating: Tensor | None = None
        for epoch in range(cfg.update_epochs):
            order = self._orders[:, epoch]
            shuffled = [_take(field, order) for field in (batch.obs, batch.action, batch.logprob, batch.value,
                                                          batch.advantage, batch.returns)]
            shuffled_weight = None if weight is None else _take(weight, order)
            for start in range(0, cfg.num_minibatches * rows, rows):
                part = [field[:, start:start + rows] for field in shuffled]
                part_weight = None if shuffled_weight is None else shuffled_weight[:, start:start + rows]
                stats = self._minibatch_step(*part, part_weight, self._clip_now, updating)
                if updating is not None:
                    stats = stats * updating.unsqueeze(1)
                self.loss_stats.index_add_(0, self._rows, stats)
                taken += 1
            if kl_bound:
                # The one host read per epoch: which agents went past their KL bound.
                within = (stats[:, 3].cpu().double() <= self._target_kl).to(self.device)
                updating = within if updating is None else updating & within
                if not bool(updating.any()):
                    break

        # After the update: the policy that collected this rollout also learned from it with these statistics.
        self.live.obs_norm.update(batch.obs)
        if self.live is not self.net:
            self.net.load_rows(self.live_agents, self.live)
        return taken

    def _graphed(self, name: str, work: Callable, *args):
        """``work(*args)`` as a CUDA graph per training-agent count: the first call runs it eagerly on a side
        stream (the warm-up capture needs), the second captures and replays it, later calls replay it (the
        inputs it reads are the buffers it was captured with, refilled in place)."""
        key = (name, self.live_agents.numel())
        state = self._graphs.get(key)
        if state is None:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                result = work(*args)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            self._graphs[key] = "warm"
            return result
        if state == "warm":
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                result = work(*args)
            graph.replay()
            self._graphs[key] = (graph, result)
            return result
        graph, result = state
        graph.replay()
        return result

    @torch.no_grad()
    def compute_advantages(self) -> None:
        """Values, GAE advantages and returns of every training agent's rollout in the buffer: one GAE call over
        the whole population's ``[T, agents * num_envs]`` block per distinct (gamma, lambda)."""
        buf, cfg = self.buffer, self.config
        count, steps, envs = self.live_agents.numel(), cfg.num_steps, cfg.num_envs
        # Values of every observation and every successor (the final observation where an episode
        # ended) in one call; GAE bootstraps truncated steps from the latter and terminated ones not at all.
        both = torch.cat([_agent_major(buf.obs, count), _agent_major(buf.next_obs, count)], dim=1)
        values = self.live.value(both).view(count, 2, steps, envs).permute(1, 2, 0, 3).reshape(2, steps, count * envs)
        (gamma, lmbda, _), *others = self._discount_groups
        buf.compute_advantages(values[0], values[1], gamma, lmbda)
        for gamma, lmbda, agents in others:  # a sweep over gamma or lambda: those agents' columns again
            columns = (agents.to(self.device).unsqueeze(1) * envs + torch.arange(envs, device=self.device)).flatten()
            advantage, returns = gae(*(x.index_select(1, columns) for x in (buf.reward, buf.value, buf.next_value,
                                                                           buf.terminated, buf.done)), gamma, lmbda)
            buf.advantage.index_copy_(1, columns, advantage)
            buf.returns.index_copy_(1, columns, returns)

    def _agent_major(self) -> RolloutBatch:
        """The buffer's rows as ``[agents, num_steps * num_envs, ...]``: each agent's own transitions."""
        count, buf = self.live_agents.numel(), self.buffer
        return RolloutBatch(*(_agent_major(x, count) for x in (buf.obs, buf.action, buf.logprob, buf.value,
                                                               buf.advantage, buf.returns, buf.valid)))

    def _minibatch_update(self, obs: Tensor, action: Tensor, logprob: Tensor, value: Tensor, advantage: Tensor,
                          returns: Tensor, weight: Tensor | None, clip_coef: Tensor, updating: Tensor | None) -> Tensor:
        cfg = self.config
        new_logprob, entropy, new_value = self.live.evaluate_actions(obs, action)
        loss, stats = ppo_loss(
            new_logprob, entropy, new_value, logprob, value, advantage, returns, clip_coef, clip_vloss=cfg.clip_vloss,
            ent_coef=self._ent, vf_coef=self._vf, norm_adv=cfg.norm_adv, weight=weight,
        )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step(updating)
        return stats

    # ------------------------------------------------------------------ logging and checkpoints

    def log_metrics(self) -> dict[str, Any]:
        row = super().log_metrics()
        frac = 1.0 - self.iterations / self.num_iterations
        rates = (self.per_agent("learning_rate") * (frac if self.config.anneal_lr else 1.0)).tolist()
        names = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
        means = (self.loss_stats / max(self.loss_count, 1)).tolist()
        columns = {name: [agent[i] if self.loss_count else float("nan") for agent in means]
                   for i, name in enumerate(names)}
        self.loss_stats.zero_()
        self.loss_count = 0
        if self.num_agents == 1:
            return {**row, "learning_rate": rates[0], **{name: values[0] for name, values in columns.items()}}
        return {**row, "learning_rate": rates, **columns}

    def upgraded_section(self, section: dict[str, Any]) -> dict[str, Any]:
        """Formats 1 to 3 held one agent's plain actor-critic, torch Adam (its learning rate annealed in place)
        and that rate: the lone row of today's, the annealing as the optimiser's ``lr_scale``."""
        if not is_lone_adam_state(section.get("optimizer")):
            return section
        if self.num_agents != 1:
            raise ValueError(f"the checkpoint holds one agent (written before population training); this PPO "
                             f"trains {self.num_agents}")
        net, parameters = stacked_module_state(section.get("net"), self.net, "net")
        optimizer = stacked_adam_state(section["optimizer"], parameters, self.live, self.optimizer.state_dict(),
                                       "optimizer")
        upgraded = {k: v for k, v in section.items() if k not in ("optimizer", "learning_rate")}
        stats = section.get("loss_stats")
        if isinstance(stats, Tensor) and stats.dim() == 1:
            upgraded["loss_stats"] = stats.unsqueeze(0)
        return {**upgraded, "net": net, EXTRA_KEY: {"optimizer": optimizer}}

    def extra_state(self) -> dict[str, Any]:
        """The training agents' Adam states (their rows of the population, in order)."""
        return {"optimizer": self.optimizer.state_dict()}

    def load_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict) or set(state) != {"optimizer"}:
            raise ValueError("the PPO section's `extra` must hold the training agents' `optimizer` state")
        # The frame restored which agents still train (and the networks) first.
        self.live = None
        self._train_agents(self.active)
        self.optimizer.load_state_dict(state["optimizer"])


def gumbel(uniform: Tensor) -> Tensor:
    """Gumbel noise ``-log(-log(u))`` from uniforms in [0, 1), in place (argmax(log p + Gumbel) draws from p)."""
    return uniform.clamp_(min=1e-20).log_().neg_().log_().neg_()


def _take(field: Tensor, order: Tensor) -> Tensor:
    """``field [agents, rows, ...]`` with each agent's rows in its ``order [agents, rows]``."""
    index = order.view(*order.shape, *([1] * (field.dim() - 2))).expand(*order.shape, *field.shape[2:])
    return torch.gather(field, 1, index)


def _agent_major(x: Tensor, agents: int) -> Tensor:
    """A time-major buffer field ``[T, agents * envs, ...]`` as ``[agents, T * envs, ...]``."""
    steps, columns = x.shape[:2]
    return x.view(steps, agents, columns // agents, *x.shape[2:]).transpose(0, 1).reshape(agents, -1, *x.shape[2:])
