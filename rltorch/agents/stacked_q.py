"""DQN's Q-network for K agents at once: :class:`~rltorch.agents.networks.QNetwork`, stacked.

Observations ``[K, B, *obs_shape]`` map to Q values ``[K, B, num_actions]``;
agent k's body and heads are row k of stacked parameters
(:mod:`rltorch.nn.stacked`), initialised as ``nn.Linear`` layers from agent
k's own generator. :meth:`StackedQNetwork.agent` copies agent k into a plain
``QNetwork`` (export, a single agent's evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rltorch.agents.networks import QNetwork
from rltorch.nn.stacked import StackedLinear

__all__ = ["StackedQNetwork", "StackedGreedyPolicy"]


class StackedQNetwork(nn.Module):
    """K Q-networks: ReLU MLP bodies of ``hidden_sizes`` and a linear head, or with ``dueling=True`` a value
    and an advantage head combined as ``V + A - mean(A)``. ``generators``: one CPU ``torch.Generator`` per
    agent for its initial weights (None: torch's global generator)."""

    def __init__(self, num_agents: int, obs_dim: int, num_actions: int, hidden_sizes: Sequence[int] = (128, 128),
                 dueling: bool = False, generators: Sequence[torch.Generator] | None = None):
        super().__init__()
        if obs_dim < 1 or num_actions < 1:
            raise ValueError(f"StackedQNetwork needs obs_dim >= 1 and num_actions >= 1, got {obs_dim} and "
                             f"{num_actions}")
        self.num_agents, self.obs_dim, self.num_actions = int(num_agents), int(obs_dim), int(num_actions)
        self.hidden_sizes, self.dueling = tuple(int(h) for h in hidden_sizes), bool(dueling)
        widths = [self.obs_dim, *self.hidden_sizes]
        # Layer by layer, as a QNetwork's construction draws them: body, then the head(s).
        self.body = nn.ModuleList(StackedLinear(self.num_agents, a, b, generators=generators)
                                  for a, b in zip(widths, widths[1:]))
        width = widths[-1]
        if self.dueling:
            self.value = StackedLinear(self.num_agents, width, 1, generators=generators)
            self.advantage = StackedLinear(self.num_agents, width, self.num_actions, generators=generators)
        else:
            self.head = StackedLinear(self.num_agents, width, self.num_actions, generators=generators)

    def forward(self, obs: Tensor) -> Tensor:
        """Q values ``[K, B, num_actions]`` of observations ``[K, B, *obs_shape]``."""
        features = obs.flatten(2).float()
        for layer in self.body:
            features = torch.relu(layer(features))
        if self.dueling:
            advantage = self.advantage(features)
            return self.value(features) + advantage - advantage.mean(dim=-1, keepdim=True)
        return self.head(features)

    def agent(self, k: int) -> QNetwork:
        """A detached copy of agent ``k`` as a plain ``QNetwork`` on the same device."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.num_agents:
            raise ValueError(f"StackedQNetwork.agent: `k` must be an integer in [0, {self.num_agents}), got {k!r}")
        single = QNetwork(self.obs_dim, self.num_actions, self.hidden_sizes, self.dueling)
        single = single.to(self.body[0].weight.device if len(self.body) else self._heads()[0].weight.device)
        linears = [m for m in single.body if isinstance(m, nn.Linear)]
        heads = [single.value, single.advantage] if self.dueling else [single.head]
        with torch.no_grad():
            for mine, theirs in zip([*self.body, *self._heads()], [*linears, *heads]):
                theirs.weight.copy_(mine.weight[k])
                theirs.bias.copy_(mine.bias[k])
        return single

    def _heads(self) -> list[StackedLinear]:
        return [self.value, self.advantage] if self.dueling else [self.head]

    def select(self, index: Tensor) -> StackedQNetwork:
        """A new StackedQNetwork holding copies of the agents in ``index`` (in that order)."""
        index = torch.as_tensor(index).long()
        out = StackedQNetwork.__new__(StackedQNetwork)
        nn.Module.__init__(out)
        for name in ("obs_dim", "num_actions", "hidden_sizes", "dueling"):
            setattr(out, name, getattr(self, name))
        out.num_agents = int(index.numel())
        layers = [*self.body, *self._heads()]
        device_index = index.to(layers[0].weight.device)
        copies = []
        for layer in layers:
            part = StackedLinear(out.num_agents, layer.in_features, layer.out_features, device="meta")
            part.weight = nn.Parameter(layer.weight.detach().index_select(0, device_index))
            part.bias = nn.Parameter(layer.bias.detach().index_select(0, device_index))
            part.lone = layer.lone
            copies.append(part)
        out.body = nn.ModuleList(copies[:len(self.body)])
        if self.dueling:
            out.value, out.advantage = copies[-2:]
        else:
            out.head = copies[-1]
        return out


class StackedGreedyPolicy(nn.Module):
    """Every agent's greedy policy over flat rows: observations ``[K * M, *obs_shape]`` (rows ``k * M`` to
    ``(k + 1) * M - 1`` are agent k's) to argmax actions ``[K * M]``."""

    def __init__(self, q_network: StackedQNetwork):
        super().__init__()
        self.q_network = q_network

    def forward(self, obs: Tensor) -> Tensor:
        k = self.q_network.num_agents
        return self.q_network(obs.view(k, obs.shape[0] // k, *obs.shape[1:])).argmax(dim=-1).flatten()
