"""Configures and builds the CMake tree against the torch of this Python.

Finding this torch from CMake needs its prefix path and, for a CUDA build of
torch, the toolkit root and the pip wheel's nvrtc (measured in
shared/FACTS.md section 5); this script works them out so nobody types them.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys

import torch


def cmake_args(build_type: str, sanitize: bool) -> list[str]:
    args = [
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
        f"-DCMAKE_BUILD_TYPE={build_type}",
        f"-DRLTORCH_PYTHON={sys.executable}",
    ]
    if torch.version.cuda is not None:
        cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
        args.append(f"-DCUDA_TOOLKIT_ROOT_DIR={cuda_home}")
        site = os.path.dirname(os.path.dirname(torch.__file__))
        nvrtc = sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib", "libnvrtc.so*")))
        nvrtc += sorted(glob.glob(os.path.join(site, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*")))
        if nvrtc:
            args.append(f"-DCUDA_nvrtc_LIBRARY={nvrtc[0]}")
    if sanitize:
        args.append("-DRLTORCH_SANITIZE=ON")
    return args


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build-dir", default="build-cmake")
    parser.add_argument("--build-type", default="Release")
    parser.add_argument("--sanitize", action="store_true", help="AddressSanitizer + UndefinedBehaviorSanitizer")
    args = parser.parse_args()
    # Without an arch list Caffe2's config probes for a GPU by compiling and running a program.
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    configure = ["cmake", "-S", ".", "-B", args.build_dir, "-G", "Ninja"] + cmake_args(args.build_type, args.sanitize)
    subprocess.run(configure, check=True)
    subprocess.run(["cmake", "--build", args.build_dir, "-j", str(os.cpu_count() or 2)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
