"""Bellman-target family: compiled kernels against the pure-PyTorch reference,
the reference against hand-computed values and the expressions users write."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rltorch
from rltorch import _reference
from tests.conftest import requires_ext

OPS = torch.ops.rltorch if rltorch.info()["extension_loaded"] else None
FLOAT_DTYPES = [torch.float32, torch.float64]


def tol(dtype):
    # The reference accumulates exactly as the kernels do (float32 for half and
    # bfloat16, gamma never rounded to the reward dtype), so they agree bit for bit.
    return dict(rtol=0, atol=0)


def make_td_inputs(B, A, dtype, device, seed=0, shape=None):
    g = torch.Generator().manual_seed(seed)
    shape = shape if shape is not None else (B,)
    reward = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype).to(device)
    terminated = (torch.rand(shape, generator=g) < 0.3).to(device)
    next_q = torch.randn(*shape, A, generator=g, dtype=torch.float64).to(dtype).to(device)
    online = torch.randn(*shape, A, generator=g, dtype=torch.float64).to(dtype).to(device)
    return reward, terminated, next_q, online


# ---------------------------------------------------------------- the reference itself


def test_reference_td_target_by_hand():
    reward = torch.tensor([1.0, 1.0, 0.5])
    terminated = torch.tensor([False, True, False])
    next_q = torch.tensor([[0.5, 2.0], [3.0, 4.0], [-1.0, -2.0]])
    y = _reference.td_target(reward, terminated, next_q, gamma=0.5)
    torch.testing.assert_close(y, torch.tensor([2.0, 1.0, 0.0]))
    online = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y = _reference.td_target(reward, terminated, next_q, next_q_online=online, gamma=0.5)
    torch.testing.assert_close(y, torch.tensor([1.25, 1.0, -0.5]))


def test_reference_gae_by_hand():
    # One env, three steps, values zero, lambda 1: advantages are discounted reward-to-go.
    r = torch.tensor([[1.0], [1.0], [1.0]], dtype=torch.float64)
    z = torch.zeros_like(r)
    no = torch.zeros_like(r, dtype=torch.bool)
    adv, ret = _reference.gae(r, z, z, no, no, 0.5, 1.0)
    torch.testing.assert_close(adv.squeeze(1), torch.tensor([1.75, 1.5, 1.0], dtype=torch.float64))
    # Truncation at t=1 with next value 4: bootstraps there, chain cut.
    nv = torch.tensor([[0.0], [4.0], [0.0]], dtype=torch.float64)
    done = torch.tensor([[False], [True], [False]])
    adv, _ = _reference.gae(r, z, nv, no, done, 0.5, 1.0)
    torch.testing.assert_close(adv.squeeze(1), torch.tensor([1.0 + 0.5 * 3.0, 3.0, 1.0], dtype=torch.float64))


def test_reference_nstep_by_hand():
    r = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]).unsqueeze(1)
    term = torch.tensor([False, False, True, False, False]).unsqueeze(1)
    trunc = torch.tensor([False, False, False, False, True]).unsqueeze(1)
    ret, disc, idx = _reference.nstep_returns(r, term, trunc, 3, 0.5)
    torch.testing.assert_close(ret.squeeze(1), torch.tensor([2.75, 3.5, 3.0, 6.5, 5.0]))
    torch.testing.assert_close(disc.squeeze(1), torch.tensor([0.0, 0.0, 0.0, 0.25, 0.5]))
    assert idx.squeeze(1).tolist() == [2, 2, 2, 4, 4]


def test_cleanrl_expression_matches():
    reward, terminated, next_q, _ = make_td_inputs(1000, 2, torch.float32, "cpu")
    cleanrl = reward + 0.99 * next_q.max(dim=1).values * (1 - terminated.float())
    torch.testing.assert_close(rltorch.ops.td_target(reward, terminated, next_q, 0.99), cleanrl)


# ---------------------------------------------------------------- kernels vs reference


@requires_ext
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("B", [0, 1, 37, 4096])
@pytest.mark.parametrize("A", [1, 2, 18])
def test_td_target_matches_reference(device, dtype, B, A):
    reward, terminated, next_q, online = make_td_inputs(B, A, dtype, device, seed=B * 31 + A)
    actions = torch.randint(0, A, (B,), device=device)
    discount = torch.rand(B, dtype=torch.float64).to(dtype).to(device)
    cases = [
        dict(),
        dict(next_q_online=online),
        dict(next_action=actions),
        dict(discount=discount),
        dict(next_q_online=online, discount=discount),
    ]
    for kw in cases:
        got = OPS.td_target(reward, terminated, next_q, kw.get("next_q_online"), kw.get("next_action"),
                            kw.get("discount"), 0.9)
        want = _reference.td_target(reward, terminated, next_q, gamma=0.9, **kw)
        assert got.dtype == dtype and got.shape == reward.shape
        torch.testing.assert_close(got, want, **tol(dtype), msg=lambda m, kw=kw: f"{kw.keys()}: {m}")
    # State values instead of Q values: bootstrap as is.
    values = next_q[..., 0].contiguous()
    torch.testing.assert_close(
        OPS.td_target(reward, terminated, values, None, None, None, 0.9),
        _reference.td_target(reward, terminated, values, gamma=0.9), **tol(dtype))


@requires_ext
def test_td_target_huge_batch(device):
    reward, terminated, next_q, online = make_td_inputs(1 << 20, 2, torch.float32, device, seed=7)
    torch.testing.assert_close(rltorch.ops.td_target(reward, terminated, next_q, 0.99),
                               _reference.td_target(reward, terminated, next_q, gamma=0.99))
    torch.testing.assert_close(rltorch.ops.double_dqn_target(reward, terminated, next_q, online, 0.99),
                               _reference.td_target(reward, terminated, next_q, next_q_online=online, gamma=0.99))


@requires_ext
def test_td_target_batch_dims_and_noncontiguous(device):
    # [T, N] batches, and every input a strided view.
    reward, terminated, next_q, online = make_td_inputs(0, 4, torch.float64, device, shape=(6, 10))
    r_t, term_t, q_t, on_t = reward.t(), terminated.t(), next_q.transpose(0, 1), online.transpose(0, 1)
    assert not r_t.is_contiguous() and not q_t.is_contiguous()
    got = rltorch.ops.td_target(r_t, term_t, q_t, 0.97, next_q_online=on_t)
    want = _reference.td_target(r_t.contiguous(), term_t.contiguous(), q_t.contiguous(),
                                next_q_online=on_t.contiguous(), gamma=0.97)
    torch.testing.assert_close(got, want)
    # Column slices of a wider Q tensor (stride > A).
    wide = torch.randn(50, 7, dtype=torch.float64, device=device)
    q = wide[:, ::3]
    r = torch.randn(50, dtype=torch.float64, device=device)
    t = torch.zeros(50, dtype=torch.bool, device=device)
    torch.testing.assert_close(
        rltorch.ops.td_target(r, t, q, 0.5), _reference.td_target(r, t, q.contiguous(), gamma=0.5)
    )


@requires_ext
def test_td_target_flag_dtypes(device):
    reward, terminated, next_q, _ = make_td_inputs(100, 3, torch.float32, device)
    want = rltorch.ops.td_target(reward, terminated, next_q, 0.9)
    for flags in (terminated.float(), terminated.to(torch.uint8), terminated.long()):
        torch.testing.assert_close(rltorch.ops.td_target(reward, flags, next_q, 0.9), want)


@requires_ext
def test_td_target_nan_propagates(device):
    reward = torch.zeros(2, device=device)
    terminated = torch.zeros(2, dtype=torch.bool, device=device)
    next_q = torch.tensor([[1.0, float("nan"), 5.0], [1.0, 2.0, 3.0]], device=device)
    y = rltorch.ops.td_target(reward, terminated, next_q, 1.0)
    assert torch.isnan(y[0]) and y[1] == 3.0


@requires_ext
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("T,N", [(0, 4), (1, 1), (7, 3), (33, 65), (16, 65536)])
def test_gae_matches_reference(device, dtype, T, N):
    g = torch.Generator().manual_seed(T * 1000 + N)
    r = torch.randn(T, N, generator=g, dtype=dtype).to(device)
    v = torch.randn(T, N, generator=g, dtype=dtype).to(device)
    nv = torch.randn(T, N, generator=g, dtype=dtype).to(device)
    term = (torch.rand(T, N, generator=g) < 0.1).to(device)
    done = term | (torch.rand(T, N, generator=g) < 0.05).to(device)
    got = OPS.gae(r, v, nv, term, done, 0.99, 0.95)
    want = _reference.gae(r, v, nv, term, done, 0.99, 0.95)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@requires_ext
def test_gae_batch_dims_noncontiguous_and_half(device):
    g = torch.Generator().manual_seed(3)
    base = torch.randn(4, 20, 9, 3, generator=g)  # [F, T, N, X] -> take [T, N, X] views
    r, v, nv = base[0].transpose(1, 2), base[1].transpose(1, 2), base[2].transpose(1, 2)
    term = (base[3] > 1.5).transpose(1, 2)
    done = term | (base[3] < -1.5).transpose(1, 2)
    assert not r.is_contiguous()
    adv, ret = rltorch.ops.gae(r, v, nv, term, done, 0.9, 0.8)
    want = _reference.gae(r, v, nv, term, done, 0.9, 0.8)
    torch.testing.assert_close(adv, want[0])
    torch.testing.assert_close(ret, want[1])
    for dtype in (torch.float16, torch.bfloat16):
        half = (r.to(dtype), v.to(dtype), nv.to(dtype), term, done, 0.9, 0.8)
        adv_h, ret_h = rltorch.ops.gae(*half)
        want_h = _reference.gae(*half)
        assert torch.equal(adv_h, want_h[0]) and torch.equal(ret_h, want_h[1])
        torch.testing.assert_close(adv_h.float(), want[0], rtol=2e-2, atol=5e-2)


@requires_ext
@pytest.mark.parametrize("n", [1, 3, 8])
@pytest.mark.parametrize("T,N", [(0, 2), (1, 1), (9, 5), (40, 33)])
def test_nstep_matches_reference(device, n, T, N):
    g = torch.Generator().manual_seed(n * 7 + T)
    r = torch.randn(T, N, generator=g, dtype=torch.float64).to(device)
    term = (torch.rand(T, N, generator=g) < 0.15).to(device)
    trunc = (torch.rand(T, N, generator=g) < 0.1).to(device)
    got = OPS.nstep_returns(r, term, trunc, n, 0.9)
    want = _reference.nstep_returns(r, term, trunc, n, 0.9)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@requires_ext
def test_nstep_huge_n_means_to_the_end(device):
    # t + n once overflowed int64, so every t >= 1 summed nothing.
    g = torch.Generator().manual_seed(5)
    r = torch.randn(12, 3, generator=g, dtype=torch.float64).to(device)
    term = (torch.rand(12, 3, generator=g) < 0.15).to(device)
    trunc = torch.zeros_like(term)
    for a, b in zip(OPS.nstep_returns(r, term, trunc, 2**63 - 1, 0.9), OPS.nstep_returns(r, term, trunc, 12, 0.9)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@requires_ext
@settings(max_examples=40, deadline=None)
@given(
    T=st.integers(1, 12), N=st.integers(1, 9), n=st.integers(1, 6),
    gamma=st.floats(0.0, 1.0), lmbda=st.floats(0.0, 1.0), seed=st.integers(0, 2**31 - 1),
    p_term=st.floats(0.0, 1.0),
)
def test_scans_property(T, N, n, gamma, lmbda, seed, p_term):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(T, N, generator=g, dtype=torch.float64)
    v = torch.randn(T, N, generator=g, dtype=torch.float64)
    nv = torch.randn(T, N, generator=g, dtype=torch.float64)
    term = torch.rand(T, N, generator=g) < p_term
    trunc = torch.rand(T, N, generator=g) < p_term / 2
    for a, b in zip(rltorch.ops.gae(r, v, nv, term, term | trunc, gamma, lmbda),
                    _reference.gae(r, v, nv, term, term | trunc, gamma, lmbda)):
        torch.testing.assert_close(a, b)
    for a, b in zip(rltorch.ops.nstep_returns(r, term, trunc, n, gamma),
                    _reference.nstep_returns(r, term, trunc, n, gamma)):
        torch.testing.assert_close(a, b)
    # The n-step target built from the op equals the TD target op fed with the same discount.
    ret, disc, idx = rltorch.ops.nstep_returns(r, term, trunc, n, gamma)
    boot = nv.gather(0, idx)
    torch.testing.assert_close(rltorch.ops.td_target(ret, torch.zeros_like(term), boot, disc), ret + disc * boot)


def test_gae_lambda_one_is_monte_carlo_and_zero_is_td0():
    g = torch.Generator().manual_seed(11)
    T, N = 15, 4
    r = torch.randn(T, N, generator=g, dtype=torch.float64)
    v = torch.randn(T, N, generator=g, dtype=torch.float64)
    nv = torch.cat([v[1:], torch.randn(1, N, generator=g, dtype=torch.float64)])
    term = torch.zeros(T, N, dtype=torch.bool)
    term[5, 1] = True
    adv0, _ = rltorch.ops.gae(r, v, nv, term, term, 0.9, 0.0)
    torch.testing.assert_close(adv0, r + 0.9 * nv * (~term) - v)
    _, ret1 = rltorch.ops.gae(r, v, nv, term, term, 0.9, 1.0)
    # lambda = 1: returns are discounted reward-to-go plus the discounted last bootstrap.
    expected = torch.zeros(N, dtype=torch.float64)
    last = nv[-1].clone()
    for t in range(T - 1, -1, -1):
        last = torch.where(term[t], r[t], r[t] + 0.9 * last)
        expected = last
        torch.testing.assert_close(ret1[t], expected)


# ---------------------------------------------------------------- opcheck / compile


def td_samples(device):
    reward, terminated, next_q, online = make_td_inputs(9, 3, torch.float32, device)
    actions = torch.randint(0, 3, (9,), device=device)
    discount = torch.rand(9, device=device)
    return [
        (reward, terminated, next_q, None, None, None, 0.99),
        (reward, terminated, next_q, online, None, discount, 0.99),
        (reward, terminated, next_q, None, actions, None, 0.5),
        (reward[:0], terminated[:0], next_q[:0], None, None, None, 0.99),
    ]


@requires_ext
def test_opcheck(device):
    for args in td_samples(device):
        torch.library.opcheck(torch.ops.rltorch.td_target.default, args)
    g = torch.Generator().manual_seed(0)
    r = torch.randn(8, 5, generator=g).to(device)
    term = (torch.rand(8, 5, generator=g) < 0.2).to(device)
    trunc = (torch.rand(8, 5, generator=g) < 0.2).to(device)
    torch.library.opcheck(torch.ops.rltorch.nstep_returns.default, (r, term, trunc, 3, 0.9))
    torch.library.opcheck(torch.ops.rltorch.gae.default, (r, r * 2, r * 3, term, term | trunc, 0.99, 0.95))


@requires_ext
def test_compile_fullgraph(device):
    torch._dynamo.reset()

    def loss_targets(reward, terminated, next_q, online, values, next_values, done):
        y = rltorch.ops.double_dqn_target(reward, terminated, next_q, online, 0.99)
        adv, ret = rltorch.ops.gae(values, values, next_values, terminated, done, 0.99, 0.95)
        return y * 2, adv + ret

    reward, terminated, next_q, online = make_td_inputs(64, 4, torch.float32, device)
    values = torch.randn(64, device=device)
    args = (reward, terminated, next_q, online, values, values.flip(0), terminated)
    compiled = torch.compile(loss_targets, fullgraph=True, backend="aot_eager")
    for a, b in zip(compiled(*args), loss_targets(*args)):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- bad input


@requires_ext
def test_bad_input_names_the_argument(device):
    reward, terminated, next_q, online = make_td_inputs(8, 2, torch.float32, device)
    td = rltorch.ops.td_target
    with pytest.raises(RuntimeError, match="`terminated` must have the shape"):
        td(reward, terminated[:4], next_q)
    with pytest.raises(RuntimeError, match="`next_q` must have the dtype"):
        td(reward, terminated, next_q.double())
    with pytest.raises(RuntimeError, match="`reward` must be a floating-point"):
        td(reward.long(), terminated, next_q)
    with pytest.raises(RuntimeError, match="`next_action` must hold integer"):
        td(reward, terminated, next_q, next_action=torch.zeros(8, device=device))
    with pytest.raises(RuntimeError, match="`next_q_online` must have the shape"):
        td(reward, terminated, next_q, next_q_online=online[:, :1])
    with pytest.raises(RuntimeError, match="either `next_q_online` or `next_action`"):
        td(
            reward,
            terminated,
            next_q,
            next_q_online=online,
            next_action=torch.zeros(8, dtype=torch.long, device=device),
        )
    with pytest.raises(RuntimeError, match="at least one action"):
        td(reward, terminated, next_q[:, :0])
    with pytest.raises(ValueError, match="`gamma` must lie in"):
        td(reward, terminated, next_q, 1.5)
    with pytest.raises(ValueError, match="`gamma` must lie in"):
        OPS.td_target(reward, terminated, next_q, None, None, None, -0.1)  # the C++ check, below the wrapper
    with pytest.raises(ValueError, match="`lmbda` must lie in"):
        rltorch.ops.gae(reward, reward, reward, terminated, terminated, 0.9, 2.0)
    with pytest.raises(RuntimeError, match="`value` must have the shape"):
        rltorch.ops.gae(reward, reward[:3], reward, terminated, terminated)
    with pytest.raises(RuntimeError, match="scalar"):
        rltorch.ops.gae(reward[0], reward[0], reward[0], terminated[0], terminated[0])
    with pytest.raises(ValueError, match="`n` must be"):
        rltorch.ops.nstep_returns(reward, terminated, terminated, 0)
    if device.type == "cpu":
        with pytest.raises(IndexError, match="`next_action` holds 5"):
            td(reward, terminated, next_q, next_action=torch.full((8,), 5))


@requires_ext
def test_mixed_devices_raise():
    if not torch.cuda.is_available():
        # Without a GPU, a meta tensor stands in for "another device" (it reaches the fake kernel).
        reward, terminated, next_q, _ = make_td_inputs(8, 2, torch.float32, "cpu")
        with pytest.raises(RuntimeError, match="`terminated` is on meta"):
            rltorch.ops.td_target(reward, terminated.to("meta"), next_q)
        return
    reward, terminated, next_q, _ = make_td_inputs(8, 2, torch.float32, "cuda")
    with pytest.raises(RuntimeError, match="`terminated` is on cpu"):
        rltorch.ops.td_target(reward, terminated.cpu(), next_q)
