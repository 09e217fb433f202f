"""Q-networks for discrete actions, built with :func:`rltorch.nn.mlp`."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from rltorch.nn import mlp


class QNetwork(nn.Module):
    """An MLP from observations to one Q value per action.

    With ``dueling=True`` the last hidden layer feeds a value head and an
    advantage head, combined as ``V + A - mean(A)`` (Wang et al., 2016).
    """

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes: Sequence[int] = (128, 128), dueling: bool = False):
        super().__init__()
        if obs_dim < 1 or num_actions < 1:
            raise ValueError(f"QNetwork needs obs_dim >= 1 and num_actions >= 1, got {obs_dim} and {num_actions}")
        self.body = mlp(obs_dim, hidden_sizes)
        width = int(hidden_sizes[-1]) if len(hidden_sizes) else obs_dim
        self.dueling = dueling
        if dueling:
            self.value = nn.Linear(width, 1)
            self.advantage = nn.Linear(width, num_actions)
        else:
            self.head = nn.Linear(width, num_actions)
        self.obs_dim = obs_dim
        self.num_actions = num_actions

    def forward(self, obs: Tensor) -> Tensor:
        # flatten(1), not reshape(B, -1): an empty batch stays [0, obs_dim]
        features = self.body(obs.flatten(1).float())
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
