"""GPU-only checks (`make gpu-check` runs them; without a GPU they skip with the reason).

Second device and side streams, no hidden host sync, CUDA-graph capture and
replay, generator state, sum-tree stress bit-exact against the reference,
CartPole CPU = CUDA bitwise at 2^24 envs, bad input recorded in the device
error record (never a device-side assert: the CUDA context survives), and the
small "sanitize" cases that compute-sanitizer runs.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rltorch import _ext, _reference
from rltorch.ops import cartpole as cp_ops
from rltorch.ops import check_device_errors, device_error_pending, gae, nstep_returns, td_target
from rltorch.ops.sumtree import SumTree
from tests.conftest import requires_cuda, requires_ext

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    requires_ext,
    requires_cuda,
    pytest.mark.skipif(not _ext.HAS_EXT or not _ext.cuda_compiled(), reason="rltorch built without CUDA kernels"),
]

two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")


@pytest.fixture(autouse=True)
def no_pending_errors():
    if torch.cuda.is_available():
        check_device_errors("cuda")
    yield
    if torch.cuda.is_available():
        pending = device_error_pending("cuda")
        with contextlib.suppress(Exception):
            check_device_errors("cuda")
        assert not pending, "a test left an error in the device's error record"


# ---- every op, as one callable per op, on a given device ----

def _inputs(device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every input of _run_all_ops, already on `device` (copies from the host sync)."""
    g = torch.Generator().manual_seed(seed)
    B, A, T, N = 300, 4, 300, 5
    x = {
        "reward": torch.randn(B, generator=g), "term": torch.rand(B, generator=g) < 0.1,
        "next_q": torch.randn(B, A, generator=g), "online": torch.randn(B, A, generator=g),
        "action": torch.randint(0, A, (B,), generator=g),
        "r": torch.randn(T, N, generator=g), "v": torch.randn(T, N, generator=g), "nv": torch.randn(T, N, generator=g),
        "te": torch.rand(T, N, generator=g) < 0.05, "tr": torch.rand(T, N, generator=g) < 0.05,
        "cp_actions": torch.randint(0, 2, (1000,), generator=g),
        "mass": torch.rand(400, generator=g, dtype=torch.float64), "col": torch.randn(5000, 3, generator=g),
    }
    for batch in (700, 3000):  # the single-block and the multi-launch update
        x[f"upd_idx{batch}"] = torch.randint(0, 5000, (batch,), generator=g)
        x[f"upd_p{batch}"] = torch.rand(batch, generator=g, dtype=torch.float64)
    for batch in (500, 2000):
        x[f"per_idx{batch}"] = torch.randint(-1, 5000, (batch,), generator=g)
        x[f"per_td{batch}"] = torch.randn(batch, generator=g, dtype=torch.float64)
    return {k: t.to(device) for k, t in x.items()}


def _run_all_ops(device: torch.device, x: dict | None = None) -> dict[str, torch.Tensor]:
    """Every op once (twice for the two update paths); only device work when `x` is given."""
    x = _inputs(device) if x is None else x
    out = {}
    out["td_max"] = td_target(x["reward"], x["term"], x["next_q"], gamma=0.9)
    out["td_double"] = td_target(x["reward"], x["term"], x["next_q"], next_q_online=x["online"], gamma=0.9)
    out["td_action"] = td_target(x["reward"], x["term"], x["next_q"], next_action=x["action"], gamma=0.9)
    r, v, nv, te, tr = x["r"], x["v"], x["nv"], x["te"], x["tr"]
    out["nstep"] = torch.stack([t.double() for t in nstep_returns(r, te, tr, 3, 0.99)])
    out["gae_chunked"] = torch.stack(gae(r, v, nv, te, te | tr, 0.99, 0.95))  # T = 300, N = 5: chunked on CUDA
    out["gae_short"] = torch.stack(gae(r[:50], v[:50], nv[:50], te[:50], (te | tr)[:50], 0.99, 0.95))
    state = cp_ops.new_cartpole_state(1000, device)
    cp_ops.cartpole_reset_(*state, None, 5)
    for _ in range(20):
        res = cp_ops.cartpole_step_(*state, x["cp_actions"], 5)
    out["cartpole_obs"] = res[0]
    out["cartpole_state"] = state[0].clone()
    tree = SumTree(5000, device)
    rm = torch.zeros(1, dtype=torch.float64, device=device)
    for batch in (700, 3000):  # alpha = 1: no pow, so both devices agree bit for bit
        torch.ops.rltorch.sumtree_update_(tree.tree, 5000, tree.fanout, x[f"upd_idx{batch}"], x[f"upd_p{batch}"],
                                          None, 1.0, 1e-3, rm)
    slot_ids = torch.arange(5000, device=device)
    for batch in (500, 2000):
        torch.ops.rltorch.per_update_priorities_(tree.tree, 5000, tree.fanout, slot_ids, x[f"per_idx{batch}"],
                                                 x[f"per_td{batch}"], 1.0, 1e-3, rm)
    out["tree"] = tree.tree.clone()
    out["running_max"] = rm.clone()
    out["find"] = tree.find(x["mass"] * tree.total())
    cols = [torch.arange(5000, device=device).float(), x["col"]]
    out["gather"] = torch.cat([c.reshape(400, -1) for c in torch.ops.rltorch.replay_gather(cols, out["find"])], dim=1)
    return out


def _assert_same(a: dict, b: dict):
    for k in a:
        if k == "gae_chunked":  # the chunked scan reassociates the carries (tests/test_gae_chunked.py)
            torch.testing.assert_close(a[k].cpu(), b[k].cpu(), rtol=1e-5, atol=1e-5)
        else:
            assert torch.equal(a[k].cpu(), b[k].cpu()), k


def test_every_op_cuda_equals_cpu():
    _assert_same(_run_all_ops(torch.device("cpu")), _run_all_ops(torch.device("cuda")))


@two_gpus
def test_every_op_on_the_second_gpu():
    with torch.cuda.device(0):
        got = _run_all_ops(torch.device("cuda", 1))
    assert all(t.device == torch.device("cuda", 1) for t in got.values())
    _assert_same(_run_all_ops(torch.device("cpu")), got)
    check_device_errors("cuda:1")


def test_every_op_on_a_side_stream():
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        got = _run_all_ops(torch.device("cuda"))
    side.synchronize()
    _assert_same(_run_all_ops(torch.device("cpu")), got)


def test_no_hidden_host_sync():
    x = _inputs(torch.device("cuda"))
    _run_all_ops(torch.device("cuda"), x)  # warm-up: allocator, error-record address, modules
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _run_all_ops(torch.device("cuda"), x)
    finally:
        torch.cuda.set_sync_debug_mode(previous)


# ---- CUDA graphs and generators ----

def test_cuda_graph_capture_and_replay():
    device = torch.device("cuda")
    tree = SumTree(10_000, device)
    tree.update(torch.arange(10_000, device=device), torch.rand(10_000, dtype=torch.float64, device=device) + 0.1)
    state = cp_ops.new_cartpole_state(512, device)
    cp_ops.cartpole_reset_(*state, None, 3)
    actions = torch.randint(0, 2, (512,), device=device)
    rm = torch.ones(1, dtype=torch.float64, device=device)
    slot_ids = torch.arange(10_000, device=device)
    td = torch.rand(256, dtype=torch.float64, device=device)

    def body():
        idx, w = tree.sample(256, beta=0.4)
        torch.ops.rltorch.per_update_priorities_(tree.tree, 10_000, tree.fanout, slot_ids, idx, td, 0.6, 1e-3, rm)
        obs = cp_ops.cartpole_step_(*state, actions, 3)[0]
        return idx, w, obs

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            body()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        idx, w, obs = body()
    graph.replay()
    first = idx.clone()
    obs_first = obs.clone()
    graph.replay()
    torch.cuda.synchronize()
    assert not torch.equal(first, idx), "two replays drew the same random numbers"
    assert not torch.equal(obs_first, obs), "the env did not advance between replays"
    assert bool((idx >= 0).all()) and bool((idx < 10_000).all())
    check_device_errors("cuda")


def test_generator_state_save_and_restore_reproduces_a_sample():
    device = torch.device("cuda")
    tree = SumTree(1000, device)
    tree.update(torch.arange(1000, device=device), torch.rand(1000, dtype=torch.float64, device=device))
    g = torch.Generator(device).manual_seed(11)
    saved = g.get_state()
    a = tree.sample(512, beta=0.5, generator=g)
    b = tree.sample(512, beta=0.5, generator=g)
    g.set_state(saved)
    c = tree.sample(512, beta=0.5, generator=g)
    assert torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]) and not torch.equal(a[0], b[0])


# ---- sum tree ----

@pytest.mark.parametrize("capacity,fanout", [(1, 8), (7, 2), (1000, 4), (100_000, 8), (70_000, 16)])
def test_sumtree_stress_bit_exact_against_reference(capacity, fanout):
    g = torch.Generator().manual_seed(capacity + fanout)
    cuda_tree, ref_tree = SumTree(capacity, "cuda", fanout), SumTree(capacity, "cpu", fanout)
    rm_cuda = torch.full((1,), -math.inf, dtype=torch.float64, device="cuda")
    rm_ref = rm_cuda.cpu()
    for step in range(40):
        batch = [1, 31, 1024, 1025, 4096][step % 5]
        idx = torch.randint(0, min(capacity, 50) if step % 3 == 0 else capacity, (batch,), generator=g)  # duplicates
        p = torch.rand(batch, generator=g, dtype=torch.float64) * 10
        p[torch.rand(batch, generator=g) < 0.1] = 0.0
        keep = torch.rand(batch, generator=g) < 0.8 if step % 2 else None
        torch.ops.rltorch.sumtree_update_(cuda_tree.tree, capacity, fanout, idx.cuda(), p.cuda(),
                                          None if keep is None else keep.cuda(), 1.0, 0.0, rm_cuda)
        _reference.sumtree_update_(ref_tree.tree, capacity, fanout, idx, p, keep, 1.0, 0.0, rm_ref)
        assert torch.equal(cuda_tree.tree.cpu(), ref_tree.tree), f"step {step}, batch {batch}"
        assert torch.equal(rm_cuda.cpu(), rm_ref)
    mass = torch.rand(5000, generator=g, dtype=torch.float64) * ref_tree.total()
    assert torch.equal(
        cuda_tree.find(mass.cuda()).cpu(), _reference.sumtree_find(ref_tree.tree, capacity, fanout, mass)
    )


@pytest.mark.parametrize("batch", [300, 4096])
def test_padded_batch_equals_reference(batch):
    # Mostly -1 ids (a padded batch): they must not form one serial run, and the result is the reference's.
    capacity = 2**16
    slot_ids = torch.arange(capacity) + capacity
    index = torch.full((batch,), -1, dtype=torch.int64)
    index[: batch // 8] = torch.randint(capacity, 2 * capacity, (batch // 8,))
    td = torch.randn(batch, dtype=torch.float64)
    a, b = SumTree(capacity, "cuda"), SumTree(capacity)
    ra, rb = torch.ones(1, dtype=torch.float64, device="cuda"), torch.ones(1, dtype=torch.float64)
    torch.ops.rltorch.per_update_priorities_(a.tree, capacity, a.fanout, slot_ids.cuda(), index.cuda(), td.cuda(),
                                             0.6, 1e-6, ra)
    _reference.per_update_priorities_(b.tree, capacity, b.fanout, slot_ids, index, td, 0.6, 1e-6, rb)
    torch.testing.assert_close(a.tree.cpu(), b.tree, rtol=1e-14, atol=0)  # pow on two devices: ulps apart
    assert torch.equal(ra.cpu(), rb)


@pytest.mark.parametrize("batch", [5, 2000])
def test_per_update_skips_and_reports_non_finite_td(batch):
    capacity = 4096
    slot_ids = torch.arange(capacity)
    index = torch.randperm(capacity)[:batch]
    td = torch.randn(batch, dtype=torch.float64)
    td[1], td[3] = math.nan, -math.inf
    a, b = SumTree(capacity, "cuda"), SumTree(capacity)
    ra, rb = torch.zeros(1, dtype=torch.float64, device="cuda"), torch.zeros(1, dtype=torch.float64)
    torch.ops.rltorch.per_update_priorities_(a.tree, capacity, a.fanout, slot_ids.cuda(), index.cuda(), td.cuda(),
                                             1.0, 0.0, ra)
    finite = torch.isfinite(td)
    _reference.per_update_priorities_(b.tree, capacity, b.fanout, slot_ids, index[finite], td[finite], 1.0, 0.0, rb)
    assert torch.equal(a.tree.cpu(), b.tree) and torch.equal(ra.cpu(), rb)
    with pytest.raises(ValueError, match=r"`td_error` holds nan at position 1; td errors must be finite"):
        check_device_errors("cuda")


# ---- former device-side asserts: recorded, state unchanged, context alive ----

BAD_INPUT_CASES = {
    "cartpole-bad-action": """
        state = cp_ops.new_cartpole_state(300, dev); cp_ops.cartpole_reset_(*state, None, 1)
        before = [t.clone() for t in state]
        act = torch.ones(300, dtype=torch.int64, device=dev); act[7] = 3; act[200] = -1
        obs = cp_ops.cartpole_step_(*state, act, 1)[0]
        assert all(torch.equal(a, b) for a, b in zip(state, before)), "an env moved"
        assert torch.equal(obs, before[0].t().float())
        expect(ValueError, "rltorch.cartpole_step_: `actions` must be 0 or 1, got 3 for env 7")
    """,
    "cartpole-ended-env-autoreset-disabled": """
        state = cp_ops.new_cartpole_state(300, dev); cp_ops.cartpole_reset_(*state, None, 1)
        state[2][250] = True
        before = [t.clone() for t in state]
        cp_ops.cartpole_step_(*state, torch.zeros(300, dtype=torch.int64, device=dev), 1, autoreset_mode=2)
        assert all(torch.equal(a, b) for a, b in zip(state, before)), "an env moved"
        expect(RuntimeError, "rltorch.cartpole_step_: env 250 ended on the previous call and autoreset is disabled")
    """,
    "td-target-next-action": """
        y = td_target(torch.zeros(5, device=dev), torch.zeros(5, dtype=torch.bool, device=dev),
                      torch.zeros(5, 2, device=dev), next_action=torch.tensor([0, 1, 9, 1, 0], device=dev))
        assert torch.isnan(y[2]) and not torch.isnan(y[[0, 1, 3, 4]]).any()
        expect(IndexError, "rltorch.td_target: `next_action` holds 9 at position 2, outside [0, 2)")
    """,
    "sumtree-index-validate-false": """
        for batch in (10, 3000):
            tree = SumTree(100, dev); rm = torch.zeros(1, dtype=torch.float64, device=dev)
            before = tree.tree.clone()
            idx = torch.arange(batch, device=dev) % 100; idx[batch - 1] = 100
            tree.update(idx, torch.ones(batch, device=dev), running_max=rm, validate=False)
            assert torch.equal(tree.tree, before) and rm.item() == 0.0
            expect(IndexError, f"rltorch.sumtree_update_: `index` holds 100 at position {batch - 1}, outside [0, 100)")
    """,
    "sumtree-priority-validate-false": """
        tree = SumTree(100, dev); before = tree.tree.clone()
        tree.update(torch.tensor([1, 2], device=dev), torch.tensor([1.0, -2.5], device=dev), validate=False)
        assert torch.equal(tree.tree, before)
        expect(ValueError, "rltorch.sumtree_update_: `priority` holds -2.5 at position 1")
    """,
    "blocked-until-checked": """
        tree = SumTree(100, dev)
        tree.update(torch.tensor([500], device=dev), torch.ones(1, device=dev), validate=False)  # recorded
        tree.update(torch.tensor([5], device=dev), torch.ones(1, device=dev), validate=False)  # blocked: no-op
        assert tree.total().item() == 0.0
        expect(IndexError, "`index` holds 500")
        tree.update(torch.tensor([5], device=dev), torch.ones(1, device=dev), validate=False)
        assert tree.total().item() == 1.0
    """,
}

SCRIPT = """
import torch
from rltorch.ops import cartpole as cp_ops, check_device_errors, td_target
from rltorch.ops.sumtree import SumTree
dev = torch.device("cuda")

def expect(kind, text):
    try:
        check_device_errors(dev)
    except kind as exc:
        assert text in str(exc), str(exc)
    else:
        raise AssertionError("nothing was recorded")

{body}
torch.cuda.synchronize()
assert (torch.arange(10, device=dev).sum().item()) == 45  # the context survived
print("CONTEXT-OK")
"""


@pytest.mark.parametrize("case", list(BAD_INPUT_CASES))
def test_former_assert_paths_in_a_subprocess(case):
    script = SCRIPT.replace("{body}", textwrap.dedent(BAD_INPUT_CASES[case]))
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "CONTEXT-OK" in out.stdout, out.stdout + out.stderr
    assert torch.arange(4, device="cuda").sum().item() == 6  # and the parent's context is fine too


# ---- CartPole: CPU and CUDA agree bit for bit ----

@pytest.mark.parametrize("n,low,high", [(2**24, -0.05, 0.05), (4096, -3.0, 3.0), (4096, -1e6, 1e6)])
def test_cartpole_cpu_equals_cuda_bitwise(n, low, high):
    cpu, gpu = cp_ops.new_cartpole_state(n, "cpu"), cp_ops.new_cartpole_state(n, "cuda")
    obs_c = cp_ops.cartpole_reset_(*cpu, None, 123, low, high)
    obs_g = cp_ops.cartpole_reset_(*gpu, None, 123, low, high)
    assert torch.equal(obs_c, obs_g.cpu())
    g = torch.Generator().manual_seed(n)
    steps = 3 if n > 2**20 else 60
    for step in range(steps):
        mode = step % 3 if n <= 2**20 else 0
        actions = torch.randint(0, 2, (n,), generator=g, dtype=torch.int8 if step % 2 else torch.int64)
        out_c = cp_ops.cartpole_step_(*cpu, actions, 123, low, high, 500, mode)
        out_g = cp_ops.cartpole_step_(*gpu, actions.cuda(), 123, low, high, 500, mode)
        for a, b in zip(out_c, out_g):
            assert torch.equal(a, b.cpu()), f"step {step}"
        if mode == 2:
            done = cpu[2].clone()
            cp_ops.cartpole_reset_(*cpu, done, 123, low, high)
            cp_ops.cartpole_reset_(*gpu, done.cuda(), 123, low, high)
        for a, b in zip(cpu, gpu):
            assert torch.equal(a, b.cpu()), f"step {step}"


def test_cartpole_cuda_validates_before_the_device_guard():
    state = cp_ops.new_cartpole_state(4, "cuda")
    with pytest.raises(RuntimeError, match=r"`actions` is on cpu but `state` is on cuda"):
        torch.ops.rltorch.cartpole_step_(*state, torch.zeros(4, dtype=torch.int64), 1)
    with pytest.raises(RuntimeError, match=r"`reset_mask` is on cpu but `state` is on cuda"):
        torch.ops.rltorch.cartpole_reset_(*state, torch.zeros(4, dtype=torch.bool), 1)


# ---- small cases for compute-sanitizer (memcheck, racecheck, initcheck) ----

def test_sanitize_all_ops_small():
    _run_all_ops(torch.device("cuda"))
    torch.cuda.synchronize()


def test_sanitize_error_paths():
    dev = torch.device("cuda")
    tree = SumTree(64, dev)
    tree.update(torch.tensor([70], device=dev), torch.ones(1, device=dev), validate=False)
    with pytest.raises(IndexError):
        check_device_errors(dev)
    state = cp_ops.new_cartpole_state(64, dev)
    cp_ops.cartpole_reset_(*state, None, 1)
    cp_ops.cartpole_step_(*state, torch.full((64,), 2, device=dev), 1)
    with pytest.raises(ValueError):
        check_device_errors(dev)
