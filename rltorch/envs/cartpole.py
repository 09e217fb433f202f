"""CartPole-v1 as a batched gymnasium ``VectorEnv`` on torch tensors (CPU or CUDA).

Dynamics, termination, rewards, truncation and the autoreset rules are
gymnasium's (``CartPoleVectorEnv`` + ``TimeLimit``), computed in float64 by one
kernel call per step; observations come back as float32 tensors on the env's
device, so a policy on the same device never copies through the host.

Initial states come from a counter-based generator keyed by (seed, env index,
episode number): the same seed gives the same trajectories on CPU and CUDA and
for any thread count. It is not NumPy's PCG64 stream, so seeds do not give
gymnasium's numbers; use :meth:`CartPoleVecEnv.set_state` to start from
given states.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from rltorch._checks import storage_device
from rltorch.ops import cartpole as cp_ops
from rltorch.ops._dispatch import snapshot

__all__ = ["CartPoleVecEnv", "CartPoleVecEnvNumpy"]

_THETA_THRESHOLD = 12 * 2 * 3.141592653589793 / 360
_X_THRESHOLD = 2.4
# gymnasium's TimeLimit compares an int counter; "no limit" is the int32 max here.
_NO_LIMIT = 2**31 - 1

_MODE_NAMES = {
    "next_step": AutoresetMode.NEXT_STEP,
    "same_step": AutoresetMode.SAME_STEP,
    "disabled": AutoresetMode.DISABLED,
}
_MODE_CODES = {AutoresetMode.NEXT_STEP: 0, AutoresetMode.SAME_STEP: 1, AutoresetMode.DISABLED: 2}


def _parse_mode(mode: AutoresetMode | str) -> AutoresetMode:
    if isinstance(mode, AutoresetMode):
        return mode
    if isinstance(mode, str):
        key = mode.lower().replace("-", "_")
        if key in _MODE_NAMES:
            return _MODE_NAMES[key]
        for member in AutoresetMode:  # gymnasium's values: "NextStep", ...
            if mode == member.value:
                return member
    raise ValueError(
        f"autoreset_mode must be a gymnasium.vector.AutoresetMode or one of {sorted(_MODE_NAMES)}, got {mode!r}"
    )


def _as_signed64(seed: int) -> int:
    seed = int(seed) & (2**64 - 1)
    return seed - 2**64 if seed >= 2**63 else seed


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_seed(seed) -> int | None:
    """``seed``: None or an integer in [0, 2**64) (gymnasium's seeding takes no negative seed;
    the reset generator keys on 64 bits, so larger seeds would alias smaller ones)."""
    if seed is None:
        return None
    if not _is_int(seed):
        raise TypeError(f"CartPoleVecEnv: `seed` must be None or an integer, got {type(seed).__name__} {seed!r}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"CartPoleVecEnv: `seed` must lie in [0, 2**64), got {seed}")
    return int(seed)


def _as_bound(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"CartPoleVecEnv: reset option `{name}` must be a real number, got "
                        f"{type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"CartPoleVecEnv: reset option `{name}` must be finite, got {value}")
    return value


def _check_bounds(low: float, high: float) -> None:
    if low > high:
        raise ValueError(f"CartPoleVecEnv: reset option `low` ({low}) must not exceed `high` ({high})")
    if not np.isfinite(high - low):  # initial states are low + (high - low) * u
        raise ValueError(f"CartPoleVecEnv: reset options `low` ({low}) and `high` ({high}) are too far apart: "
                         "high - low overflows")


class CartPoleVecEnv(VectorEnv):
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
        if not _is_int(num_envs) or not 1 <= num_envs <= _NO_LIMIT:
            raise ValueError(f"num_envs must be an integer in [1, 2**31 - 1], got {num_envs!r}")
        if max_episode_steps is None:
            max_episode_steps = _NO_LIMIT
        if not _is_int(max_episode_steps) or not 1 <= max_episode_steps <= _NO_LIMIT:
            raise ValueError(f"max_episode_steps must be an integer in [1, 2**31 - 1] or None, got {max_episode_steps!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        if not isinstance(sutton_barto_reward, (bool, np.bool_)):
            raise TypeError(f"sutton_barto_reward must be a bool, got {type(sutton_barto_reward).__name__}")
        seed = _check_seed(seed)
        self.num_envs = int(num_envs)
        self.device = storage_device("CartPoleVecEnv", device, "an env needs real memory to step")
        self.max_episode_steps = int(max_episode_steps)
        self.autoreset_mode = _parse_mode(autoreset_mode)
        self._mode_code = _MODE_CODES[self.autoreset_mode]
        self.sutton_barto_reward = bool(sutton_barto_reward)
        self.render_mode = render_mode
        self.episode_statistics = bool(episode_statistics)
        self.metadata = dict(self.metadata, autoreset_mode=self.autoreset_mode)

        high = np.array([_X_THRESHOLD * 2, np.inf, _THETA_THRESHOLD * 2, np.inf], dtype=np.float32)
        self.single_observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = spaces.Discrete(2)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        self.state, self.steps, self.prev_done, self.episode = cp_ops.new_cartpole_state(self.num_envs, self.device)
        self.low, self.high = -0.05, 0.05
        self._initial_seed = seed
        self._seed: int | None = None
        self._needs_reset = True

    # ---- gymnasium API ----

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Resets every env, or those in ``options["reset_mask"]``; ``options["low"/"high"]``
        set the bounds of the uniform initial state (default -0.05, 0.05) for this and later resets."""
        # Every argument is checked before anything (seed, counters, bounds) changes.
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"CartPoleVecEnv.reset: `options` must be a dict or None, got {type(options).__name__}")
        options = dict(options or {})
        low = _as_bound("low", options.pop("low", -0.05))
        high = _as_bound("high", options.pop("high", 0.05))
        _check_bounds(low, high)
        mask = options.pop("reset_mask", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; expected 'low', 'high', 'reset_mask'")
        if mask is not None:
            mask = self._as_mask(mask)
        seed = _check_seed(seed)
        if seed is None and self._seed is None:
            seed = self._initial_seed
        if seed is not None:
            super().reset(seed=int(seed))  # keeps env.np_random consistent with the seed
            self._seed = _as_signed64(seed)
            if mask is None:
                self.episode.zero_()
            else:
                self.episode.masked_fill_(mask, 0)
        elif self._seed is None:
            self._seed = _as_signed64(int(np.random.SeedSequence().entropy))
        self.low, self.high = low, high
        obs = cp_ops.cartpole_reset_(self.state, self.steps, self.prev_done, self.episode, mask, self._seed, low, high)
        if mask is None:
            self._needs_reset = False
        return obs, {}

    def step(
        self, actions: torch.Tensor | np.ndarray | list
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError(
                "CartPoleVecEnv: call reset() before step() (also needed after a step that raised an error)"
            )
        actions = self._as_actions(actions)
        # A bad action value, or stepping an ended env with autoreset disabled, is
        # rejected by the op before any env moves: the env stays usable as it was.
        obs, reward, terminated, truncated, done, ep_return, ep_length, final_obs = cp_ops.cartpole_step_(
            self.state, self.steps, self.prev_done, self.episode, actions, self._seed, self.low, self.high,
            self.max_episode_steps, self._mode_code, self.sutton_barto_reward,
        )
        info: dict[str, Any] = {}
        if self.episode_statistics:
            info["episode"] = {"r": ep_return, "l": ep_length}
            info["_episode"] = done
        if self._mode_code == 1:
            info["final_obs"] = final_obs
            info["_final_obs"] = done
            info["final_info"] = {}
            info["_final_info"] = done
        return obs, reward, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        self._needs_reset = True

    # ---- extras ----

    def set_state(
        self,
        state: torch.Tensor | np.ndarray,
        steps: torch.Tensor | np.ndarray | int | None = 0,
        mask: torch.Tensor | np.ndarray | None = None,
    ) -> torch.Tensor:
        """Loads explicit float64 states ``[N, 4]`` (x, x_dot, theta, theta_dot per env, like
        gymnasium's ``env.unwrapped.state``) into the envs in ``mask`` (all if None), with
        ``steps`` already taken in their episodes (0 by default; ``None`` keeps the counts).
        Clears any pending autoreset of those envs. Returns the float32 obs ``[N, 4]``.

        States must be finite; ``steps`` an integer (or one per env) in
        ``[0, max_episode_steps)``. A rejected call changes nothing."""
        state = self._as_states(state)
        m = torch.ones(self.num_envs, dtype=torch.bool, device=self.device) if mask is None else self._as_mask(mask)
        steps_t = None if steps is None else self._as_steps(steps)
        self.state.copy_(torch.where(m, state.t(), self.state))
        if steps_t is not None:
            self.steps.copy_(torch.where(m, steps_t, self.steps))
        self.prev_done.masked_fill_(m, False)
        if self._seed is None:
            self._seed = _as_signed64(
                self._initial_seed if self._initial_seed is not None else int(np.random.SeedSequence().entropy)
            )
        if mask is None:
            self._needs_reset = False
        return self.state.t().to(torch.float32)

    def state_dict(self) -> dict[str, Any]:
        """Everything that decides future steps (state, step counts, pending resets,
        episode numbers, the reset generator's seed and bounds), for checkpoints:
        an env restored with :meth:`load_state_dict` continues bit for bit."""
        return {
            "num_envs": self.num_envs,
            # snapshot, not clone: a copy read between two steps in one compiled graph
            # must keep its value under inductor (docs/compile.md).
            "state": snapshot(self.state), "steps": snapshot(self.steps),
            "prev_done": snapshot(self.prev_done), "episode": snapshot(self.episode),
            "seed": self._seed, "low": self.low, "high": self.high, "needs_reset": self._needs_reset,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`. Every entry (keys, types, dtypes, shapes, value ranges)
        is checked before anything is written: a rejected dict leaves the env as it was."""
        if not isinstance(state, Mapping):
            raise TypeError(f"CartPoleVecEnv.load_state_dict: expected a dict, got {type(state).__name__}")
        expected = {"num_envs", "state", "steps", "prev_done", "episode", "seed", "low", "high", "needs_reset"}
        if set(state) != expected:
            raise ValueError(f"CartPoleVecEnv.load_state_dict: missing keys {sorted(expected - set(state))}, "
                             f"unexpected keys {sorted(map(str, set(state) - expected))}")
        num_envs = state["num_envs"]
        if not _is_int(num_envs) or num_envs != self.num_envs:
            raise ValueError(f"CartPoleVecEnv.load_state_dict: state_dict holds {num_envs!r} envs, "
                             f"this env has {self.num_envs}")
        n = self.num_envs
        tensors = {}
        for name, dtype, shape in (("state", torch.float64, (4, n)), ("steps", torch.int32, (n,)),
                                   ("prev_done", torch.bool, (n,)), ("episode", torch.int64, (n,))):
            value = state[name]
            if not isinstance(value, torch.Tensor) or value.device.type == "meta":
                raise TypeError(f"CartPoleVecEnv.load_state_dict: `{name}` must be a tensor with data, "
                                f"got {type(value).__name__}")
            if value.dtype != dtype or tuple(value.shape) != shape:
                raise ValueError(f"CartPoleVecEnv.load_state_dict: `{name}` must be {dtype} of shape "
                                 f"{shape}, got {value.dtype} of shape {tuple(value.shape)}")
            tensors[name] = value.to(self.device)
        steps = tensors["steps"]
        if bool(((steps < 0) | (steps > self.max_episode_steps)).any()):
            raise ValueError(f"CartPoleVecEnv.load_state_dict: `steps` must lie in [0, max_episode_steps="
                             f"{self.max_episode_steps}]")
        if bool((tensors["episode"] < 0).any()):
            raise ValueError("CartPoleVecEnv.load_state_dict: `episode` counts must be >= 0")
        seed = state["seed"]
        if seed is not None and (not _is_int(seed) or not -(2**63) <= seed < 2**63):
            raise ValueError(f"CartPoleVecEnv.load_state_dict: `seed` must be None or an int64, got {seed!r}")
        low, high = _as_bound("low", state["low"]), _as_bound("high", state["high"])
        _check_bounds(low, high)
        if not isinstance(state["needs_reset"], (bool, np.bool_)):
            raise TypeError("CartPoleVecEnv.load_state_dict: `needs_reset` must be a bool, "
                            f"got {type(state['needs_reset']).__name__}")
        for name, value in tensors.items():
            getattr(self, name).copy_(value)
        self._seed = None if seed is None else int(seed)
        self.low, self.high = low, high
        self._needs_reset = bool(state["needs_reset"])

    def numpy(self) -> "CartPoleVecEnvNumpy":
        """This env behind gymnasium's NumPy API (arrays in, arrays out)."""
        return CartPoleVecEnvNumpy(self)

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return _draw_cartpole(self.state[:, 0].double().cpu().numpy())

    def _as_tensor(self, value, name: str) -> torch.Tensor:
        """``value`` as a tensor on the env's device (copied from another device if needed)."""
        if isinstance(value, torch.Tensor):
            if value.device.type == "meta":
                raise ValueError(f"`{name}` is a meta tensor (it holds no data)")
            return value.to(self.device)
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"`{name}` must be an array or tensor, got {type(value).__name__} ({exc})") from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must be a numeric or bool array, got an array of dtype {arr.dtype}")
        return torch.from_numpy(np.asarray(arr, order="C")).to(self.device)  # keeps 0-d arrays 0-d

    def _as_mask(self, mask) -> torch.Tensor:
        mask = self._as_tensor(mask, "reset_mask")
        if mask.dtype != torch.bool or mask.shape != (self.num_envs,):
            raise ValueError(f"reset_mask must be a bool array of shape ({self.num_envs},), got {mask.dtype} {tuple(mask.shape)}")
        return mask

    def _as_states(self, state) -> torch.Tensor:
        state = self._as_tensor(state, "state")
        if state.dtype == torch.bool or state.dtype.is_complex:
            raise TypeError(f"`state` must hold real numbers, got {state.dtype}")
        if state.shape != (self.num_envs, 4):
            raise ValueError(f"state must have shape ({self.num_envs}, 4), got {tuple(state.shape)}")
        state = state.to(torch.float64)
        if not bool(torch.isfinite(state).all()):
            raise ValueError("`state` must be finite (NaN/inf states cannot be stepped)")
        return state

    def _as_steps(self, steps) -> torch.Tensor:
        if isinstance(steps, (bool, np.bool_)):
            raise TypeError("`steps` must be an integer or an integer array, got bool")
        steps = self._as_tensor(steps, "steps")
        if steps.dtype == torch.bool or steps.dtype.is_floating_point or steps.dtype.is_complex:
            raise TypeError(f"`steps` must be an integer or an integer array, got {steps.dtype}")
        if steps.shape not in ((), (self.num_envs,)):
            raise ValueError(f"`steps` must be a scalar or have shape ({self.num_envs},), got {tuple(steps.shape)}")
        # The counter is int32 and truncation fires at max_episode_steps: outside this
        # range it would either never fire or wrap.
        if bool(((steps < 0) | (steps >= self.max_episode_steps)).any()):
            raise ValueError(f"`steps` must lie in [0, max_episode_steps) = [0, {self.max_episode_steps}), "
                             f"got {steps.tolist()}")
        return steps.to(torch.int32).expand(self.num_envs)

    def _as_actions(self, actions) -> torch.Tensor:
        if not isinstance(actions, torch.Tensor):
            try:
                arr = np.asarray(actions)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"`actions` must be an integer array or tensor ({exc})") from None
            if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"`actions` must hold integers 0 or 1, got an array of dtype {arr.dtype}")
            actions = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
        elif actions.device != self.device:
            raise ValueError(f"`actions` is on {actions.device} but the env is on {self.device}; move it there")
        if actions.dtype == torch.bool or actions.dtype.is_floating_point or actions.dtype.is_complex:
            raise TypeError(f"`actions` must be an integer tensor holding 0 or 1, got {actions.dtype}")
        if actions.shape != (self.num_envs,):
            raise ValueError(f"`actions` must have shape ({self.num_envs},), got {tuple(actions.shape)}")
        return actions


def _to_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.cpu().numpy()
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    return value


class CartPoleVecEnvNumpy(VectorWrapper):
    """A :class:`CartPoleVecEnv` behind gymnasium's NumPy API: actions are array-likes,
    results are NumPy arrays (obs float32, reward float32, flags bool, info dict of arrays).

    In SAME_STEP mode the final observations come as gymnasium's ``SyncVectorEnv`` gives
    them: only on calls where an episode ended, ``info["final_obs"]`` is an object array
    holding each finished env's float32 obs (``None`` elsewhere), with bool masks
    ``info["_final_obs"]`` / ``info["_final_info"]`` and ``info["final_info"] = {}``.
    The attributes gymnasium's wrappers and TorchRL's ``GymWrapper`` read (spaces,
    ``num_envs``, ``metadata``, ``render_mode``, ``autoreset_mode``, ...) are the env's.
    """

    def __init__(self, env: CartPoleVecEnv):
        super().__init__(env)

    @property
    def autoreset_mode(self) -> AutoresetMode:
        return self.env.autoreset_mode

    @property
    def max_episode_steps(self) -> int:
        return self.env.max_episode_steps

    @property
    def sutton_barto_reward(self) -> bool:
        return self.env.sutton_barto_reward

    @property
    def episode_statistics(self) -> bool:
        return self.env.episode_statistics

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return obs.cpu().numpy(), _to_numpy(info)

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(np.asarray(actions))
        info = _to_numpy(info)
        if "final_obs" in info:
            done = info["_final_obs"]
            if done.any():
                final_obs = np.empty(self.num_envs, dtype=object)  # None where no episode ended
                for i in np.flatnonzero(done):
                    final_obs[i] = info["final_obs"][i]
                info["final_obs"] = final_obs
            else:
                for key in ("final_obs", "_final_obs", "final_info", "_final_info"):
                    del info[key]
        return (obs.cpu().numpy(), reward.cpu().numpy(), terminated.cpu().numpy(), truncated.cpu().numpy(), info)

    def set_state(self, state, steps=0, mask=None) -> np.ndarray:
        """:meth:`CartPoleVecEnv.set_state`, returning the float32 obs as a NumPy array."""
        return self.env.set_state(state, steps, mask).cpu().numpy()


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
