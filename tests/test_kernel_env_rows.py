"""KernelVecEnv.take_rows (an env of some rows of another, continuing their episodes bit for bit: what a
population's evaluation narrows to as agents finish) and the batched spaces built on first read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.vector.utils import batch_space

from rltorch.envs.cartpole import CartPoleVecEnv
from rltorch.envs.vector import VectorEnvAdapter
from tests.classic_control_support import NAMES, make_env, random_actions

KINDS = ["cartpole", *NAMES]


def build(kind: str, n: int, device="cpu"):
    return CartPoleVecEnv(n, device=device) if kind == "cartpole" else make_env(kind, n, device=device)


def actions_for(kind: str, env, rng: np.random.Generator) -> torch.Tensor:
    if kind == "cartpole":
        return torch.as_tensor(rng.integers(0, 2, env.num_envs), device=env.device)
    return torch.as_tensor(random_actions(kind, env.num_envs, rng), device=env.device)


@pytest.mark.parametrize("kind", KINDS)
def test_taken_rows_continue_their_episodes_bit_for_bit(kind, device):
    rng = np.random.default_rng(0)
    env = build(kind, 12, device)
    obs, _ = env.reset(seed=7)
    for _ in range(3):  # into the episodes, so the counters and states are not the reset's
        obs, *_ = env.step(actions_for(kind, env, rng))
    rows = torch.tensor([9, 2, 5, 11])
    before = {name: getattr(env, name).clone() for name in ("state", *env.counters)}
    part = env.take_rows(rows)
    assert type(part) is type(env) and part.num_envs == 4 and env.num_envs == 12
    for name in before:  # taking rows copies them: the original is untouched
        assert torch.equal(getattr(env, name), before[name])
    ended = torch.zeros(4, dtype=torch.bool)
    for _ in range(40):
        full_actions = actions_for(kind, env, rng)
        full = env.step(full_actions)
        mine = part.step(full_actions[rows.to(full_actions.device)])
        live = ~ended  # a row's episode after its first end resets to another initial state
        for a, b in zip(full[:4], mine[:4]):
            assert torch.equal(a[rows.to(a.device)][live.to(a.device)], b[live.to(b.device)])
        ended |= (mine[2] | mine[3]).cpu()
    assert part.observation_space.shape[0] == 4 and env.observation_space.shape[0] == 12


def test_the_adapter_takes_its_pending_resets_along():
    adapter = VectorEnvAdapter(CartPoleVecEnv(6), torch.device("cpu"))
    adapter.reset(seed=1)
    adapter._prev_done = torch.tensor([False, True, False, True, False, False])
    part = adapter.take_rows(torch.tensor([3, 0]))
    assert torch.equal(part._prev_done, torch.tensor([True, False])) and part.num_envs == 2


@pytest.mark.parametrize("kind", KINDS)
def test_batched_spaces_are_built_on_first_read_and_can_be_set(kind):
    env = build(kind, 5)
    assert env._observation_space is None and env._action_space is None
    want_obs = batch_space(env.single_observation_space, 5)
    want_act = batch_space(env.single_action_space, 5)
    assert env.observation_space == want_obs and env.action_space == want_act
    assert env.observation_space is env.observation_space  # built once
    env.action_space = want_act
    assert env.action_space is want_act


@pytest.mark.parametrize("rows,match", [
    (torch.tensor([], dtype=torch.long), "non-empty"),
    (torch.tensor([0.0, 1.0]), "int64"),
    (torch.tensor([[0, 1]]), "1-D"),
    ([0, 1], "tensor"),
    (torch.tensor([0, 6]), r"\[0, 6\)"),
    (torch.tensor([-1]), r"\[0, 6\)"),
])
def test_bad_rows_are_rejected_naming_the_argument(rows, match):
    env = CartPoleVecEnv(6)
    env.reset(seed=0)
    before = env.state.clone()
    with pytest.raises(ValueError, match=f"take_rows: `rows`.*{match}"):
        env.take_rows(rows)
    assert torch.equal(env.state, before)
