"""Bellman targets and GAE: rltorch vs the eager expressions users write today,
their torch.compile'd versions, and TorchRL's functional GAE when installed.

    python -m pytest benchmarks/bench_returns.py --benchmark-only --benchmark-group-by=group
"""

import pytest
import torch

import rltorch
from rltorch import _reference

TD_BATCHES = [256, 4096, 65536]
GAE_SHAPES = [(128, 8), (128, 64), (128, 1024)]


def td_inputs(B, device, A=2):
    g = torch.Generator().manual_seed(0)
    reward = torch.rand(B, generator=g).to(device)
    terminated = (torch.rand(B, generator=g) < 0.05).to(device)
    next_q = torch.randn(B, A, generator=g).to(device)
    online = torch.randn(B, A, generator=g).to(device)
    return reward, terminated, next_q, online


def cleanrl_target(reward, done_float, next_q, gamma: float = 0.99):
    # cleanrl/dqn.py: td_target = r + gamma * target_max * (1 - done)
    return reward + gamma * next_q.max(dim=1).values * (1 - done_float)


def double_dqn_eager(reward, done_float, next_q, online, gamma: float = 0.99):
    best = online.argmax(dim=1, keepdim=True)
    return reward + gamma * next_q.gather(1, best).squeeze(1) * (1 - done_float)


_compiled = {}


def compiled(fn):
    if fn not in _compiled:
        _compiled[fn] = torch.compile(fn, dynamic=False)
    return _compiled[fn]


def run(benchmark, fn, device, *args):
    # The sync is bound once: a per-call torch.device() lookup would add a fixed
    # ~0.5 us to every case and flatten the ratios of the small ones.
    if torch.device(device).type == "cuda":
        def call():
            out = fn(*args)
            torch.cuda.synchronize()
            return out
    else:
        def call():
            return fn(*args)

    for _ in range(3):  # warm-up (and compilation for the compiled variants)
        call()
    return benchmark.pedantic(call, rounds=200 if args[0].numel() < 1_000_000 else 50, iterations=5, warmup_rounds=5)


@pytest.mark.parametrize("B", TD_BATCHES)
@pytest.mark.parametrize("impl", ["rltorch", "eager", "compiled"])
def test_dqn_target(benchmark, device, B, impl):
    benchmark.group = f"dqn_target B={B} {device.type}"
    reward, terminated, next_q, _ = td_inputs(B, device)
    if impl == "rltorch":
        run(benchmark, rltorch.ops.td_target, device, reward, terminated, next_q, 0.99)
    else:
        fn = cleanrl_target if impl == "eager" else compiled(cleanrl_target)
        run(benchmark, fn, device, reward, terminated.float(), next_q)


@pytest.mark.parametrize("B", TD_BATCHES)
@pytest.mark.parametrize("impl", ["rltorch", "eager", "compiled"])
def test_double_dqn_target(benchmark, device, B, impl):
    benchmark.group = f"double_dqn_target B={B} {device.type}"
    reward, terminated, next_q, online = td_inputs(B, device)
    if impl == "rltorch":
        run(benchmark, rltorch.ops.double_dqn_target, device, reward, terminated, next_q, online, 0.99)
    else:
        fn = double_dqn_eager if impl == "eager" else compiled(double_dqn_eager)
        run(benchmark, fn, device, reward, terminated.float(), next_q, online)


def gae_inputs(T, N, device):
    g = torch.Generator().manual_seed(1)
    r = torch.randn(T, N, generator=g).to(device)
    v = torch.randn(T, N, generator=g).to(device)
    nv = torch.randn(T, N, generator=g).to(device)
    term = (torch.rand(T, N, generator=g) < 0.02).to(device)
    done = term | (torch.rand(T, N, generator=g) < 0.01).to(device)
    return r, v, nv, term, done


def gae_loop(r, v, nv, term, done, gamma: float = 0.99, lmbda: float = 0.95):
    """The reverse Python loop users write (CleanRL's PPO style, done/terminated kept apart)."""
    adv = torch.empty_like(r)
    last = torch.zeros_like(r[0])
    not_term = 1.0 - term.float()
    not_done = 1.0 - done.float()
    for t in range(r.shape[0] - 1, -1, -1):
        delta = r[t] + gamma * nv[t] * not_term[t] - v[t]
        last = delta + gamma * lmbda * not_done[t] * last
        adv[t] = last
    return adv, adv + v


def torchrl_gae():
    try:
        from torchrl.objectives.value.functional import vec_generalized_advantage_estimate
    except Exception as exc:  # not installed, or its C++ module does not load against this torch
        pytest.skip(f"TorchRL not usable here: {type(exc).__name__}: {exc}")

    def fn(r, v, nv, term, done):
        # TorchRL is batch-first [*B, T, 1].
        tr = lambda x: x.t().unsqueeze(-1)  # noqa: E731
        return vec_generalized_advantage_estimate(0.99, 0.95, tr(v), tr(nv), tr(r), tr(done), tr(term))

    return fn


@pytest.mark.parametrize("T,N", GAE_SHAPES)
@pytest.mark.parametrize("impl", ["rltorch", "eager_loop", "compiled_loop", "torchrl"])
def test_gae(benchmark, device, T, N, impl):
    benchmark.group = f"gae T={T} N={N} {device.type}"
    args = gae_inputs(T, N, device)
    if impl == "rltorch":
        run(benchmark, lambda *a: rltorch.ops.gae(*a, 0.99, 0.95), device, *args)
    elif impl == "eager_loop":
        run(benchmark, gae_loop, device, *args)
    elif impl == "compiled_loop":
        run(benchmark, compiled(gae_loop), device, *args)
    else:
        run(benchmark, torchrl_gae(), device, *args)


def test_gae_oracle_agrees():
    """Guards the benchmark's baselines: they compute the same thing as rltorch."""
    args = gae_inputs(16, 8, "cpu")
    torch.testing.assert_close(gae_loop(*args)[0], rltorch.ops.gae(*args, 0.99, 0.95)[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(_reference.gae(*args, 0.99, 0.95)[0], rltorch.ops.gae(*args, 0.99, 0.95)[0])


def nstep_loop(r, term, trunc, n: int = 3, gamma: float = 0.99):
    """The Python loop over time a replay writer otherwise runs (the reference's definition)."""
    return _reference.nstep_returns(r, term, trunc, n, gamma)


@pytest.mark.parametrize("T,N", [(128, 64), (128, 1024)])
@pytest.mark.parametrize("impl", ["rltorch", "eager_loop"])
def test_nstep_returns(benchmark, device, T, N, impl):
    benchmark.group = f"nstep_returns n=3 T={T} N={N} {device.type}"
    r, _, _, term, done = gae_inputs(T, N, device)
    trunc = done & ~term
    fn = (lambda *a: rltorch.ops.nstep_returns(*a, 3, 0.99)) if impl == "rltorch" else nstep_loop
    run(benchmark, fn, device, r, term, trunc)
