"""Ape-X env steps/s against the number of Ray actors on a 1 ms-per-env-step CartPole, beside one process
(rltorch.bench.cases.distributed)."""

import pytest

from benchmarks.conftest import run_case, timed_cases


@pytest.mark.parametrize("case", timed_cases("distributed"))
def test_distributed(benchmark, case):
    run_case(benchmark, case)
