"""``rltorch.info()``: what this installation can do, for bug reports and sanity checks."""

from __future__ import annotations

import torch

from rltorch import _ext, _threads


def info() -> dict:
    """Version, torch, whether the extension and its CUDA kernels are there, and what each op runs."""
    from rltorch._version import __version__
    from rltorch.ops._registry import all_kernels

    cuda_available = torch.cuda.is_available()
    devices = ["cpu"] + (["cuda"] if cuda_available else [])
    from rltorch.ops._dispatch import implementation

    return {
        "version": __version__,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "extension_loaded": _ext.HAS_EXT,
        "extension_error": _ext.LOAD_ERROR,
        "cuda_compiled": _ext.cuda_compiled(),
        "cuda_available": cuda_available,
        "num_threads": torch.get_num_threads(),
        "threads": _threads.policy(),
        "ops": {
            name: {device: implementation(kernels, device) for device in devices}
            for name, kernels in sorted(all_kernels().items())
        },
    }
