"""Actor-critic networks for PPO: a categorical policy for Discrete actions,
a Gaussian one (state-independent log-std) for Box actions, a separate value
network, and an optional running observation normalizer that lives in the
module's buffers (so checkpoints and exports carry it).

Sampling takes an explicit ``torch.Generator`` and the log-probabilities are
written out by hand rather than through ``torch.distributions``: the
distribution objects validate their arguments and cost more Python time per
call than the small networks they wrap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rltorch.nn import mlp

_LOG_2PI = math.log(2 * math.pi)


def gaussian_logprob(z: Tensor, log_std: Tensor) -> Tensor:
    """Log-density of a diagonal Gaussian at the standardised deviations ``z`` (summed over the last dim)."""
    return (-0.5 * z.square() - log_std - 0.5 * _LOG_2PI).sum(-1)


def gaussian_entropy(log_std: Tensor) -> Tensor:
    """Entropy of a diagonal Gaussian with these log standard deviations (summed over the last dim)."""
    return (0.5 + 0.5 * _LOG_2PI + log_std).sum(-1)


def categorical_logprob_entropy(logits: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
    """(log-probability of ``action``, entropy) of categorical policies with these logits (last dim)."""
    log_probs = torch.log_softmax(logits, dim=-1)
    logprob = log_probs.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
    return logprob, -(log_probs.exp() * log_probs).sum(-1)


class RunningObsNorm(nn.Module):
    """Running mean and variance of observations (Chan et al.'s parallel update),
    applied as ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``.

    The statistics are float64 buffers, updated only by :meth:`update` (PPO calls
    it once per rollout, after the update, so the policy that collected a rollout
    is the one that learns from it). Disabled, it is the identity.
    """

    def __init__(self, shape: Sequence[int], enabled: bool, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.enabled = bool(enabled)
        self.clip = float(clip)
        self.eps = float(eps)
        self.register_buffer("mean", torch.zeros(tuple(shape), dtype=torch.float64))
        self.register_buffer("var", torch.ones(tuple(shape), dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: Tensor) -> None:
        """Merges a batch ``[B, *shape]`` into the statistics (no host synchronisation)."""
        if not self.enabled:
            return
        batch = batch.reshape(-1, *self.mean.shape).to(torch.float64)
        batch_mean = batch.mean(dim=0)
        batch_var = batch.var(dim=0, unbiased=False)
        batch_count = batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean += delta * (batch_count / total)
        merged = self.var * self.count + batch_var * batch_count + delta.square() * self.count * batch_count / total
        self.var.copy_(merged / total)
        self.count.copy_(total)

    def forward(self, obs: Tensor) -> Tensor:
        if not self.enabled:
            return obs
        mean = self.mean.to(obs.dtype)
        std = (self.var + self.eps).sqrt().to(obs.dtype)
        return ((obs - mean) / std).clamp(-self.clip, self.clip)


def _orthogonal_init(network: nn.Sequential, head_gain: float) -> nn.Sequential:
    """Orthogonal weights (gain sqrt(2) for hidden layers, ``head_gain`` for the last), zero biases:
    the initialisation PPO implementations agree on (a small policy head starts near uniform)."""
    linears = [m for m in network if isinstance(m, nn.Linear)]
    for layer in linears:
        nn.init.orthogonal_(layer.weight, head_gain if layer is linears[-1] else math.sqrt(2))
        nn.init.zeros_(layer.bias)
    return network


class ActorCritic(nn.Module):
    """Policy and value networks (separate MLPs) over normalized, flattened observations.

    ``action_dim`` is the number of actions (Discrete) or the number of
    action components (Box, ``continuous=True``; ``action_shape`` is the env's
    action shape, default ``(action_dim,)``: actions are sampled and scored
    flat and handed to the env in that shape). Box policies are Gaussian with mean
    ``actor(obs)`` and a learned state-independent ``log_std``; actions are
    sampled unbounded (the log-probabilities refer to these) and clipped to
    ``[action_low, action_high]`` only when sent to the env.
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        action_dim: int,
        continuous: bool,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        normalize_obs: bool = False,
        init_log_std: float = 0.0,
        action_low: Tensor | None = None,
        action_high: Tensor | None = None,
        action_shape: Sequence[int] | None = None,
    ):
        super().__init__()
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.obs_dim = obs_dim = math.prod(self.obs_shape)
        self.continuous = bool(continuous)
        self.action_dim = int(action_dim)
        self.obs_norm = RunningObsNorm(self.obs_shape, normalize_obs)
        self.actor = _orthogonal_init(mlp(obs_dim, hidden_sizes, action_dim, activation=activation), 0.01)
        self.critic = _orthogonal_init(mlp(obs_dim, hidden_sizes, 1, activation=activation), 1.0)
        if self.continuous:
            self.log_std = nn.Parameter(torch.full((action_dim,), float(init_log_std)))
            low = -math.inf if action_low is None else action_low
            high = math.inf if action_high is None else action_high
            self.register_buffer(
                "action_low", torch.as_tensor(low, dtype=torch.float32).reshape(-1).expand(action_dim).clone()
            )
            self.register_buffer(
                "action_high", torch.as_tensor(high, dtype=torch.float32).reshape(-1).expand(action_dim).clone()
            )
            self.action_shape = (self.action_dim,) if action_shape is None else tuple(int(s) for s in action_shape)
            if math.prod(self.action_shape) != self.action_dim:
                raise ValueError(
                    f"ActorCritic: `action_shape` {self.action_shape} does not hold {action_dim} components"
                )

    def features(self, obs: Tensor) -> Tensor:
        # The width is explicit, not -1: an empty batch [0, *obs_shape] must flatten too.
        return self.obs_norm(obs.reshape(obs.shape[0], self.obs_dim).float())

    def value(self, obs: Tensor) -> Tensor:
        """State values ``[B]``."""
        return self.critic(self.features(obs)).squeeze(-1)

    def sample(self, obs: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(actions, their log-probabilities) drawn from the policy at ``obs``."""
        out = self.actor(self.features(obs))
        if self.continuous:
            std = self.log_std.exp()
            noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
            return out + std * noise, gaussian_logprob(noise, self.log_std)
        log_probs = torch.log_softmax(out, dim=-1)
        # Gumbel-max: argmax(log p + Gumbel noise) is a draw from Categorical(p), in three kernels.
        uniform = torch.rand(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        action = (log_probs - uniform.clamp_(min=1e-20).log_().neg_().log_()).argmax(dim=-1)
        return action, log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1)

    def evaluate_actions(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log-probabilities of ``action``, entropies, values) at ``obs``: what the PPO loss needs."""
        features = self.features(obs)
        out = self.actor(features)
        value = self.critic(features).squeeze(-1)
        if self.continuous:
            logprob = gaussian_logprob((action - out) * torch.exp(-self.log_std), self.log_std)
            return logprob, gaussian_entropy(self.log_std).expand(out.shape[0]), value
        return (*categorical_logprob_entropy(out, action), value)

    def deterministic(self, obs: Tensor) -> Tensor:
        """The greedy action: argmax of the logits, or the Gaussian mean clipped to the action bounds."""
        out = self.actor(self.features(obs))
        if self.continuous:
            return self.env_action(out)
        return out.argmax(dim=-1)

    def env_action(self, action: Tensor) -> Tensor:
        """What the env receives for a sampled action (Box actions clipped to their bounds, in the env's shape)."""
        if self.continuous:
            clipped = torch.maximum(torch.minimum(action, self.action_high), self.action_low)
            return clipped.view(action.shape[0], *self.action_shape)
        return action


class DeterministicPolicy(nn.Module):
    """The deployable policy: observations in, greedy actions out (TorchScript / torch.export friendly)."""

    def __init__(self, actor_critic: ActorCritic):
        super().__init__()
        self.actor_critic = actor_critic

    def forward(self, obs: Tensor) -> Tensor:
        return self.actor_critic.deterministic(obs)
