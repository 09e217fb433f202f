"""StackedActorCritic: each agent row computes what its own single-agent ActorCritic computes."""

import pytest
import torch

from rltorch.agents.actor_critic import RunningObsNorm
from rltorch.agents.stacked_actor_critic import StackedActorCritic, StackedDeterministicPolicy, StackedObsNorm


def generators(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def make(K=3, continuous=False, **kw):
    net = StackedActorCritic(K, (3,), 2 if continuous else 4, continuous, hidden_sizes=(8, 8),
                             generators=generators(*range(K)), **kw)
    with torch.no_grad():  # away from the near-uniform initial policy
        net.actor[-1].weight.normal_(generator=torch.Generator().manual_seed(9))
    return net


@pytest.mark.parametrize("continuous", [False, True])
def test_each_row_is_its_single_agent_network(continuous):
    kw = dict(init_log_std=-0.5, action_low=torch.tensor([-1.0, -2.0]), action_high=torch.tensor([1.0, 2.0])) \
        if continuous else {}
    net = make(continuous=continuous, normalize_obs=True, **kw)
    net.obs_norm.update(torch.randn(3, 20, 3) * 4 + 1)
    obs = torch.randn(3, 9, 3)
    noise_draws = [torch.Generator().manual_seed(100 + k) for k in range(3)]
    single_draws = [torch.Generator().manual_seed(100 + k) for k in range(3)]
    noise = torch.stack([(torch.randn if continuous else torch.rand)(9, net.action_dim, generator=g)
                         for g in noise_draws])
    if not continuous:
        noise = noise.clamp(min=1e-20).log().neg().log().neg()  # Gumbel, as ActorCritic.sample computes it
    action, logprob = net.sample(obs, noise)
    logp2, entropy, value = net.evaluate_actions(obs, action)
    greedy = net.deterministic(obs)
    for k in range(3):
        single = net.agent(k)
        a, lp = single.sample(obs[k], single_draws[k])
        torch.testing.assert_close(a, action[k])
        torch.testing.assert_close(lp, logprob[k])
        lp2, ent, v = single.evaluate_actions(obs[k], action[k])
        torch.testing.assert_close(lp2, logp2[k])
        torch.testing.assert_close(ent, entropy[k])
        torch.testing.assert_close(v, value[k])
        torch.testing.assert_close(single.deterministic(obs[k]), greedy[k])
        torch.testing.assert_close(single.value(obs[k]), net.value(obs)[k])


def test_observation_statistics_per_agent():
    stacked = StackedObsNorm(3, (2,), enabled=True)
    singles = [RunningObsNorm((2,), enabled=True) for _ in range(3)]
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        batch = torch.randn(3, 7, 2, generator=g) * torch.tensor([1.0, 5.0, 0.1]).view(3, 1, 1)
        stacked.update(batch)
        for k, single in enumerate(singles):
            single.update(batch[k])
    obs = torch.randn(3, 4, 2, generator=g)
    for k, single in enumerate(singles):
        torch.testing.assert_close(stacked.mean[k], single.mean)
        torch.testing.assert_close(stacked.var[k], single.var)
        torch.testing.assert_close(stacked(obs)[k], single(obs[k]))


def test_init_is_per_agent_and_subsets_copy_rows():
    a = StackedActorCritic(3, (3,), 2, False, generators=generators(0, 1, 2))
    b = StackedActorCritic(3, (3,), 2, False, generators=generators(0, 1, 5))
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p[:2], q[:2])
        assert name.endswith("bias") or not torch.equal(p[2], q[2])
    sub = a.select(torch.tensor([2, 0]))
    obs = torch.randn(3, 5, 3)
    assert torch.equal(sub.value(obs[[2, 0]]), a.value(obs)[[2, 0]])
    b.load_rows(torch.tensor([2, 0]), sub)
    assert torch.equal(b.value(obs)[[0, 2]], a.value(obs)[[0, 2]])
    with pytest.raises(ValueError, match="rows"):
        b.load_rows(torch.tensor([1]), sub)
    with pytest.raises(ValueError, match="`k`"):
        a.agent(3)


def test_deterministic_policy_over_flat_rows():
    net = make(K=2)
    obs = torch.randn(2 * 5, 3)
    actions = StackedDeterministicPolicy(net)(obs)
    assert actions.shape == (10,)
    assert torch.equal(actions[5:], net.agent(1).deterministic(obs[5:]))


@pytest.mark.parametrize("continuous,normalize", [(False, False), (False, True), (True, False), (True, True)])
def test_deterministic_subset_acts_as_the_selected_agents_whoever_is_beside_them(continuous, normalize):
    net = make(K=4, continuous=continuous, normalize_obs=normalize,
               **({"action_low": -0.5, "action_high": 0.5} if continuous else {}))
    if normalize:
        net.obs_norm.update(torch.randn(4, 9, 3) * torch.tensor([1.0, 3.0, 0.2, 7.0]).view(4, 1, 1))
    obs = torch.randn(4, 6, 3, dtype=torch.float64) * 2
    for index in (torch.tensor([3, 1]), torch.tensor([2]), torch.arange(4)):
        act = net.deterministic_subset(index)
        with torch.no_grad():
            got, want = act(obs[index]), net.select(index).deterministic(obs[index])
            if continuous:
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
            else:  # the logits round alike up to the last bit: no tie here is that close
                assert torch.equal(got, want)
            assert torch.equal(got, net.deterministic_subset(torch.arange(4))(obs)[index])
