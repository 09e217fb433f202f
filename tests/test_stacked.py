"""Stacked networks (rltorch.nn.stacked): K agents' MLPs in one set of batched products.

Each agent must compute what its own plain ``mlp`` computes, get the gradient that network would get,
and never see a bit of another agent's parameters or inputs."""

import math

import pytest
import torch
from torch import nn

from rltorch.nn import mlp
from rltorch.nn.stacked import StackedLinear, StackedMLP, stacked_orthogonal_


def generators(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("hidden,activation", [((64, 64), "tanh"), ((5,), "relu"), ((), "tanh")])
def test_each_agent_computes_its_own_mlp_forward_and_backward(hidden, activation, device):
    K, B = 5, 7
    net = StackedMLP(K, 4, hidden, 3, activation=activation, generators=generators(*range(K))).to(device)
    x = torch.randn(K, B, 4, device=device)
    weights = torch.randn(K, B, 3, device=device)
    (net(x) * weights).sum().backward()
    for k in range(K):
        single = net.agent(k)
        assert isinstance(single, nn.Sequential) and not any(p.grad is not None for p in single.parameters())
        out = single(x[k])
        torch.testing.assert_close(out, net(x)[k])
        (out * weights[k]).sum().backward()
        linears = [m for m in single if isinstance(m, nn.Linear)]
        for mine, theirs in zip(net.linears(), linears):
            torch.testing.assert_close(mine.weight.grad[k], theirs.weight.grad)
            torch.testing.assert_close(mine.bias.grad[k], theirs.bias.grad)


def test_no_bit_of_one_agent_reaches_another():
    K, B = 4, 9
    net = StackedMLP(K, 4, (16, 16), 2, activation="tanh", generators=generators(0, 1, 2, 3))
    x = torch.randn(K, B, 4)
    out = net(x)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    # Agent 3 gets other parameters and inputs: agents 0-2 keep every bit, forward and backward.
    other = StackedMLP(K, 4, (16, 16), 2, activation="tanh", generators=generators(0, 1, 2, 99))
    x2 = x.clone()
    x2[3] = torch.randn(B, 4) * 100
    out2 = other(x2)
    out2.square().sum().backward()
    assert torch.equal(out2[:3], out[:3]) and not torch.equal(out2[3], out[3])
    for g, p in zip(grads, other.parameters()):
        assert torch.equal(p.grad[:3], g[:3])


def test_a_subset_of_agents_computes_the_same_bits():
    net = StackedMLP(6, 4, (32, 32), 2, activation="tanh")
    x = torch.randn(6, 11, 4)
    index = torch.tensor([5, 1, 3])
    sub = net.select(index)
    assert sub.num_stacked == 3 and all(m.num_stacked == 3 for m in sub.linears())
    assert torch.equal(sub(x[index]), net(x)[index])
    # The copy is independent of the original.
    with torch.no_grad():
        sub[0].weight.add_(1.0)
    assert torch.equal(net.select(index)(x[index]), net(x)[index])


@pytest.mark.parametrize("hidden,activation,out", [((64, 64), "tanh", 2), ((7,), "relu", 1), ((), "tanh", 3),
                                                    ((16, 8), "gelu", 1)])
@pytest.mark.parametrize("rows", [1, 2, 7, 100])
def test_inference_forward_is_close_and_no_agent_depends_on_the_others(hidden, activation, out, rows):
    net = StackedMLP(5, 4, hidden, out, activation=activation, generators=generators(*range(5)))
    x = torch.randn(5, rows, 4)
    given = x.clone()
    with torch.no_grad():
        everyone = net.inference_forward(torch.arange(5))(x)
        torch.testing.assert_close(everyone, net(x), rtol=1e-5, atol=1e-6)
        for index in (torch.tensor([3]), torch.tensor([4, 1]), torch.tensor([0, 2, 3])):
            part = net.inference_forward(index)(x[index])
            assert part.shape == (index.numel(), rows, out)
            assert torch.equal(part, everyone[index])  # bit for bit, whoever plays beside it
        assert torch.equal(x, given)  # activations run in place on the pass's own tensors, never the input


def test_inference_forward_of_a_lone_network_is_its_own_forward():
    net = StackedMLP(1, 4, (8,), 2)
    x = torch.randn(1, 5, 4)
    with torch.no_grad():
        assert torch.equal(net.inference_forward(torch.tensor([0]))(x), net(x))


def test_init_per_agent_is_nn_linear_init_from_that_agents_generator():
    torch.manual_seed(7)
    reference = mlp(4, (8, 6), 3)
    net = StackedMLP(3, 4, (8, 6), 3, generators=generators(1, 7, 2))
    for mine, theirs in zip(net.linears(), [m for m in reference if isinstance(m, nn.Linear)]):
        assert torch.equal(mine.weight[1], theirs.weight) and torch.equal(mine.bias[1], theirs.bias)
    # Another seed for agent 2 changes agent 2 only.
    other = StackedMLP(3, 4, (8, 6), 3, generators=generators(1, 7, 3))
    for a, b in zip(net.parameters(), other.parameters()):
        assert torch.equal(a[:2], b[:2]) and not torch.equal(a[2], b[2])


def test_orthogonal_init_per_agent():
    net = StackedMLP(3, 4, (8, 8), 2, activation="tanh")
    stacked_orthogonal_(net, head_gain=0.01, generators=generators(4, 5, 6))
    torch.manual_seed(0)
    reference = mlp(4, (8, 8), 2, activation="tanh")
    g = torch.Generator().manual_seed(5)
    ref_linears = [m for m in reference if isinstance(m, nn.Linear)]
    for layer, gain in zip(ref_linears, (math.sqrt(2), math.sqrt(2), 0.01)):
        nn.init.orthogonal_(layer.weight, gain, generator=g)
        nn.init.zeros_(layer.bias)
    for mine, theirs in zip(net.linears(), ref_linears):
        assert torch.equal(mine.weight[1], theirs.weight) and not mine.bias.any()
    w = net[2].weight[0]  # square hidden layer: W W^T = gain^2 I
    torch.testing.assert_close(w @ w.T, 2 * torch.eye(8), atol=1e-5, rtol=0)


def test_load_agent_round_trip():
    net = StackedMLP(3, 4, (8,), 2, activation="tanh")
    single = mlp(4, (8,), 2, activation="tanh")
    before = [p.detach().clone() for p in net.parameters()]
    net.load_agent(2, single)
    x = torch.randn(5, 4)
    assert torch.equal(net.agent(2)(x), single(x))
    for p, old in zip(net.parameters(), before):
        assert torch.equal(p[:2], old[:2])


def test_bad_arguments_name_themselves_and_change_nothing():
    with pytest.raises(ValueError, match="num_stacked"):
        StackedMLP(0, 4, (8,), 2)
    with pytest.raises(ValueError, match="hidden_sizes"):
        StackedMLP(2, 4, (0,), 2)
    with pytest.raises(ValueError, match="activation"):
        StackedMLP(2, 4, (8,), 2, activation="swish")
    with pytest.raises(ValueError, match="generators"):
        StackedMLP(2, 4, (8,), 2, generators=generators(1))
    with pytest.raises(ValueError, match="generators"):
        StackedLinear(2, 4, 3, generators=[1, 2])
    net = StackedMLP(2, 4, (8,), 2)
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(ValueError, match=r"\[2, batch, 4\]"):
        net(torch.zeros(3, 5, 4))
    with pytest.raises(ValueError, match=r"\[2, batch, 4\]"):
        net(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="agent index"):
        net.agent(2)
    with pytest.raises(ValueError, match="index"):
        net.select(torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="at least one"):
        net.select(torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="inference_forward.*integer"):
        net.inference_forward(torch.tensor([0.0]))
    with pytest.raises(ValueError, match="inference_forward.*index"):
        net.inference_forward(torch.tensor([2]))
    with pytest.raises(ValueError, match="inference_forward.*at least one"):
        net.inference_forward(torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="module"):
        net.load_agent(0, mlp(4, (9,), 2))
    for p, old in zip(net.parameters(), before):
        assert torch.equal(p, old)
