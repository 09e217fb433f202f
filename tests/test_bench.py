"""rltorch bench: the runner, the report writer, the targets, the compare mode and
the command line, on synthetic results and tiny real runs (the cases themselves
are tested in test_bench_cases.py and test_bench_agents.py)."""

from __future__ import annotations

import json
import os
import struct

import pytest

from rltorch.bench import report, runner
from rltorch.bench.core import Case, Result, Settings, SolveRun, Unavailable, machine_info, time_call
from rltorch.bench.targets import TARGETS, Target, judge
from rltorch.cli import main


def result(impl, median, *, where="td_target", size=256, items=256, item="target", kind="timed", status="ok",
           device="cpu", spread=0.0, solved=None, reason=None, install=None):
    samples = [median * (1 - spread / 2), median, median * (1 + spread / 2)] if status == "ok" else []
    group = where.split()[0]
    key = f"ops/{where} B={size}/{impl}"
    return Result(capability="ops", group=group, where=where, impl=impl, key=key, kind=kind, size=size,
                  size_label="B", items=items, item=item, device=device, status=status, samples=samples,
                  solved=solved if solved is not None else ([True] * len(samples) if kind == "solve" else []),
                  env_steps=[1000] * len(samples) if kind == "solve" else [], reason=reason, install=install)


def fake_run(results, mode="quick", device="cpu", cpu="Test CPU"):
    machine = machine_info()
    machine["cpu"] = cpu
    return {"schema": runner.SCHEMA, "settings": {"mode": mode, "device": device, "seeds": 3,
                                                  "seconds_per_case": 0.1, "capabilities": ["ops"]},
            "machine": machine, "wall_seconds": 1.0, "results": [r.to_dict() for r in results]}


# ---------------------------------------------------------------- timing and running

def test_time_call_gives_one_positive_sample_per_round_within_the_bounds():
    calls = []
    settings = Settings.for_mode("tiny")
    samples = time_call(lambda: calls.append(1), settings)
    assert settings.min_rounds <= len(samples) <= settings.max_rounds
    assert all(s > 0 for s in samples)
    assert len(calls) >= len(samples) + 2  # warm-up and the estimate come first


def test_runner_reports_unavailable_peers_as_skipped_and_failures_as_errors_and_goes_on():
    def missing(settings):
        raise Unavailable("libfoo is not installed", "pip install libfoo")

    def broken(settings):
        raise RuntimeError("boom\nsecond line")

    cases = [Case("ops", "g", "rltorch", lambda s: (lambda: None), size=1, size_label="B"),
             Case("ops", "g", "libfoo", missing, size=1, size_label="B"),
             Case("ops", "g", "broken", broken, size=1, size_label="B"),
             Case("agents", "solve_g", "rltorch", lambda s: (lambda seed: SolveRun(0.5 + seed, 100 * seed, True)),
                  kind="solve")]
    run = runner.run(cases, Settings.for_mode("tiny", seeds=2), progress=False)
    by_impl = {(r["group"], r["impl"]): r for r in run["results"]}
    assert by_impl["g", "rltorch"]["status"] == "ok" and by_impl["g", "rltorch"]["samples"]
    assert by_impl["g", "libfoo"] == {**by_impl["g", "libfoo"], "status": "skipped",
                                      "reason": "libfoo is not installed", "install": "pip install libfoo"}
    assert by_impl["g", "broken"]["status"] == "error"
    assert by_impl["g", "broken"]["reason"] == "RuntimeError: boom"
    assert "Traceback" in by_impl["g", "broken"]["extra"]["traceback"]
    solve = by_impl["solve_g", "rltorch"]
    assert solve["samples"] == [1.5, 2.5] and solve["env_steps"] == [100, 200] and solve["solved"] == [True, True]
    assert run["machine"]["cores"] >= 1 and run["machine"]["torch"]
    json.dumps(run)  # everything in a run is JSON


def test_case_rejects_unknown_capability_and_kind():
    with pytest.raises(ValueError, match="capability"):
        Case("nope", "g", "rltorch", lambda s: None)
    with pytest.raises(ValueError, match="kind"):
        Case("ops", "g", "rltorch", lambda s: None, kind="slow")
    with pytest.raises(ValueError, match="mode"):
        Settings.for_mode("medium")


# ---------------------------------------------------------------- the report

def test_timed_table_divides_each_anchor_by_rltorch_in_the_same_size():
    rs = [result("rltorch", 2e-6), result("eager", 10e-6), result("torch.compile", 1e-6),
          result("rltorch", 40e-6, size=65536, items=65536), result("eager", 400e-6, size=65536, items=65536)]
    header, rows = report.timed_table(rs)
    assert header == ["B", "rltorch", "eager", "x", "torch.compile", "x", "rltorch throughput"]
    assert rows[0][1:7] == ["2.0 us ±0%", "10.0 us ±0%", "5.0x", "1.0 us ±0%", "0.5x", "128.0 M targets/s"]
    assert rows[1][0] == "2^16" and rows[1][3] == "10x" and rows[1][4:6] == ["", ""]


def test_speed_up_is_per_item_when_the_calls_do_different_amounts_of_work():
    ours = result("rltorch", 4e-3, items=4096)  # 4 actors deliver 4x the env steps per call
    theirs = result("one process", 2e-3, items=1024)
    assert ours.speedup_over(theirs) == pytest.approx(2.0)
    assert report.timed_table([ours, theirs])[1][0][3] == "2.0x"


def test_runner_closes_what_a_case_holds_also_when_measuring_fails():
    closed = []

    class Holder:
        def __init__(self, fail):
            self.fail = fail

        def __call__(self):
            if self.fail:
                raise RuntimeError("lost the cluster")

        def close(self):
            closed.append(self.fail)

    cases = [Case("ops", "g", "rltorch", lambda s: Holder(False), size=1, size_label="B"),
             Case("ops", "g", "peer", lambda s: Holder(True), size=1, size_label="B")]
    run = runner.run(cases, Settings.for_mode("tiny"), progress=False)
    assert closed == [False, True]
    assert [r["status"] for r in run["results"]] == ["ok", "error"]


def test_variants_of_rltorch_are_shown_but_never_used_as_anchors():
    rs = [result("rltorch op", 1e-6), result("gymnasium", 8e-6), result("rltorch", 2e-6)]
    header, rows = report.timed_table(rs)
    assert header[:3] == ["B", "rltorch", "rltorch op"]
    assert header.count("x") == 1 and rows[0][4] == "4.0x"


def test_spread_is_half_the_interquartile_range():
    r = result("rltorch", 1e-3, spread=0.2)
    assert r.spread == pytest.approx(0.1)
    assert report.timed_table([r])[1][0][1] == "1.00 ms ±5%"


def test_solve_table_and_unsolved_seeds():
    rs = [result("rltorch", 0.5, where="ppo_time_to_solve", size=None, kind="solve"),
          result("SB3 PPO", 4.0, where="ppo_time_to_solve", size=None, kind="solve", solved=[True, False, True])]
    header, rows = report.solve_table(rs)
    assert rows[0][:4] == ["rltorch", "0.50 s", "0.50 - 0.50 s", "3/3"]
    assert rows[1][3] == "2/3" and rows[1][5] == "8.0x"


def test_render_lists_skips_with_install_command_and_errors_in_text_and_markdown():
    rs = [result("rltorch", 2e-6), result("eager", 10e-6),
          result("cpprb", 0, status="skipped", reason="cpprb not importable", install="pip install cpprb"),
          result("TorchRL", 0, status="error", reason="RuntimeError: x")]
    run = fake_run(rs)
    text = report.render(run)
    assert "skipped: cpprb not importable. Install: `pip install cpprb`" in text
    assert "FAILED: RuntimeError: x" in text and "Test CPU" in text
    md = report.render(run, markdown=True, command="rltorch bench --quick")
    assert md.startswith("```bash\nrltorch bench --quick\n```")
    assert "| B | rltorch | eager | x | cpprb | x | TorchRL | x | rltorch throughput |" in md
    assert "| 256 | 2.0 us ±0% | 10.0 us ±0% | 5.0x | skipped |  | error |  | 128.0 M targets/s |" in md


def test_targets_met_missed_and_not_measured():
    ratio = Target(2, "t", "td_target", 256, anchor="eager", at_least=4)
    assert judge(ratio, [result("rltorch", 2e-6), result("eager", 10e-6)]).status == "met"
    assert judge(ratio, [result("rltorch", 3e-6), result("eager", 10e-6)]).status == "missed"
    verdict = judge(ratio, [result("rltorch", 2e-6)])
    assert verdict.status == "not measured" and "eager not in this run" in verdict.anchor
    assert judge(ratio, [result("eager", 1e-6)]).status == "not measured"
    per_item = Target(4, "t", "td_target", 256, max_seconds_per_item=10e-9)
    assert judge(per_item, [result("rltorch", 2.56e-6)]).status == "met"  # 10 ns per item
    assert judge(per_item, [result("rltorch", 2.6e-6)]).status == "missed"
    rate = Target(3, "t", "td_target", 256, min_items_per_second=100e6)
    assert judge(rate, [result("rltorch", 2e-6)]).status == "met"
    solve = Target(10, "t", "ppo", solve=(0.5, 1.0))
    assert judge(solve, [result("rltorch", 0.4, where="ppo", size=None, kind="solve")]).status == "met"
    unsolved = result("rltorch", 0.4, where="ppo", size=None, kind="solve", solved=[True, False, True])
    assert judge(solve, [unsolved]).status == "missed"
    on_gpu = Target(4, "t", "td_target", 256, device="cuda", max_seconds=1.0)
    assert judge(on_gpu, [result("rltorch", 2e-6)]).status == "not measured"


def test_every_target_names_a_case_the_full_run_measures_with_its_anchor():
    from rltorch.bench.cases import CAPABILITIES, collect

    for device in ("cpu", "cuda"):  # collecting CUDA cases needs no GPU: nothing runs
        full = collect(list(CAPABILITIES), Settings.for_mode("full", device=device))
        places = {(c.where, c.size) for c in full}
        for target in (t for t in TARGETS if t.device == device):
            assert (target.where, target.size) in places, target
            if target.anchor:
                assert any(c.where == target.where and c.impl == target.anchor for c in full), target


def _is_png(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_write_gives_json_markdown_and_a_png_per_group(tmp_path):
    rs = [result("rltorch", 2e-6), result("eager", 10e-6), result("rltorch", 40e-6, size=65536, items=65536),
          result("eager", 400e-6, size=65536, items=65536),
          result("rltorch", 0.5, where="ppo_time_to_solve", size=None, kind="solve"),
          result("SB3 PPO", 4.0, where="ppo_time_to_solve", size=None, kind="solve", solved=[True, False, True]),
          result("rltorch", 1e-3, where="per_cycle", size=256)]
    written = report.write(fake_run(rs), str(tmp_path), command="rltorch bench")
    assert json.loads(open(written["json"]).read())["results"][0]["impl"] == "rltorch"
    assert "### ops: td_target" in open(written["markdown"]).read()
    names = sorted(os.path.basename(p) for p in written["plots"])
    assert names == ["ops_per_cycle_cpu.png", "ops_ppo_time_to_solve_cpu.png", "ops_td_target_cpu.png"]
    for path in written["plots"]:
        width, height = _is_png(path)
        assert width > 400 and height > 300


def test_compare_reports_the_change_per_case_and_cases_in_one_run_only():
    before = fake_run([result("rltorch", 2e-6), result("eager", 10e-6)])
    after = fake_run([result("rltorch", 1e-6), result("eager", 10.1e-6, spread=0.1),
                      result("torch.compile", 5e-6)], cpu="Other CPU")
    text = report.compare(before, after)
    assert "machines differ in cpu" in text
    ours = next(line for line in text.splitlines() if "/rltorch (cpu)" in line)
    assert "50.0% faster" in ours and "(within noise)" not in ours
    eager = next(line for line in text.splitlines() if "/eager (cpu)" in line)
    assert "1.0% slower (within noise)" in eager
    assert "only after" in next(line for line in text.splitlines() if "torch.compile" in line)


# ---------------------------------------------------------------- the command line

def test_cli_rejects_bad_arguments(capsys):
    for argv, message in [(["bench", "--only", "ops,gpu"], "choose from ops,env,replay,agents,classifiers"),
                          (["bench", "--only", ""], "choose from"),
                          (["bench", "--seeds", "0"], "must be an integer >= 1"),
                          (["bench", "--quick", "--full"], "not allowed with argument"),
                          (["bench", "--compare", "a.json"], "expected 2 arguments")]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert message in capsys.readouterr().err


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["bench", "--compare", str(tmp_path / "missing.json"), str(tmp_path / "b.json")]) == 2
    assert "no benchmark results at" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": []}')
    assert main(["bench", "--report", str(bad)]) == 2
    assert "not a results file written by rltorch bench" in capsys.readouterr().err
    bad.write_text("not json")
    assert main(["bench", "--compare", str(bad), str(bad)]) == 2
    assert "not a results file" in capsys.readouterr().err
    if not __import__("torch").cuda.is_available():
        assert main(["bench", "--device", "cuda", "--only", "ops"]) == 2
        assert "cuda" in capsys.readouterr().err.lower()


def test_cli_list_names_the_cases_without_running_them(capsys):
    assert main(["bench", "--tiny", "--only", "ops", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "ops/td_target B=256/rltorch" in lines and all(line.startswith("ops/") for line in lines)


def test_cli_tiny_run_then_report_and_compare(tmp_path, capsys):
    out = tmp_path / "run"
    json_path = tmp_path / "copy.json"
    assert main(["bench", "--tiny", "--only", "ops", "--quiet", "--out", str(out), "--json", str(json_path)]) == 0
    printed = capsys.readouterr().out
    assert "ops: td_target (cpu" in printed and "Targets named in the issues" in printed
    saved = json.loads(json_path.read_text())
    assert saved == json.loads((out / "results.json").read_text())
    assert saved["settings"]["mode"] == "tiny"
    assert {r["status"] for r in saved["results"]} <= {"ok", "skipped"}
    assert (out / "report.md").read_text().startswith("```bash\nrltorch bench --tiny --only ops")
    assert sorted(p.name for p in out.glob("*.png"))  # one plot per measured group
    again = tmp_path / "again"
    assert main(["bench", "--report", str(json_path), "--out", str(again)]) == 0
    assert sorted(p.name for p in again.glob("*.png")) == sorted(p.name for p in out.glob("*.png"))
    capsys.readouterr()
    assert main(["bench", "--compare", str(json_path), str(out / "results.json")]) == 0
    compared = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ops/")]
    measured = [r for r in saved["results"] if r["status"] == "ok"]
    assert len(compared) == len(saved["results"])
    assert sum("no change" in line for line in compared) == len(measured)


def test_cli_exit_status_is_1_when_a_case_fails_and_0_when_a_peer_is_missing(monkeypatch, tmp_path, capsys):
    import rltorch.bench.cases

    def missing(settings):
        raise Unavailable("not here", "pip install it")

    def broken(settings):
        raise RuntimeError("kernel failed")

    fine = Case("ops", "g", "rltorch", lambda s: (lambda: None), size=1, size_label="B")
    monkeypatch.setattr(rltorch.bench.cases, "collect", lambda caps, settings: [fine, Case(
        "ops", "g", "peer", missing, size=1, size_label="B")])
    assert main(["bench", "--tiny", "--quiet", "--out", str(tmp_path / "a")]) == 0
    monkeypatch.setattr(rltorch.bench.cases, "collect", lambda caps, settings: [fine, Case(
        "ops", "g", "rltorch variant", broken, size=1, size_label="B")])
    assert main(["bench", "--tiny", "--quiet", "--out", str(tmp_path / "b")]) == 1
    assert "FAILED: RuntimeError: kernel failed" in capsys.readouterr().out


def test_a_run_started_on_a_busy_machine_says_so():
    run = fake_run([result("rltorch", 2e-6)])
    run["machine"].update(load_average=[0.2, 0.5, 0.5], usable_cores=2)
    assert "busy" not in report.render(run)
    run["machine"]["load_average"] = [2.7, 1.0, 0.5]
    assert "the machine was busy when this run started (load average 2.7 on 2 cores)" in report.render(run)


def test_benchmarks_md_shows_the_recorded_full_run_as_the_report_writer_renders_it():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    recorded = report.load(os.path.join(root, "benchmarks", "results", "full-cpu", "results.json"))
    assert recorded["settings"]["mode"] == "full"
    for run_dir in ("full-cpu", "contention-cpu"):  # the recorded full run and the one under load
        proc = subprocess.run([sys.executable, "-m", "rltorch", "bench", "--report",
                               f"benchmarks/results/{run_dir}/results.json", "--splice", "BENCHMARKS.md", "--check"],
                              capture_output=True, text=True, cwd=root)
        assert proc.returncode == 0, proc.stderr
    contention = report.load(os.path.join(root, "benchmarks", "results", "contention-cpu", "results.json"))
    assert contention["settings"]["contention"]
    text = open(os.path.join(root, "BENCHMARKS.md")).read()
    for target in TARGETS:  # every target the issues named appears, met or not
        assert target.text in text, target.text


def test_plot_colours_keep_red_for_rltorch_and_never_repeat_within_a_plot():
    impls = ["rltorch"] + [f"peer {i}" for i in range(12)]
    rs = [result(impl, 1e-6 * (i + 1)) for i, impl in enumerate(impls)]
    palette = report._colours(rs)
    assert palette["rltorch"] == report.PALETTE[0]
    assert report.PALETTE[0] not in [palette[i] for i in impls[1:]]
    chosen = report._plot_colours(rs[:10], palette)
    assert len(set(chosen.values())) == 10 and chosen["rltorch"] == report.PALETTE[0]
    wrapped = report._plot_colours([rs[0], rs[1], rs[10]], palette)  # peer 9 would reuse peer 0's colour
    assert len(set(wrapped.values())) == 3
