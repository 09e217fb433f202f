"""Build configuration without a GPU: the default CUDA architecture list
(tools/cuda_arch.py, used by setup.py). `make gpu-check` has tests/test_gpu_check.py."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import cuda_arch  # noqa: E402


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
