"""Batched sum trees ([T, size]: T trees in one call) and the fused replay_sample op:
against K separate trees and against the reference on random inputs, edge sizes,
strided and packed columns, opcheck, bad input (state and generator unchanged),
random call sequences, and trees saved in the older layout."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltorch import _reference
from rltorch.ops import set_cpu_parallel
from rltorch.ops import sumtree as sumtree_ops
from rltorch.ops.sumtree import SumTree
from tests.conftest import DEVICES, requires_cuda, requires_ext
from tests.test_ops_robustness import _op
from tests.test_sumtree import _check_invariants

DATA = Path(__file__).parent / "data"
IMPLS = ["ext", "reference"]


def _random_entries(gen, trees, capacity, batch, device, zero_fraction=0.3):
    shape = (trees, batch)
    index = torch.randint(capacity, shape, generator=gen)
    index[:, -1] = index[:, 0]  # a duplicate in every row: the last kept write wins
    priority = torch.randint(0, 50, shape, generator=gen).double()
    priority[torch.rand(shape, generator=gen) < zero_fraction] = 0.0
    keep = torch.rand(shape, generator=gen) < 0.8
    return index.to(device), priority.to(device), keep.to(device)


@pytest.fixture(params=["serial", "static"])
def parallel_mode(request):
    """Both ways the CPU kernels split work (csrc/cpu/parallel.h): results must not depend on it."""
    set_cpu_parallel(request.param)
    yield request.param
    set_cpu_parallel("adaptive")


# ---------------------------------------------------------------- batched trees = K separate trees


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("capacity,fanout,trees,batch", [
    (1, 8, 3, 4), (2, 2, 2, 9), (37, 4, 5, 20), (1000, 8, 3, 700), (4097, 16, 2, 1500), (5000, 8, 2, 3000),
])
def test_batched_trees_equal_separate_trees(device, impl, capacity, fanout, trees, batch, parallel_mode):
    if device == "cuda" and impl == "reference":
        pytest.skip("the reference runs on CUDA tensors in test_cuda.py")
    update, find = _op(impl, "sumtree_update_"), _op(impl, "sumtree_find")
    per_update, sample = _op(impl, "per_update_priorities_"), _op(impl, "sumtree_sample")
    gen = torch.Generator().manual_seed(capacity * 31 + batch)
    batched = SumTree(capacity, device, fanout, num_trees=trees)
    separate = [SumTree(capacity, device, fanout) for _ in range(trees)]
    running = torch.full((trees,), math.nan, dtype=torch.float64, device=device)
    running_each = [torch.full((1,), math.nan, dtype=torch.float64, device=device) for _ in range(trees)]
    for step in range(4):
        index, priority, keep = _random_entries(gen, trees, capacity, batch, device)
        keep = keep if step % 2 else None
        update(batched.tree, capacity, fanout, index, priority, keep, 1.0, 0.5, running)
        for t in range(trees):
            update(separate[t].tree, capacity, fanout, index[t], priority[t], None if keep is None else keep[t],
                   1.0, 0.5, running_each[t])
        for t in range(trees):
            assert torch.equal(batched.tree[t], separate[t].tree), (step, t)
            assert torch.equal(running[t : t + 1], running_each[t]) or (
                math.isnan(float(running[t])) and math.isnan(float(running_each[t])))
    _check_invariants(batched)
    mass = torch.rand(trees, 50, generator=gen, dtype=torch.float64).to(device) * batched.total().unsqueeze(1) * 1.05
    found = find(batched.tree, capacity, fanout, mass)
    for t in range(trees):
        assert torch.equal(found[t], find(separate[t].tree, capacity, fanout, mass[t]))
    # per_update_priorities_: ids of the third pass over the slots, stale and future ids mixed in.
    slot_ids = (torch.arange(capacity) + 2 * capacity).expand(trees, capacity).contiguous().to(device)
    ids = torch.randint(capacity, 4 * capacity, (trees, batch), generator=gen).to(device)
    td = torch.randn(trees, batch, generator=gen, dtype=torch.float64).to(device)
    per_update(batched.tree, capacity, fanout, slot_ids, ids, td, 0.6, 1e-3, running)
    for t in range(trees):
        per_update(separate[t].tree, capacity, fanout, slot_ids[t], ids[t], td[t], 0.6, 1e-3, running_each[t])
        torch.testing.assert_close(batched.tree[t], separate[t].tree, rtol=0, atol=0)
        assert torch.equal(running[t : t + 1], running_each[t])
    if device == "cpu" and bool((batched.total() > 0).all()):
        # The batch draws [T, B] uniforms in one go; on the CPU that is tree after tree.
        index, weight = sample(batched.tree, capacity, fanout, 64, 0.4, torch.Generator().manual_seed(9))
        draws = torch.Generator().manual_seed(9)
        for t in range(trees):
            index_t, weight_t = sample(separate[t].tree, capacity, fanout, 64, 0.4, draws)
            assert torch.equal(index[t], index_t) and torch.equal(weight[t], weight_t)


@requires_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("alpha", [1.0, 0.6])
def test_batched_kernels_equal_reference_on_random_storm(device, alpha, parallel_mode):
    gen = torch.Generator().manual_seed(3)
    ops = torch.ops.rltorch
    for capacity, fanout, trees in [(1, 2, 2), (9, 8, 3), (300, 4, 4), (2500, 8, 2)]:
        a = SumTree(capacity, device, fanout, num_trees=trees)
        b = SumTree(capacity, device, fanout, num_trees=trees)
        ra = torch.ones(trees, dtype=torch.float64, device=device)
        rb = ra.clone()
        for _ in range(6):
            batch = int(torch.randint(1, 2 * capacity + 3, (1,), generator=gen))
            index, priority, keep = _random_entries(gen, trees, capacity, batch, device)
            ops.sumtree_update_(a.tree, capacity, fanout, index, priority, keep, alpha, 1e-6, ra)
            _reference.sumtree_update_(b.tree, capacity, fanout, index, priority, keep, alpha, 1e-6, rb)
            if alpha == 1.0:
                assert torch.equal(a.tree, b.tree)
            else:  # libm pow and torch.pow may differ by an ulp
                torch.testing.assert_close(a.tree, b.tree, rtol=1e-13, atol=0)
                b.tree.copy_(a.tree)
            assert torch.equal(ra, rb)
        _check_invariants(a)
        mass = torch.rand(trees, 40, generator=gen, dtype=torch.float64).to(device) * a.total().unsqueeze(1)
        assert torch.equal(ops.sumtree_find(a.tree, capacity, fanout, mass),
                           _reference.sumtree_find(b.tree, capacity, fanout, mass))
        if bool((a.total() > 0).all()):
            columns = [torch.randn(trees, capacity, 3, generator=gen).to(device),
                       torch.arange(trees * capacity, device=device).view(trees, capacity)]
            got = ops.replay_sample(a.tree, capacity, fanout, columns, 33, 0.4,
                                    torch.Generator(device).manual_seed(4))
            want = _reference.replay_sample(b.tree, capacity, fanout, columns, 33, 0.4,
                                            torch.Generator(device).manual_seed(4))
            assert torch.equal(got[0], want[0])
            torch.testing.assert_close(got[1], want[1], rtol=1e-6, atol=0)  # powf and torch.pow
            for x, y in zip(got[2], want[2]):
                assert torch.equal(x, y)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize("trees", [None, 3])
def test_per_update_td_errors_of_any_float_dtype_equal_the_reference(device, dtype, trees):
    # The CPU kernel reads float32 td errors without converting them (a float32
    # loss's output, every training step); every dtype must give the reference's bits.
    gen = torch.Generator().manual_seed(7)
    ops = torch.ops.rltorch
    for capacity, fanout, batch in [(1, 2, 3), (37, 4, 50), (64, 8, 100), (3000, 8, 700)]:  # 1, 64: slots by mask
        count = trees or 1
        a, b = SumTree(capacity, device, fanout, num_trees=trees), SumTree(capacity, device, fanout, num_trees=trees)
        # Each tree's slots hold the ids of its first or second pass over the buffer.
        ids = torch.arange(capacity) + capacity * torch.randint(0, 2, (count, 1), generator=gen)
        index = torch.randint(0, 2 * capacity, (count, batch), generator=gen)  # stale ids, and duplicates
        index[:, -1] = index[:, 0]
        td = torch.randn(count, 2 * batch, generator=gen).to(dtype)[:, ::2]  # not contiguous
        td[:, 1 % batch] = 0.0
        if trees is None:
            ids, index, td = ids[0], index[0], td[0]
        ids, index, td = ids.to(device), index.to(device), td.to(device)
        ra = torch.full((count,), math.nan, dtype=torch.float64, device=device)
        rb = ra.clone()
        ops.per_update_priorities_(a.tree, capacity, fanout, ids, index, td, 1.0, 1e-6, ra)
        _reference.per_update_priorities_(b.tree, capacity, fanout, ids, index, td, 1.0, 1e-6, rb)
        assert torch.equal(a.tree, b.tree)
        assert torch.equal(ra.nan_to_num(-1.0), rb.nan_to_num(-1.0))  # NaN: no kept entry in that tree
        # A non-finite td error anywhere: rejected before any write, on CPU.
        if device == "cpu":
            before, running = a.tree.clone(), ra.clone()
            bad = td.clone()
            bad.view(-1)[-1] = math.inf
            with pytest.raises(ValueError, match="`td_error` holds inf"):
                ops.per_update_priorities_(a.tree, capacity, fanout, ids, index, bad, 1.0, 1e-6, ra)
            assert torch.equal(a.tree, before) and torch.equal(ra.nan_to_num(-1.0), running.nan_to_num(-1.0))


# ---------------------------------------------------------------- replay_sample = sample + gather


def _same_bits(a, b) -> bool:
    """Equal bytes (random bytes read as floats hold NaNs, which torch.equal calls unequal)."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(
        a.contiguous().view(-1).view(torch.uint8), b.contiguous().view(-1).view(torch.uint8))


def _columns(gen, capacity, device, trees=None):
    """Fields of every kind: a row-packed storage's strided views, plain and strided columns,
    bytes of odd sizes, more columns than one CUDA launch copies."""
    lead = () if trees is None else (trees,)
    rows = torch.randint(0, 255, (*lead, capacity, 64), generator=gen, dtype=torch.uint8).to(device)
    packed = [rows[..., 0:16].view(torch.float32), rows[..., 16:24].view(torch.int64).squeeze(-1),
              rows[..., 24], rows[..., 25:28]]
    plain = [torch.randn(*lead, capacity, 2, 3, generator=gen).to(device),
             torch.randint(0, 9, (*lead, capacity), generator=gen).to(device),
             torch.rand(*lead, capacity, generator=gen).to(device) < 0.5,
             torch.randn(*lead, capacity, 4, 2, generator=gen).to(device)[..., 0]]  # rows not contiguous
    extra = [torch.randn(*lead, capacity, generator=gen).to(device) for _ in range(8)]
    return packed + plain + extra


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("trees", [None, 3])
def test_replay_sample_equals_sample_then_gather(device, impl, trees):
    replay_sample, sample, gather = (_op(impl, name) for name in ("replay_sample", "sumtree_sample", "replay_gather"))
    gen = torch.Generator().manual_seed(2)
    capacity = 200
    tree = SumTree(capacity, device, 4, num_trees=trees)
    shape = (capacity,) if trees is None else (trees, capacity)
    priority = torch.rand(shape, generator=gen, dtype=torch.float64)
    priority[torch.rand(shape, generator=gen) < 0.4] = 0.0
    tree.update(torch.arange(capacity).expand(shape).contiguous().to(device), priority.to(device))
    columns = _columns(gen, capacity, device, trees)
    index, weight, rows = replay_sample(
        tree.tree, capacity, 4, columns, 77, 0.5, torch.Generator(device).manual_seed(1)
    )
    index2, weight2 = sample(tree.tree, capacity, 4, 77, 0.5, torch.Generator(device).manual_seed(1))
    assert torch.equal(index, index2) and torch.equal(weight, weight2)
    assert len(rows) == len(columns)
    expected = gather(columns, index)
    for got, want, column in zip(rows, expected, columns):
        assert got.dtype == column.dtype and got.is_contiguous()
        assert _same_bits(got, want)
    assert bool((priority.to(device).gather(-1, index) > 0).all())  # zero priorities are never sampled
    # No columns, and zero samples: shapes only.
    index, weight, rows = replay_sample(tree.tree, capacity, 4, [], 0, 0.0)
    assert index.shape == ((0,) if trees is None else (trees, 0)) and rows == []




@requires_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op_name", ["sumtree_sample", "replay_sample"])
@pytest.mark.parametrize("trees", [None, 2])
def test_samples_draw_the_reference_stream_and_leave_the_generator_where_it_does(device, op_name, trees):
    # The CPU kernels draw their uniforms without torch.rand: the same values, in
    # the same order, and the generator advanced by exactly as many draws, so a
    # seeded run samples the same transitions on either side and after any switch.
    gen = torch.Generator().manual_seed(11)
    capacity, fanout = 300, 8
    tree = SumTree(capacity, device, fanout, num_trees=trees)
    shape = (capacity,) if trees is None else (trees, capacity)
    priority = torch.rand(shape, generator=gen, dtype=torch.float64)
    tree.update(torch.arange(capacity).expand(shape).contiguous().to(device), priority.to(device))
    columns = _columns(gen, capacity, device, trees)
    args = {"sumtree_sample": (), "replay_sample": (columns,)}[op_name]
    kernel, reference = _op("ext", op_name), _op("reference", op_name)
    for batch in (1, 31, 256):
        mine, theirs = torch.Generator(device).manual_seed(batch), torch.Generator(device).manual_seed(batch)
        got = kernel(tree.tree, capacity, fanout, *args, batch, 0.4, mine)
        want = reference(tree.tree, capacity, fanout, *args, batch, 0.4, theirs)
        assert torch.equal(got[0], want[0]), batch
        assert torch.equal(mine.get_state(), theirs.get_state()), batch
    # No generator: both draw from the default one, which each advances alike.
    torch.manual_seed(5)
    got = kernel(tree.tree, capacity, fanout, *args, 64, 0.4, None)
    after_kernel = torch.rand(3, dtype=torch.float64, device=device)
    torch.manual_seed(5)
    want = reference(tree.tree, capacity, fanout, *args, 64, 0.4, None)
    assert torch.equal(got[0], want[0])
    assert torch.equal(after_kernel, torch.rand(3, dtype=torch.float64, device=device))
@requires_ext
@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_batched_and_fused_ops(device):
    tree = SumTree(37, device=device, fanout=4, num_trees=3)
    tree.update(torch.arange(37, device=device).expand(3, 37).contiguous(),
                torch.rand(3, 37, dtype=torch.float64, device=device) + 0.1)
    index = torch.tensor([[3, 5, 3], [0, 36, 36], [1, 2, 3]], device=device)
    priority = torch.rand(3, 3, dtype=torch.float64, device=device)
    running = torch.ones(3, dtype=torch.float64, device=device)
    slot_ids = torch.arange(37, device=device).expand(3, 37).contiguous()
    columns = [torch.rand(3, 37, 4, device=device), torch.arange(3 * 37, device=device).view(3, 37)]
    single = SumTree(37, device=device, fanout=4)
    single.update(torch.arange(37, device=device), torch.rand(37, dtype=torch.float64, device=device) + 0.1)
    ops = torch.ops.rltorch
    samples = [
        (ops.sumtree_update_.default, (tree.tree.clone(), 37, 4, index, priority, None, 0.6, 1e-6, running.clone())),
        (ops.sumtree_find.default, (tree.tree, 37, 4, torch.rand(3, 5, dtype=torch.float64, device=device))),
        (ops.sumtree_sample.default, (tree.tree, 37, 4, 16, 0.4)),
        (ops.per_update_priorities_.default,
         (tree.tree.clone(), 37, 4, slot_ids, index, priority - 0.5, 0.6, 1e-6, running.clone())),
        (ops.per_update_priorities_.default,  # float32 td errors: read as they are on the CPU
         (tree.tree.clone(), 37, 4, slot_ids, index, (priority - 0.5).float(), 0.6, 1e-6, running.clone())),
        (ops.replay_sample.default, (tree.tree, 37, 4, columns, 8, 0.4)),
        (ops.replay_sample.default, (single.tree, 37, 4, [c[0] for c in columns], 8, 0.4)),
        (ops.replay_gather.default, (columns, index)),
    ]
    for op, args in samples:
        torch.library.opcheck(op, args)


@requires_ext
@pytest.mark.parametrize("device", DEVICES)
def test_compile_replay_sample_fullgraph(device):
    tree = SumTree(100, device=device, num_trees=2)
    tree.update(torch.arange(100, device=device).expand(2, 100).contiguous(),
                torch.rand(2, 100, dtype=torch.float64, device=device) + 0.1)
    columns = [torch.randn(2, 100, 3, device=device)]

    def step(tree_tensor):
        index, weight, rows = torch.ops.rltorch.replay_sample(tree_tensor, 100, tree.fanout, columns, 16, 0.4)
        return index, weight * 2, rows[0].sum(-1)

    compiled = torch.compile(step, fullgraph=True, backend="eager" if device == "cpu" else "inductor")
    index, weight, total = compiled(tree.tree)
    assert index.shape == (2, 16) and weight.shape == (2, 16) and total.shape == (2, 16)
    assert torch.all(weight <= 2.0)


# ---------------------------------------------------------------- bad input: named, nothing changed


def _bad_batched_calls(device):
    tree = SumTree(10, device=device, fanout=2, num_trees=3)
    t = tree.tree
    good_index = torch.zeros(3, 2, dtype=torch.long, device=device)
    good_p = torch.ones(3, 2, dtype=torch.float64, device=device)
    rm = torch.ones(3, dtype=torch.float64, device=device)
    ids = torch.arange(10, device=device).expand(3, 10).contiguous()
    col = torch.zeros(3, 10, 2, device=device)
    return tree, [
        ("sumtree_update_", (t, 10, 2, good_index[:2], good_p[:2]), RuntimeError, "`index` must have a leading"),
        ("sumtree_update_", (t, 10, 2, good_index.view(-1), good_p.view(-1)), RuntimeError, "one row per tree"),
        ("sumtree_update_", (t, 10, 2, good_index, good_p, None, 1.0, 0.0, rm[:1]), RuntimeError,
         "`running_max` must be a contiguous float64 tensor of 3 elements"),
        ("sumtree_update_", (t, 10, 2, good_index + torch.tensor([[0], [0], [10]], device=device), good_p),
         IndexError, "`index` holds 10 at position 4"),
        ("sumtree_update_", (t.view(-1), 10, 2, good_index, good_p), RuntimeError, "`tree` must have shape"),
        ("sumtree_find", (t, 10, 2, torch.zeros(2, 4, dtype=torch.float64, device=device)), RuntimeError,
         "`mass` must have a leading dimension of 3"),
        ("per_update_priorities_", (t, 10, 2, ids[0], good_index, good_p, 1.0, 0.0, rm), RuntimeError,
         r"`slot_ids` must be int64 of shape \[3, 10\]"),
        ("per_update_priorities_", (t, 10, 2, ids, good_index, good_p, 1.0, 0.0, rm[:2]), RuntimeError,
         "`running_max`"),
        ("per_update_priorities_", (t, 10, 2, ids, good_index, good_p * 1e308 * 10, 1.0, 0.0, rm), ValueError,
         "`td_error` holds inf"),
        ("replay_sample", (t, 10, 2, [col[0]], 4, 0.0), RuntimeError, r"`columns\[0\]` must have shape \[3, 10, ...\]"),
        ("replay_sample", (t, 10, 2, [col[:, :9]], 4, 0.0), RuntimeError, r"`columns\[0\]`"),
        ("replay_sample", (t, 10, 2, [col], -1, 0.0), ValueError, "`batch_size` must be >= 0"),
        ("replay_sample", (t, 10, 2, [col], 4, math.inf), ValueError, "`beta` must be finite"),
        ("replay_sample", (t, 10, 2, [col], 4, 0.0), ValueError, "tree 0 of the batch holds no priority mass"),
        ("replay_gather", ([col], torch.zeros(2, 3, dtype=torch.long, device=device)), RuntimeError,
         r"`columns\[0\]` must have shape \[2, "),
    ]


@pytest.mark.parametrize("device", ["cpu"])  # CUDA reports value errors through the device record
@pytest.mark.parametrize("impl", IMPLS)
def test_bad_batched_calls_are_named_and_change_nothing(device, impl):
    tree, calls = _bad_batched_calls(device)
    for name, args, exc, pattern in calls:
        before = tree.tree.clone()
        generator = torch.Generator(device).manual_seed(0)
        state = generator.get_state()
        extra = (generator,) if name == "replay_sample" else ()
        with pytest.raises(exc, match=pattern):
            _op(impl, name)(*args, *extra)
        assert torch.equal(tree.tree, before), name
        assert torch.equal(generator.get_state(), state), name  # rejected before drawing


def test_sumtree_num_trees_is_checked():
    for bad, exc in ((0, ValueError), (-2, ValueError), (1.5, TypeError), ("3", TypeError)):
        with pytest.raises(exc, match="`num_trees`"):
            SumTree(8, num_trees=bad)
    assert SumTree(8, num_trees=1).tree.shape == (1, _reference.tree_size(8, 8))


# ---------------------------------------------------------------- state dicts


def test_older_tree_layout_loads():
    # Saved by rltorch before the min tree dropped its leaf level: a [2, storage] tensor.
    old = torch.load(DATA / "sumtree_2x_layout.pt", weights_only=True)
    assert old["tree"].shape == (2, 24)
    tree = SumTree(13, fanout=4)
    tree.load_state_dict(old)
    assert torch.equal(tree.priorities(), (torch.arange(13) % 5).double())
    assert float(tree.total()) == float(old["tree"][0, 0]) and float(tree.min()) == float(old["tree"][1, 0])
    _check_invariants(tree)
    corrupt = {**old, "tree": old["tree"].clone()}
    corrupt["tree"][1, 0] = 0.5  # a min-tree node that is not the min of its children
    with pytest.raises(ValueError, match="not a consistent sum tree"):
        SumTree(13, fanout=4).load_state_dict(corrupt)


def test_batched_state_dict_round_trip_and_mismatch():
    tree = SumTree(20, num_trees=3)
    tree.update(torch.randint(20, (3, 15)), torch.rand(3, 15, dtype=torch.float64))
    state = tree.state_dict()
    other = SumTree(20, num_trees=3)
    other.load_state_dict(state)
    assert torch.equal(other.tree, tree.tree)
    with pytest.raises(ValueError, match="num_trees=3"):
        SumTree(20).load_state_dict(state)
    with pytest.raises(ValueError, match="num_trees=None"):
        SumTree(20, num_trees=3).load_state_dict(SumTree(20).state_dict())
    broken = {**state, "tree": state["tree"].clone()}
    broken["tree"][1, 0] += 1.0
    before = other.tree.clone()
    with pytest.raises(ValueError, match="not a consistent sum tree"):
        other.load_state_dict(broken)
    assert torch.equal(other.tree, before)


# ---------------------------------------------------------------- property: random call sequences on a batch

CAPACITY, TREES = 12, 3


@st.composite
def _batched_calls(draw):
    calls = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["update", "bad_update", "find", "sample", "bad_sample"]))
        if kind in ("update", "bad_update"):
            n = draw(st.integers(0, 5))
            index = draw(st.lists(st.lists(st.integers(0, CAPACITY - 1), min_size=n, max_size=n),
                                  min_size=TREES, max_size=TREES))
            priority = draw(st.lists(st.lists(st.integers(0, 9), min_size=n, max_size=n), min_size=TREES,
                                     max_size=TREES))
            bad = draw(st.sampled_from(["index", "nan", "inf", "negative", "rows", "running_max"])) if (
                kind == "bad_update" and n) else None
            calls.append(("update", index, priority, bad))
        elif kind == "find":
            calls.append(("find", draw(st.lists(st.floats(-3, 200), min_size=TREES, max_size=TREES))))
        else:
            calls.append((kind, draw(st.integers(0, 6))))
    return calls


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(calls=_batched_calls())
def test_property_batched_trees_track_the_model_and_rejections_change_nothing(impl, calls):
    update, find = _op(impl, "sumtree_update_"), _op(impl, "sumtree_find")
    replay_sample = _op(impl, "replay_sample")
    tree = SumTree(CAPACITY, fanout=2, num_trees=TREES)
    model = [[0.0] * CAPACITY for _ in range(TREES)]
    columns = [torch.arange(TREES * CAPACITY).view(TREES, CAPACITY)]
    generator = torch.Generator().manual_seed(0)
    for call in calls:
        before, state = tree.tree.clone(), generator.get_state()
        running = torch.zeros(TREES, dtype=torch.float64)
        if call[0] == "update":
            _, index, priority, bad = call
            index = torch.tensor(index, dtype=torch.long).view(TREES, -1)
            priority = torch.tensor(priority, dtype=torch.float64).view(TREES, -1)
            if bad is None:
                update(tree.tree, CAPACITY, 2, index, priority, None, 1.0, 0.0, running)
                for t in range(TREES):
                    for i, p in zip(index[t].tolist(), priority[t].tolist()):
                        model[t][i] = p
                continue
            if bad == "index":
                index[-1, -1] = CAPACITY
            elif bad in ("nan", "inf", "negative"):
                priority[-1, -1] = {"nan": math.nan, "inf": math.inf, "negative": -1.0}[bad]
            elif bad == "rows":
                index, priority = index[:-1], priority[:-1]
            else:
                running = running[:-1]
            with pytest.raises((ValueError, IndexError, RuntimeError), match="rltorch"):
                update(tree.tree, CAPACITY, 2, index, priority, None, 1.0, 0.0, running)
        elif call[0] == "find":
            mass = torch.tensor(call[1], dtype=torch.float64).view(TREES, 1)
            found = find(tree.tree, CAPACITY, 2, mass)
            for t in range(TREES):
                leaves = torch.tensor(model[t], dtype=torch.float64)
                if leaves.sum() > 0 and float(mass[t, 0]) < float(leaves.sum()):
                    expected = torch.searchsorted(leaves.cumsum(0), mass[t].clamp(min=0), right=True)
                    assert int(found[t, 0]) == int(expected[0])
        else:
            has_mass = all(sum(row) > 0 for row in model)
            if call[0] == "sample" and has_mass:
                index, weight, rows = replay_sample(tree.tree, CAPACITY, 2, columns, call[1], 0.5, generator)
                for t in range(TREES):
                    assert all(model[t][i] > 0 for i in index[t].tolist())
                assert torch.equal(rows[0], index + torch.arange(TREES).unsqueeze(1) * CAPACITY)
                continue
            bad_columns = columns if not has_mass else [columns[0][:, :-1]]
            with pytest.raises((ValueError, RuntimeError), match="rltorch"):
                replay_sample(tree.tree, CAPACITY, 2, bad_columns, call[1], 0.5, generator)
        assert torch.equal(tree.tree, before)
        assert torch.equal(generator.get_state(), state)
    for t in range(TREES):
        assert torch.equal(tree.priorities()[t], torch.tensor(model[t], dtype=torch.float64))
    _check_invariants(tree)


def test_reference_fallback_wrapper_names_non_tensors():
    tree = SumTree(4)
    with pytest.raises(TypeError, match="`columns\\[1\\]` must be a torch.Tensor"):
        sumtree_ops.replay_sample(tree.tree, 4, 8, [torch.zeros(4), [1.0]], 2)
    with pytest.raises(TypeError, match="`tree` must be a torch.Tensor"):
        sumtree_ops.replay_sample([0.0], 4, 8, [], 2)


# ---------------------------------------------------------------- the CUDA kernels' error records, decoded

# csrc/include/rltorch/device_error.h
SUMTREE_NO_MASS, SUMTREE_PRIORITY_TOO_LARGE, PER_TD_TOO_LARGE = 40, 41, 42


def _raise_recorded(code, position, value=None, aux=0):
    from rltorch.ops.device_errors import CLEAR, check_device_errors, device_error_record

    key = torch.ops.rltorch._device_error_key(code, position)
    payload = key if value is not None else CLEAR
    record = device_error_record("cpu")
    record.copy_(torch.tensor([key, payload, 0 if value is None else value, aux]))
    try:
        with pytest.raises(Exception) as info:
            check_device_errors("cpu")
    finally:
        record.copy_(torch.tensor([CLEAR, CLEAR, 0, 0]))
    return info.value


def _bits(x: float) -> int:
    import struct

    return struct.unpack("<q", struct.pack("<d", x))[0]


@requires_ext
@pytest.mark.parametrize("op", ["sumtree_sample", "replay_sample"])
@pytest.mark.parametrize("trees", [None, 3])
@pytest.mark.parametrize("total", [0.0, math.inf, math.nan])
def test_recorded_sampling_errors_raise_what_the_cpu_raises(op, trees, total):
    tree = SumTree(6, num_trees=trees)
    tree.update(torch.zeros((3, 1) if trees else (1,), dtype=torch.long),
                torch.ones((3, 1) if trees else (1,), dtype=torch.float64))
    bad_tree = 2 if trees else 0
    if trees:
        tree.tree[bad_tree, 0] = total
    else:
        tree.tree[0] = total
    args = (tree.tree, 6, 8, *([[]] if op == "replay_sample" else []), 4, 0.0)
    with pytest.raises(ValueError) as cpu:
        getattr(torch.ops.rltorch, op)(*args)
    from rltorch.ops.device_errors import device_error_record  # noqa: F401  (the record exists on every build)

    op_code = 1 if op == "replay_sample" else 0
    position = bad_tree * 4 + op_code * 2 + (1 if trees else 0)  # device_error.h::sampling_position
    recorded = _raise_recorded(SUMTREE_NO_MASS, position, _bits(total))
    assert type(recorded) is ValueError and str(recorded) == str(cpu.value)
    without_payload = _raise_recorded(SUMTREE_NO_MASS, position)
    assert f"rltorch.{op}:" in str(without_payload) and "no priority mass" in str(without_payload)


@requires_ext
def test_recorded_bound_errors_raise_what_the_cpu_raises():
    tree = SumTree(4, fanout=2)
    bound = sumtree_ops.max_raw_priority(4, 1.0)
    with pytest.raises(ValueError) as cpu:
        tree.update(torch.tensor([0, 1]), torch.tensor([1.0, bound * 2], dtype=torch.float64))
    recorded = _raise_recorded(SUMTREE_PRIORITY_TOO_LARGE, 1, _bits(bound * 2), _bits(bound))
    assert type(recorded) is ValueError and str(recorded) == str(cpu.value)
    running = torch.ones(1, dtype=torch.float64)
    with pytest.raises(ValueError) as cpu:
        torch.ops.rltorch.per_update_priorities_(tree.tree, 4, 2, torch.arange(4), torch.tensor([0, 1, 2]),
                                                 torch.tensor([1.0, 2.0, -bound * 3], dtype=torch.float64), 1.0,
                                                 0.0, running)
    recorded = _raise_recorded(PER_TD_TOO_LARGE, 2, _bits(-bound * 3), _bits(bound))
    assert type(recorded) is ValueError and str(recorded) == str(cpu.value)
    assert "`td_error`" in str(_raise_recorded(PER_TD_TOO_LARGE, 2))


@requires_cuda
def test_cuda_records_what_the_cpu_raises_and_writes_the_rest():
    from rltorch.ops.device_errors import check_device_errors

    check_device_errors("cuda")
    tree = SumTree(6, "cuda", num_trees=2)
    tree.update(torch.tensor([[0], [0]], device="cuda"), torch.tensor([[1.0], [0.0]], device="cuda"))  # tree 1: no mass
    with pytest.raises(ValueError) as cpu:
        torch.ops.rltorch.replay_sample(tree.tree.cpu(), 6, 8, [], 4, 0.0)
    torch.ops.rltorch.replay_sample(tree.tree, 6, 8, [], 4, 0.0)
    with pytest.raises(ValueError) as cuda:
        check_device_errors("cuda")
    assert str(cuda.value) == str(cpu.value)
    # A td error above the bound is skipped on CUDA (a report) and the rest of the batch written.
    bound = sumtree_ops.max_raw_priority(6, 1.0)
    running = torch.ones(2, dtype=torch.float64, device="cuda")
    slot_ids = torch.arange(6, device="cuda").expand(2, 6).contiguous()
    td = torch.tensor([[2.0, bound * 4], [3.0, 1.0]], dtype=torch.float64, device="cuda")
    index = torch.tensor([[1, 2], [3, 4]], device="cuda")
    torch.ops.rltorch.per_update_priorities_(tree.tree, 6, 8, slot_ids, index, td, 1.0, 0.0, running)
    leaves = tree.priorities().cpu()
    assert leaves[0, 1] == 2.0 and leaves[0, 2] == 0.0 and leaves[1, 3] == 3.0 and leaves[1, 4] == 1.0
    with pytest.raises(ValueError, match="`td_error` holds .* at position 1; \\|td_error\\| \\+ eps must be <="):
        check_device_errors("cuda")
