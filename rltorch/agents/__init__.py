"""Reinforcement-learning agents built on rltorch's ops, on one shared frame (:mod:`rltorch.agents.base`).

``ALGORITHMS`` maps each algorithm's ``name`` to its class; the command line
(``rltorch train NAME``, ``eval``, ``export``) reads it, so a new algorithm only
adds its class here.
"""

from rltorch.agents.base import Agent, TrainResult
from rltorch.agents.bc import BC, BCConfig
from rltorch.agents.config import RunConfig
from rltorch.agents.dqn import DQN, DQNConfig
from rltorch.agents.networks import GreedyPolicy, QNetwork
from rltorch.agents.ppo import PPO, PPOConfig

ALGORITHMS: dict[str, type[Agent]] = {
    DQN.name: DQN,
    PPO.name: PPO,
    BC.name: BC,
}


def register_extensions() -> None:
    """Adds the algorithms that live outside this package (Ape-X in rltorch.distributed, which extends DQN
    and so cannot be imported from here at import time). Imports no optional dependency."""
    import rltorch.distributed  # noqa: F401  (registers Apex)


def algorithm_class(name: str) -> type[Agent]:
    """The agent class registered as ``name`` (ValueError listing the known names otherwise)."""
    if name not in ALGORITHMS:
        register_extensions()
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[name]


__all__ = ["ALGORITHMS", "Agent", "BC", "BCConfig", "DQN", "DQNConfig", "GreedyPolicy", "PPO", "PPOConfig", "QNetwork",
           "RunConfig", "TrainResult", "algorithm_class", "register_extensions"]
