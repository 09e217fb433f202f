"""StackedAdam: K independent Adam optimisers (each with its own learning rate, epsilon and gradient-norm
bound) over stacked parameters, checked against K separate torch.optim.Adam + clip_grad_norm_ runs."""

import pytest
import torch
from torch import nn

from rltorch.nn.stacked_adam import StackedAdam

SHAPES = [(6, 4), (6,), (3, 6)]


def stacked_params(K, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(K, *shape, generator=g).requires_grad_() for shape in SHAPES]


def random_grads(K, steps, seed=1, scale=None):
    g = torch.Generator().manual_seed(seed)
    scale = torch.ones(K) if scale is None else scale
    return [[torch.randn(K, *shape, generator=g) * scale.view(K, *([1] * len(shape))) for shape in SHAPES]
            for _ in range(steps)]


def run_stacked(params, grads, **kw):
    opt = StackedAdam(params, **kw)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()
    return opt


@pytest.mark.parametrize("fused", [False, True])
def test_matches_k_separate_adam_with_clipping(fused):
    K, steps = 4, 6
    lr = torch.tensor([1e-3, 3e-3, 1e-2, 0.0])
    eps = torch.tensor([1e-8, 1e-5, 1e-3, 1e-8])
    bound = torch.tensor([0.5, 100.0, 2.0, 1.0])
    # Agent 0's gradients are large (always clipped), agent 1's never reach its bound.
    grads = random_grads(K, steps, scale=torch.tensor([10.0, 1.0, 1.0, 3.0]))
    params = stacked_params(K)
    initial = [p.detach().clone() for p in params]
    run_stacked(params, grads, lr=lr, betas=(0.9, 0.99), eps=eps, max_grad_norm=bound)
    for k in range(K):
        own = [nn.Parameter(p[k].clone()) for p in initial]
        opt = torch.optim.Adam(own, lr=float(lr[k]), betas=(0.9, 0.99), eps=float(eps[k]), fused=fused)
        for step_grads in grads:
            for p, g in zip(own, step_grads):
                p.grad = g[k].clone()
            nn.utils.clip_grad_norm_(own, float(bound[k]))
            opt.step()
        for mine, theirs in zip(params, own):
            torch.testing.assert_close(mine.detach()[k], theirs.detach(), rtol=1e-5, atol=1e-7)
    assert torch.equal(params[0].detach()[3], initial[0][3])  # lr 0: never moves


def test_without_clipping_and_with_scalar_settings():
    K = 3
    grads = random_grads(K, 4)
    params = stacked_params(K)
    initial = [p.detach().clone() for p in params]
    opt = run_stacked(params, grads, lr=2e-3, eps=1e-6)
    assert opt.max_grad_norm is None
    for k in range(K):
        own = [nn.Parameter(p[k].clone()) for p in initial]
        ref = torch.optim.Adam(own, lr=2e-3, eps=1e-6)
        for step_grads in grads:
            for p, g in zip(own, step_grads):
                p.grad = g[k].clone()
            ref.step()
        for mine, theirs in zip(params, own):
            torch.testing.assert_close(mine.detach()[k], theirs.detach(), rtol=1e-5, atol=1e-7)


def test_lr_scale_multiplies_every_agents_rate():
    K = 2
    grads = random_grads(K, 3)
    a, b = stacked_params(K), stacked_params(K)
    run_stacked(a, grads, lr=torch.tensor([1e-3, 4e-3]))
    opt = StackedAdam(b, lr=torch.tensor([2e-3, 8e-3]))
    opt.lr_scale.fill_(0.5)
    for step_grads in grads:
        for p, g in zip(b, step_grads):
            p.grad = g.clone()
        opt.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=0)


def test_agents_do_not_share_a_bit():
    K = 4
    grads = random_grads(K, 5)
    params = stacked_params(K)
    run_stacked(params, grads, lr=torch.tensor([1e-3, 2e-3, 3e-3, 4e-3]), max_grad_norm=1.0)
    # Agent 3: other gradients, learning rate, epsilon and bound. Agents 0-2: the same bits.
    other_grads = random_grads(K, 5)
    changed = random_grads(K, 5, seed=9, scale=torch.full((K,), 50.0))
    for step, step_changed in zip(other_grads, changed):
        for g, c in zip(step, step_changed):
            g[3] = c[3]
    other = stacked_params(K)
    run_stacked(other, other_grads, lr=torch.tensor([1e-3, 2e-3, 3e-3, 1.0]), eps=torch.tensor([1e-8] * 3 + [0.1]),
                max_grad_norm=torch.tensor([1.0, 1.0, 1.0, 0.01]))
    for p, q in zip(params, other):
        assert torch.equal(p[:3], q[:3]) and not torch.equal(p[3], q[3])


def test_inactive_agents_keep_everything_and_active_ones_step_as_alone():
    K = 3
    grads = random_grads(K, 4)
    params = stacked_params(K)
    opt = StackedAdam(params, lr=1e-2, max_grad_norm=1.0)
    active = torch.tensor([True, False, True])
    for i, step_grads in enumerate(grads):
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step(active if i == 2 else None)
    assert opt.step_count.tolist() == [4.0, 3.0, 4.0]
    frozen = [p.detach().clone() for p in params]
    # Agent 1 skipped step 2 (parameters, moments and step count untouched): bit for bit an agent 1 that
    # never saw that step's gradient.
    alone = stacked_params(K)
    skipped = [step for i, step in enumerate(grads) if i != 2]
    run_stacked(alone, skipped, lr=1e-2, max_grad_norm=1.0)
    for p, q in zip(frozen, alone):
        assert torch.equal(p[1], q[1])


def test_select_continues_the_selected_agents_exactly():
    K = 4
    grads = random_grads(K, 6)
    full = stacked_params(K)
    opt = StackedAdam(full, lr=torch.tensor([1e-3, 2e-3, 3e-3, 4e-3]), max_grad_norm=torch.tensor([1.0, 2, 3, 4]))
    index = torch.tensor([3, 1])
    for i, step_grads in enumerate(grads):
        if i == 3:
            sub_params = [p.detach().index_select(0, index).requires_grad_() for p in full]
            sub = opt.select(index, sub_params)
        for p, g in zip(full, step_grads):
            p.grad = g.clone()
        opt.step()
        if i >= 3:
            for p, g in zip(sub_params, step_grads):
                p.grad = g.index_select(0, index).clone()
            sub.step()
    for p, q in zip(full, sub_params):
        assert torch.equal(p.detach()[index], q.detach())


def test_state_dict_round_trip_and_rejected_states():
    K = 3
    grads = random_grads(K, 6)
    a = stacked_params(K)
    opt = run_stacked(a, grads[:3], lr=torch.tensor([1e-3, 2e-3, 5e-3]), max_grad_norm=0.7)
    opt.lr_scale.fill_(0.25)
    state = opt.state_dict()
    b = [p.detach().clone().requires_grad_() for p in a]
    restored = StackedAdam(b, max_grad_norm=1.0)
    before = restored.state_dict()
    bad = dict(state, exp_avg=state["exp_avg"][:2])
    with pytest.raises(ValueError, match="exp_avg"):
        restored.load_state_dict(bad)
    with pytest.raises(ValueError, match="lr"):
        restored.load_state_dict(dict(state, lr=torch.tensor([1e-3, -1.0, 1e-3])))
    with pytest.raises(ValueError, match="step"):
        restored.load_state_dict(dict(state, step=torch.zeros(2, dtype=torch.float64)))
    with pytest.raises(ValueError, match="lr"):
        restored.load_state_dict(dict(state, lr=state["lr"].half()))
    with pytest.raises(ValueError, match="max_grad_norm"):
        restored.load_state_dict(dict(state, max_grad_norm=None))
    after = restored.state_dict()
    assert torch.equal(after["lr"], before["lr"]) and torch.equal(after["step"], before["step"])
    restored.load_state_dict(state)
    for opt_, params in ((opt, a), (restored, b)):
        for step_grads in grads[3:]:
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            opt_.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)


def test_bad_arguments():
    params = stacked_params(3)
    with pytest.raises(ValueError, match="params"):
        StackedAdam([])
    with pytest.raises(ValueError, match=r"params\[1\]"):
        StackedAdam([params[0], torch.zeros(4, 6, requires_grad=True)])
    with pytest.raises(ValueError, match=r"params\[0\]"):
        StackedAdam([torch.zeros(3, 2)])
    with pytest.raises(ValueError, match="lr"):
        StackedAdam(params, lr=-1.0)
    with pytest.raises(ValueError, match="lr"):
        StackedAdam(params, lr=torch.ones(4))
    with pytest.raises(ValueError, match="eps"):
        StackedAdam(params, eps=0.0)
    with pytest.raises(ValueError, match="max_grad_norm"):
        StackedAdam(params, max_grad_norm=float("nan"))
    with pytest.raises(ValueError, match="betas"):
        StackedAdam(params, betas=(0.9, 1.0))
    opt = StackedAdam(params)
    with pytest.raises(RuntimeError, match="no gradient"):
        opt.step()
    for p in params:
        p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match="active"):
        opt.step(torch.ones(3))
    assert opt.step_count.tolist() == [0.0, 0.0, 0.0]


def test_a_lone_agent_steps_as_torch_fused_adam_bit_for_bit():
    grads = random_grads(1, 5, scale=torch.tensor([5.0]))
    params = stacked_params(1)
    own = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opt = StackedAdam(params, lr=2e-3, eps=1e-5, max_grad_norm=0.5)
    assert opt.lone
    ref = torch.optim.Adam(own, lr=2e-3, eps=1e-5, fused=True)
    for step_grads in grads:
        for p, q, g in zip(params, own, step_grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        nn.utils.clip_grad_norm_(own, 0.5)
        ref.step()
    for p, q in zip(params, own):
        assert torch.equal(p, q)
    assert opt.step_count.tolist() == [5.0]
    # One agent left of a population is not lone: it keeps the batched update (its bits those it had beside others).
    population = StackedAdam(stacked_params(3), lr=2e-3)
    assert not population.lone and not population.select(torch.tensor([1]), stacked_params(1)).lone
