"""Benchmark conventions: every timed callable finishes its device work
(``sync(device)``) so CUDA timings are real; the anchors (eager PyTorch,
gymnasium, TorchRL, ...) run in the same session so ratios are comparable on
this shared machine."""

import pytest
import torch

import rltorch  # noqa: F401

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)
