"""Classification data made by running a policy in a vector env, in batches.

- :func:`collect_expert_pairs`: ``(observation, expert action)`` pairs, the
  training set of behaviour cloning. With ``epsilon > 0`` the env executes a
  random action that often, but the label stays the expert's choice, so the
  data also covers the states a slightly wrong learner drifts into.
- :func:`collect_failure_pairs`: ``(observation, falls within k steps)``, the
  training set of a binary failure predictor.

Both run rltorch's :class:`~rltorch.envs.CartPoleVecEnv` by default (one kernel
call per step for every env, the policy on the same device, nothing copied to
the host until the end) and take any gymnasium vector env instead (``env=``),
which is how the benchmarks compare the two.
"""

from __future__ import annotations

import math
from typing import Callable

import gymnasium as gym
import torch
from torch import Tensor

from rltorch import _checks
from rltorch._checks import resolve_device
from rltorch.envs.experts import LinearExpert  # re-exported: its home before rltorch.envs.experts
from rltorch.envs.vector import VectorEnvAdapter

__all__ = ["LinearExpert", "collect_expert_pairs", "collect_failure_pairs", "ENV_DATASETS"]

Policy = Callable[[Tensor], Tensor]


def _check_common(owner: str, num_samples: int, num_envs: int, epsilon: float) -> None:
    _checks.integer(owner, "num_samples", num_samples, 1, 2**40)
    _checks.integer(owner, "num_envs", num_envs, 1, 2**31 - 1)
    _checks.real(owner, "epsilon", epsilon, 0.0, 1.0)


def _open(env: gym.vector.VectorEnv | None, num_envs: int, device: torch.device, seed: int
          ) -> tuple[VectorEnvAdapter, bool]:
    owned = env is None
    if env is None:
        from rltorch.envs import CartPoleVecEnv

        env = CartPoleVecEnv(num_envs, device=device, seed=seed, autoreset_mode="same_step")
    adapter = VectorEnvAdapter(env, device)
    if not adapter.discrete:
        raise ValueError(f"`env` must have a Discrete action space, got {env.single_action_space}")
    return adapter, owned


def _rollout(policy: Policy, labeller: Policy | None, num_rows: int | None, num_samples: int,
             env: gym.vector.VectorEnv | None, num_envs: int, device: torch.device, seed: int, epsilon: float,
             ) -> dict[str, Tensor]:
    """Steps until ``num_samples`` valid rows (or ``num_rows`` vector steps); returns time-major tensors."""
    adapter, owned = _open(env, num_envs, device, seed)
    n = adapter.num_envs
    g = torch.Generator(device=device).manual_seed(seed)
    capacity = num_rows if num_rows is not None else math.ceil(num_samples / n)
    obs_rows, label_rows, valid_rows, term_rows, trunc_rows = [], [], [], [], []
    collected = 0
    try:
        obs = adapter.reset(seed=seed)
        with torch.inference_mode():
            while True:
                chosen = policy(obs).long().reshape(n)
                label = chosen if labeller is None else labeller(obs).long().reshape(n)
                executed = chosen
                if epsilon > 0:
                    explore = torch.rand(n, generator=g, device=device) < epsilon
                    random = torch.randint(0, adapter.num_actions, (n,), generator=g, device=device)
                    executed = torch.where(explore, random, chosen)
                step = adapter.step(executed)
                obs_rows.append(obs)
                label_rows.append(label)
                valid_rows.append(step.valid)
                term_rows.append(step.terminated)
                trunc_rows.append(step.truncated)
                obs = step.obs
                if step.valid is None:
                    collected += n
                else:
                    collected += int(step.valid.sum())
                if (num_rows is not None and len(obs_rows) >= num_rows) or (
                        num_rows is None and collected >= num_samples):
                    break
                if num_rows is None and len(obs_rows) > 4 * capacity + 1000:
                    raise RuntimeError("the env yields almost no valid steps; is its autoreset mode supported?")
    finally:
        if owned:
            adapter.close()
    full = torch.ones(n, dtype=torch.bool, device=device)
    return {
        "obs": torch.stack(obs_rows), "label": torch.stack(label_rows),
        "valid": torch.stack([full if v is None else v for v in valid_rows]),
        "terminated": torch.stack(term_rows), "truncated": torch.stack(trunc_rows),
    }


def collect_expert_pairs(expert: Policy, num_samples: int, *, env: gym.vector.VectorEnv | None = None,
                         num_envs: int = 256, epsilon: float = 0.0, seed: int = 0,
                         device: str | torch.device = "cpu", behavior: Policy | None = None
                         ) -> tuple[Tensor, Tensor]:
    """``(obs float32 [num_samples, *obs_shape], actions int64 [num_samples])``: what ``expert`` does
    in the states visited while running it (with random actions executed with probability ``epsilon``).

    ``expert`` maps a batch of observations to actions (an ``nn.Module`` such as
    :class:`LinearExpert` or an agent's ``policy_module()``). ``env``: any gymnasium
    vector env with a Discrete action space; default ``CartPoleVecEnv(num_envs)``.
    Rows where NEXT_STEP autoreset ignores the action are left out. ``behavior``: a
    different policy to act while ``expert`` only labels (DAgger's relabelling of the
    states a learner visits).
    """
    _check_common("collect_expert_pairs", num_samples, num_envs, epsilon)
    device = resolve_device(device)
    actor, labeller = (expert, None) if behavior is None else (behavior, expert)
    rows = _rollout(actor, labeller, None, num_samples, env, num_envs, device, seed, epsilon)
    valid = rows["valid"].reshape(-1)
    obs = rows["obs"].reshape(-1, *rows["obs"].shape[2:])[valid][:num_samples]
    actions = rows["label"].reshape(-1)[valid][:num_samples]
    return obs.clone(), actions.clone()


def collect_failure_pairs(policy: Policy, num_samples: int, *, horizon: int = 10,
                          env: gym.vector.VectorEnv | None = None, num_envs: int = 256, epsilon: float = 0.75,
                          seed: int = 0, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """``(obs float32 [num_samples, *obs_shape], falls int64 [num_samples])``: ``falls`` is 1 when the
    episode terminates (not truncates) within the next ``horizon`` steps from that observation.

    The data comes from ``policy`` with random actions executed with probability
    ``epsilon`` (the default 0.75 on :class:`LinearExpert` gives episodes of many
    lengths; about a fifth of the rows fall within 10 steps). Rows near the end of the collection whose
    future is not seen far enough are dropped, so the run goes ``horizon`` steps past
    ``num_samples``.
    """
    _check_common("collect_failure_pairs", num_samples, num_envs, epsilon)
    _checks.integer("collect_failure_pairs", "horizon", horizon, 1, 2**31 - 1)
    device = resolve_device(device)
    n = env.num_envs if env is not None else num_envs
    # Valid rows per vector step are unknown for NEXT_STEP envs: collect with some slack, then trim.
    steps = math.ceil(num_samples / n * (1.0 if env is None else 1.25)) + horizon
    while True:
        rows = _rollout(policy, None, steps, num_samples, env, num_envs, device, seed, epsilon)
        obs, label = _failure_labels(rows, horizon)
        if len(obs) >= num_samples:
            return obs[:num_samples].clone(), label[:num_samples].clone()
        steps = steps * 2


def _failure_labels(rows: dict[str, Tensor], horizon: int) -> tuple[Tensor, Tensor]:
    """Steps to the next termination of the same episode, by a backward scan over time (vectorised over envs)."""
    terminated, truncated, valid = rows["terminated"], rows["truncated"], rows["valid"]
    T = terminated.shape[0]
    inf = torch.iinfo(torch.int64).max // 2
    to_fall = torch.full_like(terminated, inf, dtype=torch.int64)
    # Beyond the last row the future is unseen: count from "not fallen yet" and mask those rows below.
    after = torch.full_like(to_fall[0], inf)
    for t in range(T - 1, -1, -1):
        here = torch.where(terminated[t], 1, torch.where(truncated[t] | ~valid[t], inf, after + 1))
        here = here.clamp_max(inf)
        to_fall[t] = here
        after = here
    seen_far_enough = (torch.arange(T, device=terminated.device) <= T - horizon).unsqueeze(1)
    falls = to_fall <= horizon
    keep = valid & (falls | seen_far_enough)
    obs = rows["obs"][keep]
    return obs, falls[keep].long()


#: Name -> collector, for the CLI's ``--dataset`` (the policy is the CLI's ``--expert``).
ENV_DATASETS = {
    "cartpole-bc": collect_expert_pairs,
    "cartpole-fail": collect_failure_pairs,
}
