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
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from rltorch.agents.actor_critic import ActorCritic, DeterministicPolicy
from rltorch.agents.base import Agent, check_module_state
from rltorch.agents.config import RunConfig
from rltorch.nn import ACTIVATIONS
from rltorch.replay.rollout import RolloutBuffer


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

    num_envs: int = 64
    """Environments stepped in parallel (one vector env)."""
    total_steps: int = 200_000
    """Upper bound on env steps (summed over envs); the learning-rate and clip schedules run over it."""
    eval_interval: int = 2_048
    """Env steps between greedy evaluations."""
    log_interval: int = 2_048
    """Env steps between log rows (metrics.csv, progress bar, callback)."""
    eval_stop_early: bool = True
    """Stop a training-time evaluation once its mean can no longer reach solve_threshold (envs with a known
    best episode return: rltorch's CartPole); its logged eval_return is then a lower bound."""

    num_steps: int = 32
    """Steps per env in each rollout (a rollout holds num_envs * num_steps transitions)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Widths of the hidden layers of the policy network and of the value network."""
    activation: str = "tanh"
    """Hidden-layer activation: relu, tanh, gelu, silu, elu or leaky_relu."""
    normalize_obs: bool = False
    """Normalize observations by their running mean and std (kept in checkpoints and exports)."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy (Box actions only)."""

    learning_rate: float = 1e-3
    """Adam's learning rate at the start of training."""
    anneal_lr: bool = True
    """Decay the learning rate linearly towards 0 over total_steps."""
    adam_eps: float = 1e-5
    """Adam's epsilon."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda (1: Monte Carlo returns, 0: one-step TD)."""
    update_epochs: int = 4
    """Passes over each rollout."""
    num_minibatches: int = 2
    """Minibatches per pass (each holds num_envs * num_steps / num_minibatches transitions)."""
    norm_adv: bool = True
    """Normalize the advantages of each minibatch to mean 0 and std 1."""
    clip_coef: float = 0.2
    """Surrogate clipping range epsilon (also the value clipping range with clip_vloss)."""
    anneal_clip: bool = True
    """Decay clip_coef linearly towards 0 over total_steps."""
    clip_vloss: bool = False
    """Clip the value update around the rollout's values, as in the PPO paper's implementation."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float | None = 0.5
    """Clip the gradient's global norm to this; none disables clipping."""
    target_kl: float | None = None
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
        need(values["num_steps"] >= 1, "num_steps", f"must be >= 1, got {values['num_steps']}")
        need(values["num_minibatches"] >= 1, "num_minibatches", f"must be >= 1, got {values['num_minibatches']}")
        batch = values["num_envs"] * values["num_steps"]
        need(batch // max(values["num_minibatches"], 1) >= 2, "num_minibatches",
             f"({values['num_minibatches']}) must leave at least 2 transitions per minibatch of the "
             f"{batch} in a rollout (num_envs * num_steps)")
        need(values["update_epochs"] >= 1, "update_epochs", f"must be >= 1, got {values['update_epochs']}")
        need(values["activation"] in ACTIVATIONS, "activation",
             f"must be one of {', '.join(sorted(ACTIVATIONS))}, got {values['activation']!r}")
        need(len(values["hidden_sizes"]) >= 1 and all(h >= 1 for h in values["hidden_sizes"]), "hidden_sizes",
             f"must be one or more integers >= 1, got {list(values['hidden_sizes'])}")
        for name in ("gamma", "gae_lambda"):
            need(0.0 <= values[name] <= 1.0, name, f"must lie in [0, 1], got {values[name]}")
        for name in ("learning_rate", "adam_eps", "clip_coef"):
            need(values[name] > 0, name, f"must be > 0, got {values[name]}")
        for name in ("ent_coef", "vf_coef"):
            need(values[name] >= 0, name, f"must be >= 0, got {values[name]}")
        for name in ("max_grad_norm", "target_kl"):
            need(values[name] is None or values[name] > 0, name, f"must be > 0 or none, got {values[name]}")


class PPO(Agent):
    """A PPO agent (see the module docstring); ``train``, ``evaluate``, ``act``, ``save``/``load``, ``export``."""

    name = "ppo"
    config_class = PPOConfig
    log_columns = (*Agent.log_columns, "learning_rate", "policy_loss", "value_loss", "entropy", "approx_kl",
                   "clip_fraction")
    progress_columns = ("train_return", "entropy")
    config: PPOConfig

    def __init__(self, config: PPOConfig | None = None, env: gym.vector.VectorEnv | None = None):
        super().__init__(config, env)
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
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.buffer = RolloutBuffer(
            cfg.num_steps, self.env.num_envs, self.env.obs_shape, action_shape=() if self.env.discrete else (action_dim,),
            action_dtype=torch.int64 if self.env.discrete else torch.float32, device=self.device,
        )
        # Rows of gymnasium's NEXT_STEP reset calls are no transitions: the loss weighs them 0.
        self.masked = self.env.autoreset_mode != gym.vector.AutoresetMode.SAME_STEP
        self.num_iterations = -(-cfg.total_steps // cfg.batch_size)
        self.iterations = 0
        self.learning_rate = cfg.learning_rate
        self._loss_stats = torch.zeros(5, device=self.device)  # summed over minibatches since the last log row
        self._loss_count = 0
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
                self.record_episodes(step)
                obs = step.obs
        self._obs = obs
        self.env_steps += buffer.num_steps * buffer.num_envs

    # ------------------------------------------------------------------ learning

    def learn(self) -> None:
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
                self._loss_stats += stats
                self._loss_count += 1
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
        means = (self._loss_stats / max(self._loss_count, 1)).tolist()
        row.update({name: value if self._loss_count else float("nan") for name, value in zip(names, means)})
        self._loss_stats.zero_()
        self._loss_count = 0
        return row

    def algorithm_state(self, include_buffer: bool) -> dict[str, Any]:
        # Training pauses between iterations, when the rollout buffer holds nothing still needed.
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "iterations": self.iterations,
            "learning_rate": self.learning_rate,
            "loss_stats": self._loss_stats,
            "loss_count": self._loss_count,
        }

    def load_algorithm_state(self, state: dict[str, Any], continue_episodes: bool) -> None:
        for key in ("net", "optimizer", "generator", "iterations", "learning_rate", "loss_stats", "loss_count"):
            if key not in state:
                raise ValueError(f"PPO checkpoint lacks {key!r}")
        check_module_state(self.net, state["net"], "net")
        for key in ("iterations", "loss_count"):
            if isinstance(state[key], bool) or not isinstance(state[key], int) or state[key] < 0:
                raise ValueError(f"`{key}` must be an integer >= 0, got {state[key]!r}")
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.iterations = state["iterations"]
        self.learning_rate = float(state["learning_rate"])
        self._loss_stats = state["loss_stats"].to(self.device).clone()
        self._loss_count = state["loss_count"]
