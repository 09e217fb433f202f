"""Adversarial input for the returns and sum-tree ops (issues 8 and 9): every
bad call fails the same way on the compiled kernel and on the pure-PyTorch
fallback, with an error naming the argument, before anything is written."""

import math
import re

import pytest
import torch

import rltorch
from rltorch import _ext, _reference
from rltorch.ops import sumtree as st
from rltorch.ops.sumtree import SumTree

IMPLS = ["ext", "reference"]


def _op(impl, name):
    if impl == "ext":
        if not _ext.HAS_EXT:
            pytest.skip("compiled extension not loaded")
        return getattr(torch.ops.rltorch, name)
    return getattr(_reference, name)


def _filled_tree(capacity=10, fanout=2):
    tree = SumTree(capacity, fanout=fanout)
    tree.update(torch.arange(capacity), torch.arange(capacity, dtype=torch.float64) + 1)
    return tree


# ---------------------------------------------------------------- #8.1 / #9.10: huge n


@pytest.mark.parametrize("impl", IMPLS)
def test_nstep_huge_n_does_not_crash(impl):
    nstep = _op(impl, "nstep_returns")
    # Used to be SIGFPE: kGrain / (N * n) with N * n overflowing int64 to 0.
    f = torch.zeros(3, 4, dtype=torch.bool)
    returns, discount, index = nstep(torch.zeros(3, 4), f, f, 2**62, 0.9)
    assert torch.equal(returns, torch.zeros(3, 4))
    assert torch.equal(index, torch.tensor([[2] * 4] * 3))
    torch.testing.assert_close(discount[0], torch.full((4,), 0.9**3))
    # 2**48 * 65,536 envs = 2**64: the same overflow with a large batch.
    reward = torch.ones(2, 65536)
    flags = torch.zeros(2, 65536, dtype=torch.bool)
    returns, discount, index = nstep(reward, flags, flags, 2**48, 0.5)
    assert torch.equal(returns[0], torch.full((65536,), 1.5)) and torch.equal(returns[1], torch.ones(65536))
    assert torch.equal(index[0], torch.ones(65536, dtype=torch.long))


def test_nstep_wrapper_huge_n_and_bad_n():
    f = torch.zeros(3, 4, dtype=torch.bool)
    want = _reference.nstep_returns(torch.ones(3, 4), f, f, 3, 0.9)
    for n in (2**62, 2**70, 10.0**30):  # beyond int64 means "to the end" too
        for got, expected in zip(rltorch.ops.nstep_returns(torch.ones(3, 4), f, f, n, 0.9), want):
            assert torch.equal(got, expected)
    for n in (True, "3", 1.5, 0, -2, math.nan):
        with pytest.raises(ValueError, match="`n` must be"):
            rltorch.ops.nstep_returns(torch.ones(3, 4), f, f, n, 0.9)


def test_nstep_huge_n_under_compile():
    if not _ext.HAS_EXT:
        pytest.skip("compiled extension not loaded")
    torch._dynamo.reset()
    f = torch.zeros(3, 4, dtype=torch.bool)
    compiled = torch.compile(lambda r: rltorch.ops.nstep_returns(r, f, f, 2**62, 0.9)[0], fullgraph=True,
                             backend="aot_eager")
    assert torch.equal(compiled(torch.ones(3, 4)), _reference.nstep_returns(torch.ones(3, 4), f, f, 3, 0.9)[0])


# ---------------------------------------------------------------- #9.10: the oracle computes like the kernel


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reference_keeps_gamma_at_accumulator_precision(dtype):
    # gamma = 0.99 rounds to 0.9902 in half (0.9883 in bfloat16): 1000 * gamma
    # was 990.2 (988.3) and so rounded to the wrong half (bfloat16) value.
    reward = torch.zeros(4, dtype=dtype)
    terminated = torch.zeros(4, dtype=torch.bool)
    next_q = torch.full((4,), 1000.0, dtype=dtype)
    exact = torch.full((4,), 0.99 * 1000.0, dtype=torch.float64).to(dtype)
    assert torch.equal(_reference.td_target(reward, terminated, next_q, gamma=0.99), exact)
    r = torch.zeros(2, 4, dtype=dtype)
    r[1] = 1000.0
    flags = torch.zeros(2, 4, dtype=torch.bool)
    returns, _, _ = _reference.nstep_returns(r, flags, flags, 2, 0.99)
    assert torch.equal(returns[0], exact)
    adv, _ = _reference.gae(torch.zeros(1, 4, dtype=dtype), torch.zeros(1, 4, dtype=dtype), next_q[None],
                            flags[:1], flags[:1], 0.99, 0.95)
    assert torch.equal(adv[0], exact)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_kernels_equal_reference_bitwise(dtype):
    if not _ext.HAS_EXT:
        pytest.skip("compiled extension not loaded")
    g = torch.Generator().manual_seed(1)
    T, N = 17, 33
    r = (torch.randn(T, N, generator=g) * 30).to(dtype)
    v = (torch.randn(T, N, generator=g) * 30).to(dtype)
    nv = (torch.randn(T, N, generator=g) * 30).to(dtype)
    term = torch.rand(T, N, generator=g) < 0.1
    trunc = torch.rand(T, N, generator=g) < 0.1
    ops = torch.ops.rltorch
    for got, want in zip(ops.gae(r, v, nv, term, term | trunc, 0.99, 0.95),
                         _reference.gae(r, v, nv, term, term | trunc, 0.99, 0.95)):
        assert torch.equal(got, want)
    for got, want in zip(ops.nstep_returns(r, term, trunc, 5, 0.97), _reference.nstep_returns(r, term, trunc, 5, 0.97)):
        assert torch.equal(got, want)
    q = (torch.randn(T * N, 3, generator=g) * 30).to(dtype)
    assert torch.equal(ops.td_target(r.reshape(-1), term.reshape(-1), q, None, None, None, 0.99),
                       _reference.td_target(r.reshape(-1), term.reshape(-1), q, gamma=0.99))


# ---------------------------------------------------------------- #8.10: no gradient, on both paths


@pytest.mark.parametrize("impl", IMPLS)
def test_targets_carry_no_gradient(impl):
    td, nstep, gae = (_op(impl, name) for name in ("td_target", "nstep_returns", "gae"))
    reward = torch.randn(6, 3, requires_grad=True)
    value = torch.randn(6, 3, requires_grad=True)
    flags = torch.zeros(6, 3, dtype=torch.bool)
    q = torch.randn(6, 3, 2, requires_grad=True)
    outputs = [td(reward, flags, q, None, None, None, 0.9), td(reward, flags, q, q, None, None, 0.9),
               *nstep(reward, flags, flags, 3, 0.9), *gae(reward, value, value, flags, flags, 0.9, 0.9)]
    for out in outputs:
        assert not out.requires_grad and out.grad_fn is None


@pytest.mark.parametrize("impl", IMPLS)
def test_replay_outputs_carry_no_gradient(impl):
    gather, find = _op(impl, "replay_gather"), _op(impl, "sumtree_find")
    column = torch.randn(5, 2, requires_grad=True)
    assert not gather([column], torch.tensor([0, 4]))[0].requires_grad
    tree = _filled_tree()
    assert not find(tree.tree, 10, 2, torch.tensor([1.0], requires_grad=True)).requires_grad


def test_public_wrappers_carry_no_gradient():
    reward = torch.randn(4, requires_grad=True)
    y = rltorch.ops.td_target(reward, torch.zeros(4, dtype=torch.bool), torch.randn(4, 2))
    assert not y.requires_grad


# ---------------------------------------------------------------- #8.6: zero priority mass


@pytest.mark.parametrize("impl", IMPLS)
def test_sampling_an_empty_or_zero_tree_raises(impl):
    sample, update = _op(impl, "sumtree_sample"), _op(impl, "sumtree_update_")
    tree = SumTree(8)
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    with pytest.raises(ValueError, match="no priority mass"):
        sample(tree.tree, 8, tree.fanout, 4, 0.4, gen)
    # All leaves 0: eps = 0 and zero TD errors.
    update(tree.tree, 8, tree.fanout, torch.arange(8), torch.zeros(8), None, 0.6, 0.0, None)
    with pytest.raises(ValueError, match="no priority mass"):
        sample(tree.tree, 8, tree.fanout, 4, 0.4, gen)
    assert torch.equal(gen.get_state(), state)  # rejected before drawing
    for total in (math.inf, math.nan):
        broken = tree.tree.clone()
        broken[0] = total
        with pytest.raises(ValueError, match="total priority is"):
            sample(broken, 8, tree.fanout, 4, 0.4, gen)


def test_sample_through_the_class_and_the_buffer_path():
    with pytest.raises(ValueError, match="no priority mass"):
        SumTree(4).sample(2)


# ---------------------------------------------------------------- #8.8: overflow of the total


@pytest.mark.parametrize("impl", IMPLS)
def test_priorities_that_would_overflow_the_total_are_rejected(impl):
    update = _op(impl, "sumtree_update_")
    tree = _filled_tree(4, 2)
    before = tree.tree.clone()
    limit = st.max_raw_priority(4)
    assert limit == torch.finfo(torch.float64).max / 8
    for priority, alpha, eps in [(1e308, 1.0, 0.0), (limit * 1.0001, 1.0, 0.0), (limit, 1.0, limit / 2),
                                 (1e200, 2.0, 0.0)]:
        with pytest.raises(ValueError, match=r"`priority` holds .*priority \+ eps must be <="):
            update(tree.tree, 4, 2, torch.tensor([0, 1]), torch.tensor([1.0, priority], dtype=torch.float64),
                   None, alpha, eps, None)
        assert torch.equal(tree.tree, before)
    # The bound itself is accepted, on every leaf, and the total stays finite.
    update(tree.tree, 4, 2, torch.arange(4), torch.full((4,), limit, dtype=torch.float64), None, 1.0, 0.0, None)
    assert math.isfinite(float(tree.total()))
    index, weight = _op(impl, "sumtree_sample")(tree.tree, 4, 2, 400, 0.4, torch.Generator().manual_seed(0))
    assert torch.equal(torch.bincount(index, minlength=4), torch.full((4,), 100))  # no collapse onto one leaf


@pytest.mark.parametrize("impl", IMPLS)
def test_td_errors_that_would_overflow_the_total_are_rejected(impl):
    per_update = _op(impl, "per_update_priorities_")
    tree = _filled_tree(4, 2)
    before = tree.tree.clone()
    running_max = torch.ones(1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"`td_error` holds -1e\+308"):
        per_update(tree.tree, 4, 2, torch.arange(4), torch.tensor([0, 1]), torch.tensor([1.0, -1e308],
                   dtype=torch.float64), 1.0, 0.0, running_max)
    assert torch.equal(tree.tree, before) and float(running_max) == 1.0


def test_cuda_validation_path_checks_the_bound_too():
    # SumTree.update(validate=True) on CUDA runs this helper (host-side check).
    with pytest.raises(ValueError, match="`priority` \\+ eps must be"):
        st._validate_update(4, torch.tensor([0]), torch.tensor([1e308], dtype=torch.float64))
    with pytest.raises(ValueError, match="`td_error` \\+ eps must be"):
        st._validate_update(4, torch.tensor([0]), torch.tensor([1.0]), name="td_error", alpha=2.0, eps=1e160)
    st._validate_update(4, torch.tensor([0]), torch.tensor([1e307], dtype=torch.float64))


@pytest.mark.parametrize("capacity", [1.5, "8", True, math.nan, math.inf, None, 8.0])
def test_sumtree_capacity_must_be_an_integer(capacity):
    with pytest.raises(TypeError, match="`capacity` must be an integer"):
        SumTree(capacity)


@pytest.mark.parametrize("capacity", [0, -3])
def test_sumtree_capacity_must_be_positive(capacity):
    with pytest.raises(ValueError, match="`capacity` must be an integer >= 1"):
        SumTree(capacity)


@pytest.mark.parametrize("fanout,exc", [(3, ValueError), (1, ValueError), (8.0, TypeError), (True, TypeError),
                                        ("8", TypeError)])
def test_sumtree_fanout_is_checked(fanout, exc):
    with pytest.raises(exc, match="`fanout`"):
        SumTree(8, fanout=fanout)


# ---------------------------------------------------------------- #8.9: meta tensors and other devices


def test_meta_arguments_are_rejected_not_dropped():
    tree = _filled_tree()
    before = tree.tree.clone()
    meta = torch.device("meta")
    index, priority = torch.tensor([0, 1]), torch.tensor([5.0, 5.0])
    cases = [
        ("keep", lambda: tree.update(index, priority, keep=torch.ones(2, dtype=torch.bool, device=meta))),
        ("running_max", lambda: tree.update(index, priority, running_max=torch.ones(1, dtype=torch.float64,
                                                                                    device=meta))),
        ("index", lambda: tree.update(index.to(meta), priority)),
        ("priority", lambda: tree.update(index, priority.to(meta))),
        ("mass", lambda: tree.find(torch.ones(2, device=meta))),
    ]
    for name, call in cases:
        with pytest.raises(RuntimeError, match=f"`{name}` is on meta"):
            call()
        assert torch.equal(tree.tree, before), name


@pytest.mark.parametrize("impl", IMPLS)
def test_meta_arguments_reach_no_kernel(impl):
    tree = _filled_tree()
    before = tree.tree.clone()
    meta = torch.device("meta")
    update, per_update = _op(impl, "sumtree_update_"), _op(impl, "per_update_priorities_")
    gather = _op(impl, "replay_gather")
    index, priority = torch.tensor([0, 1]), torch.tensor([5.0, 5.0])
    rm = torch.ones(1, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="`keep` is on meta"):
        update(tree.tree, 10, 2, index, priority, torch.ones(2, dtype=torch.bool, device=meta), 1.0, 0.0, None)
    with pytest.raises(RuntimeError, match="`running_max` is on meta"):
        update(tree.tree, 10, 2, index, priority, None, 1.0, 0.0, rm.to(meta))
    with pytest.raises(RuntimeError, match="`slot_ids` is on meta"):
        per_update(tree.tree, 10, 2, torch.arange(10, device=meta), index, priority, 1.0, 0.0, rm)
    with pytest.raises(RuntimeError, match="`td_error` is on meta"):
        per_update(tree.tree, 10, 2, torch.arange(10), index, priority.to(meta), 1.0, 0.0, rm)
    assert torch.equal(tree.tree, before)
    columns = [torch.arange(10.0), torch.arange(10)]
    with pytest.raises(RuntimeError, match="`columns\\[0\\]` is on cpu but `index` is on meta"):
        gather(columns, torch.tensor([1, 2], device=meta))
    with pytest.raises(RuntimeError, match="`columns\\[1\\]` is on meta"):
        gather([columns[0], columns[1].to(meta)], torch.tensor([1, 2]))


@pytest.mark.parametrize("impl", IMPLS)
def test_tensor_gamma_is_named_gamma(impl):
    td = _op(impl, "td_target")
    reward, flags, q = torch.zeros(4), torch.zeros(4, dtype=torch.bool), torch.zeros(4, 2)
    with pytest.raises(RuntimeError, match="`gamma` is on meta"):
        td(reward, flags, q, None, None, torch.tensor(0.9, device="meta"), 1.0)
    with pytest.raises(RuntimeError, match="`gamma` must have the dtype of `reward`"):
        td(reward, flags, q, None, None, torch.tensor(0.9, dtype=torch.float64), 1.0)
    with pytest.raises(RuntimeError, match="a tensor `gamma` must be a scalar tensor"):
        td(reward, flags, q, None, None, torch.full((3,), 0.9), 1.0)
    with pytest.raises(RuntimeError, match="`gamma` must have the dtype"):
        rltorch.ops.td_target(reward, flags, q, torch.tensor(0.9, dtype=torch.float64))


# ---------------------------------------------------------------- #8.11: aliasing the tree


@pytest.mark.parametrize("impl", IMPLS)
def test_arguments_aliasing_the_tree_are_rejected(impl):
    update, per_update = _op(impl, "sumtree_update_"), _op(impl, "per_update_priorities_")
    tree = _filled_tree(8, 2)
    t = tree.tree
    before = t.clone()
    index, priority = torch.tensor([0, 1]), torch.tensor([5.0, 5.0], dtype=torch.float64)
    as_long, as_bool = t.view(torch.int64), t.view(torch.bool)
    with pytest.raises(RuntimeError, match="`running_max` must not share memory with `tree`"):
        update(t, 8, 2, index, priority, None, 1.0, 0.0, t[-1:])  # the min tree
    with pytest.raises(RuntimeError, match="`keep` must not share memory with `tree`"):
        update(t, 8, 2, index, priority, as_bool[:2], 1.0, 0.0, None)
    with pytest.raises(RuntimeError, match="`index` must not share memory with `tree`"):
        update(t, 8, 2, as_long[-2:], priority, None, 1.0, 0.0, None)
    rm = torch.ones(1, dtype=torch.float64)
    slot_ids = torch.arange(8)
    with pytest.raises(RuntimeError, match="`running_max` must not share memory with `tree`"):
        per_update(t, 8, 2, slot_ids, index, priority, 1.0, 0.0, t[-1:])
    with pytest.raises(RuntimeError, match="`slot_ids` must not share memory with `tree`"):
        per_update(t, 8, 2, as_long[:8], index, priority, 1.0, 0.0, rm)
    with pytest.raises(RuntimeError, match="`index` must not share memory with `tree`"):
        per_update(t, 8, 2, slot_ids, as_long[-2:], priority, 1.0, 0.0, rm)
    with pytest.raises(RuntimeError, match="`td_error` must not share memory with `tree`"):
        per_update(t, 8, 2, slot_ids, index, t[-2:], 1.0, 0.0, rm)
    assert torch.equal(t, before)


# ------------------------------------------------ #8.12 / #8.15: the fallback checks what the kernels check


def _td_args(**overrides):
    args = dict(reward=torch.zeros(4), terminated=torch.zeros(4, dtype=torch.bool), next_q=torch.zeros(4, 2),
                next_q_online=None, next_action=None, discount=None, gamma=0.9)
    args.update(overrides)
    return tuple(args.values())


def _time_args(**overrides):
    args = dict(reward=torch.zeros(5, 3), value=torch.zeros(5, 3), next_value=torch.zeros(5, 3),
                terminated=torch.zeros(5, 3, dtype=torch.bool), done=torch.zeros(5, 3, dtype=torch.bool),
                gamma=0.9, lmbda=0.9)
    args.update(overrides)
    return tuple(args.values())


def _nstep_args(**overrides):
    args = dict(reward=torch.zeros(5, 3), terminated=torch.zeros(5, 3, dtype=torch.bool),
                truncated=torch.zeros(5, 3, dtype=torch.bool), n=2, gamma=0.9)
    args.update(overrides)
    return tuple(args.values())


_TREE = _filled_tree(10, 2).tree


def _update_args(**overrides):
    args = dict(tree=_TREE.clone(), capacity=10, fanout=2, index=torch.tensor([1, 2]),
                priority=torch.tensor([1.0, 2.0]), keep=None, alpha=1.0, eps=0.0, running_max=None)
    args.update(overrides)
    return tuple(args.values())


def _per_args(**overrides):
    args = dict(tree=_TREE.clone(), capacity=10, fanout=2, slot_ids=torch.arange(10), index=torch.tensor([1, 2]),
                td_error=torch.tensor([1.0, 2.0]), alpha=1.0, eps=0.0,
                running_max=torch.ones(1, dtype=torch.float64))
    args.update(overrides)
    return tuple(args.values())


BAD_CALLS = [
    # (op, args, exception, pattern naming the argument)
    (
        "td_target",
        _td_args(reward=torch.zeros(4, dtype=torch.long), next_q=torch.zeros(4, 2, dtype=torch.long)),
        RuntimeError,
        "`reward` must be a floating-point",
    ),
    (
        "td_target",
        _td_args(terminated=torch.zeros(1, dtype=torch.bool)),
        RuntimeError,
        "`terminated` must have the shape of `reward`",
    ),  # broadcastable, still rejected
    (
        "td_target",
        _td_args(next_q=torch.zeros(4, 2, dtype=torch.float64)),
        RuntimeError,
        "`next_q` must have the dtype of `reward`",
    ),
    ("td_target", _td_args(next_q=torch.zeros(1, 2)), RuntimeError, "leading dims of `next_q`"),
    ("td_target", _td_args(next_q=torch.zeros(4, 2, 2)), RuntimeError, "`next_q` must have shape"),
    ("td_target", _td_args(next_q=torch.zeros(4, 0)), RuntimeError, "`next_q` needs at least one action"),
    (
        "td_target",
        _td_args(next_q_online=torch.zeros(4, 2, dtype=torch.float64)),
        RuntimeError,
        "`next_q_online` must have the dtype of `next_q`",
    ),
    ("td_target", _td_args(next_q_online=torch.zeros(1, 2)), RuntimeError, "`next_q_online` must have the shape"),
    (
        "td_target",
        _td_args(next_q=torch.zeros(4), next_q_online=torch.zeros(4)),
        RuntimeError,
        "Double DQN needs `next_q` with an action dim",
    ),
    (
        "td_target",
        _td_args(next_action=torch.zeros(4, dtype=torch.bool)),
        RuntimeError,
        "`next_action` must hold integer",
    ),
    (
        "td_target",
        _td_args(next_action=torch.zeros(1, dtype=torch.long)),
        RuntimeError,
        "`next_action` must have the shape",
    ),
    ("td_target", _td_args(next_action=torch.tensor([0, 1, 2, 0])), IndexError, "`next_action` holds 2 at position 2"),
    (
        "td_target",
        _td_args(next_action=torch.zeros(4, dtype=torch.long), next_q_online=torch.zeros(4, 2)),
        RuntimeError,
        "either `next_q_online` or `next_action`",
    ),
    (
        "td_target",
        _td_args(terminated=torch.zeros(4, dtype=torch.complex64)),
        RuntimeError,
        "`terminated` must be bool",
    ),
    ("td_target", _td_args(gamma=1.5), ValueError, "`gamma` must lie in"),
    ("td_target", _td_args(gamma=math.nan), ValueError, "`gamma` must lie in"),
    (
        "nstep_returns",
        _nstep_args(reward=torch.zeros(5, 3, dtype=torch.int32)),
        RuntimeError,
        "`reward` must be a floating-point",
    ),
    (
        "nstep_returns",
        _nstep_args(reward=torch.tensor(1.0), terminated=torch.tensor(False), truncated=torch.tensor(False)),
        RuntimeError,
        "`reward` must be time-major",
    ),
    (
        "nstep_returns",
        _nstep_args(truncated=torch.zeros(1, 3, dtype=torch.bool)),
        RuntimeError,
        "`truncated` must have the shape of `reward`",
    ),
    ("nstep_returns", _nstep_args(n=0), ValueError, "`n` must be >= 1"),
    ("nstep_returns", _nstep_args(gamma=-0.1), ValueError, "`gamma` must lie in"),
    ("gae", _time_args(value=torch.zeros(1, 3)), RuntimeError, "`value` must have the shape of `reward`"),
    (
        "gae",
        _time_args(next_value=torch.zeros(5, 3, dtype=torch.float64)),
        RuntimeError,
        "`next_value` must have the dtype of `reward`",
    ),
    ("gae", _time_args(done=torch.zeros(5, 1, dtype=torch.bool)), RuntimeError, "`done` must have the shape"),
    ("gae", _time_args(reward=torch.zeros(5, 3, dtype=torch.long)), RuntimeError, "`reward` must be a floating"),
    ("gae", _time_args(lmbda=2.0), ValueError, "`lmbda` must lie in"),
    ("sumtree_update_", _update_args(capacity=0), ValueError, "`capacity` must be >= 1"),
    ("sumtree_update_", _update_args(fanout=3), ValueError, "`fanout` must be 2, 4, 8 or 16"),
    ("sumtree_update_", _update_args(tree=_TREE.float()), RuntimeError, "`tree` must be float64"),
    ("sumtree_update_", _update_args(tree=_TREE[:-2].clone()), RuntimeError, "`tree` must have shape"),
    (
        "sumtree_update_",
        _update_args(tree=torch.zeros(_TREE.shape[0], 2, dtype=torch.float64)[:, 0]),
        RuntimeError,
        "`tree` must be contiguous",
    ),
    (
        "sumtree_update_",
        _update_args(index=torch.tensor([1, 2], dtype=torch.int32)),
        RuntimeError,
        "`index` must be int64",
    ),
    ("sumtree_update_", _update_args(priority=torch.tensor([1, 2])), RuntimeError, "`priority` must be a floating"),
    ("sumtree_update_", _update_args(priority=torch.tensor([1.0])), RuntimeError, "`priority` .* must have one value"),
    ("sumtree_update_", _update_args(alpha=0.0), ValueError, "`alpha` must be finite and > 0"),
    ("sumtree_update_", _update_args(eps=math.inf), ValueError, "`eps` must be finite and >= 0"),
    ("sumtree_update_", _update_args(keep=torch.tensor([1, 0])), RuntimeError, "`keep` must be bool"),
    ("sumtree_update_", _update_args(keep=torch.tensor([True])), RuntimeError, "`keep` .* must have one flag"),
    (
        "sumtree_update_",
        _update_args(running_max=torch.ones(2, dtype=torch.float64)),
        RuntimeError,
        "`running_max` must be a",
    ),
    ("sumtree_update_", _update_args(running_max=torch.ones(1)), RuntimeError, "`running_max` must be a"),
    ("sumtree_update_", _update_args(index=torch.tensor([1, 10])), IndexError, "`index` holds 10 at position 1"),
    ("sumtree_update_", _update_args(index=torch.tensor([-1, 10])), IndexError, "`index` holds -1 at position 0"),
    (
        "sumtree_update_",
        _update_args(priority=torch.tensor([1.0, -2.0])),
        ValueError,
        "`priority` holds -2 at position 1",
    ),
    (
        "sumtree_update_",
        _update_args(priority=torch.tensor([math.nan, 1.0])),
        ValueError,
        "`priority` holds nan at position 0",
    ),
    (
        "sumtree_update_",
        _update_args(index=torch.tensor([1, 11]), priority=torch.tensor([-1.0, 1.0])),
        ValueError,
        "`priority` holds -1 at position 0",
    ),  # the first bad entry wins, as in the kernel's loop
    ("sumtree_find", (_TREE, 10, 2, torch.tensor([1, 2])), RuntimeError, "`mass` must be a floating"),
    ("sumtree_find", (_TREE, 11, 2, torch.tensor([1.0])), RuntimeError, "`tree` must have shape"),
    ("sumtree_sample", (_TREE, 10, 2, -1, 0.0, None), ValueError, "`batch_size` must be >= 0, got -1"),
    ("sumtree_sample", (_TREE, 10, 2, 4, -0.5, None), ValueError, "`beta` must be finite and >= 0"),
    ("sumtree_sample", (_TREE, 10, 2, 4, math.nan, None), ValueError, "`beta` must be finite and >= 0"),
    ("per_update_priorities_", _per_args(slot_ids=torch.arange(9)), RuntimeError, "`slot_ids` must be int64 of shape"),
    (
        "per_update_priorities_",
        _per_args(slot_ids=torch.arange(10, dtype=torch.int32)),
        RuntimeError,
        "`slot_ids` must be int64",
    ),
    ("per_update_priorities_", _per_args(index=torch.tensor([1.0, 2.0])), RuntimeError, "`index` must be int64"),
    ("per_update_priorities_", _per_args(td_error=torch.tensor([1, 2])), RuntimeError, "`td_error` must be a floating"),
    (
        "per_update_priorities_",
        _per_args(td_error=torch.tensor([1.0, 2.0, 3.0])),
        RuntimeError,
        "`td_error` .* must have one value",
    ),
    ("per_update_priorities_", _per_args(running_max=torch.ones(1)), RuntimeError, "`running_max` must be a"),
    ("per_update_priorities_", _per_args(alpha=math.inf), ValueError, "`alpha` must be finite"),
    ("per_update_priorities_", _per_args(eps=-1.0), ValueError, "`eps` must be finite"),
    (
        "per_update_priorities_",
        _per_args(td_error=torch.tensor([1.0, math.inf])),
        ValueError,
        "`td_error` holds inf at position 1",
    ),
    (
        "replay_gather",
        ([torch.zeros(4)], torch.tensor([0, 1], dtype=torch.int32)),
        RuntimeError,
        "`index` must be a 1-D",
    ),
    (
        "replay_gather",
        ([torch.zeros(4)], torch.zeros(2, 1, 1, dtype=torch.long)),
        RuntimeError,
        "`index` must be a 1-D",
    ),
    (
        "replay_gather",
        ([torch.zeros(4)], torch.zeros(2, 1, dtype=torch.long)),
        RuntimeError,
        "`columns\\[0\\]` must have shape \\[2, ",
    ),
    ("replay_gather", ([], torch.tensor([0])), RuntimeError, "`columns` is empty"),
    (
        "replay_gather",
        ([torch.zeros(4), torch.zeros(3)], torch.tensor([0])),
        RuntimeError,
        "`columns\\[1\\]` must have 4 rows",
    ),
    (
        "replay_gather",
        ([torch.zeros(4), torch.tensor(1.0)], torch.tensor([0])),
        RuntimeError,
        "`columns\\[1\\]` must have 4 rows",
    ),
    ("replay_gather", ([torch.zeros(4)], torch.tensor([0, 4])), IndexError, "`index` holds 4 at position 1"),
]


def _describe(case):
    op, _, _, pattern = BAD_CALLS[case]
    return f"{op}:{re.sub(r'[^a-z_]+', '-', pattern)[:40]}"


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", range(len(BAD_CALLS)), ids=_describe)
def test_bad_call_fails_alike_on_both_paths(impl, case):
    name, args, exc, pattern = BAD_CALLS[case]
    before = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    with pytest.raises(exc, match=pattern):
        _op(impl, name)(*args)
    for a, b in zip(args, before):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b) or (a.isnan().any() and torch.equal(a.isnan(), b.isnan()))


def test_sample_wrapper_names_batch_size():
    tree = _filled_tree()
    with pytest.raises(ValueError, match="`batch_size` must be >= 0, got -1"):
        tree.sample(-1)
    for bad in (1.5, "4", True):
        with pytest.raises(TypeError, match="`batch_size` must be an integer"):
            tree.sample(bad)


def test_load_state_dict_validates_before_writing():
    tree = _filled_tree(10, 2)
    good = tree.state_dict()
    before = tree.tree.clone()
    broken_node = good["tree"].clone()
    broken_node[0] += 1.0
    negative_leaf = SumTree(10, fanout=2).state_dict()
    negative_leaf["tree"][tree._leaf_offset + 9] = -1.0
    bad_states = [
        ({"capacity": 10, "fanout": 2}, "must be a dict with"),
        ({**good, "capacity": 11}, "state is for capacity=11"),
        ({**good, "tree": good["tree"].float()}, "must be a float64 tensor of shape"),
        ({**good, "tree": torch.zeros(2)}, "must be a float64 tensor of shape"),  # used to broadcast
        ({**good, "tree": [1.0]}, "must be a float64 tensor"),
        ({**good, "tree": broken_node}, "not a consistent sum tree"),
        (negative_leaf, "negative, not finite"),
        ("not a dict", "must be a dict"),
    ]
    for state, pattern in bad_states:
        with pytest.raises(ValueError, match=pattern):
            tree.load_state_dict(state)
        assert torch.equal(tree.tree, before)
    other = SumTree(10, fanout=2)
    other.load_state_dict(good)
    assert torch.equal(other.tree, tree.tree)


def test_non_tensor_and_non_number_arguments_are_named():
    f4, r4, q = torch.zeros(4, dtype=torch.bool), torch.zeros(4), torch.zeros(4, 2)
    flags = torch.zeros(3, 4, dtype=torch.bool)
    tree = _filled_tree()
    cases = [
        (lambda: rltorch.ops.td_target([0.0] * 4, f4, q), "`reward` must be a torch.Tensor, got list"),
        (lambda: rltorch.ops.td_target(r4, None, q), "`terminated` must be a torch.Tensor, got NoneType"),
        (lambda: rltorch.ops.td_target(r4, f4, q, next_action=[0, 1, 0, 1]), "`next_action` must be a torch.Tensor"),
        (lambda: rltorch.ops.nstep_returns(torch.zeros(3, 4), flags, None, 2), "`truncated` must be a torch.Tensor"),
        (lambda: rltorch.ops.gae(torch.zeros(3, 4), None, torch.zeros(3, 4), flags, flags), "`value` must be a"),
        (lambda: tree.update([0, 1], torch.ones(2)), "`index` must be a torch.Tensor, got list"),
        (lambda: tree.update(torch.tensor([0]), 1.0), "`priority` must be a torch.Tensor, got float"),
        (lambda: tree.update(torch.tensor([0]), torch.ones(1), keep=[True]), "`keep` must be a torch.Tensor or None"),
        (lambda: tree.update(torch.tensor([0]), torch.ones(1), alpha="x"), "`alpha` must be a real number"),
        (lambda: tree.update(torch.tensor([0]), torch.ones(1), eps=None), "`eps` must be a real number"),
        (lambda: tree.find([1.0]), "`mass` must be a torch.Tensor, got list"),
        (lambda: tree.sample(2, "x"), "`beta` must be a real number"),
        (lambda: tree.sample(2**70), "`batch_size` must fit in int64"),
        (lambda: SumTree(2**70), "`capacity` must fit in int64"),
        (lambda: st.replay_gather([torch.zeros(4)], [0]), "`index` must be a torch.Tensor, got list"),
        (
            lambda: st.replay_gather([torch.zeros(4), [1.0]], torch.tensor([0])),
            "`columns\\[1\\]` must be a torch.Tensor",
        ),
        (
            lambda: st.per_update_priorities_(
                tree.tree,
                10,
                2,
                torch.arange(10),
                torch.tensor([0]),
                [1.0],
                0.6,
                0.0,
                torch.ones(1, dtype=torch.float64),
            ),
            "`td_error` must be a torch.Tensor",
        ),
    ]
    before = tree.tree.clone()
    for call, pattern in cases:
        with pytest.raises((TypeError, ValueError), match=pattern):
            call()
    assert torch.equal(tree.tree, before)
