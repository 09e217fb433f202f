"""The default TORCH_CUDA_ARCH_LIST for building rltorch (imported by setup.py).

Users get every GPU architecture that both this torch and the CUDA toolkit
support, as machine code (SASS), plus PTX of the newest one: a newer GPU than
any listed JIT-compiles that PTX instead of failing with "no kernel image is
available". CI and `make` export a short list instead (build time).

Pure functions of their inputs, so tests/test_build_config.py checks them
without a GPU or a toolkit.
"""

from __future__ import annotations

import re
import subprocess

# Used when neither torch nor the toolkit can be asked (must not be empty).
FALLBACK = "8.0;9.0+PTX"


def _parse(arch: str) -> tuple[int, int, str] | None:
    """'sm_90' / 'compute_90' / 'sm_90a' / '9.0' -> (9, 0, suffix); None if not an architecture."""
    m = re.fullmatch(r"(?:sm_|compute_)(\d+?)(\d)([a-z]?)", arch.strip())
    if m:
        return int(m.group(1)), int(m.group(2)), m.group(3)
    m = re.fullmatch(r"(\d+)\.(\d)([a-z]?)(?:\+PTX)?", arch.strip())
    if m:
        return int(m.group(1)), int(m.group(2)), m.group(3)
    return None


def default_arch_list(torch_archs: list[str], toolkit_archs: list[str]) -> str:
    """Every plain (family-portable) architecture in both lists, oldest first,
    the newest with +PTX, as TORCH_CUDA_ARCH_LIST spells it ("7.5;8.0;9.0+PTX").

    ``torch_archs``: ``torch.cuda.get_arch_list()`` (e.g. ``["sm_75", "sm_90"]``);
    ``toolkit_archs``: ``nvcc --list-gpu-arch`` (``["compute_75", ...]``).
    Architecture-specific variants ("sm_90a") are left out: their code runs on
    that one architecture only. An empty intersection gives FALLBACK.
    """
    def plain(archs):
        out = set()
        for arch in archs:
            parsed = _parse(arch)
            if parsed is not None and parsed[2] == "":
                out.add(parsed[:2])
        return out

    common = sorted(plain(torch_archs) & plain(toolkit_archs))
    if not common:
        return FALLBACK
    names = [f"{major}.{minor}" for major, minor in common]
    names[-1] += "+PTX"
    return ";".join(names)


def toolkit_archs(nvcc: str) -> list[str]:
    """What ``nvcc --list-gpu-arch`` prints, one per entry; [] if nvcc cannot say."""
    try:
        out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return out.stdout.split()
