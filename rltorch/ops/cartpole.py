"""Vectorized CartPole-v1 operators (the kernels behind ``rltorch.envs.CartPoleVecEnv``).

The env is four tensors the caller owns: ``state`` float64 ``[4, N]`` (rows x,
x_dot, theta, theta_dot), ``steps`` int32 ``[N]``, ``prev_done`` bool ``[N]``
and ``episode`` int64 ``[N]`` (resets so far; with ``seed`` it keys the reset
generator). Both ops update them in place and never synchronise with the host.
Use :func:`new_cartpole_state` to allocate them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rltorch import _ext, _reference
from rltorch.ops._dispatch import pick, resolve
from rltorch.ops._env_args import as_bool as _as_bool
from rltorch.ops._env_args import as_int as _as_int
from rltorch.ops._env_args import as_real as _as_float
from rltorch.ops._env_args import as_seed as _as_seed
from rltorch.ops._env_args import check_env_devices as _check_devices

__all__ = ["cartpole_step_", "cartpole_reset_", "new_cartpole_state", "AUTORESET_MODES"]

_STEP = resolve("cartpole_step_", _reference.cartpole_step_)
_RESET = resolve("cartpole_reset_", _reference.cartpole_reset_)
KERNELS = {"cartpole_step_": _STEP, "cartpole_reset_": _RESET}

#: Values of the ops' ``autoreset_mode`` argument.
AUTORESET_MODES = {"next_step": 0, "same_step": 1, "disabled": 2}


def new_cartpole_state(num_envs: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Zeroed ``(state, steps, prev_done, episode)`` for ``num_envs`` envs (reset before stepping)."""
    return (
        torch.zeros((4, num_envs), dtype=torch.float64, device=device),
        torch.zeros(num_envs, dtype=torch.int32, device=device),
        torch.zeros(num_envs, dtype=torch.bool, device=device),
        torch.zeros(num_envs, dtype=torch.int64, device=device),
    )


def cartpole_step_(
    state: Tensor, steps: Tensor, prev_done: Tensor, episode: Tensor, actions: Tensor, seed: int,
    low: float = -0.05, high: float = 0.05, max_episode_steps: int = 500, autoreset_mode: int = 0,
    sutton_barto_reward: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Steps every env once, in place. Returns ``(obs, reward, terminated, truncated, done,
    episode_return, episode_length, final_obs)``; see ``csrc/ops.cpp`` for their meaning.

    ``actions`` may have any integer dtype (signed or unsigned) and must hold 0 or 1. On the CPU
    (kernel and reference) a bad action, or stepping an env that ended on the previous call with
    autoreset disabled, raises before any env moves: the env tensors are unchanged. On CUDA (no
    host sync) the same is recorded on the device and no env moves (the outputs show the
    unchanged envs: their obs, reward 0, no flags); :func:`rltorch.ops.check_device_errors`
    raises it.
    """
    # Scalars are typed here, so the kernel (whose dispatcher converts them) and the
    # reference fallback see the same values and reject the same calls.
    op = "cartpole_step_"
    seed = _as_seed(op, seed)
    low, high = _as_float(op, "low", low), _as_float(op, "high", high)
    max_episode_steps = _as_int(op, "max_episode_steps", max_episode_steps)
    autoreset_mode = _as_int(op, "autoreset_mode", autoreset_mode)
    sutton_barto_reward = _as_bool(op, "sutton_barto_reward", sutton_barto_reward)
    _check_devices(op, state, steps=steps, prev_done=prev_done, episode=episode, actions=actions)
    return pick(_STEP, state)(
        state, steps, prev_done, episode, actions, seed, low, high, max_episode_steps, autoreset_mode,
        sutton_barto_reward,
    )


def cartpole_reset_(
    state: Tensor, steps: Tensor, prev_done: Tensor, episode: Tensor, reset_mask: Tensor | None, seed: int,
    low: float = -0.05, high: float = 0.05,
) -> Tensor:
    """Resets the envs in ``reset_mask`` (all if None) in place; returns float32 obs ``[N, 4]`` of every env.

    ``low`` and ``high`` must be finite with ``low <= high``; bad arguments raise before any write."""
    seed = _as_seed("cartpole_reset_", seed)
    low, high = _as_float("cartpole_reset_", "low", low), _as_float("cartpole_reset_", "high", high)
    _check_devices("cartpole_reset_", state, steps=steps, prev_done=prev_done, episode=episode,
                   reset_mask=reset_mask)
    return pick(_RESET, state)(state, steps, prev_done, episode, reset_mask, seed, low, high)


if _ext.HAS_EXT:

    @torch.library.register_fake("rltorch::cartpole_step_")
    def _cartpole_step_fake(state, steps, prev_done, episode, actions, seed, low=-0.05, high=0.05,
                            max_episode_steps=500, autoreset_mode=0, sutton_barto_reward=False):
        torch._check(state.dim() == 2 and state.shape[0] == 4, lambda: "rltorch.cartpole_step_: `state` must be [4, N]")
        n = state.shape[1]
        torch._check(actions.shape == (n,), lambda: "rltorch.cartpole_step_: `actions` must have shape [N]")
        dev = state.device

        def vec(dtype):
            return torch.empty((n,), dtype=dtype, device=dev)

        final_rows = n if autoreset_mode == 1 else 0
        return (
            torch.empty((n, 4), dtype=torch.float32, device=dev), vec(torch.float32), vec(torch.bool),
            vec(torch.bool), vec(torch.bool), vec(torch.float32), vec(torch.int32),
            torch.empty((final_rows, 4), dtype=torch.float32, device=dev),
        )

    @torch.library.register_fake("rltorch::cartpole_reset_")
    def _cartpole_reset_fake(state, steps, prev_done, episode, reset_mask, seed, low=-0.05, high=0.05):
        torch._check(
            state.dim() == 2 and state.shape[0] == 4, lambda: "rltorch.cartpole_reset_: `state` must be [4, N]"
        )
        return torch.empty((state.shape[1], 4), dtype=torch.float32, device=state.device)
