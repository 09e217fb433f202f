"""Q-networks for discrete actions."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class QNetwork(nn.Module):
    """An MLP from observations to one Q value per action.

    With ``dueling=True`` the last hidden layer feeds a value head and an
    advantage head, combined as ``V + A - mean(A)`` (Wang et al., 2016).
    """

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes: Sequence[int] = (128, 128), dueling: bool = False):
        super().__init__()
        if obs_dim < 1 or num_actions < 1:
            raise ValueError(f"QNetwork needs obs_dim >= 1 and num_actions >= 1, got {obs_dim} and {num_actions}")
        layers: list[nn.Module] = []
        width = obs_dim
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.body = nn.Sequential(*layers)
        self.dueling = dueling
        if dueling:
            self.value = nn.Linear(width, 1)
            self.advantage = nn.Linear(width, num_actions)
        else:
            self.head = nn.Linear(width, num_actions)
        self.obs_dim = obs_dim
        self.num_actions = num_actions

    def forward(self, obs: Tensor) -> Tensor:
        features = self.body(obs.reshape(obs.shape[0], -1).float())
        if self.dueling:
            advantage = self.advantage(features)
            return self.value(features) + advantage - advantage.mean(dim=1, keepdim=True)
        return self.head(features)


class GreedyPolicy(nn.Module):
    """The deployable policy: observations in, argmax actions out (TorchScript/torch.export friendly)."""

    def __init__(self, q_network: QNetwork):
        super().__init__()
        self.q_network = q_network

    def forward(self, obs: Tensor) -> Tensor:
        return self.q_network(obs).argmax(dim=1)
