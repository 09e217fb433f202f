"""Bellman targets, n-step returns and GAE.

Every function runs the compiled kernel for its inputs' device when there is
one, and the pure-PyTorch reference otherwise; both give the same numbers.
None of them synchronises with the host, so they are safe inside CUDA graphs
and ``torch.compile(fullgraph=True)``. Targets, returns and advantages are
regression labels: their outputs never require grad, on either path, even
when an input does (no gradient flows through them into ``next_q``,
``value`` etc.; differentiate your loss through the network outputs).

Example::

    >>> import torch, rltorch
    >>> reward = torch.tensor([1.0, 1.0]); terminated = torch.tensor([False, True])
    >>> next_q = torch.tensor([[0.5, 2.0], [3.0, 4.0]])
    >>> rltorch.ops.td_target(reward, terminated, next_q, gamma=0.5)
    tensor([2., 1.])
"""

from __future__ import annotations

import torch
from torch import Tensor

from rltorch import _ext, _reference
from rltorch.ops._dispatch import check_same_device, non_tensor_argument, pick, resolve

__all__ = ["td_target", "double_dqn_target", "nstep_returns", "gae", "lambda_returns"]

_TD_TARGET = resolve("td_target", _reference.td_target)
_NSTEP = resolve("nstep_returns", _reference.nstep_returns)
_GAE = resolve("gae", _reference.gae)
_INT64_MAX = 2**63 - 1
KERNELS = {"td_target": _TD_TARGET, "nstep_returns": _NSTEP, "gae": _GAE}


def td_target(
    reward: Tensor,
    terminated: Tensor,
    next_q: Tensor,
    gamma: float | Tensor = 0.99,
    *,
    next_q_online: Tensor | None = None,
    next_action: Tensor | None = None,
) -> Tensor:
    """One-step or n-step TD target ``y = r + gamma * (1 - terminated) * bootstrap``.

    Args:
        reward: ``[*B]`` float rewards (the n-step return for n-step transitions).
        terminated: ``[*B]`` bool (or 0/1) — true episode ends only. Truncated
            transitions must be passed as not terminated: they still bootstrap.
        next_q: ``[*B, A]`` target-network Q values of the next state
            (bootstrap ``max_a``), or ``[*B]`` state values (bootstrap as is).
        gamma: a float in [0, 1], or a tensor (scalar or ``[*B]``, e.g. ``gamma**n``
            per sample) used as the discount.
        next_q_online: ``[*B, A]`` online-network Q values: Double DQN, the
            bootstrap is ``next_q[argmax next_q_online]``.
        next_action: ``[*B]`` integer actions to bootstrap from instead. One
            outside ``[0, A)`` raises ``IndexError`` on CPU; on CUDA (no host
            sync) that row's target is NaN and
            :func:`rltorch.ops.check_device_errors` raises the same error.
    """
    # Float arguments are range-checked by the kernel and the reference, not
    # again here: these wrappers are on every training step's path.
    try:
        if isinstance(gamma, Tensor):
            return pick(_TD_TARGET, reward)(reward, terminated, next_q, next_q_online, next_action, gamma, 1.0)
        return pick(_TD_TARGET, reward)(reward, terminated, next_q, next_q_online, next_action, None, gamma)
    except (AttributeError, RuntimeError, TypeError) as error:
        bad = non_tensor_argument("td_target", dict(reward=reward, terminated=terminated, next_q=next_q),
                                  dict(next_q_online=next_q_online, next_action=next_action))
        if bad is None:
            raise
        raise bad from error


def double_dqn_target(
    reward: Tensor, terminated: Tensor, next_q_target: Tensor, next_q_online: Tensor, gamma: float | Tensor = 0.99
) -> Tensor:
    """Double DQN target: ``r + gamma * (1 - terminated) * Q_target(s', argmax_a Q_online(s', a))``."""
    return td_target(reward, terminated, next_q_target, gamma, next_q_online=next_q_online)


def nstep_returns(
    reward: Tensor, terminated: Tensor, truncated: Tensor, n: int, gamma: float = 0.99
) -> tuple[Tensor, Tensor, Tensor]:
    """n-step returns of every transition in a time-major ``[T, *B]`` block.

    For the transition at (t, b) it sums up to ``n`` discounted rewards,
    stopping after the first step that is terminated or truncated, and at the
    end of the block. Returns ``(returns, discount, bootstrap_index)``:
    the target is ``returns + discount * V(next_obs[bootstrap_index, b])``;
    ``discount`` is ``gamma**k`` for k summed rewards, and 0 when the episode
    terminated inside the window. ``bootstrap_index - t + 1`` is k, which is
    below ``n`` near an episode end or the block's end.
    """
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not n >= 1 or (
            isinstance(n, float) and not n.is_integer()):
        raise ValueError(f"rltorch.nstep_returns: `n` must be an integer >= 1, got {n!r}")
    # Any n beyond the block's length means "to the episode end"; the op takes an int64.
    try:
        return pick(_NSTEP, reward)(reward, terminated, truncated, min(int(n), _INT64_MAX), gamma)
    except (AttributeError, RuntimeError, TypeError) as error:
        bad = non_tensor_argument("nstep_returns", dict(reward=reward, terminated=terminated, truncated=truncated))
        if bad is None:
            raise
        raise bad from error


def gae(
    reward: Tensor,
    value: Tensor,
    next_value: Tensor,
    terminated: Tensor,
    done: Tensor,
    gamma: float = 0.99,
    lmbda: float = 0.95,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation over a time-major ``[T, *B]`` block, exactly.

    ``delta_t = r_t + gamma * (1 - terminated_t) * next_value_t - value_t`` and
    ``A_t = delta_t + gamma * lmbda * (1 - done_t) * A_{t+1}``, where ``done``
    (terminated or truncated) stops the lambda chain and ``terminated`` stops
    the bootstrap: a truncated step still bootstraps from ``next_value``
    (the value of its final observation). Returns ``(advantages, returns)``
    with ``returns = advantages + value`` (the TD(lambda) targets).

    On CUDA, few envs with long rollouts (fewer than 2048 envs, T >= 256) use a
    chunked scan over time, which reassociates the carries between chunks: it
    matches the sequential scan to ``2e-6 * (1 + max|A|)`` in float32
    (``1e-14`` in float64; tests/test_gae_chunked.py).
    """
    try:
        return pick(_GAE, reward)(reward, value, next_value, terminated, done, gamma, lmbda)
    except (AttributeError, RuntimeError, TypeError) as error:
        bad = non_tensor_argument(
            "gae", dict(reward=reward, value=value, next_value=next_value, terminated=terminated, done=done))
        if bad is None:
            raise
        raise bad from error


def lambda_returns(
    reward: Tensor, value: Tensor, next_value: Tensor, terminated: Tensor, done: Tensor,
    gamma: float = 0.99, lmbda: float = 0.95,
) -> Tensor:
    """TD(lambda) returns: the second output of :func:`gae`."""
    return gae(reward, value, next_value, terminated, done, gamma, lmbda)[1]


if _ext.HAS_EXT:

    @torch.library.register_fake("rltorch::td_target")
    def _td_target_fake(reward, terminated, next_q, next_q_online=None, next_action=None, discount=None, gamma=0.99):
        check_same_device("td_target", reward, "reward", terminated=terminated, next_q=next_q,
                          next_q_online=next_q_online, next_action=next_action, gamma=discount)
        torch._check(terminated.shape == reward.shape, lambda: "rltorch.td_target: `terminated` must match `reward`")
        torch._check(
            next_q.dtype == reward.dtype, lambda: "rltorch.td_target: `next_q` must have the dtype of `reward`"
        )
        return torch.empty(reward.shape, dtype=reward.dtype, device=reward.device)

    @torch.library.register_fake("rltorch::nstep_returns")
    def _nstep_fake(reward, terminated, truncated, n, gamma):
        check_same_device("nstep_returns", reward, "reward", terminated=terminated, truncated=truncated)
        torch._check(terminated.shape == reward.shape)
        torch._check(truncated.shape == reward.shape)
        return (
            torch.empty(reward.shape, dtype=reward.dtype, device=reward.device),
            torch.empty(reward.shape, dtype=reward.dtype, device=reward.device),
            torch.empty(reward.shape, dtype=torch.long, device=reward.device),
        )

    @torch.library.register_fake("rltorch::gae")
    def _gae_fake(reward, value, next_value, terminated, done, gamma, lmbda):
        check_same_device("gae", reward, "reward", value=value, next_value=next_value, terminated=terminated,
                          done=done)
        for other in (value, next_value, terminated, done):
            torch._check(other.shape == reward.shape)
        return (
            torch.empty(reward.shape, dtype=reward.dtype, device=reward.device),
            torch.empty(reward.shape, dtype=reward.dtype, device=reward.device),
        )
