"""Classifier fit and expert-data collection beside the DataLoader loop and gymnasium's vector envs
(rltorch.bench.cases.classifiers; behaviour cloning's time to solve is ``rltorch bench classifiers``'s).

    python -m pytest benchmarks/bench_classifiers.py --benchmark-only --benchmark-json=classifiers.json
    RLTORCH_BENCH_MODE=quick python -m pytest benchmarks/bench_classifiers.py --benchmark-only
"""

import pytest

from benchmarks.conftest import run_case, timed_cases


@pytest.mark.parametrize("case", timed_cases("classifiers"))
def test_classifiers(benchmark, case):
    run_case(benchmark, case)
