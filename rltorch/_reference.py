"""Pure-PyTorch reference implementations of every rltorch operator.

They are the oracle of the tests and the runtime fallback when the compiled
extension is absent, so they are written for obviousness, not speed: each is
the textbook definition, in the same order of floating-point operations as the
shared C++ header where that matters.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"rltorch: `{name}` must lie in [0, 1], got {value}")


def _flags(flags: Tensor) -> Tensor:
    return flags if flags.dtype == torch.bool else flags != 0


def td_target(
    reward: Tensor,
    terminated: Tensor,
    next_q: Tensor,
    next_q_online: Tensor | None = None,
    next_action: Tensor | None = None,
    discount: Tensor | None = None,
    gamma: float = 0.99,
) -> Tensor:
    """y = r + discount * (1 - terminated) * bootstrap (see ``rltorch.ops.td_target``)."""
    if discount is None:
        _check_unit("gamma", gamma)
    if next_q.dim() == reward.dim():
        bootstrap = next_q
    elif next_q_online is not None:
        best = next_q_online.argmax(dim=-1, keepdim=True)
        bootstrap = next_q.gather(-1, best).squeeze(-1)
    elif next_action is not None:
        bootstrap = next_q.gather(-1, next_action.long().unsqueeze(-1)).squeeze(-1)
    else:
        bootstrap = next_q.amax(dim=-1)
    if discount is None:
        discount = torch.tensor(gamma, dtype=torch.float64).to(reward.dtype)
    acc = torch.float32 if reward.dtype in (torch.float16, torch.bfloat16) else reward.dtype
    y = reward.to(acc) + discount.to(acc) * bootstrap.to(acc)
    return torch.where(_flags(terminated), reward.to(acc), y).to(reward.dtype)


def nstep_returns(
    reward: Tensor, terminated: Tensor, truncated: Tensor, n: int, gamma: float
) -> tuple[Tensor, Tensor, Tensor]:
    """n-step returns over a time-major [T, *batch] block (see ``rltorch.ops.nstep_returns``)."""
    _check_unit("gamma", gamma)
    T = reward.shape[0]
    terminated, truncated = _flags(terminated), _flags(truncated)
    acc = torch.float32 if reward.dtype in (torch.float16, torch.bfloat16) else reward.dtype
    returns = torch.zeros(reward.shape, dtype=acc, device=reward.device)
    discount = torch.ones(reward.shape, dtype=acc, device=reward.device)
    index = torch.zeros(reward.shape, dtype=torch.long, device=reward.device)
    for t in range(T):
        running = torch.ones(reward.shape[1:], dtype=torch.bool, device=reward.device)
        total = torch.zeros(reward.shape[1:], dtype=acc, device=reward.device)
        disc = torch.ones(reward.shape[1:], dtype=acc, device=reward.device)
        last = torch.full(reward.shape[1:], t, dtype=torch.long, device=reward.device)
        killed = torch.zeros(reward.shape[1:], dtype=torch.bool, device=reward.device)
        for k in range(t, min(t + n, T)):
            total = torch.where(running, total + disc * reward[k].to(acc), total)
            disc = torch.where(running, disc * gamma, disc)
            last = torch.where(running, torch.full_like(last, k), last)
            killed = killed | (running & terminated[k])
            running = running & ~terminated[k] & ~truncated[k]
        returns[t] = total
        discount[t] = torch.where(killed, torch.zeros_like(disc), disc)
        index[t] = last
    return returns.to(reward.dtype), discount.to(reward.dtype), index


def gae(
    reward: Tensor,
    value: Tensor,
    next_value: Tensor,
    terminated: Tensor,
    done: Tensor,
    gamma: float,
    lmbda: float,
) -> tuple[Tensor, Tensor]:
    """Exact GAE by a reverse loop over time (see ``rltorch.ops.gae``)."""
    _check_unit("gamma", gamma)
    _check_unit("lmbda", lmbda)
    terminated, done = _flags(terminated), _flags(done)
    acc = torch.float32 if reward.dtype in (torch.float16, torch.bfloat16) else reward.dtype
    r, v, nv = reward.to(acc), value.to(acc), next_value.to(acc)
    advantage = torch.empty_like(r)
    carry = torch.zeros(reward.shape[1:], dtype=acc, device=reward.device)
    gamma_lambda = gamma * lmbda
    for t in range(reward.shape[0] - 1, -1, -1):
        bootstrap = torch.where(terminated[t], torch.zeros_like(nv[t]), gamma * nv[t])
        delta = r[t] + bootstrap - v[t]
        carry = torch.where(done[t], delta, delta + gamma_lambda * carry)
        advantage[t] = carry
    return advantage.to(reward.dtype), (advantage + v).to(reward.dtype)
