"""Sum-tree and prioritized-replay benchmarks (pytest-benchmark).

Groups (divide the mean by B for ns/item):
  sumtree-search-<N>-B<B>   rltorch find vs torch.searchsorted on a cumsum
                            (precomputed: the baseline's best case; and
                            recomputed per call: what a pure-PyTorch PER pays
                            after every priority update)
  sumtree-update-<N>-B<B>   rltorch update (ancestors only) vs index_put of
                            the leaves alone (no totals maintained at all)
  sumtree-fanout-<op>       the layout experiment: K = 2, 4, 8, 16 at 2^20 leaves, B = 4096
  per-cycle-B256            sample + importance weights + gathered batch +
                            update_priorities at 2^20 transitions, rltorch
                            PrioritizedReplayBuffer vs a pure-PyTorch PER
  anchors (torchrl, cpprb)  only when importable; skipped with the reason otherwise

N = 2^24 runs are marked "2^24" in the group name (about 300 MB for the tree).
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import sync
from rltorch.ops.sumtree import DEFAULT_FANOUT, SumTree
from rltorch.replay import PrioritizedReplayBuffer

POOL = 16  # distinct input batches cycled through, so repeated calls do not replay one cached path


def _name(n: int) -> str:
    return f"2^{n.bit_length() - 1}"


def _filled_tree(n, device, fanout=DEFAULT_FANOUT, seed=0):
    gen = torch.Generator().manual_seed(seed)
    tree = SumTree(n, device=device, fanout=fanout)
    p = torch.rand(n, generator=gen, dtype=torch.float64) + 0.01
    tree.update(torch.arange(n, device=device), p.to(device))
    return tree, p.to(device)


def _pool(n, batch, device, seed=1):
    gen = torch.Generator().manual_seed(seed)
    idx = [torch.randint(n, (batch,), generator=gen).to(device) for _ in range(POOL)]
    pri = [(torch.rand(batch, generator=gen, dtype=torch.float64) + 0.01).to(device) for _ in range(POOL)]
    unit = [torch.rand(batch, generator=gen, dtype=torch.float64).to(device) for _ in range(POOL)]
    return idx, pri, unit


def _cycler(fn, items):
    state = {"i": 0}

    def run():
        i = state["i"] = (state["i"] + 1) % POOL
        return fn(*[x[i] for x in items])

    return run


CASES = [(1 << 20, 256), (1 << 20, 4096), (1 << 24, 4096)]


@pytest.mark.parametrize("n,batch", CASES, ids=[f"{_name(n)}-B{b}" for n, b in CASES])
@pytest.mark.parametrize("impl", ["rltorch", "torch-searchsorted", "torch-cumsum+searchsorted"])
def test_search(benchmark, device, n, batch, impl):
    benchmark.group = f"sumtree-search-{_name(n)}-B{batch}"
    tree, p = _filled_tree(n, device)
    idx, _, unit = _pool(n, batch, device)
    total = tree.total()
    masses = [u * total for u in unit]
    if impl == "rltorch":
        fn = _cycler(tree.find, [masses])
    elif impl == "torch-searchsorted":
        cumsum = p.cumsum(0)
        fn = _cycler(lambda m: torch.searchsorted(cumsum, m, right=True), [masses])
    else:
        fn = _cycler(lambda m: torch.searchsorted(p.cumsum(0), m, right=True), [masses])

    def timed():
        out = fn()
        sync(device)
        return out

    benchmark(timed)
    benchmark.extra_info["items"] = batch


@pytest.mark.parametrize("n,batch", CASES, ids=[f"{_name(n)}-B{b}" for n, b in CASES])
@pytest.mark.parametrize("impl", ["rltorch", "torch-index_put-leaves-only"])
def test_update(benchmark, device, n, batch, impl):
    benchmark.group = f"sumtree-update-{_name(n)}-B{batch}"
    tree, p = _filled_tree(n, device)
    idx, pri, _ = _pool(n, batch, device)
    if impl == "rltorch":
        fn = _cycler(tree.update, [idx, pri])
    else:
        fn = _cycler(lambda i, v: p.index_put_((i,), v), [idx, pri])

    def timed():
        fn()
        sync(device)

    benchmark(timed)
    benchmark.extra_info["items"] = batch


@pytest.mark.parametrize("fanout", [2, 4, 8, 16])
@pytest.mark.parametrize("op", ["search", "update", "sample"])
def test_fanout(benchmark, device, fanout, op):
    n, batch = 1 << 20, 4096
    benchmark.group = f"sumtree-fanout-{op}-2^20-B4096"
    tree, _ = _filled_tree(n, device, fanout=fanout)
    idx, pri, unit = _pool(n, batch, device)
    gen = torch.Generator(device=device).manual_seed(0)
    if op == "search":
        total = tree.total()
        fn = _cycler(tree.find, [[u * total for u in unit]])
    elif op == "update":
        fn = _cycler(tree.update, [idx, pri])
    else:
        fn = lambda: tree.sample(batch, 0.4, gen)  # noqa: E731

    def timed():
        fn()
        sync(device)

    benchmark(timed)
    benchmark.extra_info["items"] = batch


CYCLE_N, CYCLE_B, OBS = 1 << 20, 256, (4,)


class TorchPER:
    """A straightforward pure-PyTorch proportional PER (the side-by-side baseline)."""

    def __init__(self, capacity, device, alpha=0.6, beta=0.4, eps=1e-6, seed=0):
        self.p = torch.zeros(capacity, dtype=torch.float64, device=device)
        self.obs = torch.zeros((capacity, *OBS), device=device)
        self.next_obs = torch.zeros_like(self.obs)
        self.action = torch.zeros(capacity, dtype=torch.long, device=device)
        self.reward = torch.zeros(capacity, device=device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.alpha, self.beta, self.eps = alpha, beta, eps
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def sample(self, batch):
        cumsum = self.p.cumsum(0)
        u = (torch.arange(batch, device=cumsum.device) + torch.rand(batch, generator=self.gen, dtype=torch.float64,
                                                                    device=cumsum.device)) / batch * cumsum[-1]
        idx = torch.searchsorted(cumsum, u, right=True).clamp_max_(self.p.numel() - 1)
        p = self.p[idx]
        weight = (p / self.p[self.p > 0].min()).pow(-self.beta).float()
        return self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx], self.terminated[idx], idx, weight

    def update_priorities(self, idx, td):
        self.p[idx] = (td.abs() + self.eps).double().pow(self.alpha)


def _fill(buf_add, device):
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(CYCLE_N, *OBS, generator=gen).to(device)
    buf_add(obs, torch.randint(2, (CYCLE_N,), generator=gen).to(device), torch.ones(CYCLE_N, device=device),
            obs, torch.zeros(CYCLE_N, dtype=torch.bool, device=device))


@pytest.mark.parametrize("impl", ["rltorch", "torch"])
def test_per_cycle(benchmark, device, impl):
    benchmark.group = "per-cycle-2^20-B256"
    td = [torch.randn(CYCLE_B, generator=torch.Generator().manual_seed(i)).to(device) for i in range(POOL)]
    if impl == "rltorch":
        buf = PrioritizedReplayBuffer(CYCLE_N, obs_shape=OBS, device=device, seed=0)
        _fill(buf.add, device)
        buf.update_priorities(torch.arange(CYCLE_N, device=device), torch.rand(CYCLE_N, device=device))

        def cycle(t):
            batch = buf.sample(CYCLE_B)
            buf.update_priorities(batch.index, t)
    else:
        per = TorchPER(CYCLE_N, device)

        def add(obs, action, reward, next_obs, terminated):
            per.obs.copy_(obs); per.action.copy_(action); per.reward.copy_(reward)  # noqa: E702
            per.next_obs.copy_(next_obs); per.terminated.copy_(terminated)  # noqa: E702

        _fill(add, device)
        per.p.copy_(torch.rand(CYCLE_N, dtype=torch.float64, device=device) + 0.01)

        def cycle(t):
            batch = per.sample(CYCLE_B)
            per.update_priorities(batch[5], t)

    fn = _cycler(cycle, [td])

    def timed():
        fn()
        sync(device)

    benchmark(timed)


def test_per_cycle_torchrl_anchor(benchmark, device):
    benchmark.group = "per-cycle-2^20-B256"
    if device.type != "cpu":
        pytest.skip("anchor measured on CPU only")
    pytest.importorskip("torchrl", reason="torchrl is not installed (its wheels do not load against this torch)")
    from torchrl.data.replay_buffers.samplers import PrioritizedSampler

    sampler = PrioritizedSampler(CYCLE_N, alpha=0.6, beta=0.4)
    sampler.update_priority(torch.arange(CYCLE_N), torch.rand(CYCLE_N))

    class _Storage:
        def __len__(self):
            return CYCLE_N

    storage = _Storage()

    def timed():
        idx, info = sampler.sample(storage, CYCLE_B)
        sampler.update_priority(idx, torch.rand(CYCLE_B))

    benchmark(timed)


def test_per_cycle_cpprb_anchor(benchmark, device):
    benchmark.group = "per-cycle-2^20-B256"
    if device.type != "cpu":
        pytest.skip("anchor measured on CPU only")
    cpprb = pytest.importorskip("cpprb", reason="cpprb is not installed")
    import numpy as np

    rb = cpprb.PrioritizedReplayBuffer(CYCLE_N, {"obs": {"shape": OBS}, "act": {}, "rew": {}, "next_obs": {"shape": OBS},
                                                 "done": {}})
    rb.add(obs=np.zeros((CYCLE_N, *OBS)), act=np.zeros(CYCLE_N), rew=np.zeros(CYCLE_N),
           next_obs=np.zeros((CYCLE_N, *OBS)), done=np.zeros(CYCLE_N))

    def timed():
        s = rb.sample(CYCLE_B, beta=0.4)
        rb.update_priorities(s["indexes"], np.random.rand(CYCLE_B))

    benchmark(timed)
