"""Reinforcement-learning agents built on rltorch's ops, on one shared frame (:mod:`rltorch.agents.base`).

``ALGORITHMS`` maps each algorithm's ``name`` to where its class lives (``"module:Class"``), imported on
first use; the command line (``rltorch train NAME``, ``eval``, ``export``) reads it. A new algorithm is one
file plus one line here (or :func:`register` from outside the package). Algorithms of higher layers (Ape-X
in :mod:`rltorch.distributed`) are named here as strings, so nothing below imports them.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator, MutableMapping

from rltorch.agents.base import Agent, TrainResult
from rltorch.agents.bc import BC, BCConfig
from rltorch.agents.config import RunConfig
from rltorch.agents.dqn import DQN, DQNConfig
from rltorch.agents.networks import GreedyPolicy, QNetwork
from rltorch.agents.ppo import PPO, PPOConfig


class AlgorithmRegistry(MutableMapping):
    """Algorithm names to agent classes, each stored as ``"module:Class"`` (or a class) and imported when it
    is first looked up. Iterating gives the names; ``registry[name]`` the class."""

    def __init__(self, targets: dict[str, str | type[Agent]]):
        self._targets: dict[str, str | type[Agent]] = dict(targets)

    def __getitem__(self, name: str) -> type[Agent]:
        target = self._targets[name]
        if isinstance(target, str):
            module, _, attribute = target.partition(":")
            target = getattr(importlib.import_module(module), attribute)
            if not (isinstance(target, type) and issubclass(target, Agent)) or target.name != name:
                raise TypeError(f"algorithm {name!r} names {self._targets[name]!r}, which is not an Agent "
                                f"named {name!r}")
            self._targets[name] = target
        return target

    def __setitem__(self, name: str, target: str | type[Agent]) -> None:
        if not isinstance(target, str) and not (isinstance(target, type) and issubclass(target, Agent)):
            raise TypeError(f"register {name!r} as 'module:Class' or an Agent subclass, got {target!r}")
        self._targets[name] = target

    def __delitem__(self, name: str) -> None:
        del self._targets[name]

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def __repr__(self) -> str:
        return f"AlgorithmRegistry({self._targets!r})"


ALGORITHMS = AlgorithmRegistry({
    "dqn": "rltorch.agents.dqn:DQN",
    "ppo": "rltorch.agents.ppo:PPO",
    "bc": "rltorch.agents.bc:BC",
    "apex": "rltorch.distributed.apex:Apex",
})


def register(name: str, target: str | type[Agent]) -> None:
    """Adds an algorithm to ``ALGORITHMS`` (and so to ``rltorch train``), as ``"module:Class"`` or a class."""
    ALGORITHMS[name] = target


def register_extensions() -> None:
    """Deprecated and no longer needed: ``ALGORITHMS`` imports every algorithm, Ape-X included, on first use."""
    warnings.warn("rltorch.agents.register_extensions() is no longer needed: ALGORITHMS imports algorithms "
                  "on first use", DeprecationWarning, stacklevel=2)


def algorithm_class(name: str) -> type[Agent]:
    """The agent class registered as ``name`` (ValueError listing the known names otherwise)."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[name]


__all__ = ["ALGORITHMS", "Agent", "AlgorithmRegistry", "BC", "BCConfig", "DQN", "DQNConfig", "GreedyPolicy", "PPO",
           "PPOConfig", "QNetwork", "RunConfig", "TrainResult", "algorithm_class", "register", "register_extensions"]
