"""Reinforcement-learning agents built on rltorch's ops."""

from rltorch.agents.dqn import DQN, DQNConfig, TrainResult
from rltorch.agents.networks import GreedyPolicy, QNetwork

__all__ = ["DQN", "DQNConfig", "TrainResult", "QNetwork", "GreedyPolicy"]
