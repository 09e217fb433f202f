"""Greedy evaluation of K agents at once, on one vector env of K x episodes envs.

Agent k plays its ``episodes`` episodes on rows ``k * episodes`` to ``(k + 1) *
episodes - 1`` of the env; its returns depend on its own policy and those rows
only. Every ``check_every`` steps the agents whose outcome is settled (all
episodes over, or, with ``stop_below``, too far behind to reach it) leave the
forward pass: the policy is rebuilt for the agents still playing, so a long
evaluation of a few good agents does not pay for the many that failed early.
Their envs keep stepping (with the last actions those agents chose), which
costs the env kernel a few rows and keeps every other agent's rows unchanged.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

__all__ = ["evaluate_agents"]

#: A policy for a subset of agents: ``policy_for(agents)`` (None: all of them) returns a function from
#: observations ``[A, episodes, *obs_shape]`` to greedy actions ``[A, episodes, *action_shape]``.
PolicyFor = Callable[[Optional[Tensor]], Callable[[Tensor], Tensor]]


@torch.no_grad()
def evaluate_agents(env, seed: int, num_agents: int, episodes: int, policy_for: PolicyFor,
                    stop_below: float | None = None, best: float | None = None, check_every: int = 16) -> Tensor:
    """Returns ``[num_agents, episodes]`` (float64, on the CPU) of each agent's greedy episodes.

    ``env`` is a :class:`~rltorch.envs.vector.VectorEnvAdapter` of ``num_agents * episodes`` envs, reset here
    with ``seed``. With ``stop_below`` and ``best`` (the most one episode can return), an agent stops once
    its mean can no longer reach ``stop_below``: its unfinished episodes' returns are then partial, so its
    mean is a lower bound, below ``stop_below``. Without them every agent plays every episode to its end."""
    k, e = num_agents, episodes
    if env.num_envs != k * e:
        raise ValueError(f"evaluate_agents: the env steps {env.num_envs} envs, not num_agents * episodes = {k * e}")
    obs = env.reset(seed=seed)
    device = obs.device
    returns = torch.zeros(k, e, dtype=torch.float64, device=device)
    finished = torch.zeros(k, e, dtype=torch.bool, device=device)
    budget = None if stop_below is None or best is None else e * (best - stop_below)
    playing: Tensor | None = None  # None: every agent
    policy = policy_for(None)
    actions: Tensor | None = None
    steps = 0
    while True:
        rows = obs.view(k, e, *obs.shape[1:])
        if playing is None:
            actions = policy(rows)
        else:
            actions[playing] = policy(rows.index_select(0, playing))
        step = env.step(actions.reshape(k * e, *actions.shape[2:]))
        returns += torch.where(finished, 0.0, step.reward.view(k, e).double())
        finished |= (step.terminated | step.truncated).view(k, e)
        obs = step.obs
        steps += 1
        if steps % check_every:
            continue
        undecided = ~finished.all(dim=1)
        if budget is not None:
            # Finished episodes fell short of the best return by this much in all: past the budget, no
            # ending of the others reaches stop_below.
            undecided &= torch.where(finished, best - returns, 0.0).sum(dim=1) <= budget
        keep = undecided.nonzero().flatten()  # the one host read per check_every steps
        if keep.numel() == 0:
            break
        if keep.numel() < (k if playing is None else playing.numel()):
            playing = keep
            policy = policy_for(playing)
    return returns.cpu()
