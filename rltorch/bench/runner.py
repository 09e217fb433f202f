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
from rltorch.bench.core import Case, Result, Settings, SolveRun, Unavailable, machine_info, time_call, time_calls

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
    except Exception as exc:
        return _error(case, settings, exc)
    finally:
        _close(prepared)


def run_interleaved(cases: list[Case], settings: Settings, tick=lambda note: None) -> list[Result]:
    """Timed cases measured together in alternating rounds (:func:`~rltorch.bench.core.time_calls`): rltorch
    and its peers take turns, so load that comes and goes during the run slows both sides of every ratio.
    Each case is skipped or fails on its own, as in :func:`run_case`."""
    results: dict[int, Result] = {}
    prepared: dict[int, object] = {}
    try:
        for i, case in enumerate(cases):
            try:
                with _quiet():
                    prepared[i] = case.setup(settings)
            except Unavailable as exc:
                results[i] = Result.of(case, settings.device, "skipped", reason=exc.reason, install=exc.install)
            except Exception as exc:
                results[i] = _error(case, settings, exc)
        failures: dict[int, BaseException] = {}

        def guarded(i: int):
            def call():
                if i not in failures:
                    try:
                        prepared[i]()
                    except Exception as exc:
                        failures[i] = exc
            return call

        order = sorted(prepared)
        samples = time_calls([guarded(i) for i in order], settings) if order else []
        for i, timed in zip(order, samples):
            if i in failures:
                results[i] = _error(cases[i], settings, failures[i])
            else:
                results[i] = Result.of(cases[i], settings.device, "ok", samples=timed)
            tick("")
    finally:
        for call in prepared.values():
            _close(call)
    return [results[i] for i in range(len(cases))]


def _error(case: Case, settings: Settings, exc: BaseException) -> Result:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return Result.of(case, settings.device, "error", reason=f"{type(exc).__name__}: {first_line}",
                     extra={"traceback": "".join(traceback.format_exception(exc))})


def _close(prepared) -> None:
    close = getattr(prepared, "close", None)
    if close is not None:
        with _quiet():
            close()


def _units(cases: list[Case], interleave: bool) -> list[list[Case]]:
    """What is measured together: each case alone, or with ``interleave`` every timed case of one group,
    size and device together (solve cases always alone), in the order the first of each ran."""
    if not interleave:
        return [[case] for case in cases]
    units: dict[tuple, list[Case]] = {}
    for case in cases:
        key = (case.capability, case.where, case.size) if case.kind == "timed" else (id(case),)
        units.setdefault(key, []).append(case)
    return list(units.values())


def run(cases: list[Case], settings: Settings, progress: bool = True, contention: bool = False,
        interleave: bool = False) -> dict:
    """Every case in order, with a progress bar counting timed cases and solve seeds. With ``contention``,
    each case runs idle, beside a busy process on one core, and (rltorch's) on one thread under that load,
    one condition right after the other (:mod:`rltorch.bench.contention`). With ``interleave``, the timed
    cases of one group and size take turns round by round (:func:`run_interleaved`)."""
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
        for unit in _units(cases, interleave):
            for condition in plan:
                chosen = [case for case in unit if condition.applies_to(case.impl)]
                if not chosen:
                    continue
                label = chosen[0].key if len(chosen) == 1 else f"{chosen[0].capability}/{chosen[0].where} (interleaved)"
                label = label if not contention else f"{label} [{condition.name}]"
                bar.set_description(label if len(label) <= 60 else "..." + label[-57:])
                before = bar.n

                def tick(note: str, bar=bar):
                    bar.update(1)
                    if note:
                        bar.set_postfix_str(note)

                with condition.applied():
                    measured = (run_interleaved(chosen, condition.settings(settings), tick) if len(chosen) > 1
                                else [run_case(chosen[0], condition.settings(settings), tick)])
                for result in measured:
                    result.condition = condition.name
                # A skipped solve case still moves the bar past its seeds.
                bar.update(max(0, before + sum(steps_of[id(case)] for case in chosen) - bar.n))
                results.extend(measured)
    return {
        "schema": SCHEMA,
        "settings": {"mode": settings.mode, "device": settings.device, "seeds": settings.seeds,
                     "seconds_per_case": settings.seconds_per_case, "interleaved": interleave,
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
