"""Replay buffers: row-packed storage, K buffers in one storage (num_buffers) against K
separate buffers, independence of the buffers of a population, checksummed saves,
checkpoints of the column layout, and the rejected calls of issue #20 (validate, then write)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltorch.replay import PrioritizedReplayBuffer, ReplayBuffer
from tests.checks import assert_same_state
from tests.conftest import DEVICES

DATA = Path(__file__).parent / "data"
CLASSES = [ReplayBuffer, PrioritizedReplayBuffer]


def _rows(k, n, seed, obs_dim=3):
    """K x n transitions whose obs encode (buffer, row, seed)."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(k, n, obs_dim, generator=g) + 100 * torch.arange(k).view(k, 1, 1)
    return dict(obs=obs, action=torch.randint(0, 4, (k, n), generator=g), reward=torch.randn(k, n, generator=g),
                next_obs=obs + 1, terminated=torch.rand(k, n, generator=g) < 0.2)


def _single(rows, k):
    return {name: value[k] for name, value in rows.items()}


# ---------------------------------------------------------------- row-packed storage


def test_fields_are_views_of_one_packed_row_per_transition():
    buf = PrioritizedReplayBuffer(32, obs_shape=(4,))  # CartPole: 16 + 16 + 8 + 8 + 4 + 4 + 1 bytes
    assert buf._layout.row_bytes == 64
    storage = buf._rows.untyped_storage().data_ptr()
    for name in ("obs", "action", "reward", "next_obs", "terminated", "discount", "ids"):
        field = getattr(buf, name)
        assert field.untyped_storage().data_ptr() == storage, name
        assert field.shape[0] == 32
    # A transition's fields lie within its own 64-byte row.
    row0 = buf._rows[0, 0].data_ptr()
    for name in ("obs", "action", "reward", "next_obs", "terminated", "discount", "ids"):
        assert row0 <= getattr(buf, name)[0].data_ptr() < row0 + 64, name
    rows = _single(_rows(1, 5, 0, obs_dim=4), 0)
    buf.add(**rows)
    batch = buf.sample(50)
    assert torch.equal(batch.obs, buf.obs[batch.index]) and torch.equal(batch.next_obs, buf.next_obs[batch.index])
    assert torch.equal(batch.action, buf.action[batch.index]) and batch.obs.is_contiguous()
    # Other shapes: rows padded to a power of two up to a cache line, to 8 bytes beyond.
    assert ReplayBuffer(4, obs_shape=(1,), action_dtype=torch.int32)._layout.row_bytes == 32
    assert (
        ReplayBuffer(4, obs_shape=(84, 84), obs_dtype=torch.uint8)._layout.row_bytes == 14144
    )  # 2 x 7056 + 25, to 8 bytes


# ---------------------------------------------------------------- K buffers in one storage


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cls", CLASSES)
def test_batched_buffers_equal_separate_buffers(device, cls):
    k, cap = 3, 10
    batched = cls(cap, obs_shape=(3,), device=device, seed=0, num_buffers=k)
    separate = [cls(cap, obs_shape=(3,), device=device, seed=0) for _ in range(k)]
    for step, n in enumerate([4, 7, 12, 1]):  # wraps, and one batch larger than the capacity
        rows = _rows(k, n, step)
        batched.add(**rows)
        for b in range(k):
            separate[b].add(**_single(rows, b))
    assert batched.added == tuple(s.added for s in separate) and len(batched) == cap
    for name in ("obs", "action", "reward", "next_obs", "terminated", "discount", "ids"):
        for b in range(k):
            assert torch.equal(getattr(batched, name)[b], getattr(separate[b], name)), name
    sample = batched.sample(20)
    assert sample.obs.shape == (k, 20, 3) and sample.index.shape == (k, 20) and sample.weight.shape == (k, 20)
    for b in range(k):
        slots = sample.index[b] % cap
        assert torch.equal(sample.obs[b], batched.obs[b, slots]) and torch.equal(sample.index[b], batched.ids[b, slots])
    if cls is PrioritizedReplayBuffer:
        td = torch.randn(k, 20, generator=torch.Generator().manual_seed(5)).to(device)
        batched.update_priorities(sample.index, td)
        for b in range(k):
            separate[b].update_priorities(sample.index[b], td[b])
            assert torch.equal(batched.tree.tree[b], separate[b].tree.tree)
            assert torch.equal(batched.max_priority[b : b + 1], separate[b].max_priority)
        rows = _rows(k, 2, 9)
        batched.add(**rows)  # newcomers take their own buffer's running max
        for b in range(k):
            separate[b].add(**_single(rows, b))
            assert torch.equal(batched.tree.tree[b], separate[b].tree.tree)


def _write_steps(buf, steps, k, n_env, seed, batched=True):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        obs = torch.randn(k, n_env, 2, generator=g)
        term = torch.rand(k, n_env, generator=g) < 0.15
        trunc = torch.rand(k, n_env, generator=g) < 0.1
        valid = torch.rand(k, n_env, generator=g) < 0.9
        args = (obs, torch.randint(0, 3, (k, n_env), generator=g), torch.randn(k, n_env, generator=g), obs * 2,
                term, trunc)
        if batched:
            buf.add_vector_step(*args, valid=valid)
        else:
            for b, single in enumerate(buf):
                single.add_vector_step(*(a[b] for a in args), valid=valid[b])


@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("cls", CLASSES)
def test_batched_vector_steps_equal_separate_buffers(cls, n_step):
    # Buffers receive different numbers of transitions per step (valid rows, episode ends): each keeps its count.
    k, n_env, cap = 3, 4, 40
    batched = cls(cap, obs_shape=(2,), n_step=n_step, gamma=0.8, seed=1, num_buffers=k)
    separate = [cls(cap, obs_shape=(2,), n_step=n_step, gamma=0.8, seed=1) for _ in range(k)]
    _write_steps(batched, 30, k, n_env, seed=2)
    _write_steps(separate, 30, k, n_env, seed=2, batched=False)
    assert batched.added == tuple(s.added for s in separate)
    assert len(set(batched.added)) > 1  # the test exercises the ragged path
    for name in ("obs", "action", "reward", "next_obs", "terminated", "discount", "ids"):
        for b in range(k):
            assert torch.equal(getattr(batched, name)[b], getattr(separate[b], name)), (name, b)
    if cls is PrioritizedReplayBuffer:
        for b in range(k):
            assert torch.equal(batched.tree.tree[b], separate[b].tree.tree)
    sample = batched.sample(16)  # buffers of different sizes: each draws within its own
    for b, size in enumerate(batched.sizes()):
        assert bool((sample.index[b] % cap < size).all()) if size < cap else True
        assert torch.equal(sample.obs[b], batched.obs[b, sample.index[b] % cap])


@pytest.mark.parametrize("cls", CLASSES)
def test_buffers_of_a_population_do_not_influence_each_other(cls):
    # Changing buffer 2's data changes nothing that buffers 0 and 1 store or sample (bitwise).
    def run(seed_of_last):
        buf = cls(64, obs_shape=(3,), seed=7, num_buffers=3)
        out = []
        for step in range(6):
            rows = _rows(3, 8, step)
            other = _rows(3, 8, 100 * seed_of_last + step)
            for name in rows:
                rows[name][2] = other[name][2]
            buf.add(**rows)
            sample = buf.sample(16)
            out.append([field[:2].clone() for field in sample])
            if cls is PrioritizedReplayBuffer:
                td = torch.randn(3, 16, generator=torch.Generator().manual_seed(step))
                td[2] = torch.randn(16, generator=torch.Generator().manual_seed(seed_of_last))
                buf.update_priorities(sample.index, td)
        return out, buf

    a, buf_a = run(1)
    b, buf_b = run(2)
    for fields_a, fields_b in zip(a, b):
        for x, y in zip(fields_a, fields_b):
            assert torch.equal(x, y)
    assert not torch.equal(buf_a.obs[2], buf_b.obs[2])


@pytest.mark.parametrize("cls", CLASSES)
def test_batched_shapes_are_checked_before_anything_is_written(cls):
    buf = cls(8, obs_shape=(3,), seed=0, num_buffers=2)
    buf.add(**_rows(2, 3, 0))
    before = buf.state_dict()
    rows = _rows(2, 3, 1)
    for name, bad in [("obs", rows["obs"][0]), ("obs", _rows(3, 3, 1)["obs"]), ("action", rows["action"][:, :2]),
                      ("terminated", rows["terminated"][0])]:
        with pytest.raises(ValueError, match=f"`{name}` must have shape \\(2, "):
            buf.add(**{**rows, name: bad})
        assert_same_state(buf.state_dict(), before)
    if cls is PrioritizedReplayBuffer:
        with pytest.raises(RuntimeError, match="`index` must have a leading dimension of 2"):
            buf.update_priorities(torch.tensor([0, 1, 2]), torch.ones(3))  # not one row per buffer
        assert_same_state(buf.state_dict(), before)
    with pytest.raises(ValueError, match="`num_buffers`"):
        cls(8, num_buffers=0)
    half = cls(8, obs_shape=(3,), num_buffers=2)
    half.add_vector_step(**_rows(2, 2, 0), truncated=torch.zeros(2, 2, dtype=torch.bool),
                         valid=torch.tensor([[True, True], [False, False]]))
    assert half.added == (2, 0)
    with pytest.raises(RuntimeError, match="buffer 1, which is empty"):
        half.sample(1)


@pytest.mark.parametrize("cls", CLASSES)
def test_batched_save_load_round_trip(cls, tmp_path):
    buf = cls(16, obs_shape=(2,), n_step=3, gamma=0.9, seed=3, num_buffers=2)
    _write_steps(buf, 12, 2, 3, seed=4)
    if cls is PrioritizedReplayBuffer:
        sample = buf.sample(5)
        buf.update_priorities(sample.index, torch.randn(2, 5))
    buf.save(tmp_path / "b.pt")
    restored = cls(16, obs_shape=(2,), n_step=3, gamma=0.9, seed=99, num_buffers=2)
    restored.load(tmp_path / "b.pt")
    assert_same_state(restored.state_dict(), buf.state_dict())
    for x, y in zip(buf.sample(7), restored.sample(7)):
        assert torch.equal(x, y)
    with pytest.raises(ValueError, match="state is for"):
        cls(16, obs_shape=(2,), n_step=3, gamma=0.9).load(tmp_path / "b.pt")


# ---------------------------------------------------------------- files


@pytest.mark.parametrize("name,cls", [("prioritized", PrioritizedReplayBuffer), ("uniform", ReplayBuffer)])
def test_checkpoints_of_the_column_layout_still_load(name, cls, tmp_path):
    # Written by rltorch before rows were packed (and before buffer files carried a checksum):
    # one column per field, and a [2, storage] tree. Loaded, the buffer continues exactly.
    buf = cls(16, obs_shape=(3,), seed=0, n_step=2, gamma=0.9)
    buf.load(DATA / f"{name}_buffer_columns.pt")
    expected = torch.load(DATA / f"{name}_buffer_columns_next.pt", weights_only=True)["next_samples"]
    for want in expected:
        got = buf.sample(4)
        for x, y in zip(got, want):
            assert torch.equal(x, y)
    # Saved again: the same per-field form, now with a checksum.
    buf.save(tmp_path / "again.pt")
    again = cls(16, obs_shape=(3,), seed=1, n_step=2, gamma=0.9)
    again.load(tmp_path / "again.pt")
    assert_same_state(again.state_dict(), buf.state_dict())


def test_a_damaged_buffer_file_is_named(tmp_path):
    buf = PrioritizedReplayBuffer(16, obs_shape=(3,), seed=0)
    buf.add(**_single(_rows(1, 6, 0), 0))
    path = tmp_path / "buf.pt"
    buf.save(path)
    data = bytearray(path.read_bytes())
    # Flip a byte inside the stored obs (a float of the first row): torch does not check its zip CRCs.
    marker = buf.obs[0, 0].numpy().tobytes()
    at = bytes(data).find(marker)
    assert at > 0
    data[at] ^= 0xFF
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data))
    fresh = PrioritizedReplayBuffer(16, obs_shape=(3,), seed=0)
    before = fresh.state_dict()
    with pytest.raises(ValueError, match="damaged.pt.*damaged"):
        fresh.load(damaged)
    assert_same_state(fresh.state_dict(), before)
    with pytest.raises(ValueError, match="cannot write|not in an existing directory"):
        buf.save(tmp_path / "missing" / "buf.pt")


def test_a_state_of_the_other_buffer_type_is_named(tmp_path):
    uniform = ReplayBuffer(8, obs_shape=(3,), seed=0)
    prioritized = PrioritizedReplayBuffer(8, obs_shape=(3,), seed=0)
    for buf in (uniform, prioritized):
        buf.add(**_single(_rows(1, 3, 0), 0))
    with pytest.raises(ValueError, match="state is for a ReplayBuffer, this buffer is a PrioritizedReplayBuffer"):
        prioritized.load_state_dict(uniform.state_dict())
    with pytest.raises(ValueError, match="state is for a PrioritizedReplayBuffer, this buffer is a ReplayBuffer"):
        uniform.load_state_dict(prioritized.state_dict())
    prioritized.save(tmp_path / "p.pt")
    with pytest.raises(ValueError, match="state is for a PrioritizedReplayBuffer"):
        uniform.load(tmp_path / "p.pt")


# ---------------------------------------------------------------- issue #20, defect 5


def test_an_infinite_priority_is_rejected_and_the_buffer_does_not_grow():
    # eps = 1e307 and a TD error of 1.79e308: |td| + eps overflows to inf. It used to be
    # stored (the bound on priorities was inf for alpha < 1), and the next add() raised
    # after growing the buffer from 4 to 8.
    buf = PrioritizedReplayBuffer(8, obs_shape=(3,), eps=1e307, seed=0)
    buf.add(**_single(_rows(1, 4, 0), 0))
    before = buf.state_dict()
    with pytest.raises(ValueError, match="`td_error` holds 1.79e\\+308 at position 0"):
        buf.update_priorities(torch.tensor([0]), torch.tensor([1.79e308], dtype=torch.float64))
    assert_same_state(buf.state_dict(), before)
    assert math.isfinite(float(buf.tree.total())) and len(buf) == 4
    buf.add(**_single(_rows(1, 4, 1), 0))
    assert len(buf) == 8 and math.isfinite(float(buf.tree.total()))
    # The largest finite priority a tree holds is accepted, and the tree stays finite.
    buf.update_priorities(torch.tensor([5]), torch.tensor([1.6e308], dtype=torch.float64))  # + eps: 1.7e308
    buf.add(**_single(_rows(1, 2, 2), 0))
    assert math.isfinite(float(buf.tree.total())) and len(buf) == 8


def test_loaded_max_priority_above_the_bound_is_rejected():
    buf = PrioritizedReplayBuffer(8, obs_shape=(3,), alpha=1.0, seed=0)
    buf.add(**_single(_rows(1, 4, 0), 0))
    state = buf.state_dict()
    state["max_priority"] = torch.tensor([1e308], dtype=torch.float64)  # finite, but 8 of them overflow the total
    fresh = PrioritizedReplayBuffer(8, obs_shape=(3,), alpha=1.0, seed=0)
    before = fresh.state_dict()
    with pytest.raises(ValueError, match="`max_priority` must be finite, > 0 and <="):
        fresh.load_state_dict(state)
    assert_same_state(fresh.state_dict(), before)


# ---------------------------------------------------------------- property: rejected calls on K buffers


def _calls():
    return st.lists(st.one_of(
        st.tuples(st.just("add"), st.integers(0, 6), st.sampled_from(["ok", "buffers", "rows", "meta"])),
        st.tuples(st.just("step"), st.sampled_from(["ok", "envs", "valid"])),
        st.tuples(st.just("sample"), st.sampled_from([0, 3, -1, 1.5])),
        st.tuples(st.just("update"), st.lists(st.integers(-2, 30), min_size=2, max_size=2),
                  st.sampled_from([0.5, 2.0, math.nan, math.inf, 1.79e308]), st.sampled_from(["ok", "rows"])),
        st.tuples(st.just("load"), st.sampled_from(["good", "single", "added", "tree"])),
    ), min_size=1, max_size=10)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=_calls(), n_step=st.sampled_from([1, 2]))
def test_property_batched_prioritized_buffer_rejected_calls_leave_state_unchanged(calls, n_step):
    k, cap = 2, 8
    buf = PrioritizedReplayBuffer(cap, obs_shape=(3,), seed=0, n_step=n_step, eps=1e307, num_buffers=k)
    good = PrioritizedReplayBuffer(cap, obs_shape=(3,), seed=0, n_step=n_step, eps=1e307, num_buffers=k)
    good.add(**_rows(k, 5, 3))
    good_state = good.state_dict()
    for call in calls:
        before = buf.state_dict()
        try:
            if call[0] == "add":
                rows = _rows(k, call[1], call[1])
                if call[2] == "buffers":
                    rows = _rows(k + 1, call[1], 0)
                elif call[2] == "rows":
                    rows["reward"] = rows["reward"][:, :-1] if call[1] else torch.zeros(k, 1)
                elif call[2] == "meta":
                    rows["obs"] = rows["obs"].to("meta")
                buf.add(**rows)
            elif call[0] == "step":
                envs = 3 if call[1] == "envs" and buf._window is not None else 2
                rows = _rows(k, envs, 4)
                valid = torch.tensor([[True, False], [False, False]]) if call[1] == "valid" else None
                buf.add_vector_step(**rows, truncated=torch.zeros(k, envs, dtype=torch.bool), valid=valid)
            elif call[0] == "sample":
                buf.sample(call[1])
            elif call[0] == "update":
                index = torch.tensor([call[1]] * (k if call[3] == "ok" else 1))
                buf.update_priorities(index, torch.full(index.shape, call[2], dtype=torch.float64))
            else:
                state = dict(good_state)
                if call[1] == "single":
                    state["config"] = {key: v for key, v in state["config"].items() if key != "num_buffers"}
                elif call[1] == "added":
                    state["added"] = state["added"][:1]
                elif call[1] == "tree":
                    state["tree"] = state["tree"][:1]
                buf.load_state_dict(state)
        except (ValueError, TypeError, RuntimeError, IndexError):
            assert_same_state(buf.state_dict(), before)
        assert math.isfinite(float(buf.tree.total().max()))
    # Valid calls keep working after whatever was rejected.
    buf.add(**_rows(k, 3, 1))
    sample = buf.sample(4)
    buf.update_priorities(sample.index, torch.ones(k, 4))
    assert sample.obs.shape == (k, 4, 3) and bool(torch.isfinite(sample.weight).all())

