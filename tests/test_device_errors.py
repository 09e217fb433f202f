"""The device error record (rltorch.ops.device_errors) through its CPU path:
a record written into the CPU buffer exactly as a CUDA kernel writes it must
raise what the CPU kernel raises for the same input (type and message)."""

import math
import struct

import pytest
import torch

from rltorch import ops
from rltorch.ops import cartpole as cp_ops
from rltorch.ops import check_device_errors, device_error_pending
from rltorch.ops.device_errors import CLEAR, device_error_record
from rltorch.ops.sumtree import SumTree
from tests.conftest import requires_ext

# csrc/include/rltorch/device_error.h
SUMTREE_INDEX, SUMTREE_PRIORITY, TD_TARGET_ACTION, CARTPOLE_BAD_ACTION, CARTPOLE_ENDED = 1, 2, 3, 4, 5
PER_TD_NAN, PER_TD_POS_INF, PER_TD_NEG_INF = 6, 7, 8


def key(code, position):
    return torch.ops.rltorch._device_error_key(code, position)


def write_record(code, position, value=0, aux=0, payload=True):
    k = key(code, position)
    device_error_record("cpu").copy_(torch.tensor([k, k if payload else CLEAR, value, aux]))


def double_bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


@pytest.fixture(autouse=True)
def clear_record():
    device_error_record("cpu").copy_(torch.tensor([CLEAR, CLEAR, 0, 0]))
    yield
    device_error_record("cpu").copy_(torch.tensor([CLEAR, CLEAR, 0, 0]))


def cpu_error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def assert_same_error(cpu_exc, recorded_message_must_equal=True):
    with pytest.raises(Exception) as info:
        check_device_errors("cpu")
    got = info.value
    assert type(got) is type(cpu_exc)
    if recorded_message_must_equal:
        assert str(got) == str(cpu_exc)
    else:  # the CPU adds a note about the envs it already stepped; CUDA steps none
        assert str(cpu_exc).startswith(str(got)), (str(got), str(cpu_exc))
    assert not device_error_pending("cpu")  # raising clears the record
    check_device_errors("cpu")


pytestmark = requires_ext


def test_clear_record_is_a_no_op():
    assert not device_error_pending("cpu")
    check_device_errors("cpu")
    check_device_errors()  # no CUDA initialised here: the CPU record
    assert device_error_record("cpu").tolist() == [CLEAR, CLEAR, 0, 0]


def test_sumtree_index():
    tree = SumTree(10)
    exc = cpu_error(lambda: tree.update(torch.tensor([1, 12]), torch.tensor([1.0, 2.0])))
    write_record(SUMTREE_INDEX, 1, value=12, aux=10)
    assert_same_error(exc)


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf, -1e-300])
def test_sumtree_priority(bad):
    tree = SumTree(10)
    exc = cpu_error(lambda: tree.update(torch.tensor([1, 2, 3]), torch.tensor([1.0, 2.0, bad], dtype=torch.float64)))
    write_record(SUMTREE_PRIORITY, 2, value=double_bits(bad))
    assert_same_error(exc)


def test_sumtree_index_before_priority_at_one_position():
    assert key(SUMTREE_INDEX, 4) < key(SUMTREE_PRIORITY, 4) < key(SUMTREE_INDEX, 5)


def test_td_target_next_action():
    reward = torch.zeros(3)
    exc = cpu_error(lambda: ops.td_target(reward, torch.zeros(3, dtype=torch.bool), torch.zeros(3, 2),
                                          next_action=torch.tensor([0, 5, 1])))
    write_record(TD_TARGET_ACTION, 1, value=5, aux=2)
    assert_same_error(exc)


def _envs(n=4):
    state = cp_ops.new_cartpole_state(n)
    cp_ops.cartpole_reset_(*state, None, 1)
    return state


def test_cartpole_bad_action():
    state = _envs()
    exc = cpu_error(lambda: cp_ops.cartpole_step_(*state, torch.tensor([0, 1, 2, 1]), 1))
    write_record(CARTPOLE_BAD_ACTION, 2, value=2)
    assert_same_error(exc, recorded_message_must_equal=False)


def test_cartpole_ended_env_with_autoreset_disabled():
    state = _envs()
    state[2][3] = True  # prev_done of env 3
    exc = cpu_error(lambda: cp_ops.cartpole_step_(*state, torch.tensor([0, 1, 0, 1]), 1, autoreset_mode=2))
    write_record(CARTPOLE_ENDED, 3, payload=False)
    assert_same_error(exc, recorded_message_must_equal=False)


def test_cartpole_bad_action_outranks_an_ended_env_at_a_lower_position():
    # The CPU kernel reports a bad action before an ended env wherever they are.
    assert key(CARTPOLE_BAD_ACTION, 1000) < key(CARTPOLE_ENDED, 0)


@pytest.mark.parametrize("td,code", [(math.nan, PER_TD_NAN), (math.inf, PER_TD_POS_INF), (-math.inf, PER_TD_NEG_INF)])
def test_per_update_non_finite_td(td, code):
    tree = SumTree(8)
    rm = torch.zeros(1, dtype=torch.float64)
    slot_ids = torch.arange(8)
    exc = cpu_error(lambda: torch.ops.rltorch.per_update_priorities_(
        tree.tree, 8, tree.fanout, slot_ids, torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0, td]), 1.0, 0.0, rm))
    write_record(code, 2, payload=False)
    assert_same_error(exc)


def test_reports_rank_after_blocking_errors():
    assert key(PER_TD_NAN, 0) > key(SUMTREE_INDEX, 2**40)
    assert key(PER_TD_NAN, 0) > key(CARTPOLE_ENDED, 2**40)


def test_record_without_payload_still_names_argument_and_position():
    write_record(SUMTREE_INDEX, 7, payload=False)
    with pytest.raises(IndexError, match=r"`index` holds an out-of-range value at position 7"):
        check_device_errors("cpu")
    write_record(CARTPOLE_BAD_ACTION, 3, payload=False)
    with pytest.raises(ValueError, match=r"`actions` must be 0 or 1, got another value for env 3"):
        check_device_errors("cpu")


def test_payload_of_another_key_is_not_used():
    k = key(SUMTREE_INDEX, 7)
    device_error_record("cpu").copy_(torch.tensor([k, key(SUMTREE_INDEX, 6), 99, 10]))
    with pytest.raises(IndexError, match="out-of-range value at position 7"):
        check_device_errors("cpu")


def test_pending_does_not_clear():
    write_record(SUMTREE_INDEX, 0, value=-1, aux=4)
    assert device_error_pending("cpu") and device_error_pending("cpu")
    with pytest.raises(IndexError, match=r"`index` holds -1 at position 0, outside \[0, 4\)"):
        check_device_errors("cpu")
    assert not device_error_pending("cpu")


def test_unknown_code_and_bad_key_arguments():
    device_error_record("cpu").copy_(torch.tensor([0x3FF, CLEAR, 0, 0]))  # code 0xff
    with pytest.raises(RuntimeError, match="unknown error record"):
        check_device_errors("cpu")
    with pytest.raises(ValueError):
        key(0, 1)
    with pytest.raises(ValueError):
        key(SUMTREE_INDEX, -1)
    with pytest.raises(RuntimeError, match="expected 4 words"):
        torch.ops.rltorch._raise_device_error([1, 2])


def test_key_layout():
    k = key(SUMTREE_PRIORITY, 123456789)
    assert k & 0xFF == SUMTREE_PRIORITY and (k >> 8) & ((1 << 46) - 1) == 123456789 and k >= 0
    assert key(PER_TD_NAN, 5) >= 1 << 62  # reports: a severity bit above every blocking key
    assert key(CARTPOLE_ENDED, 0) >> 54 == 1  # CartPole's rank
