"""StackedQNetwork: each agent row computes its own QNetwork's Q values, initialised from its own generator."""

import pytest
import torch

from rltorch.agents.networks import QNetwork
from rltorch.agents.stacked_q import StackedQNetwork


@pytest.mark.parametrize("dueling", [False, True])
def test_each_row_is_its_q_network(dueling):
    generators = [torch.Generator().manual_seed(s) for s in (3, 4, 5)]
    net = StackedQNetwork(3, 4, 2, (16, 8), dueling=dueling, generators=generators)
    obs = torch.randn(3, 7, 4)
    q = net(obs)
    assert q.shape == (3, 7, 2)
    for k in range(3):
        torch.testing.assert_close(net.agent(k)(obs[k]), q[k])
    # Agent k's weights are those a QNetwork built under torch.manual_seed(seed_k) draws.
    torch.manual_seed(4)
    reference = QNetwork(4, 2, (16, 8), dueling=dueling)
    for mine, theirs in zip(net.agent(1).parameters(), reference.parameters()):
        assert torch.equal(mine, theirs)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_actions"):
        StackedQNetwork(2, 4, 0)
    with pytest.raises(ValueError, match="`k`"):
        StackedQNetwork(2, 4, 2).agent(2)
