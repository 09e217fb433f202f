"""Greedy evaluation of K agents at once, on one vector env of K x episodes envs.

Agent k plays its ``episodes`` episodes on rows ``k * episodes`` to ``(k + 1) *
episodes - 1`` of the env; its returns depend on its own policy and those rows
only. Every ``check_every`` steps the agents whose outcome is settled (all
episodes over, or, with ``stop_below``, too far behind to reach it) leave the
forward pass: the policy is rebuilt for the agents still playing, so a long
evaluation of a few good agents does not pay for the many that failed early.
Their envs keep stepping with the last actions those agents chose, unless
``narrow`` builds an env of the remaining agents' rows that continues their
episodes (:func:`narrow_cartpole` for rltorch's CartPole): then the env steps
only the rows still needed. Either way no other agent's rows change.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from rltorch.envs.cartpole import CartPoleVecEnv
from rltorch.envs.vector import VectorEnvAdapter

__all__ = ["evaluate_agents", "narrow_cartpole"]

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
        if everyone and playing.numel() == n:
            returns += torch.where(finished, 0.0, reward)
            finished |= done
        else:  # an agent that stopped keeps the returns it stopped with
            if not everyone:
                reward, done = reward.index_select(0, inside), done.index_select(0, inside)
            returns[playing] += torch.where(finished[playing], 0.0, reward)
            finished[playing] |= done
        obs = step.obs
        steps += 1
        if steps % check_every:
            continue
        undecided = ~finished[playing].all(dim=1)
        if budget is not None:
            # Finished episodes fell short of the best return by this much in all: past the budget, no
            # ending of the others reaches stop_below.
            undecided &= torch.where(finished[playing], best - returns[playing], 0.0).sum(dim=1) <= budget
        keep = playing[undecided]  # the one host read per check_every steps
        if keep.numel() == 0:
            break
        if keep.numel() < playing.numel():
            playing = keep
            policy = policy_for(agents[playing])
            narrow_to(agents[playing])
    if env is not given:
        env.close()
    return returns.cpu()


def narrow_cartpole(env: VectorEnvAdapter, rows: Tensor) -> VectorEnvAdapter:
    """An env of ``rows`` of rltorch's CartPole ``env``, continuing their episodes bit for bit (an episode
    that ends afterwards resets to other initial states than the full env's row would: an evaluation, which
    counts each row's first episode only, does not see them). Any other env is returned as it is."""
    if not isinstance(env.env, CartPoleVecEnv):
        return env
    full = env.env
    saved = env.state_dict()
    inner = saved["env"]
    rows_on = rows.to(full.device)
    part = CartPoleVecEnv(rows.numel(), device=full.device, max_episode_steps=full.max_episode_steps,
                          autoreset_mode=full.autoreset_mode, sutton_barto_reward=full.sutton_barto_reward)
    narrowed = VectorEnvAdapter(part, env.device)
    narrowed.load_state_dict({"prev_done": saved["prev_done"][rows_on], "env": {
        **inner, "num_envs": rows.numel(), "state": inner["state"][:, rows_on], "steps": inner["steps"][rows_on],
        "prev_done": inner["prev_done"][rows_on], "episode": inner["episode"][rows_on]}})
    return narrowed
