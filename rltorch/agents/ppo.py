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
from typing import Annotated, Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from rltorch._checks import Range
from rltorch.agents.actor_critic import ActorCritic, DeterministicPolicy
from rltorch.agents.base import Agent
from rltorch.agents.config import RunConfig
from rltorch.config import HiddenSizes, LearningRate, Positive, PositiveInt, Unit
from rltorch.nn import ACTIVATIONS
from rltorch.replay.rollout import RolloutBuffer

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
    clip_coef: float,
    *,
    clip_vloss: bool = False,
    ent_coef: float = 0.0,
    vf_coef: float = 0.5,
    norm_adv: bool = True,
    weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The PPO objective of one minibatch.

    Returns ``(loss, stats)`` with ``stats = [policy loss, value loss, entropy,
    approx KL, clip fraction]`` (detached). ``weight`` (0/1 per row) drops rows
    that are no transitions (gymnasium NEXT_STEP reset rows) from every mean.
    """
    if weight is None:
        mean = torch.mean
    else:
        count = weight.sum().clamp(min=1.0)

        def mean(x: Tensor) -> Tensor:
            return (x * weight).sum() / count

    if norm_adv:
        centred = advantage - mean(advantage)
        if weight is None:
            std = advantage.std()
        else:  # unbiased, as torch.std: the minibatch is a sample of the rollout
            std = ((centred.square() * weight).sum() / (count - 1).clamp(min=1.0)).sqrt()
        advantage = centred / (std + 1e-8)

    logratio = new_logprob - old_logprob
    ratio = logratio.exp()
    policy_loss = mean(torch.max(-advantage * ratio, -advantage * ratio.clamp(1 - clip_coef, 1 + clip_coef)))

    if clip_vloss:
        clipped_value = old_value + (new_value - old_value).clamp(-clip_coef, clip_coef)
        value_loss = 0.5 * mean(torch.max((new_value - returns).square(), (clipped_value - returns).square()))
    else:
        value_loss = 0.5 * mean((new_value - returns).square())

    entropy_mean = mean(entropy)
    loss = policy_loss - ent_coef * entropy_mean + vf_coef * value_loss

    with torch.no_grad():
        approx_kl = mean((ratio - 1) - logratio)  # http://joschu.net/blog/kl-approx.html
        clip_fraction = mean(((ratio - 1).abs() > clip_coef).float())
        stats = torch.stack([policy_loss, value_loss, entropy_mean, approx_kl, clip_fraction]).detach()
    return loss, stats


@dataclass(kw_only=True)
class PPOConfig(RunConfig):
    """PPO hyperparameters. The defaults solve CartPole-v1 in about half a second on two CPU cores."""

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
    """A PPO agent (see the module docstring); ``train``, ``evaluate``, ``act``, ``save``/``load``, ``export``."""

    name = "ppo"
    config_class = PPOConfig
    checkpoint_attrs = ("net", "optimizer", "iterations", "learning_rate", "loss_stats", "loss_count")
    log_columns = (*Agent.log_columns, "learning_rate", "policy_loss", "value_loss", "entropy", "approx_kl",
                   "clip_fraction")
    progress_columns = ("train_return", "entropy")
    config: PPOConfig

    def build(self) -> None:
        cfg = self.config
        space = self.env.action_space
        action_dim = self.env.num_actions if self.env.discrete else math.prod(self.env.action_shape)
        self.net = ActorCritic(
            self.env.obs_shape, action_dim, continuous=not self.env.discrete, hidden_sizes=cfg.hidden_sizes,
            activation=cfg.activation, normalize_obs=cfg.normalize_obs, init_log_std=cfg.init_log_std,
            action_low=None if self.env.discrete else torch.as_tensor(space.low),
            action_high=None if self.env.discrete else torch.as_tensor(space.high),
            action_shape=None if self.env.discrete else self.env.action_shape,
        ).to(self.device)
        self.deterministic_policy = DeterministicPolicy(self.net)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps,
                                          fused=self.device.type in ("cpu", "cuda"))
        self.buffer = RolloutBuffer(
            cfg.num_steps, self.env.num_envs, self.env.obs_shape, action_shape=() if self.env.discrete else (action_dim,),
            action_dtype=torch.int64 if self.env.discrete else torch.float32, device=self.device,
        )
        # Rows of gymnasium's NEXT_STEP reset calls are no transitions: the loss weighs them 0.
        self.masked = self.env.autoreset_mode != gym.vector.AutoresetMode.SAME_STEP
        self.num_iterations = -(-cfg.total_steps // cfg.batch_size)
        self.iterations = 0
        self.learning_rate = cfg.learning_rate
        self.loss_stats = torch.zeros(5, device=self.device)  # summed over minibatches since the last log row
        self.loss_count = 0
        self._minibatch_step = torch.compile(self._minibatch_update) if cfg.compile else self._minibatch_update

    # ------------------------------------------------------------------ acting

    def policy_module(self) -> nn.Module:
        return self.deterministic_policy

    def explore(self, obs: Tensor) -> Tensor:
        """Actions sampled from the policy (Box actions clipped to their bounds)."""
        return self.net.env_action(self.net.sample(obs, self.generator)[0])

    # ------------------------------------------------------------------ collecting

    def collect(self) -> None:
        """One rollout: ``num_steps`` vector steps into the buffer."""
        obs = self.current_obs()
        buffer = self.buffer
        buffer.reset()
        with torch.no_grad():
            for _ in range(buffer.num_steps):
                action, logprob = self.net.sample(obs, self.generator)
                step = self.env.step(self.net.env_action(action))
                buffer.add(obs, action, logprob, step.reward, step.terminated, step.truncated, step.next_obs,
                           step.valid)
                self.advance(step)
                obs = step.obs

    # ------------------------------------------------------------------ learning

    def update(self) -> None:
        """One PPO update on the rollout in the buffer."""
        cfg, buf = self.config, self.buffer
        frac = 1.0 - self.iterations / self.num_iterations
        self.learning_rate = cfg.learning_rate * (frac if cfg.anneal_lr else 1.0)
        clip_coef = cfg.clip_coef * (frac if cfg.anneal_clip else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate

        self.compute_advantages()
        batch = buf.flatten()
        weight = batch.valid.float() if self.masked else None

        for _ in range(cfg.update_epochs):
            order = torch.randperm(cfg.batch_size, generator=self.generator, device=self.device)
            for start in range(0, cfg.num_minibatches * cfg.minibatch_size, cfg.minibatch_size):
                index = order[start:start + cfg.minibatch_size]
                stats = self._minibatch_step(batch, index, weight, clip_coef)
                self.loss_stats += stats
                self.loss_count += 1
                self.updates += 1
            if cfg.target_kl is not None and stats[3].item() > cfg.target_kl:  # the one host read per epoch
                break

        # After the update: the policy that collected this rollout also learned from it with these statistics.
        self.net.obs_norm.update(buf.obs)
        self.iterations += 1

    @torch.no_grad()
    def compute_advantages(self) -> None:
        """Values, GAE advantages and returns of the rollout in the buffer."""
        buf = self.buffer
        # Values of every observation and every successor (the final observation where an episode
        # ended) in one call; GAE bootstraps truncated steps from the latter and terminated ones not at all.
        values = self.net.value(torch.cat([buf.obs, buf.next_obs]).flatten(0, 1)).view(2, buf.num_steps, buf.num_envs)
        buf.compute_advantages(values[0], values[1], self.config.gamma, self.config.gae_lambda)

    def _minibatch_update(self, batch, index: Tensor, weight: Tensor | None, clip_coef: float) -> Tensor:
        cfg = self.config
        new_logprob, entropy, new_value = self.net.evaluate_actions(batch.obs[index], batch.action[index])
        loss, stats = ppo_loss(
            new_logprob, entropy, new_value, batch.logprob[index], batch.value[index], batch.advantage[index],
            batch.returns[index], clip_coef, clip_vloss=cfg.clip_vloss, ent_coef=cfg.ent_coef,
            vf_coef=cfg.vf_coef, norm_adv=cfg.norm_adv, weight=None if weight is None else weight[index],
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.net.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        return stats

    # ------------------------------------------------------------------ logging and checkpoints

    def log_metrics(self) -> dict[str, float]:
        row = {**super().log_metrics(), "learning_rate": self.learning_rate}
        names = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
        means = (self.loss_stats / max(self.loss_count, 1)).tolist()
        row.update({name: value if self.loss_count else float("nan") for name, value in zip(names, means)})
        self.loss_stats.zero_()
        self.loss_count = 0
        return row
