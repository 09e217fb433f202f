"""`rltorch bench` as the one benchmark entry point: pytest-benchmark JSON rendered by the same report,
BENCHMARKS.md's generated block spliced and checked, --train-args, --profile, and the time-to-solve child."""

from __future__ import annotations

import json
import subprocess
import sys

from rltorch.bench import report
from rltorch.cli import main


def _cli(args, capsys):
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _pytest_benchmark_json(tmp_path, extra_info=True):
    def bench(impl, seconds):
        info = {"impl": impl, "items": 256, "item": "target", "capability": "ops", "group_name": "td_target",
                "where": "td_target", "size": 256, "size_label": "B", "key": f"ops/td_target B=256/{impl}",
                "device": "cpu", "torch": "2.99"} if extra_info else {}
        return {"name": f"test_case[{impl}]", "group": "td_target B=256 cpu", "extra_info": info,
                "stats": {"data": [seconds, seconds * 1.01, seconds * 0.99], "median": seconds}}

    data = {"machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}, "python_version": "3.11.7"},
            "datetime": "2026-12-05T00:00:00", "benchmarks": [bench("rltorch", 2e-6), bench("eager", 1e-5)]}
    path = tmp_path / "pb.json"
    path.write_text(json.dumps(data))
    return path


def test_pytest_benchmark_json_renders_like_a_bench_run(tmp_path, capsys):
    path = _pytest_benchmark_json(tmp_path)
    run = report.load(str(path))
    assert run["machine"]["torch"] == "2.99" and run["machine"]["cpu"] == "Test CPU"
    text = report.render(run)
    assert "Timed by pytest-benchmark" in text and "5.0x" in text
    code, out, _ = _cli(["bench", "--report", str(path), "--out", str(tmp_path / "o")], capsys)
    assert code == 0 and "5.0x" in out and (tmp_path / "o" / "report.md").exists()


def test_pytest_benchmark_json_from_elsewhere_is_refused_naming_the_file(tmp_path, capsys):
    path = _pytest_benchmark_json(tmp_path, extra_info=False)
    code, _, err = _cli(["bench", "--report", str(path)], capsys)
    assert code == 2 and "not written by rltorch's benchmarks/ suite" in err and str(path) in err


def _recorded_run(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = _pytest_benchmark_json(tmp_path)
    (run_dir / "results.json").write_text(json.dumps(report.load(str(path))))
    (run_dir / "x.png").write_bytes(b"")
    markdown = tmp_path / "B.md"
    markdown.write_text("# Title\n\n<!-- BEGIN GENERATED: rltorch bench --report other/results.json --splice B.md -->\n"
                        "other run\n<!-- END GENERATED -->\n\n"
                        "<!-- BEGIN GENERATED: rltorch bench --report run/results.json --splice B.md -->\nstale\n"
                        "<!-- END GENERATED -->\n\nhand-written\n")
    return run_dir, markdown


def test_splice_writes_the_report_between_the_markers_and_check_catches_drift(tmp_path, capsys):
    run_dir, markdown = _recorded_run(tmp_path)
    results = str(run_dir / "results.json")
    code, _, err = _cli(["bench", "--report", results, "--splice", str(markdown), "--check"], capsys)
    assert code == 2 and "is stale" in err
    code, _, _ = _cli(["bench", "--report", results, "--splice", str(markdown)], capsys)
    text = markdown.read_text()
    assert code == 0 and "stale" not in text and "hand-written" in text and "5.0x" in text
    assert "other run" in text  # another run's block is left alone
    assert "- [x](run/x.png)" in text
    assert "<!-- BEGIN GENERATED: rltorch bench --report run/results.json --splice B.md -->" in text
    code, _, _ = _cli(["bench", "--report", results, "--splice", str(markdown), "--check"], capsys)
    assert code == 0
    markdown.write_text("no markers\n")
    code, _, err = _cli(["bench", "--report", results, "--splice", str(markdown)], capsys)
    assert code == 2 and "has no generated block for this run" in err


def test_train_args_are_checked_against_every_algorithm_before_measuring(capsys, monkeypatch):
    from rltorch.bench import runner

    monkeypatch.setattr(runner, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("measured")))
    for args, message in ((["--train-args", "--num-minibatches 3"], "--train-args for dqn: unknown flag"),
                          (["--train-args", "--num-envs 0"], "`num_envs`"),
                          (["--train-args", "'unclosed"], "--train-args: No closing quotation"),
                          (["--cleanrl", "/nonexistent"], "not a CleanRL checkout"),
                          (["--sb3-python", "/nonexistent/python"], "not an executable interpreter")):
        code, _, err = _cli(["bench", "--tiny", "--only", "agents", *args], capsys)
        assert code == 2 and message in err and "Traceback" not in err, err


def test_profile_splits_the_time_to_solve(capsys):
    code, out, _ = _cli(["bench", "--profile", "ppo", "--seeds", "1", "--train-args",
                         "--total-steps 1024 --num-envs 8 --eval-interval 512 --eval-episodes 4"], capsys)
    assert code == 0
    seed_line = next(line for line in out.splitlines() if line.startswith("seed 1:"))
    for part in ("collect=", "learn=", "evaluate=", "total="):
        assert part in seed_line
    assert float(seed_line.split("learn=")[1].split("s")[0]) > 0  # the update hook is the one timed
    assert "median: collect" in out


def test_the_time_to_solve_child_builds_the_cli_config_and_rejects_bad_flags():
    ok = subprocess.run([sys.executable, "-m", "rltorch.bench.rltorch_solve", "ppo", "--seed", "2", "--total-steps",
                         "256", "--num-envs", "8", "--eval-interval", "10000", "--device", "cpu"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    result = json.loads(next(line for line in ok.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["env_steps"] == 256 and result["threads"] == 1 and result["solved"] is False
    for args, message in ((["nope"], "unknown algorithm"), (["ppo", "--num-envs", "-1"], "`num_envs`")):
        bad = subprocess.run([sys.executable, "-m", "rltorch.bench.rltorch_solve", *args], capture_output=True,
                             text=True)
        assert bad.returncode == 2 and message in bad.stderr


def test_interleaved_cases_take_turns_and_fail_or_skip_on_their_own():
    from rltorch.bench import runner
    from rltorch.bench.core import Case, Settings, Unavailable

    order = []

    def case(impl, behaviour="ok"):
        def setup(settings):
            if behaviour == "missing":
                raise Unavailable("not here", "pip install it")

            def call():
                order.append(impl)
                if behaviour == "fails" and len(order) > 6:
                    raise RuntimeError("broke mid-run")
            return call
        return Case("ops", "g", impl, setup, size=8, size_label="B")

    cases = [case("rltorch"), case("peer"), case("broken", "fails"), case("absent", "missing"),
             Case("ops", "other", "rltorch", lambda s: (lambda: None), size=8, size_label="B")]
    run = runner.run(cases, Settings.for_mode("tiny"), progress=False, interleave=True)
    status = {(r["where"], r["impl"]): r["status"] for r in run["results"]}
    assert status == {("g", "rltorch"): "ok", ("g", "peer"): "ok", ("g", "broken"): "error",
                      ("g", "absent"): "skipped", ("other", "rltorch"): "ok"}
    ours, peer = run["results"][0], run["results"][1]
    assert len(ours["samples"]) == len(peer["samples"]) >= 3
    # Calls in runs of one impl: its two warm-ups, then one round of each impl per lap.
    runs = [impl for i, impl in enumerate(order) if impl in ("rltorch", "peer") and (i == 0 or order[i - 1] != impl)]
    assert len(runs) >= 6 and all(a != b for a, b in zip(runs, runs[1:])), runs[:10]
    assert run["settings"]["interleaved"] is True


def test_skip_leaves_out_the_cases_it_names_and_a_pattern_that_matches_none_is_an_error(capsys, monkeypatch):
    from rltorch.bench import runner

    code, full, _ = _cli(["bench", "--full", "--only", "agents", "--list"], capsys)
    assert code == 0 and "env=MountainCar-v0" in full
    code, out, _ = _cli(["bench", "--full", "--only", "agents", "--list", "--skip", "env=MountainCar-v0,Ape-X"], capsys)
    assert code == 0 and "env=MountainCar-v0" not in out and "Ape-X" not in out
    kept = [line for line in full.splitlines() if "env=MountainCar-v0" not in line and "Ape-X" not in line]
    assert out.splitlines() == kept
    monkeypatch.setattr(runner, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("measured")))
    code, _, err = _cli(["bench", "--tiny", "--only", "ops", "--skip", "no such case"], capsys)
    assert code == 2 and "--skip: 'no such case' matches no case" in err and "Traceback" not in err
    code, _, err = _cli(["bench", "--tiny", "--skip", ","], capsys)
    assert code == 2 and "--skip" in err
