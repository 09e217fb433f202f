"""CartPole steps and resets beside gymnasium and EnvPool (rltorch.bench.cases.env)."""

import pytest

from benchmarks.conftest import run_case, timed_cases


@pytest.mark.parametrize("case", timed_cases("env"))
def test_env(benchmark, case):
    run_case(benchmark, case)
