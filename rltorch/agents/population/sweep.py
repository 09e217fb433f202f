"""Sweeps: which hyperparameters each agent of a population trains with, and its seed.

``--sweep learning_rate=3e-4,1e-3,3e-3 --sweep ent_coef=0,0.01`` names a grid
(here 3 x 2 = 6 settings, in the order given, the last field varying
fastest); ``num_agents`` seeds train each setting, so the population holds
``settings * num_agents`` agents. Agent ``k = setting * num_agents + j``
trains setting ``k // num_agents`` with seed ``seed + j``: every setting sees
the same seeds, so differences between settings are not differences between
seeds. Sweeping ``seed`` itself names each setting's first seed
(``--sweep seed=0,1,2,7`` trains agents seeded 0, 1, 2 and 7).

Only fields that may differ between the agents of one population can be
swept (the algorithm's ``per_agent_fields``: learning rate, clipping,
coefficients, discounts, ...). Fields that change a tensor's shape
(``shape_fields``: hidden sizes, env count, rollout length, ...) are shared
by every agent, so sweeping one is rejected with a one-line error naming it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from rltorch.config import parse_field

__all__ = ["Member", "parse_sweep", "sweep_items", "members", "grid"]

#: Seeds go to torch generators and gymnasium, which take non-negative 64-bit values.
_MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Member:
    """One agent of a population: its index, seed, sweep setting and the swept values it trains with."""

    index: int
    seed: int
    setting: int
    values: dict[str, Any]


def _shape_fields(config_class) -> tuple[str, ...]:
    return tuple(getattr(config_class, "shape_fields", ()))


def _per_agent_fields(config_class) -> tuple[str, ...]:
    return tuple(getattr(config_class, "per_agent_fields", ()))


def parse_sweep(config_class, items: Sequence[str], base: dict | None = None,
                per_agent: Collection[str] | None = None,
                shape: Collection[str] | None = None) -> dict[str, tuple]:
    """``{field: (value, ...)}`` from ``"field=v1,v2,..."`` items, each value parsed as the field's flag
    would be and checked by validating ``config_class`` with it (on top of ``base``, a dict of the other
    field values). ``per_agent``/``shape`` default to the class's ``per_agent_fields``/``shape_fields``.
    ValueError, one line naming the item, otherwise."""
    per_agent = _per_agent_fields(config_class) if per_agent is None else tuple(per_agent)
    shape = _shape_fields(config_class) if shape is None else tuple(shape)
    known = {f.name for f in dataclasses.fields(config_class)}
    base = dict(base or {})
    sweep: dict[str, tuple] = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"--sweep expects FIELD=VALUE,VALUE,..., got {item!r}")
        name, text = item.split("=", 1)
        name = name.strip().replace("-", "_")
        if name not in known:
            raise ValueError(f"--sweep {name}: {config_class.__name__} has no field {name!r}; sweepable: "
                             f"{', '.join(per_agent) or 'none'}")
        if name in shape:
            raise ValueError(f"--sweep {name}: {name} sets the shape of every agent's tensors, which all agents "
                             f"of a population share ({', '.join(shape)} cannot be swept; train one population "
                             f"per value)")
        if name not in per_agent:
            raise ValueError(f"--sweep {name}: {name} cannot differ between the agents of one population; "
                             f"sweepable: {', '.join(per_agent) or 'none'}")
        if name in sweep:
            raise ValueError(f"--sweep {name}: given twice; list all its values in one --sweep {name}=A,B,...")
        texts = [t.strip() for t in text.split(",")]
        if not text.strip() or any(not t for t in texts):
            raise ValueError(f"--sweep {name}: expected comma-separated values, got {text!r}")
        values = []
        for t in texts:
            value = parse_field(config_class, name, t)
            try:
                checked = config_class.from_dict({**base, name: value})
            except (TypeError, ValueError) as exc:
                raise ValueError(f"--sweep {name}={t}: {exc}") from None
            values.append(getattr(checked, name))
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"--sweep {name}: the values {texts} repeat one")
        sweep[name] = tuple(values)
    return sweep


def sweep_items(sweep: dict[str, tuple]) -> tuple[str, ...]:
    """The ``"field=v1,v2"`` items that :func:`parse_sweep` reads back into ``sweep``."""
    return tuple(f"{name}=" + ",".join("none" if v is None else str(v) for v in values)
                 for name, values in sweep.items())


def grid(sweep: dict[str, tuple]) -> list[dict[str, Any]]:
    """Every setting of the sweep, the last field varying fastest (one empty setting without a sweep)."""
    names = list(sweep)
    return [dict(zip(names, combo)) for combo in itertools.product(*(sweep[n] for n in names))]


def members(seed: int, num_agents: int, sweep: dict[str, tuple] | None = None) -> list[Member]:
    """The population: ``num_agents`` seeds (``seed``, ``seed + 1``, ...) for each sweep setting."""
    if isinstance(num_agents, bool) or not isinstance(num_agents, int) or num_agents < 1:
        raise ValueError(f"members: `num_agents` must be an integer >= 1, got {num_agents!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED - (num_agents - 1):
        raise ValueError(f"members: `seed` must leave room for {num_agents} seeds in [0, 2**63), got {seed!r}")
    settings = grid(sweep or {})
    population = []
    for s, values in enumerate(settings):
        first = values.get("seed", seed)  # a swept seed names each setting's first seed
        if not 0 <= first <= _MAX_SEED - (num_agents - 1):
            raise ValueError(f"members: seed {first} must leave room for {num_agents} seeds in [0, 2**63)")
        population += [Member(index=s * num_agents + j, seed=first + j, setting=s, values=dict(values))
                       for j in range(num_agents)]
    return population
