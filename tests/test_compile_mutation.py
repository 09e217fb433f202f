"""Reading mutable state between two in-place rltorch ops inside one compiled
graph sees the value at that point, as in eager (#8.3, docs/compile.md)."""

import pytest
import torch

from rltorch import _ext
from rltorch.ops._dispatch import snapshot
from rltorch.ops.sumtree import SumTree

BACKENDS = ["aot_eager", "inductor"]


def _reads_between_updates(tree: SumTree):
    tree.update(torch.tensor([0]), torch.tensor([1.0]))
    first_total, first_min = tree.total(), tree.min()
    state = tree.state_dict()["tree"]
    tree.update(torch.tensor([1]), torch.tensor([5.0]))
    second_total = tree.total()
    tree.update(torch.tensor([0, 2]), torch.tensor([0.5, 0.25]))
    return first_total, first_min, state, second_total


# The fallback's validation syncs with the host (a graph break), so fullgraph needs the kernels.
@pytest.mark.skipif(not _ext.HAS_EXT, reason="compiled extension not loaded")
@pytest.mark.parametrize("backend", BACKENDS)
def test_sumtree_reads_between_updates(backend):
    torch._dynamo.reset()
    eager_tree, compiled_tree = SumTree(4), SumTree(4)
    want = _reads_between_updates(eager_tree)
    got = torch.compile(_reads_between_updates, backend=backend, fullgraph=True)(compiled_tree)
    assert [float(t) for t in want[:2]] == [1.0, 1.0] and float(want[3]) == 6.0
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    assert torch.equal(compiled_tree.tree, eager_tree.tree)


_lib = torch.library.Library("rltorch_test_mutation", "DEF")
_lib.define("set_(Tensor(a!) x, Tensor v) -> ()")


@torch.library.impl(_lib, "set_", "CPU")
def _set(x, v):
    x.copy_(v)


torch.library.register_fake("rltorch_test_mutation::set_")(lambda x, v: None)


@pytest.mark.parametrize("backend", BACKENDS)
def test_snapshot_formulation_on_a_ten_line_custom_op(backend):
    # The upstream repro of docs/compile.md: with `x.clone()` in place of
    # snapshot, inductor returns 6 on torch 2.15. The snapshot is what any
    # in-place rltorch op's state reads (env counters included) should use.
    def f(x):
        torch.ops.rltorch_test_mutation.set_(x, torch.ones(()))
        a = snapshot(x)
        torch.ops.rltorch_test_mutation.set_(x, torch.full((), 6.0))
        return a

    torch._dynamo.reset()
    x = torch.zeros(())
    assert float(torch.compile(f, backend=backend, fullgraph=True)(x)) == 1.0
    assert float(x) == 6.0


def test_snapshot_is_a_copy_in_eager_and_passes_opcheck():
    x = torch.arange(4.0)
    y = snapshot(x)
    x.add_(1)
    assert torch.equal(y, torch.arange(4.0))
    torch.library.opcheck(torch.ops.rltorch.snapshot.default, (torch.arange(4.0),))


@pytest.mark.parametrize("backend", BACKENDS)
def test_env_state_read_between_two_steps(backend):
    # The second case: env counters read between two steps of one compiled
    # graph. state_dict() reads through snapshot, so it sees the first step only.
    from rltorch.envs import CartPoleVecEnv

    env = CartPoleVecEnv(4, seed=0)
    env.reset(seed=0)
    actions = torch.zeros(4, dtype=torch.int64)

    def two_steps(actions):
        env.step(actions)
        state = env.state_dict()
        env.step(actions)
        return state["steps"], state["state"]

    steps, state = torch.compile(two_steps, backend=backend, fullgraph=True)(actions)
    assert steps.tolist() == [1, 1, 1, 1]
    assert env.steps.tolist() == [2, 2, 2, 2]
    assert not torch.equal(state, env.state)
