"""Uniform and prioritized replay buffers, one or a batch of them.

Transitions live in preallocated storage on the buffer's device, one packed
row per transition: ``obs``, ``action``, ``reward``, ``next_obs``,
``terminated``, ``discount`` (the factor to apply to the bootstrap value:
``gamma ** k`` for a transition that summed k rewards) and the transition's id
share one row of bytes (64 for CartPole), so sampling a transition costs one
or two cache misses rather than one per field. The fields are still exposed
as tensors (``buffer.obs``, ...): strided views into the rows.

Every stored transition gets a global id (the count of transitions added to
its buffer before it); ``sample`` returns these ids as ``index`` and
``update_priorities`` takes them back, so a priority update that arrives after
its slot was overwritten by a newer transition is recognised as stale and
dropped instead of landing on the newcomer.

``num_buffers=K`` makes K independent buffers (a population of K agents) in
one storage, ``[K, capacity]`` transitions: every argument and result gains a
leading dimension K, and each call serves all K buffers in one kernel call
(prioritized: K sum trees in one ``[K, size]`` tensor). What buffer k stores
and samples depends on its own transitions and priorities only: the buffers
share one generator, whose draws are laid out by buffer and do not depend on
the data.

``add``, ``sample`` and ``update_priorities`` do not synchronise with the host
for CUDA buffers (sizes are host-side counters; randomness comes from the
buffer's own ``torch.Generator`` on its device), except the optional priority
validation (``validate=True``, one sync per ``update_priorities`` on CUDA) and
the n-step writer (and a batch's ``valid`` rows), whose output size depends on
episode ends.

n-step transitions (``n_step > 1``) come from :meth:`add_vector_step`, which
keeps the last n steps per environment and uses
:func:`rltorch.ops.nstep_returns`; transitions never cross an episode end.
It expects gymnasium SAME_STEP semantics: ``next_obs`` holds the true final
observation of a done environment. With gymnasium's default NEXT_STEP
autoreset the step after a done is a reset row (reward 0, the action ignored):
drop those rows before calling (e.g. pass only the environments whose
previous step was not done) and pass the final observation of the done step
as its ``next_obs``.

Checkpoints (``state_dict``, ``save``) hold one tensor per field, whatever the
row layout, so files written before the rows were packed still load.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from rltorch import _io
from rltorch._checks import integer, storage_device
from rltorch.ops import _memory
from rltorch.ops._dispatch import pick
from rltorch.ops.returns import nstep_returns
from rltorch.ops.sumtree import (
    _GATHER,
    _PER_UPDATE,
    _REPLAY_SAMPLE,
    DEFAULT_FANOUT,
    SumTree,
    _validate_update,
    checked_leaves,
    max_raw_priority,
    rebuild,
)

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


def _expected_ids(added: Tensor, capacity: int, device) -> Tensor:
    """The id each slot holds after ``added[k]`` transitions (``[K, capacity]``; writes are sequential;
    -1 = never written)."""
    slots = torch.arange(capacity, dtype=torch.int64, device=device)
    added = added.to(device=device, dtype=torch.int64).unsqueeze(1)
    latest = slots + (added - 1 - slots).div(capacity, rounding_mode="floor") * capacity
    return torch.where(slots < added, latest, torch.full_like(latest, -1))


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


# ---- row-packed storage ----

# A row of at most a cache line is padded to a power of two, so no row
# straddles two lines (the allocator aligns storage to 64 bytes).
_CACHE_LINE = 64


class _RowLayout:
    """Where each field of a transition sits in its packed row of bytes: widest
    elements first, each field aligned to its element size."""

    def __init__(self, fields: list[tuple[str, torch.dtype, tuple[int, ...]]]):
        self.fields = fields
        offset, self.offsets = 0, {}
        for name, dtype, shape in sorted(fields, key=lambda f: -f[1].itemsize):  # stable: ties keep field order
            offset = -(-offset // dtype.itemsize) * dtype.itemsize
            self.offsets[name] = offset
            offset += dtype.itemsize * math.prod(shape)
        row = max(8, -(-offset // 8) * 8)
        if row <= _CACHE_LINE:
            row = 1 << (row - 1).bit_length()
        self.row_bytes = row

    def columns(self, rows: Tensor) -> dict[str, Tensor]:
        """Each field as a strided view of ``rows`` (``[..., capacity, row_bytes]`` uint8)."""
        views = {}
        for name, dtype, shape in self.fields:
            start = self.offsets[name]
            span = rows[..., start : start + dtype.itemsize * max(1, math.prod(shape))]
            column = span.view(dtype) if dtype != torch.uint8 else span
            views[name] = column.reshape(*rows.shape[:-1], *shape) if shape else column.squeeze(-1)
        return views


class ReplayBuffer:
    """Uniform replay over ``capacity`` preallocated transitions (per buffer).

    Args:
        capacity: number of transitions kept; older ones are overwritten.
        obs_shape, obs_dtype: one observation (``obs`` and ``next_obs``).
        action_shape, action_dtype: one action.
        device: where storage, sampling and randomness live.
        seed: seeds the buffer's generator (``None``: a random seed).
        n_step, gamma: n-step returns for :meth:`add_vector_step`; ``discount``
            of a 1-step transition is ``gamma``.
        num_buffers: ``None`` for one buffer; ``K`` for K independent buffers
            in one storage (see the module docstring): ``add`` takes
            ``[K, B, ...]``, ``add_vector_step`` ``[K, N, ...]``, ``sample``
            returns ``[K, B, ...]`` and the fields are ``[K, capacity, ...]``.
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
        num_buffers: int | None = None,
    ):
        self.capacity = _as_int("capacity", capacity, 1)
        self.obs_shape = _as_shape("obs_shape", obs_shape)
        self.action_shape = _as_shape("action_shape", action_shape)
        self.obs_dtype, self.action_dtype = _as_dtype("obs_dtype", obs_dtype), _as_dtype("action_dtype", action_dtype)
        self.device = storage_device("rltorch.replay", device, "a buffer must hold data")
        seed = _as_seed(seed)
        self.n_step = _as_int("n_step", n_step, 1)
        self.gamma = _as_real("gamma", gamma, 0.0, 1.0)
        self.num_buffers = None if num_buffers is None else _as_int("num_buffers", num_buffers, 1, 2**31)
        k = self._k = self.num_buffers or 1
        cap, dev = self.capacity, self.device
        self._layout = _RowLayout([
            ("obs", obs_dtype, self.obs_shape), ("action", action_dtype, self.action_shape),
            ("reward", torch.float32, ()), ("next_obs", obs_dtype, self.obs_shape),
            ("terminated", torch.bool, ()), ("discount", torch.float32, ()), ("ids", torch.int64, ()),
        ])
        try:
            self._rows = _memory.empty((k, cap, self._layout.row_bytes), torch.uint8, dev)
            self._rows.zero_()
        except (RuntimeError, MemoryError) as exc:
            raise MemoryError(f"rltorch.replay: cannot allocate `capacity`={cap} transitions of obs_shape "
                              f"{self.obs_shape} on {dev}: {exc}") from exc
        # [K, capacity, ...] views into the rows; the public fields drop K for one buffer.
        self._fields = self._layout.columns(self._rows)
        self._fields["ids"].fill_(-1)
        for name in _STORAGE_FIELDS:
            setattr(self, name, self._fields[name] if self.num_buffers else self._fields[name][0])
        self._columns = [getattr(self, name) for name in _STORAGE_FIELDS]
        # Kernels resolved once: sample/update run every training step.
        self._gather = pick(_GATHER, self.ids)
        self._added = [0] * k  # transitions ever added to each buffer (host counters: sizes are known on the host)
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
        """Transitions stored (the smallest count over the buffers of a batch)."""
        return min(min(added, self.capacity) for added in self._added)

    @property
    def added(self):
        """Transitions ever added: the id the next one gets (``sample`` returns ids as ``index``);
        a tuple of one count per buffer for ``num_buffers``."""
        return tuple(self._added) if self.num_buffers else self._added[0]

    def sizes(self) -> list[int]:
        """Transitions stored in each buffer."""
        return [min(added, self.capacity) for added in self._added]

    def _as(self, x, dtype, shape, name: str, batch: int | None) -> Tensor:
        """``x`` checked and converted, ``[K, B, *shape]`` (``[B, *shape]`` accepted for one buffer)."""
        t = _input_tensor(name, x)
        if t.dtype.is_complex:
            raise TypeError(f"rltorch.replay: `{name}` must be real, got {t.dtype}")
        # A float cast to integer storage would be truncated silently (0.7 -> 0).
        # Episode flags are exempt: CleanRL-style code stores float 0/1 dones.
        if t.dtype.is_floating_point and not (dtype.is_floating_point or name in _FLAG_FIELDS):
            raise TypeError(f"rltorch.replay: `{name}` is {t.dtype} but the buffer stores {dtype}; "
                            "pass integers (floats would be truncated)")
        lead = (self.num_buffers,) if self.num_buffers else ()
        good = (t.dim() == len(lead) + 1 + len(shape) and tuple(t.shape[:len(lead)]) == lead
                and tuple(t.shape[len(lead) + 1:]) == shape and (batch is None or t.shape[len(lead)] == batch))
        if not good:
            dims = ", ".join(map(str, (*lead, "B" if batch is None else batch, *shape)))
            trailing = "," if not shape and not lead else ""
            raise ValueError(f"rltorch.replay: `{name}` must have shape ({dims}{trailing}), got {tuple(t.shape)}")
        t = t.to(device=self.device, dtype=dtype)
        return t if lead else t.unsqueeze(0)

    def add(self, obs, action, reward, next_obs, terminated, discount=None) -> None:
        """Appends a batch of B transitions to each buffer (B may exceed capacity: the last ``capacity`` are kept).

        ``discount`` (``[B]``, default ``gamma``) is the bootstrap factor,
        ``gamma ** k`` for an n-step transition of k rewards. With
        ``num_buffers=K`` every argument has a leading dimension K.
        """
        obs = self._as(obs, self.obs_dtype, self.obs_shape, "obs", None)
        batch = obs.shape[1]
        action = self._as(action, self.action_dtype, self.action_shape, "action", batch)
        reward = self._as(reward, torch.float32, (), "reward", batch)
        next_obs = self._as(next_obs, self.obs_dtype, self.obs_shape, "next_obs", batch)
        terminated = self._as(terminated, torch.bool, (), "terminated", batch)
        if discount is None:
            discount = torch.full((self._k, batch), self.gamma, dtype=torch.float32, device=self.device)
        else:
            discount = self._as(discount, torch.float32, (), "discount", batch)
        if batch == 0:
            return
        self._append(dict(obs=obs, action=action, reward=reward, next_obs=next_obs, terminated=terminated,
                          discount=discount))

    def _append(self, values: dict[str, Tensor]) -> None:
        """Writes B rows ``values[name][k]`` to every buffer k (validated, ``[K, B, ...]``)."""
        batch = values["obs"].shape[1]
        kept = min(batch, self.capacity)  # only the newest `capacity` survive
        values = {name: value[:, batch - kept:] for name, value in values.items()}
        first = torch.tensor(self._added, dtype=torch.int64).unsqueeze(1) + (batch - kept)
        values["ids"] = (first + torch.arange(kept)).to(self.device)
        for name, value in values.items():
            # Re-adding rows that are views of this buffer (buf.obs[5:8]) would overlap the
            # slices being written: torch refuses partial overlaps, and the first copy
            # could overwrite rows a later one reads.
            if value.untyped_storage().data_ptr() == self._rows.untyped_storage().data_ptr():
                values[name] = value.clone()
        if len(set(self._added)) == 1:
            # At most two contiguous runs (before and after the wrap): slice copies, no scatter.
            start = (self._added[0] + batch - kept) % self.capacity
            head = min(kept, self.capacity - start)
            for name, value in values.items():
                field = self._fields[name]
                field[:, start : start + head] = value[:, :head]
                if head < kept:
                    field[:, : kept - head] = value[:, head:]
            slots = (start + torch.arange(kept, device=self.device)) % self.capacity
            slots = slots.expand(self._k, kept)
        else:  # buffers at different counts (after ragged n-step writes): one scatter per field
            slots = values["ids"].remainder(self.capacity)
            self._scatter(values, slots)
        for k in range(self._k):
            self._added[k] += batch  # only once every field is written
        self._written(slots, None)

    def _scatter(self, values: dict[str, Tensor], slots: Tensor, keep: Tensor | None = None) -> None:
        """``field[k, slots[k, j]] = values[name][k, j]`` for every field (and kept j)."""
        rows = torch.arange(self._k, device=self.device).unsqueeze(1).expand_as(slots)
        if keep is not None:
            rows, slots = rows[keep], slots[keep]
            values = {name: value[keep] for name, value in values.items()}
        for name, value in values.items():
            self._fields[name][rows, slots] = value

    def _append_ragged(self, values: dict[str, Tensor], keep: Tensor) -> None:
        """Writes the rows ``j`` with ``keep[k, j]`` of ``values`` (``[K, J, ...]``) to buffer k, in order:
        each buffer takes its own count (n-step emissions, valid rows)."""
        counts = keep.sum(1).tolist()  # data-dependent sizes: the one host sync of the writer
        if not any(counts):
            return
        rank = keep.long().cumsum(1) - 1
        # Of more than `capacity` rows for one buffer only the newest survive.
        surplus = torch.tensor([max(0, c - self.capacity) for c in counts], device=self.device).unsqueeze(1)
        keep = keep & (rank >= surplus)
        ids = torch.tensor(self._added, dtype=torch.int64, device=self.device).unsqueeze(1) + rank
        values = {**values, "ids": ids}
        slots = ids.remainder(self.capacity)
        self._scatter(values, slots, keep)
        for k, count in enumerate(counts):
            self._added[k] += count
        self._written(slots, keep)

    def _written(self, slots: Tensor, keep: Tensor | None) -> None:
        """Hook: slots ``slots[k, j]`` (where ``keep``) of buffer k now hold new transitions."""

    def add_vector_step(self, obs, action, reward, next_obs, terminated, truncated, valid=None) -> None:
        """Adds one step of N parallel environments (rows are environments; ``[K, N, ...]`` for K buffers,
        env n of buffer k feeding buffer k).

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
        n_env = obs.shape[1]
        action = self._as(action, self.action_dtype, self.action_shape, "action", n_env)
        reward = self._as(reward, torch.float32, (), "reward", n_env)
        next_obs = self._as(next_obs, self.obs_dtype, self.obs_shape, "next_obs", n_env)
        terminated = self._as(terminated, torch.bool, (), "terminated", n_env)
        truncated = self._as(truncated, torch.bool, (), "truncated", n_env)
        if valid is not None:
            valid = self._as(valid, torch.bool, (), "valid", n_env)
        if self.n_step == 1:
            values = dict(obs=obs, action=action, reward=reward, next_obs=next_obs, terminated=terminated,
                          discount=torch.full((self._k, n_env), self.gamma, dtype=torch.float32, device=self.device))
            if valid is None:
                if n_env:
                    self._append(values)
            elif self._k == 1:
                values = {name: value[valid].unsqueeze(0) for name, value in values.items()}
                if values["obs"].shape[1]:
                    self._append(values)
            else:
                self._append_ragged(values, valid)
            return
        window = self._window_for(n_env)
        n = self.n_step
        slot = self._w_head
        for name, value in zip(_WINDOW_FIELDS[:-1], (obs, action, reward, next_obs, terminated, truncated)):
            window[name][slot] = value.flatten(0, 1)
        # A reset row comes right after its env's done, which flushed every
        # entry before it; not pending, it is skipped by every later window.
        window["pending"][slot] = True if valid is None else valid.flatten()
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
        # Each buffer's rows in (time, env) order, as nonzero() lists them: [K, length * N].
        emit_by_buffer = emit.view(length, self._k, n_env).transpose(0, 1).reshape(self._k, -1)
        rows = torch.arange(length, device=self.device).repeat_interleave(n_env).expand(self._k, -1)
        envs = (torch.arange(self._k, device=self.device).unsqueeze(1) * n_env
                + torch.arange(n_env, device=self.device).repeat(length))
        last_rows = last[rows, envs]
        src = order[rows]
        k = (last_rows - rows + 1).to(torch.float64)
        values = dict(
            obs=window["obs"][src, envs],
            action=window["action"][src, envs],
            reward=returns[rows, envs],
            next_obs=window["next_obs"][order[last_rows], envs],
            terminated=term[last_rows, envs],
            discount=torch.pow(torch.full_like(k, self.gamma), k).to(torch.float32),
        )
        self._append_ragged(values, emit_by_buffer)
        window["pending"][src[emit_by_buffer], envs[emit_by_buffer]] = False

    def _window_for(self, n_env: int) -> dict:
        envs = self._k * n_env
        if self._window is not None:
            if self._window["pending"].shape[1] != envs:
                raise ValueError(
                    f"rltorch.replay: add_vector_step got {n_env} environments, "
                    f"earlier calls had {self._window['pending'].shape[1] // self._k}"
                )
            return self._window
        n, dev = self.n_step, self.device
        self._window = {
            "obs": torch.zeros((n, envs, *self.obs_shape), dtype=self.obs_dtype, device=dev),
            "action": torch.zeros((n, envs, *self.action_shape), dtype=self.action_dtype, device=dev),
            "reward": torch.zeros((n, envs), dtype=torch.float32, device=dev),
            "next_obs": torch.zeros((n, envs, *self.obs_shape), dtype=self.obs_dtype, device=dev),
            "terminated": torch.zeros((n, envs), dtype=torch.bool, device=dev),
            "truncated": torch.zeros((n, envs), dtype=torch.bool, device=dev),
            "pending": torch.zeros((n, envs), dtype=torch.bool, device=dev),
        }
        return self._window

    # ---- sampling ----
    def _check_sampling(self, batch_size) -> int:
        # Runs every training step: a plain in-range int skips the general check (a bool is not one).
        if type(batch_size) is not int or not 0 <= batch_size <= _MAX_COUNT:
            batch_size = _as_int("batch_size", batch_size, 0)
        if 0 in self._added:
            which = "an empty buffer" if self._k == 1 else f"buffer {self._added.index(0)}, which is empty"
            raise RuntimeError(f"rltorch.replay: cannot sample from {which}; add transitions first")
        return batch_size

    def _sample_slots(self, batch_size: int) -> Tensor:
        sizes = self.sizes()
        if self._k == 1:
            return torch.randint(sizes[0], (batch_size,), generator=self.generator, device=self.device)
        if len(set(sizes)) == 1:
            return torch.randint(sizes[0], (self._k, batch_size), generator=self.generator, device=self.device)
        # Buffers of different sizes: one uniform draw per sample, scaled by its own buffer's size.
        unit = torch.rand((self._k, batch_size), generator=self.generator, dtype=torch.float64, device=self.device)
        size = torch.tensor(sizes, dtype=torch.float64, device=self.device).unsqueeze(1)
        return (unit * size).long().clamp_(max=size.long() - 1)

    def sample(self, batch_size: int) -> ReplayBatch:
        """``batch_size`` transitions drawn with replacement (from each buffer), as a :class:`ReplayBatch`."""
        batch_size = self._check_sampling(batch_size)
        slots = self._sample_slots(batch_size)
        # One call gathers every field (7 indexing ops cost more than the sampling itself).
        obs, action, reward, next_obs, terminated, discount, ids = self._gather(self._columns, slots)
        weight = torch.ones(slots.shape, dtype=torch.float32, device=self.device)
        return ReplayBatch(obs, action, reward, next_obs, terminated, discount, ids, weight)

    # ---- persistence ----
    def _config(self) -> dict:
        config = {
            "type": type(self).__name__, "capacity": self.capacity, "obs_shape": list(self.obs_shape),
            "obs_dtype": _dtype_name(self.obs_dtype), "action_shape": list(self.action_shape),
            "action_dtype": _dtype_name(self.action_dtype), "n_step": self.n_step, "gamma": self.gamma,
        }
        if self.num_buffers:  # absent for one buffer: the files of one buffer keep their old form
            config["num_buffers"] = self.num_buffers
        return config

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: one tensor per field (whatever the row layout),
        counters, window, RNG state."""
        state = {
            "config": self._config(),
            "storage": {name: getattr(self, name).clone(memory_format=torch.contiguous_format)
                        for name in _STORAGE_FIELDS},
            "added": list(self._added) if self.num_buffers else self._added[0],
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

    def _check_kind(self, state) -> None:
        """A state of another kind of buffer is named as such (not as a list of missing keys)."""
        config = state.get("config") if isinstance(state, Mapping) else None
        kind = config.get("type") if isinstance(config, Mapping) else None
        if isinstance(kind, str) and kind != type(self).__name__:
            raise ValueError(f"rltorch.replay: state is for a {kind}, this buffer is a {type(self).__name__}; "
                             f"load it into a {kind}")

    def _check_added(self, added) -> list[int]:
        if self.num_buffers:
            if not isinstance(added, (list, tuple)) or len(added) != self._k:
                raise ValueError(f"rltorch.replay: `added` must be a list of {self._k} counts (one per buffer), "
                                 f"got {added!r:.80}")
            return [_as_int(f"added[{k}]", a, 0) for k, a in enumerate(added)]
        return [_as_int("added", added, 0)]

    def _check_state(self, state) -> dict:
        self._check_kind(state)
        _check_keys("state_dict", state, self._STATE_KEYS)
        if state["config"] != self._config():
            raise ValueError(f"rltorch.replay: state is for {state['config']}, this buffer is {self._config()}")
        storage = state["storage"]
        _check_keys("state_dict['storage']", storage, _STORAGE_FIELDS)
        for name in _STORAGE_FIELDS:
            mine = getattr(self, name)
            _check_tensor("storage", name, storage[name], mine.dtype, mine.shape)
        added = self._check_added(state["added"])
        # Writes are sequential, so the ids are a function of the count: a cheap consistency check.
        expected = _expected_ids(torch.tensor(added), self.capacity, self.device)
        if not torch.equal(storage["ids"].to(self.device).reshape(expected.shape), expected):
            raise ValueError(f"rltorch.replay: storage `ids` do not match `added`={state['added']}")
        rng = state["rng_state"]
        if not isinstance(rng, Tensor) or rng.dtype != torch.uint8 or rng.device.type == "meta":
            raise TypeError(f"rltorch.replay: `rng_state` must be a uint8 tensor, got {type(rng).__name__}")
        try:
            torch.Generator(device=self.device).set_state(rng.cpu())
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ValueError(
                f"rltorch.replay: `rng_state` is not a {self.device.type} generator state: {exc}"
            ) from None
        window = state["window"]
        if window is not None:
            if self.n_step == 1:
                raise ValueError("rltorch.replay: state holds an n-step `window` but this buffer has n_step=1")
            _check_keys("state_dict['window']", window, ("tensors", "head", "length"))
            tensors = window["tensors"]
            _check_keys("state_dict['window']['tensors']", tensors, _WINDOW_FIELDS)
            pending = tensors["pending"]
            n_env = pending.shape[1] if isinstance(pending, Tensor) and pending.dim() == 2 else -1
            if n_env < 0 or n_env % self._k:
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
        self._added = list(checked["added"])
        self.generator.set_state(checked["rng_state"])
        window = checked["window"]
        if window is None:
            self._window, self._w_head, self._w_len = None, 0, 0
        else:
            self._window = {k: v.clone() for k, v in window["tensors"].items()}
            self._w_head, self._w_len = window["head"], window["length"]

    _WHAT = "replay buffer"

    def save(self, path) -> None:
        """Writes :meth:`state_dict` atomically with a checksum (``rltorch._io.save_checked``)."""
        _io.save_checked(self.state_dict(), path, f"rltorch.replay: {self._WHAT}")

    def load(self, path) -> None:
        """Restores a :meth:`save`d state into this (identically configured) buffer; the file's checksum is
        verified first (files written before checksums existed still load)."""
        self.load_state_dict(_io.load_checked(path, self._WHAT))

    def __repr__(self) -> str:
        buffers = "" if self.num_buffers is None else f", num_buffers={self.num_buffers}"
        return f"{type(self).__name__}(capacity={self.capacity}{buffers}, len={len(self)}, device={self.device})"


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016) on an rltorch sum tree.

    A transition's priority is ``(|td| + eps) ** alpha``; new transitions get
    the running maximum of the raw priority ``|td| + eps`` (1.0 before any
    update), transformed by ``alpha`` exactly once. ``sample`` is stratified
    and returns importance weights ``(p_i / p_min) ** -beta`` (max 1), with
    ``beta`` settable at any time (``buffer.beta = 0.7`` for annealing); it and
    the gather of the sampled transitions are one kernel call, and
    ``update_priorities`` another. With ``num_buffers=K`` the buffer keeps K sum
    trees (one ``SumTree(num_trees=K)``) and K running maxima.

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
        num_buffers: int | None = None,
    ):
        # Checked before any storage exists: alpha/eps = inf (or NaN) used to be accepted
        # and fail only once priorities were written.
        alpha = _as_real("alpha", alpha, 0.0, open_low=True)
        eps = _as_real("eps", eps, 0.0)
        beta = _as_real("beta", beta, 0.0)
        if not isinstance(validate, bool):
            raise TypeError(f"rltorch.replay: `validate` must be a bool, got {type(validate).__name__}")
        super().__init__(capacity, obs_shape, obs_dtype, action_shape, action_dtype, device, seed, n_step, gamma,
                         num_buffers)
        self.alpha, self.eps = alpha, eps
        self.beta = beta
        self.validate = validate
        self.tree = SumTree(self.capacity, self.device, fanout, num_trees=self.num_buffers)
        self.max_priority = torch.ones(self._k, dtype=torch.float64, device=self.device)
        self._sample_op = pick(_REPLAY_SAMPLE, self.tree.tree)
        self._update_op = pick(_PER_UPDATE, self.tree.tree)

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = _as_real("beta", value, 0.0)

    def _written(self, slots: Tensor, keep: Tensor | None) -> None:
        # New transitions get the running max priority of their buffer. It is a fold of validated
        # values (or a validated loaded state), so this write cannot be rejected after the rows landed.
        priority = self.max_priority.unsqueeze(1).expand(slots.shape)
        if self.num_buffers is None:
            slots, priority = slots[0], priority[0]
            keep = None if keep is None else keep[0]
        self.tree.update(slots, priority, keep=keep, alpha=self.alpha, validate=False)

    def sample(self, batch_size: int) -> ReplayBatch:
        """``batch_size`` transitions drawn by priority (from each buffer), with importance weights."""
        batch_size = self._check_sampling(batch_size)
        tree = self.tree
        try:
            _, weight, rows = self._sample_op(tree.tree, tree.capacity, tree.fanout, self._columns, batch_size,
                                              self._beta, self.generator)
        except ValueError as error:
            # Found by the kernel before any draw: name the buffer's cause, not the tree's.
            if "no priority mass" in str(error):
                raise RuntimeError(
                    "rltorch.replay: cannot sample: every stored transition has priority 0 (with eps=0, all "
                    "their TD errors were 0); construct the buffer with eps > 0 or update some priorities") from None
            if "total priority is" in str(error):
                raise RuntimeError("rltorch.replay: cannot sample: the total priority overflowed to inf; "
                                   "lower `alpha` or the TD errors") from None
            raise
        obs, action, reward, next_obs, terminated, discount, ids = rows
        return ReplayBatch(obs, action, reward, next_obs, terminated, discount, ids, weight)

    def update_priorities(self, index: Tensor, td_error: Tensor) -> None:
        """Sets the priorities of the sampled transitions ``index`` to ``(|td_error| + eps) ** alpha``
        (``[K, B]`` for K buffers: row k holds buffer k's ids)."""
        if type(index) is Tensor and type(td_error) is Tensor and index.device == self.device == td_error.device:
            # The common case, checked in a fraction of the general path's time (it runs every step).
            td = td_error.detach() if td_error.requires_grad else td_error
        else:
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
    _WHAT = "prioritized replay buffer"

    def _check_state(self, state) -> dict:
        checked = super()._check_state(state)
        where = "rltorch.replay"
        leaves, _ = checked_leaves(where, "`tree`", state["tree"], self.capacity, self.tree.fanout, self.num_buffers,
                                   self.device)
        ids = checked["storage"]["ids"].reshape(leaves.shape)
        if bool(((ids < 0) & (leaves != 0)).any()):
            raise ValueError(f"{where}: `tree` gives priority to slots that hold no transition")
        max_priority = state["max_priority"]
        _check_tensor("state_dict", "max_priority", max_priority, torch.float64, (self._k,))
        max_priority = max_priority.to(self.device)
        limit = max_raw_priority(self.capacity, self.alpha)
        if not bool((torch.isfinite(max_priority) & (max_priority > 0) & (max_priority <= limit)).all()):
            raise ValueError(f"{where}: `max_priority` must be finite, > 0 and <= {limit:g} (the largest priority "
                             "a tree of this capacity holds with this alpha)")
        # Inner nodes are a function of the leaves (always recomputed from the
        # children): rebuild them rather than trust them (older files hold another layout).
        rebuilt = rebuild(leaves, self.capacity, self.tree.fanout, self.num_buffers)
        checked.update(tree=rebuilt, max_priority=max_priority, beta=_as_real("beta", state["beta"], 0.0))
        return checked

    def _load_checked(self, checked: dict) -> None:
        super()._load_checked(checked)
        self.tree.tree.copy_(checked["tree"])
        self.max_priority.copy_(checked["max_priority"])
        self._beta = checked["beta"]
