"""The classic-control envs and ops under bad input: every rejected call names its argument
and changes nothing (validate, then write), on the kernels and on the pure-PyTorch fallback
alike; random call sequences (hypothesis) leave a rejected env exactly as it was."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltorch import _ext, _reference_classic, ops
from rltorch._reference_classic import SPECS
from rltorch.ops import classic_control as cc_ops
from tests.checks import assert_same_state
from tests.classic_control_support import CONTINUOUS, ENV_CLASSES, NAMES, as_action_tensor, make_env, random_actions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISCRETE = [name for name in NAMES if name not in CONTINUOUS]


@pytest.fixture(params=["extension", "reference"])
def impl(request, monkeypatch):
    """Runs the test on the compiled kernels, then on the reference fallback."""
    if request.param == "extension":
        if not _ext.HAS_EXT:
            pytest.skip("compiled extension not loaded")
    else:
        for name in SPECS:
            monkeypatch.setitem(cc_ops._STEP, name, (None, None, cc_ops._STEP[name][2]))
            monkeypatch.setitem(cc_ops._RESET, name, (None, None, cc_ops._RESET[name][2]))
    return request.param


def snapshot(env) -> dict:
    snap = env.state_dict()
    snap["np_random"] = repr(env._np_random.bit_generator.state) if env._np_random is not None else None
    return snap


def stepped_env(name, n=5, mode="next_step", steps=3, seed=0, **kwargs):
    env = make_env(name, n, seed=seed, autoreset_mode=mode, **kwargs)
    env.reset()
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        env.step(as_action_tensor(name, random_actions(name, n, rng)))
    return env


# ---------------------------------------------------------------- step


@pytest.mark.parametrize("name", DISCRETE)
@pytest.mark.parametrize("n,bad_env,bad_value", [(5, 2, 3), (5, 4, -1), (20000, 19999, 7), (20000, 0, -3)])
def test_bad_discrete_action_rejected_before_any_env_moves(impl, name, n, bad_env, bad_value):
    env = stepped_env(name, n)
    before = snapshot(env)
    actions = torch.ones(n, dtype=torch.int64)
    actions[bad_env] = bad_value
    with pytest.raises(ValueError, match=f"`actions` must be 0, 1 or 2, got {bad_value} for env {bad_env}"):
        env.step(actions)
    assert_same_state(snapshot(env), before)
    env.step(torch.ones(n, dtype=torch.int64))  # still usable


@pytest.mark.parametrize("name", CONTINUOUS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("n,bad_env", [(5, 3), (20000, 19998)])
def test_non_finite_torque_rejected_before_any_env_moves(impl, name, bad, n, bad_env):
    env = stepped_env(name, n)
    before = snapshot(env)
    actions = torch.zeros(n, 1)
    actions[bad_env] = bad
    with pytest.raises(ValueError, match=f"`actions` must be finite, got .* for env {bad_env}"):
        env.step(actions)
    assert_same_state(snapshot(env), before)
    env.step(torch.full((n, 1), 1e30))  # huge but finite torques are clipped, as gymnasium clips them


@pytest.mark.parametrize("name", DISCRETE)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.uint32, torch.uint64, torch.int8, torch.int16,
                                   torch.int32])
def test_any_integer_action_dtype_is_accepted(impl, name, dtype):
    a, b = stepped_env(name), stepped_env(name)
    actions = torch.tensor([0, 1, 2, 2, 1])
    out_a = a.step(actions.to(dtype))
    out_b = b.step(actions)
    assert torch.equal(out_a[0], out_b[0]) and torch.equal(a.state, b.state)
    with pytest.raises(ValueError, match="`actions` must be 0, 1 or 2"):
        a.step(torch.tensor([0, 1, 2, 3, 1]).to(dtype))


def _bad_action_arguments():
    for name in NAMES:
        continuous = SPECS[name].continuous
        yield (
            name,
            "floats" if not continuous else "ints",
            np.zeros(5, dtype=np.int64 if continuous else np.float32),
            TypeError,
        )
        yield name, "bools", np.zeros(5, dtype=bool), TypeError
        yield name, "short", as_action_tensor(name, np.zeros(4)), ValueError
        yield name, "strings", np.array(["a"] * 5), TypeError


@pytest.mark.parametrize("name,kind,value,error", list(_bad_action_arguments()),
                         ids=[f"{c[0]}-{c[1]}" for c in _bad_action_arguments()])
def test_bad_action_arguments_name_actions(impl, name, kind, value, error):
    env = stepped_env(name)
    before = snapshot(env)
    with pytest.raises(error, match="actions"):
        env.step(value)
    assert_same_state(snapshot(env), before)


@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_and_other_device_actions(impl, name):
    a, b = stepped_env(name), stepped_env(name)
    actions = as_action_tensor(name, random_actions(name, 10, np.random.default_rng(0)))[::2]
    assert not actions.is_contiguous()
    out_a, out_b = a.step(actions), b.step(actions.contiguous())
    assert torch.equal(out_a[0], out_b[0])
    with pytest.raises(ValueError, match="`actions` is on meta"):
        a.step(torch.zeros(actions.shape, dtype=actions.dtype, device="meta"))


# ---------------------------------------------------------------- reset, set_state, load_state_dict


def _bound_cases(name):
    first, second = SPECS[name].bound_names
    cases = [({first: float("nan")}, ValueError, first), ({second: float("inf")}, ValueError, second),
             ({first: "x"}, TypeError, first), ({second: True}, TypeError, second),
             ({"hight": 1.0}, ValueError, "unknown reset options"), ({"reset_mask": [1, 0, 1, 0, 1]}, ValueError,
                                                                    "reset_mask")]
    if first == "low":
        cases += [({first: 0.2, second: 0.1}, ValueError, "must not exceed"),
                  ({first: -1.7e308, second: 1.7e308}, ValueError, "too far apart")]
    else:
        cases += [({first: -1.0}, ValueError, ">= 0"), ({second: 1.7e308}, ValueError, "too large")]
    return cases


@pytest.mark.parametrize("name", NAMES)
def test_rejected_reset_changes_nothing(impl, name):
    for options, error, match in _bound_cases(name):
        env = stepped_env(name)
        before = snapshot(env)
        with pytest.raises(error, match=match):
            env.reset(seed=4, options=options)
        assert_same_state(snapshot(env), before)
    env = stepped_env(name)
    for seed, error in ((-1, ValueError), (2**64, ValueError), (1.5, TypeError), (True, TypeError)):
        before = snapshot(env)
        with pytest.raises(error, match="seed"):
            env.reset(seed=seed)
        assert_same_state(snapshot(env), before)


@pytest.mark.parametrize("name", NAMES)
def test_rejected_set_state_and_load_state_dict_change_nothing(impl, name):
    env = stepped_env(name, max_episode_steps=20)
    width = SPECS[name].state_dim
    good = np.zeros((5, width))
    for kwargs, error, match in [
        (dict(state=np.full((5, width), np.nan)), ValueError, "finite"),
        (dict(state=np.zeros((5, width + 1))), ValueError, "shape"),
        (dict(state=good, steps=20), ValueError, "steps"),
        (dict(state=good, steps=-1), ValueError, "steps"),
        (dict(state=good, steps=1.5), TypeError, "steps"),
        (dict(state=good, mask=np.ones(5)), ValueError, "reset_mask"),
    ]:
        before = snapshot(env)
        with pytest.raises(error, match=match):
            env.set_state(**kwargs)
        assert_same_state(snapshot(env), before)
    saved = stepped_env(name, steps=5, seed=3, max_episode_steps=20).state_dict()
    for key, value, error in [
        ("returns", torch.full((5,), float("nan"), dtype=torch.float64), ValueError),
        ("returns", torch.zeros(5), ValueError),
        ("state", torch.zeros(width, 4, dtype=torch.float64), ValueError),
        ("steps", torch.full((5,), 21, dtype=torch.int32), ValueError),
        (SPECS[name].bound_names[0], float("inf"), ValueError),
    ]:
        before = snapshot(env)
        with pytest.raises(error, match=key):
            env.load_state_dict({**saved, key: value})
        assert_same_state(snapshot(env), before)
    env.load_state_dict(saved)  # a good one still loads


@pytest.mark.parametrize("name", ["mountain_car", "pendulum"])
def test_constructor_errors_name_the_argument(name):
    param = SPECS[name].param_name
    for kwargs, match in [
        ({"num_envs": 0}, "num_envs"),
        ({"max_episode_steps": 0}, "max_episode_steps"),
        ({"autoreset_mode": "sometimes"}, "autoreset_mode"),
        ({"render_mode": "human"}, "render_mode"),
        ({"seed": -3}, "seed"),
        ({param: float("nan")}, param),
        ({param: "9.8"}, param),
        ({"device": "meta"}, "meta|device|memory"),
    ]:
        with pytest.raises((ValueError, TypeError, RuntimeError), match=match):
            ENV_CLASSES[name](**{"num_envs": 2, **kwargs})


# ---------------------------------------------------------------- the ops, kernel vs reference


def _op_cases():
    def step(name, **over):
        spec = SPECS[name]
        tensors = ops.new_classic_state(name, 4)
        _reference_classic.classic_reset_(name, *tensors, None, 1, *spec.default_bounds)
        args = dict(zip(("state", "steps", "prev_done", "episode", "returns"), tensors),
                    actions=as_action_tensor(name, np.zeros(4)), seed=1)
        args.update(over)
        return name, "step", args

    def reset(name, **over):
        spec = SPECS[name]
        tensors = ops.new_classic_state(name, 4)
        _reference_classic.classic_reset_(name, *tensors, None, 1, *spec.default_bounds)
        args = dict(zip(("state", "steps", "prev_done", "episode", "returns"), tensors), reset_mask=None, seed=1)
        args.update(over)
        return name, "reset", args

    F = torch.float64
    for name in NAMES:
        spec = SPECS[name]
        d = spec.state_dim
        first, second = spec.bound_names
        if spec.continuous:
            yield RuntimeError, "`actions` must be float32", step(name, actions=torch.zeros(4, 1, dtype=F))
            yield RuntimeError, "`actions` must have shape", step(name, actions=torch.zeros(4))
            yield ValueError, "`actions` must be finite, got nan for env 2", step(
                name, actions=torch.tensor([[0.0], [1.0], [float("nan")], [2.0]]))
        else:
            yield RuntimeError, "`actions` must be an integer", step(name, actions=torch.zeros(4))
            yield RuntimeError, "`actions` must be an integer", step(name, actions=torch.zeros(4, dtype=torch.bool))
            yield RuntimeError, "`actions` must have shape", step(name, actions=torch.zeros(4, 1, dtype=torch.long))
            yield (
                ValueError,
                "`actions` must be 0, 1 or 2, got 3 for env 3",
                step(name, actions=torch.tensor([0, 1, 2, 3])),
            )
            yield (
                ValueError,
                "`actions` must be 0, 1 or 2, got -1 for env 0",
                step(name, actions=torch.tensor([-1, 1, 2, 9])),
            )
        yield RuntimeError, "`actions` is on meta", step(name, actions=torch.zeros(4, device="meta"))
        yield RuntimeError, "`state` must be float64", step(name, state=torch.zeros(d, 4))
        yield RuntimeError, "`state` must have shape", step(name, state=torch.zeros(d + 1, 4, dtype=F))
        yield RuntimeError, "`state` must be contiguous", step(name, state=torch.zeros(d, 8, dtype=F)[:, ::2])
        yield RuntimeError, "`steps` must be", step(name, steps=torch.zeros(4, dtype=torch.long))
        yield RuntimeError, "`prev_done` must have shape", step(name, prev_done=torch.zeros(3, dtype=torch.bool))
        yield RuntimeError, "`episode` must be", step(name, episode=torch.zeros(4, dtype=torch.int32))
        yield RuntimeError, "`returns` must be", step(name, returns=torch.zeros(4))
        yield RuntimeError, "`returns` must be contiguous", step(name, returns=torch.zeros(8, dtype=F)[::2])
        yield RuntimeError, "`returns` is on meta", step(name, returns=torch.zeros(4, dtype=F, device="meta"))
        yield ValueError, "`max_episode_steps`", step(name, max_episode_steps=0)
        yield ValueError, "`autoreset_mode`", step(name, autoreset_mode=3)
        yield ValueError, f"`{first}`", step(name, first=float("nan"))
        yield ValueError, f"`{second}`", step(name, second=float("inf"))
        yield TypeError, f"`{first}` must be a real number", step(name, first="x")
        yield ValueError, "`seed` must lie", step(name, seed=2**64)
        yield TypeError, "`max_episode_steps` must be an integer", step(name, max_episode_steps=5.0)
        if spec.param_name:
            yield ValueError, f"`{spec.param_name}` must be finite", step(name, param=float("nan"))
            yield TypeError, f"`{spec.param_name}` must be a real number", step(name, param="9.8")
        else:
            yield TypeError, "has no step parameter", step(name, param=1.0)
        yield ValueError, f"`{first}`", reset(name, first=-float("inf"))
        yield RuntimeError, "`reset_mask` must be bool", reset(name, reset_mask=torch.ones(4, dtype=torch.long))
        yield RuntimeError, "`reset_mask` must have shape", reset(name, reset_mask=torch.ones(3, dtype=torch.bool))
        yield RuntimeError, "`returns` must have shape", reset(name, returns=torch.zeros(3, dtype=F))
    yield ValueError, "`low` .* must not exceed `high`", step("mountain_car", first=0.1, second=0.0)
    yield ValueError, "too far apart", reset("acrobot", first=-1.7e308, second=1.7e308)
    yield ValueError, "`x_init` must be finite and >= 0", step("pendulum", first=-1.0)
    yield ValueError, "`y_init` .* too large", reset("pendulum", second=1.7e308)


_CASES = list(_op_cases())


@pytest.mark.parametrize("case", range(len(_CASES)), ids=[f"{c[2][0]}-{c[2][1]}-{i}" for i, c in enumerate(_CASES)])
def test_op_bad_inputs_rejected_alike_by_kernel_and_reference(impl, case):
    error, pattern, (name, which, args) = list(_op_cases())[case]  # fresh tensors for each run
    op = cc_ops.classic_step_ if which == "step" else cc_ops.classic_reset_
    env_tensors = [args[k] for k in ("state", "steps", "prev_done", "episode", "returns")]
    before = [t.clone() for t in env_tensors if t.device.type != "meta"]
    with pytest.raises(error, match=pattern):
        op(name, **args)
    after = [t for t in env_tensors if t.device.type != "meta"]
    assert all(torch.equal(x, y) for x, y in zip(before, after))  # validate, then write


@pytest.mark.parametrize("name", NAMES)
def test_disabled_mode_op_rejects_ended_env_on_both_paths(impl, name):
    tensors = ops.new_classic_state(name, 4)
    ops.classic_reset_(name, *tensors, None, 1)
    tensors[2][2] = True
    before = [t.clone() for t in tensors]
    with pytest.raises(RuntimeError, match=f"env 2 ended on the previous call.*{SPECS[name].class_name}"):
        ops.classic_step_(name, *tensors, as_action_tensor(name, np.zeros(4)), 1, autoreset_mode=2)
    assert all(torch.equal(x, y) for x, y in zip(before, tensors))


def test_fallback_process_rejects_bad_actions_without_stepping():
    # The same promise with the extension really absent (RLTORCH_DISABLE_EXT=1), not monkeypatched.
    code = (
        "import torch, rltorch\n"
        "from rltorch.envs import AcrobotVecEnv, PendulumVecEnv\n"
        "assert not rltorch.info()['extension_loaded']\n"
        "env = AcrobotVecEnv(3, seed=0); env.reset()\n"
        "before = env.state.clone()\n"
        "try:\n"
        "    env.step(torch.tensor([0, 3, 1]))\n"
        "except ValueError as e:\n"
        "    assert '`actions` must be 0, 1 or 2' in str(e), e\n"
        "else:\n"
        "    raise AssertionError('accepted')\n"
        "assert torch.equal(env.state, before)\n"
        "env.step(torch.tensor([0, 2, 1], dtype=torch.uint8))\n"
        "pend = PendulumVecEnv(2, seed=0); pend.reset()\n"
        "try:\n"
        "    pend.step(torch.tensor([[0.0], [float('nan')]]))\n"
        "except ValueError as e:\n"
        "    assert 'finite' in str(e), e\n"
        "else:\n"
        "    raise AssertionError('accepted')\n"
        "print('ok')\n"
    )
    env = {**os.environ, "RLTORCH_DISABLE_EXT": "1", "RLTORCH_STRICT": "0", "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# ---------------------------------------------------------------- property: random call sequences

_BAD_FLOATS = [float("nan"), float("inf"), -float("inf"), 1e308, -1.0]

env_calls = st.one_of(
    st.tuples(st.just("step"), st.lists(st.integers(-2, 4), min_size=3, max_size=3)),
    st.tuples(st.just("step_box"), st.lists(st.sampled_from([0.0, 1.5, -3.0, float("nan"), float("inf")]),
                                            min_size=3, max_size=3)),
    st.tuples(st.just("reset"), st.one_of(st.none(), st.integers(-2, 2**64 + 1)),
              st.one_of(st.none(), st.sampled_from(_BAD_FLOATS), st.floats(-1, 1)),
              st.one_of(st.none(), st.sampled_from(_BAD_FLOATS), st.floats(-1, 1))),
    st.tuples(st.just("reset_mask"), st.lists(st.booleans(), min_size=2, max_size=4)),
    st.tuples(st.just("set_state"), st.sampled_from([0.0, 0.1, float("nan"), float("inf")]),
              st.one_of(st.none(), st.integers(-3, 2**31))),
    st.tuples(st.just("load"), st.sampled_from(["good", "bad_shape", "bad_steps", "bad_returns"])),
)


def _apply_env_call(name, env, call, good_state: dict):
    kind = call[0]
    if kind == "step":
        actions = np.array(call[1])
        return env.step(actions.astype(np.float32).reshape(3, 1) if env.discrete is False else actions)
    if kind == "step_box":
        return env.step(np.array(call[1], dtype=np.float32 if not env.discrete else np.float64))
    if kind == "reset":
        options = {key: value for key, value in zip(env.bound_names, call[2:]) if value is not None}
        return env.reset(seed=call[1], options=options)
    if kind == "reset_mask":
        return env.reset(options={"reset_mask": np.array(call[1])})
    if kind == "set_state":
        return env.set_state(np.full((3, len(env.state_rows)), call[1]), steps=call[2])
    sd = dict(good_state)
    if call[1] == "bad_shape":
        sd["state"] = torch.tensor([7.0, 7.0], dtype=torch.float64)
    elif call[1] == "bad_steps":
        sd["steps"] = torch.full((3,), 2**31 - 1, dtype=torch.int32)
    elif call[1] == "bad_returns":
        sd["returns"] = torch.full((3,), float("inf"), dtype=torch.float64)
    return env.load_state_dict(sd)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(NAMES), calls=st.lists(env_calls, min_size=1, max_size=10),
       mode=st.sampled_from(["next_step", "same_step", "disabled"]))
def test_property_env_rejected_calls_leave_state_unchanged(impl, name, calls, mode):
    env = make_env(name, 3, seed=11, autoreset_mode=mode, max_episode_steps=20)
    env.reset()
    good_state = stepped_env(name, 3, mode=mode, steps=2, seed=4, max_episode_steps=20).state_dict()
    for call in calls:
        before = snapshot(env)
        try:
            _apply_env_call(name, env, call, good_state)
        except (ValueError, TypeError, RuntimeError) as exc:
            names = ("actions", "seed", *env.bound_names, "reset_mask", "state", "steps", "ended", "returns")
            assert any(word in str(exc) for word in names), exc  # says what was wrong
            assert_same_state(snapshot(env), before)
    # Valid calls keep working after whatever was rejected.
    env.reset(options={"reset_mask": env.prev_done.clone()})
    obs, *_ = env.step(as_action_tensor(name, np.ones(3)))
    assert obs.shape == (3, SPECS[name].obs_dim)
