"""The running-max rule of sumtree_update_ and per_update_priorities_ (one rule on
CPU, CUDA and the reference; csrc/include/rltorch/sumtree.h running_max_fold):
fold every kept v = priority + eps into m by `if isnan(m) or v > m: m = v`."""

import math

import pytest
import torch

from rltorch import _reference
from rltorch.ops.sumtree import SumTree
from tests.conftest import requires_cuda, requires_ext

# CUDA runs the compare-and-swap fold (csrc/cuda/sumtree_cuda.cu atomic_running_max).
DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]

STARTS = [-math.inf, -0.0, 0.0, math.nan, math.inf, 0.5, 3.0]
BATCHES = {
    "zeros": [0.0, 0.0],
    "ones": [1.0, 0.25],
    "none-kept": [],
    "large": [0.1 * i for i in range(100)],  # the CPU's level-synchronous path (>= 64 entries)
}


def _fold(m: float, values) -> float:
    for v in values:
        if math.isnan(m) or v > m:
            m = v
    return m


def _same(a: float, b: float) -> bool:
    """Equal including NaN and the sign of zero."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def _update(impl, device, start, values, eps, keep_none):
    n = max(len(values), 1)
    tree = SumTree(128, device)
    index = torch.arange(n, device=device) % 128
    priority = torch.tensor(values or [2.0], dtype=torch.float64, device=device)
    keep = torch.zeros(n, dtype=torch.bool, device=device) if keep_none else None
    rm = torch.tensor([start], dtype=torch.float64, device=device)
    if impl == "ext":
        torch.ops.rltorch.sumtree_update_(tree.tree, 128, tree.fanout, index, priority, keep, 1.0, eps, rm)
    else:
        _reference.sumtree_update_(tree.tree, 128, tree.fanout, index, priority, keep, 1.0, eps, rm)
    return rm.item()


@requires_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["ext", "reference"])
@pytest.mark.parametrize("batch", list(BATCHES))
@pytest.mark.parametrize("start", STARTS, ids=str)
@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_sumtree_update_running_max_rule(device, impl, batch, start, eps):
    values = BATCHES[batch]
    got = _update(impl, device, start, values, eps, keep_none=not values)
    want = _fold(start, [v + eps for v in values])
    assert _same(got, want), (got, want)


@requires_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["ext", "reference"])
@pytest.mark.parametrize("start", STARTS, ids=str)
def test_per_update_running_max_rule(device, impl, start):
    capacity = 16
    slot_ids = torch.arange(capacity, dtype=torch.int64, device=device) + 16  # second pass: ids 16..31 live
    index = torch.tensor([16, 3, -1, 20, 31], device=device)  # 3 is stale, -1 padding
    td = torch.tensor([-0.0, 9.0, 7.0, -2.5, 0.0], dtype=torch.float64, device=device)
    rm = torch.tensor([start], dtype=torch.float64, device=device)
    tree = SumTree(capacity, device)
    op = torch.ops.rltorch.per_update_priorities_ if impl == "ext" else _reference.per_update_priorities_
    op(tree.tree, capacity, tree.fanout, slot_ids, index, td, 1.0, 0.0, rm)
    # Kept: ids 16, 20, 31 -> |td| = 0.0, 2.5, 0.0 (the stale 9.0 and the padded 7.0 never count).
    assert _same(rm.item(), _fold(start, [0.0, 2.5, 0.0]))


@requires_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["ext", "reference"])
def test_plus_zero_does_not_replace_minus_zero(device, impl):
    got = _update(impl, device, -0.0, [0.0, 0.0], 0.0, keep_none=False)
    assert got == 0.0 and math.copysign(1.0, got) == -1.0


@requires_ext
@pytest.mark.parametrize("device", DEVICES)
def test_rejected_batch_leaves_running_max(device):
    rm = torch.tensor([-math.inf], dtype=torch.float64, device=device)
    tree = SumTree(8, device)
    with pytest.raises(ValueError):
        tree.update(torch.tensor([0, 1], device=device), torch.tensor([5.0, -1.0], device=device), running_max=rm)
    assert rm.item() == -math.inf
