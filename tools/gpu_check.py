"""`make gpu-check`: what only a GPU can show, in one lease-sized run, into one report.

A lent GPU machine gives one short, offline run (the device tool: at most 10 minutes a
command, 15 minutes of device time in all). This script fits that: a wall-clock budget
(--budget-s, default 480 s on a 16-core H100, the build included), steps ordered by
what they prove, each with its own time box, and a report (gpu_check.md and
gpu_check.json in --out) rewritten after every step, so a run cut short still returns
everything it finished. The last lines printed are a short table.

  setup        the device named; rltorch's missing runtime packages installed offline
               from the wheels carried in .whl/ (`make gpu-wheels` fetches them)
  build        rltorch in place against this very torch: CUDA kernels for this GPU's
               architecture only (torch.cuda.get_device_capability), every core
  import       the built library loads and its CUDA kernels are registered
  cuda-tests   tests/test_cuda.py, the chunked GAE, the device error record, the running
               max, CPU = CUDA CartPole bit for bit (2^24 envs, wide angles)
  memcheck     compute-sanitizer memcheck over the small "sanitize" cases
  bench-*      benchmarks/bench_cuda.py: CartPole steps/s at 2^20 and 2^24 against the
               copy bandwidth measured in the same run, the PER cycle at B = 4096 on 2^24
               leaves, TD targets and GAE against eager PyTorch, then against torch.compile
  train-*      PPO and DQN on --device cuda for a fixed number of env steps
  racecheck, initcheck, suite-rest   only in the time that remains

It never changes the card's settings and leaves no process behind: every step runs in
its own process group, killed (with anything it spawned) at its time box or when this
script is interrupted.

  --dry-run      print the plan (steps and time boxes) and write it as the report
  --fake-steps   run the plan with stand-in commands (tests/test_gpu_check.py): the whole
                 orchestration (time boxes, kills, report after every step) on a CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUDGET_S = 480
#: Kept back from the budget for this script's own start, report writes and kills.
RESERVE_S = 20
#: A required step offered less than this (the budget ran out) is skipped rather than started.
MIN_START_S = 10
#: An optional step runs only when at least this much time is left.
MIN_OPTIONAL_S = 30
#: Seconds between SIGTERM and SIGKILL when a step is stopped.
KILL_GRACE_S = 3
TAIL_CHARS = 3000
WHEEL_DIR = ROOT / ".whl"
WORK_DIR = ROOT / "build" / "gpu-check"
REPORT_JSON, REPORT_MD, REPORT_LOG, BENCH_JSON = "gpu_check.json", "gpu_check.md", "gpu_check.log", "gpu_bench.json"

#: Modules rltorch and the steps' tests import. The GPU image lacks gymnasium (and its
#: dependency Farama-Notifications): they travel as wheels in .whl/, pinned to the
#: versions the suite was tested with here (`make test-oldest`).
REQUIRED_MODULES = ("numpy", "gymnasium", "tqdm", "matplotlib", "pytest", "hypothesis", "pytest_benchmark", "mpmath")
CARRIED_WHEELS = ("gymnasium==1.4.0", "farama-notifications==0.0.6")
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")

#: The CUDA correctness tests (step cuda-tests); suite-rest runs everything else.
CUDA_TEST_FILES = ("tests/test_cuda.py", "tests/test_gae_chunked.py", "tests/test_device_errors.py",
                   "tests/test_running_max.py")
CUDA_TEST_IDS = ("tests/test_cartpole_fidelity.py::test_cpu_and_cuda_same_bits_for_every_state",)
BENCH_FILE = "benchmarks/bench_cuda.py"

STATUSES = ("planned", "running", "passed", "failed", "timeout", "skipped", "interrupted", "not run")


@dataclass
class Step:
    name: str
    what: str
    box_s: float | None  # None: whatever time remains (the last optional step)
    command: list[str]
    kind: str  # how its output is read: build | import | pytest | sanitizer | bench | train
    env: dict[str, str] = field(default_factory=dict)
    optional: bool = False
    needs_build: bool = True
    artifact: str | None = None  # a file the step writes (pytest-benchmark JSON)
    in_budget: bool = True  # False: a required step whose box did not fit the budget
    status: str = "planned"
    seconds: float | None = None
    timeout_s: float | None = None
    returncode: int | None = None
    figures: dict = field(default_factory=dict)
    note: str = ""
    output_tail: str = ""


# ---------------------------------------------------------------------------- the plan

IMPORT_CHECK = """
import json, sys
import rltorch
info = rltorch.info()
print("INFO " + json.dumps(info))
sys.exit(0 if info["extension_loaded"] and info["cuda_compiled"] and info["cuda_available"] else 1)
"""


def plan(python: str, budget_s: float, work: Path, sanitizer: str | None, arch: str = "",
         jobs: int = 0, skip_build: bool = False) -> list[Step]:
    """The steps in order of value, with their time boxes fitted to ``budget_s``.

    A required step that no longer fits the budget after the ones before it is marked
    skipped here; optional steps are decided at run time from the time actually left."""
    strict = {"RLTORCH_STRICT": "1", "PYTHONUNBUFFERED": "1"}
    pytest = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    san = sanitizer or "compute-sanitizer"

    def sanitizer_step(tool: str, box: float, optional: bool) -> Step:
        command = [san, "--tool", tool, "--error-exitcode", "99", "--print-limit", "50",
                   *pytest, "tests/test_cuda.py", "-k", "sanitize"]
        # Without the caching allocator every tensor is its own allocation, so memcheck sees
        # an overrun past a tensor's end and initcheck a read of memory nothing wrote.
        return Step(tool, f"compute-sanitizer {tool} over the small sanitize cases", box, command, "sanitizer",
                    env={**strict, "PYTORCH_NO_CUDA_MEMORY_CACHING": "1"}, optional=optional)

    def bench_step(name: str, what: str, box: float, selection: str) -> Step:
        artifact = str(work / f"{name}.json")
        return Step(name, what, box, [*pytest, BENCH_FILE, "--benchmark-only", "-k", selection,
                                      f"--benchmark-json={artifact}", "--benchmark-columns=median,iqr,rounds"],
                    "bench", env=strict, artifact=artifact)

    def train_step(algo: str, box: float, total_steps: int) -> Step:
        command = [python, "-m", "rltorch.bench.rltorch_solve", algo, "--seed", "1", "--device", "cuda",
                   "--total-steps", str(total_steps)]
        return Step(f"train-{algo}", f"{algo.upper()} on CartPole-v1, --device cuda, at most {total_steps} env steps",
                    box, command, "train", env=strict)

    done_elsewhere = [f"--ignore={f}" for f in CUDA_TEST_FILES] + [f"--deselect={t}" for t in CUDA_TEST_IDS]
    steps = [
        # No network there and no build isolation: compiled against the torch that will load it.
        # 13 objects, one arch: the slowest (cartpole_cuda.cu) took 88 s alone on a loaded 2-core
        # machine here, so 16 cores finish the build well inside its box.
        Step("build", "rltorch in place, CUDA kernels for this GPU only", 100,
             [python, "setup.py", "-q", "build_ext", "--inplace"], "build",
             env={"RLTORCH_CUDA": "1", "TORCH_CUDA_ARCH_LIST": arch, "MAX_JOBS": str(jobs or _cores())},
             needs_build=False),
        Step("import", "the library loads, built with CUDA kernels, and sees the GPU (rltorch.info())", 15,
             [python, "-c", IMPORT_CHECK], "import", env=strict),
        Step("cuda-tests", "CUDA = CPU and reference: every op, chunked GAE, error record, running max, CartPole",
             80, [*pytest, "--durations=15", *CUDA_TEST_FILES, *CUDA_TEST_IDS], "pytest", env=strict),
        sanitizer_step("memcheck", 55, optional=False),
        bench_step("bench-cartpole", "CartPole steps/s at 2^20 and 2^24 against the copy bandwidth", 20,
                   "cartpole_steps_per_second"),
        bench_step("bench-per", "PER cycle, B = 4096 from 2^24 leaves (target 50 us)", 15, "per_sample_and_update"),
        bench_step("bench-td", "TD targets at B = 4096 and 2^20: rltorch vs eager PyTorch", 15,
                   "td_target and not compiled"),
        bench_step("bench-gae", "GAE at T x N = 2048 x 8 and 256 x 4096: rltorch vs the eager loop", 20,
                   "gae and not compiled"),
        # Last of the benchmarks: inductor's compile times are the least predictable part.
        bench_step("bench-compile", "TD targets and GAE: rltorch vs torch.compile of the reference", 50,
                   "(td_target or gae_vs_eager_and_compile) and (rltorch or compiled)"),
        train_step("ppo", 30, 200_000),
        train_step("dqn", 40, 100_000),
        sanitizer_step("racecheck", 45, optional=True),
        sanitizer_step("initcheck", 45, optional=True),
        Step("suite-rest", "the rest of the test suite (CPU and CUDA cases)", None,
             [*pytest, "tests", *done_elsewhere], "pytest", env=strict, optional=True),
    ]
    if skip_build:
        steps[0].box_s, steps[0].status, steps[0].note = 0, "skipped", "--skip-build: the extension built in place"
    used = 0.0
    for step in steps:
        if step.optional or step.status == "skipped":
            continue
        if used + step.box_s > budget_s - RESERVE_S:
            step.in_budget = False
            step.status, step.note = "skipped", f"its {step.box_s:.0f} s box does not fit a {budget_s:.0f} s budget"
            continue
        used += step.box_s
    for step in steps:
        if step.kind == "sanitizer" and sanitizer is None and step.status == "planned":
            step.status, step.note = "skipped", "compute-sanitizer not found (CUDA_HOME/bin or PATH)"
    return steps


def required_seconds(steps: list[Step]) -> float:
    """The time boxes of the required steps that fit the budget, summed (what the plan promises to fit)."""
    return sum(s.box_s for s in steps if not s.optional and s.in_budget)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------- figures

_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)")
_PROGRESS_LINE = re.compile(r"^([.FEsxX]+)\s*(\[\s*\d+%\])?\s*$")


def pytest_figures(output: str) -> dict:
    """Counts from pytest's summary line; without one (a killed run), from its progress dots."""
    figures: dict = {}
    summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)", line)
               and " in " in line]
    if summary:
        for number, word in _PYTEST_COUNT.findall(summary[-1]):
            word = {"error": "errors", "warning": "warnings"}.get(word, word)
            figures[word] = int(number)
    else:
        marks = "".join(m.group(1) for m in map(_PROGRESS_LINE.match, output.splitlines()) if m)
        if marks:
            figures = {"passed": marks.count("."), "failed": marks.count("F"), "errors": marks.count("E"),
                       "skipped": marks.count("s"), "partial": True}
    failed = [line.split(" ", 1)[1].split(" - ")[0] for line in output.splitlines()
              if line.startswith(("FAILED ", "ERROR "))]
    if failed:
        figures["failed_tests"] = failed[:20]
    return figures


def sanitizer_figures(output: str) -> dict:
    figures = pytest_figures(output)
    found = re.findall(r"ERROR SUMMARY: (\d+) error", output)
    if found:
        figures["sanitizer_errors"] = sum(int(n) for n in found)
    return figures


def bench_figures(path: str | None) -> dict:
    """The key numbers of one pytest-benchmark JSON file written by benchmarks/bench_cuda.py."""
    if not path or not Path(path).exists():
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {"error": f"unreadable {Path(path).name}"}
    cases = {}
    for bench in data.get("benchmarks", []):
        stats = bench.get("stats", {})
        cases[bench.get("name", "?")] = {"group": bench.get("group"), "median_us": _us(stats.get("median")),
                                         "iqr_us": _us(stats.get("iqr")), "rounds": stats.get("rounds"),
                                         **bench.get("extra_info", {})}
    figures: dict = {"cases": cases}
    # Speed-ups over the anchors measured in the same run: group -> {impl: median}.
    groups: dict[str, dict[str, float]] = {}
    for name, case in cases.items():
        impl = re.search(r"\[(?:.*-)?(rltorch|eager|compiled)(?:-.*)?\]", name)
        if impl and case["median_us"]:
            groups.setdefault(case["group"] or name, {})[impl.group(1)] = case["median_us"]
    speedups = {}
    for group, impls in sorted(groups.items()):
        if "rltorch" in impls:
            speedups[group] = {f"vs_{k}": round(v / impls["rltorch"], 2) for k, v in impls.items() if k != "rltorch"}
    if speedups:
        figures["speedup"] = speedups
    return figures


def _us(seconds) -> float | None:
    return None if seconds is None else round(seconds * 1e6, 2)


def train_figures(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return {}
    try:
        result = json.loads(lines[-1][len("RESULT "):])
    except json.JSONDecodeError:
        return {}
    keep = ("solved", "time_to_solve_s", "steps_to_solve", "env_steps", "wall_time_s", "last_eval_return", "device")
    return {k: result[k] for k in keep if k in result}


def import_figures(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("INFO ")]
    try:
        info = json.loads(lines[-1][len("INFO "):]) if lines else {}
    except json.JSONDecodeError:
        return {}
    ops = info.get("ops", {})
    on_cuda = [name for name, devices in ops.items() if devices.get("cuda") == "extension"]
    return {"torch": info.get("torch"), "cuda_compiled": info.get("cuda_compiled"),
            "cuda_available": info.get("cuda_available"), "ops": len(ops), "ops_with_cuda_kernel": len(on_cuda)}


def read_figures(step: Step, output: str) -> dict:
    if step.kind == "pytest":
        return pytest_figures(output)
    if step.kind == "sanitizer":
        return sanitizer_figures(output)
    if step.kind == "bench":
        return bench_figures(step.artifact)
    if step.kind == "train":
        return train_figures(output)
    if step.kind == "import":
        return import_figures(output)
    if step.kind == "build":
        return {"arch": step.env.get("TORCH_CUDA_ARCH_LIST"), "jobs": int(step.env.get("MAX_JOBS", "0"))}
    return {}


def summarize(step: Step) -> str:
    """The step's key figures, in a few words."""
    f = step.figures
    if not f:
        return ""
    if step.kind in ("pytest", "sanitizer"):
        words = [f"{f[k]} {k}" for k in ("passed", "failed", "errors", "skipped") if f.get(k)]
        text = ", ".join(words) + (" (before the stop)" if f.get("partial") else "")
        if "sanitizer_errors" in f:
            text += f"; sanitizer: {f['sanitizer_errors']} errors"
        return text
    if step.kind == "bench":
        parts = []
        for name, case in f.get("cases", {}).items():
            if "steps_per_s" in case:
                parts.append(f"2^{int(case['envs']).bit_length() - 1}: {case['steps_per_s'] / 1e9:.2f} G steps/s "
                             f"({case.get('fraction_of_copy_bandwidth')} of copy bw)")
            elif "target_us" in case:
                parts.append(f"{name.split('[')[-1].rstrip(']')} {case['median_us']} us")
        for group, ratios in f.get("speedup", {}).items():
            parts.append(f"{group}: " + ", ".join(f"{v}x {k}" for k, v in ratios.items()))
        return "; ".join(parts)
    if step.kind == "train":
        if f.get("solved"):
            return f"solved in {f['time_to_solve_s']:.1f} s, {f['steps_to_solve']} env steps"
        return f"not solved in {f.get('env_steps')} env steps (last eval {f.get('last_eval_return')})"
    if step.kind == "import":
        return f"torch {f.get('torch')}, CUDA kernels for {f.get('ops_with_cuda_kernel')}/{f.get('ops')} ops"
    if step.kind == "build":
        return f"arch {f.get('arch')}, {f.get('jobs')} jobs"
    return ""


def cell(step: Step) -> str:
    """The report table's last column: key figures, then why it stopped or did not run."""
    return "; ".join(part for part in (summarize(step), step.note) if part)


# ---------------------------------------------------------------------------- the report

@dataclass
class Run:
    out: Path
    budget_s: float
    mode: str  # run | dry-run | fake
    device: dict = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    created: str = field(default_factory=lambda: _now())
    interrupted: str | None = None
    setup: dict = field(default_factory=dict)

    def result(self) -> str:
        if self.mode == "dry-run":
            return "planned"
        if self.setup.get("status") == "failed":
            return "setup failed"
        if any(s.status in ("failed", "timeout") for s in self.steps):
            return "failed"
        unfinished = [s for s in self.steps if s.status in ("running", "planned", "interrupted")
                      or (s.status == "not run" and not s.optional)]
        return "incomplete" if self.interrupted or unfinished else "passed"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _atomic_write(path: Path, text: str) -> None:
    # A run killed while writing must still leave the previous, whole report.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_report(run: Run) -> None:
    run.out.mkdir(parents=True, exist_ok=True)
    elapsed = round(time.monotonic() - run.started, 1)
    report = {
        "tool": "rltorch gpu-check", "mode": run.mode, "created": run.created, "updated": _now(),
        "budget_s": run.budget_s, "elapsed_s": elapsed, "result": run.result(), "interrupted": run.interrupted,
        "device": run.device, "setup": run.setup,
        "host": {"cpus": _cores(), "python": platform.python_version(), "platform": platform.platform()},
        "steps": [dataclasses.asdict(s) for s in run.steps],
    }
    _atomic_write(run.out / REPORT_JSON, json.dumps(report, indent=2) + "\n")
    _atomic_write(run.out / REPORT_MD, render_markdown(report))
    benches = {s.name: json.loads(Path(s.artifact).read_text()) for s in run.steps
               if s.artifact and s.status in ("passed", "failed") and Path(s.artifact).exists()}
    if benches:
        _atomic_write(run.out / BENCH_JSON, json.dumps(benches) + "\n")


def _device_line(device: dict) -> str:
    if not device:
        return "not described yet"
    parts = [device.get("name", "unknown")]
    if device.get("capability"):
        parts.append(f"compute capability {device['capability']}")
    if device.get("sms"):
        parts.append(f"{device['sms']} SMs")
    if device.get("memory_gib"):
        parts.append(f"{device['memory_gib']} GiB")
    if device.get("torch"):
        parts.append(f"torch {device['torch']} (CUDA {device.get('cuda')})")
    if device.get("driver"):
        parts.append(f"driver {device['driver']}")
    return ", ".join(parts)


def render_markdown(report: dict) -> str:
    steps = [Step(**s) for s in report["steps"]]
    mode = {"dry-run": " (DRY RUN: the plan, nothing ran)", "fake": " (FAKE STEPS: nothing ran on a GPU)"}.get(
        report["mode"], "")
    lines = [
        f"# rltorch gpu-check: {report['device'].get('name', 'no device')}{mode}",
        "",
        f"- result: **{report['result']}**" + (f" (interrupted: {report['interrupted']})"
                                             if report["interrupted"] else ""),
        f"- device: {_device_line(report['device'])}",
        f"- started {report['created']}, updated {report['updated']}: {report['elapsed_s']} s of a "
        f"{report['budget_s']:.0f} s budget; host {report['host']['cpus']} CPUs, Python {report['host']['python']}",
    ]
    if report["setup"]:
        lines.append(f"- setup: {report['setup'].get('status')} ({report['setup'].get('note', '')})")
    lines += ["", "| # | step | status | seconds | box | key figures |", "|---|---|---|---|---|---|"]
    for i, s in enumerate(steps, 1):
        box = "rest" if s.box_s is None else f"{s.box_s:.0f}"
        box += " (if time remains)" if s.optional else ""
        seconds = "-" if s.seconds is None else f"{s.seconds:.1f}"
        lines.append(f"| {i} | {s.name} | {s.status} | {seconds} | {box} | {cell(s).replace('|', '/')} |")
    lines += ["", "## What each step checks", ""]
    lines += [f"- **{s.name}**: {s.what}" for s in steps]
    for s in steps:
        if s.status in ("failed", "timeout", "interrupted") and s.output_tail:
            lines += ["", f"## {s.name}: {s.status}" + (f" ({s.note})" if s.note else ""), "", "```",
                      s.output_tail.rstrip(), "```"]
    if report["setup"].get("output_tail"):
        lines += ["", "## setup output", "", "```", report["setup"]["output_tail"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def table(run: Run) -> str:
    """The short table printed last (the device tool returns the end of the output)."""
    rows = [f"gpu-check {run.result()} on {run.device.get('name', 'no device')} "
            f"({round(time.monotonic() - run.started)} s of {run.budget_s:.0f} s); report: {run.out / REPORT_MD}"]
    for s in run.steps:
        seconds = "-" if s.seconds is None else f"{s.seconds:.0f}s"
        rows.append(f"  {s.name:<14} {s.status:<11} {seconds:>5}  {cell(s)[:90]}")
    return "\n".join(rows)


# ---------------------------------------------------------------------------- running a step

class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, frame):
    raise Interrupted(signum)


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, process group, state) of every process, read from /proc."""
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after the command name, which may hold spaces
        procs[int(entry)] = (int(fields[1]), int(fields[2]), fields[0])
    return procs


def _tree(root: int) -> set[int]:
    """The live processes of ``root``'s process group and every descendant of them (one that left the group too)."""
    procs = _proc_table()
    found = {pid for pid, (_, pgid, _) in procs.items() if pgid == root}
    if root in procs:
        found.add(root)
    while True:
        children = {pid for pid, (ppid, _, _) in procs.items() if ppid in found} - found
        if not children:
            break
        found |= children
    found.discard(os.getpid())
    return {pid for pid in found if procs[pid][2] not in ("Z", "X")}


def kill_tree(proc: subprocess.Popen) -> None:
    """Stops ``proc`` and everything it started: SIGTERM, a grace period, then SIGKILL."""
    members = _tree(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        members |= _tree(proc.pid)
        for pid in members:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        give_up = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < give_up:
            proc.poll()
            members = {pid for pid in members if _alive(pid)}
            if proc.returncode is not None and not members:
                return
            time.sleep(0.05)
    proc.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _own_group() -> None:
    """In the child before exec: its own process group (in this session, so whoever ends this
    session's processes ends it too) and, on Linux, death with its parent: a gpu-check killed
    outright leaves no step running."""
    os.setpgrp()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Runner:
    """Runs one step at a time in its own process group; remembers it so a signal can stop it."""

    def __init__(self, log_path: Path, extra_env: dict[str, str]):
        self.log_path = log_path
        self.extra_env = extra_env
        self.current: subprocess.Popen | None = None
        self.offset = 0

    def run(self, step: Step, timeout_s: float) -> str:
        """Runs ``step`` for at most ``timeout_s`` seconds; fills in its result and returns its output."""
        env = {**os.environ, **self.extra_env, **step.env}
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== {step.name}: {' '.join(step.command)}\n".encode())
            log.flush()
            self.offset = log.tell()
            start = time.monotonic()
            step.status, step.timeout_s = "running", round(timeout_s, 1)
            try:
                self.current = subprocess.Popen(step.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, preexec_fn=_own_group)
            except OSError as exc:
                step.status, step.note, step.seconds = "failed", f"could not start: {exc}", 0.0
                return ""
            try:
                step.returncode = self.current.wait(timeout=timeout_s)
                step.status = "passed" if step.returncode == 0 else "failed"
            except subprocess.TimeoutExpired:
                step.status, step.note = "timeout", f"stopped at its {timeout_s:.0f} s time box"
            finally:
                self.stop()  # also whatever a finished step left running
                step.seconds = round(time.monotonic() - start, 1)
        output = self.output()
        step.output_tail = output[-TAIL_CHARS:] if step.status != "passed" else ""
        return output

    def output(self) -> str:
        """What the current (or last) step has printed so far."""
        with open(self.log_path, "rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.current is not None:
            kill_tree(self.current)
            self.current = None


# ---------------------------------------------------------------------------- setup: device and packages

DESCRIBE = """
import json, sys, torch
d = {"torch": torch.__version__, "cuda": torch.version.cuda, "available": torch.cuda.is_available(),
     "python": sys.version.split()[0]}
if d["available"]:
    p = torch.cuda.get_device_properties(0)
    major, minor = torch.cuda.get_device_capability(0)
    d.update(name=p.name, capability=f"{major}.{minor}", sms=p.multi_processor_count,
             memory_gib=round(p.total_memory / 2**30, 1), count=torch.cuda.device_count())
print("DEVICE " + json.dumps(d))
"""

# Imported, not just found: a carried wheel whose own dependency is too old there fails here, by name.
FIND_MISSING = """
import importlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        print(f"MISSING {name}: {type(exc).__name__}: {exc}")
"""


def _quick(command: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    """A short set-up command; one that hangs is reported as failed (exit status None), never waited on."""
    try:
        return subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(command, None, str(exc.stdout or ""), f"timed out after {timeout} s")


def missing_modules(python: str, env: dict) -> dict[str, str]:
    """Module -> why it does not import, for each of REQUIRED_MODULES that does not."""
    out = _quick([python, "-c", FIND_MISSING, *REQUIRED_MODULES], env)
    lines = [line[len("MISSING "):] for line in out.stdout.splitlines() if line.startswith("MISSING ")]
    if out.returncode != 0:
        return {"python": (out.stdout + out.stderr)[-TAIL_CHARS:]}
    return dict(line.split(": ", 1) for line in lines)


def install_carried_wheels(python: str, site: Path, wheel_dir: Path) -> tuple[bool, str]:
    """Installs every wheel in ``wheel_dir`` into ``site`` (no index, no network, no dependencies resolved)."""
    wheels = sorted(wheel_dir.glob("*.whl"))
    if not wheels:
        return False, f"no wheels in {wheel_dir} (run `make gpu-wheels` before the lease and carry .whl)"
    out = _quick([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
                  "--upgrade", "--target", str(site), *map(str, wheels)], {}, timeout=120)
    text = (out.stdout + out.stderr)[-TAIL_CHARS:]
    return out.returncode == 0, text or f"installed {len(wheels)} wheels into {site}"


def driver_version() -> str | None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:  # a read-only query
        out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def setup(python: str, env: dict, work: Path, wheel_dir: Path) -> tuple[dict, dict]:
    """(device, setup record): installs what is missing from the carried wheels, then describes the device."""
    start = time.monotonic()
    record: dict = {"status": "passed", "note": ""}
    missing = missing_modules(python, env)
    if missing:
        site = work / "site"
        ok, text = install_carried_wheels(python, site, wheel_dir)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))
        still = missing_modules(python, env)
        record["note"] = f"missing {', '.join(missing)}; carried wheels: {'installed' if ok else 'FAILED'}"
        if still:
            record.update(status="failed", output_tail="\n".join([text, *(f"{k}: {v}" for k, v in still.items())]))
            record["note"] += f"; still missing: {', '.join(still)}"
    else:
        record["note"] = "every required package present"
    out = _quick([python, "-c", DESCRIBE], env, timeout=90)
    lines = [line for line in out.stdout.splitlines() if line.startswith("DEVICE ")]
    if out.returncode != 0 or not lines:
        device = {"name": "unknown"}
        record.update(status="failed", output_tail=(out.stdout + out.stderr)[-TAIL_CHARS:])
        record["note"] += "; could not import torch"
    else:
        device = json.loads(lines[-1][len("DEVICE "):])
        device["driver"] = driver_version()
        if not device.get("available"):
            device.setdefault("name", "no CUDA device")
            record["status"] = "failed"
            record["note"] += "; torch sees no CUDA device"
    record["seconds"] = round(time.monotonic() - start, 1)
    return device, record


# ---------------------------------------------------------------------------- fake steps (tests)

FAKE_STEP = r"""
import json, os, subprocess, sys, time
name, behaviour, argv = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(f"fake {name}: {behaviour}", flush=True)
pids = os.environ.get("GPU_CHECK_FAKE_PIDS")
if behaviour == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    if pids:
        with open(pids, "a") as f:
            f.write(f"{os.getpid()} {child.pid}\n")
    time.sleep(3600)
if behaviour.startswith("sleep:"):
    time.sleep(float(behaviour.split(":")[1]))
failed = behaviour == "fail"
for arg in argv:
    if arg.startswith("--benchmark-json="):
        bench = {"name": f"test_fake[rltorch]", "group": "fake", "stats": {"median": 1e-5, "iqr": 1e-6, "rounds": 5},
                 "extra_info": {}}
        with open(arg.split("=", 1)[1], "w") as f:
            json.dump({"benchmarks": [bench, dict(bench, name="test_fake[eager]", stats={"median": 3e-5})]}, f)
if "rltorch_solve" in " ".join(argv):
    print("RESULT " + json.dumps({"solved": not failed, "time_to_solve_s": 1.0, "steps_to_solve": 1000,
                                   "env_steps": 1000, "wall_time_s": 1.0, "last_eval_return": 500.0}))
if any("rltorch.info()" in arg for arg in argv):
    print("INFO " + json.dumps({"torch": "fake", "cuda_compiled": True, "cuda_available": True, "ops": {}}))
if failed:
    print("FAILED tests/test_fake.py::test_fake - AssertionError: fake failure")
print("1 failed, 2 passed in 0.01s" if failed else "3 passed, 1 skipped in 0.01s", flush=True)
sys.exit(1 if failed else 0)
"""


def fake(steps: list[Step], spec: str) -> None:
    """Replaces every step's command by a stand-in: ``spec`` is ``name=pass|fail|hang|sleep:S,...`` (default pass)."""
    behaviours = dict(item.split("=", 1) for item in spec.split(",") if item)
    unknown = set(behaviours) - {s.name for s in steps}
    if unknown:
        raise SystemExit(f"--fake-steps: unknown step(s) {', '.join(sorted(unknown))}")
    for step in steps:
        step.command = [sys.executable, "-c", FAKE_STEP, step.name, behaviours.get(step.name, "pass"),
                        json.dumps(step.command)]


# ---------------------------------------------------------------------------- main

def find_sanitizer() -> str | None:
    home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    candidate = Path(home) / "bin" / "compute-sanitizer"
    return str(candidate) if candidate.exists() else shutil.which("compute-sanitizer")


def print_plan(steps: list[Step], budget_s: float) -> None:
    print(f"gpu-check plan for a {budget_s:.0f} s budget: required steps {required_seconds(steps):.0f} s "
          f"+ {RESERVE_S} s reserve; optional steps run in what remains")
    for i, s in enumerate(steps, 1):
        box = "rest" if s.box_s is None else f"{s.box_s:.0f} s"
        print(f"  {i:>2}. {s.name:<14} {box:>6}  {'if time remains' if s.optional else 'required':<15}  {s.what}")
        if s.status == "skipped":
            print(f"{'':>32}skipped: {s.note}")


def download_wheels(python: str) -> int:
    """Fetches CARRIED_WHEELS for the GPU image's Python (3.12, x86-64) into .whl/ (run where pip can reach PyPI)."""
    platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
    command = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
               "--implementation", "cp", *platforms, "-d", str(WHEEL_DIR), *CARRIED_WHEELS]
    print(" ".join(command), flush=True)
    return subprocess.run(command).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", default="gpu-report", help="report folder (default: gpu-report)")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help=f"wall-clock budget of the whole run, the build included (default {DEFAULT_BUDGET_S})")
    parser.add_argument("--python", default=sys.executable, help="the Python whose torch to build and test against")
    parser.add_argument("--arch", default="", help="TORCH_CUDA_ARCH_LIST for the build (default: this GPU's own)")
    parser.add_argument("--work-dir", default=str(WORK_DIR),
                        help="scratch folder: benchmark files, installed wheels (default build/gpu-check)")
    parser.add_argument("--wheels", default=str(WHEEL_DIR),
                        help="wheels to install offline when a required package is missing (default .whl)")
    parser.add_argument("--skip-build", action="store_true", help="use the extension already built in place")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and write it as the report")
    parser.add_argument("--fake-steps", metavar="SPEC", default=None,
                        help="stand-in commands, for testing: name=pass|fail|hang|sleep:S,... (default pass)")
    parser.add_argument("--download-wheels", action="store_true",
                        help=f"fetch {', '.join(CARRIED_WHEELS)} into .whl/ for the GPU image and exit")
    args = parser.parse_args(argv)
    if args.download_wheels:
        return download_wheels(args.python)
    if args.budget_s <= RESERVE_S + MIN_START_S:
        parser.error(f"--budget-s must exceed {RESERVE_S + MIN_START_S} s, got {args.budget_s:g}")
    faked = args.fake_steps is not None
    run = Run(out=Path(args.out).resolve(), budget_s=args.budget_s,
              mode="dry-run" if args.dry_run else ("fake" if faked else "run"))
    # The fake needs no compute-sanitizer: plan as if it were there.
    sanitizer = "compute-sanitizer" if faked else find_sanitizer()
    work = Path(args.work_dir).resolve()
    run.steps = plan(args.python, args.budget_s, work, sanitizer, arch=args.arch, skip_build=args.skip_build)
    if not run.steps[0].in_budget:
        parser.error(f"--budget-s {args.budget_s:g} leaves no time for the build ({run.steps[0].box_s:.0f} s "
                     f"+ {RESERVE_S} s reserve); give more or --skip-build")
    if args.dry_run:
        print_plan(run.steps, args.budget_s)
        write_report(run)
        return 0
    if faked:
        fake(run.steps, args.fake_steps)
    work.mkdir(parents=True, exist_ok=True)
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / REPORT_LOG).write_bytes(b"")
    runner = Runner(run.out / REPORT_LOG, {})
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    status = 0
    try:
        write_report(run)
        if faked:
            run.device = {"name": "fake device (--fake-steps)", "capability": "9.0", "available": True}
            run.setup = {"status": "passed", "note": "fake: nothing installed", "seconds": 0.0}
        else:
            run.device, run.setup = setup(args.python, runner.extra_env, work, Path(args.wheels).resolve())
        build = run.steps[0]
        if not args.arch:
            build.env["TORCH_CUDA_ARCH_LIST"] = run.device.get("capability", "")
        build.figures = read_figures(build, "")
        if run.setup["status"] != "passed":
            for s in run.steps:
                s.status, s.note = "not run", "setup failed"
            status = 2
        else:
            status = execute(run, runner)
    except Interrupted as exc:
        running = [s for s in run.steps if s.status == "running"]
        runner.stop()
        run.interrupted = str(exc)
        for s in running:
            s.status, s.note = "interrupted", f"{exc} while running"
            s.output_tail = runner.output()[-TAIL_CHARS:]
        for s in run.steps:
            if s.status == "planned":
                s.status = "not run"
        status = 128 + exc.signum
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # the report is written once, whole
        runner.stop()
        write_report(run)
    print(table(run), flush=True)
    return status


def execute(run: Run, runner: Runner) -> int:
    deadline = run.started + run.budget_s - RESERVE_S / 2
    blocked = ""
    for step in run.steps:
        if step.status == "skipped":
            continue
        left = deadline - time.monotonic()
        if blocked and step.needs_build:
            step.status, step.note = "not run", blocked
            continue
        if step.optional:
            if left < MIN_OPTIONAL_S:
                step.status, step.note = "not run", f"{left:.0f} s left"
                continue
            timeout = left if step.box_s is None else min(step.box_s, left)
        else:
            if left < MIN_START_S:
                step.status, step.note = "not run", f"budget spent ({left:.0f} s left)"
                continue
            timeout = min(step.box_s, left)
        step.status = "running"
        write_report(run)
        print(f"gpu-check: {step.name} (up to {timeout:.0f} s) ...", flush=True)
        output = runner.run(step, timeout)
        step.figures = {**step.figures, **read_figures(step, output)}
        print(f"gpu-check: {step.name} {step.status} in {step.seconds} s: {cell(step)}", flush=True)
        if step.name in ("build", "import") and step.status != "passed":
            blocked = f"{step.name} {step.status}"
        write_report(run)
    write_report(run)
    return 0 if run.result() == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
