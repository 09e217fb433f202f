"""`make gpu-check` (tools/gpu_check.py) without a GPU: the plan fits its budget, the
report is whole after every step and after an interruption, time boxes and signals
stop a step with everything it started, and the figures are read from what the real
steps print. The steps themselves are stand-ins here (--fake-steps): a GPU runs them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import gpu_check  # noqa: E402

SCRIPT = [sys.executable, str(ROOT / "tools" / "gpu_check.py")]
ORDER = ["build", "import", "cuda-tests", "memcheck", "bench-cartpole", "bench-per", "bench-td", "bench-gae",
         "bench-compile", "train-ppo", "train-dqn", "racecheck", "initcheck", "suite-rest"]


def read_report(out: Path) -> tuple[dict, str]:
    report = json.loads((out / gpu_check.REPORT_JSON).read_text())
    assert all(s["status"] in gpu_check.STATUSES for s in report["steps"])
    return report, (out / gpu_check.REPORT_MD).read_text()


def statuses(report: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in report["steps"]}


def md_rows(md: str) -> dict[str, str]:
    """step name -> status, from the markdown table."""
    rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0].isdigit():
            rows[cells[1]] = cells[2]
    return rows


def wait_for(out: Path, predicate, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            report, _ = read_report(out)
        except (OSError, json.JSONDecodeError):
            report = None
        if report is not None and predicate(report):
            return report
        time.sleep(0.05)
    raise AssertionError(f"the report never reached the expected state: {report and statuses(report)}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def fake_pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def start_fake(tmp_path: Path, spec: str, *extra: str) -> tuple[subprocess.Popen, Path, Path]:
    out, pids = tmp_path / "out", tmp_path / "pids"
    env = {**os.environ, "GPU_CHECK_FAKE_PIDS": str(pids)}
    proc = subprocess.Popen([*SCRIPT, "--fake-steps", spec, "--out", str(out), "--work-dir", str(tmp_path / "work"),
                             *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, out, pids


# ---- the plan

def test_dry_run_prints_a_plan_that_fits_the_budget(tmp_path):
    out = subprocess.run([*SCRIPT, "--dry-run", "--budget-s", "480", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    printed = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s*\d+\. (\S+)\s+(\d+) s", out.stdout, re.M)}
    report, md = read_report(tmp_path)
    steps = report["steps"]
    assert [s["name"] for s in steps] == ORDER
    assert report["mode"] == "dry-run" and report["result"] == "planned" and "DRY RUN" in md
    required = [s for s in steps if not s["optional"]]
    # At the default budget every required step keeps its full box, and the boxes and the
    # reserve fit: the optional steps (sanitizer extras, the rest of the suite) come last.
    assert all(s["in_budget"] for s in required)
    assert sum(s["box_s"] for s in required) + gpu_check.RESERVE_S <= 480
    assert [s["optional"] for s in steps] == sorted(s["optional"] for s in steps)
    assert printed == {s["name"]: s["box_s"] for s in steps if s["box_s"] is not None}
    assert all(s["status"] in ("planned", "skipped") for s in steps)
    assert set(md_rows(md)) == set(ORDER)


@pytest.mark.parametrize("budget", [200, 300, 480, 900])
def test_plan_drops_the_least_valuable_required_steps_first(tmp_path, budget):
    steps = gpu_check.plan("python", budget, tmp_path, "compute-sanitizer")
    assert gpu_check.required_seconds(steps) + gpu_check.RESERVE_S <= budget
    assert steps[0].in_budget  # the build, then in order of value what still fits
    dropped = [s for s in steps if not s.in_budget]
    assert all(s.status == "skipped" and "does not fit" in s.note for s in dropped)
    assert (dropped == []) == (budget >= 480)
    skipped_build = gpu_check.plan("python", budget, tmp_path, "compute-sanitizer", skip_build=True)
    assert gpu_check.required_seconds(skipped_build) >= gpu_check.required_seconds(steps) - steps[0].box_s


@pytest.mark.parametrize("budget,message", [("20", "--budget-s must exceed"), ("110", "no time for the build")])
def test_budget_too_small_is_a_usage_error(tmp_path, budget, message):
    out = subprocess.run([*SCRIPT, "--dry-run", "--budget-s", budget, "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr
    assert not (tmp_path / gpu_check.REPORT_JSON).exists()


def test_build_is_for_the_given_architecture_with_every_core(tmp_path):
    build = gpu_check.plan("py", 480, tmp_path, None, arch="9.0", jobs=16)[0]
    assert build.command == ["py", "setup.py", "-q", "build_ext", "--inplace"]
    assert build.env == {"RLTORCH_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "9.0", "MAX_JOBS": "16"}


def keyword_match(expression: str, node_id: str) -> bool:
    """pytest's -k on a node id, for expressions of names, and, or, not and parentheses."""
    words = re.sub(r"[\w^]+", lambda m: m.group(0) if m.group(0) in ("and", "or", "not")
                   else f"({m.group(0).lower()!r} in name)", expression)
    return eval(words, {}, {"name": node_id.lower()})


def test_every_selected_test_and_benchmark_exists():
    # What the pytest steps select names real tests (collected here; on a CPU they skip when run),
    # and the benchmark steps together cover every case of bench_cuda.py.
    steps = [s for s in gpu_check.plan(sys.executable, 480, ROOT / "build", "compute-sanitizer")
             if s.kind in ("pytest", "sanitizer", "bench") and s.name != "suite-rest"]
    paths = sorted({a.split("::")[0] for s in steps for a in s.command if a.startswith(("tests/", "benchmarks/"))})
    collect = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only", *paths],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert collect.returncode == 0, collect.stdout[-3000:] + collect.stderr
    ids = [line for line in collect.stdout.splitlines() if "::" in line]
    benches = {i for i in ids if i.startswith(gpu_check.BENCH_FILE)}
    covered = set()
    for step in steps:
        files = [a for a in step.command if a.startswith(("tests/", "benchmarks/"))]
        expression = step.command[step.command.index("-k") + 1] if "-k" in step.command else "test"
        chosen = [i for i in ids
                  if any(i == f or i.startswith(f + "::") for f in files) and keyword_match(expression, i)]
        assert len(chosen) >= (2 if step.kind == "bench" else 1), step.name
        covered |= set(chosen) & benches
    assert covered == benches
    # keyword_match agrees with pytest's own -k on the most involved selection.
    compile_step = next(s for s in steps if s.name == "bench-compile")
    expression = compile_step.command[compile_step.command.index("-k") + 1]
    selected = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                               gpu_check.BENCH_FILE, "-k", expression], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
    assert {i for i in selected.stdout.splitlines() if "::" in i} == {
        i for i in benches if keyword_match(expression, i)
    }
    assert sum("test_cuda_cartpole_steps_per_second" in i for i in benches) == 2  # 2^20 and 2^24


# ---- a run on stand-in steps

def test_interrupted_after_step_one_leaves_a_valid_report(tmp_path):
    # The device tool kills a command at its limit outright (SIGKILL): what the report
    # held after the last finished step is what comes back.
    proc, out, pids = start_fake(tmp_path, "memcheck=hang")
    try:
        wait_for(out, lambda r: statuses(r)["memcheck"] == "running")
        deadline = time.monotonic() + 10
        while len(fake_pids(pids)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    report, md = read_report(out)
    got = statuses(report)
    assert got["cuda-tests"] == "passed" and got["memcheck"] == "running"
    assert all(got[name] == "planned" for name in ORDER[ORDER.index("memcheck") + 1:])
    assert report["result"] == "incomplete" and report["device"]["name"].startswith("fake device")
    cuda_tests = next(s for s in report["steps"] if s["name"] == "cuda-tests")
    assert cuda_tests["figures"] == {"passed": 3, "skipped": 1} and cuda_tests["seconds"] >= 0
    assert md_rows(md) == got and "FAKE STEPS" in md
    # The step's own process dies with gpu-check (parent-death signal); what it spawned is
    # in the step's process group, which the device tool's clean-up ends (here: the test).
    step_pid, grandchild = fake_pids(pids)
    deadline = time.monotonic() + 10
    while alive(step_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(step_pid)
    os.killpg(os.getpgid(grandchild), signal.SIGKILL) if alive(grandchild) else None


def test_sigterm_stops_the_running_step_and_everything_it_started(tmp_path):
    proc, out, pids = start_fake(tmp_path, "bench-per=hang")
    wait_for(out, lambda r: statuses(r)["bench-per"] == "running")
    deadline = time.monotonic() + 10
    while len(fake_pids(pids)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    printed, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert not any(alive(pid) for pid in fake_pids(pids))
    report, md = read_report(out)
    got = statuses(report)
    assert report["interrupted"] == "SIGTERM" and report["result"] == "incomplete"
    assert got["bench-cartpole"] == "passed" and got["bench-per"] == "interrupted"
    assert all(got[name] == "not run" for name in ORDER[ORDER.index("bench-per") + 1:])
    per = next(s for s in report["steps"] if s["name"] == "bench-per")
    assert "fake bench-per: hang" in per["output_tail"] and "fake bench-per: hang" in md
    # The last lines printed are the short table.
    last = printed.strip().splitlines()[-len(ORDER):]
    assert [line.split()[0] for line in last] == ORDER and "interrupted" in last[ORDER.index("bench-per")]


def test_a_failed_step_is_reported_and_the_run_goes_on(tmp_path):
    proc, out, _ = start_fake(tmp_path, "cuda-tests=fail")
    printed, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, printed
    report, md = read_report(out)
    got = statuses(report)
    assert report["result"] == "failed" and got["cuda-tests"] == "failed"
    assert all(status == "passed" for name, status in got.items() if name != "cuda-tests")
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["cuda-tests"]["figures"]["failed_tests"] == ["tests/test_fake.py::test_fake"]
    assert "AssertionError: fake failure" in md  # the failed step's output tail
    # Figures from the files and lines the real steps write (stand-ins write the same shapes).
    assert steps["bench-td"]["figures"]["speedup"] == {"fake": {"vs_eager": 3.0}}
    assert steps["train-dqn"]["figures"]["solved"] is True
    bench = json.loads((out / gpu_check.BENCH_JSON).read_text())
    assert set(bench) == {"bench-cartpole", "bench-per", "bench-td", "bench-gae", "bench-compile"}
    assert len(list(out.iterdir())) <= 8  # the device tool returns at most 8 files


def test_a_step_past_its_time_box_is_stopped_with_its_children(tmp_path):
    pids = tmp_path / "pids"
    step = gpu_check.Step("hung", "a stand-in that never ends", 1, [], "pytest")
    gpu_check.fake([step], "hung=hang")
    runner = gpu_check.Runner(tmp_path / "log", {"GPU_CHECK_FAKE_PIDS": str(pids)})
    start = time.monotonic()
    output = runner.run(step, timeout_s=1.5)
    assert step.status == "timeout" and "time box" in step.note and step.returncode is None
    assert 1.5 <= time.monotonic() - start < 1.5 + 2 * gpu_check.KILL_GRACE_S + 5
    assert "fake hung: hang" in output and len(fake_pids(pids)) == 2
    assert not any(alive(pid) for pid in fake_pids(pids))


def test_no_gpu_is_reported_not_crashed(tmp_path):
    # The real path (setup describes the device) with CUDA hidden: every step is "not run", exit 2.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([*SCRIPT, "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stdout + out.stderr
    report, md = read_report(tmp_path / "out")
    assert report["result"] == "setup failed" and "no CUDA device" in report["setup"]["note"]
    assert set(statuses(report).values()) == {"not run"}
    assert report["device"]["torch"] and "setup: failed" in md


def _wheel(folder: Path, name: str, body: str) -> Path:
    """A minimal pure-Python wheel holding package ``name`` (pip installs it with no index)."""
    import zipfile

    dist = f"{name}-0.0.1.dist-info"
    path = folder / f"{name}-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{name}/__init__.py", body)
        whl.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
        whl.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{dist}/RECORD", f"{name}/__init__.py,,\n{dist}/METADATA,,\n{dist}/WHEEL,,\n{dist}/RECORD,,\n")
    return path


@pytest.mark.parametrize("carried", [True, False])
def test_a_missing_package_comes_from_the_carried_wheels(tmp_path, carried):
    # gymnasium hidden by a package that fails to import, as on the GPU image where it is absent.
    hidden = tmp_path / "hidden" / "gymnasium"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('not on this image')\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    if carried:
        _wheel(wheels, "gymnasium", "CARRIED = True\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(tmp_path / "hidden")}
    out = subprocess.run([*SCRIPT, "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work"),
                          "--wheels", str(wheels)], env=env, capture_output=True, text=True, timeout=300)
    report, md = read_report(tmp_path / "out")
    note = report["setup"]["note"]
    assert out.returncode == 2 and note.startswith("missing gymnasium; carried wheels: ")
    if carried:  # installed offline into the work folder, found first; then the (hidden) GPU is missing
        assert "installed" in note and "still missing" not in note and "no CUDA device" in note
        assert (tmp_path / "work" / "site" / "gymnasium" / "__init__.py").read_text() == "CARRIED = True\n"
    else:
        assert "still missing: gymnasium" in note and "make gpu-wheels" in report["setup"]["output_tail"]
        assert "not on this image" in md


# ---- figures read from real output

def test_pytest_figures_from_the_summary_and_from_a_killed_run():
    summary = "FAILED tests/test_cuda.py::test_x[cuda] - assert 1 == 2\n1 failed, 40 passed, 2 skipped in 3.1s\n"
    assert gpu_check.pytest_figures(summary) == {"failed": 1, "passed": 40, "skipped": 2,
                                                 "failed_tests": ["tests/test_cuda.py::test_x[cuda]"]}
    killed = "........F.s...  [ 10%]\n.......\n"
    assert gpu_check.pytest_figures(killed) == {"passed": 19, "failed": 1, "errors": 0, "skipped": 1,
                                                "partial": True}


def test_sanitizer_figures_count_its_errors():
    output = "========= Invalid __global__ write of size 4\n========= ERROR SUMMARY: 2 errors\n3 passed in 9.0s\n"
    assert gpu_check.sanitizer_figures(output) == {"passed": 3, "sanitizer_errors": 2}


def test_bench_figures_from_bench_cuda_names(tmp_path):
    def bench(name, group, median, **extra):
        return {"name": name, "group": group, "stats": {"median": median, "iqr": 0.0, "rounds": 10},
                "extra_info": extra}

    path = tmp_path / "b.json"
    path.write_text(json.dumps({"benchmarks": [
        bench("test_cuda_td_target_vs_eager_and_compile[rltorch-4096]", "cuda-td-target-B4096", 1e-5),
        bench("test_cuda_td_target_vs_eager_and_compile[eager-4096]", "cuda-td-target-B4096", 4e-5),
        bench("test_cuda_td_target_vs_eager_and_compile[compiled-4096]", "cuda-td-target-B4096", 2e-5),
        bench("test_cuda_cartpole_steps_per_second[2^24]", "cuda-cartpole-2^24", 1e-3, envs=2**24,
              steps_per_s=int(1.6e10), fraction_of_copy_bandwidth=0.7),
    ]}))
    figures = gpu_check.bench_figures(str(path))
    assert figures["speedup"] == {"cuda-td-target-B4096": {"vs_eager": 4.0, "vs_compiled": 2.0}}
    step = gpu_check.Step("bench", "", 1, [], "bench", figures=figures)
    assert "2^24: 16.00 G steps/s (0.7 of copy bw)" in gpu_check.summarize(step)
    assert gpu_check.bench_figures(str(tmp_path / "missing.json")) == {}


def test_train_and_import_figures():
    line = 'RESULT {"solved": true, "time_to_solve_s": 2.5, "steps_to_solve": 60000, "env_steps": 60000, "x": 1}'
    assert gpu_check.train_figures("noise\n" + line) == {"solved": True, "time_to_solve_s": 2.5,
                                                         "steps_to_solve": 60000, "env_steps": 60000}
    info = {"torch": "2.11.0", "cuda_compiled": True, "cuda_available": True,
            "ops": {"gae": {"cpu": "extension", "cuda": "extension"}, "td": {"cpu": "extension", "cuda": "reference"}}}
    assert gpu_check.import_figures("a warning {}\nINFO " + json.dumps(info)) == {
        "torch": "2.11.0",
        "cuda_compiled": True,
        "cuda_available": True,
        "ops": 2,
        "ops_with_cuda_kernel": 1,
    }


@pytest.mark.parametrize("left", [gpu_check.MIN_START_S - 1, 100])
def test_steps_get_only_the_time_left(tmp_path, left):
    steps = gpu_check.plan(sys.executable, 480, tmp_path, "compute-sanitizer")
    gpu_check.fake(steps, "")
    run = gpu_check.Run(out=tmp_path / "out", budget_s=480, mode="fake", steps=steps,
                        device={"name": "fake"}, setup={"status": "passed"})
    run.started = time.monotonic() - 480 + gpu_check.RESERVE_S / 2 + left  # as if `left` seconds remained
    status = gpu_check.execute(run, gpu_check.Runner(tmp_path / "log", {}))
    got = {s.name: s.status for s in steps}
    if left < gpu_check.MIN_START_S:
        assert status == 1 and run.result() == "incomplete" and set(got.values()) == {"not run"}
        assert "budget spent" in steps[0].note
    else:
        assert status == 0 and run.result() == "passed" and set(got.values()) == {"passed"}
        assert all(s.timeout_s <= left for s in steps)
        assert left - 30 < steps[-1].timeout_s < steps[0].timeout_s  # the rest of the suite: what the others left
    report, md = read_report(tmp_path / "out")
    assert statuses(report) == got and md_rows(md) == got
