"""The chunked GAE scan of the CUDA kernel (csrc/cuda/returns_cuda.cu,
gae_chunked_kernel), replicated step by step in Python: on the CPU its combine
logic is checked against the sequential reference; on a GPU the kernel is
compared bit for bit with this replica (same float operations in the same
order, no FMA contraction: the extension is built with --fmad=false)."""

import pytest
import torch

from rltorch import _reference
from rltorch.ops import gae
from tests.conftest import requires_cuda, requires_ext

# The kernel's selection and chunking (returns_cuda.cu).
CHUNKED_MAX_ENVS, CHUNKED_MIN_STEPS, CHUNKED_THREADS, MIN_CHUNK = 2048, 256, 256, 16


def uses_chunked(T: int, N: int) -> bool:
    return N < CHUNKED_MAX_ENVS and T >= CHUNKED_MIN_STEPS


def chunking(T: int) -> tuple[int, int]:
    wanted = min(CHUNKED_THREADS, -(-T // MIN_CHUNK))
    threads = -(-wanted // 32) * 32
    return threads, -(-T // threads)


def gae_chunked_replica(reward, value, next_value, terminated, done, gamma, lmbda, threads, chunk):
    """The kernel's three steps, vectorized over envs. Returns (advantage, returns)."""
    acc = torch.float32 if reward.dtype in (torch.float16, torch.bfloat16) else reward.dtype
    T, N = reward.shape[0], reward[0].numel()
    r, v, nv = (x.reshape(T, N).to(acc) for x in (reward, value, next_value))
    term, dn = terminated.reshape(T, N).bool(), done.reshape(T, N).bool()
    g = torch.tensor(gamma, dtype=torch.float64).to(acc)
    gl = torch.tensor(gamma * lmbda, dtype=torch.float64).to(acc)  # gamma * lmbda in double, then cast
    zero = torch.zeros(N, dtype=acc)

    def cell(t, carry):  # returns.h gae_cell
        bootstrap = torch.where(term[t], zero, g * nv[t])
        delta = r[t] + bootstrap - v[t]
        return torch.where(dn[t], delta, delta + gl * carry)

    bounds = [(min(T, c * chunk), min(T, c * chunk + chunk)) for c in range(threads)]
    a_of, p_of = [], []
    for begin, end in bounds:  # step 1
        a, p = zero.clone(), torch.ones(N, dtype=acc)
        for t in range(end - 1, begin - 1, -1):
            a = cell(t, a)
            p = torch.where(dn[t], zero, gl * p)
        a_of.append(a)
        p_of.append(p)
    carry_in = [None] * threads
    carry = zero.clone()
    for k in range(threads - 1, -1, -1):  # step 2
        carry_in[k] = carry
        carry = a_of[k] + p_of[k] * carry
    adv = torch.empty(T, N, dtype=acc)
    for k, (begin, end) in enumerate(bounds):  # step 3
        carry = carry_in[k]
        for t in range(end - 1, begin - 1, -1):
            carry = cell(t, carry)
            adv[t] = carry
    ret = adv + v
    shape = reward.shape
    return adv.reshape(shape).to(reward.dtype), ret.reshape(shape).to(reward.dtype)


def _rollout(T, N, dtype, seed=0, done_rate=0.02, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    reward = torch.randn(T, N, generator=gen).to(dtype)
    value = torch.randn(T, N, generator=gen).to(dtype)
    next_value = torch.randn(T, N, generator=gen).to(dtype)
    terminated = torch.rand(T, N, generator=gen) < done_rate
    done = terminated | (torch.rand(T, N, generator=gen) < done_rate)
    return tuple(x.to(device) for x in (reward, value, next_value, terminated, done))


def test_selection_and_chunking():
    assert uses_chunked(2048, 8) and not uses_chunked(128, 8) and not uses_chunked(2048, 4096)
    assert chunking(2048) == (128, 16)
    assert chunking(256) == (32, 8)
    assert chunking(100_000) == (256, 391)
    for T in (256, 257, 1000, 2048, 4099):
        threads, chunk = chunking(T)
        assert threads % 32 == 0 and threads <= CHUNKED_THREADS and threads * chunk >= T


# Stated tolerance: the chunked scan reassociates only the carries between
# chunks, so it stays within a few ulps of the magnitudes involved:
# |chunked - sequential| <= RTOL * (1 + max |A|) elementwise.
RTOL = {torch.float32: 2e-6, torch.float64: 1e-14}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T,N,done_rate", [(2048, 8, 0.02), (300, 3, 0.0), (512, 1, 0.5), (257, 2, 0.01)])
def test_chunked_replica_matches_sequential(dtype, T, N, done_rate):
    args = _rollout(T, N, dtype, seed=T + N, done_rate=done_rate)
    threads, chunk = chunking(T)
    adv, ret = gae_chunked_replica(*args, 0.99, 0.95, threads, chunk)
    adv_ref, ret_ref = _reference.gae(*args, 0.99, 0.95)
    scale = 1 + adv_ref.abs().max().item()
    assert (adv - adv_ref).abs().max().item() <= RTOL[dtype] * scale
    assert (ret - ret_ref).abs().max().item() <= RTOL[dtype] * (scale + args[1].abs().max().item())


def test_chunked_replica_exact_when_one_chunk():
    # One chunk is the sequential scan itself: bit-identical.
    args = _rollout(64, 4, torch.float32)
    adv, ret = gae_chunked_replica(*args, 0.9, 0.8, threads=1, chunk=64)
    adv_ref, ret_ref = _reference.gae(*args, 0.9, 0.8)
    assert torch.equal(adv, adv_ref) and torch.equal(ret, ret_ref)


def test_chunk_carry_crosses_done_boundaries():
    # A done in the last step of a chunk must cut the carry from the chunk after it.
    T, N = 64, 1
    reward, value, next_value, terminated, done = _rollout(T, N, torch.float64, done_rate=0.0)
    done[15] = True
    done[31] = terminated[31] = True
    adv, _ = gae_chunked_replica(reward, value, next_value, terminated, done, 0.99, 0.95, threads=4, chunk=16)
    adv_ref, _ = _reference.gae(reward, value, next_value, terminated, done, 0.99, 0.95)
    torch.testing.assert_close(adv, adv_ref, rtol=0, atol=1e-13)


@requires_ext
@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("T,N", [(2048, 8), (256, 1), (1000, 3), (300, 2047)])
def test_cuda_chunked_kernel_equals_replica_bitwise(dtype, T, N):
    assert uses_chunked(T, N)
    args = _rollout(T, N, dtype, seed=7)
    threads, chunk = chunking(T)
    want_adv, want_ret = gae_chunked_replica(*args, 0.99, 0.95, threads, chunk)
    got_adv, got_ret = gae(*(x.cuda() for x in args), gamma=0.99, lmbda=0.95)
    assert torch.equal(got_adv.cpu(), want_adv) and torch.equal(got_ret.cpu(), want_ret)


@requires_ext
@requires_cuda
def test_cuda_sequential_path_still_used_for_many_envs():
    args = _rollout(300, 4096, torch.float32, seed=3)
    got_adv, _ = gae(*(x.cuda() for x in args), gamma=0.99, lmbda=0.95)
    want_adv, _ = _reference.gae(*args, 0.99, 0.95)
    assert torch.equal(got_adv.cpu(), want_adv)
