"""Shared test fixtures.

Tests run strict: a missing or broken extension is an error, not a silent
fall-back to the reference (set RLTORCH_STRICT=0 to test the fallback path).
"""

import os

os.environ.setdefault("RLTORCH_STRICT", "1")

import pytest
import torch

import rltorch
from rltorch import _ext

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pytest_report_header(config):
    info = rltorch.info()
    return (
        f"rltorch {info['version']}: extension_loaded={info['extension_loaded']} "
        f"cuda_compiled={info['cuda_compiled']} cuda_available={info['cuda_available']}"
    )


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: the small networks of the agent, classifier and SB3
    tests run fastest that way (a second thread only spins, and on a loaded machine can
    make them 30x slower), and float sums are the same on every machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


requires_ext = pytest.mark.skipif(not _ext.HAS_EXT, reason="compiled extension not loaded")
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
