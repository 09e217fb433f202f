"""ReplayBuffer and PrioritizedReplayBuffer under bad input (issue 8): every rejected call names
its argument and leaves ``state_dict()`` unchanged; stored data never keeps an autograd graph."""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltorch import _reference
from rltorch.replay import PrioritizedReplayBuffer, ReplayBuffer
from tests.checks import assert_same_state

CLASSES = [ReplayBuffer, PrioritizedReplayBuffer]
OBS = (3,)


def make(cls, capacity=16, n_step=1, **kwargs):
    return cls(capacity, obs_shape=OBS, seed=0, n_step=n_step, **kwargs)


def batch(b, seed=0, *, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(b, *OBS, generator=g, requires_grad=requires_grad)
    return dict(obs=obs, action=torch.randint(0, 2, (b,), generator=g), reward=torch.randn(b, generator=g),
                next_obs=obs * 2 if requires_grad else torch.randn(b, *OBS, generator=g),
                terminated=torch.rand(b, generator=g) < 0.2)


def step_rows(n_env, seed=0, *, requires_grad=False):
    rows = batch(n_env, seed, requires_grad=requires_grad)
    rows["truncated"] = torch.zeros(n_env, dtype=torch.bool)
    return rows


def filled(cls, n_step=1, **kwargs):
    buf = make(cls, n_step=n_step, **kwargs)
    if n_step == 1:
        buf.add(**batch(10))
    else:
        for t in range(7):
            buf.add_vector_step(**step_rows(2, t))
    return buf


def all_stored(buf) -> list[torch.Tensor]:
    tensors = [buf.obs, buf.action, buf.reward, buf.next_obs, buf.terminated, buf.discount, buf.ids]
    if buf._window is not None:
        tensors += list(buf._window.values())
    if isinstance(buf, PrioritizedReplayBuffer):
        tensors += [buf.tree.tree, buf.max_priority]
    return tensors


# ---------------------------------------------------------------- 8.5: detached storage


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("n_step", [1, 3])
def test_inputs_that_require_grad_are_stored_detached(cls, n_step):
    # Before the fix every add kept the inputs' autograd graph alive through storage
    # (2,000 adds into a 2 MB buffer grew memory by 253 MB).
    buf = make(cls, n_step=n_step)
    leaf = torch.ones(1, requires_grad=True)
    leaf_ref = weakref.ref(leaf)
    for t in range(6):
        rows = step_rows(2, t, requires_grad=True)
        rows["obs"] = rows["obs"] * leaf  # a graph reaching back to `leaf`
        rows["reward"] = rows["reward"] * leaf
        if n_step == 1:
            del rows["truncated"]
            buf.add(**rows, discount=torch.full((2,), 0.9, requires_grad=True))
        else:
            buf.add_vector_step(**rows)
    for tensor in all_stored(buf):
        assert not tensor.requires_grad and tensor.grad_fn is None
    del leaf, rows
    gc.collect()
    assert leaf_ref() is None  # nothing in the buffer holds the graph


# ---------------------------------------------------------------- 8.6: no priority mass


def test_zero_priority_mass_is_rejected_not_sampled_with_inf_weight():
    # Before the fix: index 0 with weight inf, though a zero-priority leaf is never to be returned.
    buf = make(PrioritizedReplayBuffer, eps=0.0)
    buf.add(**batch(4))
    sampled = buf.sample(4)
    buf.update_priorities(sampled.index, torch.zeros(4))
    buf.update_priorities(torch.arange(4), torch.zeros(4))
    before = buf.state_dict()
    with pytest.raises(RuntimeError, match="priority 0.*eps > 0"):
        buf.sample(8)
    assert_same_state(buf.state_dict(), before)  # not even the generator moved
    buf.update_priorities(torch.tensor([2]), torch.tensor([0.5]))
    out = buf.sample(64)
    assert (out.index == 2).all() and torch.isfinite(out.weight).all()


@pytest.mark.parametrize("cls", CLASSES)
def test_empty_buffer_sample_is_rejected(cls):
    buf = make(cls)
    with pytest.raises(RuntimeError, match="empty buffer"):
        buf.sample(4)


# ---------------------------------------------------------------- 8.8 / 8.15: constructor and sample


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("kwargs,name", [
    (dict(capacity=float("nan")), "capacity"), (dict(capacity=float("inf")), "capacity"),
    (dict(capacity=1.5), "capacity"), (dict(capacity="8"), "capacity"), (dict(capacity=True), "capacity"),
    (dict(capacity=0), "capacity"), (dict(capacity=-3), "capacity"), (dict(capacity=2**70), "capacity"),
    (dict(capacity=None), "capacity"),
    (dict(obs_shape=(-1,)), "obs_shape"), (dict(obs_shape=(2.5,)), "obs_shape"), (dict(obs_shape=None), "obs_shape"),
    (dict(action_shape=("a",)), "action_shape"),
    (dict(obs_dtype="float32"), "obs_dtype"), (dict(action_dtype=np.int64), "action_dtype"),
    (dict(device="foo"), "device"), (dict(device="meta"), "device"),
    (dict(seed=-1), "seed"), (dict(seed=2**64), "seed"), (dict(seed=1.5), "seed"), (dict(seed="0"), "seed"),
    (dict(n_step=0), "n_step"), (dict(n_step=2.5), "n_step"), (dict(n_step="3"), "n_step"),
    (dict(n_step=True), "n_step"),
    (dict(gamma=float("nan")), "gamma"), (dict(gamma=1.5), "gamma"), (dict(gamma=-0.1), "gamma"),
    (dict(gamma="0.9"), "gamma"), (dict(gamma=None), "gamma"), (dict(gamma=torch.tensor([0.9, 0.9])), "gamma"),
])
def test_constructor_errors_name_the_argument(cls, kwargs, name):
    args = {"capacity": 8, **kwargs}
    with pytest.raises((ValueError, TypeError), match=f"`{name}"):
        cls(**args)


@pytest.mark.parametrize("kwargs,name", [
    (dict(alpha=float("inf")), "alpha"), (dict(alpha=float("nan")), "alpha"), (dict(alpha=0.0), "alpha"),
    (dict(alpha=-1.0), "alpha"), (dict(alpha="0.6"), "alpha"),
    (dict(eps=float("inf")), "eps"), (dict(eps=float("nan")), "eps"), (dict(eps=-1e-6), "eps"),
    (dict(beta=float("inf")), "beta"), (dict(beta=-0.1), "beta"), (dict(beta=None), "beta"),
    (dict(fanout=3), "fanout"), (dict(validate="yes"), "validate"),
])
def test_prioritized_constructor_errors_name_the_argument(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=f"`{name}"):
        PrioritizedReplayBuffer(8, **kwargs)


def test_alpha_and_eps_limits_are_checked_up_front():
    # Before the fix alpha=inf / eps=inf were accepted and failed only after data was written.
    for kwargs in (dict(alpha=math.inf), dict(eps=math.inf)):
        with pytest.raises(ValueError):
            PrioritizedReplayBuffer(8, **kwargs)
    buf = PrioritizedReplayBuffer(8, alpha=5.0, eps=0.0)
    with pytest.raises(ValueError, match="beta"):
        buf.beta = math.nan
    assert buf.beta == 0.4


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("batch_size,error", [(-1, ValueError), (1.5, TypeError), (math.nan, TypeError),
                                              ("4", TypeError), (None, TypeError), (True, TypeError)])
def test_sample_batch_size_errors_name_batch_size(cls, batch_size, error):
    buf = filled(cls)
    before = buf.state_dict()
    with pytest.raises(error, match="`batch_size`"):
        buf.sample(batch_size)
    assert_same_state(buf.state_dict(), before)


# ---------------------------------------------------------------- add / update_priorities


def _bad_adds():
    good = batch(2)
    yield "obs", dict(good, obs=torch.zeros(2, 4))
    yield "obs", dict(good, obs=torch.zeros(3))
    yield "obs", dict(good, obs=torch.tensor(1.0))
    yield "obs", dict(good, obs=None)
    yield "obs", dict(good, obs=np.array([object(), object()]))
    yield "obs", dict(good, obs=torch.zeros(2, 3, device="meta"))
    yield "obs", dict(good, obs=torch.zeros(2, 3, dtype=torch.complex64))
    yield "action", dict(good, action=torch.tensor([0.7, 1.0]))  # would be truncated to int
    yield "action", dict(good, action=torch.zeros(3, dtype=torch.long))
    yield "reward", dict(good, reward=torch.zeros(2, 1))
    yield "next_obs", dict(good, next_obs=torch.zeros(1, 3))
    yield "terminated", dict(good, terminated=[True])
    yield "discount", dict(good, discount=torch.zeros(5))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("n_step", [1, 3])
def test_rejected_add_changes_nothing(cls, n_step):
    buf = filled(cls, n_step)
    for name, kwargs in _bad_adds():
        if name == "discount" and n_step > 1:
            continue  # add_vector_step computes the discount itself
        before = buf.state_dict()
        with pytest.raises((ValueError, TypeError), match=f"`{name}`"):
            if n_step == 1:
                buf.add(**kwargs)
            else:
                buf.add_vector_step(**kwargs, truncated=torch.zeros(2, dtype=torch.bool))
        assert_same_state(buf.state_dict(), before)


@pytest.mark.parametrize("index,td,name", [
    (torch.tensor([0, 1]), torch.ones(2, device="meta"), "td_error"),
    (torch.tensor([0, 1], device="meta"), torch.ones(2), "index"),
    (torch.tensor([0, 1]), torch.tensor([1.0, math.nan]), "td_error"),
    (torch.tensor([0, 1]), torch.tensor([1.0, math.inf]), "td_error"),
    (torch.tensor([0, 1]), torch.ones(3), "td_error"),
    (torch.tensor([0.0, 1.0]), torch.ones(2), "index"),
    (None, torch.ones(2), "index"),
    (torch.tensor([0, 1]), "x", "td_error"),
])
def test_rejected_update_priorities_changes_nothing(index, td, name):
    buf = filled(PrioritizedReplayBuffer)
    before = buf.state_dict()
    with pytest.raises((ValueError, TypeError, RuntimeError), match=f"`{name}`"):
        buf.update_priorities(index, td)
    assert_same_state(buf.state_dict(), before)


@pytest.mark.parametrize("cls", CLASSES)
def test_re_adding_views_of_the_storage(cls):
    # Rows 5..7 written to slots 6, 7, 0: the slices overlap. Before the fix torch refused the
    # copy after `added` had already moved (ids no longer matched the storage).
    buf = make(cls, capacity=8)
    rows = batch(6)
    buf.add(**rows)
    expected = [t[5:8].clone() for t in (buf.obs, buf.action, buf.reward, buf.next_obs, buf.terminated)]
    buf.add(buf.obs[5:8], buf.action[5:8], buf.reward[5:8], buf.next_obs[5:8], buf.terminated[5:8])
    slots = torch.tensor([6, 7, 0])
    for column, want in zip((buf.obs, buf.action, buf.reward, buf.next_obs, buf.terminated), expected):
        assert torch.equal(column[slots], want)
    assert len(buf) == 8 and buf.ids.tolist() == [8, 1, 2, 3, 4, 5, 6, 7]


# ---------------------------------------------------------------- load_state_dict


def _bad_buffer_dicts(sd):
    def storage(**changes):
        return {**sd, "storage": {**sd["storage"], **changes}}

    cap = sd["config"]["capacity"]
    yield "obs", storage(obs=torch.tensor([7.0, 7.0]))  # was broadcast into every slot
    yield "obs", storage(obs=sd["storage"]["obs"].double())
    yield "obs", storage(obs=sd["storage"]["obs"].to("meta"))
    yield "ids", storage(ids=torch.arange(cap))
    yield "missing", {**sd, "storage": {k: v for k, v in sd["storage"].items() if k != "reward"}}
    yield "added", {**sd, "added": -1}
    yield "added", {**sd, "added": 3.0}
    yield "ids", {**sd, "added": sd["added"] + 1}
    yield "rng_state", {**sd, "rng_state": torch.zeros(3, dtype=torch.uint8)}
    yield "rng_state", {**sd, "rng_state": sd["rng_state"].float()}
    yield "state is for", {**sd, "config": {**sd["config"], "capacity": cap + 1}}
    yield "missing", {k: v for k, v in sd.items() if k != "added"}
    yield "unexpected", {**sd, "extra": 1}
    yield "must be a dict", [("config", sd["config"])]
    if sd["window"] is not None:
        window = sd["window"]
        yield "length", {**sd, "window": {**window, "length": 99}}
        yield "head", {**sd, "window": {**window, "head": -1}}
        yield "pending", {**sd, "window": {**window, "tensors": {**window["tensors"], "pending": torch.ones(3)}}}
        yield "reward", {**sd, "window": {**window, "tensors": {**window["tensors"],
                                                                "reward": window["tensors"]["reward"][:, :1]}}}
    if "tree" in sd:
        tree = sd["tree"].clone()
        leaf = _reference.sumtree_layout(cap, sd["config"]["fanout"])[0][-1]
        tree[leaf + cap - 1] = math.nan
        yield "tree", {**sd, "tree": tree}
        yield "tree", {**sd, "tree": sd["tree"][:-1]}
        yield "max_priority", {**sd, "max_priority": torch.tensor([math.inf], dtype=torch.float64)}
        yield "beta", {**sd, "beta": -1.0}


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("n_step", [1, 3])
def test_rejected_load_state_dict_changes_nothing(cls, n_step):
    source = filled(cls, n_step)
    source.sample(5)
    sd = source.state_dict()
    buf = make(cls, n_step=n_step)
    buf.add(**batch(3, seed=9))
    for name, bad in _bad_buffer_dicts(sd):
        before = buf.state_dict()
        with pytest.raises((ValueError, TypeError), match=name):
            buf.load_state_dict(bad)
        assert_same_state(buf.state_dict(), before)
    buf.load_state_dict(sd)
    assert_same_state(buf.state_dict(), sd)  # the rebuilt tree is the saved one, bit for bit
    for x, y in zip(buf.sample(6), source.sample(6)):
        assert torch.equal(x, y)


def test_tree_for_unwritten_slots_is_rejected():
    buf = filled(PrioritizedReplayBuffer)
    sd = buf.state_dict()
    leaves = buf.tree.priorities()
    tree = sd["tree"].clone()
    offset = leaves.data_ptr() - buf.tree.tree.data_ptr()
    tree.view(-1)[offset // 8 + 15] = 1.0  # slot 15 was never written
    with pytest.raises(ValueError, match="no transition"):
        buf.load_state_dict({**sd, "tree": tree})


# ---------------------------------------------------------------- property: random call sequences


def _call_strategy(prioritized: bool):
    calls = [
        st.tuples(st.just("add"), st.integers(0, 20), st.sampled_from(["ok", "shape", "float_action", "meta"])),
        st.tuples(st.just("step"), st.sampled_from(["ok", "env_count", "grad"])),
        st.tuples(st.just("sample"), st.one_of(st.integers(-2, 8), st.just(1.5), st.just(math.nan))),
        st.tuples(st.just("load"), st.sampled_from(["good", "broadcast", "ids", "config", "rng"])),
    ]
    if prioritized:
        calls += [
            st.tuples(st.just("update"), st.lists(st.integers(-3, 40), min_size=1, max_size=6),
                      st.sampled_from([0.0, 0.5, 3.0, math.nan, math.inf, -1.0])),
            st.tuples(st.just("beta"), st.sampled_from([0.0, 0.7, -1.0, math.nan, "x"])),
        ]
    return st.one_of(*calls)


def _apply_buffer_call(buf, call, good_state):
    kind = call[0]
    if kind == "add":
        rows = batch(call[1], seed=call[1])
        if call[2] == "shape":
            rows["reward"] = torch.zeros(call[1] + 1)
        elif call[2] == "float_action":
            rows["action"] = rows["action"].float() + 0.5
        elif call[2] == "meta":
            rows["obs"] = rows["obs"].to("meta")
        return buf.add(**rows)
    if kind == "step":
        rows = step_rows(3 if call[1] == "env_count" else 2, requires_grad=call[1] == "grad")
        return buf.add_vector_step(**rows)
    if kind == "sample":
        return buf.sample(call[1])
    if kind == "update":
        return buf.update_priorities(torch.tensor(call[1]), torch.full((len(call[1]),), call[2]))
    if kind == "beta":
        buf.beta = call[1]
        return None
    sd = dict(good_state)
    if call[1] == "broadcast":
        sd["storage"] = {**sd["storage"], "obs": torch.tensor([7.0, 7.0, 7.0])}
    elif call[1] == "ids":
        sd["added"] = sd["added"] + 1
    elif call[1] == "config":
        sd["config"] = {**sd["config"], "gamma": 0.5}
    elif call[1] == "rng":
        sd["rng_state"] = torch.zeros(4, dtype=torch.uint8)
    return buf.load_state_dict(sd)


def _run_property(cls, calls, n_step):
    kwargs = {"capacity": 8, "eps": 0.0} if cls is PrioritizedReplayBuffer else {"capacity": 8}
    buf = make(cls, n_step=n_step, **kwargs)
    good_state = filled(cls, n_step, **kwargs).state_dict()
    for call in calls:
        before = buf.state_dict()
        try:
            _apply_buffer_call(buf, call, good_state)
        except (ValueError, TypeError, RuntimeError, IndexError):
            assert_same_state(buf.state_dict(), before)
    for tensor in all_stored(buf):
        assert tensor.grad_fn is None
    # Valid calls keep working after whatever was rejected.
    buf.add(**batch(4, seed=1))
    if cls is PrioritizedReplayBuffer:
        buf.update_priorities(torch.tensor([buf.added - 1]), torch.tensor([1.0]))
    out = buf.sample(5)
    assert out.obs.shape == (5, *OBS) and torch.isfinite(out.weight).all()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=st.lists(_call_strategy(False), min_size=1, max_size=12), n_step=st.sampled_from([1, 3]))
def test_property_replay_buffer_rejected_calls_leave_state_unchanged(calls, n_step):
    _run_property(ReplayBuffer, calls, n_step)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=st.lists(_call_strategy(True), min_size=1, max_size=12), n_step=st.sampled_from([1, 3]))
def test_property_prioritized_buffer_rejected_calls_leave_state_unchanged(calls, n_step):
    _run_property(PrioritizedReplayBuffer, calls, n_step)
