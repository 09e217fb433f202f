"""GPU-only benchmarks (`make gpu-check` runs them; without a GPU they skip).

Groups:
  cuda-cartpole-2^20, -2^24 CartPole steps/s at N = 2^20 and 2^24 envs, against
                            the memory-bandwidth bound (bytes per env-step below)
                            and a device-to-device copy of the same bytes
                            measured in the same run
  cuda-per-cycle-2^24-B4096 one prioritized-replay cycle on 2^24 leaves:
                            stratified sample of B = 4096 + priority update
                            (target < 50 us); also a batch padded with -1 ids
  cuda-gae-T2048-N8         the chunked GAE scan vs the eager reference loop
  cuda-gae-T256-N4096       rltorch vs eager vs torch.compile of the reference
  cuda-td-target-B*         rltorch vs eager vs torch.compile of the reference
The installed suite's cases run on CUDA too (RLTORCH_BENCH_DEVICE=cuda with
bench_ops.py, bench_env.py, bench_replay.py); these are the measurements its
case API does not express: a bandwidth bound, a padded batch, shapes only a GPU
is for. `make gpu-check` runs them in a few minutes of a lent GPU: each case
takes as many rounds as fit in about a second (ROUND_SECONDS).
"""

from __future__ import annotations

import time

import pytest
import torch

from rltorch import _reference
from rltorch.bench.cases.ops import compiled, td_inputs
from rltorch.ops import cartpole as cp_ops
from rltorch.ops import gae, td_target
from rltorch.ops.sumtree import SumTree

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

#: About this many seconds of timed calls per case (within 5 to 200 rounds).
ROUND_SECONDS = 1.0
# Bytes one env-step moves through DRAM (int64 actions, next-step autoreset, no reset this step):
#   validation pass: actions 8 + prev_done 1                            =  9
#   step: state read 32 + write 32, steps read 4 + write 4,
#         prev_done read 1 + write 1, actions 8                         = 82
#   outputs: obs 16, reward 4, terminated 1, truncated 1, done 1,
#            episode_return 4, episode_length 4                         = 31
# (the error-record word is one cached line per warp: nothing per env).
BYTES_PER_ENV_STEP = 9 + 82 + 31


def rounds_for(call) -> int:
    """As many rounds as fit in about ROUND_SECONDS, judged from one call after the warm-up."""
    start = time.perf_counter()
    call()
    return max(5, min(200, int(ROUND_SECONDS / max(time.perf_counter() - start, 1e-6))))


def run(benchmark, fn, device, *args):
    """Times ``fn(*args)`` on the GPU, synchronized inside each call so the device's time counts."""
    def call():
        out = fn(*args)
        torch.cuda.synchronize()
        return out

    for _ in range(3):  # warm-up, and compilation of the compiled variants
        call()
    return benchmark.pedantic(call, rounds=rounds_for(call), iterations=1, warmup_rounds=2)


def _timed(fn, rounds=20):
    """Median seconds of fn() on the GPU (CUDA events around each call)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    return times[len(times) // 2]


@pytest.mark.parametrize("log2_envs", [20, 24], ids=["2^20", "2^24"])
def test_cuda_cartpole_steps_per_second(benchmark, log2_envs):
    benchmark.group = f"cuda-cartpole-2^{log2_envs}"
    n_envs = 2**log2_envs
    state = cp_ops.new_cartpole_state(n_envs, "cuda")
    cp_ops.cartpole_reset_(*state, None, 0)
    actions = torch.randint(0, 2, (n_envs,), device="cuda")

    def step():
        cp_ops.cartpole_step_(*state, actions, 0)
        torch.cuda.synchronize()

    step()
    benchmark.pedantic(step, rounds=rounds_for(step), iterations=1, warmup_rounds=3)
    # Device time between events, as the copy below is timed: at 2^20 envs a step takes tens of
    # microseconds, and the host's synchronize in `step` would count against the kernel.
    seconds = _timed(lambda: cp_ops.cartpole_step_(*state, actions, 0))
    # The achievable bandwidth here: a device-to-device copy of the same byte count.
    src = torch.empty(n_envs * BYTES_PER_ENV_STEP // 2, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    copy_seconds = _timed(lambda: dst.copy_(src))  # reads and writes: BYTES_PER_ENV_STEP per env in all
    steps_per_s = n_envs / seconds
    achieved = steps_per_s * BYTES_PER_ENV_STEP
    copy_bandwidth = 2 * src.numel() / copy_seconds
    benchmark.extra_info.update(
        envs=n_envs, bytes_per_env_step=BYTES_PER_ENV_STEP, steps_per_s=round(steps_per_s),
        achieved_GBps=round(achieved / 1e9, 1), copy_GBps=round(copy_bandwidth / 1e9, 1),
        fraction_of_copy_bandwidth=round(achieved / copy_bandwidth, 3),
        bound_steps_per_s=round(copy_bandwidth / BYTES_PER_ENV_STEP),
    )


def _per_setup(padded: bool):
    capacity = 2**24
    tree = SumTree(capacity, "cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    tree.update(torch.arange(capacity, device="cuda"),
                torch.rand(capacity, device="cuda", dtype=torch.float64, generator=g) + 0.01, validate=False)
    slot_ids = torch.arange(capacity, device="cuda")
    running_max = torch.ones(1, dtype=torch.float64, device="cuda")
    td = torch.randn(4096, device="cuda", dtype=torch.float64, generator=g)

    def cycle():
        index, weight = tree.sample(4096, beta=0.4, generator=g)
        if padded:  # a batch padded with -1 ids: 7/8 of the entries are not kept
            index[512:] = -1
        torch.ops.rltorch.per_update_priorities_(tree.tree, capacity, tree.fanout, slot_ids, index, td, 0.6, 1e-6,
                                                 running_max)
        torch.cuda.synchronize()

    return cycle


@pytest.mark.benchmark(group="cuda-per-cycle-2^24-B4096")
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_cuda_per_sample_and_update(benchmark, padded):
    cycle = _per_setup(padded)
    benchmark.pedantic(cycle, rounds=200, iterations=1, warmup_rounds=10)  # ~50 us a cycle: 200 rounds are cheap
    benchmark.extra_info.update(leaves=2**24, batch=4096, target_us=50,
                                median_us=round(benchmark.stats.stats.median * 1e6, 1))


def _gae_inputs(T, N):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(T, N, generator=g), torch.randn(T, N, generator=g), torch.randn(T, N, generator=g),
         torch.rand(T, N, generator=g) < 0.01, torch.rand(T, N, generator=g) < 0.02)
    return tuple(t.cuda() for t in x)


@pytest.mark.benchmark(group="cuda-gae-T2048-N8")
@pytest.mark.parametrize("impl", ["rltorch", "eager"])
def test_cuda_gae_few_envs_long_rollout(benchmark, impl):
    fn = gae if impl == "rltorch" else _reference.gae
    r, v, nv, te, dn = _gae_inputs(2048, 8)
    run(benchmark, lambda *a: fn(*a, 0.99, 0.95), "cuda", r, v, nv, te, dn)


@pytest.mark.benchmark(group="cuda-gae-T256-N4096")
@pytest.mark.parametrize("impl", ["rltorch", "eager", "compiled"])
def test_cuda_gae_vs_eager_and_compile(benchmark, impl):
    fn = {"rltorch": gae, "eager": _reference.gae, "compiled": compiled(_reference.gae)}[impl]
    r, v, nv, te, dn = _gae_inputs(256, 4096)
    run(benchmark, lambda *a: fn(*a, 0.99, 0.95), "cuda", r, v, nv, te, dn)


@pytest.mark.parametrize("B", [4096, 2**20])
@pytest.mark.parametrize("impl", ["rltorch", "eager", "compiled"])
def test_cuda_td_target_vs_eager_and_compile(benchmark, impl, B):
    benchmark.group = f"cuda-td-target-B{B}"
    fn = {"rltorch": td_target, "eager": _reference.td_target, "compiled": compiled(_reference.td_target)}[impl]
    reward, terminated, next_q, _ = td_inputs(B, "cuda")
    run(benchmark, lambda r, t, q: fn(r, t, q, gamma=0.99), "cuda", reward, terminated, next_q)
