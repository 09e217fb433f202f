"""``rltorch bench``: rltorch beside the libraries it replaces, measured in one run.

    rltorch bench --quick                     # every capability, a few minutes on 2 cores
    rltorch bench --full --json full.json     # what BENCHMARKS.md is made from
    rltorch bench --only ops,replay --device cuda
    rltorch bench --compare before.json after.json

The pieces: :mod:`rltorch.bench.core` (cases, settings, timing), the cases per
capability in :mod:`rltorch.bench.cases`, :mod:`rltorch.bench.runner` (runs them
with a progress bar) and :mod:`rltorch.bench.report` (tables, targets, plots,
comparison). ``benchmarks/bench_*.py`` run the same cases under pytest-benchmark.
"""

from rltorch.bench.core import CAPABILITIES, Case, Result, Settings, SolveRun, Unavailable

__all__ = ["CAPABILITIES", "Case", "Result", "Settings", "SolveRun", "Unavailable"]
