"""PPO's networks for K agents at once: :class:`~rltorch.agents.actor_critic.ActorCritic`, stacked.

Every tensor carries the agents first: observations ``[K, M, *obs_shape]``,
actions ``[K, M]`` (Discrete) or ``[K, M, D]`` (Box), log-probabilities,
entropies and values ``[K, M]``. Agent k's policy and value MLPs, its Gaussian
log-std and its running observation statistics are row k of stacked
parameters (:mod:`rltorch.nn.stacked`), so K agents cost one batched product
per layer and never exchange a bit. One agent is K = 1: the same code.

Sampling takes its noise as an argument (uniforms for the Gumbel-max draw of
a categorical action, standard normals for a Gaussian one): PPO draws a whole
rollout's noise per agent from that agent's generator in one call, so the
rollout itself holds no generator and waits on nothing. :meth:`agent` copies
agent k into a plain ``ActorCritic`` (export, evaluation of one agent).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from rltorch.agents.actor_critic import ActorCritic, categorical_logprob_entropy, gaussian_entropy, gaussian_logprob
from rltorch.nn.stacked import StackedMLP, stacked_orthogonal_

__all__ = ["StackedActorCritic", "StackedObsNorm", "StackedDeterministicPolicy"]


class StackedObsNorm(nn.Module):
    """Each agent's running observation mean and variance (``[K, *shape]`` float64 buffers), updated from
    that agent's rows only; :class:`~rltorch.agents.actor_critic.RunningObsNorm`'s update and clipping per
    agent. Disabled, it is the identity."""

    def __init__(self, num_agents: int, shape: Sequence[int], enabled: bool, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.enabled = bool(enabled)
        self.clip = float(clip)
        self.eps = float(eps)
        shape = tuple(shape)
        self.register_buffer("mean", torch.zeros(num_agents, *shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(num_agents, *shape, dtype=torch.float64))
        self.register_buffer("count", torch.full((num_agents,), 1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: Tensor) -> None:
        """Merges each agent's rows ``batch [K, M, *shape]`` into its statistics (no host synchronisation)."""
        if not self.enabled:
            return
        k = self.mean.shape[0]
        batch = batch.reshape(k, -1, *self.mean.shape[1:]).to(torch.float64)
        batch_mean = batch.mean(dim=1)
        batch_var = batch.var(dim=1, unbiased=False)
        batch_count = batch.shape[1]
        total = self.count + batch_count
        per_agent = (k,) + (1,) * (self.mean.dim() - 1)
        delta = batch_mean - self.mean
        self.mean += delta * (batch_count / total).view(per_agent)
        count = self.count.view(per_agent)
        total_rows = total.view(per_agent)
        merged = self.var * count + batch_var * batch_count + delta.square() * count * batch_count / total_rows
        self.var.copy_(merged / total.view(per_agent))
        self.count.copy_(total)

    def forward(self, obs: Tensor) -> Tensor:
        """``obs [K, M, *shape]`` normalised by each agent's statistics."""
        if not self.enabled:
            return obs
        extra = obs.dim() - self.mean.dim()  # the row dimension(s) between the agent and the observation
        shape = (self.mean.shape[0],) + (1,) * extra + tuple(self.mean.shape[1:])
        mean = self.mean.to(obs.dtype).view(shape)
        std = (self.var + self.eps).sqrt().to(obs.dtype).view(shape)
        return ((obs - mean) / std).clamp(-self.clip, self.clip)


class StackedActorCritic(nn.Module):
    """K agents' policy and value networks (separate MLPs) over normalised, flattened observations.

    Arguments as :class:`~rltorch.agents.actor_critic.ActorCritic`'s, plus ``num_agents`` (K) and
    ``generators``: K ``torch.Generator`` objects on the CPU, agent k's initial weights drawn from
    ``generators[k]`` (orthogonal, gain sqrt(2) for hidden layers, 0.01 for the policy head and 1 for the
    value head, zero biases), the policy network's layers first.
    """

    def __init__(
        self,
        num_agents: int,
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
        generators: Sequence[torch.Generator] | None = None,
    ):
        super().__init__()
        self.num_agents = int(num_agents)
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.obs_dim = obs_dim = math.prod(self.obs_shape)
        self.continuous = bool(continuous)
        self.action_dim = int(action_dim)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.activation = activation
        self.init_log_std = float(init_log_std)
        self.obs_norm = StackedObsNorm(self.num_agents, self.obs_shape, normalize_obs)
        # Each agent's generator is drawn from as ActorCritic draws from torch's: the policy MLP's nn.Linear
        # initialisation (overwritten) and its orthogonal weights, then the value MLP's. A lone agent seeded
        # like ActorCritic starts from ActorCritic's weights.
        self.actor = stacked_orthogonal_(StackedMLP(self.num_agents, obs_dim, self.hidden_sizes, self.action_dim,
                                                    activation=activation, generators=generators), 0.01,
                                         generators=generators)
        self.critic = stacked_orthogonal_(StackedMLP(self.num_agents, obs_dim, self.hidden_sizes, 1,
                                                     activation=activation, generators=generators), 1.0,
                                          generators=generators)
        if self.continuous:
            self.log_std = nn.Parameter(torch.full((self.num_agents, self.action_dim), self.init_log_std))
            low = -math.inf if action_low is None else action_low
            high = math.inf if action_high is None else action_high
            self.register_buffer("action_low", torch.as_tensor(low, dtype=torch.float32).reshape(-1)
                                 .expand(self.action_dim).clone())
            self.register_buffer("action_high", torch.as_tensor(high, dtype=torch.float32).reshape(-1)
                                 .expand(self.action_dim).clone())
            self.action_shape = (self.action_dim,) if action_shape is None else tuple(int(s) for s in action_shape)
            if math.prod(self.action_shape) != self.action_dim:
                raise ValueError(f"StackedActorCritic: `action_shape` {self.action_shape} does not hold "
                                 f"{self.action_dim} components")

    # ------------------------------------------------------------------ the networks

    def features(self, obs: Tensor, obs_norm: StackedObsNorm | None = None) -> Tensor:
        """``obs [K, M, *obs_shape]`` -> normalised ``[K, M, obs_dim]`` float32 (by ``obs_norm``'s statistics:
        default the population's)."""
        obs = obs.float()
        norm = self.obs_norm if obs_norm is None else obs_norm
        if norm.enabled:
            obs = norm(obs)
        return obs.reshape(obs.shape[0], obs.shape[1], self.obs_dim)

    def value(self, obs: Tensor) -> Tensor:
        """State values ``[K, M]``."""
        return self.critic(self.features(obs)).squeeze(-1)

    def sample(self, obs: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """(actions, their log-probabilities) drawn from each agent's policy at ``obs [K, M, ...]`` with
        ``noise [K, M, A]``: Gumbel noise ``-log(-log(u))`` for a categorical policy (argmax(log p + Gumbel)
        is a draw from Categorical(p)), standard normals for a Gaussian one."""
        out = self.actor(self.features(obs))
        if self.continuous:
            log_std = self.log_std.unsqueeze(1)
            return out + log_std.exp() * noise, gaussian_logprob(noise, log_std)
        log_probs = torch.log_softmax(out, dim=-1)
        action = (log_probs + noise).argmax(dim=-1)
        return action, log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1)

    def evaluate_actions(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log-probabilities of ``action``, entropies, values), each ``[K, M]``: what the PPO loss needs."""
        features = self.features(obs)
        out = self.actor(features)
        value = self.critic(features).squeeze(-1)
        if self.continuous:
            log_std = self.log_std.unsqueeze(1)
            logprob = gaussian_logprob((action - out) * torch.exp(-log_std), log_std)
            return logprob, gaussian_entropy(log_std).expand(out.shape[0], out.shape[1]), value
        return (*categorical_logprob_entropy(out, action), value)

    def deterministic(self, obs: Tensor) -> Tensor:
        """Each agent's greedy action: argmax of its logits, or its Gaussian mean clipped to the bounds."""
        out = self.actor(self.features(obs))
        if self.continuous:
            return self.env_action(out)
        return out.argmax(dim=-1)

    def deterministic_subset(self, index: Tensor) -> Callable[[Tensor], Tensor]:
        """The greedy actions of the agents ``index`` alone (``deterministic`` of ``select(index)``, its actor
        run by :meth:`~rltorch.nn.stacked.StackedMLP.inference_forward`: the same up to rounding, and an
        agent's actions never depend on the others in ``index``), from copies of their actors and observation
        statistics taken now, for use without autograd: a population's evaluation asks for one each time
        agents leave it, and plays hundreds of steps on it."""
        index = torch.as_tensor(index).long()
        actor = self.actor.inference_forward(index)
        norm = self._obs_norm_rows(index) if self.obs_norm.enabled else self.obs_norm

        def act(obs: Tensor) -> Tensor:
            out = actor(self.features(obs, norm))
            if self.continuous:
                return self.env_action(out.contiguous())
            # argmax over the head's own layout [A, actions, rows], by max's indices (the first maximum, as
            # argmax's): argmax across a middle dimension, or along the transposed view's strided last one,
            # took 580 us for 64 agents x 100 rows here, max 35 us, argmax after a contiguous copy 60 us.
            return out.transpose(1, 2).max(dim=1).indices

        return act

    def env_action(self, action: Tensor) -> Tensor:
        """What the env receives for sampled actions ``[K, M, ...]`` (Box actions clipped to their bounds,
        in the env's action shape)."""
        if self.continuous:
            clipped = torch.maximum(torch.minimum(action, self.action_high), self.action_low)
            return clipped.view(*action.shape[:2], *self.action_shape)
        return action

    # ------------------------------------------------------------------ single agents and subsets

    def agent(self, k: int) -> ActorCritic:
        """A detached copy of agent ``k`` as a plain single-agent ``ActorCritic`` on the same device."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.num_agents:
            raise ValueError(f"StackedActorCritic.agent: `k` must be an integer in [0, {self.num_agents}), got {k!r}")
        single = ActorCritic(
            self.obs_shape, self.action_dim, self.continuous, hidden_sizes=self.hidden_sizes,
            activation=self.activation, normalize_obs=self.obs_norm.enabled, init_log_std=self.init_log_std,
            action_low=self.action_low.cpu() if self.continuous else None,
            action_high=self.action_high.cpu() if self.continuous else None,
            action_shape=self.action_shape if self.continuous else None,
        ).to(self.actor[0].weight.device)
        with torch.no_grad():
            single.actor.load_state_dict(self.actor.agent(k).state_dict())
            single.critic.load_state_dict(self.critic.agent(k).state_dict())
            single.obs_norm.mean.copy_(self.obs_norm.mean[k])
            single.obs_norm.var.copy_(self.obs_norm.var[k])
            single.obs_norm.count.copy_(self.obs_norm.count[k])
            if self.continuous:
                single.log_std.copy_(self.log_std[k])
        return single

    def select(self, index: Tensor) -> StackedActorCritic:
        """A new StackedActorCritic holding copies of the agents in ``index`` (in that order)."""
        index = torch.as_tensor(index).long()
        out = StackedActorCritic.__new__(StackedActorCritic)
        nn.Module.__init__(out)
        for name in ("obs_shape", "obs_dim", "continuous", "action_dim", "hidden_sizes", "activation", "init_log_std"):
            setattr(out, name, getattr(self, name))
        out.num_agents = int(index.numel())
        out.actor = self.actor.select(index)
        out.critic = self.critic.select(index)
        device_index = index.to(self.obs_norm.mean.device)
        out.obs_norm = self._obs_norm_rows(index)
        if self.continuous:
            out.log_std = nn.Parameter(self.log_std.detach().index_select(0, device_index))
            out.register_buffer("action_low", self.action_low.clone())
            out.register_buffer("action_high", self.action_high.clone())
            out.action_shape = self.action_shape
        return out

    def _obs_norm_rows(self, index: Tensor) -> StackedObsNorm:
        """A copy of the observation statistics of the agents ``index`` (in that order)."""
        device = self.obs_norm.mean.device
        out = StackedObsNorm(int(index.numel()), self.obs_shape, self.obs_norm.enabled, self.obs_norm.clip,
                             self.obs_norm.eps).to(device)
        for name in ("mean", "var", "count"):
            getattr(out, name).copy_(getattr(self.obs_norm, name).index_select(0, index.to(device)))
        return out

    def load_rows(self, index: Tensor, other: StackedActorCritic) -> None:
        """Copies ``other``'s agents (all of them, in order) into this population's rows ``index``."""
        index = torch.as_tensor(index).long().to(self.actor[0].weight.device)
        if other.num_agents != index.numel():
            raise ValueError(f"StackedActorCritic.load_rows: {index.numel()} rows for {other.num_agents} agents")
        with torch.no_grad():
            for mine, theirs in zip(self.parameters(), other.parameters()):
                mine.index_copy_(0, index, theirs.detach())
            for name in ("mean", "var", "count"):
                getattr(self.obs_norm, name).index_copy_(0, index, getattr(other.obs_norm, name))


class StackedDeterministicPolicy(nn.Module):
    """Every agent's greedy policy over flat rows: observations ``[K * M, *obs_shape]``, rows ``k * M`` to
    ``(k + 1) * M - 1`` belonging to agent k (one vector env of K x M envs), to actions ``[K * M, ...]``."""

    def __init__(self, actor_critic: StackedActorCritic):
        super().__init__()
        self.actor_critic = actor_critic

    def forward(self, obs: Tensor) -> Tensor:
        k = self.actor_critic.num_agents
        actions = self.actor_critic.deterministic(obs.view(k, obs.shape[0] // k, *obs.shape[1:]))
        return actions.reshape(obs.shape[0], *actions.shape[2:])
