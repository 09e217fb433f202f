"""Sum-tree search and update and the PER cycle beside PyTorch, TorchRL and cpprb (rltorch.bench.cases.replay)."""

import pytest

from benchmarks.conftest import run_case, timed_cases


@pytest.mark.parametrize("case", timed_cases("replay"))
def test_replay(benchmark, case):
    run_case(benchmark, case)
