"""CartPole-v1 as a batched gymnasium ``VectorEnv`` on torch tensors (CPU or CUDA).

Dynamics, termination, rewards, truncation and the autoreset rules are
gymnasium's (``CartPoleVectorEnv`` + ``TimeLimit``), computed in float64 by one
kernel call per step; observations come back as float32 tensors on the env's
device, so a policy on the same device never copies through the host.
Seeding, reset options, explicit states and checkpoints are every rltorch env's
(:mod:`rltorch.envs.kernel_env`).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from rltorch.envs.kernel_env import KernelVecEnv, KernelVecEnvNumpy
from rltorch.ops import cartpole as cp_ops

__all__ = ["CartPoleVecEnv", "CartPoleVecEnvNumpy"]

_THETA_THRESHOLD = 12 * 2 * 3.141592653589793 / 360
_X_THRESHOLD = 2.4


class CartPoleVecEnv(KernelVecEnv):
    """``num_envs`` CartPole-v1 envs stepped together on ``device``.

    Args:
        num_envs: number of envs (>= 1).
        device: ``"cpu"``, ``"cuda"`` or a ``torch.device``; all tensors live there.
        seed: seed of the first :meth:`reset` when that call passes none.
        max_episode_steps: truncate on this step (gymnasium's TimeLimit); ``None`` for never.
        autoreset_mode: ``AutoresetMode`` or ``"next_step"`` (default, gymnasium's rule: the call
            after an episode ends resets that env, returns reward 0 and both flags False and
            ignores its action), ``"same_step"`` (reset in the same call; the finished episode's
            last obs is ``info["final_obs"]`` with mask ``info["_final_obs"]``) or ``"disabled"``
            (reset envs yourself with ``reset(options={"reset_mask": mask})``; stepping an env
            that has ended is an error).
        sutton_barto_reward: reward 0 per step and -1 on termination instead of 1 per step.
        render_mode: ``None`` or ``"rgb_array"`` (env 0, drawn with NumPy).
        episode_statistics: also report finished episodes' returns and lengths in ``info``
            (below). Off by default, so ``info`` is what gymnasium's ``CartPoleVectorEnv``
            returns and gymnasium's own ``RecordEpisodeStatistics`` wrapper (which refuses
            an ``info`` that already holds ``"episode"``) can be stacked on top.

    ``step`` returns ``(obs float32 [N, 4], reward float32 [N], terminated bool [N],
    truncated bool [N], info)``, all on ``device``. With ``episode_statistics=True``,
    ``info["episode"] = {"r": float32 [N], "l": int32 [N]}`` holds the return and length of
    episodes that ended on this call, with mask ``info["_episode"]`` (the layout gymnasium's
    RecordEpisodeStatistics writes, computed by the kernel at no extra cost). In SAME_STEP
    mode ``info`` also holds ``final_obs`` (float32 [N, 4], zeros where no episode ended),
    ``_final_obs``, ``final_info`` (``{}``, as CartPole's step info is empty) and
    ``_final_info``; the NumPy face (:meth:`numpy`) gives ``final_obs`` as gymnasium's
    ``SyncVectorEnv`` does.

    Bad arguments raise an error naming them before anything changes: a rejected ``step``
    (an action other than 0/1, or an ended env with autoreset disabled), ``reset``,
    ``set_state`` or ``load_state_dict`` leaves the env exactly as it was, usable at once.
    Actions may have any integer dtype; seeds are integers in ``[0, 2**64)``. On CUDA the
    bad values of ``step`` cannot raise without a host sync per step: the kernel records
    them on the device, no env moves, and :func:`rltorch.ops.check_device_errors` raises
    the CPU's error (call it where the loop syncs anyway, e.g. at logging).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50, "autoreset_mode": AutoresetMode.NEXT_STEP}
    state_rows = ("x", "x_dot", "theta", "theta_dot")
    default_bounds = (-0.05, 0.05)
    numpy_attributes = ("sutton_barto_reward",)

    def __init__(
        self,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        max_episode_steps: int | None = 500,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        sutton_barto_reward: bool = False,
        render_mode: str | None = None,
        episode_statistics: bool = False,
    ):
        if not isinstance(sutton_barto_reward, (bool, np.bool_)):
            raise TypeError(f"sutton_barto_reward must be a bool, got {type(sutton_barto_reward).__name__}")
        self.sutton_barto_reward = bool(sutton_barto_reward)
        super().__init__(num_envs, device, seed, max_episode_steps, autoreset_mode, render_mode, episode_statistics)

    def _spaces(self):
        high = np.array([_X_THRESHOLD * 2, np.inf, _THETA_THRESHOLD * 2, np.inf], dtype=np.float32)
        return spaces.Box(-high, high, dtype=np.float32), spaces.Discrete(2)

    @property
    def low(self) -> float:
        return self.bounds[0]

    @property
    def high(self) -> float:
        return self.bounds[1]

    def _reset_kernel(self, mask):
        return cp_ops.cartpole_reset_(self.state, self.steps, self.prev_done, self.episode, mask, self._seed,
                                      *self.bounds)

    def _step_kernel(self, actions):
        return cp_ops.cartpole_step_(self.state, self.steps, self.prev_done, self.episode, actions, self._seed,
                                     *self.bounds, self.max_episode_steps, self._mode_code, self.sutton_barto_reward)

    def _observe(self) -> torch.Tensor:
        return self.state.t().to(torch.float32)

    @property
    def max_episode_return(self) -> float:
        """1 per step up to the time limit, or 0 with the Sutton-Barto reward."""
        return 0.0 if self.sutton_barto_reward else float(self.max_episode_steps)

    def draw(self, state: np.ndarray) -> np.ndarray:
        return _draw_cartpole(state)

    def numpy(self) -> CartPoleVecEnvNumpy:
        """This env behind gymnasium's NumPy API (arrays in, arrays out)."""
        return CartPoleVecEnvNumpy(self)


class CartPoleVecEnvNumpy(KernelVecEnvNumpy):
    """A :class:`CartPoleVecEnv` behind gymnasium's NumPy API (:class:`~rltorch.envs.kernel_env.KernelVecEnvNumpy`)."""


def _draw_cartpole(state: np.ndarray) -> np.ndarray:
    """A 400x600 RGB frame of one cart-pole, gymnasium's layout, drawn with NumPy."""
    width, height = 600, 400
    scale = width / (_X_THRESHOLD * 2)
    frame = np.full((height, width, 3), 255, dtype=np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    ys = height - 1 - ys  # world y points up; image row 0 is the top
    cart_x = state[0] * scale + width / 2.0
    cart_y = 100.0
    # Track line, cart (50x30), pole (10 wide, 2 * length * scale long) and axle.
    frame[ys == int(cart_y)] = (0, 0, 0)
    cart = (np.abs(xs - cart_x) <= 25) & (np.abs(ys - cart_y) <= 15)
    frame[cart] = (0, 0, 0)
    axle_y = cart_y + 30 / 4.0
    pole_len = scale * 1.0
    dx, dy = xs - cart_x, ys - axle_y
    along = dx * np.sin(state[2]) + dy * np.cos(state[2])
    across = dx * np.cos(state[2]) - dy * np.sin(state[2])
    pole = (along >= -5) & (along <= pole_len - 5) & (np.abs(across) <= 5)
    frame[pole] = (202, 152, 101)
    frame[dx * dx + dy * dy <= 25] = (129, 132, 203)
    return frame
