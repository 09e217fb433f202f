"""gymnasium's classic-control suite beyond CartPole as batched ``VectorEnv``\\ s on
torch tensors (CPU or CUDA): :class:`MountainCarVecEnv`, :class:`MountainCarContinuousVecEnv`,
:class:`PendulumVecEnv` and :class:`AcrobotVecEnv`.

Dynamics, termination, rewards, truncation and the autoreset rules are
gymnasium's (its scalar env + ``TimeLimit`` + a vector env's autoreset), computed
by one kernel call per step in gymnasium's arithmetic (float64 state where
gymnasium keeps one, float32 where NumPy computes in float32); observations come
back as float32 tensors on the env's device. Everything else (seeding, reset
options, :meth:`~rltorch.envs.kernel_env.KernelVecEnv.set_state`, checkpoints,
the NumPy face, episode statistics) is every rltorch env's
(:class:`~rltorch.envs.kernel_env.KernelVecEnv`). ``docs/classic_control.md``
lists the facts read from gymnasium and how closely they are followed.

Rewards come back as float32 (gymnasium's are Python floats); episode returns are
summed in float64 before they are rounded.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from rltorch._reference_classic import SPECS, ClassicSpec
from rltorch.envs import _draw
from rltorch.envs.kernel_env import KernelVecEnv
from rltorch.ops import classic_control as cc_ops

__all__ = ["MountainCarVecEnv", "MountainCarContinuousVecEnv", "PendulumVecEnv", "AcrobotVecEnv", "CLASSIC_ENVS"]


def _as_param(owner: str, name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: `{name}` must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{owner}: `{name}` must be finite, got {value}")
    return value


class ClassicControlVecEnv(KernelVecEnv):
    """The classic-control envs' common part: spaces from the env's facts
    (:data:`rltorch._reference_classic.SPECS`), the ops of its family, and the running
    episode return (``returns``, float64) among the env tensors."""

    facts: ClassVar[ClassicSpec]
    counters: ClassVar[dict[str, torch.dtype]] = {**KernelVecEnv.counters, "returns": torch.float64}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.state_rows = cls.facts.state_rows
        cls.bound_names = cls.facts.bound_names
        cls.default_bounds = cls.facts.default_bounds

    def __init__(
        self,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        max_episode_steps: int | None | str = "registered",
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        episode_statistics: bool = False,
        **params: float,
    ):
        owner = type(self).__name__
        allowed = () if self.facts.param_name is None else (self.facts.param_name,)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise TypeError(f"{owner}: unexpected argument(s) {unknown}; {self.facts.gym_id} takes "
                            f"{list(allowed) or 'no'} env parameter(s)")
        if allowed:
            name = allowed[0]
            setattr(self, name, _as_param(owner, name, params.get(name, self.facts.default_param)))
        if isinstance(max_episode_steps, str) and max_episode_steps == "registered":  # gymnasium's TimeLimit
            max_episode_steps = self.facts.max_episode_steps
        super().__init__(num_envs, device, seed, max_episode_steps, autoreset_mode, render_mode, episode_statistics)

    def _spaces(self):
        spec = self.facts
        high = np.array(spec.obs_high, dtype=np.float32)
        low = -high if spec.obs_low is None else np.array(spec.obs_low, dtype=np.float32)
        obs_space = spaces.Box(low, high, dtype=np.float32)
        if spec.continuous:
            action_space = spaces.Box(-spec.action_high, spec.action_high, shape=(1,), dtype=np.float32)
        else:
            action_space = spaces.Discrete(spec.num_actions)
        return obs_space, action_space

    def _param(self) -> tuple[float, ...]:
        name = self.facts.param_name
        return () if name is None else (getattr(self, name),)

    def _reset_kernel(self, mask):
        return cc_ops.classic_reset_(self.facts.name, self.state, self.steps, self.prev_done, self.episode,
                                     self.returns, mask, self._seed, *self.bounds)

    def _step_kernel(self, actions):
        return cc_ops.classic_step_(self.facts.name, self.state, self.steps, self.prev_done, self.episode,
                                    self.returns, actions, self._seed, *self.bounds, self.max_episode_steps,
                                    self._mode_code, *self._param())


class MountainCarVecEnv(ClassicControlVecEnv):
    """``num_envs`` MountainCar-v0 envs stepped together on ``device``.

    Args:
        num_envs: number of envs (>= 1).
        device: ``"cpu"``, ``"cuda"`` or a ``torch.device``; all tensors live there.
        seed: seed of the first :meth:`reset` when that call passes none.
        max_episode_steps: truncate on this step; ``None`` for never; by default gymnasium's
            TimeLimit for the id (200 here, 999 for MountainCarContinuous, 500 for Acrobot).
        autoreset_mode: ``"next_step"`` (default, gymnasium's rule), ``"same_step"`` or
            ``"disabled"``, as for :class:`~rltorch.envs.CartPoleVecEnv`.
        goal_velocity: the velocity the car must have at the flag (gymnasium's argument, 0).
        render_mode: ``None`` or ``"rgb_array"`` (env 0, drawn with NumPy).
        episode_statistics: also report finished episodes' returns and lengths in ``info``
            (``info["episode"] = {"r": float32 [N], "l": int32 [N]}``, mask ``info["_episode"]``).

    Observations float32 ``[N, 2]`` (position, velocity); actions integers ``[N]``: 0 push
    left, 1 no push, 2 push right; reward -1 per step. Reset options ``low``/``high`` bound the
    initial position (default -0.6, -0.4). Bad arguments raise before anything changes, as for
    :class:`~rltorch.envs.CartPoleVecEnv`; on CUDA, bad actions are recorded on the device
    (:func:`rltorch.ops.check_device_errors`) and no env moves.
    """

    facts = SPECS["mountain_car"]
    numpy_attributes = ("goal_velocity",)

    @property
    def max_episode_return(self) -> float:
        """-1 per step, at least one step."""
        return -1.0

    def draw(self, state: np.ndarray) -> np.ndarray:
        return _draw_mountain_car(state, self.facts.name == "mountain_car_continuous")


class MountainCarContinuousVecEnv(MountainCarVecEnv):
    """``num_envs`` MountainCarContinuous-v0 envs stepped together on ``device``; the
    arguments are :class:`MountainCarVecEnv`'s (the time limit is 999 steps).

    Actions are float32 ``[N, 1]`` (or ``[N]``; float64 is rounded to float32, the action
    space's dtype) and must be finite; the force is the action clipped to [-1, 1]. Reward:
    ``-0.1 * action**2`` per step (the unclipped action) and +100 on reaching the flag.

    gymnasium keeps this env's state in float64 after a reset and in float32 after every
    step (NumPy 2 computes the step in float32 from then on); rltorch does the same, so the
    first step of each episode is float64 arithmetic and later steps float32.
    :meth:`set_state` follows it: states loaded with ``steps=0`` are stepped as a fresh
    reset's (float64), with ``steps > 0`` they are first rounded to float32.
    """

    facts = SPECS["mountain_car_continuous"]

    def _loaded_states(self, state: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        return torch.where((steps > 0).unsqueeze(1), state.to(torch.float32).to(torch.float64), state)

    @property
    def max_episode_return(self) -> float:
        """+100 at the flag; every step costs >= 0."""
        return 100.0


class PendulumVecEnv(ClassicControlVecEnv):
    """``num_envs`` Pendulum-v1 envs stepped together on ``device``.

    Args:
        num_envs, device, seed, max_episode_steps, autoreset_mode, render_mode, episode_statistics: as
            for :class:`MountainCarVecEnv` (the time limit is 200 steps).
        g: gravity (gymnasium's argument, 10.0).

    Observations float32 ``[N, 3]`` (cos theta, sin theta, theta_dot); actions float32
    ``[N, 1]`` (or ``[N]``) torques, finite, clipped to [-2, 2]; reward ``-(angle**2 + 0.1 *
    theta_dot**2 + 0.001 * torque**2)`` with the angle normalised into [-pi, pi). It never
    terminates. Reset options ``x_init``/``y_init`` (default pi, 1.0) bound the initial angle
    and angular velocity: theta ~ U(-x_init, x_init), theta_dot ~ U(-y_init, y_init).
    """

    facts = SPECS["pendulum"]
    numpy_attributes = ("g",)

    def _check_bounds(self, x_init: float, y_init: float) -> None:
        for name, value in (("x_init", x_init), ("y_init", y_init)):
            if value < 0:
                raise ValueError(f"{type(self).__name__}: reset option `{name}` must be >= 0 (the draw is "
                                 f"uniform(-{name}, {name})), got {value}")
            if not np.isfinite(value - (-value)):
                raise ValueError(f"{type(self).__name__}: reset option `{name}` ({value}) is too large: "
                                 f"2 * {name} overflows")

    @property
    def max_episode_return(self) -> float:
        """Every step costs >= 0."""
        return 0.0

    def draw(self, state: np.ndarray) -> np.ndarray:
        return _draw_pendulum(state)


class AcrobotVecEnv(ClassicControlVecEnv):
    """``num_envs`` Acrobot-v1 envs stepped together on ``device``; the arguments are
    :class:`MountainCarVecEnv`'s but ``goal_velocity`` (the time limit is 500 steps).

    Observations float32 ``[N, 6]`` (cos/sin theta1, cos/sin theta2, dtheta1, dtheta2);
    actions integers ``[N]``: torque -1, 0, +1; reward -1 per step, 0 on the step the tip
    rises above the bar (termination). gymnasium's defaults: book dynamics, RK4 with
    dt = 0.2, no torque noise. Reset options ``low``/``high`` (default -0.1, 0.1) bound every
    state component; draws are rounded to float32 as gymnasium's are.
    """

    facts = SPECS["acrobot"]

    @property
    def max_episode_return(self) -> float:
        """-1 per step but the terminating one (0)."""
        return 0.0

    def draw(self, state: np.ndarray) -> np.ndarray:
        return _draw_acrobot(state)


#: gymnasium id -> the rltorch env class that implements it.
CLASSIC_ENVS: dict[str, type[ClassicControlVecEnv]] = {
    cls.facts.gym_id: cls for cls in (MountainCarVecEnv, MountainCarContinuousVecEnv, PendulumVecEnv, AcrobotVecEnv)
}


# ---- rgb_array frames (gymnasium's layouts, drawn with NumPy) ----

def _draw_mountain_car(state: np.ndarray, continuous: bool) -> np.ndarray:
    width, height = 600, 400
    min_x, max_x = -1.2, 0.6
    scale = width / (max_x - min_x)
    frame = _draw.canvas(height, width)

    def to_pixels(x):
        return (x - min_x) * scale, (np.sin(3 * x) * 0.45 + 0.55) * scale

    xs = np.linspace(min_x, max_x, 60)
    _draw.polyline(frame, np.stack(to_pixels(xs), axis=1), 1.5, (0, 0, 0))
    flag_x, flag_y = to_pixels(0.45 if continuous else 0.5)
    _draw.segment(frame, (flag_x, flag_y), (flag_x, flag_y + 50), 1.0, (0, 0, 0))
    _draw.segment(frame, (flag_x, flag_y + 45), (flag_x + 20, flag_y + 40), 4.0, (204, 204, 0))
    car_x, car_y = to_pixels(float(state[0]))
    _draw.disk(frame, (car_x, car_y + 12), 12, (0, 0, 0))
    return frame


def _draw_pendulum(state: np.ndarray) -> np.ndarray:
    size = 500
    frame = _draw.canvas(size, size)
    centre = np.array([size / 2, size / 2])
    tip = centre + 0.4 * size * np.array([np.sin(state[0]), np.cos(state[0])])  # theta = 0 points up
    _draw.segment(frame, centre, tip, size / 50, (204, 77, 77))
    _draw.disk(frame, centre, size / 100, (0, 0, 0))
    return frame


def _draw_acrobot(state: np.ndarray) -> np.ndarray:
    size = 500
    frame = _draw.canvas(size, size)
    scale = size / (2 * 2.2)
    origin = np.array([size / 2, size / 2])
    # theta1 = 0 hangs straight down; theta2 is relative to link 1.
    p1 = origin + scale * np.array([np.sin(state[0]), -np.cos(state[0])])
    p2 = p1 + scale * np.array([np.sin(state[0] + state[1]), -np.cos(state[0] + state[1])])
    _draw.segment(frame, (0, origin[1] + scale), (size, origin[1] + scale), 1.0, (0, 0, 0))  # the bar
    for a, b in ((origin, p1), (p1, p2)):
        _draw.segment(frame, a, b, 0.1 * scale, (0, 204, 204))
        _draw.disk(frame, a, 0.1 * scale, (204, 204, 0))
    return frame
