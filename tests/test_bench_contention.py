"""rltorch bench --contention (rltorch/bench/contention.py): the competing process, the three conditions,
the report's table and the thread-policy targets; and the bench's checks of its outputs and input files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from rltorch import ops
from rltorch.bench import contention, report, runner
from rltorch.bench.core import Case, Result, Settings, SolveRun
from rltorch.bench.targets import judge_contention
from rltorch.cli import main

TINY = Settings.for_mode("tiny")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_the_competing_process_spins_on_one_core_and_is_gone_afterwards():
    with contention.competing_process() as pid:
        time.sleep(0.3)
        with open(f"/proc/{pid}/status") as f:
            allowed = next(line for line in f if line.startswith("Cpus_allowed_list")).split()[1]
        assert allowed == str(contention.busy_core())
        with open(f"/proc/{pid}/stat") as f:
            user_ticks = int(f.read().split()[13])
        assert user_ticks > 0  # it is busy, not sleeping
    assert not _alive(pid)


def test_the_competing_process_ends_by_itself_if_the_bench_never_stops_it():
    with contention.competing_process(max_seconds=0.3) as pid:
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)


def test_the_competing_process_ends_when_the_bench_is_killed():
    # A bench killed by SIGKILL runs no `finally`; its busy process must not outlive it.
    script = ("import sys, time\n"
              "from rltorch.bench import contention\n"
              "with contention.competing_process() as pid:\n"
              "    print(pid, flush=True)\n"
              "    time.sleep(600)\n")
    bench = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(bench.stdout.readline())
        assert _alive(pid)
    finally:
        bench.kill()
        bench.wait()
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_one_thread_condition_sets_torch_and_the_kernels_then_restores_them():
    threads, mode = torch.get_num_threads(), ops.cpu_parallel()
    with contention.one_thread():
        assert torch.get_num_threads() == 1 and ops.cpu_parallel() == "serial"
    assert torch.get_num_threads() == threads and ops.cpu_parallel() == mode


def _cases(seen: list):
    def timed(impl):
        def setup(settings):
            seen.append((impl, torch.get_num_threads(), ops.cpu_parallel(), settings.one_thread))
            return lambda: sum(range(50))
        return Case("ops", "g", impl, setup, size=8, size_label="B")

    def solve(settings):
        seen.append(("solve", torch.get_num_threads(), ops.cpu_parallel(), settings.one_thread))
        return lambda seed: SolveRun(0.5 * seed, 100, True)

    return [timed("rltorch"), timed("peer"), Case("agents", "ppo_time_to_solve", "rltorch", solve, kind="solve")]


def test_contention_runs_rltorch_in_three_conditions_and_peers_in_two():
    seen: list = []
    run = runner.run(_cases(seen), TINY, progress=False, contention=True)
    conditions = [(r["impl"], r["group"], r["condition"]) for r in run["results"]]
    assert conditions == [("rltorch", "g", "idle"), ("rltorch", "g", "loaded"), ("rltorch", "g", "loaded, 1 thread"),
                          ("peer", "g", "idle"), ("peer", "g", "loaded"),
                          ("rltorch", "ppo_time_to_solve", "idle"), ("rltorch", "ppo_time_to_solve", "loaded"),
                          ("rltorch", "ppo_time_to_solve", "loaded, 1 thread")]
    single = [s for s in seen if s[3]]
    assert [s[0] for s in single] == ["rltorch", "solve"]
    assert all(threads == 1 and mode == "serial" for _, threads, mode, _ in single)
    assert run["settings"]["contention"]["conditions"] == list(contention.CONDITIONS)
    text = report.render(run)
    assert "idle, beside a busy process on one core" in text
    assert "#24" in text


def test_a_plain_run_measures_idle_only():
    run = runner.run(_cases([]), TINY, progress=False)
    assert {r["condition"] for r in run["results"]} == {"idle"}
    assert run["settings"]["contention"] is None
    assert "busy process" not in report.render(run)


def _result(impl, condition, median, group="g", kind="timed"):
    return Result(capability="ops", group=group, where=group, impl=impl, key=f"ops/{group} B=8/{impl}", kind=kind,
                  size=8, size_label="B", items=1, item="call", device="cpu", status="ok", condition=condition,
                  samples=[median], solved=[True] if kind == "solve" else [])


def test_thread_policy_targets_judge_the_worst_case_and_ppo():
    good = [
        _result("rltorch", "idle", 1.0),
        _result("rltorch", "loaded", 1.1),
        _result("rltorch", "loaded, 1 thread", 1.0),
        _result("rltorch", "idle", 1.0, "ppo_time_to_solve", "solve"),
        _result("rltorch", "loaded", 1.9, "ppo_time_to_solve", "solve"),
        _result("rltorch", "loaded, 1 thread", 1.8, "ppo_time_to_solve", "solve"),
    ]
    verdicts = judge_contention(good)
    assert [v.status for v in verdicts] == ["met", "met"]
    bad = good[:1] + [_result("rltorch", "loaded", 1.3)] + good[2:4] + [_result("rltorch", "loaded", 2.1,
                                                                             "ppo_time_to_solve", "solve")] + good[5:]
    verdicts = judge_contention(bad)
    assert [v.status for v in verdicts] == ["missed", "missed"]
    assert "1 of 2 cases over" in verdicts[0].measured
    assert [v.status for v in judge_contention(good[:1])] == ["not measured", "not measured"]


def test_contention_table_shows_ratios_and_speed_ups_idle_and_loaded():
    results = [
        _result("rltorch", "idle", 1.0),
        _result("rltorch", "loaded", 1.5),
        _result("rltorch", "loaded, 1 thread", 1.2),
        _result("peer", "idle", 4.0),
        _result("peer", "loaded", 3.0),
    ]
    ((title, header, rows),) = report.contention_tables(results)
    ours, peer = rows
    assert ours[header.index("loaded / 1 thread")] == "1.2x" and ours[header.index("loaded / idle")] == "1.5x"
    assert peer[header.index("rltorch x: idle, loaded")] == "4.0x, 2.0x"


def test_compare_keeps_conditions_apart():
    run = {"machine": {}, "settings": {}, "results": [r.to_dict() for r in (_result("rltorch", "idle", 1.0),
                                                                             _result("rltorch", "loaded", 2.0))]}
    run["machine"] = dict(cpu="x", usable_cores=2, gpu=None, torch="t", rltorch="r", python="p", date="d")
    text = report.compare(run, run)
    assert "[loaded]" in text and text.count("no change") == 2


# ---------------------------------------------------------------- outputs and input files, before measuring


def _run_cli(args, capsys):
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_unwritable_outputs_are_refused_before_anything_is_measured(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a_file = tmp_path / "taken"
    a_file.write_text("")
    calls = []
    monkeypatch.setattr(runner, "run", lambda *a, **k: calls.append(1))
    for args, message in ((["--out", str(a_file)], "is not a directory"),
                          (["--json", str(tmp_path / "missing" / "r.json")], "does not exist"),
                          (["--json", str(tmp_path)], "is a directory"),
                          (["--out", "/proc/rltorch-bench"], "not a writable directory")):
        code, err = _run_cli(["bench", "--tiny", "--only", "ops", *args], capsys)
        assert code == 2 and message in err and "Traceback" not in err, err
    assert calls == [] and os.listdir(tmp_path) == ["taken"]


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["results"][0].update(samples="fast"), "samples must be a list"),
    (lambda d: d["results"][0].update(kind="slow"), "kind must be"),
    (lambda d: d["results"][0].pop("key"), "is not a result"),
    (lambda d: d["results"][0].update(bogus=1), "is not a result"),
    (lambda d: d["machine"].update(usable_cores="two"), "machine.usable_cores"),
    (lambda d: d.update(settings=[]), "`settings` must be an object"),
    (lambda d: d.update(results={}), "`results` must be a list"),
])
def test_report_and_compare_refuse_results_files_with_the_right_keys_but_wrong_contents(tmp_path, capsys, mutate,
                                                                                         message):
    run = runner.run(_cases([])[:1], TINY, progress=False)
    run["machine"]["cpu"] = "x"
    mutate(run)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(run))
    for args in (["bench", "--report", str(path), "--out", str(tmp_path / "o")],
                 ["bench", "--compare", str(path), str(path)]):
        code, err = _run_cli(args, capsys)
        assert code == 2 and message in err and str(path) in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()
