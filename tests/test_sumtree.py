"""Sum-tree ops: exactness against cumsum + searchsorted, sampling statistics,
the duplicate rule, invariants, bad input, opcheck and torch.compile."""

import math

import pytest
import torch

from rltorch import _ext, _reference
from rltorch.ops import set_cpu_parallel
from rltorch.ops import sumtree as st
from rltorch.ops.device_errors import check_device_errors
from rltorch.ops.sumtree import SumTree
from tests.conftest import DEVICES, requires_cuda, requires_ext

FANOUTS = [2, 4, 8, 16]
CAPACITIES = [1, 2, 3, 7, 8, 9, 100, 1000, 4097]
IMPLS = ["ext", "reference"]


def _impl_fns(impl):
    if impl == "ext":
        if not _ext.HAS_EXT:
            pytest.skip("compiled extension not loaded")
        ops = torch.ops.rltorch
        return ops.sumtree_update_, ops.sumtree_find, ops.sumtree_sample
    return _reference.sumtree_update_, _reference.sumtree_find, _reference.sumtree_sample


def _integer_priorities(n, gen, zero_fraction=0.3):
    p = torch.randint(1, 20, (n,), generator=gen).to(torch.float64)
    p[torch.rand(n, generator=gen) < zero_fraction] = 0.0
    return p


def _check_invariants(tree: SumTree):
    """Every node is the fold of its children (one tree, or each tree of a batch)."""
    rows = tree.tree.reshape(-1, tree.tree.shape[-1]).cpu()
    leaves_all = tree.priorities().reshape(-1, tree.capacity).cpu()
    for row, leaves in zip(rows, leaves_all):
        _check_row(row, leaves, tree.capacity, tree.fanout)


def _check_row(row, leaves, capacity, fanout):
    offsets, widths, storage = _reference.sumtree_layout(capacity, fanout)
    assert row.numel() == storage + offsets[-1]  # sums of every level, mins of the internal ones
    sums, mins = row[:storage], row[storage:]
    K = fanout
    for level in range(len(offsets) - 1):
        width = widths[level]
        children_s = sums[offsets[level + 1] : offsets[level + 1] + width * K].view(width, K)
        if level + 2 == len(offsets):  # the leaves' mins are the leaves themselves (0 counts as +inf)
            children_m = torch.where(children_s > 0, children_s, torch.full_like(children_s, math.inf))
        else:
            children_m = mins[offsets[level + 1] : offsets[level + 1] + width * K].view(width, K)
        expect_s, half = children_s, K // 2
        while half >= 1:  # the documented fold-in-halves order
            expect_s = expect_s[:, :half] + expect_s[:, half : 2 * half]
            half //= 2
        assert torch.equal(sums[offsets[level] : offsets[level] + width], expect_s[:, 0]), f"level {level} sums"
        assert torch.equal(mins[offsets[level] : offsets[level] + width], children_m.amin(1)), f"level {level} mins"
    # Padding stays neutral.
    for level in range(len(offsets)):
        end = offsets[level + 1] if level + 1 < len(offsets) else storage
        assert torch.all(sums[offsets[level] + widths[level] : end] == 0)
        if level + 1 < len(offsets):
            assert torch.all(mins[offsets[level] + widths[level] : end] == math.inf)
    assert torch.isclose(sums[0], leaves.sum(), rtol=1e-12, atol=0)
    nonzero = leaves[leaves > 0]
    root_min = mins[0] if len(offsets) > 1 else (sums[0] if sums[0] > 0 else torch.tensor(math.inf))
    assert root_min == (nonzero.min() if nonzero.numel() else math.inf)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fanout", FANOUTS)
@pytest.mark.parametrize("capacity", CAPACITIES)
def test_find_matches_cumsum_searchsorted(device, impl, fanout, capacity):
    update, find, _ = _impl_fns(impl)
    gen = torch.Generator().manual_seed(capacity * 31 + fanout)
    tree = SumTree(capacity, device=device, fanout=fanout)
    p = _integer_priorities(capacity, gen)
    p[torch.randint(capacity, (1,), generator=gen)] = 5.0  # at least one non-zero leaf
    update(tree.tree, capacity, fanout, torch.arange(capacity, device=device), p.to(device))
    assert torch.equal(tree.priorities().cpu(), p)
    cumsum = p.cumsum(0)
    total = cumsum[-1]
    # Every integer boundary, the half-way points, and random masses.
    mass = torch.cat([torch.arange(0, int(total)).double(), torch.arange(0, int(total)).double() + 0.5,
                      torch.rand(200, generator=gen, dtype=torch.float64) * total])
    expected = torch.searchsorted(cumsum, mass, right=True)
    got = find(tree.tree, capacity, fanout, mass.to(device)).cpu()
    assert torch.equal(got, expected)
    assert torch.all(p[got] > 0)
    # u >= total and u < 0 clamp into range, never onto a zero leaf.
    last_nonzero = int(torch.nonzero(p).max())
    first_nonzero = int(torch.nonzero(p).min())
    edge = find(tree.tree, capacity, fanout, torch.tensor([total.item(), total.item() * 2, math.inf, -3.0],
                                                         dtype=torch.float64, device=device)).cpu()
    assert edge.tolist() == [last_nonzero, last_nonzero, last_nonzero, first_nonzero]
    _check_invariants(tree)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("alpha", [1.0, 0.6])
@requires_ext
def test_ext_equals_reference_on_random_storm(device, alpha):
    # alpha = 1: bit-exact. alpha != 1: libm pow and torch.pow may differ by an ulp.
    gen = torch.Generator().manual_seed(7)
    for capacity, fanout in [(1, 8), (37, 2), (1000, 8), (3001, 16), (513, 4)]:
        a, b = SumTree(capacity, device, fanout), SumTree(capacity, device, fanout)
        ra = torch.tensor([1.0], dtype=torch.float64, device=device)
        rb = ra.clone()
        for step in range(15):
            n = int(torch.randint(1, 3 * capacity + 2, (1,), generator=gen))
            idx = torch.randint(capacity, (n,), generator=gen).to(device)
            p = (torch.rand(n, generator=gen, dtype=torch.float64) * 10).to(device)
            p[torch.rand(n, generator=gen) < 0.2] = 0.0
            keep = (torch.rand(n, generator=gen) < 0.8).to(device) if step % 2 else None
            a.update(idx, p, keep=keep, alpha=alpha, eps=1e-6, running_max=ra)
            _reference.sumtree_update_(b.tree, capacity, fanout, idx, p, keep, alpha, 1e-6, rb)
            if alpha == 1.0:
                assert torch.equal(a.tree, b.tree), (capacity, fanout, step)
            else:
                torch.testing.assert_close(a.tree, b.tree, rtol=1e-13, atol=0)
                b.tree.copy_(a.tree)
            assert torch.equal(ra, rb)
        _check_invariants(a)
        mass = torch.rand(500, generator=gen, dtype=torch.float64).to(device) * a.total() * 1.01
        assert torch.equal(a.find(mass), _reference.sumtree_find(b.tree, capacity, fanout, mass))
        ia, wa = a.sample(300, beta=0.4, generator=torch.Generator(device).manual_seed(3))
        ib, wb = _reference.sumtree_sample(b.tree, capacity, fanout, 300, 0.4, torch.Generator(device).manual_seed(3))
        assert torch.equal(ia, ib)
        torch.testing.assert_close(wa, wb, rtol=1e-6, atol=0)


@requires_ext
@pytest.mark.parametrize("mode", ["serial", "static"])
@pytest.mark.parametrize("capacity,fanout,batch", [
    (1 << 16, 8, 5000), (1 << 14, 4, 3000), (100_003, 16, 20_000), (1 << 12, 2, 1500), (70_000, 8, 1 << 16),
])
def test_large_batches_split_between_threads_equal_the_reference(mode, capacity, fanout, batch):
    # Batches of 1024 kept entries and more are split by subtree between threads (static mode always
    # splits; serial never does), after one stable ordering of the whole batch: a leaf named several
    # times, far apart in the batch, still keeps its last kept value.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    set_cpu_parallel(mode)
    try:
        gen = torch.Generator().manual_seed(capacity + batch)
        tree = SumTree(capacity, fanout=fanout)
        tree.update(torch.arange(capacity), torch.rand(capacity, generator=gen, dtype=torch.float64))
        want = tree.tree.clone()
        got_max, want_max = torch.tensor([0.5], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
        for step in range(3):
            index = torch.randint(capacity, (batch,), generator=gen)
            index[batch // 2 :: 7] = index[: (batch + 13) // 14]  # many leaves named twice, far apart
            priority = torch.randint(0, 40, (batch,), generator=gen).double() / 4
            keep = torch.rand(batch, generator=gen) < 0.9 if step else None
            tree.update(index, priority, keep=keep, eps=0.25, running_max=got_max)
            _reference.sumtree_update_(want, capacity, fanout, index, priority, keep, 1.0, 0.25, want_max)
            assert torch.equal(tree.tree, want), (mode, step)
            assert torch.equal(got_max, want_max)
        _check_invariants(tree)
    finally:
        set_cpu_parallel("adaptive")
        torch.set_num_threads(threads)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
def test_duplicates_last_occurrence_wins(device, impl):
    update, _, _ = _impl_fns(impl)
    tree = SumTree(10, device=device, fanout=2)
    idx = torch.tensor([3, 5, 3, 3, 5, 9], device=device)
    p = torch.tensor([1.0, 2.0, 3.0, 4.0, 6.0, 0.5], device=device)
    update(tree.tree, 10, 2, idx, p)
    leaves = tree.priorities().cpu()
    assert leaves[3] == 4.0 and leaves[5] == 6.0 and leaves[9] == 0.5
    assert tree.total().item() == 10.5
    # With a keep mask the last *kept* occurrence wins.
    keep = torch.tensor([True, True, True, False, False, True], device=device)
    update(tree.tree, 10, 2, idx, p * 10, keep)
    leaves = tree.priorities().cpu()
    assert leaves[3] == 30.0 and leaves[5] == 20.0 and leaves[9] == 5.0
    _check_invariants(tree)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
def test_alpha_eps_and_running_max(device, impl):
    update, _, _ = _impl_fns(impl)
    tree = SumTree(4, device=device)
    rm = torch.tensor([1.0], dtype=torch.float64, device=device)
    update(tree.tree, 4, tree.fanout, torch.tensor([0, 1], device=device),
           torch.tensor([3.0, 0.0], device=device), None, 0.5, 1.0, rm)
    leaves = tree.priorities().cpu()
    assert leaves[0].item() == pytest.approx(2.0) and leaves[1].item() == pytest.approx(1.0)
    assert rm.item() == 4.0  # raw priority + eps, before alpha
    update(tree.tree, 4, tree.fanout, torch.tensor([2], device=device), torch.tensor([0.5], device=device),
           None, 0.5, 1.0, rm)
    assert rm.item() == 4.0  # a running max never decreases


@requires_cuda
@requires_ext
def test_unvalidated_cuda_update_keeps_running_max():
    # Negative or NaN priorities skip validation here; the CPU kernel would
    # raise. They must not win the running max (atomicMax on bit patterns).
    tree = SumTree(4, device="cuda")
    rm = torch.tensor([1.0], dtype=torch.float64, device="cuda")
    tree.update(torch.tensor([0, 1, 2], device="cuda"), torch.tensor([-3.0, float("nan"), 2.0], device="cuda"),
                running_max=rm, validate=False)
    assert rm.item() == 2.0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
def test_sampling_frequencies_chi_square(device, impl):
    _, _, sample = _impl_fns(impl)
    gen = torch.Generator().manual_seed(11)
    capacity = 50
    p = _integer_priorities(capacity, gen, zero_fraction=0.2)
    tree = SumTree(capacity, device=device, fanout=4)
    tree.update(torch.arange(capacity, device=device), p.to(device))
    dev_gen = torch.Generator(device).manual_seed(5)
    draws = torch.cat([sample(tree.tree, capacity, 4, 4096, 0.0, dev_gen)[0].cpu() for _ in range(25)])
    assert draws.numel() >= 100_000
    counts = torch.bincount(draws, minlength=capacity).double()
    assert counts[p == 0].sum() == 0, "zero-priority leaves must never be drawn"
    expected = p / p.sum() * draws.numel()
    nz = p > 0
    chi2 = float(((counts[nz] - expected[nz]) ** 2 / expected[nz]).sum())
    dof = int(nz.sum()) - 1
    # Stratification makes the draws *less* dispersed than multinomial, so the
    # multinomial chi-square bound (p ~ 1e-4) is conservative; it still
    # catches any systematic bias (an off-by-one leaf shift gives chi2 ~ 1e5).
    assert chi2 < dof + 4.0 * math.sqrt(2 * dof) + 10, chi2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
def test_importance_weights(device, impl):
    _, _, sample = _impl_fns(impl)
    tree = SumTree(6, device=device)
    p = torch.tensor([0.0, 1.0, 4.0, 0.0, 2.0, 9.0], device=device)
    tree.update(torch.arange(6, device=device), p)
    index, weight = sample(tree.tree, 6, tree.fanout, 64, 0.5, torch.Generator(device).manual_seed(0))
    expected = (p[index] / 1.0) ** -0.5
    torch.testing.assert_close(weight, expected.float())
    assert weight.dtype == torch.float32 and float(weight.max()) <= 1.0
    assert tree.min().item() == 1.0  # zero leaves do not count for the minimum
    _, w0 = sample(tree.tree, 6, tree.fanout, 8, 0.0, None)
    assert torch.equal(w0, torch.ones(8, device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_capacity_one_and_zero_tree(device):
    tree = SumTree(1, device=device)
    assert tree.tree.shape == (8,)  # the leaf is the root: no internal mins
    assert tree.min().item() == math.inf and tree.total().item() == 0.0
    tree.update(torch.tensor([0, 0], device=device), torch.tensor([2.0, 3.0], device=device))
    assert tree.total().item() == 3.0 and tree.min().item() == 3.0
    index, weight = tree.sample(5, beta=1.0)
    assert index.tolist() == [0] * 5 and weight.tolist() == [1.0] * 5


@pytest.mark.parametrize("device", DEVICES)
def test_update_storm_invariants_no_drift(device):
    gen = torch.Generator().manual_seed(3)
    capacity = 777
    tree = SumTree(capacity, device=device, fanout=8)
    truth = torch.zeros(capacity, dtype=torch.float64)
    for _ in range(30):
        idx = torch.randint(capacity, (97,), generator=gen)
        p = torch.rand(97, generator=gen, dtype=torch.float64) * 1e3
        tree.update(idx.to(device), p.to(device))
        for i, v in zip(idx.tolist(), p.tolist()):  # sequential assignment
            truth[i] = v
    assert torch.equal(tree.priorities().cpu(), truth)
    _check_invariants(tree)
    # Zeroing every leaf brings the root back to exactly 0 (no leftover drift).
    tree.update(torch.arange(capacity, device=device), torch.zeros(capacity, device=device))
    assert tree.total().item() == 0.0 and tree.min().item() == math.inf


BAD_UPDATES = [
    ("index", lambda d: (torch.tensor([0, 10], device=d), torch.tensor([1.0, 1.0], device=d)), IndexError),
    ("index", lambda d: (torch.tensor([-1], device=d), torch.tensor([1.0], device=d)), IndexError),
    ("priority", lambda d: (torch.tensor([1, 2], device=d), torch.tensor([1.0, math.nan], device=d)), ValueError),
    ("priority", lambda d: (torch.tensor([1, 2], device=d), torch.tensor([math.inf, 1.0], device=d)), ValueError),
    ("priority", lambda d: (torch.tensor([1, 2], device=d), torch.tensor([1.0, -0.5], device=d)), ValueError),
    ("index", lambda d: (torch.tensor([1, 2], dtype=torch.int32, device=d), torch.tensor([1.0, 1.0], device=d)),
     RuntimeError),
    ("priority", lambda d: (torch.tensor([1, 2], device=d), torch.tensor([1, 1], device=d)), RuntimeError),
    ("index", lambda d: (torch.tensor([1, 2], device="meta"), torch.tensor([1.0, 1.0], device=d)), RuntimeError),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", range(len(BAD_UPDATES)))
def test_bad_update_leaves_tree_unchanged(device, impl, case):
    name, make, exc = BAD_UPDATES[case]
    update, _, _ = _impl_fns(impl)
    tree = SumTree(10, device=device, fanout=2)
    tree.update(torch.arange(10, device=device), torch.arange(10, device=device, dtype=torch.float64))
    before = tree.tree.clone()
    index, priority = make(device)
    with pytest.raises(exc, match=f"`{name}`"):
        if impl == "ext":
            tree.update(index, priority)  # the public wrapper (validates on CUDA)
        else:
            update(tree.tree, 10, 2, index, priority)
    assert torch.equal(tree.tree, before)


@requires_ext
def test_bad_tree_and_args_are_named():
    tree = SumTree(10)
    ops = torch.ops.rltorch
    with pytest.raises(RuntimeError, match="`tree` must have shape"):
        ops.sumtree_find(tree.tree, 100, 8, torch.zeros(1, dtype=torch.float64))
    with pytest.raises(ValueError, match="`fanout`"):
        ops.sumtree_find(tree.tree, 10, 3, torch.zeros(1, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="`tree` must be float64"):
        ops.sumtree_find(tree.tree.float(), 10, 8, torch.zeros(1))
    with pytest.raises(ValueError, match="`beta`"):
        ops.sumtree_sample(tree.tree, 10, 8, 4, -1.0)
    with pytest.raises(ValueError, match="`alpha`"):
        ops.sumtree_update_(tree.tree, 10, 8, torch.tensor([1]), torch.tensor([1.0]), None, 0.0)
    with pytest.raises(RuntimeError, match="`keep`"):
        ops.sumtree_update_(tree.tree, 10, 8, torch.tensor([1]), torch.tensor([1.0]), torch.tensor([1]))
    # Priorities read from the tree itself would race with the leaf writes on a GPU.
    tree.update(torch.arange(10), torch.rand(10, dtype=torch.float64) + 0.1)
    before = tree.tree.clone()
    aliased = tree.tree[-4:]
    with pytest.raises(RuntimeError, match="must not share memory with `tree`"):
        ops.sumtree_update_(tree.tree, 10, 8, torch.tensor([0, 1, 2, 3]), aliased)
    assert torch.equal(tree.tree, before)


def _opcheck_samples(device):
    tree = SumTree(37, device=device, fanout=4)
    tree.update(torch.arange(37, device=device), torch.rand(37, dtype=torch.float64, device=device) + 0.1)
    idx = torch.tensor([3, 5, 3, 36], device=device)
    p = torch.tensor([1.0, 2.0, 3.0, 4.0], device=device)
    rm = torch.tensor([1.0], dtype=torch.float64, device=device)
    return [
        (torch.ops.rltorch.sumtree_update_.default, (tree.tree.clone(), 37, 4, idx, p)),
        (torch.ops.rltorch.sumtree_update_.default,
         (tree.tree.clone(), 37, 4, idx, p, torch.tensor([True, False, True, True], device=device), 0.6, 1e-6, rm)),
        (torch.ops.rltorch.sumtree_find.default,
         (tree.tree, 37, 4, torch.rand(3, 5, dtype=torch.float64, device=device) * tree.total())),
        (torch.ops.rltorch.sumtree_sample.default, (tree.tree, 37, 4, 16, 0.4)),
    ]


@requires_ext
@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    for op, args in _opcheck_samples(device):
        torch.library.opcheck(op, args)


@requires_ext
@pytest.mark.parametrize("device", DEVICES)
def test_compile_sample_fullgraph(device):
    tree = SumTree(100, device=device)
    tree.update(torch.arange(100, device=device), torch.rand(100, dtype=torch.float64, device=device) + 0.1)

    def per_step(tree_tensor, mass):
        index, weight = torch.ops.rltorch.sumtree_sample(tree_tensor, 100, tree.fanout, 32, 0.4)
        found = torch.ops.rltorch.sumtree_find(tree_tensor, 100, tree.fanout, mass)
        index2, _ = tree.sample(16, 0.4)  # through the public wrapper too
        return torch.cat([index, index2]), weight * 2, found

    compiled = torch.compile(per_step, fullgraph=True, backend="eager" if device == "cpu" else "inductor")
    mass = torch.rand(8, dtype=torch.float64, device=device) * tree.total()
    index, weight, found = compiled(tree.tree, mass)
    assert index.shape == (48,) and weight.shape == (32,)
    assert torch.equal(found, tree.find(mass))
    assert torch.all(weight <= 2.0)


def test_layout_matches_extension_expectations():
    # capacity -> storage must be what the C++ layout computes (the ops
    # check the shape, so a mismatch would make every ext test fail, but this
    # pins the formula itself: padded levels of ceil(width / K) nodes).
    assert _reference.sumtree_layout(1, 8) == ([0], [1], 8)
    assert _reference.sumtree_layout(9, 8) == ([0, 8, 16], [1, 2, 9], 32)
    assert _reference.sumtree_layout(8, 2) == ([0, 2, 4, 8], [1, 2, 4, 8], 16)
    offsets, widths, storage = _reference.sumtree_layout(1 << 20, 8)
    assert widths[0] == 1 and widths[-1] == 1 << 20 and len(widths) == 8
    assert all(o % 8 == 0 for o in offsets)
    assert st.DEFAULT_FANOUT in FANOUTS
    # One tree: the sums, then the mins of the internal levels only.
    assert _reference.tree_size(9, 8) == 32 + 16 and _reference.tree_size(1, 8) == 8
    assert SumTree(9).tree.shape == (48,) and SumTree(9, num_trees=3).tree.shape == (3, 48)


@pytest.mark.parametrize("device", DEVICES)
@requires_ext
def test_per_update_priorities_ext_equals_reference(device):
    gen = torch.Generator().manual_seed(5)
    capacity = 300
    ids = torch.arange(capacity, dtype=torch.int64) + 600  # third pass over the slots
    ids[torch.rand(capacity, generator=gen) < 0.1] = -1  # some empty slots
    ids = ids.to(device)
    a, b = SumTree(capacity, device), SumTree(capacity, device)
    ra = torch.ones(1, dtype=torch.float64, device=device)
    rb = ra.clone()
    # Live ids, stale ids (previous passes), negative and future ids, duplicates.
    index = torch.cat([torch.randint(0, 1200, (400,), generator=gen), torch.tensor([-1, -5, 599, 600, 600])]).to(device)
    td = torch.randn(index.numel(), generator=gen).to(device)
    torch.ops.rltorch.per_update_priorities_(a.tree, capacity, a.fanout, ids, index, td, 1.0, 1e-6, ra)
    _reference.per_update_priorities_(b.tree, capacity, b.fanout, ids, index, td, 1.0, 1e-6, rb)
    assert torch.equal(a.tree, b.tree) and torch.equal(ra, rb)
    live = (index >= 600) & (index < 900)
    live &= ids[index.remainder(capacity)] == index
    assert int((a.priorities() > 0).sum()) == len(set(index[live].tolist()))
    _check_invariants(a)
    before = a.tree.clone()
    bad_td = torch.tensor([1.0, math.nan], device=device)
    if device == "cuda":
        # No host sync on CUDA: the NaN entry is skipped, the rest written, and
        # the error is reported by check_device_errors (rltorch.ops.device_errors).
        torch.ops.rltorch.per_update_priorities_(a.tree, capacity, a.fanout, ids, index[:2], bad_td, 1.0, 0.0, ra)
        _reference.per_update_priorities_(b.tree, capacity, b.fanout, ids, index[:1], bad_td[:1], 1.0, 0.0, rb)
        assert torch.equal(a.tree, b.tree) and torch.equal(ra, rb)
        with pytest.raises(ValueError, match="`td_error` holds nan at position 1"):
            check_device_errors(device)
        return
    with pytest.raises(ValueError, match="`td_error`"):
        torch.ops.rltorch.per_update_priorities_(a.tree, capacity, a.fanout, ids, index[:2], bad_td, 1.0, 0.0, ra)
    assert torch.equal(a.tree, before)


@pytest.mark.parametrize("device", DEVICES)
@requires_ext
def test_replay_gather(device):
    cols = [torch.arange(20, device=device).float().view(10, 2), torch.arange(10, device=device),
            torch.rand(10, 3, 2, device=device)[:, :, 0]]  # the last is a non-contiguous column
    index = torch.tensor([9, 0, 3, 3], device=device)
    got = torch.ops.rltorch.replay_gather(cols, index)
    for g, c in zip(got, cols):
        assert torch.equal(g, c[index])
    if device == "cpu":
        with pytest.raises(IndexError, match="`index`"):
            torch.ops.rltorch.replay_gather(cols, torch.tensor([10]))
    with pytest.raises(RuntimeError, match="rows"):
        torch.ops.rltorch.replay_gather([cols[0], torch.zeros(3, device=device)], index)


@requires_ext
@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_replay_ops(device):
    tree = SumTree(16, device=device, fanout=2)
    ids = torch.arange(16, dtype=torch.int64, device=device) + 16
    rm = torch.ones(1, dtype=torch.float64, device=device)
    torch.library.opcheck(
        torch.ops.rltorch.per_update_priorities_.default,
        (tree.tree, 16, 2, ids, torch.tensor([16, 3, 31, 20], device=device),
         torch.tensor([0.5, -1.0, 2.0, 3.0], device=device), 0.6, 1e-6, rm),
    )
    cols = [torch.rand(16, 4, device=device), torch.arange(16, device=device)]
    torch.library.opcheck(torch.ops.rltorch.replay_gather.default, (cols, torch.tensor([1, 15, 1], device=device)))
