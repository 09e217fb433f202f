"""`make gpu-check`: everything that needs a GPU, in one command, into one report.

On a machine with a CUDA GPU and a CUDA build of torch:
  1. build rltorch in place against that torch (setup.py build_ext --inplace: no
     build isolation; CUDA required; for this GPU's architecture unless
     TORCH_CUDA_ARCH_LIST is set);
  2. the full test suite (CUDA cases included);
  3. the GPU-only checks (tests/test_cuda.py, tests/test_gae_chunked.py);
  4. compute-sanitizer memcheck, racecheck and initcheck over the small
     "sanitize" cases of tests/test_cuda.py (skipped when the tool is absent);
  5. the GPU benchmarks: the ops, env and replay cases of rltorch.bench with
     RLTORCH_BENCH_DEVICE=cuda (benchmarks/bench_{ops,env,replay}.py), and
     benchmarks/bench_cuda.py;
and writes REPORT_DIR/gpu_check.md and REPORT_DIR/gpu_check.json naming the
device. Every step runs even if an earlier one failed (except after a failed
build); the exit status is non-zero if any step failed.

`--dry-run` plans the same steps without running them (the report then says
so), which is how tests/test_build_config.py tests the report writer on a
machine without a GPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAIL_CHARS = 4000
SANITIZER_TOOLS = ("memcheck", "racecheck", "initcheck")
BENCHMARK_FILES = ("benchmarks/bench_ops.py", "benchmarks/bench_env.py", "benchmarks/bench_replay.py",
                   "benchmarks/bench_cuda.py")


@dataclass
class Step:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: int = 3600
    status: str = "not run"  # passed | failed | skipped | not run
    returncode: int | None = None
    seconds: float | None = None
    output_tail: str = ""
    note: str = ""


def plan(python: str, out_dir: Path, sanitizer: str | None) -> list[Step]:
    """The steps of a check, in order."""
    strict = {"RLTORCH_STRICT": "1"}
    steps = [
        # In place, against this very torch (no build isolation, no download: GPU boxes may be offline).
        Step("build", [python, "setup.py", "-q", "build_ext", "--inplace"], env={"RLTORCH_CUDA": "1"}),
        Step("tests", [python, "-m", "pytest", "tests", "-q", "-rs", f"--junitxml={out_dir / 'tests.xml'}"], env=strict),
        Step("gpu-checks", [python, "-m", "pytest", "tests/test_cuda.py", "tests/test_gae_chunked.py", "-q", "-rs",
                            f"--junitxml={out_dir / 'gpu_checks.xml'}"], env=strict),
    ]
    for tool in SANITIZER_TOOLS:
        command = [sanitizer or "compute-sanitizer", "--tool", tool, "--error-exitcode", "99",
                   python, "-m", "pytest", "tests/test_cuda.py", "-q", "-k", "sanitize", "-p", "no:cacheprovider"]
        step = Step(f"sanitizer-{tool}", command, env={**strict, "PYTORCH_NO_CUDA_MEMORY_CACHING": "1"})
        if sanitizer is None:
            step.status, step.note = "skipped", "compute-sanitizer not found (CUDA_HOME/bin or PATH)"
        steps.append(step)
    # The suite's cases on the GPU (CPU-only peers drop out of a CUDA run), beside
    # bench_cuda.py's GPU-only measurements.
    steps.append(Step(
        "benchmarks",
        [python, "-m", "pytest", *BENCHMARK_FILES, "-q", "--benchmark-only",
         f"--benchmark-json={out_dir / 'benchmarks.json'}", "--benchmark-columns=median,iqr,rounds"],
        env={**strict, "RLTORCH_BENCH_DEVICE": "cuda"}, timeout_s=5400,
    ))
    # The same cases as one rltorch bench run: its report judges the GPU targets
    # and draws the plots (out_dir/bench/report.md, results.json, *.png).
    steps.append(Step("bench-suite", [python, "-m", "rltorch", "bench", "--full", "--device", "cuda", "--quiet",
                                      "--out", str(out_dir / "bench")], env=strict, timeout_s=3600))
    return steps


def find_sanitizer() -> str | None:
    home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    candidate = Path(home) / "bin" / "compute-sanitizer"
    if candidate.exists():
        return str(candidate)
    return shutil.which("compute-sanitizer")


def describe_device(python: str) -> dict:
    code = (
        "import json, torch\n"
        "d = {'torch': torch.__version__, 'cuda': torch.version.cuda, 'available': torch.cuda.is_available()}\n"
        "if d['available']:\n"
        "    p = torch.cuda.get_device_properties(0)\n"
        "    d.update(name=p.name, capability=f'{p.major}.{p.minor}', memory_gib=round(p.total_memory / 2**30, 1),\n"
        "             count=torch.cuda.device_count(), sms=p.multi_processor_count)\n"
        "print(json.dumps(d))\n"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    if out.returncode != 0:
        return {"name": "unknown", "error": out.stderr[-TAIL_CHARS:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_step(step: Step) -> None:
    env = {**os.environ, **step.env}
    start = time.perf_counter()
    try:
        proc = subprocess.run(step.command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=step.timeout_s)
        step.returncode = proc.returncode
        step.output_tail = (proc.stdout + proc.stderr)[-TAIL_CHARS:]
        step.status = "passed" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired as exc:
        step.status, step.note = "failed", f"timed out after {step.timeout_s} s"
        step.output_tail = str(exc.stdout or "")[-TAIL_CHARS:]
    except OSError as exc:
        step.status, step.note = "failed", f"could not start: {exc}"
    step.seconds = round(time.perf_counter() - start, 1)


def benchmark_rows(path: Path) -> list[dict]:
    """Name, group and median/IQR (seconds) of every benchmark in a pytest-benchmark JSON file."""
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    rows = []
    for bench in data.get("benchmarks", []):
        stats = bench.get("stats", {})
        rows.append({"name": bench.get("fullname", bench.get("name")), "group": bench.get("group"),
                     "median_s": stats.get("median"), "iqr_s": stats.get("iqr"), "rounds": stats.get("rounds"),
                     "extra_info": bench.get("extra_info", {})})
    return rows


def _fmt_time(seconds) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def write_report(out_dir: Path, device: dict, steps: list[Step], benchmarks: list[dict], dry_run: bool) -> tuple[Path, Path]:
    """Writes gpu_check.json and gpu_check.md into out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = [s.name for s in steps if s.status == "failed"]
    report = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dry_run": dry_run,
        "device": device,
        "ok": not failed and not dry_run,
        "failed_steps": failed,
        "steps": [asdict(s) for s in steps],
        "benchmarks": benchmarks,
    }
    json_path = out_dir / "gpu_check.json"
    json_path.write_text(json.dumps(report, indent=2))
    name = device.get("name", "unknown")
    lines = [
        f"# rltorch gpu-check: {name}",
        "",
        f"- created: {report['created']}" + (" (DRY RUN: nothing was executed)" if dry_run else ""),
        f"- device: {name}, compute capability {device.get('capability', '-')}, "
        f"{device.get('memory_gib', '-')} GiB, {device.get('count', '-')} GPU(s)",
        f"- torch {device.get('torch', '-')}, CUDA {device.get('cuda', '-')}",
        f"- result: {'DRY RUN' if dry_run else ('all steps passed' if not failed else 'FAILED: ' + ', '.join(failed))}",
        "",
        "| step | status | seconds | note |",
        "|---|---|---|---|",
    ]
    for s in steps:
        lines.append(f"| {s.name} | {s.status} | {s.seconds if s.seconds is not None else '-'} | {s.note} |")
    if benchmarks:
        lines += ["", "## Benchmarks (median, IQR)", "", "| benchmark | median | IQR | extra |", "|---|---|---|---|"]
        for b in benchmarks:
            extra = ", ".join(f"{k}={v}" for k, v in sorted(b.get("extra_info", {}).items()))
            lines.append(f"| {b['name']} | {_fmt_time(b['median_s'])} | {_fmt_time(b['iqr_s'])} | {extra} |")
    for s in steps:
        if s.status == "failed" and s.output_tail:
            lines += ["", f"## {s.name}: output tail", "", "```", s.output_tail.rstrip(), "```"]
    md_path = out_dir / "gpu_check.md"
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu-report", help="report directory (default: gpu-report)")
    parser.add_argument("--python", default=sys.executable, help="the Python whose torch to build and test against")
    parser.add_argument("--skip-build", action="store_true", help="use the extension already built in place")
    parser.add_argument("--dry-run", action="store_true", help="plan and write the report without running anything")
    args = parser.parse_args(argv)
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = plan(args.python, out_dir, find_sanitizer())
    if args.dry_run:
        device = {"name": "none (dry run)"}
        for s in steps:
            if s.status == "not run":
                s.note = "dry run"
        write_report(out_dir, device, steps, [], dry_run=True)
        print(f"gpu-check (dry run): report in {out_dir}")
        return 0
    device = describe_device(args.python)
    if not device.get("available"):
        for s in steps:
            s.status, s.note = "skipped", "no CUDA device visible to torch"
        write_report(out_dir, device, steps, [], dry_run=False)
        print("gpu-check: torch sees no CUDA device; nothing to check", file=sys.stderr)
        return 2
    if "TORCH_CUDA_ARCH_LIST" not in os.environ:  # this GPU only: a fraction of the full build time
        steps[0].env["TORCH_CUDA_ARCH_LIST"] = device["capability"]
    if args.skip_build:
        steps[0].status, steps[0].note = "skipped", "--skip-build"
    for step in steps:
        if step.status == "skipped":
            continue
        if step is not steps[0] and steps[0].status == "failed":
            step.status, step.note = "skipped", "build failed"
            continue
        print(f"gpu-check: {step.name} ...", flush=True)
        run_step(step)
        print(f"gpu-check: {step.name} {step.status} ({step.seconds} s)", flush=True)
    json_path, md_path = write_report(out_dir, device, steps, benchmark_rows(out_dir / "benchmarks.json"), dry_run=False)
    print(f"gpu-check: report in {md_path} and {json_path}")
    return 0 if all(s.status in ("passed", "skipped") for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
