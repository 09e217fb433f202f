"""Scale-out on Ray: Ape-X-style distributed DQN (:mod:`rltorch.distributed.apex`).

    rltorch train apex --actors 4                       # a local Ray cluster for the run
    rltorch train apex --actors 16 --address auto       # join a running cluster (docs/distributed.md)

Ray is an optional extra (``pip install 'rltorch[distributed]'``) and is imported
only when an :class:`Apex` learner is built: importing this package, or
``rltorch``, never imports it.
"""

from rltorch.distributed.apex import Apex, ApexActor, ApexConfig, actor_epsilon

__all__ = ["Apex", "ApexActor", "ApexConfig", "actor_epsilon"]
