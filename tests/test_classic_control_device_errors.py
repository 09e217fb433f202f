"""The device error record of the classic-control steps, through its CPU path: a record
written as classic_control_cuda.cu writes it raises what the CPU kernel raises for the same
input (tests/test_device_errors.py does the same for the other ops)."""

import math

import numpy as np
import pytest
import torch

from rltorch import ops
from rltorch._reference_classic import SPECS
from rltorch.ops import check_device_errors, device_error_pending
from rltorch.ops.device_errors import CLEAR, device_error_record
from tests.classic_control_support import NAMES, as_action_tensor
from tests.conftest import requires_ext
from tests.test_device_errors import CARTPOLE_ENDED, PER_TD_NAN, double_bits, key

pytestmark = requires_ext

# csrc/include/rltorch/device_error.h: a (bad action, ended env) pair per env.
CODES = {"mountain_car": (9, 10), "mountain_car_continuous": (11, 12), "pendulum": (13, 14), "acrobot": (15, 16)}


@pytest.fixture(autouse=True)
def clear_record():
    device_error_record("cpu").copy_(torch.tensor([CLEAR, CLEAR, 0, 0]))
    yield
    device_error_record("cpu").copy_(torch.tensor([CLEAR, CLEAR, 0, 0]))


def write_record(code, position, value=0, payload=True):
    k = key(code, position)
    device_error_record("cpu").copy_(torch.tensor([k, k if payload else CLEAR, value, 0]))


def cpu_error(name, actions, autoreset_mode=0, ended=None):
    tensors = ops.new_classic_state(name, 4)
    ops.classic_reset_(name, *tensors, None, 1)
    if ended is not None:
        tensors[2][ended] = True
    with pytest.raises(Exception) as info:
        ops.classic_step_(name, *tensors, actions, 1, autoreset_mode=autoreset_mode)
    return info.value


def assert_same_error(cpu_exc):
    with pytest.raises(Exception) as info:
        check_device_errors("cpu")
    assert type(info.value) is type(cpu_exc) and str(info.value) == str(cpu_exc)
    assert not device_error_pending("cpu")


@pytest.mark.parametrize("name", NAMES)
def test_bad_action(name):
    bad_action, _ = CODES[name]
    if SPECS[name].continuous:
        exc = cpu_error(name, torch.tensor([[0.0], [1.0], [math.inf], [0.5]]))
        write_record(bad_action, 2, value=double_bits(math.inf))
    else:
        exc = cpu_error(name, torch.tensor([0, 1, 7, 2]))
        write_record(bad_action, 2, value=7)
    assert_same_error(exc)


@pytest.mark.parametrize("name", NAMES)
def test_ended_env_with_autoreset_disabled(name):
    _, ended = CODES[name]
    exc = cpu_error(name, as_action_tensor(name, np.zeros(4)), autoreset_mode=2, ended=3)
    write_record(ended, 3, payload=False)
    assert_same_error(exc)


@pytest.mark.parametrize("name", NAMES)
def test_record_without_payload_names_the_op_and_position(name):
    write_record(CODES[name][0], 3, payload=False)
    allowed = "finite" if SPECS[name].continuous else "0, 1 or 2"
    with pytest.raises(ValueError, match=f"rltorch.{SPECS[name].step_op}: `actions` must be {allowed}, got another "
                                         "value for env 3"):
        check_device_errors("cpu")


def test_ranks():
    for bad_action, ended in CODES.values():
        assert key(bad_action, 10**6) < key(ended, 0)  # bad actions first, wherever they are
        assert key(ended, 0) >> 54 == key(CARTPOLE_ENDED, 0) >> 54 == 1
        assert key(PER_TD_NAN, 0) > key(ended, 2**40)  # blocking errors before reports
