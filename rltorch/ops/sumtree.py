"""Prioritized-replay sum tree: batched update, prefix-sum search, stratified sampling.

The tree is a plain float64 tensor owned by :class:`SumTree`: ``[size]`` for
one tree (the sums of every level, then the minima of the internal levels,
see ``csrc/include/rltorch/sumtree.h``), or ``[T, size]`` for ``num_trees=T``
independent trees that every op serves in one kernel call (a population's
replay buffers). It moves with ``.to()``, saves with ``torch.save`` and is
visible to ``torch.compile``.

Duplicate rule: when one :meth:`SumTree.update` names a leaf more than once,
the leaf ends with its **last** (kept) value, as sequential assignment would
leave it, on every device. Internal nodes are always recomputed from their
children (never delta-updated), so the root stays exactly the fold of its
children however many updates run.

Example::

    >>> import torch
    >>> from rltorch.ops import SumTree
    >>> tree = SumTree(5)
    >>> tree.update(torch.tensor([0, 2, 4]), torch.tensor([1.0, 0.0, 3.0]))
    >>> tree.total()
    tensor(4., dtype=torch.float64)
    >>> tree.find(torch.tensor([0.5, 1.0, 3.9]))
    tensor([0, 4, 4])
    >>> trees = SumTree(5, num_trees=2)  # two trees, one call per op
    >>> trees.update(torch.tensor([[0], [4]]), torch.tensor([[2.0], [5.0]]))
    >>> trees.total()
    tensor([2., 5.], dtype=torch.float64)
"""

from __future__ import annotations

import torch
from torch import Tensor

from rltorch import _ext, _reference
from rltorch._checks import integer
from rltorch.ops import _memory
from rltorch.ops._dispatch import as_float, check_same_device, non_tensor_argument, pick, resolve, snapshot
from rltorch.ops.device_errors import CLEAR, check_device_errors, device_error_record

__all__ = [
    "SumTree", "DEFAULT_FANOUT", "sumtree_update_", "sumtree_find", "sumtree_sample",
    "per_update_priorities_", "replay_gather", "replay_sample", "max_raw_priority",
]

# Children per node. 8 float64 children fill one 64-byte cache line; the
# binary layout and 4/16 are compiled too, and the full-mode benchmark group
# "sumtree_fanout" (rltorch.bench.cases.replay) measures all four side by side.
DEFAULT_FANOUT = 8

_UPDATE = resolve("sumtree_update_", _reference.sumtree_update_)
_FIND = resolve("sumtree_find", _reference.sumtree_find)
_SAMPLE = resolve("sumtree_sample", _reference.sumtree_sample)
_PER_UPDATE = resolve("per_update_priorities_", _reference.per_update_priorities_)
_GATHER = resolve("replay_gather", _reference.replay_gather)
_REPLAY_SAMPLE = resolve("replay_sample", _reference.replay_sample)
KERNELS = {
    "sumtree_update_": _UPDATE, "sumtree_find": _FIND, "sumtree_sample": _SAMPLE,
    "per_update_priorities_": _PER_UPDATE, "replay_gather": _GATHER, "replay_sample": _REPLAY_SAMPLE,
}


def sumtree_update_(tree, capacity, fanout, index, priority, keep=None, alpha=1.0, eps=0.0, running_max=None):
    """The raw op (see :meth:`SumTree.update`); dispatches on ``tree``'s device."""
    op = "sumtree_update_"
    if type(alpha) is not float or type(eps) is not float:  # the common call skips two conversions
        alpha, eps = as_float(op, "alpha", alpha), as_float(op, "eps", eps)
    try:
        pick(_UPDATE, tree)(tree, capacity, fanout, index, priority, keep, alpha, eps, running_max)
    except (AttributeError, RuntimeError, TypeError) as error:
        bad = non_tensor_argument(op, dict(tree=tree, index=index, priority=priority),
                                  dict(keep=keep, running_max=running_max))
        if bad is None:
            raise
        raise bad from error


def sumtree_find(tree, capacity, fanout, mass):
    """The raw op (see :meth:`SumTree.find`)."""
    try:
        return pick(_FIND, tree)(tree, capacity, fanout, mass)
    except (AttributeError, RuntimeError, TypeError) as error:
        bad = non_tensor_argument("sumtree_find", dict(tree=tree, mass=mass))
        if bad is None:
            raise
        raise bad from error


def sumtree_sample(tree, capacity, fanout, batch_size, beta=0.0, generator=None):
    """The raw op (see :meth:`SumTree.sample`)."""
    op = "sumtree_sample"
    batch_size = _integer(op, "batch_size", batch_size)
    return pick(_SAMPLE, tree)(tree, capacity, fanout, batch_size, as_float(op, "beta", beta), generator)


def per_update_priorities_(tree, capacity, fanout, slot_ids, index, td_error, alpha, eps, running_max):
    """Prioritized-replay priority update in one call.

    For each transition id ``index[i] >= 0`` whose slot ``index[i] % capacity``
    still holds it (``slot_ids[slot] == index[i]``), sets that leaf to
    ``(|td_error[i]| + eps) ** alpha``; ids of overwritten transitions are
    skipped. ``running_max`` becomes ``max(running_max, |td| + eps)`` over
    the kept entries (``running_max_fold`` in ``csrc/include/rltorch/sumtree.h``:
    a NaN start is replaced, otherwise only a larger value wins). Non-finite
    td errors: on CPU a ``ValueError`` before any write; on CUDA (no host sync)
    those entries are skipped, the rest written, and the error is reported by
    :func:`rltorch.ops.check_device_errors` (see :mod:`rltorch.ops.device_errors`).
    """
    op = "per_update_priorities_"
    alpha, eps = as_float(op, "alpha", alpha), as_float(op, "eps", eps)
    try:
        pick(_PER_UPDATE, tree)(tree, capacity, fanout, slot_ids, index, td_error, alpha, eps, running_max)
    except (AttributeError, RuntimeError, TypeError) as error:
        bad = non_tensor_argument(op, dict(tree=tree, slot_ids=slot_ids, index=index, td_error=td_error,
                                           running_max=running_max))
        if bad is None:
            raise
        raise bad from error


def replay_gather(columns: list[Tensor], index: Tensor) -> list[Tensor]:
    """``[c[index] for c in columns]`` in one call (rows are copied by the kernel on CPU).

    A ``[T, B]`` index gathers row ``index[t, b]`` of tree ``t`` from ``[T, rows, ...]`` columns.
    """
    try:
        return pick(_GATHER, index)(columns, index)
    except (AttributeError, RuntimeError, TypeError) as error:
        bad = non_tensor_argument("replay_gather", dict(index=index))
        if bad is None and isinstance(columns, (list, tuple)):
            bad = non_tensor_argument("replay_gather", {f"columns[{c}]": col for c, col in enumerate(columns)})
        if bad is None:
            raise
        raise bad from error


def replay_sample(tree, capacity, fanout, columns, batch_size, beta=0.0, generator=None):
    """Stratified sampling of ``tree`` and the gather of the sampled rows, in one call.

    Returns ``(index, weight, rows)``: the sampled slots, their importance
    weights ``(p_i / p_min) ** -beta`` (as :meth:`SumTree.sample`) and
    ``[column[index] for column in columns]``. Each column holds ``capacity``
    rows (``[T, capacity, ...]`` for a batched tree, gathered per tree). Columns
    that are views of one row-packed storage (:class:`rltorch.replay.ReplayBuffer`)
    cost one or two cache misses per sampled transition in total.
    """
    op = "replay_sample"
    batch_size = _integer(op, "batch_size", batch_size)
    try:
        return pick(_REPLAY_SAMPLE, tree)(tree, capacity, fanout, columns, batch_size, as_float(op, "beta", beta),
                                          generator)
    except (AttributeError, RuntimeError, TypeError) as error:
        bad = non_tensor_argument(op, dict(tree=tree))
        if bad is None and isinstance(columns, (list, tuple)):
            bad = non_tensor_argument(op, {f"columns[{c}]": col for c, col in enumerate(columns)})
        if bad is None:
            raise
        raise bad from error


# Storage is about capacity * K / (K - 1) elements per row: past 2**62 leaves it overflows int64.
_MAX_CAPACITY = 2**62


def _integer(op: str, name: str, value) -> int:
    return integer(f"rltorch.{op}", name, value)


def _check_layout_args(capacity, fanout) -> tuple[int, int]:
    capacity = _integer("SumTree", "capacity", capacity)
    fanout = _integer("SumTree", "fanout", fanout)
    if capacity > _MAX_CAPACITY:
        raise ValueError(f"rltorch.SumTree: `capacity` must be <= 2**62, got {capacity}")
    if capacity < 1:
        raise ValueError(f"rltorch.SumTree: `capacity` must be an integer >= 1, got {capacity!r}")
    if fanout not in (2, 4, 8, 16):
        raise ValueError(f"rltorch.SumTree: `fanout` must be 2, 4, 8 or 16, got {fanout!r}")
    return capacity, fanout


def _check_num_trees(num_trees) -> int | None:
    if num_trees is None:
        return None
    num_trees = _integer("SumTree", "num_trees", num_trees)
    if num_trees < 1:
        raise ValueError(f"rltorch.SumTree: `num_trees` must be None (one tree) or an integer >= 1, got {num_trees}")
    return num_trees


def empty_tree(capacity: int, fanout: int = DEFAULT_FANOUT, device=None, num_trees: int | None = None) -> Tensor:
    """All-zero trees: sums 0, minima +inf (nothing can be sampled yet); ``[size]`` or ``[num_trees, size]``."""
    capacity, fanout = _check_layout_args(capacity, fanout)
    num_trees = _check_num_trees(num_trees)
    offsets, _, storage = _reference.sumtree_layout(capacity, fanout)
    size = storage + offsets[-1]
    tree = _memory.empty((size,) if num_trees is None else (num_trees, size), torch.float64, device)
    tree[..., :storage].zero_()
    tree[..., storage:].fill_(float("inf"))
    return tree


class SumTree:
    """A sum tree (with a min tree over its internal nodes) over ``capacity`` leaves,
    or ``num_trees`` independent such trees served by one kernel call per op.

    Args:
        capacity: number of leaves (per tree), any integer >= 1.
        device: where the tree lives; every method stays on that device and
            none synchronises with the host (except ``validate=True`` on CUDA).
        fanout: children per node (2, 4, 8 or 16).
        num_trees: ``None`` for one tree; ``T`` for a batch of T trees. Then
            every per-entry argument has a leading dimension T (row t goes to
            tree t), ``sample`` returns ``[T, B]``, ``total``/``min`` ``[T]`` and
            ``priorities`` ``[T, capacity]``.
    """

    def __init__(self, capacity: int, device=None, fanout: int = DEFAULT_FANOUT, num_trees: int | None = None):
        self.capacity, self.fanout = _check_layout_args(capacity, fanout)
        self.num_trees = _check_num_trees(num_trees)
        self.tree = empty_tree(self.capacity, self.fanout, device, self.num_trees)
        self._set_layout()

    def _set_layout(self) -> None:
        offsets, _, self._storage = _reference.sumtree_layout(self.capacity, self.fanout)
        self._leaf_offset = offsets[-1]
        self._levels = len(offsets)

    @property
    def device(self) -> torch.device:
        return self.tree.device

    def update(
        self,
        index: Tensor,
        priority: Tensor,
        *,
        keep: Tensor | None = None,
        alpha: float = 1.0,
        eps: float = 0.0,
        running_max: Tensor | None = None,
        validate: bool = True,
    ) -> None:
        """Sets ``leaf[index[i]] = (priority[i] + eps) ** alpha`` for every kept i.

        O(B log N): only the ancestors of the touched leaves are recomputed.
        A leaf named twice keeps its last kept value. Bad input (index out of
        range or on another device, non-int64 index, NaN/inf/negative
        priority, ``priority + eps`` above :func:`max_raw_priority`) raises an
        error naming the argument and leaves the tree unchanged. On CPU the
        kernel checks before writing. On CUDA the value checks need one host
        sync, done here when ``validate`` is true (it also raises any error
        pending in the device's error record); ``validate=False`` skips it for
        speed: the kernel then records bad input on the device and leaves the
        tree (and ``running_max``) unchanged, and
        :func:`rltorch.ops.check_device_errors` raises it later.
        ``running_max`` (one value per tree) follows ``running_max_fold``
        (``sumtree.h``) over the kept ``priority + eps`` of its tree.
        """
        # Checked here as well as in the kernel: the dispatcher routes a call
        # with a meta (or other higher-priority) tensor to that device's
        # kernel, which cannot know the tree lives elsewhere.
        tree = self.tree
        device = tree.device
        try:
            mixed = index.device != device or priority.device != device or (
                keep is not None and keep.device != device) or (
                    running_max is not None and running_max.device != device)
        except AttributeError as error:
            raise non_tensor_argument("SumTree.update", dict(index=index, priority=priority),
                                      dict(keep=keep, running_max=running_max)) from error
        if mixed:
            check_same_device("SumTree.update", tree, "tree", index=index, priority=priority, keep=keep,
                              running_max=running_max)
        if validate and device.type != "cpu":
            _validate_update(self.capacity, index, priority, alpha=alpha, eps=eps)
        sumtree_update_(tree, self.capacity, self.fanout, index, priority, keep, alpha, eps, running_max)

    def find(self, mass: Tensor) -> Tensor:
        """For each mass u, the first leaf whose inclusive running sum exceeds u
        (row t of ``mass`` searches tree t when batched).

        Zero-priority leaves are never returned; u >= total (rounding at the
        top) gives the last non-zero leaf. Equals
        ``torch.searchsorted(priorities.cumsum(0), u, right=True)`` where no
        rounding is involved (e.g. integer-valued priorities).
        """
        if not isinstance(mass, Tensor):
            raise non_tensor_argument("SumTree.find", dict(mass=mass))
        check_same_device("SumTree.find", self.tree, "tree", mass=mass)
        return sumtree_find(self.tree, self.capacity, self.fanout, mass)

    def sample(self, batch_size: int, beta: float = 0.0, generator: torch.Generator | None = None):
        """Stratified sampling: ``(index, weight)`` for ``u_i = (i + U_i) / B * total``.

        ``U_i`` is drawn on the tree's device from ``generator``;
        ``weight = (p_i / p_min) ** -beta`` (float32, max 1) with ``p_min``
        the smallest non-zero leaf of the tree. Every tree must hold some
        non-zero priority: sampling a tree whose total is 0 (or not finite)
        raises ValueError (on CUDA, through the device error record).
        ``[batch_size]``, or ``[T, batch_size]`` for a batch of trees.
        """
        return sumtree_sample(self.tree, self.capacity, self.fanout, batch_size, beta, generator)

    def total(self) -> Tensor:
        """Sum of all leaves, float64 on the tree's device (0-dim, or ``[T]``; no sync).

        A snapshot: inside ``torch.compile`` it stays the value at this point
        even when the same graph updates the tree afterwards (docs/compile.md).
        """
        return snapshot(self.tree[..., 0])

    def min(self) -> Tensor:
        """Smallest non-zero leaf (+inf when all are zero), like :meth:`total` (no sync, a snapshot)."""
        if self._levels == 1:  # the root is the only leaf
            root = self.tree[..., 0]
            return snapshot(torch.where(root > 0, root, torch.full_like(root, float("inf"))))
        return snapshot(self.tree[..., self._storage])

    def priorities(self) -> Tensor:
        """The leaves, a ``[capacity]`` (or ``[T, capacity]``) view into the tree (it
        changes with the tree; inside ``torch.compile`` copy it with
        ``rltorch.ops._dispatch.snapshot``, not ``.clone()``, if the graph updates the tree afterwards)."""
        return self.tree[..., self._leaf_offset : self._leaf_offset + self.capacity]

    def to(self, device) -> SumTree:
        out = SumTree.__new__(SumTree)
        out.capacity, out.fanout, out.num_trees = self.capacity, self.fanout, self.num_trees
        out._set_layout()
        out.tree = self.tree.to(device)
        return out

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "fanout": self.fanout, "num_trees": self.num_trees,
                "tree": snapshot(self.tree)}

    def load_state_dict(self, state: dict) -> None:
        """Restores a :meth:`state_dict`. Everything is checked first (keys,
        layout, dtype, shape, leaves valid, every internal node exactly the
        sum and min of its children), so a rejected state leaves this tree
        as it was. States saved before the min tree dropped its leaf level
        (a ``[2, storage]`` tree of one tree) still load."""
        self.tree.copy_(self._checked_state_tree(state))

    def _checked_state_tree(self, state) -> Tensor:
        where = "rltorch.SumTree.load_state_dict"
        if not isinstance(state, dict) or any(key not in state for key in ("capacity", "fanout", "tree")):
            raise ValueError(f"{where}: `state` must be a dict with 'capacity', 'fanout' and 'tree', got {state!r:.80}")
        num_trees = state.get("num_trees")
        if state["capacity"] != self.capacity or state["fanout"] != self.fanout or num_trees != self.num_trees:
            raise ValueError(
                f"{where}: state is for capacity={state['capacity']!r}, fanout={state['fanout']!r}, "
                f"num_trees={num_trees!r}; this tree has capacity={self.capacity}, fanout={self.fanout}, "
                f"num_trees={self.num_trees}"
            )
        leaves, saved = checked_leaves(where, "state['tree']", state["tree"], self.capacity, self.fanout,
                                       self.num_trees, self.tree.device)
        # Rebuilt from the leaves, a valid tree is bit for bit the saved one
        # (internal nodes are pure functions of their children).
        rebuilt = rebuild(leaves, self.capacity, self.fanout, self.num_trees)
        if not _same_nodes(rebuilt, saved, self._storage, self._leaf_offset):
            raise ValueError(f"{where}: state['tree'] is not a consistent sum tree (a node differs from its children)")
        return rebuilt

    def __repr__(self) -> str:
        trees = "" if self.num_trees is None else f", num_trees={self.num_trees}"
        return f"SumTree(capacity={self.capacity}, fanout={self.fanout}{trees}, device={self.tree.device})"


def _old_layout_shape(capacity: int, fanout: int) -> tuple[int, int]:
    """The shape of one tree saved before the min tree dropped its leaf level: [2, storage]."""
    return 2, _reference.sumtree_layout(capacity, fanout)[2]


def checked_leaves(where: str, name: str, saved, capacity: int, fanout: int, num_trees: int | None,
                   device) -> tuple[Tensor, Tensor]:
    """The leaves of a saved tree (``[capacity]`` or ``[T, capacity]``) and the saved tensor on ``device``,
    after checking dtype, shape (the current layout, or the older ``[2, storage]`` one of a single tree) and
    that every leaf is a priority a tree can hold. ValueError naming ``name`` otherwise."""
    offsets, _, storage = _reference.sumtree_layout(capacity, fanout)
    size = storage + offsets[-1]
    shape = (size,) if num_trees is None else (num_trees, size)
    old = num_trees is None and isinstance(saved, Tensor) and tuple(saved.shape) == _old_layout_shape(capacity, fanout)
    if not isinstance(saved, Tensor) or saved.dtype != torch.float64 or (tuple(saved.shape) != shape and not old):
        described = f"{saved.dtype} {list(saved.shape)}" if isinstance(saved, Tensor) else type(saved).__name__
        raise ValueError(f"{where}: {name} must be a float64 tensor of shape {list(shape)}, got {described}")
    if saved.device.type == "meta":
        raise ValueError(f"{where}: {name} is a meta tensor (it holds no data)")
    saved = saved.to(device)
    row = saved[0] if old else saved
    leaves = row[..., offsets[-1] : offsets[-1] + capacity]
    limit = _reference.max_raw_priority(capacity, 1.0)
    if not bool((torch.isfinite(leaves) & (leaves >= 0) & (leaves <= limit)).all()):
        raise ValueError(f"{where}: {name} holds leaves that are negative, not finite or above {limit}")
    return leaves, saved


def rebuild(leaves: Tensor, capacity: int, fanout: int, num_trees: int | None) -> Tensor:
    """A tree (or batch) holding exactly ``leaves``, every internal node recomputed."""
    tree = empty_tree(capacity, fanout, leaves.device, num_trees)
    everything = torch.arange(capacity, device=leaves.device)
    if num_trees is not None:
        everything = everything.expand(num_trees, capacity).contiguous()
    sumtree_update_(tree, capacity, fanout, everything, leaves.clone())
    return tree


def _same_nodes(rebuilt: Tensor, saved: Tensor, storage: int, leaf_offset: int) -> bool:
    """``saved`` (current or older layout) holds exactly the nodes of ``rebuilt``."""
    if saved.shape == rebuilt.shape:
        return torch.equal(rebuilt, saved)
    # Older layout: row 0 the sums, row 1 the mins of every level (leaves included).
    leaves = saved[0, leaf_offset:]
    leaf_mins = torch.where(leaves > 0, leaves, torch.full_like(leaves, float("inf")))
    return (torch.equal(saved[0], rebuilt[:storage]) and torch.equal(saved[1, :leaf_offset], rebuilt[storage:])
            and torch.equal(saved[1, leaf_offset:], leaf_mins))


def max_raw_priority(capacity: int, alpha: float = 1.0) -> float:
    """The largest ``priority + eps`` a tree of ``capacity`` leaves accepts:
    ``(priority + eps) ** alpha <= DBL_MAX / (2 * capacity)``, so the total
    can never overflow to inf (about 9e307 / capacity for alpha = 1)."""
    return _reference.max_raw_priority(capacity, alpha)


def _validate_update(
    capacity: int, index: Tensor, priority: Tensor, name: str = "priority", alpha: float = 1.0, eps: float = 0.0
) -> None:
    # One fused device reduction and a single host sync for every check and
    # the device's error record (an error an earlier op recorded is raised here).
    if index.device == priority.device and index.dtype == torch.int64 and priority.is_floating_point():
        bad_index = ((index < 0) | (index >= capacity)).any()
        bad_priority = ~(torch.isfinite(priority) & (priority >= 0)).all()
        too_big = ~(priority.double() + eps <= _reference.max_raw_priority(capacity, alpha)).all()
        checks = [bad_index, bad_priority, too_big]
        recorded = _ext.HAS_EXT and index.is_cuda and _ext.cuda_compiled()
        if recorded:
            checks.append(device_error_record(index.device)[0] != CLEAR)
        flags = torch.stack(checks).tolist()
        if recorded and flags[3]:
            check_device_errors(index.device)
        if flags[0]:
            raise IndexError(f"rltorch.sumtree_update_: `index` holds values outside [0, {capacity})")
        if flags[1]:
            raise ValueError(f"rltorch.sumtree_update_: `{name}` must be finite and >= 0")
        if flags[2]:
            raise ValueError(
                f"rltorch.sumtree_update_: `{name}` + eps must be <= "
                f"{_reference.max_raw_priority(capacity, alpha)} for this capacity and alpha"
            )


def _batch_shape(tree: Tensor, batch_size: int) -> tuple[int, ...]:
    return (tree.shape[0], batch_size) if tree.dim() == 2 else (batch_size,)


if _ext.HAS_EXT:

    @torch.library.register_fake("rltorch::sumtree_update_")
    def _update_fake(tree, capacity, fanout, index, priority, keep=None, alpha=1.0, eps=0.0, running_max=None):
        check_same_device("sumtree_update_", tree, "tree", index=index, priority=priority, keep=keep,
                          running_max=running_max)
        torch._check(priority.numel() == index.numel())
        return None

    @torch.library.register_fake("rltorch::per_update_priorities_")
    def _per_update_fake(tree, capacity, fanout, slot_ids, index, td_error, alpha, eps, running_max):
        check_same_device("per_update_priorities_", tree, "tree", slot_ids=slot_ids, index=index,
                          td_error=td_error, running_max=running_max)
        torch._check(td_error.numel() == index.numel())
        return None

    @torch.library.register_fake("rltorch::replay_gather")
    def _gather_fake(columns, index):
        check_same_device("replay_gather", index, "index", **{f"columns[{c}]": col for c, col in enumerate(columns)})
        if index.dim() == 2:
            return [column.new_empty((*index.shape, *column.shape[2:])) for column in columns]
        return [column.new_empty((index.shape[0], *column.shape[1:])) for column in columns]

    @torch.library.register_fake("rltorch::sumtree_find")
    def _find_fake(tree, capacity, fanout, mass):
        check_same_device("sumtree_find", tree, "tree", mass=mass)
        return torch.empty(mass.shape, dtype=torch.long, device=mass.device)

    @torch.library.register_fake("rltorch::sumtree_sample")
    def _sample_fake(tree, capacity, fanout, batch_size, beta=0.0, generator=None):
        torch._check(batch_size >= 0, lambda: f"rltorch.sumtree_sample: `batch_size` must be >= 0, got {batch_size}")
        shape = _batch_shape(tree, batch_size)
        return (
            torch.empty(shape, dtype=torch.long, device=tree.device),
            torch.empty(shape, dtype=torch.float32, device=tree.device),
        )

    @torch.library.register_fake("rltorch::replay_sample")
    def _replay_sample_fake(tree, capacity, fanout, columns, batch_size, beta=0.0, generator=None):
        torch._check(batch_size >= 0, lambda: f"rltorch.replay_sample: `batch_size` must be >= 0, got {batch_size}")
        check_same_device("replay_sample", tree, "tree", **{f"columns[{c}]": col for c, col in enumerate(columns)})
        shape = _batch_shape(tree, batch_size)
        lead = len(shape) - 1
        rows = [column.new_empty((*shape, *column.shape[1 + lead:])) for column in columns]
        return (
            torch.empty(shape, dtype=torch.long, device=tree.device),
            torch.empty(shape, dtype=torch.float32, device=tree.device),
            rows,
        )
