"""Runs a list of cases with a progress bar and returns their results with the
machine they ran on: the JSON ``rltorch bench`` writes and compares."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
import traceback
import warnings
from typing import Callable

from rltorch.bench import contention as contention_plan
from rltorch.bench.core import Case, Result, Settings, SolveRun, Unavailable, machine_info, time_call

SCHEMA = 1


@contextlib.contextmanager
def _quiet():
    """Peers announce themselves on import and compilers warn about the missing
    CUDA runtime; none of it belongs between the progress bar and the table."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logger.setLevel(level)


def _run_solve(case: Case, run_seed: Callable[[int], SolveRun], settings: Settings, tick) -> Result:
    runs: list[SolveRun] = []
    seeds = min(settings.seeds, case.max_seeds or settings.seeds)
    for seed in range(1, seeds + 1):
        with _quiet():
            runs.append(run_seed(seed))
        tick(f"seed {seed}/{seeds}")
    return Result.of(case, settings.device, "ok", samples=[r.seconds for r in runs], solved=[r.solved for r in runs],
                     env_steps=[r.env_steps for r in runs], extra={"runs": [r.extra for r in runs]})


def run_case(case: Case, settings: Settings, tick=lambda note: None) -> Result:
    """One case; a peer that cannot run is ``skipped``, anything else that goes wrong
    is ``error`` with its first line, so one broken peer never costs the whole run."""
    prepared = None
    try:
        with _quiet():
            prepared = case.setup(settings)
        if case.kind == "solve":
            return _run_solve(case, prepared, settings, tick)
        samples = time_call(prepared, settings)
        tick("")
        return Result.of(case, settings.device, "ok", samples=samples)
    except Unavailable as exc:
        return Result.of(case, settings.device, "skipped", reason=exc.reason, install=exc.install)
    except Exception as exc:  # noqa: BLE001 — reported per case, with the traceback in the JSON
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return Result.of(case, settings.device, "error", reason=f"{type(exc).__name__}: {first_line}",
                         extra={"traceback": traceback.format_exc()})
    finally:
        close = getattr(prepared, "close", None)
        if close is not None:
            with _quiet():
                close()


def run(cases: list[Case], settings: Settings, progress: bool = True, contention: bool = False) -> dict:
    """Every case in order, with a progress bar counting timed cases and solve seeds. With ``contention``,
    each case runs idle, beside a busy process on one core, and (rltorch's) on one thread under that load,
    one condition right after the other (:mod:`rltorch.bench.contention`)."""
    from tqdm.auto import tqdm

    plan = contention_plan.PLAN if contention else contention_plan.PLAN[:1]
    steps_of = {id(case): (min(settings.seeds, case.max_seeds or settings.seeds) if case.kind == "solve" else 1)
                for case in cases}
    total = sum(steps_of[id(case)] * sum(c.applies_to(case.impl) for c in plan) for case in cases)
    machine = machine_info(settings.device)
    started = time.perf_counter()
    results: list[Result] = []
    # A bar redrawn many times a second is noise in a log file: sparse lines when stderr is not a terminal.
    interval = {} if sys.stderr.isatty() else {"mininterval": 30.0}
    with tqdm(total=total, disable=not progress, unit="case", dynamic_ncols=True, leave=False, **interval) as bar:
        for case in cases:
            for condition in plan:
                if not condition.applies_to(case.impl):
                    continue
                label = case.key if not contention else f"{case.key} [{condition.name}]"
                bar.set_description(label if len(label) <= 60 else "..." + label[-57:])
                before = bar.n

                def tick(note: str, bar=bar):
                    bar.update(1)
                    if note:
                        bar.set_postfix_str(note)

                with condition.applied():
                    result = run_case(case, condition.settings(settings), tick)
                result.condition = condition.name
                bar.update(max(0, before + steps_of[id(case)] - bar.n))  # a skipped solve case moves past its seeds
                results.append(result)
    return {
        "schema": SCHEMA,
        "settings": {"mode": settings.mode, "device": settings.device, "seeds": settings.seeds,
                     "seconds_per_case": settings.seconds_per_case,
                     "capabilities": sorted({case.capability for case in cases}),
                     "contention": {"busy_core": contention_plan.busy_core(),
                                    "conditions": [c.name for c in plan]} if contention else None},
        "machine": machine,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "results": [_rounded(r.to_dict()) for r in results],
    }


def _rounded(result: dict) -> dict:
    # Five significant digits are far below any case's spread, and keep a full run's JSON small.
    result["samples"] = [float(f"{s:.5g}") for s in result["samples"]]
    return result


def results_of(run_data: dict) -> list[Result]:
    return [Result.from_dict(r) for r in run_data["results"]]
