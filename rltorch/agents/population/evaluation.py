"""Greedy evaluation of K agents at once, on one vector env of K x episodes envs.

Agent k plays its ``episodes`` episodes on rows ``k * episodes`` to ``(k + 1) *
episodes - 1`` of the env; its returns depend on its own policy and those rows
only. Every ``check_every`` steps the agents whose outcome is settled (all
episodes over, or, with ``stop_below``, too far behind to reach it) leave the
forward pass: the policy is rebuilt for the agents still playing, so a long
evaluation of a few good agents does not pay for the many that failed early.
Their envs keep stepping with the last actions those agents chose, unless
``narrow`` builds an env of the remaining agents' rows that continues their
episodes (:func:`narrow_env` for rltorch's envs): then the env steps
only the rows still needed. Either way no other agent's rows change.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from rltorch.envs.vector import VectorEnvAdapter

__all__ = ["evaluate_agents", "narrow_env"]

#: A policy for a subset of agents: ``policy_for(agents)`` (None: all of them) returns a function from
#: observations ``[A, episodes, *obs_shape]`` to greedy actions ``[A, episodes, *action_shape]``.
PolicyFor = Callable[[Optional[Tensor]], Callable[[Tensor], Tensor]]


@torch.no_grad()
def evaluate_agents(env, seed: int, num_agents: int, episodes: int, policy_for: PolicyFor,
                    agents: Tensor | None = None, stop_below: float | None = None, best: float | None = None,
                    check_every: int | None = None,
                    narrow: Callable[[VectorEnvAdapter, Tensor], VectorEnvAdapter] | None = None) -> Tensor:
    """Returns ``[len(agents), episodes]`` (float64, on the CPU): the greedy episodes of ``agents`` (sorted
    agent indices; default all ``num_agents``).

    ``env`` is a :class:`~rltorch.envs.vector.VectorEnvAdapter` of ``num_agents * episodes`` envs, reset here
    with ``seed``: agent k plays rows ``k * episodes`` to ``(k + 1) * episodes - 1``, whichever agents are
    evaluated with it. ``policy_for(indices)`` gives the greedy policy of those agents, a function from
    observations ``[A, episodes, *obs_shape]`` to actions ``[A, episodes, ...]``. With ``stop_below`` and
    ``best`` (the most one episode can return), an agent stops once its mean can no longer reach
    ``stop_below``: its unfinished episodes' returns are then partial, so its mean is a lower bound, below
    ``stop_below``. Without them every agent plays every episode to its end. ``narrow(env, rows)``, if
    given, returns an env of those rows of ``env`` continuing their episodes."""
    k, e = num_agents, episodes
    if env.num_envs != k * e:
        raise ValueError(f"evaluate_agents: the env steps {env.num_envs} envs, not num_agents * episodes = {k * e}")
    given = env
    if check_every is None:  # one host read per check: often enough to drop the many agents that fail early
        check_every = 16 if (k if agents is None else agents.numel()) == 1 else 8
    obs = env.reset(seed=seed)
    device = obs.device
    agents = torch.arange(k, device=device) if agents is None else agents.to(device)
    n = agents.numel()
    returns = torch.zeros(n, e, dtype=torch.float64, device=device)
    finished = torch.zeros(n, e, dtype=torch.bool, device=device)
    budget = None if stop_below is None or best is None else e * (best - stop_below)
    playing = torch.arange(n, device=device)  # positions in `agents` of those still playing
    stepping = torch.arange(k, device=device)  # the agents whose rows the env steps

    actions: Tensor | None = None

    def narrow_to(chosen: Tensor) -> None:
        """Steps only the rows of the ``chosen`` agents from now on, when ``narrow`` can make such an env."""
        nonlocal env, obs, actions, stepping
        if narrow is None:
            return
        inside = torch.searchsorted(stepping, chosen)
        env_rows = (inside.unsqueeze(1) * e + torch.arange(e, device=device)).flatten()
        smaller = narrow(env, env_rows)
        if smaller is env:
            return
        if env is not given:  # close only the envs made here
            env.close()
        env, stepping = smaller, chosen
        obs = obs.index_select(0, env_rows)
        actions = None if actions is None else actions.index_select(0, inside)

    if n < k:
        narrow_to(agents)
    if stepping.numel() != n:  # the env steps agents that are not evaluated: they repeat their first actions
        actions = policy_for(stepping)(obs.view(k, e, *obs.shape[1:]))
    policy = policy_for(agents)
    # The playing agents' returns and episode ends, in `playing`'s order: the full tensors until an agent
    # leaves, then compact copies, so a step touches only the rows still playing; a leaving agent's returns
    # are written back as it leaves (it keeps the returns it stopped with).
    playing_returns, playing_finished = returns, finished
    steps = 0
    while True:
        rows = obs.view(stepping.numel(), e, *obs.shape[1:])
        everyone = playing.numel() == stepping.numel()
        inside = None if everyone else torch.searchsorted(stepping, agents[playing])
        if everyone:
            actions = policy(rows)
        else:
            actions[inside] = policy(rows.index_select(0, inside))
        step = env.step(actions.reshape(-1, *actions.shape[2:]))
        reward = step.reward.view(-1, e).double()
        done = (step.terminated | step.truncated).view(-1, e)
        if not everyone:
            reward, done = reward.index_select(0, inside), done.index_select(0, inside)
        playing_returns += torch.where(playing_finished, 0.0, reward)
        playing_finished |= done
        obs = step.obs
        steps += 1
        if steps % check_every:
            continue
        undecided = ~playing_finished.all(dim=1)
        if budget is not None:
            # Finished episodes fell short of the best return by this much in all: past the budget, no
            # ending of the others reaches stop_below.
            undecided &= torch.where(playing_finished, best - playing_returns, 0.0).sum(dim=1) <= budget
        stay = undecided.nonzero().squeeze(1)  # the one host read per check_every steps
        if stay.numel() < playing.numel():
            if playing_returns is not returns:
                returns.index_copy_(0, playing, playing_returns)
            if stay.numel() == 0:
                break
            playing = playing.index_select(0, stay)
            playing_returns = playing_returns.index_select(0, stay)
            playing_finished = playing_finished.index_select(0, stay)
            policy = policy_for(agents[playing])
            narrow_to(agents[playing])
    if env is not given:
        env.close()
    return returns.cpu()


def narrow_env(env: VectorEnvAdapter, rows: Tensor) -> VectorEnvAdapter:
    """An env of ``rows`` of ``env`` continuing their episodes bit for bit, for rltorch's envs (CartPole and
    the classic-control family: :meth:`~rltorch.envs.vector.VectorEnvAdapter.take_rows`; an episode that
    ends afterwards resets to other initial states than the full env's row would: an evaluation, which
    counts each row's first episode only, does not see them). Any other env is returned as it is."""
    part = env.take_rows(rows)
    return env if part is None else part
