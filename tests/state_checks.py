"""Exact comparison of state_dicts, for the tests that check a rejected call changed nothing."""

from __future__ import annotations

import torch


def assert_same_state(a, b, path: str = "state") -> None:
    """``a`` and ``b`` are equal bit for bit: tensors by dtype, shape and value (NaN equal to NaN),
    everything else by ``==``, recursively through dicts, lists and tuples."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device, path
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=f"{path} differs")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_state(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{path}: {a!r} != {b!r}"
