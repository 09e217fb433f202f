"""Errors that CUDA kernels find in their input, reported without a host sync.

A CUDA kernel cannot raise, and a device-side assert poisons the whole CUDA
context (every later CUDA call fails; the process must restart). So the
rltorch CUDA kernels record bad input in a small per-device error record and
carry on without a sync; :func:`check_device_errors` reads it (one sync),
clears it and raises exactly the exception the CPU kernel raises for the same
input (the same type, and the CPU kernel's message; where the CPU kernel adds a
note about what it already wrote, the CUDA message has none because the state
is unchanged).

What is recorded, and what the op did with its state:

* ``cartpole_step_``: an action other than 0/1 (``ValueError``), or an env
  stepped after it ended with autoreset disabled (``RuntimeError``): no env is
  stepped; the outputs describe the unchanged envs (their obs, reward 0, no
  flags).
* ``mountain_car_step_``, ``mountain_car_continuous_step_``, ``pendulum_step_``,
  ``acrobot_step_``: an action outside {0, 1, 2}, or a NaN/inf torque (``ValueError``),
  or an ended env stepped with autoreset disabled (``RuntimeError``): as for CartPole,
  no env is stepped and the outputs describe the unchanged envs.
* ``sumtree_update_`` (also ``SumTree.update(validate=False)``): an index
  outside ``[0, capacity)`` (``IndexError``), a NaN/inf/negative priority or
  one whose ``priority + eps`` exceeds ``max_raw_priority`` (``ValueError``):
  every tree and ``running_max`` are unchanged.
* ``sumtree_sample`` and ``replay_sample``: a tree whose total is 0 or not
  finite (``ValueError``): its samples are meaningless (index 0, weight 0).
* ``td_target`` with ``next_action``: an action outside ``[0, num_actions)``
  (``IndexError``): that row's target is NaN.
* ``per_update_priorities_``: a NaN/inf td error, or one whose ``|td| + eps``
  exceeds ``max_raw_priority`` (``ValueError``), is a *report*: those entries
  are skipped (neither written nor in the running max), the rest of the batch
  is written.

While a blocking error (every case above but the report) is pending on a
device, ``cartpole_step_``, the classic-control steps, ``sumtree_update_`` and
``per_update_priorities_`` on that device leave their state unchanged, so nothing builds on bad input
until the error has been seen. The record keeps one error: blocking errors
before reports, then the one the CPU kernel would have raised first (lowest
position; for the env steps, bad actions before ended envs). Where it is checked:
``SumTree.update(validate=True)`` and the prioritized buffer's validated
``update_priorities`` (which sync anyway) check it; anything else (e.g. a
training loop at its logging interval, which syncs already) calls
:func:`check_device_errors` itself. On the CPU the kernels raise at once and
the record stays clear.
"""

from __future__ import annotations

import torch

from rltorch import _ext

__all__ = ["check_device_errors", "device_error_pending", "device_error_record"]

#: The record's "no error" word (all bits set), as an int64.
CLEAR = -1


def _device(device) -> torch.device:
    if device is None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _available(device: torch.device) -> bool:
    if not _ext.HAS_EXT:  # the reference implementations raise at once
        return False
    return device.type == "cpu" or (device.type == "cuda" and _ext.cuda_compiled())


def device_error_record(device=None) -> torch.Tensor:
    """The raw int64 ``[4]`` record of ``device`` (a view, no copy, no sync):
    ``[key, payload key, value, aux]``, ``key == -1`` when clear
    (layout: ``csrc/include/rltorch/device_error.h``)."""
    device = _device(device)
    if not _available(device):
        raise RuntimeError(
            f"rltorch: no device error record for {device} (extension: {_ext.LOAD_ERROR or 'no CUDA kernels'})"
        )
    return torch.ops.rltorch._device_error_record(device)


def device_error_pending(device=None) -> bool:
    """Whether an error is recorded on ``device`` (one sync; does not raise or clear)."""
    device = _device(device)
    if not _available(device):
        return False
    return int(device_error_record(device)[0].item()) != CLEAR


def check_device_errors(device=None) -> None:
    """Raises the error recorded on ``device`` (default: the current CUDA device
    if CUDA is initialised, else the CPU) and clears the record; no-op when clear.

    One host sync. Raises the CPU kernel's exception type and message for the
    same input (see the module docstring for what each op did with its state).
    """
    device = _device(device)
    if not _available(device):
        return
    record = device_error_record(device)
    values = record.tolist()
    if values[0] == CLEAR:
        return
    record.copy_(torch.tensor([CLEAR, CLEAR, 0, 0], dtype=torch.int64), non_blocking=False)
    torch.ops.rltorch._raise_device_error(values)
