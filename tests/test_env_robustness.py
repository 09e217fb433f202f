"""CartPoleVecEnv and the CartPole ops under bad input (issue 8): every rejected call names its
argument and changes nothing, on the kernels and on the pure-PyTorch fallback alike."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltorch import _ext, _reference
from rltorch.envs import CartPoleVecEnv
from rltorch.ops import cartpole as cp_ops
from tests.checks import assert_same_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=["extension", "reference"])
def impl(request, monkeypatch):
    """Runs the test on the compiled kernels, then on the reference fallback."""
    if request.param == "extension":
        if not _ext.HAS_EXT:
            pytest.skip("compiled extension not loaded")
    else:
        monkeypatch.setattr(cp_ops, "_STEP", (None, None, _reference.cartpole_step_))
        monkeypatch.setattr(cp_ops, "_RESET", (None, None, _reference.cartpole_reset_))
    return request.param


def snapshot(env: CartPoleVecEnv) -> dict:
    """state_dict plus what state_dict leaves out but a rejected call must not touch either."""
    snap = env.state_dict()
    snap["np_random"] = repr(env._np_random.bit_generator.state) if env._np_random is not None else None
    snap["initial_seed"] = env._initial_seed
    return snap


def stepped_env(n=5, mode="next_step", steps=3, seed=0, **kwargs) -> CartPoleVecEnv:
    env = CartPoleVecEnv(n, seed=seed, autoreset_mode=mode, **kwargs)
    env.reset()
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        env.step(torch.randint(0, 2, (n,), generator=g))
    return env


# ---------------------------------------------------------------- step


@pytest.mark.parametrize("n,bad_env,bad_value", [(5, 2, 2), (5, 4, -1), (20000, 19999, 7), (20000, 0, -3)])
def test_bad_action_rejected_before_any_env_moves(impl, n, bad_env, bad_value):
    # Before the fix the CPU kernel advanced every env (20000 spans several tiles and threads) then raised.
    env = stepped_env(n)
    before = snapshot(env)
    actions = torch.zeros(n, dtype=torch.int64)
    actions[bad_env] = bad_value
    with pytest.raises(ValueError, match=rf"`actions` must be 0 or 1, got {bad_value} for env {bad_env}"):
        env.step(actions)
    assert_same_state(snapshot(env), before)
    obs, *_ = env.step(torch.ones(n, dtype=torch.int64))  # usable at once, no reset
    assert torch.isfinite(obs).all()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.uint32, torch.uint64, torch.int8, torch.int16])
def test_any_integer_action_dtype_is_accepted(impl, dtype):
    reference = stepped_env(4)
    expected = reference.step(torch.tensor([0, 1, 1, 0]))[0]
    env = stepped_env(4)
    assert torch.equal(env.step(torch.tensor([0, 1, 1, 0], dtype=dtype))[0], expected)
    np_env = stepped_env(4).numpy()
    np_dtype = str(dtype).removeprefix("torch.")
    assert np.array_equal(np_env.step(np.array([0, 1, 1, 0], dtype=np_dtype))[0], expected.numpy())


def test_unsigned_out_of_range_action_names_actions(impl):
    env = stepped_env(3)
    before = snapshot(env)
    with pytest.raises(ValueError, match=r"`actions` must be 0 or 1, got 18446744073709551615 for env 1"):
        env.step(torch.tensor([0, 2**64 - 1, 0], dtype=torch.uint64))
    assert_same_state(snapshot(env), before)


@pytest.mark.parametrize("actions,error", [
    (torch.zeros(3), TypeError), (np.zeros(3), TypeError), (torch.zeros(3, dtype=torch.bool), TypeError),
    ([True, False, True], TypeError), (torch.zeros(3, dtype=torch.complex64), TypeError), ("012", TypeError),
    (None, TypeError), ([[0, 1], [1]], TypeError), (torch.zeros(4, dtype=torch.long), ValueError),
    (torch.zeros(3, 1, dtype=torch.long), ValueError), (0, ValueError),
    (torch.zeros(3, dtype=torch.long, device="meta"), ValueError),
])
def test_bad_action_arguments_name_actions(impl, actions, error):
    env = stepped_env(3)
    before = snapshot(env)
    with pytest.raises(error, match="actions"):
        env.step(actions)
    assert_same_state(snapshot(env), before)
    env.step([0, 1, 0])


def test_non_contiguous_actions(impl):
    env, ref = stepped_env(4), stepped_env(4)
    actions = torch.tensor([[0, 9], [1, 9], [1, 9], [0, 9]])[:, 0]
    assert not actions.is_contiguous()
    assert torch.equal(env.step(actions)[0], ref.step(actions.contiguous())[0])


def test_disabled_autoreset_masked_reset_recovers(impl):
    # The error's own advice: reset the ended envs with a mask, then step on.
    env = CartPoleVecEnv(6, seed=3, autoreset_mode="disabled")
    env.reset()
    ones = torch.ones(6, dtype=torch.long)
    done = torch.zeros(6, dtype=torch.bool)
    while not done.any():
        *_, term, trunc, _ = env.step(ones)
        done = term | trunc
    before = snapshot(env)
    first = int(done.nonzero()[0])
    with pytest.raises(RuntimeError, match=rf"env {first} ended on the previous call.*reset_mask.*No env was stepped"):
        env.step(ones)
    assert_same_state(snapshot(env), before)
    obs, _ = env.reset(options={"reset_mask": done})
    assert (env.steps[done] == 0).all() and torch.equal(env.steps[~done], before["steps"][~done])
    env.step(ones)  # recovered: the masked reset was enough


# ---------------------------------------------------------------- reset


@pytest.mark.parametrize("kwargs,error,name", [
    (dict(options={"low": float("nan")}), ValueError, "low"),
    (dict(options={"high": float("nan")}), ValueError, "high"),
    (dict(options={"low": -math.inf}), ValueError, "low"),
    (dict(options={"high": math.inf}), ValueError, "high"),
    (dict(options={"low": 0.2, "high": 0.1}), ValueError, "low"),
    (dict(options={"low": -1e308, "high": 1e308}), ValueError, "high - low"),
    (dict(options={"low": "0.1"}), TypeError, "low"),
    (dict(options={"high": True}), TypeError, "high"),
    (dict(options={"low": None}), TypeError, "low"),
    (dict(options={"reset_mask": np.ones(4, dtype=bool)}), ValueError, "reset_mask"),
    (dict(options={"reset_mask": np.ones(3, dtype=np.int64)}), ValueError, "reset_mask"),
    (dict(options={"reset_mask": torch.ones(3, dtype=torch.bool, device="meta")}), ValueError, "reset_mask"),
    (dict(options={"bounds": 1}), ValueError, "bounds"),
    (dict(options=[("low", 0.0)]), TypeError, "options"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=2**64), ValueError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(seed="3"), TypeError, "seed"),
    (dict(seed=True), TypeError, "seed"),
    (dict(seed=7, options={"low": float("nan")}), ValueError, "low"),
])
def test_rejected_reset_changes_nothing(impl, kwargs, error, name):
    # Before the fix reset(options={"low": nan}) changed the seed, the episode counters and `low`, then raised.
    env = stepped_env(3)
    before = snapshot(env)
    with pytest.raises(error, match=name):
        env.reset(**kwargs)
    assert_same_state(snapshot(env), before)
    env.step([1, 1, 1])


def test_seed_range_is_zero_to_two_to_the_64(impl):
    top = CartPoleVecEnv(2, seed=2**64 - 1)
    obs_top, _ = top.reset()
    assert torch.isfinite(obs_top).all()
    obs_np, _ = top.numpy().reset(seed=np.uint64(2**64 - 1))
    assert np.array_equal(obs_np, obs_top.numpy())
    # The op takes the same 64 bits signed or unsigned.
    a, b = cp_ops.new_cartpole_state(2), cp_ops.new_cartpole_state(2)
    assert torch.equal(cp_ops.cartpole_reset_(*a, None, 2**64 - 1), cp_ops.cartpole_reset_(*b, None, -1))
    for bad, error in ((2**64, ValueError), (-(2**63) - 1, ValueError), (1.0, TypeError), (True, TypeError)):
        with pytest.raises(error, match="seed"):
            cp_ops.cartpole_reset_(*a, None, bad)


# ---------------------------------------------------------------- set_state / load_state_dict


@pytest.mark.parametrize("kwargs,error,name", [
    (dict(steps=2**31 - 1), ValueError, "steps"),
    (dict(steps=500), ValueError, "steps"),
    (dict(steps=-1), ValueError, "steps"),
    (dict(steps=1.5), TypeError, "steps"),
    (dict(steps=True), TypeError, "steps"),
    (dict(steps=np.zeros(2, dtype=np.int64)), ValueError, "steps"),
    (dict(state=np.full((3, 4), np.nan)), ValueError, "state"),
    (dict(state=np.full((3, 4), np.inf)), ValueError, "state"),
    (dict(state=np.zeros((3, 4), dtype=bool)), TypeError, "state"),
    (dict(state=np.zeros((3, 4), dtype=np.complex128)), TypeError, "state"),
    (dict(state=np.zeros((4, 3))), ValueError, "state"),
    (dict(state=torch.zeros(3, 4, device="meta")), ValueError, "state"),
    (dict(state="zeros"), TypeError, "state"),
    (dict(mask=np.ones(2, dtype=bool)), ValueError, "reset_mask"),
])
def test_rejected_set_state_changes_nothing(impl, kwargs, error, name):
    # Before the fix steps=2**31-1 wrapped the int32 counter (truncation never fired) and
    # the state was written before the steps were checked.
    env = stepped_env(3)
    before = snapshot(env)
    args = {"state": np.full((3, 4), 0.01), **kwargs}
    with pytest.raises(error, match=name):
        env.set_state(**args)
    assert_same_state(snapshot(env), before)


def test_set_state_steps_bounds_truncate(impl):
    env = CartPoleVecEnv(2, seed=0, max_episode_steps=10)
    env.reset()
    env.set_state(np.zeros((2, 4)), steps=np.array([9, 0], dtype=np.int32))
    *_, trunc, _ = env.step([0, 1])
    assert trunc.tolist() == [True, False]


def _bad_env_dicts(sd):
    def with_(**changes):
        return {**sd, **changes}

    n = sd["num_envs"]
    yield "state", with_(state=torch.tensor([7.0, 7.0], dtype=torch.float64))  # once broadcast into every slot
    yield "state", with_(state=sd["state"].float())
    yield "state", with_(state=sd["state"].to("meta"))
    yield "state", with_(state=sd["state"].numpy())
    yield "steps", with_(steps=torch.full((n,), 2**31 - 1, dtype=torch.int32))
    yield "steps", with_(steps=torch.full((n,), -1, dtype=torch.int32))
    yield "steps", with_(steps=sd["steps"].long())
    yield "prev_done", with_(prev_done=sd["prev_done"][:1])
    yield "episode", with_(episode=torch.full((n,), -5, dtype=torch.int64))
    yield "seed", with_(seed=2**64)
    yield "seed", with_(seed="0")
    yield "low", with_(low=float("nan"))
    yield "low", with_(low=1.0, high=0.0)
    yield "needs_reset", with_(needs_reset="no")
    yield "envs", with_(num_envs=n + 1)
    yield "missing", {k: v for k, v in sd.items() if k != "episode"}
    yield "unexpected", with_(extra=1)
    yield "dict", [("state", sd["state"])]


def test_rejected_load_state_dict_changes_nothing(impl):
    source = stepped_env(3, seed=5, steps=7)
    sd = source.state_dict()
    env = stepped_env(3, seed=1)
    for name, bad in _bad_env_dicts(sd):
        before = snapshot(env)
        with pytest.raises((ValueError, TypeError), match=name):
            env.load_state_dict(bad)
        assert_same_state(snapshot(env), before)
    env.load_state_dict(sd)
    assert_same_state(env.state_dict(), sd)
    actions = torch.tensor([1, 0, 1])
    for x, y in zip(env.step(actions)[:4], source.step(actions)[:4]):
        assert torch.equal(x, y)


# ---------------------------------------------------------------- constructor


@pytest.mark.parametrize("kwargs,name", [
    (dict(num_envs=float("nan")), "num_envs"), (dict(num_envs=1.5), "num_envs"), (dict(num_envs=True), "num_envs"),
    (dict(num_envs="2"), "num_envs"), (dict(num_envs=0), "num_envs"), (dict(num_envs=2**31), "num_envs"),
    (dict(max_episode_steps=1.5), "max_episode_steps"), (dict(max_episode_steps="5"), "max_episode_steps"),
    (dict(max_episode_steps=float("nan")), "max_episode_steps"), (dict(max_episode_steps=0), "max_episode_steps"),
    (dict(max_episode_steps=2**31), "max_episode_steps"),
    (dict(device="foo"), "device"), (dict(device="meta"), "device"), (dict(device=3.5), "device"),
    (dict(seed=-1), "seed"), (dict(seed=2**64), "seed"), (dict(seed=1.5), "seed"),
    (dict(sutton_barto_reward="False"), "sutton_barto_reward"),
    (dict(autoreset_mode="sometimes"), "autoreset_mode"), (dict(render_mode="human"), "render_mode"),
])
def test_constructor_errors_name_the_argument(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        CartPoleVecEnv(**{"num_envs": 2, **kwargs})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is absent")
def test_cuda_device_without_cuda_names_device():
    with pytest.raises(ValueError, match="device"):
        CartPoleVecEnv(2, device="cuda")


# ---------------------------------------------------------------- the ops, kernel vs reference


def _fresh(n=4):
    state = cp_ops.new_cartpole_state(n)
    _reference.cartpole_reset_(*state, None, 1)
    return state


def _op_cases():
    a = torch.zeros(4, dtype=torch.long)
    F = torch.float64

    def step(**over):
        state, steps, prev_done, episode = _fresh()
        args = dict(state=state, steps=steps, prev_done=prev_done, episode=episode, actions=a, seed=1, low=-0.05,
                    high=0.05, max_episode_steps=500, autoreset_mode=0, sutton_barto_reward=False)
        args.update(over)
        return "step", args

    def reset(**over):
        state, steps, prev_done, episode = _fresh()
        args = dict(state=state, steps=steps, prev_done=prev_done, episode=episode, reset_mask=None, seed=1,
                    low=-0.05, high=0.05)
        args.update(over)
        return "reset", args

    yield RuntimeError, "`actions` must be an integer", step(actions=torch.zeros(4))
    yield RuntimeError, "`actions` must be an integer", step(actions=torch.zeros(4, dtype=torch.bool))
    yield RuntimeError, "`actions` must have shape", step(actions=a[:3])
    yield RuntimeError, "`actions` must have shape", step(actions=torch.zeros(4, 1, dtype=torch.long))
    yield ValueError, "`actions` must be 0 or 1, got 2 for env 3", step(actions=torch.tensor([0, 1, 0, 2]))
    yield ValueError, "`actions` must be 0 or 1, got -1 for env 0", step(actions=torch.tensor([-1, 1, 0, 2]))
    yield RuntimeError, "`actions` is on meta", step(actions=torch.zeros(4, dtype=torch.long, device="meta"))
    yield RuntimeError, "`state` must be float64", step(state=torch.zeros(4, 4))
    yield RuntimeError, "`state` must have shape", step(state=torch.zeros(4, 4, 1, dtype=F))
    yield RuntimeError, "`state` must have shape", step(state=torch.zeros(3, 4, dtype=F))
    yield RuntimeError, "`state` must be contiguous", step(state=torch.zeros(4, 8, dtype=F)[:, ::2])
    yield RuntimeError, "`steps` must be", step(steps=torch.zeros(4, dtype=torch.long))
    yield RuntimeError, "`steps` must have shape", step(steps=torch.zeros(5, dtype=torch.int32))
    yield RuntimeError, "`steps` must be contiguous", step(steps=torch.zeros(8, dtype=torch.int32)[::2])
    yield RuntimeError, "`steps` is on meta", step(steps=torch.zeros(4, dtype=torch.int32, device="meta"))
    yield RuntimeError, "`prev_done` must be", step(prev_done=torch.zeros(4, dtype=torch.uint8))
    yield RuntimeError, "`episode` must be", step(episode=torch.zeros(4, dtype=torch.int32))
    yield RuntimeError, "`episode` must have shape", step(episode=torch.zeros(3, dtype=torch.int64))
    yield ValueError, "`max_episode_steps`", step(max_episode_steps=0)
    yield ValueError, "`max_episode_steps`", step(max_episode_steps=2**31)
    yield ValueError, "`autoreset_mode`", step(autoreset_mode=3)
    yield ValueError, "`autoreset_mode`", step(autoreset_mode=-1)
    yield ValueError, "`low` must be finite", step(low=float("nan"))
    yield ValueError, "`high` must be finite", step(high=float("inf"))
    yield ValueError, "`low` .* must not exceed `high`", step(low=0.1, high=0.0)
    yield ValueError, "too far apart", step(low=-1.7e308, high=1.7e308)
    yield ValueError, "`seed` must lie", step(seed=2**64)
    yield TypeError, "`seed` must be an integer", step(seed=0.5)
    yield TypeError, "`low` must be a real number", step(low="x")
    yield TypeError, "`high` must be a real number", step(high=None)
    yield TypeError, "`low` must be a real number", step(low=True)
    yield TypeError, "`max_episode_steps` must be an integer", step(max_episode_steps=5.0)
    yield TypeError, "`max_episode_steps` must be an integer", step(max_episode_steps="5")
    yield TypeError, "`autoreset_mode` must be an integer", step(autoreset_mode=1.0)
    yield TypeError, "`sutton_barto_reward` must be a bool", step(sutton_barto_reward="no")
    yield TypeError, "`sutton_barto_reward` must be a bool", step(sutton_barto_reward=None)
    yield TypeError, "`seed` must be an integer", step(seed=torch.tensor(3))
    yield TypeError, "`low` must be a real number", reset(low="x")
    yield ValueError, "`low` must be finite", reset(low=-float("inf"))
    yield ValueError, "`high` must be finite", reset(high=float("nan"))
    yield ValueError, "`low` .* must not exceed `high`", reset(low=1.0, high=-1.0)
    yield RuntimeError, "`reset_mask` must be bool", reset(reset_mask=torch.ones(4, dtype=torch.long))
    yield RuntimeError, "`reset_mask` must have shape", reset(reset_mask=torch.ones(3, dtype=torch.bool))
    yield RuntimeError, "`reset_mask` is on meta", reset(reset_mask=torch.ones(4, dtype=torch.bool, device="meta"))
    yield RuntimeError, "`state` must be float64", reset(state=torch.zeros(4, 4, dtype=torch.float32))
    yield RuntimeError, "`prev_done` must have shape", reset(prev_done=torch.zeros(2, dtype=torch.bool))


@pytest.mark.parametrize("case", range(len(list(_op_cases()))))
def test_op_bad_inputs_rejected_alike_by_kernel_and_reference(impl, case):
    error, pattern, (which, args) = list(_op_cases())[case]
    op = cp_ops.cartpole_step_ if which == "step" else cp_ops.cartpole_reset_
    env_tensors = [args[k] for k in ("state", "steps", "prev_done", "episode")]
    before = [t.clone() for t in env_tensors if t.device.type != "meta"]
    with pytest.raises(error, match=pattern):
        op(**args)
    after = [t for t in env_tensors if t.device.type != "meta"]
    assert all(torch.equal(x, y) for x, y in zip(before, after))  # validate, then write


def test_disabled_mode_op_rejects_ended_env_on_both_paths(impl):
    state, steps, prev_done, episode = _fresh()
    prev_done[2] = True
    before = [t.clone() for t in (state, steps, prev_done, episode)]
    with pytest.raises(RuntimeError, match="env 2 ended on the previous call"):
        cp_ops.cartpole_step_(state, steps, prev_done, episode, torch.zeros(4, dtype=torch.long), 1, autoreset_mode=2)
    assert all(torch.equal(x, y) for x, y in zip(before, (state, steps, prev_done, episode)))


def test_fallback_process_rejects_bad_action_without_stepping():
    # The same promise with the extension really absent (RLTORCH_DISABLE_EXT=1), not monkeypatched.
    code = (
        "import torch, rltorch\n"
        "from rltorch.envs import CartPoleVecEnv\n"
        "assert not rltorch.info()['extension_loaded']\n"
        "env = CartPoleVecEnv(3, seed=0, autoreset_mode='disabled'); env.reset()\n"
        "before = env.state.clone()\n"
        "for bad in ([0, 2, 1], [0, 0, -1]):\n"
        "    try:\n"
        "        env.step(torch.tensor(bad))\n"
        "    except ValueError as e:\n"
        "        assert '`actions` must be 0 or 1' in str(e), e\n"
        "    else:\n"
        "        raise AssertionError('accepted')\n"
        "assert torch.equal(env.state, before)\n"
        "env.step(torch.tensor([0, 1, 1], dtype=torch.uint64))\n"
        "try:\n"
        "    env.reset(options={'low': float('nan')})\n"
        "except ValueError as e:\n"
        "    assert 'low' in str(e)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "RLTORCH_DISABLE_EXT": "1", "RLTORCH_STRICT": "0", "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# ---------------------------------------------------------------- property: random call sequences


_BAD_FLOATS = [float("nan"), float("inf"), -float("inf"), 1e308]  # 1e308 with low < 0: high - low overflows

env_calls = st.one_of(
    st.tuples(st.just("step"), st.lists(st.integers(-2, 3), min_size=3, max_size=3)),
    st.tuples(st.just("step_dtype"), st.sampled_from(["uint8", "uint64", "int16", "float32", "bool"])),
    st.tuples(st.just("reset"), st.one_of(st.none(), st.integers(-2, 2**64 + 1)),
              st.one_of(st.just(-0.05), st.sampled_from(_BAD_FLOATS), st.floats(-1, 1)),
              st.one_of(st.just(0.05), st.sampled_from(_BAD_FLOATS), st.floats(-1, 1))),
    st.tuples(st.just("reset_mask"), st.lists(st.booleans(), min_size=2, max_size=4)),
    st.tuples(st.just("set_state"), st.sampled_from([0.0, 0.1, float("nan"), float("inf")]),
              st.one_of(st.none(), st.integers(-3, 2**31))),
    st.tuples(st.just("load"), st.sampled_from(["good", "bad_shape", "bad_steps", "bad_low"])),
)


def _apply_env_call(env: CartPoleVecEnv, call, good_state: dict):
    kind = call[0]
    if kind == "step":
        return env.step(torch.tensor(call[1]))
    if kind == "step_dtype":
        return env.step(np.array([0, 1, 1], dtype=call[1]))
    if kind == "reset":
        return env.reset(seed=call[1], options={"low": call[2], "high": call[3]})
    if kind == "reset_mask":
        return env.reset(options={"reset_mask": np.array(call[1])})
    if kind == "set_state":
        return env.set_state(np.full((3, 4), call[1]), steps=call[2])
    sd = dict(good_state)
    if call[1] == "bad_shape":
        sd["state"] = torch.tensor([7.0, 7.0], dtype=torch.float64)
    elif call[1] == "bad_steps":
        sd["steps"] = torch.full((3,), 2**31 - 1, dtype=torch.int32)
    elif call[1] == "bad_low":
        sd["low"] = float("nan")
    return env.load_state_dict(sd)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(env_calls, min_size=1, max_size=12), mode=st.sampled_from(["next_step", "same_step", "disabled"]))
def test_property_env_rejected_calls_leave_state_unchanged(impl, calls, mode):
    env = CartPoleVecEnv(3, seed=11, autoreset_mode=mode, max_episode_steps=20)
    env.reset()
    good_state = stepped_env(3, mode=mode, steps=2, seed=4, max_episode_steps=20).state_dict()
    for call in calls:
        before = snapshot(env)
        try:
            _apply_env_call(env, call, good_state)
        except (ValueError, TypeError, RuntimeError) as exc:
            names = ("actions", "seed", "low", "high", "reset_mask", "state", "steps", "ended")
            assert any(name in str(exc) for name in names), exc  # says what was wrong
            assert_same_state(snapshot(env), before)
    # Valid calls keep working after whatever was rejected.
    env.reset(options={"reset_mask": env.prev_done.clone(), "low": -0.05, "high": 0.05})
    obs, *_ = env.step(torch.tensor([0, 1, 0]))
    assert obs.shape == (3, 4)
