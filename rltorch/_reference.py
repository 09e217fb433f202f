"""Pure-PyTorch reference implementations of every rltorch operator.

They are the oracle of the tests and the runtime fallback when the compiled
extension is absent, so they are written for obviousness, not speed: each is
the textbook definition, in the same order of floating-point operations as the
shared C++ header where that matters.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rltorch._checks import same_device


def _check_unit(name: str, value: float, op: str = "") -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"rltorch.{op}: `{name}` must lie in [0, 1], got {value}")


# The argument checks below mirror csrc/checks.h and csrc/*_common.cpp one for
# one (same order, same exception type, same wording), so the fallback rejects
# exactly what the kernels reject.


def _same_shape(op: str, anchor: Tensor, anchor_name: str, other: Tensor, other_name: str) -> None:
    if other.shape != anchor.shape:
        raise RuntimeError(
            f"rltorch.{op}: `{other_name}` must have the shape of `{anchor_name}` {list(anchor.shape)}, "
            f"got {list(other.shape)}"
        )


def _same_dtype(op: str, anchor: Tensor, anchor_name: str, other: Tensor, other_name: str) -> None:
    if other.dtype != anchor.dtype:
        raise RuntimeError(
            f"rltorch.{op}: `{other_name}` must have the dtype of `{anchor_name}` ({anchor.dtype}), got {other.dtype}"
        )


def _floating(op: str, tensor: Tensor, name: str) -> None:
    if not tensor.is_floating_point():
        raise RuntimeError(f"rltorch.{op}: `{name}` must be a floating-point tensor, got {tensor.dtype}")


def _check_index_and_values(op: str, index: Tensor, values: Tensor, name: str) -> None:
    # One value per transition index: the batch every leaf update reads.
    if index.dtype != torch.int64:
        raise RuntimeError(f"rltorch.{op}: `index` must be int64, got {index.dtype}")
    _floating(op, values, name)
    if values.numel() != index.numel():
        raise RuntimeError(
            f"rltorch.{op}: `{name}` {list(values.shape)} must have one value per entry of `index` "
            f"{list(index.shape)}"
        )


def _flags(op: str, flags: Tensor, name: str) -> Tensor:
    if flags.is_complex():
        raise RuntimeError(f"rltorch.{op}: `{name}` must be bool (or 0/1 integers or floats), got {flags.dtype}")
    return flags if flags.dtype == torch.bool else flags != 0


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    """The kernels' at::opmath_type: half and bfloat16 accumulate in float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


@torch.no_grad()
def td_target(
    reward: Tensor,
    terminated: Tensor,
    next_q: Tensor,
    next_q_online: Tensor | None = None,
    next_action: Tensor | None = None,
    discount: Tensor | None = None,
    gamma: float = 0.99,
) -> Tensor:
    """y = r + discount * (1 - terminated) * bootstrap (see ``rltorch.ops.td_target``).

    Targets are labels: computed without autograd, like the kernels.
    """
    op = "td_target"
    _floating(op, reward, "reward")
    same_device(op, reward, "reward", terminated=terminated)
    same_device(op, reward, "reward", next_q=next_q)
    _same_shape(op, reward, "reward", terminated, "terminated")
    _same_dtype(op, reward, "reward", next_q, "next_q")
    has_action_dim = next_q.dim() == reward.dim() + 1
    if not (has_action_dim or next_q.dim() == reward.dim()):
        raise RuntimeError(
            f"rltorch.{op}: `next_q` must have shape [*reward.shape, num_actions] (Q values) or reward.shape "
            f"(state values), got {list(next_q.shape)} with reward {list(reward.shape)}"
        )
    if next_q.shape[: reward.dim()] != reward.shape:
        raise RuntimeError(
            f"rltorch.{op}: the leading dims of `next_q` {list(next_q.shape)} must equal the shape of `reward` "
            f"{list(reward.shape)}"
        )
    if has_action_dim and next_q.shape[-1] < 1:
        raise RuntimeError(f"rltorch.{op}: `next_q` needs at least one action, got shape {list(next_q.shape)}")
    if next_q_online is not None and next_action is not None:
        raise RuntimeError(f"rltorch.{op}: pass either `next_q_online` or `next_action` for Double DQN, not both")
    if (next_q_online is not None or next_action is not None) and not has_action_dim:
        raise RuntimeError(
            f"rltorch.{op}: Double DQN needs `next_q` with an action dim [*reward.shape, num_actions], "
            f"got {list(next_q.shape)}"
        )
    if next_q_online is not None:
        same_device(op, reward, "reward", next_q_online=next_q_online)
        _same_shape(op, next_q, "next_q", next_q_online, "next_q_online")
        _same_dtype(op, next_q, "next_q", next_q_online, "next_q_online")
    if next_action is not None:
        same_device(op, reward, "reward", next_action=next_action)
        if next_action.is_floating_point() or next_action.is_complex() or next_action.dtype == torch.bool:
            raise RuntimeError(f"rltorch.{op}: `next_action` must hold integer action indices, got {next_action.dtype}")
        _same_shape(op, reward, "reward", next_action, "next_action")
    if discount is not None:
        same_device(op, reward, "reward", gamma=discount)
        _same_dtype(op, reward, "reward", discount, "gamma")
        if discount.dim() != 0 and discount.shape != reward.shape:
            raise RuntimeError(
                f"rltorch.{op}: a tensor `gamma` must be a scalar tensor or have the shape of `reward` "
                f"{list(reward.shape)}, got {list(discount.shape)}"
            )
    else:
        _check_unit("gamma", gamma, op)
    terminated = _flags(op, terminated, "terminated")

    if not has_action_dim:
        bootstrap = next_q
    elif next_q_online is not None:
        best = next_q_online.argmax(dim=-1, keepdim=True)
        bootstrap = next_q.gather(-1, best).squeeze(-1)
    elif next_action is not None:
        action = next_action.long()
        num_actions = next_q.shape[-1]
        bad = (action < 0) | (action >= num_actions)
        if bool(bad.any()):
            position = int(bad.reshape(-1).nonzero()[0])
            raise IndexError(
                f"rltorch.{op}: `next_action` holds {int(action.reshape(-1)[position])} at position {position}, "
                f"outside [0, {num_actions})"
            )
        bootstrap = next_q.gather(-1, action.unsqueeze(-1)).squeeze(-1)
    else:
        bootstrap = next_q.amax(dim=-1)
    acc = _accumulator(reward.dtype)
    # A float gamma enters at the accumulator's precision, as in the kernels
    # (never rounded to a half-precision reward dtype first).
    discount = torch.tensor(gamma, dtype=acc, device=reward.device) if discount is None else discount.to(acc)
    y = reward.to(acc) + discount * bootstrap.to(acc)
    return torch.where(terminated, reward.to(acc), y).to(reward.dtype)


def _time_major(op: str, reward: Tensor) -> None:
    _floating(op, reward, "reward")
    if reward.dim() < 1:
        raise RuntimeError(f"rltorch.{op}: `reward` must be time-major [T, *batch] with at least one dim, got a scalar")


def _flag_like(op: str, reward: Tensor, flags: Tensor, name: str) -> None:
    same_device(op, reward, "reward", **{name: flags})
    _same_shape(op, reward, "reward", flags, name)


@torch.no_grad()
def nstep_returns(
    reward: Tensor, terminated: Tensor, truncated: Tensor, n: int, gamma: float
) -> tuple[Tensor, Tensor, Tensor]:
    """n-step returns over a time-major [T, *batch] block (see ``rltorch.ops.nstep_returns``)."""
    op = "nstep_returns"
    _time_major(op, reward)
    _flag_like(op, reward, terminated, "terminated")
    _flag_like(op, reward, truncated, "truncated")
    if n < 1:
        raise ValueError(f"rltorch.nstep_returns: `n` must be >= 1, got {n}")
    _check_unit("gamma", gamma, op)
    T = reward.shape[0]
    terminated, truncated = _flags(op, terminated, "terminated"), _flags(op, truncated, "truncated")
    acc = _accumulator(reward.dtype)
    # The kernels hold gamma at the accumulator's precision.
    gamma = torch.tensor(gamma, dtype=acc, device=reward.device)
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


@torch.no_grad()
def gae(
    reward: Tensor,
    value: Tensor,
    next_value: Tensor,
    terminated: Tensor,
    done: Tensor,
    gamma: float,
    lmbda: float,
) -> tuple[Tensor, Tensor]:
    """Exact GAE by a reverse loop over time (see ``rltorch.ops.gae``).

    Advantages are labels: computed without autograd, like the kernels.
    """
    op = "gae"
    _time_major(op, reward)
    _flag_like(op, reward, value, "value")
    _flag_like(op, reward, next_value, "next_value")
    _same_dtype(op, reward, "reward", value, "value")
    _same_dtype(op, reward, "reward", next_value, "next_value")
    _flag_like(op, reward, terminated, "terminated")
    _flag_like(op, reward, done, "done")
    _check_unit("gamma", gamma, op)
    _check_unit("lmbda", lmbda, op)
    terminated, done = _flags(op, terminated, "terminated"), _flags(op, done, "done")
    acc = _accumulator(reward.dtype)
    r, v, nv = reward.to(acc), value.to(acc), next_value.to(acc)
    advantage = torch.empty_like(r)
    carry = torch.zeros(reward.shape[1:], dtype=acc, device=reward.device)
    # The kernels hold gamma and gamma * lmbda (a double product) at the accumulator's precision.
    gamma_lambda = torch.tensor(gamma * lmbda, dtype=acc, device=reward.device)
    gamma = torch.tensor(gamma, dtype=acc, device=reward.device)
    for t in range(reward.shape[0] - 1, -1, -1):
        bootstrap = torch.where(terminated[t], torch.zeros_like(nv[t]), gamma * nv[t])
        delta = r[t] + bootstrap - v[t]
        carry = torch.where(done[t], delta, delta + gamma_lambda * carry)
        advantage[t] = carry
    return advantage.to(reward.dtype), (advantage + v).to(reward.dtype)


# ---- CartPole-v1 (csrc/include/rltorch/cartpole.h; gymnasium's equations) ----

_CP_GRAVITY = 9.8
_CP_MASSPOLE = 0.1
_CP_TOTAL_MASS = 0.1 + 1.0
_CP_LENGTH = 0.5
_CP_POLEMASS_LENGTH = 0.1 * 0.5
_CP_FORCE_MAG = 10.0
_CP_TAU = 0.02
_CP_THETA_THRESHOLD = 12 * 2 * 3.141592653589793 / 360
_CP_X_THRESHOLD = 2.4

_U64 = (1 << 64) - 1
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def _signed64(value: int) -> int:
    value &= _U64
    return value - (1 << 64) if value >= (1 << 63) else value


def _shr(z: Tensor, k: int) -> Tensor:
    # Logical shift of int64 bit patterns (torch's >> is arithmetic).
    return (z >> k) & ((1 << (64 - k)) - 1)


def _mix64(z: Tensor) -> Tensor:
    """SplitMix64's finaliser on int64 tensors holding uint64 bit patterns (products wrap)."""
    z = (z ^ _shr(z, 30)) * _signed64(0xBF58476D1CE4E5B9)
    z = (z ^ _shr(z, 27)) * _signed64(0x94D049BB133111EB)
    return z ^ _shr(z, 31)


def mix64_int(z: int) -> int:
    """The same finaliser on a Python int (the reset generator's first stage)."""
    z &= _U64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
    return z ^ (z >> 31)


def episode_keys(seed: int, episode: Tensor) -> Tensor:
    """int64 [N] (uint64 bit patterns): the generator key of env i's episode ``episode[i]``
    (``rltorch::env::episode_key``)."""
    env = torch.arange(episode.shape[0], dtype=torch.int64, device=episode.device)
    h = _signed64(mix64_int((seed & _U64) + _GOLDEN_GAMMA))
    h = _mix64(env ^ h)
    return _mix64(h ^ (episode.to(torch.int64) * _signed64(_GOLDEN_GAMMA)))


def reset_uniform(keys: Tensor, component: int, low: float, high: float) -> Tensor:
    """float64 [N]: draw ``component`` of each key, uniform on [low, high) as NumPy computes it
    (``rltorch::env::reset_value``: low + (high - low) * u, u with 53 random bits)."""
    bits = _mix64(keys + _signed64((component + 1) * _GOLDEN_GAMMA))
    u = _shr(bits, 11).to(torch.float64) * (1.0 / 9007199254740992.0)
    return low + (high - low) * u


def cartpole_initial_state(seed: int, episode: Tensor, low: float, high: float) -> Tensor:
    """float64 [4, N]: the initial state env i draws for episode ``episode[i]`` (the kernels' generator)."""
    keys = episode_keys(seed, episode)
    return torch.stack([reset_uniform(keys, component, low, high) for component in range(4)])


# The checks of csrc/cartpole_common.cpp and csrc/cpu/cartpole_cpu.cpp, in the
# same order, with the same exception types (TORCH_CHECK is a RuntimeError,
# TORCH_CHECK_VALUE a ValueError): the fallback rejects exactly what the kernels reject.

_ACTION_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32,
                  torch.uint64)
_INT32_MAX = 2**31 - 1


def _check_seed(op: str, seed: int) -> None:
    # The schema's `int seed` is an int64: the dispatcher rejects anything else.
    if isinstance(seed, float) or not -(2**63) <= seed < 2**63:
        raise RuntimeError(f"rltorch.{op}: `seed` must be an int64, got {seed!r}")


def check_env_state(op: str, state: Tensor, gym_name: str, rows: tuple[str, ...],
                    counters: tuple[tuple[Tensor, str, torch.dtype], ...]) -> int:
    """Every env op's state checks (csrc/env_checks.cpp's check_env_state and check_env_tensor): ``state``
    float64 ``[len(rows), N]`` contiguous, and each per-env counter of its dtype, ``[N]``, contiguous, on
    ``state``'s device. Returns N."""
    if state.dtype != torch.float64:
        raise RuntimeError(f"rltorch.{op}: `state` must be float64 (gymnasium steps {gym_name} in float64), "
                           f"got {state.dtype}")
    if state.dim() != 2 or state.shape[0] != len(rows):
        raise RuntimeError(f"rltorch.{op}: `state` must have shape [{len(rows)}, num_envs] ({', '.join(rows)} "
                           f"rows), got {list(state.shape)}")
    if not state.is_contiguous():
        raise RuntimeError(f"rltorch.{op}: `state` must be contiguous")
    n = state.shape[1]
    if n > _INT32_MAX:
        raise RuntimeError(f"rltorch.{op}: at most 2^31 - 1 envs, got {n}")
    for t, name, dtype in counters:
        same_device(op, state, "state", **{name: t})
        if t.dtype != dtype:
            raise RuntimeError(f"rltorch.{op}: `{name}` must be {dtype}, got {t.dtype}")
        if t.shape != (n,):
            raise RuntimeError(f"rltorch.{op}: `{name}` must have shape [{n}] (one entry per env), "
                               f"got {list(t.shape)}")
        if not t.is_contiguous():  # written in place, so a copy would silently drop the update
            raise RuntimeError(f"rltorch.{op}: `{name}` must be contiguous")
    return n


def _check_cartpole_state(op: str, state: Tensor, steps: Tensor, prev_done: Tensor, episode: Tensor) -> int:
    return check_env_state(op, state, "CartPole", ("x", "x_dot", "theta", "theta_dot"),
                           ((steps, "steps", torch.int32), (prev_done, "prev_done", torch.bool),
                            (episode, "episode", torch.int64)))


def _check_reset_bounds(op: str, low: float, high: float) -> None:
    if not math.isfinite(low):
        raise ValueError(f"rltorch.{op}: reset bound `low` must be finite, got {low}")
    if not math.isfinite(high):
        raise ValueError(f"rltorch.{op}: reset bound `high` must be finite, got {high}")
    if not low <= high:
        raise ValueError(f"rltorch.{op}: reset bound `low` ({low}) must not exceed `high` ({high})")
    if not math.isfinite(high - low):
        raise ValueError(f"rltorch.{op}: reset bounds `low` ({low}) and `high` ({high}) are too far apart: "
                         "high - low overflows")


def _check_cartpole_step(
    state: Tensor, steps: Tensor, prev_done: Tensor, episode: Tensor, actions: Tensor, seed: int, low: float,
    high: float, max_episode_steps: int, autoreset_mode: int,
) -> None:
    op = "cartpole_step_"
    n = _check_cartpole_state(op, state, steps, prev_done, episode)
    same_device(op, state, "state", actions=actions)
    if actions.dtype not in _ACTION_DTYPES:
        raise RuntimeError(f"rltorch.{op}: `actions` must be an integer tensor (0 = push left, 1 = push right), "
                           f"got {actions.dtype}")
    if actions.shape != (n,):
        raise RuntimeError(f"rltorch.{op}: `actions` must have shape [{n}] (one per env), got {list(actions.shape)}")
    _check_seed(op, seed)
    check_step_limits(op, max_episode_steps, autoreset_mode)
    _check_reset_bounds(op, low, high)
    # The kernels' read-only pre-pass: nothing moves unless every env can step.
    reject_bad_discrete_actions(op, actions, 2, "0 or 1")
    if autoreset_mode == 2:
        reject_ended_envs(op, prev_done, "CartPoleVecEnv", "cartpole_reset_")


def check_step_limits(op: str, max_episode_steps: int, autoreset_mode: int) -> None:
    """csrc/env_checks.cpp's check_step_limits."""
    if not 1 <= max_episode_steps <= _INT32_MAX:
        raise ValueError(f"rltorch.{op}: `max_episode_steps` must be in [1, 2^31 - 1], got {max_episode_steps}")
    if autoreset_mode not in (0, 1, 2):
        raise ValueError(f"rltorch.{op}: `autoreset_mode` must be 0 (next step), 1 (same step) or 2 (disabled), "
                         f"got {autoreset_mode}")


def reject_bad_discrete_actions(op: str, actions: Tensor, num_actions: int, allowed: str) -> None:
    """The env kernels' pre-pass over discrete actions: the first env whose action is not in
    [0, num_actions) raises, naming its value (``allowed`` words the valid ones)."""
    valid = torch.zeros_like(actions, dtype=torch.bool)
    for value in range(num_actions):  # == only: torch has no < for uint16/32/64
        valid |= actions == value
    bad = (~valid).nonzero()
    if bad.numel():
        env = int(bad[0, 0])
        value = actions[env : env + 1]
        # int() of a uint64 above 2**63 overflows; its int64 bits read back exactly.
        value = int(value.view(torch.int64)) & _U64 if value.dtype == torch.uint64 else int(value)
        raise ValueError(f"rltorch.{op}: `actions` must be {allowed}, got {value} for env {env} "
                         "(no env was stepped)")


def reject_ended_envs(op: str, prev_done: Tensor, env_class: str, reset_op: str) -> None:
    """With autoreset disabled, stepping an env that ended on the previous call raises."""
    ended = prev_done.nonzero()
    if ended.numel():
        raise RuntimeError(
            f"rltorch.{op}: env {int(ended[0, 0])} ended on the previous call and autoreset is disabled; "
            f'reset the ended envs first ({env_class}.reset(options={{"reset_mask": mask}}), or '
            f"{reset_op} with that mask). No env was stepped.")


def cartpole_reset_(
    state: Tensor, steps: Tensor, prev_done: Tensor, episode: Tensor, reset_mask: Tensor | None,
    seed: int, low: float = -0.05, high: float = 0.05,
) -> Tensor:
    """Resets the envs in ``reset_mask`` (all if None); see ``rltorch::cartpole_reset_``."""
    op = "cartpole_reset_"
    n = _check_cartpole_state(op, state, steps, prev_done, episode)
    _check_seed(op, seed)
    _check_reset_bounds(op, low, high)
    if reset_mask is not None:
        same_device(op, state, "state", reset_mask=reset_mask)
        if reset_mask.dtype != torch.bool:
            raise RuntimeError(f"rltorch.{op}: `reset_mask` must be bool, got {reset_mask.dtype}")
        if reset_mask.shape != (n,):
            raise RuntimeError(f"rltorch.{op}: `reset_mask` must have shape [{n}], got {list(reset_mask.shape)}")
    mask = torch.ones_like(prev_done) if reset_mask is None else reset_mask
    fresh = cartpole_initial_state(seed, episode, low, high)
    state.copy_(torch.where(mask, fresh, state))
    episode.add_(mask.to(torch.int64))
    steps.masked_fill_(mask, 0)
    prev_done.masked_fill_(mask, False)
    return state.t().to(torch.float32).contiguous()


def cartpole_step_(
    state: Tensor, steps: Tensor, prev_done: Tensor, episode: Tensor, actions: Tensor, seed: int,
    low: float = -0.05, high: float = 0.05, max_episode_steps: int = 500, autoreset_mode: int = 0,
    sutton_barto_reward: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Steps every env in place, as gymnasium's CartPoleVectorEnv does; see ``rltorch::cartpole_step_``."""
    _check_cartpole_step(state, steps, prev_done, episode, actions, seed, low, high, max_episode_steps,
                         autoreset_mode)
    x, x_dot, theta, theta_dot = state.unbind(0)
    force = torch.where(actions == 1, _CP_FORCE_MAG, -_CP_FORCE_MAG).to(torch.float64)
    costheta, sintheta = torch.cos(theta), torch.sin(theta)
    temp = (force + _CP_POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / _CP_TOTAL_MASS
    thetaacc = (_CP_GRAVITY * sintheta - costheta * temp) / (
        _CP_LENGTH * (4.0 / 3.0 - _CP_MASSPOLE * (costheta * costheta) / _CP_TOTAL_MASS)
    )
    xacc = temp - _CP_POLEMASS_LENGTH * thetaacc * costheta / _CP_TOTAL_MASS
    new = torch.stack((
        x + _CP_TAU * x_dot, x_dot + _CP_TAU * xacc, theta + _CP_TAU * theta_dot, theta_dot + _CP_TAU * thetaacc,
    ))
    terminated = (new[0] < -_CP_X_THRESHOLD) | (new[0] > _CP_X_THRESHOLD) | (
        new[2] < -_CP_THETA_THRESHOLD) | (new[2] > _CP_THETA_THRESHOLD)
    new_steps = steps + 1
    truncated = new_steps >= max_episode_steps
    done = terminated | truncated
    if sutton_barto_reward:
        reward = -(terminated.to(torch.float32))
        ep_return = torch.where(done, -(terminated.to(torch.float32)), 0.0)
    else:
        reward = torch.ones(terminated.shape, dtype=torch.float32, device=state.device)
        ep_return = torch.where(done, new_steps.to(torch.float32), 0.0)
    ep_length = torch.where(done, new_steps, 0).to(torch.int32)
    obs = new.t().to(torch.float32)
    final_obs = torch.empty((0, 4), dtype=torch.float32, device=state.device)
    if autoreset_mode == 0:
        pending = prev_done.clone()
        zero = torch.zeros_like(pending)
        state.copy_(new)
        steps.copy_(new_steps)
        if bool(pending.any()):
            cartpole_reset_(state, steps, prev_done, episode, pending, seed, low, high)
        obs = state.t().to(torch.float32)
        reward = torch.where(pending, 0.0, reward)
        terminated, truncated, done = (torch.where(pending, zero, f) for f in (terminated, truncated, done))
        ep_return = torch.where(pending, 0.0, ep_return)
        ep_length = torch.where(pending, 0, ep_length).to(torch.int32)
        prev_done.copy_(done)
    elif autoreset_mode == 1:
        final_obs = torch.where(done.unsqueeze(1), obs, 0.0)
        state.copy_(new)
        steps.copy_(new_steps)
        prev_done.zero_()
        if bool(done.any()):
            cartpole_reset_(state, steps, prev_done, episode, done, seed, low, high)
        obs = state.t().to(torch.float32)
    else:
        state.copy_(new)
        steps.copy_(new_steps)
        prev_done.copy_(done)
    return (obs.contiguous(), reward.to(torch.float32), terminated, truncated, done, ep_return.to(torch.float32),
            ep_length, final_obs)

# ---- Sum tree (layout documented in csrc/include/rltorch/sumtree.h) ----
#
# One tree is a float64 row of tree_size() elements, [sums: storage][mins of the
# internal levels: leaf offset]; a batch of T trees is [T, tree_size()]. The
# functions below work on the batch ([1, size] for one tree) through flat
# element positions t * size + offset, so T trees cost one set of tensor ops.


def sumtree_layout(capacity: int, fanout: int) -> tuple[list[int], list[int], int]:
    """(offset per level, width per level, storage of the sums), root first."""
    widths = [capacity]
    while widths[-1] > 1:
        widths.append(-(-widths[-1] // fanout))
    widths.reverse()
    offsets, off = [], 0
    for width in widths:
        offsets.append(off)
        off += -(-width // fanout) * fanout
    return offsets, widths, off


def tree_size(capacity: int, fanout: int) -> int:
    """Elements of one tree: the sums of every level, then the mins of the internal levels."""
    offsets, _, storage = sumtree_layout(capacity, fanout)
    return storage + offsets[-1]


_FANOUTS = (2, 4, 8, 16)
_DBL_MAX = torch.finfo(torch.float64).max


def max_raw_priority(capacity: int, alpha: float) -> float:
    """The largest ``priority + eps`` a leaf may receive (csrc/sumtree_common.cpp).

    Its stored value ``(priority + eps) ** alpha`` stays <= DBL_MAX / (2 * capacity),
    so the root (the sum of all leaves) cannot overflow, with a factor 2 to
    spare for rounding. Never above DBL_MAX, so an infinite ``priority + eps``
    is always rejected.
    """
    max_leaf = _DBL_MAX / (2.0 * float(capacity))
    try:
        return min(max_leaf ** (1.0 / alpha), _DBL_MAX)
    except OverflowError:  # every finite value is allowed
        return _DBL_MAX


class _Trees:
    """A checked tree argument (csrc/sumtree_common.cpp::checked_trees)."""

    def __init__(self, op: str, tree: Tensor, capacity: int, fanout: int):
        if capacity < 1:
            raise ValueError(f"rltorch.{op}: `capacity` must be >= 1, got {capacity}")
        if fanout not in _FANOUTS:
            raise ValueError(f"rltorch.sumtree: `fanout` must be 2, 4, 8 or 16, got {fanout}")
        self.offsets, self.widths, self.storage = sumtree_layout(capacity, fanout)
        self.capacity, self.fanout = capacity, fanout
        self.size = self.storage + self.offsets[-1]
        if tree.dtype != torch.float64:
            raise RuntimeError(
                f"rltorch.{op}: `tree` must be float64 (sums of many priorities need the precision), got {tree.dtype}"
            )
        single = tree.dim() == 1 and tree.shape[0] == self.size
        batch = tree.dim() == 2 and tree.shape[1] == self.size
        if not (single or batch):
            raise RuntimeError(
                f"rltorch.{op}: `tree` must have shape [{self.size}] (one tree) or [T, {self.size}] (T trees) for "
                f"capacity {capacity} and fanout {fanout} (build it with rltorch.ops.SumTree), got {list(tree.shape)}"
            )
        if not tree.is_contiguous():
            raise RuntimeError(f"rltorch.{op}: `tree` must be contiguous")
        self.batched = batch
        self.count = tree.shape[0] if batch else 1
        self.flat = tree.view(-1)  # writes through to `tree`
        self.device = tree.device

    @property
    def leaf_offset(self) -> int:
        return self.offsets[-1]

    def base(self, tree_ids: Tensor) -> Tensor:
        """Flat position of each tree's first element."""
        return tree_ids * self.size

    def totals(self) -> Tensor:
        return self.flat[torch.arange(self.count, device=self.device) * self.size]

    def root_mins(self) -> Tensor:
        base = torch.arange(self.count, device=self.device) * self.size
        if len(self.offsets) == 1:  # the root is the only leaf
            root = self.flat[base]
            return torch.where(root > 0, root, torch.full_like(root, math.inf))
        return self.flat[base + self.storage]

    def rows_per_tree(self, op: str, tensor: Tensor, name: str) -> None:
        if self.batched and (tensor.dim() < 1 or tensor.shape[0] != self.count):
            raise RuntimeError(
                f"rltorch.{op}: `{name}` must have a leading dimension of {self.count} (one row per tree of the "
                f"batched `tree`), got {list(tensor.shape)}"
            )

    def tree_of_entries(self, numel: int) -> Tensor:
        """Tree id of each of `numel` flattened per-entry values (row t -> tree t)."""
        per_tree = numel // self.count if self.count else 0
        return torch.arange(self.count, device=self.device).repeat_interleave(per_tree)


def _check_device(op: str, tree: Tensor, other: Tensor, name: str) -> None:
    same_device(op, tree, "tree", **{name: other})


def _shares_memory(a: Tensor, b: Tensor) -> bool:
    """at::Tensor::is_alias_of: the same storage (meta tensors have none to share)."""
    if a.device.type == "meta" or b.device.type == "meta":
        return False
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _check_not_alias(op: str, tree: Tensor, other: Tensor, name: str) -> None:
    if _shares_memory(tree, other):
        raise RuntimeError(
            f"rltorch.{op}: `{name}` must not share memory with `tree`; pass a separate tensor (.clone())"
        )


def _check_alpha_eps(op: str, alpha: float, eps: float) -> None:
    if not (math.isfinite(alpha) and alpha > 0.0):
        raise ValueError(f"rltorch.{op}: `alpha` must be finite and > 0, got {alpha}")
    if not (math.isfinite(eps) and eps >= 0.0):
        raise ValueError(f"rltorch.{op}: `eps` must be finite and >= 0, got {eps}")


def _check_running_max(op: str, trees: _Trees, tree: Tensor, running_max: Tensor) -> None:
    _check_device(op, tree, running_max, "running_max")
    if running_max.dtype != torch.float64 or running_max.numel() != trees.count or not running_max.is_contiguous():
        count = f"{trees.count} element" if trees.count == 1 else f"{trees.count} elements (one per tree)"
        layout = "" if running_max.is_contiguous() else " (not contiguous)"
        raise RuntimeError(
            f"rltorch.{op}: `running_max` must be a contiguous float64 tensor of {count}, "
            f"got {running_max.dtype} {list(running_max.shape)}{layout}"
        )
    _check_not_alias(op, tree, running_max, "running_max")


def _first_bad(bad: Tensor) -> int | None:
    """Position of the first True in a flat bool tensor (one host sync), or None."""
    if not bool(bad.any()):
        return None
    return int(bad.nonzero()[0])


def _min_value(values: Tensor) -> Tensor:
    return torch.where(values > 0, values, torch.full_like(values, math.inf))


def _recompute_nodes(trees: _Trees, level: int, tree_ids: Tensor, nodes: Tensor) -> None:
    K = trees.fanout
    base = trees.base(tree_ids)
    child = (base + trees.offsets[level + 1] + nodes * K).unsqueeze(-1) + torch.arange(K, device=trees.device)
    s = trees.flat[child]
    m = _min_value(s) if level + 2 == len(trees.offsets) else trees.flat[child + trees.storage]
    half = K // 2
    while half >= 1:  # fold in halves, the order of the C++ recompute_node
        s = s[:, :half] + s[:, half : 2 * half]
        m = torch.minimum(m[:, :half], m[:, half : 2 * half])
        half //= 2
    at = base + trees.offsets[level] + nodes
    trees.flat[at] = s[:, 0]
    trees.flat[at + trees.storage] = m[:, 0]


def sumtree_update_(
    tree: Tensor,
    capacity: int,
    fanout: int,
    index: Tensor,
    priority: Tensor,
    keep: Tensor | None = None,
    alpha: float = 1.0,
    eps: float = 0.0,
    running_max: Tensor | None = None,
) -> None:
    """Sets leaves to (priority + eps) ** alpha, the last kept occurrence winning (see ``rltorch.ops.SumTree``)."""
    op = "sumtree_update_"
    trees = _Trees(op, tree, capacity, fanout)
    _check_device(op, tree, index, "index")
    _check_device(op, tree, priority, "priority")
    _check_index_and_values(op, index, priority, "priority")
    trees.rows_per_tree(op, index, "index")
    _check_not_alias(op, tree, index, "index")
    _check_not_alias(op, tree, priority, "priority")
    _check_alpha_eps(op, alpha, eps)
    if keep is not None:
        _check_device(op, tree, keep, "keep")
        if keep.dtype != torch.bool:
            raise RuntimeError(f"rltorch.{op}: `keep` must be bool, got {keep.dtype}")
        if keep.numel() != index.numel():
            raise RuntimeError(
                f"rltorch.{op}: `keep` {list(keep.shape)} must have one flag per entry of `index` {list(index.shape)}"
            )
        _check_not_alias(op, tree, keep, "keep")
    if running_max is not None:
        _check_running_max(op, trees, tree, running_max)
    with torch.no_grad():
        index, priority = index.reshape(-1), priority.reshape(-1).to(torch.float64)
        max_raw = max_raw_priority(capacity, alpha)
        # The kernel checks entry by entry (index, then value): report the same first failure.
        bad_index = (index < 0) | (index >= capacity)
        bad_value = ~(torch.isfinite(priority) & (priority >= 0))
        too_big = ~(priority + eps <= max_raw)
        position = _first_bad(bad_index | bad_value | too_big)
        if position is not None:
            if bool(bad_index[position]):
                raise IndexError(
                    f"rltorch.{op}: `index` holds {int(index[position])} at position {position}, "
                    f"outside [0, {capacity})"
                )
            if bool(bad_value[position]):
                raise ValueError(
                    f"rltorch.{op}: `priority` holds {float(priority[position]):g} at position {position}; "
                    "priorities must be finite and >= 0"
                )
            raise ValueError(
                f"rltorch.{op}: `priority` holds {float(priority[position]):g} at position {position}; "
                f"priority + eps must be <= {max_raw:g} for this capacity and alpha, or the total of the tree "
                "could overflow"
            )
        kept = None if keep is None else keep.reshape(-1)
        _write_leaves(trees, trees.tree_of_entries(index.numel()), index, priority, kept, alpha, eps, running_max)


def _write_leaves(trees: _Trees, tree_ids, index, priority, keep, alpha, eps, running_max) -> None:
    if keep is not None:
        tree_ids, index, priority = tree_ids[keep], index[keep], priority[keep]
    if index.numel() == 0:
        return
    if running_max is not None:
        # The rule of csrc/include/rltorch/sumtree.h running_max_fold, per tree: a NaN start is
        # replaced, otherwise only a strictly larger value wins (+0.0 keeps -0.0).
        rm = running_max.view(-1)
        neg = torch.full((trees.count,), -math.inf, dtype=torch.float64, device=trees.device)
        batch_max = neg.scatter_reduce(0, tree_ids, priority + eps, "amax")
        has = torch.zeros(trees.count, dtype=torch.bool, device=trees.device).index_fill_(0, tree_ids, True)
        rm.copy_(torch.where(has & (torch.isnan(rm) | (batch_max > rm)), batch_max, rm))
    # Last occurrence wins: after a stable sort by (tree, leaf), keep the last entry of each run.
    key = tree_ids * trees.capacity + index
    order = torch.argsort(key, stable=True)
    sorted_key = key[order]
    last = torch.ones_like(sorted_key, dtype=torch.bool)
    last[:-1] = sorted_key[1:] != sorted_key[:-1]
    tree_ids, leaves, values = tree_ids[order][last], index[order][last], priority[order][last]
    # alpha != 1: torch.pow's vectorized pow may differ from the kernels' libm pow in the last bit.
    values = values + eps if alpha == 1.0 else torch.pow(values + eps, alpha)
    trees.flat[trees.base(tree_ids) + trees.leaf_offset + leaves] = values
    nodes = leaves
    K = trees.fanout
    for level in range(len(trees.offsets) - 2, -1, -1):
        key = torch.unique(tree_ids * trees.widths[level] + nodes // K)
        tree_ids, nodes = key // trees.widths[level], key % trees.widths[level]
        _recompute_nodes(trees, level, tree_ids, nodes)


@torch.no_grad()
def sumtree_find(tree: Tensor, capacity: int, fanout: int, mass: Tensor) -> Tensor:
    """First leaf whose inclusive prefix sum exceeds each mass (see ``rltorch.ops.SumTree.find``)."""
    op = "sumtree_find"
    trees = _Trees(op, tree, capacity, fanout)
    _check_device(op, tree, mass, "mass")
    _floating(op, mass, "mass")
    trees.rows_per_tree(op, mass, "mass")
    u = mass.reshape(-1).to(torch.float64)
    return _find(trees, trees.tree_of_entries(u.numel()), u).reshape(mass.shape)


def _find(trees: _Trees, tree_ids: Tensor, u: Tensor) -> Tensor:
    u = torch.where(u > 0, u, torch.zeros_like(u))
    node = torch.zeros(u.shape, dtype=torch.long, device=trees.device)
    inf = torch.full_like(u, math.inf)
    K = trees.fanout
    base = trees.base(tree_ids)
    for level in range(len(trees.offsets) - 1):
        first = base + trees.offsets[level + 1] + node * K
        children = trees.flat[first.unsqueeze(-1) + torch.arange(K, device=trees.device)]
        # The C++ choose_child: count the children whose inclusive prefix is <= u.
        prefix = [torch.zeros_like(u)]
        below = torch.zeros_like(node)
        last_nonzero = torch.zeros_like(node)
        for j in range(K):
            c = children[:, j]
            prefix.append(prefix[-1] + c)
            below = below + (prefix[-1] <= u).long()
            last_nonzero = torch.where(c > 0, j, last_nonzero)
        fell = below == K
        chosen = torch.where(fell, last_nonzero, below)
        start = torch.stack(prefix, dim=1).gather(1, chosen.unsqueeze(1)).squeeze(1)
        u = torch.where(fell, inf, u - start)
        node = node * K + chosen
    return node


def check_sampling_mass(total: float, op: str = "sumtree_sample", tree: int = 0, batched: bool = False) -> None:
    """Rejects a tree with nothing to sample (csrc/sumtree_common.cpp::check_sampling_mass)."""
    which = f"tree {tree} of the batch" if batched else "the tree"
    if not math.isfinite(total):
        raise ValueError(
            f"rltorch.{op}: {which}'s total priority is {total}: nothing can be sampled from a non-finite total"
        )
    if not total > 0.0:
        raise ValueError(
            f"rltorch.{op}: {which} holds no priority mass (its total is {total}): nothing can be "
            "sampled; give some leaf a priority > 0 first"
        )


def _check_sample_args(op: str, tree: Tensor, capacity: int, fanout: int, batch_size: int, beta: float) -> _Trees:
    trees = _Trees(op, tree, capacity, fanout)
    if batch_size < 0:
        raise ValueError(f"rltorch.{op}: `batch_size` must be >= 0, got {batch_size}")
    if not (math.isfinite(beta) and beta >= 0.0):
        raise ValueError(f"rltorch.{op}: `beta` must be finite and >= 0, got {beta}")
    return trees


def _sample(op: str, trees: _Trees, batch_size: int, beta: float, generator) -> tuple[Tensor, Tensor]:
    for t, total in enumerate(trees.totals().tolist()):
        check_sampling_mass(total, op, t, trees.batched)
    shape = (trees.count, batch_size) if trees.batched else (batch_size,)
    uniform = torch.rand(shape, generator=generator, dtype=torch.float64, device=trees.device).reshape(-1)
    tree_ids = trees.tree_of_entries(uniform.numel())
    within = torch.arange(batch_size, dtype=torch.float64, device=trees.device).repeat(trees.count)
    mass = (within + uniform) / batch_size * trees.totals()[tree_ids]
    index = _find(trees, tree_ids, mass)
    if beta == 0.0:
        weight = torch.ones(index.shape, dtype=torch.float32, device=trees.device)
    else:
        leaf = trees.flat[trees.base(tree_ids) + trees.leaf_offset + index]
        weight = torch.pow((leaf / trees.root_mins()[tree_ids]).to(torch.float32), -beta)
    return index.reshape(shape), weight.reshape(shape)


@torch.no_grad()
def sumtree_sample(
    tree: Tensor, capacity: int, fanout: int, batch_size: int, beta: float = 0.0, generator=None
) -> tuple[Tensor, Tensor]:
    """Stratified sampling with importance weights (see ``rltorch.ops.SumTree.sample``)."""
    trees = _check_sample_args("sumtree_sample", tree, capacity, fanout, batch_size, beta)
    return _sample("sumtree_sample", trees, batch_size, beta, generator)


def per_update_priorities_(
    tree: Tensor,
    capacity: int,
    fanout: int,
    slot_ids: Tensor,
    index: Tensor,
    td_error: Tensor,
    alpha: float,
    eps: float,
    running_max: Tensor,
) -> None:
    """``update_priorities`` of a prioritized buffer (see ``rltorch.ops.sumtree.per_update_priorities_``)."""
    op = "per_update_priorities_"
    trees = _Trees(op, tree, capacity, fanout)
    _check_device(op, tree, slot_ids, "slot_ids")
    _check_device(op, tree, index, "index")
    _check_device(op, tree, td_error, "td_error")
    shape = [trees.count, capacity] if trees.batched else [capacity]
    if slot_ids.dtype != torch.int64 or list(slot_ids.shape) != shape:
        raise RuntimeError(
            f"rltorch.{op}: `slot_ids` must be int64 of shape {shape}, got {slot_ids.dtype} {list(slot_ids.shape)}"
        )
    _check_index_and_values(op, index, td_error, "td_error")
    trees.rows_per_tree(op, index, "index")
    _check_running_max(op, trees, tree, running_max)
    _check_alpha_eps(op, alpha, eps)
    for other, name in ((slot_ids, "slot_ids"), (index, "index"), (td_error, "td_error")):
        _check_not_alias(op, tree, other, name)
    with torch.no_grad():
        td = td_error.reshape(-1).to(torch.float64)
        max_raw = max_raw_priority(capacity, alpha)
        not_finite = ~torch.isfinite(td)
        position = _first_bad(not_finite | ~(td.abs() + eps <= max_raw))
        if position is not None:
            if bool(not_finite[position]):
                raise ValueError(
                    f"rltorch.{op}: `td_error` holds {float(td[position]):g} at position {position}; "
                    "td errors must be finite"
                )
            raise ValueError(
                f"rltorch.{op}: `td_error` holds {float(td[position]):g} at position {position}; |td_error| + eps "
                f"must be <= {max_raw:g} for this capacity and alpha, or the total of the tree could overflow"
            )
        index = index.reshape(-1)
        tree_ids = trees.tree_of_entries(index.numel())
        slots = index.remainder(capacity)
        keep = (slot_ids.reshape(-1)[tree_ids * capacity + slots] == index) & (index >= 0)
        _write_leaves(trees, tree_ids, slots, td.abs(), keep, alpha, eps, running_max)


def _check_columns(op: str, columns, anchor: Tensor, anchor_name: str, trees: int, rows: int) -> None:
    """csrc/sumtree_common.cpp::checked_columns (trees = 0: unbatched)."""
    for c, column in enumerate(columns):
        if column.device != anchor.device:
            raise RuntimeError(f"rltorch.{op}: `columns[{c}]` is on {column.device} but `{anchor_name}` is on "
                               f"{anchor.device}")
        lead = 1 if trees else 0
        ok = column.dim() >= 1 + lead and column.shape[lead] == rows and (not lead or column.shape[0] == trees)
        if not ok:
            want = f"shape [{trees}, {rows}, ...]" if lead else f"{rows} rows like `columns[0]`"
            raise RuntimeError(f"rltorch.{op}: `columns[{c}]` must have {want}, got {list(column.shape)}")


def _gather(columns, index: Tensor, trees: int) -> list[Tensor]:
    if not trees:
        return [column.index_select(0, index) for column in columns]
    rows = torch.arange(trees, device=index.device).unsqueeze(1)
    return [column[rows, index] for column in columns]


@torch.no_grad()
def replay_gather(columns: list[Tensor], index: Tensor) -> list[Tensor]:
    """Rows ``index`` of every column (``[T, B]`` index: rows of ``[T, rows, ...]`` columns)."""
    op = "replay_gather"
    if index.dtype != torch.int64 or index.dim() not in (1, 2):
        raise RuntimeError(f"rltorch.{op}: `index` must be a 1-D (or [T, B] for T buffers) int64 tensor, got "
                           f"{index.dtype} {list(index.shape)}")
    if len(columns) == 0:
        raise RuntimeError(f"rltorch.{op}: `columns` is empty")
    trees = index.shape[0] if index.dim() == 2 else 0
    lead = 1 if trees else 0
    rows = columns[0].shape[lead] if columns[0].dim() > lead else 0
    _check_columns(op, columns, index, "index", trees, rows)
    position = _first_bad(((index < 0) | (index >= rows)).reshape(-1))
    if position is not None:
        raise IndexError(
            f"rltorch.{op}: `index` holds {int(index.reshape(-1)[position])} at position {position}, outside "
            f"[0, {rows})"
        )
    return _gather(columns, index, trees)


@torch.no_grad()
def replay_sample(
    tree: Tensor, capacity: int, fanout: int, columns: list[Tensor], batch_size: int, beta: float = 0.0,
    generator=None,
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """``sumtree_sample`` and the gather of the sampled rows of every column, in one call."""
    op = "replay_sample"
    trees = _check_sample_args(op, tree, capacity, fanout, batch_size, beta)
    _check_columns(op, columns, tree, "tree", trees.count if trees.batched else 0, capacity)
    index, weight = _sample(op, trees, batch_size, beta, generator)
    return index, weight, _gather(columns, index, trees.count if trees.batched else 0)
