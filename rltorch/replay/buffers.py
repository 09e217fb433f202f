"""Uniform and prioritized replay buffers.

Transitions live in preallocated tensors on the buffer's device: ``obs``,
``action``, ``reward``, ``next_obs``, ``terminated`` and ``discount`` (the
factor to apply to the bootstrap value: ``gamma ** k`` for a transition that
summed k rewards). Every stored transition also gets a global id (the count
of transitions added before it); ``sample`` returns these ids as ``index`` and
``update_priorities`` takes them back, so a priority update that arrives after
its slot was overwritten by a newer transition is recognised as stale and
dropped instead of landing on the newcomer.

``add``, ``sample`` and ``update_priorities`` do not synchronise with the host
for CUDA buffers (sizes are host-side counters; randomness comes from the
buffer's own ``torch.Generator`` on its device), except the optional priority
validation (``validate=True``, one sync per ``update_priorities`` on CUDA) and
the n-step writer, whose output size depends on episode ends.

n-step transitions (``n_step > 1``) come from :meth:`add_vector_step`, which
keeps the last n steps per environment and uses
:func:`rltorch.ops.nstep_returns`; transitions never cross an episode end.
It expects gymnasium SAME_STEP semantics: ``next_obs`` holds the true final
observation of a done environment. With gymnasium's default NEXT_STEP
autoreset the step after a done is a reset row (reward 0, the action ignored):
drop those rows before calling (e.g. pass only the environments whose
previous step was not done) and pass the final observation of the done step
as its ``next_obs``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from rltorch._checks import integer, storage_device
from rltorch.ops.returns import nstep_returns
from rltorch.ops._dispatch import pick
from rltorch.ops.sumtree import _GATHER, _PER_UPDATE, _SAMPLE, DEFAULT_FANOUT, SumTree, _validate_update

__all__ = ["ReplayBatch", "ReplayBuffer", "PrioritizedReplayBuffer"]

_STORAGE_FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "discount", "ids")
_WINDOW_FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated", "pending")


class ReplayBatch(NamedTuple):
    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    terminated: Tensor
    discount: Tensor
    index: Tensor  # global transition ids, for update_priorities
    weight: Tensor  # importance weights (ones for uniform sampling)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ---- argument checks: each names its argument and runs before any state changes ----

# Transition ids are int64 and grow without bound; far below 2**63 so ids never wrap.
_MAX_COUNT = 2**62
_FLAG_FIELDS = ("terminated", "truncated", "valid")


def _as_int(name: str, value, minimum: int, maximum: int = _MAX_COUNT) -> int:
    return integer("rltorch.replay", name, value, minimum, maximum)


def _as_real(name: str, value, low: float, high: float = math.inf, *, open_low: bool = False) -> float:
    """A finite real number in [low, high] ((low, high] with ``open_low``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"rltorch.replay: `{name}` must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    inside = (value > low if open_low else value >= low) and value <= high
    if not (math.isfinite(value) and inside):
        bounds = f"in {'(' if open_low else '['}{low:g}, {high:g}]" if math.isfinite(high) else (
            f"{'> ' if open_low else '>= '}{low:g}")
        raise ValueError(f"rltorch.replay: `{name}` must be finite and {bounds}, got {value}")
    return value


def _as_seed(seed) -> int | None:
    if seed is None:
        return None
    seed = _as_int("seed", seed, 0, 2**64 - 1)  # torch.Generator.manual_seed takes 64 bits
    return seed


def _as_shape(name: str, shape) -> tuple[int, ...]:
    if isinstance(shape, (int, torch.SymInt)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"rltorch.replay: `{name}` must be a tuple of sizes, got {type(shape).__name__}") from None
    return tuple(_as_int(f"{name}[{i}]", d, 0) for i, d in enumerate(dims))


def _as_dtype(name: str, dtype) -> torch.dtype:
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"rltorch.replay: `{name}` must be a torch.dtype, got {type(dtype).__name__} {dtype!r}")
    return dtype


def _input_tensor(name: str, value) -> Tensor:
    """``value`` as a tensor cut from any autograd graph (storage must never keep one alive)."""
    if isinstance(value, Tensor):
        if value.device.type == "meta":
            raise ValueError(f"rltorch.replay: `{name}` is a meta tensor (it holds no data)")
        return value.detach()
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"rltorch.replay: `{name}` must be a tensor or an array, got {type(value).__name__} "
                        f"({exc})") from None


def _expected_ids(added: int, capacity: int, device) -> Tensor:
    """The id each slot holds after ``added`` transitions (writes are sequential; -1 = never written)."""
    slots = torch.arange(capacity, dtype=torch.int64, device=device)
    latest = slots + (added - 1 - slots).div(capacity, rounding_mode="floor") * capacity
    return torch.where(slots < added, latest, torch.full_like(slots, -1))


def _check_tensor(where: str, name: str, value, dtype: torch.dtype, shape: tuple) -> None:
    if not isinstance(value, Tensor) or value.device.type == "meta":
        raise TypeError(f"rltorch.replay: {where} `{name}` must be a tensor with data, got {type(value).__name__}")
    if value.dtype != dtype or tuple(value.shape) != tuple(shape):
        raise ValueError(f"rltorch.replay: {where} `{name}` must be {dtype} of shape {tuple(shape)}, "
                         f"got {value.dtype} of shape {tuple(value.shape)}")


def _check_keys(where: str, value, expected) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"rltorch.replay: {where} must be a dict, got {type(value).__name__}")
    if set(value) != set(expected):
        raise ValueError(f"rltorch.replay: {where} has missing keys {sorted(set(expected) - set(value))}, "
                         f"unexpected keys {sorted(map(str, set(value) - set(expected)))}")


class ReplayBuffer:
    """Uniform replay over ``capacity`` preallocated transitions.

    Args:
        capacity: number of transitions kept; older ones are overwritten.
        obs_shape, obs_dtype: one observation (``obs`` and ``next_obs``).
        action_shape, action_dtype: one action.
        device: where storage, sampling and randomness live.
        seed: seeds the buffer's generator (``None``: a random seed).
        n_step, gamma: n-step returns for :meth:`add_vector_step`; ``discount``
            of a 1-step transition is ``gamma``.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape=(),
        obs_dtype: torch.dtype = torch.float32,
        action_shape=(),
        action_dtype: torch.dtype = torch.int64,
        device="cpu",
        seed: int | None = None,
        n_step: int = 1,
        gamma: float = 0.99,
    ):
        self.capacity = _as_int("capacity", capacity, 1)
        self.obs_shape = _as_shape("obs_shape", obs_shape)
        self.action_shape = _as_shape("action_shape", action_shape)
        self.obs_dtype, self.action_dtype = _as_dtype("obs_dtype", obs_dtype), _as_dtype("action_dtype", action_dtype)
        self.device = storage_device("rltorch.replay", device, "a buffer must hold data")
        seed = _as_seed(seed)
        self.n_step = _as_int("n_step", n_step, 1)
        self.gamma = _as_real("gamma", gamma, 0.0, 1.0)
        cap, dev = self.capacity, self.device
        try:
            self.obs = torch.zeros((cap, *self.obs_shape), dtype=obs_dtype, device=dev)
            self.next_obs = torch.zeros_like(self.obs)
            self.action = torch.zeros((cap, *self.action_shape), dtype=action_dtype, device=dev)
            self.reward = torch.zeros(cap, dtype=torch.float32, device=dev)
            self.terminated = torch.zeros(cap, dtype=torch.bool, device=dev)
            self.discount = torch.zeros(cap, dtype=torch.float32, device=dev)
            self.ids = torch.full((cap,), -1, dtype=torch.int64, device=dev)
        except (RuntimeError, MemoryError) as exc:
            raise MemoryError(f"rltorch.replay: cannot allocate `capacity`={cap} transitions of obs_shape "
                              f"{self.obs_shape} on {dev}: {exc}") from exc
        self._columns = [self.obs, self.action, self.reward, self.next_obs, self.terminated, self.discount, self.ids]
        # Kernels resolved once: sample/update run every training step.
        self._gather = pick(_GATHER, self.ids)
        self._added = 0  # transitions ever added (host counter: batch sizes are known on the host)
        self.generator = torch.Generator(device=dev)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        self._window: dict | None = None
        self._w_head = 0
        self._w_len = 0

    # ---- writing ----
    def __len__(self) -> int:
        return min(self._added, self.capacity)

    @property
    def added(self) -> int:
        """Transitions ever added: the id the next one gets (``sample`` returns ids as ``index``)."""
        return self._added

    def _as(self, x, dtype, shape, name: str, batch: int | None) -> Tensor:
        t = _input_tensor(name, x)
        if t.dtype.is_complex:
            raise TypeError(f"rltorch.replay: `{name}` must be real, got {t.dtype}")
        # A float cast to integer storage would be truncated silently (0.7 -> 0).
        # Episode flags are exempt: CleanRL-style code stores float 0/1 dones.
        if t.dtype.is_floating_point and not (dtype.is_floating_point or name in _FLAG_FIELDS):
            raise TypeError(f"rltorch.replay: `{name}` is {t.dtype} but the buffer stores {dtype}; "
                            "pass integers (floats would be truncated)")
        if t.dim() != 1 + len(shape) or tuple(t.shape[1:]) != shape or (batch is not None and t.shape[0] != batch):
            dims = ", ".join(map(str, ("B" if batch is None else batch, *shape)))
            raise ValueError(f"rltorch.replay: `{name}` must have shape ({dims}{',' if not shape else ''}), "
                             f"got {tuple(t.shape)}")
        return t.to(device=self.device, dtype=dtype)

    def add(self, obs, action, reward, next_obs, terminated, discount=None) -> None:
        """Appends a batch of B transitions (B may exceed capacity: the last ``capacity`` are kept).

        ``discount`` (``[B]``, default ``gamma``) is the bootstrap factor,
        ``gamma ** k`` for an n-step transition of k rewards.
        """
        obs = self._as(obs, self.obs_dtype, self.obs_shape, "obs", None)
        batch = obs.shape[0]
        action = self._as(action, self.action_dtype, self.action_shape, "action", batch)
        reward = self._as(reward, torch.float32, (), "reward", batch)
        next_obs = self._as(next_obs, self.obs_dtype, self.obs_shape, "next_obs", batch)
        terminated = self._as(terminated, torch.bool, (), "terminated", batch)
        if discount is None:
            discount = torch.full((batch,), self.gamma, dtype=torch.float32, device=self.device)
        else:
            discount = self._as(discount, torch.float32, (), "discount", batch)
        if batch == 0:
            return
        first_id, added = self._added, batch
        if batch > self.capacity:  # only the newest `capacity` survive
            drop = batch - self.capacity
            obs, action, reward, next_obs, terminated, discount = (
                t[drop:] for t in (obs, action, reward, next_obs, terminated, discount)
            )
            first_id += drop
            batch = self.capacity
        ids = torch.arange(first_id, first_id + batch, dtype=torch.int64, device=self.device)
        values = dict(obs=obs, action=action, reward=reward, next_obs=next_obs, terminated=terminated,
                      discount=discount, ids=ids)
        for name, value in values.items():
            # Re-adding rows that are views of this buffer (buf.obs[5:8]) would overlap the
            # slices being written: torch refuses partial overlaps, and the first copy
            # could overwrite rows a later one reads.
            if value.untyped_storage().data_ptr() == getattr(self, name).untyped_storage().data_ptr():
                values[name] = value.clone()
        start = first_id % self.capacity
        # At most two contiguous runs (before and after the wrap): slice copies, no scatter.
        head = min(batch, self.capacity - start)
        for name, value in values.items():
            storage = getattr(self, name)
            storage[start : start + head] = value[:head]
            if head < batch:
                storage[: batch - head] = value[head:]
        self._added += added  # only once every column is written
        self._written(start, batch)

    def _written(self, start: int, count: int) -> None:
        """Hook: slots [start, start + count) (mod capacity) now hold new transitions."""

    def add_vector_step(self, obs, action, reward, next_obs, terminated, truncated, valid=None) -> None:
        """Adds one step of N parallel environments (rows are environments).

        With ``n_step == 1`` this is ``add`` of the N rows. Otherwise the step
        enters a per-environment window of the last n steps, and every
        transition whose n-step return is complete is added: (obs_t, a_t,
        G_t^(k), next_obs_{t+k-1}, terminated, gamma**k) with k = n, or k < n
        when the episode ended (terminated or truncated) within the window.
        See the module docstring for gymnasium autoreset modes.

        ``valid`` (bool ``[N]``, default all) marks the rows that are real
        transitions; the others (gymnasium NEXT_STEP reset rows, whose action
        was ignored) are never stored and never start an n-step window entry.
        """
        obs = self._as(obs, self.obs_dtype, self.obs_shape, "obs", None)
        n_env = obs.shape[0]
        action = self._as(action, self.action_dtype, self.action_shape, "action", n_env)
        reward = self._as(reward, torch.float32, (), "reward", n_env)
        next_obs = self._as(next_obs, self.obs_dtype, self.obs_shape, "next_obs", n_env)
        terminated = self._as(terminated, torch.bool, (), "terminated", n_env)
        truncated = self._as(truncated, torch.bool, (), "truncated", n_env)
        if valid is not None:
            valid = self._as(valid, torch.bool, (), "valid", n_env)
        if self.n_step == 1:
            if valid is not None:
                obs, action, reward, next_obs, terminated = (t[valid] for t in (obs, action, reward, next_obs, terminated))
            self.add(obs, action, reward, next_obs, terminated)
            return
        window = self._window_for(n_env)
        n = self.n_step
        slot = self._w_head
        for name, value in zip(_WINDOW_FIELDS[:-1], (obs, action, reward, next_obs, terminated, truncated)):
            window[name][slot] = value
        # A reset row comes right after its env's done, which flushed every
        # entry before it; not pending, it is skipped by every later window.
        window["pending"][slot] = True if valid is None else valid
        self._w_head = (slot + 1) % n
        self._w_len = min(self._w_len + 1, n)
        length = self._w_len
        order = torch.tensor([(self._w_head - length + j) % n for j in range(length)], device=self.device)
        rew, term, trunc = window["reward"][order], window["terminated"][order], window["truncated"][order]
        pending = window["pending"][order]
        returns, _, last = nstep_returns(rew, term, trunc, n, self.gamma)
        # An entry is complete when its episode ends now, or when it is the
        # oldest of a full window (n rewards summed). Pending entries never
        # straddle a done: the done step flushed every entry before it.
        emit = pending & (term[-1] | trunc[-1]).unsqueeze(0)
        if length == n:
            emit[0] |= pending[0]
        rows, envs = emit.nonzero(as_tuple=True)  # data-dependent size: the one host sync here
        if rows.numel() == 0:
            return
        last_rows = last[rows, envs]
        src = order[rows]
        k = (last_rows - rows + 1).to(torch.float64)
        self.add(
            window["obs"][src, envs],
            window["action"][src, envs],
            returns[rows, envs],
            window["next_obs"][order[last_rows], envs],
            term[last_rows, envs],
            discount=torch.pow(torch.full_like(k, self.gamma), k),
        )
        window["pending"][src, envs] = False

    def _window_for(self, n_env: int) -> dict:
        if self._window is not None:
            if self._window["pending"].shape[1] != n_env:
                raise ValueError(
                    f"rltorch.replay: add_vector_step got {n_env} environments, "
                    f"earlier calls had {self._window['pending'].shape[1]}"
                )
            return self._window
        n, dev = self.n_step, self.device
        self._window = {
            "obs": torch.zeros((n, n_env, *self.obs_shape), dtype=self.obs_dtype, device=dev),
            "action": torch.zeros((n, n_env, *self.action_shape), dtype=self.action_dtype, device=dev),
            "reward": torch.zeros((n, n_env), dtype=torch.float32, device=dev),
            "next_obs": torch.zeros((n, n_env, *self.obs_shape), dtype=self.obs_dtype, device=dev),
            "terminated": torch.zeros((n, n_env), dtype=torch.bool, device=dev),
            "truncated": torch.zeros((n, n_env), dtype=torch.bool, device=dev),
            "pending": torch.zeros((n, n_env), dtype=torch.bool, device=dev),
        }
        return self._window

    # ---- sampling ----
    def _sample_slots(self, batch_size: int) -> tuple[Tensor, Tensor]:
        slots = torch.randint(len(self), (batch_size,), generator=self.generator, device=self.device)
        return slots, torch.ones(batch_size, dtype=torch.float32, device=self.device)

    def sample(self, batch_size: int) -> ReplayBatch:
        """``batch_size`` transitions drawn with replacement, as a :class:`ReplayBatch`."""
        batch_size = _as_int("batch_size", batch_size, 0)
        if self._added == 0:
            raise RuntimeError("rltorch.replay: cannot sample from an empty buffer; add transitions first")
        slots, weight = self._sample_slots(batch_size)
        # One call gathers every column (7 indexing ops cost more than the sampling itself).
        obs, action, reward, next_obs, terminated, discount, ids = self._gather(self._columns, slots)
        return ReplayBatch(obs, action, reward, next_obs, terminated, discount, ids, weight)

    # ---- persistence ----
    def _config(self) -> dict:
        return {
            "type": type(self).__name__, "capacity": self.capacity, "obs_shape": list(self.obs_shape),
            "obs_dtype": _dtype_name(self.obs_dtype), "action_shape": list(self.action_shape),
            "action_dtype": _dtype_name(self.action_dtype), "n_step": self.n_step, "gamma": self.gamma,
        }

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: storage, counters, window, RNG state."""
        state = {
            "config": self._config(),
            "storage": {name: getattr(self, name).clone() for name in _STORAGE_FIELDS},
            "added": self._added,
            "rng_state": self.generator.get_state(),
            "window": None,
        }
        if self._window is not None:
            state["window"] = {
                "tensors": {k: v.clone() for k, v in self._window.items()},
                "head": self._w_head, "length": self._w_len,
            }
        return state

    _STATE_KEYS = ("config", "storage", "added", "rng_state", "window")

    def load_state_dict(self, state: dict) -> None:
        """Restores a :meth:`state_dict`. Everything (keys, config, dtypes, shapes, counters,
        RNG state) is checked before anything is written: a rejected dict changes nothing."""
        checked = self._check_state(state)
        self._load_checked(checked)

    def _check_state(self, state) -> dict:
        _check_keys("state_dict", state, self._STATE_KEYS)
        if state["config"] != self._config():
            raise ValueError(f"rltorch.replay: state is for {state['config']}, this buffer is {self._config()}")
        storage = state["storage"]
        _check_keys("state_dict['storage']", storage, _STORAGE_FIELDS)
        for name in _STORAGE_FIELDS:
            mine = getattr(self, name)
            _check_tensor("storage", name, storage[name], mine.dtype, mine.shape)
        added = _as_int("added", state["added"], 0)
        # Writes are sequential, so the ids are a function of the count: a cheap consistency check.
        if not torch.equal(storage["ids"].to(self.device), _expected_ids(added, self.capacity, self.device)):
            raise ValueError(f"rltorch.replay: storage `ids` do not match `added`={added}")
        rng = state["rng_state"]
        if not isinstance(rng, Tensor) or rng.dtype != torch.uint8 or rng.device.type == "meta":
            raise TypeError(f"rltorch.replay: `rng_state` must be a uint8 tensor, got {type(rng).__name__}")
        try:
            torch.Generator(device=self.device).set_state(rng.cpu())
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ValueError(f"rltorch.replay: `rng_state` is not a {self.device.type} generator state: {exc}") from None
        window = state["window"]
        if window is not None:
            if self.n_step == 1:
                raise ValueError("rltorch.replay: state holds an n-step `window` but this buffer has n_step=1")
            _check_keys("state_dict['window']", window, ("tensors", "head", "length"))
            tensors = window["tensors"]
            _check_keys("state_dict['window']['tensors']", tensors, _WINDOW_FIELDS)
            pending = tensors["pending"]
            n_env = pending.shape[1] if isinstance(pending, Tensor) and pending.dim() == 2 else -1
            if n_env < 0:
                raise ValueError("rltorch.replay: window `pending` must be a [n_step, num_envs] tensor")
            n = self.n_step
            for name, dtype, tail in (("obs", self.obs_dtype, self.obs_shape),
                                      ("action", self.action_dtype, self.action_shape),
                                      ("reward", torch.float32, ()), ("next_obs", self.obs_dtype, self.obs_shape),
                                      ("terminated", torch.bool, ()), ("truncated", torch.bool, ()),
                                      ("pending", torch.bool, ())):
                _check_tensor("window", name, tensors[name], dtype, (n, n_env, *tail))
            length = _as_int("window length", window["length"], 0, n)
            head = _as_int("window head", window["head"], 0, n - 1)
            if length < n and head != length:  # the window fills from slot 0
                raise ValueError(f"rltorch.replay: window head {head} does not match its length {length}")
            window = {"tensors": {k: v.to(self.device) for k, v in tensors.items()}, "head": head, "length": length}
        return {"storage": {k: v.to(self.device) for k, v in storage.items()}, "added": added,
                "rng_state": rng.cpu(), "window": window}

    def _load_checked(self, checked: dict) -> None:
        for name in _STORAGE_FIELDS:
            getattr(self, name).copy_(checked["storage"][name])
        self._added = checked["added"]
        self.generator.set_state(checked["rng_state"])
        window = checked["window"]
        if window is None:
            self._window, self._w_head, self._w_len = None, 0, 0
        else:
            self._window = {k: v.clone() for k, v in window["tensors"].items()}
            self._w_head, self._w_len = window["head"], window["length"]

    def save(self, path) -> None:
        torch.save(self.state_dict(), path)

    def load(self, path) -> None:
        """Restores a :meth:`save`d state into this (identically configured) buffer."""
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacity={self.capacity}, len={len(self)}, device={self.device})"


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016) on an rltorch sum tree.

    A transition's priority is ``(|td| + eps) ** alpha``; new transitions get
    the running maximum of the raw priority ``|td| + eps`` (1.0 before any
    update), transformed by ``alpha`` exactly once. ``sample`` is stratified
    and returns importance weights ``(p_i / p_min) ** -beta`` (max 1), with
    ``beta`` settable at any time (``buffer.beta = 0.7`` for annealing).

    ``update_priorities(index, td_error)`` takes the ``index`` of a sampled
    batch; entries whose slot has since been overwritten are ignored.
    ``validate`` (default True) makes CUDA buffers check the td errors for
    NaN/inf with one host sync per update; CPU buffers always check, for free.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape=(),
        obs_dtype: torch.dtype = torch.float32,
        action_shape=(),
        action_dtype: torch.dtype = torch.int64,
        device="cpu",
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
        seed: int | None = None,
        n_step: int = 1,
        gamma: float = 0.99,
        fanout: int = DEFAULT_FANOUT,
        validate: bool = True,
    ):
        # Checked before any storage exists: alpha/eps = inf (or NaN) used to be accepted
        # and fail only once priorities were written.
        alpha = _as_real("alpha", alpha, 0.0, open_low=True)
        eps = _as_real("eps", eps, 0.0)
        beta = _as_real("beta", beta, 0.0)
        if not isinstance(validate, bool):
            raise TypeError(f"rltorch.replay: `validate` must be a bool, got {type(validate).__name__}")
        super().__init__(capacity, obs_shape, obs_dtype, action_shape, action_dtype, device, seed, n_step, gamma)
        self.alpha, self.eps = alpha, eps
        self.beta = beta
        self.validate = validate
        self.tree = SumTree(self.capacity, self.device, fanout)
        self.max_priority = torch.ones(1, dtype=torch.float64, device=self.device)
        self._slot_range = torch.arange(self.capacity, dtype=torch.int64, device=self.device)
        self._sample_op = pick(_SAMPLE, self.tree.tree)
        self._update_op = pick(_PER_UPDATE, self.tree.tree)

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = _as_real("beta", value, 0.0)

    def _written(self, start: int, count: int) -> None:
        end = start + count
        if end <= self.capacity:
            slots = self._slot_range[start:end]
        else:
            slots = torch.cat([self._slot_range[start:], self._slot_range[: end - self.capacity]])
        self.tree.update(slots, self.max_priority.expand(count), alpha=self.alpha, validate=False)

    def _sample_slots(self, batch_size: int) -> tuple[Tensor, Tensor]:
        tree = self.tree
        if self.device.type == "cpu":
            # Reading a CPU scalar costs no sync. (On CUDA the sum-tree op itself flags a zero total.)
            total = float(tree.tree[0, 0])
            if not total > 0:
                raise RuntimeError(
                    "rltorch.replay: cannot sample: every stored transition has priority 0 (with eps=0, all "
                    "their TD errors were 0); construct the buffer with eps > 0 or update some priorities")
            if not math.isfinite(total):
                raise RuntimeError("rltorch.replay: cannot sample: the total priority overflowed to inf; "
                                   "lower `alpha` or the TD errors")
        return self._sample_op(tree.tree, tree.capacity, tree.fanout, batch_size, self._beta, self.generator)

    def update_priorities(self, index: Tensor, td_error: Tensor) -> None:
        """Sets the priorities of the sampled transitions ``index`` to ``(|td_error| + eps) ** alpha``."""
        index = _input_tensor("index", index).to(self.device)
        td = _input_tensor("td_error", td_error).to(self.device)
        if self.validate and self.device.type != "cpu":  # CPU kernels check for free
            _validate_update(self.capacity, index.remainder(self.capacity), td.abs(), name="td_error",
                             alpha=self.alpha, eps=self.eps)
        self._update_op(self.tree.tree, self.capacity, self.tree.fanout, self.ids, index, td,
                        self.alpha, self.eps, self.max_priority)

    def _config(self) -> dict:
        config = super()._config()
        config.update(alpha=self.alpha, eps=self.eps, fanout=self.tree.fanout)
        return config

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(tree=self.tree.tree.clone(), max_priority=self.max_priority.clone(), beta=self._beta)
        return state

    _STATE_KEYS = ReplayBuffer._STATE_KEYS + ("tree", "max_priority", "beta")

    def _check_state(self, state) -> dict:
        checked = super()._check_state(state)
        tree = state["tree"]
        _check_tensor("state_dict", "tree", tree, torch.float64, self.tree.tree.shape)
        leaves = tree.to(self.device)[0, self.tree._leaf_offset : self.tree._leaf_offset + self.capacity]
        if not bool((torch.isfinite(leaves) & (leaves >= 0)).all()):
            raise ValueError("rltorch.replay: `tree` priorities must be finite and >= 0")
        if bool(((checked["storage"]["ids"] < 0) & (leaves != 0)).any()):
            raise ValueError("rltorch.replay: `tree` gives priority to slots that hold no transition")
        # Inner nodes are a function of the leaves (always recomputed from the
        # children): rebuild them rather than trust them.
        rebuilt = SumTree(self.capacity, self.device, self.tree.fanout)
        rebuilt.update(torch.arange(self.capacity, device=self.device), leaves)
        max_priority = state["max_priority"]
        _check_tensor("state_dict", "max_priority", max_priority, torch.float64, (1,))
        max_priority = max_priority.to(self.device)
        if not bool((torch.isfinite(max_priority) & (max_priority > 0)).all()):
            raise ValueError("rltorch.replay: `max_priority` must be finite and > 0")
        checked.update(tree=rebuilt.tree, max_priority=max_priority, beta=_as_real("beta", state["beta"], 0.0))
        return checked

    def _load_checked(self, checked: dict) -> None:
        super()._load_checked(checked)
        self.tree.tree.copy_(checked["tree"])
        self.max_priority.copy_(checked["max_priority"])
        self._beta = checked["beta"]
