"""Build configuration without a GPU: the default CUDA architecture list
(tools/cuda_arch.py, used by setup.py) and the gpu-check report writer
(tools/gpu_check.py, `make gpu-check`) in its dry mode."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import cuda_arch  # noqa: E402
import gpu_check  # noqa: E402


def test_arch_list_is_the_intersection_with_ptx_of_the_newest():
    torch_archs = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    nvcc = ["compute_75", "compute_80", "compute_86", "compute_87", "compute_89", "compute_90", "compute_100",
            "compute_110", "compute_120", "compute_121"]
    assert cuda_arch.default_arch_list(torch_archs, nvcc) == "7.5;8.0;8.6;9.0;10.0;12.0+PTX"


def test_arch_list_drops_what_either_side_lacks_and_arch_specific_variants():
    assert cuda_arch.default_arch_list(["sm_80", "sm_90a", "sm_90"], ["compute_80"]) == "8.0+PTX"
    assert cuda_arch.default_arch_list(["sm_90a", "compute_90"], ["compute_90", "compute_90a"]) == "9.0+PTX"
    assert cuda_arch.default_arch_list(["sm_120", "sm_89"], ["compute_89", "compute_120"]) == "8.9;12.0+PTX"


def test_arch_list_fallback_when_nothing_is_known():
    assert cuda_arch.default_arch_list([], []) == cuda_arch.FALLBACK
    assert cuda_arch.default_arch_list(["sm_80"], []) == cuda_arch.FALLBACK
    assert cuda_arch.toolkit_archs("/nonexistent/nvcc") == []


def test_arch_parsing():
    assert cuda_arch._parse("sm_100") == (10, 0, "")
    assert cuda_arch._parse("compute_121") == (12, 1, "")
    assert cuda_arch._parse("sm_90a") == (9, 0, "a")
    assert cuda_arch._parse("8.6+PTX") == (8, 6, "")
    assert cuda_arch._parse("bogus") is None


def test_gpu_check_dry_run_writes_both_reports(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--dry-run", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] and not report["ok"] and report["device"]["name"] == "none (dry run)"
    names = [s["name"] for s in report["steps"]]
    assert names == ["build", "tests", "gpu-checks", "sanitizer-memcheck", "sanitizer-racecheck",
                     "sanitizer-initcheck", "benchmarks", "bench-suite"]
    assert all(s["status"] in ("not run", "skipped") for s in report["steps"])
    md = (tmp_path / "gpu_check.md").read_text()
    assert "DRY RUN" in md and "| sanitizer-racecheck |" in md


def test_report_writer_lists_failures_and_benchmarks(tmp_path):
    bench_json = tmp_path / "benchmarks.json"
    bench_json.write_text(json.dumps({"benchmarks": [
        {"fullname": "benchmarks/bench_cuda.py::test_per_cycle", "group": "per", "extra_info": {"B": 4096},
         "stats": {"median": 4.2e-5, "iqr": 1e-6, "rounds": 100}}]}))
    steps = gpu_check.plan("python", tmp_path, sanitizer=None)
    steps[0].status, steps[0].seconds = "passed", 12.0
    steps[1].status, steps[1].output_tail, steps[1].seconds = "failed", "E   assert 1 == 2", 3.5
    device = {"name": "NVIDIA H100", "capability": "9.0", "memory_gib": 79.1, "count": 1, "torch": "2.x", "cuda": "13"}
    json_path, md_path = gpu_check.write_report(tmp_path, device, steps, gpu_check.benchmark_rows(bench_json), False)
    report = json.loads(json_path.read_text())
    assert report["failed_steps"] == ["tests"] and not report["ok"]
    assert report["benchmarks"][0]["median_s"] == pytest.approx(4.2e-5)
    md = md_path.read_text()
    assert md.startswith("# rltorch gpu-check: NVIDIA H100")
    assert "FAILED: tests" in md and "42.0 us" in md and "B=4096" in md and "assert 1 == 2" in md
    assert "compute-sanitizer not found" in md  # sanitizer steps say why they were skipped


def test_plan_uses_sanitizer_when_found(tmp_path):
    steps = gpu_check.plan("py", tmp_path, sanitizer="/opt/cuda/bin/compute-sanitizer")
    tools = [s for s in steps if s.name.startswith("sanitizer-")]
    assert [s.command[:3] for s in tools] == [["/opt/cuda/bin/compute-sanitizer", "--tool", t]
                                              for t in ("memcheck", "racecheck", "initcheck")]
    assert all(s.status == "not run" for s in tools)


def test_benchmark_step_runs_the_suites_cases_on_cuda(tmp_path):
    steps = {step.name: step for step in gpu_check.plan("py", tmp_path, sanitizer=None)}
    step = steps["benchmarks"]
    files = [arg for arg in step.command if arg.startswith("benchmarks/")]
    assert files == list(gpu_check.BENCHMARK_FILES) and all((ROOT / f).exists() for f in files)
    assert step.env["RLTORCH_BENCH_DEVICE"] == "cuda" and "-k" not in step.command
    suite = steps["bench-suite"].command
    assert suite[1:5] == ["-m", "rltorch", "bench", "--full"] and suite[suite.index("--device") + 1] == "cuda"
    assert suite[suite.index("--out") + 1] == str(tmp_path / "bench")
