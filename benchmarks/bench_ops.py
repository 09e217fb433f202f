"""Bellman targets, n-step returns and GAE beside eager PyTorch, torch.compile and TorchRL (rltorch.bench.cases.ops)."""

import pytest

from benchmarks.conftest import run_case, timed_cases


@pytest.mark.parametrize("case", timed_cases("ops"))
def test_ops(benchmark, case):
    run_case(benchmark, case)
