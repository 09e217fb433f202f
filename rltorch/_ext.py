"""Loads the compiled operator library, or explains why it is not there.

``import rltorch`` must work without the extension (the pure-PyTorch
reference implementations take over), but never silently: one warning says
why and how to build. ``RLTORCH_STRICT=1`` turns the warning into an error;
``RLTORCH_DISABLE_EXT=1`` skips loading on purpose (for comparisons).
"""

from __future__ import annotations

import importlib
import os
import warnings

import torch

BUILD_HINT = (
    "build it with `pip install --no-build-isolation -e .` in the rltorch checkout "
    "(or `make test`); until then rltorch runs its pure-PyTorch reference implementations"
)

HAS_EXT = False
LOAD_ERROR: str | None = None


def _load() -> None:
    global HAS_EXT, LOAD_ERROR
    if os.environ.get("RLTORCH_DISABLE_EXT") == "1":
        LOAD_ERROR = "disabled by RLTORCH_DISABLE_EXT=1"
        return
    try:
        # By name: importing runs the TORCH_LIBRARY registrations, and the compiled module is no
        # source the import-layer check could read.
        importlib.import_module("rltorch._C")
    except ImportError as exc:  # missing file, or built against another torch
        LOAD_ERROR = f"{type(exc).__name__}: {exc}"
    else:
        HAS_EXT = True
        return
    message = f"rltorch: the compiled extension rltorch._C is not loaded ({LOAD_ERROR}); {BUILD_HINT}."
    if os.environ.get("RLTORCH_STRICT") == "1":
        raise ImportError(message + " (RLTORCH_STRICT=1 makes this an error)")
    warnings.warn(message, RuntimeWarning, stacklevel=3)


_load()


def has_kernel(op_name: str, device_type: str) -> bool:
    """Whether ``rltorch::op_name`` has a compiled kernel for ``device_type`` ('cpu', 'cuda')."""
    if not HAS_EXT:
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}[device_type]
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"rltorch::{op_name}", key)


def cuda_compiled() -> bool:
    """Whether this build of rltorch carries CUDA kernels (a GPU is not needed to know)."""
    return has_kernel("td_target", "cuda")
