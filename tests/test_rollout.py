"""The on-policy RolloutBuffer: storage layout, GAE over the block, and its bad-input promises."""

import pytest
import torch

from rltorch import _reference
from rltorch.replay import RolloutBuffer


def random_step(g, n, obs_dim=3, p_term=0.2, p_trunc=0.1):
    return dict(
        obs=torch.randn(n, obs_dim, generator=g), action=torch.randint(0, 4, (n,), generator=g),
        logprob=torch.randn(n, generator=g), reward=torch.randn(n, generator=g),
        terminated=torch.rand(n, generator=g) < p_term, truncated=torch.rand(n, generator=g) < p_trunc,
        next_obs=torch.randn(n, obs_dim, generator=g),
    )


def filled(T=6, N=5, seed=0, valid=False):
    g = torch.Generator().manual_seed(seed)
    buf = RolloutBuffer(T, N, (3,))
    steps = []
    for _ in range(T):
        step = random_step(g, N)
        if valid:
            step["valid"] = torch.rand(N, generator=g) < 0.8
        buf.add(**step)
        steps.append(step)
    return buf, steps


def test_stores_time_major_rows_and_flattens_to_views():
    buf, steps = filled(valid=True)
    assert buf.full
    for t, step in enumerate(steps):
        assert torch.equal(buf.obs[t], step["obs"]) and torch.equal(buf.next_obs[t], step["next_obs"])
        assert torch.equal(buf.action[t], step["action"]) and torch.equal(buf.logprob[t], step["logprob"])
        assert torch.equal(buf.reward[t], step["reward"]) and torch.equal(buf.terminated[t], step["terminated"])
        assert torch.equal(buf.done[t], step["terminated"] | step["truncated"])
        assert torch.equal(buf.valid[t], step["valid"])
    flat = buf.flatten()
    assert flat.obs.shape == (30, 3) and flat.obs.data_ptr() == buf.obs.data_ptr()
    assert torch.equal(flat.action.view(6, 5), buf.action)
    buf.reset()
    assert buf.step == 0 and not buf.full


def test_valid_defaults_to_every_row_after_reuse():
    buf, _ = filled(valid=True)
    buf.reset()
    g = torch.Generator().manual_seed(1)
    for _ in range(buf.num_steps):
        buf.add(**random_step(g, buf.num_envs))
    assert bool(buf.valid.all())


def test_advantages_are_gae_over_the_block():
    buf, _ = filled(T=7, N=4)
    g = torch.Generator().manual_seed(5)
    value, next_value = torch.randn(7, 4, generator=g), torch.randn(7, 4, generator=g)
    buf.compute_advantages(value, next_value, 0.9, 0.8)
    # By hand: terminated steps do not bootstrap, done (terminated or truncated) steps end the lambda chain.
    expected = torch.zeros(7, 4)
    for n in range(4):
        carry = 0.0
        for t in reversed(range(7)):
            bootstrap = 0.0 if buf.terminated[t, n] else 0.9 * next_value[t, n].item()
            delta = buf.reward[t, n].item() + bootstrap - value[t, n].item()
            carry = delta if buf.done[t, n] else delta + 0.9 * 0.8 * carry
            expected[t, n] = carry
    torch.testing.assert_close(buf.advantage, expected)
    torch.testing.assert_close(buf.returns, expected + value)
    reference = _reference.gae(buf.reward, value, next_value, buf.terminated, buf.done, 0.9, 0.8)
    torch.testing.assert_close(buf.advantage, reference[0])


def test_bad_input_is_rejected_naming_the_argument_before_any_write():
    with pytest.raises(ValueError, match="num_steps"):
        RolloutBuffer(0, 4)
    with pytest.raises(ValueError, match="num_envs"):
        RolloutBuffer(4, True)
    buf = RolloutBuffer(2, 3, (2,))
    g = torch.Generator().manual_seed(0)
    good = random_step(g, 3, obs_dim=2)
    for name, bad in (("obs", torch.zeros(3, 5)), ("action", torch.zeros(4, dtype=torch.long)),
                      ("reward", torch.zeros(2)), ("next_obs", torch.zeros(3)), ("truncated", torch.zeros(3, 1))):
        with pytest.raises(ValueError, match=f"`{name}`"):
            buf.add(**{**good, name: bad})
    with pytest.raises(TypeError, match="`logprob`"):
        buf.add(**{**good, "logprob": [0.0, 0.0, 0.0]})
    with pytest.raises(ValueError, match="`valid`"):
        buf.add(**good, valid=torch.ones(2, dtype=torch.bool))
    assert buf.step == 0 and not bool(buf.obs.any())
    buf.add(**good)
    with pytest.raises(RuntimeError, match="holds 1 of 2 steps"):
        buf.compute_advantages(torch.zeros(2, 3), torch.zeros(2, 3), 0.99, 0.95)
    buf.add(**good)
    with pytest.raises(RuntimeError, match="full"):
        buf.add(**good)
    with pytest.raises(ValueError, match="`next_value`"):
        buf.compute_advantages(torch.zeros(2, 3), torch.zeros(3, 2), 0.99, 0.95)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_buffer_matches_cpu():
    cpu, steps = filled()
    gpu = RolloutBuffer(6, 5, (3,), device="cuda")
    for step in steps:
        gpu.add(**{k: v.cuda() for k, v in step.items()})
    g = torch.Generator().manual_seed(2)
    value, next_value = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    cpu.compute_advantages(value, next_value, 0.99, 0.95)
    gpu.compute_advantages(value.cuda(), next_value.cuda(), 0.99, 0.95)
    torch.testing.assert_close(gpu.advantage.cpu(), cpu.advantage)
