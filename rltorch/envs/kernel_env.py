"""What every rltorch vector env shares: a gymnasium ``VectorEnv`` whose step is
one kernel call on env tensors it owns (CPU or CUDA), with gymnasium's three
autoreset modes, seeding, reset options, explicit states, checkpoints and a
NumPy face. :class:`~rltorch.envs.CartPoleVecEnv` and the classic-control envs
(:mod:`rltorch.envs.classic_control`) subclass :class:`KernelVecEnv`.

Initial states come from a counter-based generator keyed by (seed, env index,
episode number): the same seed gives the same trajectories on CPU and CUDA and
for any thread count. It is not NumPy's PCG64 stream, so seeds do not give
gymnasium's numbers; use :meth:`KernelVecEnv.set_state` to start from given
states.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from rltorch._checks import storage_device
from rltorch.ops._dispatch import snapshot

__all__ = ["KernelVecEnv", "KernelVecEnvNumpy", "parse_autoreset_mode"]

# gymnasium's TimeLimit compares an int counter; "no limit" is the int32 max here.
NO_LIMIT = 2**31 - 1

_MODE_NAMES = {
    "next_step": AutoresetMode.NEXT_STEP,
    "same_step": AutoresetMode.SAME_STEP,
    "disabled": AutoresetMode.DISABLED,
}
_MODE_CODES = {AutoresetMode.NEXT_STEP: 0, AutoresetMode.SAME_STEP: 1, AutoresetMode.DISABLED: 2}


def parse_autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
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


def as_signed64(seed: int) -> int:
    seed = int(seed) & (2**64 - 1)
    return seed - 2**64 if seed >= 2**63 else seed


def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class _BatchedSpace:
    """A vector env's batched space, built from its single space on first read (building the two is half of
    constructing an env, about 0.1 ms, which an evaluation that narrows its env as agents finish pays many
    times and never reads them); assigning one replaces it."""

    def __init__(self, single: str):
        self.single = single

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, env, owner: type | None = None):
        if env is None:
            return self
        space = env.__dict__.get(self.slot)
        if space is None:
            space = env.__dict__[self.slot] = batch_space(getattr(env, self.single), env.num_envs)
        return space

    def __set__(self, env, space: spaces.Space) -> None:
        env.__dict__[self.slot] = space


class KernelVecEnv(VectorEnv):
    """``num_envs`` envs stepped together on ``device`` by one kernel call per step.

    A subclass names its kernel ops and facts (the class attributes below), builds its
    spaces in :meth:`_spaces` and calls :meth:`_reset_kernel` / :meth:`_step_kernel`.
    The env tensors (``state`` float64 ``[D, N]`` and the per-env counters) are
    attributes of the same names.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 30,
                                "autoreset_mode": AutoresetMode.NEXT_STEP}
    #: Names of the state's rows (the columns of :meth:`set_state`'s ``[N, D]`` states).
    state_rows: ClassVar[tuple[str, ...]] = ()
    #: The two reset options (and ``state_dict`` keys) that bound the initial states, and their defaults.
    bound_names: ClassVar[tuple[str, str]] = ("low", "high")
    default_bounds: ClassVar[tuple[float, float]] = (0.0, 0.0)
    #: The env tensors besides ``state``: name -> dtype, one entry per env.
    counters: ClassVar[dict[str, torch.dtype]] = {"steps": torch.int32, "prev_done": torch.bool,
                                                  "episode": torch.int64}
    #: Settings the NumPy face (:meth:`numpy`) also shows.
    numpy_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        num_envs: int,
        device: torch.device | str,
        seed: int | None,
        max_episode_steps: int | None,
        autoreset_mode: AutoresetMode | str,
        render_mode: str | None,
        episode_statistics: bool,
    ):
        if not is_int(num_envs) or not 1 <= num_envs <= NO_LIMIT:
            raise ValueError(f"num_envs must be an integer in [1, 2**31 - 1], got {num_envs!r}")
        if max_episode_steps is None:
            max_episode_steps = NO_LIMIT
        if not is_int(max_episode_steps) or not 1 <= max_episode_steps <= NO_LIMIT:
            raise ValueError(
                f"max_episode_steps must be an integer in [1, 2**31 - 1] or None, got {max_episode_steps!r}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        seed = self._check_seed(seed)
        self.num_envs = int(num_envs)
        self.device = storage_device(type(self).__name__, device, "an env needs real memory to step")
        self.max_episode_steps = int(max_episode_steps)
        self.autoreset_mode = parse_autoreset_mode(autoreset_mode)
        self._mode_code = _MODE_CODES[self.autoreset_mode]
        self.render_mode = render_mode
        self.episode_statistics = bool(episode_statistics)
        self.metadata = dict(self.metadata, autoreset_mode=self.autoreset_mode)

        self.single_observation_space, self.single_action_space = self._spaces()
        self._observation_space = self._action_space = None  # batched on first read (_BatchedSpace)
        self.discrete = isinstance(self.single_action_space, spaces.Discrete)

        self.state = torch.zeros((len(self.state_rows), self.num_envs), dtype=torch.float64, device=self.device)
        for name, dtype in self.counters.items():
            setattr(self, name, torch.zeros(self.num_envs, dtype=dtype, device=self.device))
        self.bounds = tuple(self.default_bounds)
        self._initial_seed = seed
        self._seed: int | None = None
        self._needs_reset = True

    observation_space = _BatchedSpace("single_observation_space")
    action_space = _BatchedSpace("single_action_space")

    def take_rows(self, rows: torch.Tensor) -> KernelVecEnv:
        """A new env of this kind holding the envs ``rows`` (int64 indices on any device, in the order given)
        and continuing their episodes bit for bit: the same states, counters, seed, reset bounds and
        settings, with no check repeated (the rows come from an env that already holds valid ones). An
        episode that ends in the new env resets to other initial states than row ``rows[i]`` would here
        (the reset generator keys on the env's position). Its single spaces are this env's objects."""
        if not isinstance(rows, torch.Tensor) or rows.dtype != torch.long or rows.dim() != 1 or rows.numel() == 0:
            raise ValueError(f"{type(self).__name__}.take_rows: `rows` must be a non-empty 1-D int64 tensor, got "
                             f"{rows!r}"[:300])
        rows = rows.to(self.device)
        if bool(((rows < 0) | (rows >= self.num_envs)).any()):
            raise ValueError(f"{type(self).__name__}.take_rows: `rows` must lie in [0, {self.num_envs})")
        part = copy.copy(self)
        part.num_envs = int(rows.numel())
        part.metadata = dict(self.metadata)
        part._observation_space = part._action_space = None
        part.state = self.state.index_select(1, rows)
        for name in self.counters:
            setattr(part, name, getattr(self, name).index_select(0, rows))
        return part

    # ---- what a subclass provides ----

    def _spaces(self) -> tuple[spaces.Space, spaces.Space]:
        """(single observation space, single action space)."""
        raise NotImplementedError

    def _reset_kernel(self, mask: torch.Tensor | None) -> torch.Tensor:
        """The reset op on the env tensors with ``self._seed`` and ``self.bounds``: float32 obs [N, O]."""
        raise NotImplementedError

    def _step_kernel(self, actions: torch.Tensor) -> tuple:
        """The step op: (obs, reward, terminated, truncated, done, episode_return, episode_length, final_obs)."""
        raise NotImplementedError

    def _check_bounds(self, first: float, second: float) -> None:
        """Rejects reset bounds that give no finite initial state (low <= high, finite width)."""
        low_name, high_name = self.bound_names
        if first > second:
            raise ValueError(f"{type(self).__name__}: reset option `{low_name}` ({first}) must not exceed "
                             f"`{high_name}` ({second})")
        if not np.isfinite(second - first):  # initial states are low + (high - low) * u
            raise ValueError(f"{type(self).__name__}: reset options `{low_name}` ({first}) and `{high_name}` "
                             f"({second}) are too far apart: high - low overflows")

    def _loaded_states(self, state: torch.Tensor, steps: torch.Tensor | None) -> torch.Tensor:
        """float64 ``[N, D]`` states as the kernel should hold them (a hook for envs whose state
        dtype depends on the step count)."""
        return state

    @property
    def max_episode_return(self) -> float | None:
        """The most one episode can return (an upper bound), or None where unknown."""
        return None

    def draw(self, state: np.ndarray) -> np.ndarray:
        """An RGB frame (uint8 [H, W, 3]) of one env's float64 state (its row of :meth:`set_state`)."""
        raise NotImplementedError

    # ---- gymnasium API ----

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Resets every env, or those in ``options["reset_mask"]``; the two bound options
        (:attr:`bound_names`) set the initial states' range for this and later resets."""
        # Every argument is checked before anything (seed, counters, bounds) changes.
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(
                f"{type(self).__name__}.reset: `options` must be a dict or None, got {type(options).__name__}"
            )
        options = dict(options or {})
        bounds = tuple(self._as_bound(name, options.pop(name, default))
                       for name, default in zip(self.bound_names, self.default_bounds))
        self._check_bounds(*bounds)
        mask = options.pop("reset_mask", None)
        if options:
            expected = ", ".join(repr(name) for name in (*self.bound_names, "reset_mask"))
            raise ValueError(f"unknown reset options {sorted(options)}; expected {expected}")
        if mask is not None:
            mask = self._as_mask(mask)
        seed = self._check_seed(seed)
        if seed is None and self._seed is None:
            seed = self._initial_seed
        if seed is not None:
            super().reset(seed=int(seed))  # keeps env.np_random consistent with the seed
            self._seed = as_signed64(seed)
            if mask is None:
                self.episode.zero_()
            else:
                self.episode.masked_fill_(mask, 0)
        elif self._seed is None:
            self._seed = as_signed64(int(np.random.SeedSequence().entropy))
        self.bounds = bounds
        obs = self._reset_kernel(mask)
        if mask is None:
            self._needs_reset = False
        return obs, {}

    def step(
        self, actions: torch.Tensor | np.ndarray | list
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError(
                f"{type(self).__name__}: call reset() before step() (also needed after a step that raised an error)"
            )
        actions = self._as_actions(actions)
        # A bad action value, or stepping an ended env with autoreset disabled, is
        # rejected by the op before any env moves: the env stays usable as it was.
        obs, reward, terminated, truncated, done, ep_return, ep_length, final_obs = self._step_kernel(actions)
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

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.draw(self.state[:, 0].double().cpu().numpy())

    # ---- extras ----

    def set_state(
        self,
        state: torch.Tensor | np.ndarray,
        steps: torch.Tensor | np.ndarray | int | None = 0,
        mask: torch.Tensor | np.ndarray | None = None,
    ) -> torch.Tensor:
        """Loads explicit float64 states ``[N, D]`` (one row per env, the columns
        :attr:`state_rows`, like gymnasium's ``env.unwrapped.state``) into the envs in ``mask``
        (all if None), with ``steps`` already taken in their episodes (0 by default; ``None``
        keeps the counts). Clears any pending autoreset of those envs (and starts their episode
        return at 0). Returns the float32 obs ``[N, O]``.

        States must be finite; ``steps`` an integer (or one per env) in
        ``[0, max_episode_steps)``. A rejected call changes nothing."""
        state = self._as_states(state)
        m = torch.ones(self.num_envs, dtype=torch.bool, device=self.device) if mask is None else self._as_mask(mask)
        steps_t = None if steps is None else self._as_steps(steps)
        state = self._loaded_states(state, steps_t if steps_t is not None else self.steps)
        self.state.copy_(torch.where(m, state.t(), self.state))
        if steps_t is not None:
            self.steps.copy_(torch.where(m, steps_t, self.steps))
        self.prev_done.masked_fill_(m, False)
        if "returns" in self.counters:
            self.returns.masked_fill_(m, 0.0)
        if self._seed is None:
            self._seed = as_signed64(
                self._initial_seed if self._initial_seed is not None else int(np.random.SeedSequence().entropy)
            )
        if mask is None:
            self._needs_reset = False
        return self._observe()

    def _observe(self) -> torch.Tensor:
        """float32 obs [N, O] of the current states (a reset op with an all-False mask draws nothing)."""
        return self._reset_kernel(torch.zeros(self.num_envs, dtype=torch.bool, device=self.device))

    def state_dict(self) -> dict[str, Any]:
        """Everything that decides future steps (state, step counts, pending resets,
        episode numbers, the reset generator's seed and bounds), for checkpoints:
        an env restored with :meth:`load_state_dict` continues bit for bit."""
        # snapshot, not clone: a copy read between two steps in one compiled graph
        # must keep its value under inductor (docs/compile.md).
        tensors = {name: snapshot(getattr(self, name)) for name in ("state", *self.counters)}
        return {"num_envs": self.num_envs, **tensors, "seed": self._seed,
                **dict(zip(self.bound_names, self.bounds)), "needs_reset": self._needs_reset}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`. Every entry (keys, types, dtypes, shapes, value ranges)
        is checked before anything is written: a rejected dict leaves the env as it was."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(f"{name}: expected a dict, got {type(state).__name__}")
        expected = {"num_envs", "state", *self.counters, "seed", *self.bound_names, "needs_reset"}
        if set(state) != expected:
            raise ValueError(f"{name}: missing keys {sorted(expected - set(state))}, "
                             f"unexpected keys {sorted(map(str, set(state) - expected))}")
        num_envs = state["num_envs"]
        if not is_int(num_envs) or num_envs != self.num_envs:
            raise ValueError(f"{name}: state_dict holds {num_envs!r} envs, this env has {self.num_envs}")
        n = self.num_envs
        tensors = {}
        shapes = {"state": (torch.float64, (len(self.state_rows), n))}
        shapes.update({key: (dtype, (n,)) for key, dtype in self.counters.items()})
        for key, (dtype, shape) in shapes.items():
            value = state[key]
            if not isinstance(value, torch.Tensor) or value.device.type == "meta":
                raise TypeError(f"{name}: `{key}` must be a tensor with data, got {type(value).__name__}")
            if value.dtype != dtype or tuple(value.shape) != shape:
                raise ValueError(f"{name}: `{key}` must be {dtype} of shape "
                                 f"{shape}, got {value.dtype} of shape {tuple(value.shape)}")
            tensors[key] = value.to(self.device)
        steps = tensors["steps"]
        if bool(((steps < 0) | (steps > self.max_episode_steps)).any()):
            raise ValueError(f"{name}: `steps` must lie in [0, max_episode_steps={self.max_episode_steps}]")
        if bool((tensors["episode"] < 0).any()):
            raise ValueError(f"{name}: `episode` counts must be >= 0")
        if "returns" in tensors and not bool(torch.isfinite(tensors["returns"]).all()):
            raise ValueError(f"{name}: `returns` must be finite")
        seed = state["seed"]
        if seed is not None and (not is_int(seed) or not -(2**63) <= seed < 2**63):
            raise ValueError(f"{name}: `seed` must be None or an int64, got {seed!r}")
        bounds = tuple(self._as_bound(key, state[key]) for key in self.bound_names)
        self._check_bounds(*bounds)
        if not isinstance(state["needs_reset"], (bool, np.bool_)):
            raise TypeError(f"{name}: `needs_reset` must be a bool, got {type(state['needs_reset']).__name__}")
        for key, value in tensors.items():
            getattr(self, key).copy_(value)
        self._seed = None if seed is None else int(seed)
        self.bounds = bounds
        self._needs_reset = bool(state["needs_reset"])

    def numpy(self) -> KernelVecEnvNumpy:
        """This env behind gymnasium's NumPy API (arrays in, arrays out)."""
        return KernelVecEnvNumpy(self)

    # ---- argument conversion ----

    def _check_seed(self, seed) -> int | None:
        """``seed``: None or an integer in [0, 2**64) (gymnasium's seeding takes no negative seed;
        the reset generator keys on 64 bits, so larger seeds would alias smaller ones)."""
        if seed is None:
            return None
        if not is_int(seed):
            raise TypeError(
                f"{type(self).__name__}: `seed` must be None or an integer, got {type(seed).__name__} {seed!r}"
            )
        if not 0 <= int(seed) < 2**64:
            raise ValueError(f"{type(self).__name__}: `seed` must lie in [0, 2**64), got {seed}")
        return int(seed)

    def _as_bound(self, name: str, value) -> float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{type(self).__name__}: reset option `{name}` must be a real number, got "
                            f"{type(value).__name__} {value!r}")
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"{type(self).__name__}: reset option `{name}` must be finite, got {value}")
        return value

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
            raise ValueError(
                f"reset_mask must be a bool array of shape ({self.num_envs},), got {mask.dtype} {tuple(mask.shape)}"
            )
        return mask

    def _as_states(self, state) -> torch.Tensor:
        state = self._as_tensor(state, "state")
        if state.dtype == torch.bool or state.dtype.is_complex:
            raise TypeError(f"`state` must hold real numbers, got {state.dtype}")
        width = len(self.state_rows)
        if state.shape != (self.num_envs, width):
            raise ValueError(f"state must have shape ({self.num_envs}, {width}), got {tuple(state.shape)}")
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
        if self.discrete:
            return self._as_discrete_actions(actions)
        return self._as_box_actions(actions)

    def _action_values(self) -> str:
        """The valid discrete actions, for messages (built only when one is raised: the step
        path stays traceable by torch.compile)."""
        return ", ".join(str(v) for v in range(int(self.single_action_space.n)))

    def _as_discrete_actions(self, actions) -> torch.Tensor:
        if not isinstance(actions, torch.Tensor):
            try:
                arr = np.asarray(actions)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"`actions` must be an integer array or tensor ({exc})") from None
            if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"`actions` must hold integers {self._action_values()}, got an array of dtype "
                                f"{arr.dtype}")
            actions = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
        elif actions.device != self.device:
            raise ValueError(f"`actions` is on {actions.device} but the env is on {self.device}; move it there")
        if actions.dtype == torch.bool or actions.dtype.is_floating_point or actions.dtype.is_complex:
            raise TypeError(f"`actions` must be an integer tensor holding {self._action_values()}, got {actions.dtype}")
        if actions.shape != (self.num_envs,):
            raise ValueError(f"`actions` must have shape ({self.num_envs},), got {tuple(actions.shape)}")
        return actions

    def _as_box_actions(self, actions) -> torch.Tensor:
        """Box(shape=(1,)) actions as the kernel's float32 ``[N, 1]``: ``[N]`` or ``[N, 1]``, any
        real floating dtype (float64 is rounded to float32, the action space's dtype)."""
        if not isinstance(actions, torch.Tensor):
            try:
                arr = np.asarray(actions)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"`actions` must be a float array or tensor ({exc})") from None
            if not np.issubdtype(arr.dtype, np.floating):
                raise TypeError(f"`actions` must hold real numbers (float), got an array of dtype {arr.dtype}")
            actions = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
        elif actions.device != self.device:
            raise ValueError(f"`actions` is on {actions.device} but the env is on {self.device}; move it there")
        if not actions.dtype.is_floating_point:
            raise TypeError(f"`actions` must be a floating-point tensor, got {actions.dtype}")
        if actions.shape not in ((self.num_envs,), (self.num_envs, 1)):
            raise ValueError(f"`actions` must have shape ({self.num_envs}, 1) or ({self.num_envs},), "
                             f"got {tuple(actions.shape)}")
        return actions.reshape(self.num_envs, 1).to(torch.float32)


def _to_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.cpu().numpy()
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    return value


class KernelVecEnvNumpy(VectorWrapper):
    """A :class:`KernelVecEnv` behind gymnasium's NumPy API: actions are array-likes,
    results are NumPy arrays (obs float32, reward float32, flags bool, info dict of arrays).

    In SAME_STEP mode the final observations come as gymnasium's ``SyncVectorEnv`` gives
    them: only on calls where an episode ended, ``info["final_obs"]`` is an object array
    holding each finished env's float32 obs (``None`` elsewhere), with bool masks
    ``info["_final_obs"]`` / ``info["_final_info"]`` and ``info["final_info"] = {}``.
    The attributes gymnasium's wrappers and TorchRL's ``GymWrapper`` read (spaces,
    ``num_envs``, ``metadata``, ``render_mode``, ``autoreset_mode``, ...) are the env's.
    """

    def __init__(self, env: KernelVecEnv):
        super().__init__(env)

    @property
    def autoreset_mode(self) -> AutoresetMode:
        return self.env.autoreset_mode

    @property
    def max_episode_steps(self) -> int:
        return self.env.max_episode_steps

    @property
    def episode_statistics(self) -> bool:
        return self.env.episode_statistics

    def __getattr__(self, name: str):
        # The env's own settings (sutton_barto_reward, goal_velocity, g, ...), and nothing else.
        if name != "env" and name in type(self.env).numpy_attributes:
            return getattr(self.env, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

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
        """:meth:`KernelVecEnv.set_state`, returning the float32 obs as a NumPy array."""
        return self.env.set_state(state, steps, mask).cpu().numpy()
