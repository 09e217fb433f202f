"""Property test: random sequences of valid and invalid SumTree calls, on the
compiled kernels and on the fallback. A rejected call leaves state_dict()
unchanged; after every accepted call the tree matches a plain list of leaves
(exactly: integer priorities) and every internal node is consistent."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltorch import _ext, _reference
from rltorch.ops import sumtree as sumtree_module
from rltorch.ops.sumtree import SumTree
from tests.test_sumtree import _check_invariants

CAPACITY = 13  # not a power of any fanout: padded levels


def _bad_update(draw, capacity):
    kind = draw(st.sampled_from([
        "index_high", "index_negative", "priority_negative", "priority_nan", "priority_inf", "priority_huge",
        "index_int32", "priority_int", "length", "keep_meta", "keep_int", "alpha", "eps", "running_max_alias",
        "running_max_float32", "priority_meta",
    ]))
    n = draw(st.integers(1, 6))
    index = torch.tensor(draw(st.lists(st.integers(0, capacity - 1), min_size=n, max_size=n)))
    priority = torch.tensor(draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)), dtype=torch.float64)
    kwargs = {}
    position = draw(st.integers(0, n - 1))
    if kind == "index_high":
        index[position] = capacity + draw(st.integers(0, 5))
    elif kind == "index_negative":
        index[position] = -draw(st.integers(1, 5))
    elif kind == "priority_negative":
        priority[position] = -0.5
    elif kind == "priority_nan":
        priority[position] = math.nan
    elif kind == "priority_inf":
        priority[position] = math.inf
    elif kind == "priority_huge":
        priority[position] = 1e308
    elif kind == "index_int32":
        index = index.int()
    elif kind == "priority_int":
        priority = priority.long()
    elif kind == "length":
        priority = torch.cat([priority, priority[:1]])
    elif kind == "keep_meta":
        kwargs["keep"] = torch.ones(n, dtype=torch.bool, device="meta")
    elif kind == "keep_int":
        kwargs["keep"] = torch.ones(n, dtype=torch.int64)
    elif kind == "alpha":
        kwargs["alpha"] = draw(st.sampled_from([0.0, -1.0, math.inf, math.nan]))
    elif kind == "eps":
        kwargs["eps"] = draw(st.sampled_from([-1e-3, math.inf, math.nan]))
    elif kind == "running_max_alias":
        kwargs["running_max"] = "alias"
    elif kind == "running_max_float32":
        kwargs["running_max"] = torch.zeros(1)
    elif kind == "priority_meta":
        priority = priority.to("meta")
    return index, priority, kwargs


@st.composite
def calls(draw):
    ops = []
    for _ in range(draw(st.integers(1, 25))):
        op = draw(st.sampled_from(["update", "bad_update", "find", "bad_find", "sample", "bad_sample",
                                   "save", "load", "bad_load"]))
        if op == "update":
            n = draw(st.integers(0, 8))
            index = torch.tensor(draw(st.lists(st.integers(0, CAPACITY - 1), min_size=n, max_size=n)),
                                 dtype=torch.int64)
            priority = torch.tensor(draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)), dtype=torch.float64)
            keep = draw(st.none() | st.lists(st.booleans(), min_size=n, max_size=n))
            ops.append((op, (index, priority, None if keep is None else torch.tensor(keep, dtype=torch.bool))))
        elif op == "bad_update":
            ops.append((op, _bad_update(draw, CAPACITY)))
        elif op == "find":
            ops.append((op, torch.tensor(draw(st.lists(st.floats(-5, 300), min_size=1, max_size=6)),
                                         dtype=torch.float64)))
        elif op == "bad_find":
            ops.append((op, draw(st.sampled_from(["int", "meta"]))))
        elif op == "sample":
            ops.append((op, (draw(st.integers(0, 16)), draw(st.floats(0, 2)))))
        elif op == "bad_sample":
            ops.append((op, draw(st.sampled_from([(-1, 0.0), (4, -1.0), (4, math.nan), (1.5, 0.0), (True, 0.0)]))))
        elif op == "bad_load":
            ops.append((op, draw(st.sampled_from(["node", "leaf_negative", "leaf_nan", "shape", "dtype", "capacity",
                                                   "missing"]))))
        else:
            ops.append((op, None))
    return ops


def _corrupt(state, kind, tree):
    state = {key: (value.clone() if isinstance(value, torch.Tensor) else value) for key, value in state.items()}
    leaf = tree._leaf_offset
    if kind == "node":
        state["tree"][0] += 1.0
    elif kind == "leaf_negative":
        state["tree"][leaf] = -1.0
    elif kind == "leaf_nan":
        state["tree"][leaf + 1] = math.nan
    elif kind == "shape":
        state["tree"] = state["tree"][:1].clone()
    elif kind == "dtype":
        state["tree"] = state["tree"].float()
    elif kind == "capacity":
        state["capacity"] = CAPACITY + 1
    else:
        del state["tree"]
    return state


@pytest.fixture(params=["ext", "reference"])
def impl(request, monkeypatch):
    if request.param == "ext":
        if not _ext.HAS_EXT:
            pytest.skip("compiled extension not loaded")
        return "ext"
    for name, ref in (("_UPDATE", _reference.sumtree_update_), ("_FIND", _reference.sumtree_find),
                      ("_SAMPLE", _reference.sumtree_sample)):
        monkeypatch.setattr(sumtree_module, name, (None, None, ref))
    return "reference"


# The fixture only picks the implementation: sharing it across examples is intended.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=calls(), fanout=st.sampled_from([2, 4, 8, 16]))
def test_random_call_sequences(impl, sequence, fanout):
    tree = SumTree(CAPACITY, fanout=fanout)
    model = [0.0] * CAPACITY
    saved = tree.state_dict()
    saved_model = list(model)
    generator = torch.Generator().manual_seed(0)
    for op, arg in sequence:
        before = tree.state_dict()["tree"]
        rejected = False
        try:
            if op == "update":
                index, priority, keep = arg
                running_max = torch.zeros(1, dtype=torch.float64)
                tree.update(index, priority, keep=keep, running_max=running_max)
                kept = [(i, p) for k, (i, p) in enumerate(zip(index.tolist(), priority.tolist()))
                        if keep is None or bool(keep[k])]
                for i, p in kept:
                    model[i] = p
                assert float(running_max) == max([p for _, p in kept], default=0.0)
            elif op == "bad_update":
                index, priority, kwargs = arg
                if kwargs.get("running_max") == "alias":
                    kwargs["running_max"] = tree.tree[-1:]
                tree.update(index, priority, **kwargs)
            elif op == "find":
                found = tree.find(arg)
                leaves = torch.tensor(model, dtype=torch.float64)
                if leaves.sum() > 0:
                    cumsum = leaves.cumsum(0)
                    expected = torch.searchsorted(cumsum, arg.clamp(min=0), right=True).clamp(max=CAPACITY - 1)
                    inside = arg < cumsum[-1]
                    assert torch.equal(found[inside], expected[inside])
                    assert all(model[i] > 0 for i in found.tolist())
            elif op == "bad_find":
                tree.find(torch.tensor([1, 2]) if arg == "int" else torch.ones(2, device="meta"))
            elif op == "sample":
                index, weight = tree.sample(arg[0], arg[1], generator)
                assert index.shape == (arg[0],) and all(model[i] > 0 for i in index.tolist())
                assert bool((weight <= 1.0).all())
            elif op == "bad_sample":
                tree.sample(*arg, generator=generator)
            elif op == "save":
                saved, saved_model = tree.state_dict(), list(model)
            elif op == "load":
                tree.load_state_dict(saved)
                model = list(saved_model)
            else:
                tree.load_state_dict(_corrupt(tree.state_dict(), arg, tree))
        except (RuntimeError, ValueError, IndexError, TypeError) as error:
            rejected = True
            assert op.startswith("bad_") or (op == "sample" and sum(model) == 0), f"{op} rejected: {error}"
            assert "rltorch" in str(error), f"{op}: an error that names nothing: {error}"
            assert torch.equal(tree.state_dict()["tree"], before), f"{op} changed the tree before failing"
        if op.startswith("bad_"):
            assert rejected, f"{op} {arg} was accepted"
        assert tree.priorities().tolist() == model
        assert float(tree.total()) == sum(model)  # exact: integer priorities
        _check_invariants(tree)
