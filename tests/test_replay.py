"""Replay buffers: storage wrap-around, PER priorities and weights, stale
updates, n-step writer (hand example + brute force), save/load round trip."""

import math

import pytest
import torch

from rltorch.replay import PrioritizedReplayBuffer, ReplayBatch, ReplayBuffer
from tests.conftest import DEVICES


def _batch(ids, obs_dim=2):
    ids = torch.as_tensor(ids, dtype=torch.float32)
    obs = torch.stack([ids, 2 * ids], dim=-1)[:, :obs_dim]
    return obs, ids.long() % 3, ids * 0.5, -obs, (ids.long() % 5) == 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_add_wraps_and_keeps_last_capacity(device, cls):
    buf = cls(7, obs_shape=(2,), device=device, seed=0)
    buf.add(*_batch(range(5)))
    assert len(buf) == 5 and buf.ids.tolist() == [0, 1, 2, 3, 4, -1, -1]
    buf.add(*_batch(range(5, 9)))  # wraps: ids 7, 8 land in slots 0, 1
    assert len(buf) == 7 and buf.ids.tolist() == [7, 8, 2, 3, 4, 5, 6]
    assert buf.obs[:, 0].tolist() == [7, 8, 2, 3, 4, 5, 6]
    assert torch.equal(buf.next_obs, -buf.obs)
    assert buf.discount.tolist() == pytest.approx([0.99] * 7)
    buf.add(*_batch(range(9, 25)))  # 16 > capacity: only ids 18..24 survive
    assert sorted(buf.ids.tolist()) == list(range(18, 25))
    assert torch.equal(buf.obs[:, 0].long(), buf.ids.cpu().to(device))
    assert torch.equal(buf.reward, buf.ids.float() * 0.5)
    assert torch.equal(buf.terminated, buf.ids % 5 == 0)
    if cls is PrioritizedReplayBuffer:
        assert torch.all(buf.tree.priorities() == 1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_uniform_sample_fields_consistent(device):
    buf = ReplayBuffer(50, obs_shape=(2,), device=device, seed=1)
    buf.add(*_batch(range(30)))
    batch = buf.sample(400)
    assert isinstance(batch, ReplayBatch)
    assert torch.equal(batch.obs[:, 0].long(), batch.index)
    assert torch.equal(batch.next_obs, -batch.obs)
    assert torch.equal(batch.weight, torch.ones(400, device=device))
    assert batch.index.min() >= 0 and batch.index.max() < 30
    assert len(set(batch.index.tolist())) > 25  # draws cover the filled part only, and most of it
    with pytest.raises(RuntimeError, match="empty"):
        ReplayBuffer(3, device=device).sample(1)


@pytest.mark.parametrize("device", DEVICES)
def test_per_priorities_alpha_applied_once(device):
    alpha, eps = 0.5, 1e-6
    buf = PrioritizedReplayBuffer(8, obs_shape=(2,), device=device, alpha=alpha, eps=eps, seed=0)
    buf.add(*_batch(range(4)))
    assert torch.all(buf.tree.priorities()[:4] == 1.0)  # raw max 1.0 before any update
    buf.update_priorities(torch.tensor([1, 2], device=device), torch.tensor([-3.0, 0.5], device=device))
    leaves = buf.tree.priorities().cpu()
    assert leaves[1].item() == pytest.approx((3.0 + eps) ** alpha, rel=1e-12)
    assert leaves[2].item() == pytest.approx((0.5 + eps) ** alpha, rel=1e-12)
    assert buf.max_priority.item() == pytest.approx(3.0 + eps)
    buf.add(*_batch([4]))  # a newcomer gets the raw max, transformed once (pytorch/rl#3925)
    assert buf.tree.priorities()[4].item() == pytest.approx((3.0 + eps) ** alpha, rel=1e-12)
    batch = buf.sample(64)
    p = buf.tree.priorities()[batch.index]
    expected = (p / buf.tree.priorities()[:5].min()) ** -buf.beta
    torch.testing.assert_close(batch.weight, expected.float())
    buf.beta = 1.0
    batch = buf.sample(64)
    p = buf.tree.priorities()[batch.index]
    torch.testing.assert_close(batch.weight, (p / p.new_tensor((0.5 + eps) ** alpha)).pow(-1.0).float())
    with pytest.raises(ValueError, match="beta"):
        buf.beta = -0.1


@pytest.mark.parametrize("device", DEVICES)
def test_per_sampling_follows_priorities(device):
    buf = PrioritizedReplayBuffer(4, obs_shape=(2,), device=device, alpha=1.0, eps=0.0, seed=3)
    buf.add(*_batch(range(4)))
    buf.update_priorities(torch.arange(4, device=device), torch.tensor([1.0, 0.0, 3.0, 6.0], device=device))
    counts = torch.bincount(torch.cat([buf.sample(1000).index.cpu() for _ in range(20)]), minlength=4).double()
    assert counts[1] == 0
    torch.testing.assert_close(counts / counts.sum(), torch.tensor([0.1, 0.0, 0.3, 0.6], dtype=torch.float64),
                               atol=0.01, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_stale_priority_update_is_dropped(device):
    buf = PrioritizedReplayBuffer(4, obs_shape=(2,), device=device, alpha=1.0, eps=0.0, seed=0)
    buf.add(*_batch(range(4)))
    batch = buf.sample(8)
    buf.add(*_batch(range(4, 6)))  # overwrites ids 0 and 1 (slots 0 and 1)
    buf.update_priorities(batch.index, torch.full((8,), 5.0, device=device))
    leaves = buf.tree.priorities().cpu()
    sampled = set(batch.index.tolist())
    for slot, ident in enumerate(buf.ids.tolist()):
        expected = 5.0 if ident in sampled else 1.0
        assert leaves[slot].item() == expected, (slot, ident, sampled)
    # Garbage ids (negative, never written) are ignored as well.
    buf.update_priorities(torch.tensor([-1, 100], device=device), torch.tensor([9.0, 9.0], device=device))
    assert torch.equal(buf.tree.priorities().cpu(), leaves)


@pytest.mark.parametrize("device", DEVICES)
def test_bad_td_error_rejected_tree_unchanged(device):
    buf = PrioritizedReplayBuffer(4, obs_shape=(2,), device=device, seed=0)
    buf.add(*_batch(range(4)))
    before = buf.tree.tree.clone()
    with pytest.raises(ValueError, match="`td_error`"):
        buf.update_priorities(torch.tensor([0, 1], device=device), torch.tensor([1.0, math.nan], device=device))
    assert torch.equal(buf.tree.tree, before)


def _write_episodes(buf, steps, n_env, term, trunc):
    """Feeds a vector env whose obs encode (t, env); returns nothing (buffer holds the output)."""
    for t in range(steps):
        ids = torch.arange(n_env, dtype=torch.float32) + 1000 * t
        obs = torch.stack([ids, ids + 0.25], -1)
        reward = (torch.arange(n_env, dtype=torch.float32) + 1) * (t % 7 + 1)
        buf.add_vector_step(obs, torch.arange(n_env) + t, reward, -obs, term[t], trunc[t])


def _brute_force_nstep(steps, n_env, term, trunc, n, gamma):
    out = []
    for e in range(n_env):
        for t in range(steps):
            ret, k = 0.0, 0
            for j in range(t, steps):
                ret += gamma**k * (e + 1) * (j % 7 + 1)
                k += 1
                if term[j][e] or trunc[j][e] or k == n:
                    out.append((1000 * t + e, t + e, ret, -(1000 * j + e), bool(term[j][e]), gamma**k))
                    break
    return sorted(out)


def _stored(buf):
    size = len(buf)
    rows = zip(buf.obs[:size, 0].tolist(), buf.action[:size].tolist(), buf.reward[:size].tolist(),
               buf.next_obs[:size, 0].tolist(), buf.terminated[:size].tolist(), buf.discount[:size].tolist())
    return sorted((int(o), a, r, int(no), te, d) for o, a, r, no, te, d in rows)


def _assert_same_transitions(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g[0] == w[0] and g[1] == w[1] and g[3] == w[3] and g[4] == w[4], (g, w)
        assert g[2] == pytest.approx(w[2], rel=1e-6) and g[5] == pytest.approx(w[5], rel=1e-6), (g, w)


@pytest.mark.parametrize("device", DEVICES)
def test_nstep_hand_example(device):
    # One env, n = 3, gamma = 0.5; rewards 1, 2, 3, 4; step 3 terminates.
    buf = ReplayBuffer(16, obs_shape=(1,), device=device, n_step=3, gamma=0.5)
    rewards = [1.0, 2.0, 3.0, 4.0]
    for t, r in enumerate(rewards):
        buf.add_vector_step(torch.tensor([[float(t)]]), torch.tensor([t]), torch.tensor([r]),
                            torch.tensor([[t + 1.0]]), torch.tensor([t == 3]), torch.tensor([False]))
        assert len(buf) == [0, 0, 1, 4][t]  # first full window at t = 2; the termination flushes 3 more
    got = sorted(zip(buf.obs[:4, 0].tolist(), buf.reward[:4].tolist(), buf.next_obs[:4, 0].tolist(),
                     buf.terminated[:4].tolist(), buf.discount[:4].tolist()))
    assert got == [
        (0.0, 1 + 0.5 * 2 + 0.25 * 3, 3.0, False, 0.125),
        (1.0, 2 + 0.5 * 3 + 0.25 * 4, 4.0, True, 0.125),
        (2.0, 3 + 0.5 * 4, 4.0, True, 0.25),
        (3.0, 4.0, 4.0, True, 0.5),
    ]
    # The next episode starts clean: nothing crosses the boundary.
    buf.add_vector_step(torch.tensor([[10.0]]), torch.tensor([0]), torch.tensor([1.0]),
                        torch.tensor([[11.0]]), torch.tensor([False]), torch.tensor([True]))
    assert len(buf) == 5
    assert (buf.obs[4, 0].item(), buf.reward[4].item(), buf.terminated[4].item(), buf.discount[4].item()) == (
        10.0, 1.0, False, 0.5)  # truncated: not terminated, still bootstraps with gamma


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_nstep_matches_brute_force(device, n):
    steps, n_env, gamma = 40, 4, 0.9
    gen = torch.Generator().manual_seed(n)
    term = (torch.rand(steps, n_env, generator=gen) < 0.08).tolist()
    trunc = (torch.rand(steps, n_env, generator=gen) < 0.08).tolist()
    buf = PrioritizedReplayBuffer(1000, obs_shape=(2,), device=device, n_step=n, gamma=gamma, seed=0)
    _write_episodes(buf, steps, n_env, term, trunc)
    _assert_same_transitions(_stored(buf), _brute_force_nstep(steps, n_env, term, trunc, n, gamma))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_save_load_round_trip(device, cls, tmp_path):
    steps, n_env = 20, 3
    gen = torch.Generator().manual_seed(0)
    term = (torch.rand(steps, n_env, generator=gen) < 0.1).tolist()
    trunc = (torch.rand(steps, n_env, generator=gen) < 0.1).tolist()
    buf = cls(32, obs_shape=(2,), device=device, n_step=3, gamma=0.9, seed=123)
    _write_episodes(buf, steps, n_env, term, trunc)
    if cls is PrioritizedReplayBuffer:
        b = buf.sample(16)
        buf.update_priorities(b.index, torch.randn(16, device=device))
        buf.beta = 0.7
    buf.save(tmp_path / "buf.pt")
    restored = cls(32, obs_shape=(2,), device=device, n_step=3, gamma=0.9, seed=999)
    restored.load(tmp_path / "buf.pt")
    # Same future: the same samples, and the n-step window continues identically.
    for _ in range(3):
        x, y = buf.sample(10), restored.sample(10)
        for a, b in zip(x, y):
            assert torch.equal(a, b)
    more = [[False, True, False], [True, False, False]]
    for target in (buf, restored):
        _write_episodes(target, 2, n_env, more, [[False] * 3, [False] * 3])
    for name in ("obs", "reward", "ids", "discount"):
        assert torch.equal(getattr(buf, name), getattr(restored, name))
    if cls is PrioritizedReplayBuffer:
        assert torch.equal(buf.tree.tree, restored.tree.tree) and restored.beta == 0.7
    with pytest.raises(ValueError, match="state is for"):
        cls(16, obs_shape=(2,), device=device).load(tmp_path / "buf.pt")


@pytest.mark.parametrize("n_step", [1, 2, 3])
def test_add_vector_step_skips_next_step_reset_rows(n_step):
    # Two envs; env 0 terminates at step 1, so its row at step 2 is a gymnasium
    # NEXT_STEP reset row (reward 0, action ignored) and must never be stored.
    buf = ReplayBuffer(64, obs_shape=(1,), n_step=n_step, gamma=0.5, seed=0)
    obs = [torch.tensor([[10.0], [20.0]]), torch.tensor([[11.0], [21.0]]), torch.tensor([[12.0], [22.0]]),
           torch.tensor([[90.0], [23.0]]), torch.tensor([[91.0], [24.0]]), torch.tensor([[92.0], [25.0]])]
    terminated = [torch.tensor([False, False]), torch.tensor([True, False])] + [torch.tensor([False, False])] * 3
    valid = [None, None, torch.tensor([False, True]), None, None]
    for t in range(5):
        buf.add_vector_step(obs[t], torch.tensor([t, t]), torch.ones(2), obs[t + 1], terminated[t],
                            torch.zeros(2, dtype=torch.bool), valid=valid[t])
    stored = buf.obs[: len(buf), 0].tolist()
    assert 12.0 not in stored  # the reset row's obs (the terminal obs of env 0) never starts a transition
    nxt = buf.next_obs[: len(buf), 0].tolist()
    assert 90.0 not in nxt  # no transition leads from the terminal obs into the reset obs
    # Env 0's stored transitions never span the reset: every one starting at 10 or 11 ends at 12 at the latest.
    for o, n, r in zip(stored, nxt, buf.reward[: len(buf)].tolist()):
        if o in (10.0, 11.0):
            assert n in (11.0, 12.0)
            assert r <= 1.5 + 1e-6
