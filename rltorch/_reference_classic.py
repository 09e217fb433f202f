"""Pure-PyTorch references of the classic-control ops (MountainCar-v0,
MountainCarContinuous-v0, Pendulum-v1, Acrobot-v1): the tests' oracle and the
runtime fallback when the compiled extension is absent.

Each is gymnasium's step written with torch tensors over all envs, in the
order of floating-point operations of the shared C++ headers
(``csrc/include/rltorch/{mountain_car,pendulum,acrobot}.h``), with torch's
own sin/cos (the kernels use rltorch's polynomials; both are within an ulp
of libm's). ``docs/classic_control.md`` lists what was read from gymnasium.
This module also holds the envs' facts for the Python side (:data:`SPECS`):
the ops' fake kernels and the env classes read them from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from rltorch._checks import same_device
from rltorch._reference import (
    _ACTION_DTYPES,
    _check_reset_bounds,
    _check_seed,
    check_env_state,
    check_step_limits,
    episode_keys,
    reject_bad_discrete_actions,
    reject_ended_envs,
    reset_uniform,
)

PI = math.pi


@dataclass(frozen=True)
class ClassicSpec:
    """What the Python side knows of one classic-control env."""

    name: str                  # op prefix: ops are NAME_step_ and NAME_reset_
    gym_id: str                # gymnasium's id
    class_name: str            # rltorch.envs class
    state_rows: tuple[str, ...]
    obs_dim: int
    continuous: bool
    bound_names: tuple[str, str]          # the reset bounds' argument names
    default_bounds: tuple[float, float]
    param_name: str | None                # the step's one parameter, if any
    default_param: float
    max_episode_steps: int                # gymnasium's registration
    reward_threshold: float | None        # gymnasium's registration
    obs_high: tuple[float, ...]           # the observation box is [-obs_high, obs_high] (MountainCar: below)
    obs_low: tuple[float, ...] | None = None
    num_actions: int = 0                  # Discrete(num_actions), or 0 for Box(-action_high, action_high, (1,))
    action_high: float = 0.0

    @property
    def state_dim(self) -> int:
        return len(self.state_rows)

    @property
    def step_op(self) -> str:
        return f"{self.name}_step_"

    @property
    def reset_op(self) -> str:
        return f"{self.name}_reset_"


_F32_MAX_SPEED = float(torch.tensor(0.07, dtype=torch.float32))

SPECS: dict[str, ClassicSpec] = {
    "mountain_car": ClassicSpec(
        "mountain_car", "MountainCar-v0", "MountainCarVecEnv", ("position", "velocity"), 2, False,
        ("low", "high"), (-0.6, -0.4), "goal_velocity", 0.0, 200, -110.0,
        obs_high=(0.6, 0.07), obs_low=(-1.2, -0.07), num_actions=3),
    "mountain_car_continuous": ClassicSpec(
        "mountain_car_continuous", "MountainCarContinuous-v0", "MountainCarContinuousVecEnv",
        ("position", "velocity"), 2, True, ("low", "high"), (-0.6, -0.4), "goal_velocity", 0.0, 999, 90.0,
        obs_high=(0.6, 0.07), obs_low=(-1.2, -0.07), action_high=1.0),
    "pendulum": ClassicSpec(
        "pendulum", "Pendulum-v1", "PendulumVecEnv", ("theta", "theta_dot"), 3, True, ("x_init", "y_init"),
        (PI, 1.0), "g", 10.0, 200, None, obs_high=(1.0, 1.0, 8.0), action_high=2.0),
    "acrobot": ClassicSpec(
        "acrobot", "Acrobot-v1", "AcrobotVecEnv", ("theta1", "theta2", "dtheta1", "dtheta2"), 6, False,
        ("low", "high"), (-0.1, 0.1), None, 0.0, 500, -100.0,
        obs_high=(1.0, 1.0, 1.0, 1.0, 4 * PI, 9 * PI), num_actions=3),
}


def _f32(x: Tensor) -> Tensor:
    """Rounded to float32 and back: where NumPy computes or stores in float32."""
    return x.to(torch.float32).to(torch.float64)


def _full(like: Tensor, value: float) -> Tensor:
    return torch.full_like(like, value)


# ---- MountainCar-v0 (float64 throughout) ----

def _mountain_car_physics(s: Tensor, action: Tensor, fresh: Tensor, goal_velocity: float):
    position, velocity = s[0], s[1]
    velocity = velocity + ((action - 1.0) * 0.001 + torch.cos(3.0 * position) * (-0.0025))
    velocity = velocity.clamp(-0.07, 0.07)
    position = (position + velocity).clamp(-1.2, 0.6)
    velocity = torch.where((position == -1.2) & (velocity < 0), 0.0, velocity)
    terminated = (position >= 0.5) & (velocity >= goal_velocity)
    return torch.stack([position, velocity]), terminated, _full(position, -1.0)


def _mountain_car_draw(keys: Tensor, low: float, high: float) -> Tensor:
    position = reset_uniform(keys, 0, low, high)
    return torch.stack([position, torch.zeros_like(position)])


def _identity_obs(s: Tensor) -> Tensor:
    return s.t().to(torch.float32)


# ---- MountainCarContinuous-v0 (NumPy 2's float32/float64 mix; see mountain_car.h) ----

def _mountain_car_continuous_physics(s: Tensor, action: Tensor, fresh: Tensor, goal_velocity: float):
    position, velocity = s[0], s[1]
    clipped = (action < -1.0) | (action > 1.0)
    force = action.clamp(-1.0, 1.0)
    push = torch.where(clipped, force * 0.0015, _f32(force * _f32(_full(force, 0.0015))))
    slope = 0.0025 * torch.cos(torch.where(fresh, 3.0 * position, _f32(3.0 * position)))
    dv = torch.where(clipped, push - slope, _f32(push - _f32(slope)))
    v = torch.where(fresh, velocity + dv, _f32(velocity + _f32(dv)))
    speed_limit = torch.where(fresh, 0.07, _F32_MAX_SPEED)
    v_high = v > speed_limit
    v = torch.where(v_high, 0.07, v)
    v_low = v < -speed_limit
    v = torch.where(v_low, -0.07, v)
    pos = torch.where(fresh, position + v, _f32(position + _f32(v)))
    pos_max = torch.where(fresh, 0.6, _f32(_full(pos, 0.6)))
    pos_min = torch.where(fresh, -1.2, _f32(_full(pos, -1.2)))
    pos = torch.where(pos > pos_max, 0.6, pos)
    p_low = pos < pos_min
    at_wall = p_low | (pos == pos_min)
    pos = torch.where(p_low, -1.2, pos)
    stopped = at_wall & (v < 0)
    v = torch.where(stopped, 0.0, v)
    v_is_f32 = ~(fresh | v_high | v_low | stopped)
    goal_v = torch.where(v_is_f32, _f32(_full(v, goal_velocity)), goal_velocity)
    goal_x = torch.where(fresh, 0.45, _f32(_full(pos, 0.45)))
    terminated = (pos >= goal_x) & (v >= goal_v)
    reward = torch.where(terminated, 100.0, 0.0) - (action * action) * 0.1
    return torch.stack([_f32(pos), _f32(v)]), terminated, reward


# ---- Pendulum-v1 ----

def _angle_normalize(x: Tensor) -> Tensor:
    """((x + pi) % (2 pi)) - pi with NumPy's float remainder (fmod, moved into [0, 2 pi))."""
    two_pi = 2 * PI
    mod = torch.fmod(x + PI, two_pi)
    mod = torch.where(mod < 0, mod + two_pi, mod)
    mod = torch.where(mod == 0, 0.0, mod)
    return mod - PI


def _pendulum_physics(s: Tensor, action: Tensor, fresh: Tensor, g: float):
    th, thdot = s[0], s[1]
    u = action.clamp(-2.0, 2.0)
    an = _angle_normalize(th)
    costs = ((an * an) + 0.1 * (thdot * thdot)) + _f32(_f32(_full(u, 0.001)) * _f32(u * u))
    new_thdot = thdot + ((3 * g / (2 * 1.0)) * torch.sin(th) + _f32(3.0 * u)) * 0.05
    new_thdot = new_thdot.clamp(-8.0, 8.0)
    new_th = th + new_thdot * 0.05
    return torch.stack([new_th, new_thdot]), torch.zeros_like(th, dtype=torch.bool), -costs


def _pendulum_draw(keys: Tensor, x_init: float, y_init: float) -> Tensor:
    return torch.stack([reset_uniform(keys, 0, -x_init, x_init), reset_uniform(keys, 1, -y_init, y_init)])


def _pendulum_obs(s: Tensor) -> Tensor:
    return torch.stack([torch.cos(s[0]), torch.sin(s[0]), s[1]], dim=1).to(torch.float32)


# ---- Acrobot-v1 (book dynamics, RK4) ----

_ACROBOT_WRAP_TURNS = 32


def _acrobot_dsdt(y: list[Tensor], a: Tensor) -> list[Tensor]:
    theta1, theta2, dtheta1, dtheta2 = y
    m1 = m2 = l1 = i1 = i2 = 1.0
    lc1 = lc2 = 0.5
    g = 9.8
    cos2, sin2 = torch.cos(theta2), torch.sin(theta2)
    d1 = ((m1 * lc1**2 + m2 * ((l1**2 + lc2**2) + 2 * l1 * lc2 * cos2)) + i1) + i2
    d2 = m2 * (lc2**2 + l1 * lc2 * cos2) + i2
    phi2 = m2 * lc2 * g * torch.cos((theta1 + theta2) - PI / 2.0)
    phi1 = (((-m2 * l1 * lc2) * (dtheta2 * dtheta2) * sin2 - (2 * m2 * l1 * lc2) * dtheta2 * dtheta1 * sin2)
            + ((m1 * lc1 + m2 * l1) * g) * torch.cos(theta1 - PI / 2)) + phi2
    ddtheta2 = (((a + d2 / d1 * phi1) - (m2 * l1 * lc2) * (dtheta1 * dtheta1) * sin2) - phi2) / (
        (m2 * lc2**2 + i2) - (d2 * d2) / d1)
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return [dtheta1, dtheta2, ddtheta1, ddtheta2]


def _acrobot_wrap(x: Tensor) -> Tensor:
    """gymnasium's wrap(x, -pi, pi) loop, capped at 32 turns (then one closed-form reduction)."""
    two_pi = PI - (-PI)
    turns = torch.zeros_like(x, dtype=torch.int64)
    for _ in range(_ACROBOT_WRAP_TURNS):
        over = (x > PI) & (turns < _ACROBOT_WRAP_TURNS)
        if not bool(over.any()):
            break
        x = torch.where(over, x - two_pi, x)
        turns = turns + over.to(torch.int64)
    for _ in range(_ACROBOT_WRAP_TURNS):
        under = (x < -PI) & (turns < _ACROBOT_WRAP_TURNS)
        if not bool(under.any()):
            break
        x = torch.where(under, x + two_pi, x)
        turns = turns + under.to(torch.int64)
    far = turns == _ACROBOT_WRAP_TURNS
    return torch.where(far, x - two_pi * torch.round(x / two_pi), x)


def _acrobot_physics(s: Tensor, action: Tensor, fresh: Tensor, param: float):
    torque = action - 1.0
    y0 = list(s.unbind(0))
    dt, dt2 = 0.2, 0.2 / 2.0
    k1 = _acrobot_dsdt(y0, torque)
    k2 = _acrobot_dsdt([y + dt2 * k for y, k in zip(y0, k1)], torque)
    k3 = _acrobot_dsdt([y + dt2 * k for y, k in zip(y0, k2)], torque)
    k4 = _acrobot_dsdt([y + dt * k for y, k in zip(y0, k3)], torque)
    ns = [y + dt / 6.0 * (((a + 2 * b) + 2 * c) + d) for y, a, b, c, d in zip(y0, k1, k2, k3, k4)]
    new = torch.stack([_acrobot_wrap(ns[0]), _acrobot_wrap(ns[1]), ns[2].clamp(-4 * PI, 4 * PI),
                       ns[3].clamp(-9 * PI, 9 * PI)])
    terminated = (-torch.cos(new[0]) - torch.cos(new[1] + new[0])) > 1.0
    reward = torch.where(terminated, 0.0, -1.0)
    return new, terminated, reward


def _acrobot_draw(keys: Tensor, low: float, high: float) -> Tensor:
    return torch.stack([_f32(reset_uniform(keys, k, low, high)) for k in range(4)])


def _acrobot_obs(s: Tensor) -> Tensor:
    return torch.stack([torch.cos(s[0]), torch.sin(s[0]), torch.cos(s[1]), torch.sin(s[1]), s[2], s[3]],
                       dim=1).to(torch.float32)


_PHYSICS: dict[str, Callable] = {
    "mountain_car": _mountain_car_physics,
    "mountain_car_continuous": _mountain_car_continuous_physics,
    "pendulum": _pendulum_physics,
    "acrobot": _acrobot_physics,
}
_DRAW: dict[str, Callable] = {
    "mountain_car": _mountain_car_draw,
    "mountain_car_continuous": _mountain_car_draw,
    "pendulum": _pendulum_draw,
    "acrobot": _acrobot_draw,
}
_OBSERVE: dict[str, Callable] = {
    "mountain_car": _identity_obs,
    "mountain_car_continuous": _identity_obs,
    "pendulum": _pendulum_obs,
    "acrobot": _acrobot_obs,
}


def observe(name: str, state: Tensor) -> Tensor:
    """float32 [N, O]: the observations of float64 states [D, N]."""
    return _OBSERVE[name](state).contiguous()


def initial_state(name: str, seed: int, episode: Tensor, first: float, second: float) -> Tensor:
    """float64 [D, N]: the state env i draws for episode ``episode[i]`` (the kernels' generator)."""
    return _DRAW[name](episode_keys(seed, episode), first, second)


# ---- checks: csrc/classic_control_common.cpp and csrc/cpu/classic_control_cpu.cpp, in their order ----

def _check_state(spec: ClassicSpec, op: str, state: Tensor, steps: Tensor, prev_done: Tensor, episode: Tensor,
                 returns: Tensor) -> int:
    return check_env_state(op, state, spec.gym_id, spec.state_rows,
                           ((steps, "steps", torch.int32), (prev_done, "prev_done", torch.bool),
                            (episode, "episode", torch.int64), (returns, "returns", torch.float64)))


def _check_half_width(op: str, value: float, name: str) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"rltorch.{op}: reset bound `{name}` must be finite and >= 0, got {value}")
    if not math.isfinite(value - (-value)):
        raise ValueError(f"rltorch.{op}: reset bound `{name}` ({value}) is too large: 2 * {name} overflows")


def _check_bounds(spec: ClassicSpec, op: str, first: float, second: float) -> None:
    if spec.bound_names == ("x_init", "y_init"):
        _check_half_width(op, first, "x_init")
        _check_half_width(op, second, "y_init")
    else:
        _check_reset_bounds(op, first, second)


def _check_param(spec: ClassicSpec, op: str, param: float) -> None:
    if spec.param_name is not None and not math.isfinite(param):
        raise ValueError(f"rltorch.{op}: `{spec.param_name}` must be finite, got {param}")


def _check_step(spec: ClassicSpec, state, steps, prev_done, episode, returns, actions, seed, first, second,
                max_episode_steps, autoreset_mode, param) -> int:
    op = spec.step_op
    n = _check_state(spec, op, state, steps, prev_done, episode, returns)
    same_device(op, state, "state", actions=actions)
    if spec.continuous:
        if actions.dtype != torch.float32:
            raise RuntimeError(
                f"rltorch.{op}: `actions` must be float32 (the action space's dtype), got {actions.dtype}"
            )
        if actions.shape != (n, 1):
            raise RuntimeError(f"rltorch.{op}: `actions` must have shape [{n}, 1] (one per env), "
                               f"got {list(actions.shape)}")
    else:
        if actions.dtype not in _ACTION_DTYPES:
            raise RuntimeError(f"rltorch.{op}: `actions` must be an integer tensor (0, 1 or 2), got {actions.dtype}")
        if actions.shape != (n,):
            raise RuntimeError(f"rltorch.{op}: `actions` must have shape [{n}] (one per env), "
                               f"got {list(actions.shape)}")
    _check_seed(op, seed)
    check_step_limits(op, max_episode_steps, autoreset_mode)
    _check_bounds(spec, op, first, second)
    _check_param(spec, op, param)
    if n == 0:
        return n
    # The kernels' read-only pre-pass: nothing moves unless every env can step.
    if spec.continuous:
        bad = (~torch.isfinite(actions.reshape(n))).nonzero()
        if bad.numel():
            env = int(bad[0, 0])
            raise ValueError(f"rltorch.{op}: `actions` must be finite, got {float(actions[env, 0])} for env {env} "
                             "(no env was stepped)")
    else:
        reject_bad_discrete_actions(op, actions, spec.num_actions, "0, 1 or 2")
    if autoreset_mode == 2:
        reject_ended_envs(op, prev_done, spec.class_name, spec.reset_op)
    return n


# ---- the ops ----

def classic_reset_(name: str, state: Tensor, steps: Tensor, prev_done: Tensor, episode: Tensor, returns: Tensor,
                   reset_mask: Tensor | None, seed: int, first: float, second: float) -> Tensor:
    """Resets the envs in ``reset_mask`` (all if None); see ``rltorch::<name>_reset_`` in csrc/ops.cpp."""
    spec = SPECS[name]
    op = spec.reset_op
    n = _check_state(spec, op, state, steps, prev_done, episode, returns)
    _check_seed(op, seed)
    if reset_mask is not None:
        same_device(op, state, "state", reset_mask=reset_mask)
        if reset_mask.dtype != torch.bool:
            raise RuntimeError(f"rltorch.{op}: `reset_mask` must be bool, got {reset_mask.dtype}")
        if reset_mask.shape != (n,):
            raise RuntimeError(f"rltorch.{op}: `reset_mask` must have shape [{n}], got {list(reset_mask.shape)}")
    _check_bounds(spec, op, first, second)
    mask = torch.ones_like(prev_done) if reset_mask is None else reset_mask
    fresh = initial_state(name, seed, episode, first, second)
    state.copy_(torch.where(mask, fresh, state))
    episode.add_(mask.to(torch.int64))
    steps.masked_fill_(mask, 0)
    prev_done.masked_fill_(mask, False)
    returns.masked_fill_(mask, 0.0)
    return observe(name, state)


def classic_step_(name: str, state: Tensor, steps: Tensor, prev_done: Tensor, episode: Tensor, returns: Tensor,
                  actions: Tensor, seed: int, first: float, second: float, max_episode_steps: int,
                  autoreset_mode: int, param: float = 0.0):
    """Steps every env in place, as gymnasium does (physics, TimeLimit, autoreset); see
    ``rltorch::<name>_step_`` in csrc/ops.cpp."""
    spec = SPECS[name]
    n = _check_step(spec, state, steps, prev_done, episode, returns, actions, seed, first, second,
                    max_episode_steps, autoreset_mode, param)
    action = actions.reshape(n).to(torch.float64)
    new, terminated, reward = _PHYSICS[name](state, action, steps == 0, param)
    new_steps = (steps + 1).to(torch.int32)
    truncated = new_steps >= max_episode_steps
    done = terminated | truncated
    new_returns = returns + reward
    ep_return = torch.where(done, new_returns.to(torch.float32), 0.0)
    ep_length = torch.where(done, new_steps, 0).to(torch.int32)
    reward32 = reward.to(torch.float32)
    obs = observe(name, new)
    final_obs = torch.empty((0, spec.obs_dim), dtype=torch.float32, device=state.device)
    state.copy_(new)
    steps.copy_(new_steps)
    returns.copy_(new_returns)
    if autoreset_mode == 0:
        pending = prev_done.clone()
        if bool(pending.any()):
            classic_reset_(name, state, steps, prev_done, episode, returns, pending, seed, first, second)
            obs = observe(name, state)
            zero = torch.zeros_like(pending)
            reward32 = torch.where(pending, 0.0, reward32)
            terminated, truncated, done = (torch.where(pending, zero, f) for f in (terminated, truncated, done))
            ep_return = torch.where(pending, 0.0, ep_return)
            ep_length = torch.where(pending, 0, ep_length).to(torch.int32)
        prev_done.copy_(done)
    elif autoreset_mode == 1:
        final_obs = torch.where(done.unsqueeze(1), obs, 0.0)
        prev_done.zero_()
        if bool(done.any()):
            classic_reset_(name, state, steps, prev_done, episode, returns, done, seed, first, second)
            obs = observe(name, state)
    else:
        prev_done.copy_(done)
    return obs, reward32, terminated, truncated, done, ep_return, ep_length, final_obs
