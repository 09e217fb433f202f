"""Vectorized classic-control operators: MountainCar-v0, MountainCarContinuous-v0,
Pendulum-v1 and Acrobot-v1 (the kernels behind ``rltorch.envs.MountainCarVecEnv``
and its siblings).

Each env is five tensors the caller owns: ``state`` float64 ``[D, N]``, ``steps``
int32 ``[N]``, ``prev_done`` bool ``[N]``, ``episode`` int64 ``[N]`` (resets so
far; with ``seed`` it keys the reset generator) and ``returns`` float64 ``[N]``
(the running episode's return). ``<env>_step_`` and ``<env>_reset_`` update them
in place and never synchronise with the host; :func:`new_classic_state`
allocates them. ``csrc/ops.cpp`` documents the outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rltorch import _ext, _reference_classic
from rltorch._reference_classic import SPECS
from rltorch.ops._dispatch import pick, resolve
from rltorch.ops._env_args import as_int, as_real, as_seed, check_env_devices

__all__ = [
    "mountain_car_step_", "mountain_car_reset_", "mountain_car_continuous_step_", "mountain_car_continuous_reset_",
    "pendulum_step_", "pendulum_reset_", "acrobot_step_", "acrobot_reset_", "new_classic_state", "classic_step_",
    "classic_reset_", "SPECS",
]


def _bind(name: str, kind: str):
    def reference(*args):
        return getattr(_reference_classic, f"classic_{kind}_")(name, *args)

    reference.__name__ = f"{name}_{kind}_"
    return resolve(f"{name}_{kind}_", reference)


_STEP = {name: _bind(name, "step") for name in SPECS}
_RESET = {name: _bind(name, "reset") for name in SPECS}
KERNELS = {f"{name}_step_": _STEP[name] for name in SPECS} | {f"{name}_reset_": _RESET[name] for name in SPECS}


def new_classic_state(name: str, num_envs: int, device: torch.device | str = "cpu"):
    """Zeroed ``(state, steps, prev_done, episode, returns)`` for ``num_envs`` envs of ``name``
    (a key of :data:`SPECS`, e.g. ``"pendulum"``); reset before stepping."""
    spec = SPECS[name]
    return (
        torch.zeros((spec.state_dim, num_envs), dtype=torch.float64, device=device),
        torch.zeros(num_envs, dtype=torch.int32, device=device),
        torch.zeros(num_envs, dtype=torch.bool, device=device),
        torch.zeros(num_envs, dtype=torch.int64, device=device),
        torch.zeros(num_envs, dtype=torch.float64, device=device),
    )


def classic_step_(
    name: str, state: Tensor, steps: Tensor, prev_done: Tensor, episode: Tensor, returns: Tensor, actions: Tensor,
    seed: int, first: float | None = None, second: float | None = None, max_episode_steps: int | None = None,
    autoreset_mode: int = 0, param: float | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Steps every env of ``name`` once, in place; ``first``/``second`` are its reset bounds
    (``low``/``high``, or Pendulum's ``x_init``/``y_init``) and ``param`` its step parameter
    (``goal_velocity``, Pendulum's ``g``; Acrobot has none), gymnasium's defaults when None.
    Returns ``(obs, reward, terminated, truncated, done, episode_return, episode_length, final_obs)``.

    Actions are integers 0, 1, 2 ``[N]`` (MountainCar, Acrobot; any integer dtype) or finite
    float32 ``[N, 1]`` (MountainCarContinuous, Pendulum). On the CPU (kernel and reference) a bad
    action, or stepping an env that ended on the previous call with autoreset disabled, raises
    before any env moves. On CUDA (no host sync) the same is recorded on the device and no env
    moves; :func:`rltorch.ops.check_device_errors` raises it.
    """
    spec = SPECS[name]
    op = spec.step_op
    seed = as_seed(op, seed)
    first = spec.default_bounds[0] if first is None else as_real(op, spec.bound_names[0], first)
    second = spec.default_bounds[1] if second is None else as_real(op, spec.bound_names[1], second)
    max_episode_steps = spec.max_episode_steps if max_episode_steps is None else as_int(
        op, "max_episode_steps", max_episode_steps)
    autoreset_mode = as_int(op, "autoreset_mode", autoreset_mode)
    if param is not None and spec.param_name is None:
        raise TypeError(f"rltorch.{op}: {spec.gym_id} has no step parameter, got {param!r}")
    param = spec.default_param if param is None else as_real(op, spec.param_name, param)
    check_env_devices(op, state, steps=steps, prev_done=prev_done, episode=episode, returns=returns, actions=actions)
    args = (state, steps, prev_done, episode, returns, actions, seed, first, second, max_episode_steps, autoreset_mode)
    return pick(_STEP[name], state)(*args, *((param,) if spec.param_name is not None else ()))


def classic_reset_(
    name: str, state: Tensor, steps: Tensor, prev_done: Tensor, episode: Tensor, returns: Tensor,
    reset_mask: Tensor | None, seed: int, first: float | None = None, second: float | None = None,
) -> Tensor:
    """Resets the envs of ``name`` in ``reset_mask`` (all if None) in place; returns float32 obs
    ``[N, O]`` of every env. Bad arguments raise before any write."""
    spec = SPECS[name]
    op = spec.reset_op
    seed = as_seed(op, seed)
    first = spec.default_bounds[0] if first is None else as_real(op, spec.bound_names[0], first)
    second = spec.default_bounds[1] if second is None else as_real(op, spec.bound_names[1], second)
    check_env_devices(op, state, steps=steps, prev_done=prev_done, episode=episode, returns=returns,
                      reset_mask=reset_mask)
    return pick(_RESET[name], state)(state, steps, prev_done, episode, returns, reset_mask, seed, first, second)


def mountain_car_step_(state, steps, prev_done, episode, returns, actions, seed, low=-0.6, high=-0.4,
                       max_episode_steps=200, autoreset_mode=0, goal_velocity=0.0):
    """MountainCar-v0: see :func:`classic_step_`."""
    return classic_step_("mountain_car", state, steps, prev_done, episode, returns, actions, seed, low, high,
                         max_episode_steps, autoreset_mode, goal_velocity)


def mountain_car_reset_(state, steps, prev_done, episode, returns, reset_mask, seed, low=-0.6, high=-0.4):
    """MountainCar-v0: see :func:`classic_reset_`."""
    return classic_reset_("mountain_car", state, steps, prev_done, episode, returns, reset_mask, seed, low, high)


def mountain_car_continuous_step_(state, steps, prev_done, episode, returns, actions, seed, low=-0.6, high=-0.4,
                                  max_episode_steps=999, autoreset_mode=0, goal_velocity=0.0):
    """MountainCarContinuous-v0: see :func:`classic_step_`."""
    return classic_step_("mountain_car_continuous", state, steps, prev_done, episode, returns, actions, seed, low,
                         high, max_episode_steps, autoreset_mode, goal_velocity)


def mountain_car_continuous_reset_(state, steps, prev_done, episode, returns, reset_mask, seed, low=-0.6,
                                   high=-0.4):
    """MountainCarContinuous-v0: see :func:`classic_reset_`."""
    return classic_reset_("mountain_car_continuous", state, steps, prev_done, episode, returns, reset_mask, seed,
                          low, high)


def pendulum_step_(state, steps, prev_done, episode, returns, actions, seed, x_init=SPECS["pendulum"].default_bounds[0],
                   y_init=1.0, max_episode_steps=200, autoreset_mode=0, g=10.0):
    """Pendulum-v1: see :func:`classic_step_`."""
    return classic_step_("pendulum", state, steps, prev_done, episode, returns, actions, seed, x_init, y_init,
                         max_episode_steps, autoreset_mode, g)


def pendulum_reset_(state, steps, prev_done, episode, returns, reset_mask, seed,
                    x_init=SPECS["pendulum"].default_bounds[0], y_init=1.0):
    """Pendulum-v1: see :func:`classic_reset_`."""
    return classic_reset_("pendulum", state, steps, prev_done, episode, returns, reset_mask, seed, x_init, y_init)


def acrobot_step_(state, steps, prev_done, episode, returns, actions, seed, low=-0.1, high=0.1,
                  max_episode_steps=500, autoreset_mode=0):
    """Acrobot-v1: see :func:`classic_step_`."""
    return classic_step_("acrobot", state, steps, prev_done, episode, returns, actions, seed, low, high,
                         max_episode_steps, autoreset_mode)


def acrobot_reset_(state, steps, prev_done, episode, returns, reset_mask, seed, low=-0.1, high=0.1):
    """Acrobot-v1: see :func:`classic_reset_`."""
    return classic_reset_("acrobot", state, steps, prev_done, episode, returns, reset_mask, seed, low, high)


if _ext.HAS_EXT:

    def _register_fakes(name: str) -> None:
        spec = SPECS[name]

        def check_state(op, state):
            torch._check(state.dim() == 2 and state.shape[0] == spec.state_dim,
                         lambda: f"rltorch.{op}: `state` must be [{spec.state_dim}, N]")

        @torch.library.register_fake(f"rltorch::{spec.step_op}")
        def _step_fake(state, steps, prev_done, episode, returns, actions, seed, *scalars, **named):
            check_state(spec.step_op, state)
            n = state.shape[1]
            shape = (n, 1) if spec.continuous else (n,)
            torch._check(tuple(actions.shape) == shape,
                         lambda: f"rltorch.{spec.step_op}: `actions` must have shape {list(shape)}")
            autoreset_mode = named.get("autoreset_mode", scalars[3] if len(scalars) > 3 else 0)
            dev = state.device

            def vec(dtype):
                return torch.empty((n,), dtype=dtype, device=dev)

            final_rows = n if autoreset_mode == 1 else 0
            return (
                torch.empty((n, spec.obs_dim), dtype=torch.float32, device=dev), vec(torch.float32), vec(torch.bool),
                vec(torch.bool), vec(torch.bool), vec(torch.float32), vec(torch.int32),
                torch.empty((final_rows, spec.obs_dim), dtype=torch.float32, device=dev),
            )

        @torch.library.register_fake(f"rltorch::{spec.reset_op}")
        def _reset_fake(state, steps, prev_done, episode, returns, reset_mask, seed, *bounds, **named):
            check_state(spec.reset_op, state)
            return torch.empty((state.shape[1], spec.obs_dim), dtype=torch.float32, device=state.device)

    for _name in SPECS:
        _register_fakes(_name)
