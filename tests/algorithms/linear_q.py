"""Q-learning with a linear Q-function, experience replay and a Polyak-averaged target: a whole off-policy
algorithm in one file. The frame brings the loop, evaluation, checkpoints, export and the CLI; the off-policy
module the replay buffer, the update schedule, exploration, TD targets and the target update."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rltorch.agents.networks import GreedyPolicy
from rltorch.agents.offpolicy import OffPolicyAgent, OffPolicyConfig, epsilon_greedy, q_and_target, update_target
from rltorch.config import LearningRate, Unit


@dataclass(kw_only=True)
class LinearQConfig(OffPolicyConfig):
    """Linear Q-learning with replay."""

    learning_rate: LearningRate = 0.01
    """Adam's learning rate."""
    epsilon: Unit = 0.1
    """Probability of a random action while collecting."""


class LinearQ(OffPolicyAgent):
    name = "linear_q"
    config_class = LinearQConfig
    checkpoint_attrs = ("q", "target", "optimizer", *OffPolicyAgent.checkpoint_attrs)
    config: LinearQConfig

    def build(self) -> None:
        super().build()
        self.q = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(self.env.obs_shape), self.env.num_actions))
        self.target = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(self.env.obs_shape), self.env.num_actions))
        self.target.load_state_dict(self.q.state_dict())
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=self.config.learning_rate)
        self.greedy = GreedyPolicy(self.q)

    def policy_module(self) -> nn.Module:
        return self.greedy

    def explore(self, obs: Tensor) -> Tensor:
        return epsilon_greedy(self.q(obs), self.config.epsilon, self.generator)

    def gradient_step(self, batch) -> Tensor:
        q_taken, target = q_and_target(self.q, self.target, batch, double=False)
        loss = F.smooth_l1_loss(q_taken, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return (q_taken - target).detach()

    def after_update(self) -> None:
        update_target(self.target, self.q, self.config, self.updates)
