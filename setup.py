"""Builds the rltorch._C operator library.

CUDA kernels are compiled whenever this torch has CUDA and a CUDA toolkit is
found: no GPU is needed at build time. Environment switches:
  RLTORCH_CUDA=0|1        force the CPU-only build, or require CUDA (fails loudly if impossible)
  TORCH_CUDA_ARCH_LIST    GPU architectures (default: every architecture both this torch
                          and the toolkit support, plus PTX of the newest; tools/cuda_arch.py)
  RLTORCH_DEBUG=1         -O0 -g
  RLTORCH_PTXAS_VERBOSE=1 print registers, stack frames and spills per kernel (-Xptxas -v)
"""

import glob
import importlib.util
import os
import sys

from setuptools import setup

# torch guesses CUDA_HOME from the nvcc on PATH; on machines where nvcc is a
# symlink in /usr/local/bin that guess (/usr/local) has no libcudart.
if "CUDA_HOME" not in os.environ and "CUDA_PATH" not in os.environ:
    if os.path.isdir("/usr/local/cuda"):
        os.environ["CUDA_HOME"] = "/usr/local/cuda"

import torch
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _cuda_arch():
    # tools/ is not a package of the wheel; load the module by path.
    spec = importlib.util.spec_from_file_location("rltorch_cuda_arch", os.path.join(ROOT, "tools", "cuda_arch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_arch_list() -> str:
    arch = _cuda_arch()
    nvcc = os.path.join(cpp_extension.CUDA_HOME, "bin", "nvcc")
    return arch.default_arch_list(torch.cuda.get_arch_list(), arch.toolkit_archs(nvcc))


def want_cuda() -> bool:
    forced = os.environ.get("RLTORCH_CUDA")
    possible = torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None
    if forced == "0":
        return False
    if forced == "1":
        if not possible:
            sys.exit(
                "RLTORCH_CUDA=1 but CUDA kernels cannot be built: "
                f"torch.version.cuda={torch.version.cuda!r}, CUDA_HOME={cpp_extension.CUDA_HOME!r}. "
                "Install a CUDA build of torch and a CUDA toolkit, or set CUDA_HOME."
            )
        return True
    if forced not in (None, ""):
        sys.exit(f"RLTORCH_CUDA must be 0 or 1, got {forced!r}")
    return possible


def extension():
    debug = os.environ.get("RLTORCH_DEBUG") == "1"
    opt = ["-O0", "-g"] if debug else ["-O3"]
    cuda = want_cuda()
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp")) + ["csrc/python/module.cpp"]
    macros = []
    # -ffp-contract=off: no fused multiply-adds even when CFLAGS enable FMA, so the
    # CPU kernels round like NumPy (CartPole parity with gymnasium is bit-level).
    # -Wno-psabi: GCC notes that 32-byte vector arguments changed ABI in GCC 4.6; they never cross our library boundary.
    cxx = opt + ["-fopenmp", "-Wall", "-Wno-unknown-pragmas", "-Wno-psabi", "-ffp-contract=off"]
    extra = {"cxx": cxx}
    if cuda:
        if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = default_arch_list()
        print(f"rltorch: TORCH_CUDA_ARCH_LIST={os.environ['TORCH_CUDA_ARCH_LIST']}", file=sys.stderr)
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        macros.append(("RLTORCH_WITH_CUDA", None))
        # --fmad=false is nvcc's -ffp-contract=off: it contracts a + b * c into an
        # FMA by default, so CUDA CartPole states and resets drifted by ulps from
        # the CPU (and gymnasium) and termination flags could flip at a threshold.
        extra["nvcc"] = opt + ["--expt-relaxed-constexpr", "-lineinfo", "--fmad=false"]
        if os.environ.get("RLTORCH_PTXAS_VERBOSE") == "1":
            extra["nvcc"].append("-Xptxas=-v")
        ext_class = cpp_extension.CUDAExtension
    else:
        ext_class = cpp_extension.CppExtension
    print(f"rltorch: building {'CPU + CUDA' if cuda else 'CPU-only'} kernels", file=sys.stderr)
    return ext_class(
        name="rltorch._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, "csrc", "include"), os.path.join(ROOT, "csrc")],
        define_macros=macros,
        extra_compile_args=extra,
        extra_link_args=["-fopenmp"],
        # The module has no pybind11, so it builds against the limited API:
        # one wheel serves every CPython >= 3.9.
        py_limited_api=True,
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(no_python_abi_suffix=True)},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
