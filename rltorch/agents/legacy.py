"""Checkpoints written before population training (formats 1 to 3) in today's layout.

Until format 4 a DQN or PPO agent was one network with plain ``nn.Linear`` layers and torch's Adam; today every
agent is a row of a stacked network (a leading agent dimension, ``[1, ...]`` for a lone agent) trained by
:class:`~rltorch.nn.stacked_adam.StackedAdam`. A file from before loads into a lone agent exactly: each tensor
gains the leading dimension, DQN's hidden layers are renumbered (they were the even entries of an
``nn.Sequential`` with activations between, now a list of linear layers), and torch Adam's per-parameter moments
and step count move to the stacked optimiser's lists, matched by parameter name, with its learning rate and
epsilon. Anything that does not fit raises a ValueError naming the entry; nothing here writes to an agent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["is_lone_adam_state", "stacked_module_state", "stacked_adam_state", "renumbered_body"]


def is_lone_adam_state(state: Any) -> bool:
    """Whether ``state`` is a ``torch.optim.Adam`` state dict (the optimiser of a format 1 to 3 checkpoint)."""
    return isinstance(state, dict) and "param_groups" in state and "state" in state


def renumbered_body(keys: list[str]) -> Callable[[str], str]:
    """The names of a format 1 to 3 DQN network in today's: ``body.<i>`` was the i-th entry of an
    ``nn.Sequential`` of linear layers and activations; it is now the n-th linear layer of a list."""
    indices = sorted({int(m.group(1)) for key in keys if (m := re.match(r"body\.(\d+)\.", key))})
    position = {old: new for new, old in enumerate(indices)}

    def rename(key: str) -> str:
        match = re.match(r"body\.(\d+)\.(.*)", key)
        return f"body.{position[int(match.group(1))]}.{match.group(2)}" if match else key

    return rename


def stacked_module_state(old: Any, module: nn.Module, what: str,
                         rename: Callable[[str], str] = lambda key: key) -> tuple[dict[str, Tensor], list[str]]:
    """``(state dict for module, the old parameter names in the old module's order)`` from a lone network's
    state dict ``old``: every entry renamed and, where ``module``'s has one, given the leading agent dimension."""
    if not isinstance(old, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in old.items()):
        raise ValueError(f"`{what}` must be a network's state dict (names to tensors)")
    own = module.state_dict()
    renamed = {rename(key): key for key in old}
    if set(renamed) != set(own) or len(renamed) != len(old):
        missing, unknown = sorted(set(own) - set(renamed)), sorted(set(renamed) - set(own))
        raise ValueError(f"`{what}` does not fit the network: missing {missing}, unknown {unknown}")
    state = {}
    for new, key in renamed.items():
        like, value = own[new], old[key]
        # Entries shared by the whole population (an action box's bounds) kept their shape.
        if value.dtype == like.dtype and value.shape == like.shape:
            state[new] = value.clone()
        elif value.dtype == like.dtype and like.shape[:1] == (1,) and value.shape == like.shape[1:]:
            state[new] = value.unsqueeze(0).clone()
        else:
            raise ValueError(f"`{what}.{key}` is {value.dtype} {list(value.shape)}; this agent's is "
                             f"{like.dtype} {list(like.shape[1:])} (one agent of {list(like.shape)})")
    buffers = {name for name, _ in module.named_buffers()}
    parameters = [renamed_from for renamed_from in old if rename(renamed_from) not in buffers]
    return state, parameters


def stacked_adam_state(old: Any, old_parameters: list[str], module: nn.Module, template: dict, what: str,
                       rename: Callable[[str], str] = lambda key: key) -> dict:
    """A StackedAdam state dict (like ``template``, the live optimiser's) from a lone agent's torch Adam state:
    ``old_parameters`` names the old optimiser's parameters in its order, ``module`` holds the new parameters
    in the stacked optimiser's order. The old learning rate (annealed by PPO) becomes the scale of the
    template's, which is the config's."""
    if not is_lone_adam_state(old) or len(old["param_groups"]) != 1:
        raise ValueError(f"`{what}` must be one torch Adam state with one parameter group")
    group = old["param_groups"][0]
    indices = group.get("params")
    if not isinstance(indices, list) or len(indices) != len(old_parameters):
        raise ValueError(f"`{what}` holds {len(indices) if isinstance(indices, list) else '?'} parameters; "
                         f"the network had {len(old_parameters)}")
    order = [name for name, _ in module.named_parameters()]
    if sorted(order) != sorted(rename(name) for name in old_parameters):
        raise ValueError(f"`{what}`'s parameters do not match this network's")
    exp_avg = [torch.zeros_like(t) for t in template["exp_avg"]]
    exp_avg_sq = [torch.zeros_like(t) for t in template["exp_avg_sq"]]
    steps = set()
    for index, name in zip(indices, old_parameters):
        slot = order.index(rename(name))
        moments = old["state"].get(index)
        if moments is None:  # never stepped: zero moments
            steps.add(0.0)
            continue
        for target, key in ((exp_avg, "exp_avg"), (exp_avg_sq, "exp_avg_sq")):
            value = moments.get(key)
            if not isinstance(value, Tensor) or tuple(value.shape) != tuple(target[slot].shape[1:]):
                raise ValueError(f"`{what}.state.{index}.{key}` does not fit parameter {name!r}")
            target[slot] = value.to(target[slot].dtype).unsqueeze(0).clone()
        steps.add(float(moments.get("step", 0)))
    if len(steps) != 1:
        raise ValueError(f"`{what}` holds different step counts per parameter ({sorted(steps)})")
    betas = group.get("betas")
    lr, eps = group.get("lr"), group.get("eps")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and isinstance(lr, (int, float))
            and isinstance(eps, (int, float))):
        raise ValueError(f"`{what}` lacks its learning rate, betas or epsilon")
    base = float(template["lr"].flatten()[0])
    state = dict(template)
    state.update(step=torch.full_like(template["step"], steps.pop()), exp_avg=exp_avg, exp_avg_sq=exp_avg_sq,
                 eps=torch.full_like(template["eps"], float(eps)), betas=[float(b) for b in betas],
                 lr_scale=torch.full_like(template["lr_scale"], float(lr) / base if base > 0 else 1.0))
    return state
