"""Greedy evaluation of K agents on one env: each agent's returns are its own, whoever plays beside it, and
agents whose outcome is settled leave the forward pass without changing anyone's numbers."""

import pytest
import torch

from rltorch.agents.population.evaluation import evaluate_agents, narrow_env
from rltorch.envs.cartpole import CartPoleVecEnv
from rltorch.envs.vector import VectorEnvAdapter

CONTROLLERS = {
    "good": lambda o: (o[..., 2] + 0.5 * o[..., 3] + 0.05 * o[..., 1] + 0.01 * o[..., 0] > 0).long(),
    "mid": lambda o: (o[..., 2] > 0).long(),
    "bad": lambda o: torch.zeros(o.shape[:-1], dtype=torch.long),
}


def evaluate(kinds, episodes=8, narrow=False, **kw):
    env = VectorEnvAdapter(CartPoleVecEnv(len(kinds) * episodes, autoreset_mode="same_step"), torch.device("cpu"))
    calls = []

    def policy_for(agents):
        chosen = agents.tolist()
        calls.append(list(chosen))
        policies = [CONTROLLERS[kinds[k]] for k in chosen]
        return lambda rows: torch.stack([policy(r) for policy, r in zip(policies, rows)])

    return evaluate_agents(env, 3, len(kinds), episodes, policy_for, narrow=narrow_env if narrow else None,
                           **kw), calls


def test_each_agent_plays_its_own_rows_whoever_plays_beside_it():
    alone, calls = evaluate(["good", "good", "good"])
    assert calls == [[0, 1, 2]]  # nobody settles before the end: one policy throughout
    mixed, calls = evaluate(["bad", "good", "mid"])
    assert calls[0] == [0, 1, 2] and calls[-1] == [1] and len(calls) >= 2
    assert mixed.dtype == torch.float64 and mixed.shape == (3, 8)
    assert torch.equal(mixed[1], alone[1]) and bool((mixed[1] == 500).all())
    assert bool((mixed[0] < 20).all()) and 20 < mixed[2].mean() < 475


def test_stop_below_gives_lower_bounds_and_keeps_the_full_agents_exact():
    full, _ = evaluate(["mid", "good", "bad"], episodes=20)
    early, calls = evaluate(["mid", "good", "bad"], episodes=20, stop_below=475.0, best=500.0)
    assert torch.equal(early[1], full[1])
    assert bool((early[0] <= full[0]).all()) and early[0].mean() < 475
    assert calls[1] == [0, 1] and calls[-1] == [1]  # bad leaves at the first check, mid once too far behind


def test_narrowing_the_env_changes_no_return():
    # Also: an agent that stopped keeps the returns it stopped with, whether its rows keep stepping or not.
    kinds = ["mid", "good", "bad", "good", "mid"]
    for kw in ({}, {"stop_below": 475.0, "best": 500.0}):
        wide, calls = evaluate(kinds, episodes=12, **kw)
        narrow, narrow_calls = evaluate(kinds, episodes=12, narrow=True, **kw)
        assert torch.equal(narrow, wide) and narrow_calls == calls and calls[-1] == [1, 3]


def test_a_subset_plays_the_rows_it_plays_in_the_whole_population():
    kinds = ["mid", "good", "bad", "mid", "good"]
    whole, _ = evaluate(kinds, episodes=6)
    for narrow in (False, True):
        env = VectorEnvAdapter(CartPoleVecEnv(5 * 6, autoreset_mode="same_step"), torch.device("cpu"))
        chosen = torch.tensor([0, 3, 4])

        def policy_for(agents):
            return lambda rows: torch.stack([CONTROLLERS[kinds[k]](r) for k, r in zip(agents.tolist(), rows)])

        part = evaluate_agents(env, 3, 5, 6, policy_for, agents=chosen, narrow=narrow_env if narrow else None)
        assert torch.equal(part, whole[chosen])


def test_env_of_the_wrong_size():
    env = VectorEnvAdapter(CartPoleVecEnv(5), torch.device("cpu"))
    with pytest.raises(ValueError, match="num_agents"):
        evaluate_agents(env, 0, 2, 3, lambda agents: None)
