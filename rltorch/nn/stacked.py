"""Networks of K independent agents, stacked along a leading dimension.

Every parameter holds all K agents' copies (``weight [K, out, in]``, ``bias
[K, out]``, nn.Linear's layout per agent), and a layer maps ``[K, B, in]`` to
``[K, B, out]`` with one ``torch.baddbmm``: K agents cost one kernel call per
layer instead of K. Agent k's rows only ever meet agent k's parameters, and
on the CPU a batched product gives each agent the same bits whatever the other
agents hold or how many there are (``tests/test_stacked.py`` checks both), so
agents stacked together train exactly as if apart.

The alternative, ``torch.func.functional_call`` under ``vmap`` over stacked
state dicts, computes the same products; ``rltorch bench --only agents``
("stacked_mlp_update") times both on PPO's 64x64 tanh networks at K=64. Measured
here (2 shared cores, one thread, forward and backward of both networks, same
run): baddbmm 1.24x faster at 64 rows per agent, 1.11x at 128, even at 1024, so
it is what rltorch uses (no vmap tracing per call either).

A lone network (K = 1, not one agent left of a population) runs ``F.linear`` on
its one matrix instead: the same numbers a plain ``nn.Linear`` gives, at its
speed.

Initialisation is per agent, from per-agent ``torch.Generator`` objects, so
agent k's initial weights depend on its own generator only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rltorch.nn.mlp import ACTIVATIONS, mlp

__all__ = ["StackedLinear", "StackedMLP", "stacked_orthogonal_"]


def _positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: `{name}` must be an integer >= 1, got {value!r}")
    return int(value)


def _check_generators(owner: str, generators, count: int) -> list:
    if generators is None:
        return [None] * count
    generators = list(generators)
    if len(generators) != count or not all(isinstance(g, torch.Generator) for g in generators):
        raise ValueError(f"{owner}: `generators` must be {count} torch.Generator objects (one per agent), "
                         f"got {len(generators)} items")
    return generators


def _check_index(owner: str, index, count: int) -> Tensor:
    index = torch.as_tensor(index)
    if index.dtype not in (torch.int32, torch.int64) or index.dim() != 1:
        raise ValueError(f"{owner}: `index` must be a 1-D integer tensor of agent indices, got {index.dtype} "
                         f"of shape {list(index.shape)}")
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= count):
        raise ValueError(f"{owner}: `index` holds agents outside [0, {count}): {index.tolist()}")
    return index.long()


#: Activations an inference pass may apply in place (on its own intermediate tensors).
_IN_PLACE: dict[str, Callable[[Tensor], Tensor]] = {"tanh": torch.tanh_, "relu": torch.relu_}


class StackedLinear(nn.Module):
    """K independent ``nn.Linear(in_features, out_features)`` layers: ``y[k] = x[k] @ weight[k].T + bias[k]``.

    Args:
        num_stacked: K, the number of agents (>= 1).
        in_features, out_features: each agent's layer size.
        generators: K ``torch.Generator`` objects (CPU ones for CPU parameters) to initialise agent k with
            ``generators[k]`` as ``nn.Linear`` would; None uses torch's global generator.
    """

    def __init__(self, num_stacked: int, in_features: int, out_features: int, *, generators=None,
                 device=None, dtype=None):
        super().__init__()
        self.num_stacked = _positive_int("StackedLinear", "num_stacked", num_stacked)
        self.in_features = _positive_int("StackedLinear", "in_features", in_features)
        self.out_features = _positive_int("StackedLinear", "out_features", out_features)
        kw = {"device": device, "dtype": dtype}
        #: One network, not a population's: plain ``F.linear`` (addmm), about 10% faster than a batched product
        #: of one. A population's rows keep the batched product even when a subset of one is left, so an
        #: agent's bits never depend on how many others train beside it.
        self.lone = self.num_stacked == 1
        self._views_of: tuple | None = None  # the parameter storage the cached lone views look at
        self.weight = nn.Parameter(torch.empty(self.num_stacked, self.out_features, self.in_features, **kw))
        self.bias = nn.Parameter(torch.empty(self.num_stacked, self.out_features, **kw))
        self.reset_parameters(generators)

    def reset_parameters(self, generators=None) -> None:
        """nn.Linear's initialisation (Kaiming-uniform weights, uniform biases within 1/sqrt(in)), agent by
        agent, agent k drawing from ``generators[k]``."""
        generators = _check_generators("StackedLinear.reset_parameters", generators, self.num_stacked)
        if self.weight.is_meta:  # nothing to draw (select() and the actor-critic build on meta, then fill)
            return
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            for k, generator in enumerate(generators):
                nn.init.kaiming_uniform_(self.weight[k], a=math.sqrt(5), generator=generator)
                nn.init.uniform_(self.bias[k], -bound, bound, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        if self.lone:  # [1, B, in], or [B, in] inside a lone StackedMLP
            out = self.linear(x.squeeze(0) if x.dim() == 3 else x)
            return out.unsqueeze(0) if x.dim() == 3 else out
        bias, weight = self.bias.unsqueeze(1), self.weight.transpose(1, 2)
        if x.shape[0] == 1 and self.out_features == 1:
            # One matrix times a vector goes to a matrix-vector kernel whose sums round differently from the
            # batched product's: computed as a batch of two (the copy's result dropped, its gradient zero), one
            # agent left alone gets the bits it gets beside others.
            return torch.baddbmm(bias.expand(2, -1, -1), x.expand(2, -1, -1), weight.expand(2, -1, -1))[:1]
        return torch.baddbmm(bias, x, weight)

    def linear(self, x: Tensor) -> Tensor:
        """A lone layer on ``[B, in]`` rows: ``F.linear`` on its one weight matrix. Without autograd (acting,
        evaluating) the matrix views are made once per parameter tensor, not per call."""
        if torch.is_grad_enabled():
            return F.linear(x, self.weight.squeeze(0), self.bias.squeeze(0))
        key = (self.weight.data_ptr(), self.bias.data_ptr())
        if self._views_of != key:
            self._views = (self.weight.detach().squeeze(0), self.bias.detach().squeeze(0))
            self._views_of = key
        return F.linear(x, *self._views)

    def extra_repr(self) -> str:
        return f"num_stacked={self.num_stacked}, in_features={self.in_features}, out_features={self.out_features}"


class StackedMLP(nn.Sequential):
    """K independent MLPs of the layout :func:`rltorch.nn.mlp` builds (``Linear -> activation`` per hidden
    size, then a linear head), evaluated together: ``[K, B, in_features] -> [K, B, out_features]``.

    The layers keep ``mlp``'s positions, so :meth:`agent` copies agent k into a plain ``mlp`` (for export
    or a single-agent run) and :meth:`load_agent` copies one back.
    """

    def __init__(self, num_stacked: int, in_features: int, hidden_sizes: Sequence[int], out_features: int, *,
                 activation: str = "relu", generators=None, device=None, dtype=None):
        num_stacked = _positive_int("StackedMLP", "num_stacked", num_stacked)
        in_features = _positive_int("StackedMLP", "in_features", in_features)
        out_features = _positive_int("StackedMLP", "out_features", out_features)
        sizes = [_positive_int("StackedMLP", "hidden_sizes", h) for h in hidden_sizes]
        if activation not in ACTIVATIONS:
            raise ValueError(f"StackedMLP: `activation` must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if generators is not None:
            generators = _check_generators("StackedMLP", generators, num_stacked)
        layers: list[nn.Module] = []
        width = in_features
        for size in [*sizes, out_features]:
            # Layer by layer, each agent's generator advances as one nn.Linear stack's global RNG would.
            layers.append(StackedLinear(num_stacked, width, size, generators=generators, device=device, dtype=dtype))
            layers.append(ACTIVATIONS[activation]())
            width = size
        super().__init__(*layers[:-1])
        self.num_stacked = num_stacked
        self.in_features, self.hidden_sizes, self.out_features = in_features, tuple(sizes), out_features
        self.activation = activation

    def linears(self) -> list[StackedLinear]:
        return [m for m in self if isinstance(m, StackedLinear)]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[0] != self.num_stacked or x.shape[2] != self.in_features:
            raise ValueError(f"StackedMLP: input must have shape [{self.num_stacked}, batch, {self.in_features}], "
                             f"got {list(x.shape)}")
        if self[0].lone:  # one network: 2-D through every layer, the layers' own linear maps called directly
            h = x.squeeze(0)
            for layer in self:
                h = layer.linear(h) if isinstance(layer, StackedLinear) else layer(h)
            return h.unsqueeze(0)
        return super().forward(x)

    def agent(self, k: int) -> nn.Sequential:
        """A detached copy of agent ``k`` as a plain :func:`rltorch.nn.mlp` on the same device."""
        k = self._agent_index(k)
        single = mlp(self.in_features, self.hidden_sizes, self.out_features, activation=self.activation)
        first = self[0].weight
        single = single.to(device=first.device, dtype=first.dtype)
        with torch.no_grad():
            for mine, theirs in zip(self.linears(), (m for m in single if isinstance(m, nn.Linear))):
                theirs.weight.copy_(mine.weight[k])
                theirs.bias.copy_(mine.bias[k])
        return single

    def load_agent(self, k: int, module: nn.Sequential) -> None:
        """Copies a plain ``mlp`` of this layout into agent ``k`` (the others are untouched)."""
        k = self._agent_index(k)
        theirs = [m for m in module if isinstance(m, nn.Linear)] if isinstance(module, nn.Sequential) else []
        mine = self.linears()
        if len(theirs) != len(mine) or any(t.weight.shape != m.weight.shape[1:] for t, m in zip(theirs, mine)):
            raise ValueError(f"StackedMLP.load_agent: `module` must be an mlp({self.in_features}, "
                             f"{list(self.hidden_sizes)}, {self.out_features})")
        with torch.no_grad():
            for m, t in zip(mine, theirs):
                m.weight[k].copy_(t.weight)
                m.bias[k].copy_(t.bias)

    def select(self, index) -> StackedMLP:
        """A new StackedMLP holding copies of the agents in ``index`` (in that order)."""
        index = _check_index("StackedMLP.select", index, self.num_stacked)
        if index.numel() == 0:
            raise ValueError("StackedMLP.select: `index` must name at least one agent")
        # Built on the meta device (no memory, no initialisation draws), then given the selected rows.
        out = StackedMLP(index.numel(), self.in_features, self.hidden_sizes, self.out_features,
                         activation=self.activation, device="meta")
        index = index.to(self[0].weight.device)
        for mine, theirs in zip(self.linears(), out.linears()):
            theirs.weight = nn.Parameter(mine.weight.detach().index_select(0, index))
            theirs.bias = nn.Parameter(mine.bias.detach().index_select(0, index))
            theirs.lone = mine.lone
        return out

    def inference_forward(self, index) -> Callable[[Tensor], Tensor]:
        """The forward pass of the agents in ``index`` alone, ``[len(index), B, in] -> [len(index), B, out]``,
        for use without autograd, from copies of their parameters taken now (no modules are built: an
        evaluation asks for one each time agents leave it), laid out for speed (it then runs hundreds of
        steps on the same weights): the hidden layers' transposed weights copied contiguous, the head computed as
        ``weight @ h.T`` (two outputs, or one, are a poor shape for a batched product the other way round:
        4x faster at 100 rows here), activations in place; 10-25% faster in all at 100 rows per agent. Its
        sums can round differently from :meth:`forward`'s in the last bit (a greedy action can then differ
        where two logits tie within an ulp), but an agent's result never depends on which other agents
        ``index`` names or how many: one agent alone runs as a batch of two, like a lone row in
        :meth:`StackedLinear.forward`. A lone network (K = 1) runs its own linear maps, as :meth:`forward` does."""
        index = _check_index("StackedMLP.inference_forward", index, self.num_stacked)
        if index.numel() == 0:
            raise ValueError("StackedMLP.inference_forward: `index` must name at least one agent")
        if self[0].lone:
            return self.select(index).forward
        index = index.to(self[0].weight.device)
        alone = index.numel() == 1
        if alone:  # a batch of two, the copy's result dropped: no matrix-product routing special to one matrix
            index = index.repeat(2)
        in_place = _IN_PLACE.get(self.activation)
        *hidden, head = self.linears()
        steps = []
        for linear in hidden:
            steps.append((linear.bias.detach().index_select(0, index).unsqueeze(1),
                          linear.weight.detach().index_select(0, index).transpose(1, 2).contiguous()))
            steps.append(in_place or ACTIVATIONS[self.activation]())
        head_weight = head.weight.detach().index_select(0, index)
        head_bias = head.bias.detach().index_select(0, index).unsqueeze(2)

        def forward(x: Tensor) -> Tensor:
            if alone:
                x = x.expand(2, -1, -1)
            for step in steps:
                x = torch.baddbmm(step[0], x, step[1]) if isinstance(step, tuple) else step(x)
            out = torch.baddbmm(head_bias, head_weight, x.transpose(1, 2)).transpose(1, 2)
            return out[:1] if alone else out

        return forward

    def _agent_index(self, k) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.num_stacked:
            raise ValueError(f"StackedMLP: agent index must be an integer in [0, {self.num_stacked}), got {k!r}")
        return k


def stacked_orthogonal_(network: StackedMLP, head_gain: float, hidden_gain: float = math.sqrt(2),
                        generators=None) -> StackedMLP:
    """Orthogonal weights (``hidden_gain`` for the hidden layers, ``head_gain`` for the last) and zero biases,
    agent k drawing from ``generators[k]``: the initialisation PPO implementations agree on, layer by layer
    in the order a single network's initialisation would draw them."""
    generators = _check_generators("stacked_orthogonal_", generators, network.num_stacked)
    linears = network.linears()
    with torch.no_grad():
        for layer in linears:
            gain = head_gain if layer is linears[-1] else hidden_gain
            for k, generator in enumerate(generators):
                nn.init.orthogonal_(layer.weight[k], gain, generator=generator)
            layer.bias.zero_()
    return network
