"""The agents under bad input (issue 20), as the cores are tested: random valid and invalid configs for PPO and
BC (valid ones construct, invalid ones raise a ValueError naming a bad field and nothing else), and random
``act`` and ``load_state_dict`` inputs for PPO, BC and DQN, with the agent unchanged after every rejected call."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltorch.agents import BC, DQN, PPO, BCConfig, DQNConfig, PPOConfig
from rltorch.nn import ACTIVATIONS
from tests.checks import assert_same_state, check_config_case, config_dicts

pytestmark = pytest.mark.usefixtures("one_thread")

_INF, _NAN = float("inf"), float("nan")
_BOOL = (st.booleans(), [1, "true", None])
_COMMON = {
    "seed": (st.integers(0, 2**63 - 1), [-1, 2**64, 1.5, False, _NAN]),
    "device": (st.sampled_from(["cpu", "auto", "cuda:1"]), ["foo", 3, ""]),
    "env_id": (st.sampled_from(["CartPole-v1", "Acrobot-v1"]), ["", 7]),
    "total_steps": (st.integers(1, 10**9), [0, -5, 2.5, _INF]),
    "eval_episodes": (st.integers(1, 1000), [0, "10"]),
    "solve_threshold": (st.none() | st.floats(-1e6, 1e6), [_INF, "475"]),
    "stop_when_solved": _BOOL,
    "threads": (st.sampled_from([1, 2, 1024, "auto"]), [0, 1025, "many", 1.5]),
    "hidden_sizes": (st.lists(st.integers(1, 64), min_size=1, max_size=3), [[], [0], [1.5], "64", 64]),
    "learning_rate": (st.floats(1e-6, 1.0), [0.0, -1.0, 1.5, _INF, _NAN, True, "x"]),
}
PPO_FIELDS = {
    **_COMMON,
    # num_envs * num_steps >= 4 keeps two transitions in each of up to 2 minibatches (a rule between fields).
    "num_envs": (st.integers(2, 64), [0, -1, 1.5, True, "4", _INF]),
    "num_steps": (st.integers(2, 64), [0, 2.5, None]),
    "num_minibatches": (st.integers(1, 2), [0, -2, 1.5]),
    "update_epochs": (st.integers(1, 10), [0, 1.5]),
    "adam_eps": (st.floats(1e-10, 1.0), [0.0, 2.0, _NAN]),
    "gamma": (st.floats(0.0, 1.0), [1.5, -0.1, _NAN, None]),
    "gae_lambda": (st.floats(0.0, 1.0), [1.01, -1.0]),
    "clip_coef": (st.floats(0.01, 10.0), [0.0, -0.1, 11.0, _INF]),
    "ent_coef": (st.floats(0.0, 1000.0), [-0.1, 1e4, _NAN]),
    "vf_coef": (st.floats(0.0, 1000.0), [-1.0, _INF]),
    "max_grad_norm": (st.none() | st.floats(0.1, 100.0), [0.0, -1.0, _INF]),
    "target_kl": (st.none() | st.floats(1e-3, 10.0), [0.0, -1.0, _INF]),
    "init_log_std": (st.floats(-20.0, 2.0), [1000.0, 2.5, -21.0, _NAN, _INF]),
    "activation": (st.sampled_from(sorted(ACTIVATIONS)), ["sigmoid", 1, None]),
    "normalize_obs": _BOOL,
    "anneal_lr": _BOOL,
    "clip_vloss": _BOOL,
}
BC_FIELDS = {
    **_COMMON,
    "num_envs": (st.integers(1, 512), [0, 1.5, "8"]),
    "expert": (st.sampled_from(["linear", "runs/some-run"]), ["", 3, None]),
    "num_samples": (st.integers(1, 10**6), [0, -1, 1.5]),
    "epsilon": (st.floats(0.0, 1.0), [1.5, -0.1, _NAN]),
    "dagger_rounds": (st.integers(0, 10), [-1, 0.5]),
    "dagger_samples": (st.integers(1, 10**5), [0, "1"]),
    "dagger_interval": (st.integers(1, 10), [0]),
    "activation": (st.sampled_from(["relu", "tanh", "gelu", "silu", "elu", "leaky_relu"]), ["sigmoid", None]),
    "dropout": (st.floats(0.0, 0.99), [1.0, -0.1, _INF]),
    "weight_decay": (st.floats(0.0, 1.0), [-1e-3, 1.5]),
    "batch_size": (st.integers(1, 4096), [0, 2.5]),
    "label_smoothing": (st.floats(0.0, 0.99), [1.0, -0.5]),
}


@settings(max_examples=300, deadline=None)
@given(config_dicts(PPO_FIELDS))
def test_ppo_config_property(case):
    check_config_case(PPOConfig, case)


@settings(max_examples=300, deadline=None)
@given(config_dicts(BC_FIELDS))
def test_bc_config_property(case):
    check_config_case(BCConfig, case)


def test_every_float_field_has_bounds():
    from rltorch.config import field_bounds, field_hints, optional_inner

    for config_class in (DQNConfig, PPOConfig, BCConfig):
        hints, bounds = field_hints(config_class), field_bounds(config_class)
        floats = [name for name, hint in hints.items() if optional_inner(hint)[0] is float]
        # A solve threshold is any return an env can give.
        assert [name for name in floats if name not in bounds] == ["solve_threshold"], config_class


# ---------------------------------------------------------------- act and load_state_dict


def _agents():
    """Small trained agents of each algorithm, built once (each test works on deep copies of their state)."""
    dqn = DQN(DQNConfig(device="cpu", num_envs=4, hidden_sizes=(16,), total_steps=400, learning_starts=64,
                        batch_size=32, eval_interval=10**6, prioritized=True, n_step=2))
    ppo = PPO(PPOConfig(device="cpu", num_envs=4, num_steps=8, hidden_sizes=(16,), total_steps=64,
                        eval_interval=10**6, normalize_obs=True))
    bc = BC(BCConfig(device="cpu", num_envs=8, num_samples=256, hidden_sizes=(16,), total_steps=512,
                     eval_interval=10**6))
    for agent in (dqn, ppo, bc):
        agent.train()
    return {"dqn": dqn, "ppo": ppo, "bc": bc}


@pytest.fixture(scope="module")
def agents():
    built = _agents()
    yield built
    for agent in built.values():
        agent.close()


def snapshot(agent) -> dict:
    return copy.deepcopy(agent.state_dict(include_buffer=True))


_OBS = st.one_of(
    st.tuples(st.integers(0, 5), st.sampled_from([(4,), (3,), (5,), (2, 2), (4, 1), ()])).map(
        lambda t: torch.zeros(t[0], *t[1]) if t[1] != () else torch.zeros(t[0])),
    st.sampled_from([torch.zeros(4), torch.zeros(2, 3, 4), torch.zeros(1, 4, dtype=torch.float64),
                     torch.zeros(3, 4, dtype=torch.int64), [[0.0, 0.1, 0.2, 0.3]], [["a", "b", "c", "d"]],
                     object(), None, "obs", torch.zeros(2, 4, dtype=torch.bool)]),
)


@pytest.mark.parametrize("algorithm", ["dqn", "ppo", "bc"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obs=_OBS, deterministic=st.sampled_from([True, False, 1, "yes", None]))
def test_act_property(agents, algorithm, obs, deterministic):
    agent = agents[algorithm]
    before = snapshot(agent)
    shape = tuple(obs.shape) if isinstance(obs, torch.Tensor) else None
    try:
        numeric = shape is not None or (isinstance(obs, list) and isinstance(obs[0][0], float))
    except (TypeError, IndexError):
        numeric = False
    valid_obs = numeric and (shape is None or shape == (4,) or (len(shape) == 2 and shape[1] == 4))
    if not isinstance(deterministic, bool) or not valid_obs:
        with pytest.raises(ValueError, match="`obs`|`deterministic`"):
            agent.act(obs, deterministic=deterministic)
        assert_same_state(before, snapshot(agent))
        return
    actions = agent.act(obs, deterministic=deterministic)
    batch = () if shape == (4,) else ((shape[0],) if shape is not None else (1,))
    assert actions.shape == batch and actions.dtype == torch.int64
    assert bool(((actions == 0) | (actions == 1)).all())
    if deterministic:
        assert_same_state(before, snapshot(agent))


def _paths(value, prefix=()):
    """Every (path, leaf) of a nested checkpoint dict (optimizer hyperparameters excepted: any value is one)."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            if key != "param_groups":
                yield from _paths(item, (*prefix, key))
    elif isinstance(value, (list, tuple)) and value and not isinstance(value[0], dict):
        yield prefix, value
    else:
        yield prefix, value


def _mutated(state: dict, path: tuple, kind: str):
    """``state`` with the entry at ``path`` removed, or of another type, dtype or shape; None if ``kind`` does not
    apply there."""
    state = copy.deepcopy(state)
    parent = state
    for key in path[:-1]:
        parent = parent[key]
    key, value = path[-1], parent[path[-1]]
    if kind == "delete":
        del parent[key]
    elif kind == "text":
        parent[key] = "x"
    elif kind == "negative" and isinstance(value, int) and not isinstance(value, bool):
        parent[key] = -1 - value
    elif kind == "shape" and isinstance(value, torch.Tensor):
        parent[key] = torch.cat([value.reshape(-1), value.reshape(-1)[:1]]) if value.numel() else torch.zeros(3)
    elif kind == "dtype" and isinstance(value, torch.Tensor):
        parent[key] = value.to(torch.float16 if value.dtype != torch.float16 else torch.float32)
    else:
        return None
    return state


@pytest.mark.parametrize("algorithm", ["dqn", "ppo", "bc"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_load_state_dict_property(agents, algorithm, data):
    agent = agents[algorithm]
    state = agent.state_dict()  # the buffers' own checks are the replay tests' (tests/test_replay_robustness.py)
    # The env's and the classifier's own entries are checked by their own load functions, tested with them
    # (tests/test_env_robustness.py, tests/test_classifiers.py); here: everything the frame checks.
    paths = [p for p, _ in _paths(state) if p[0] != "config" and p[:2] != ("frame", "env")
             and (p[:2] != ("bc", "extra") or p[2] in ("network", "optimizer"))]
    path = data.draw(st.sampled_from(paths))
    kind = data.draw(st.sampled_from(["delete", "text", "negative", "shape", "dtype"]))
    bad = _mutated(state, path, kind)
    if bad is None:
        return
    before = snapshot(agent)
    with pytest.raises(ValueError) as info:
        agent.load_state_dict(bad)
    message = str(info.value)
    # The message names the entry: its top-level key, or the section it belongs to.
    named = {"format": "checkpoint", "algorithm": "checkpoint"}.get(path[0])
    top = path[1] if path[0] in ("frame", algorithm) and len(path) > 1 else path[0]
    assert (named or f"`{top}") in message or (len(path) == 1 and f"'{top}' section" in message), (path, kind, message)
    assert "\n" not in message
    assert_same_state(before, snapshot(agent))
    agent.load_state_dict(state)  # usable at once: the good state loads
    agent.act(torch.zeros(2, 4))


def test_ppo_names_the_bad_key_and_rolls_back(agents):
    ppo = agents["ppo"]
    state = ppo.state_dict()
    before = snapshot(ppo)
    bad = copy.deepcopy(state)
    bad["ppo"]["net"]["actor.0.weight"] = torch.zeros(3, 3)
    expected = r"`net\.actor\.0\.weight` must be a torch.float32 tensor of shape \[1, 16, 4\]"
    with pytest.raises(ValueError, match=expected):
        ppo.load_state_dict(bad)
    bad = copy.deepcopy(state)
    bad["frame"]["env"] = {"state": "not a tensor"}  # passes the frame's checks; the env refuses it midway
    with pytest.raises(ValueError, match="`env` does not fit this agent \\(nothing was changed\\)"):
        ppo.load_state_dict(bad)
    assert_same_state(before, snapshot(ppo))


@pytest.mark.parametrize("algorithm", ["dqn", "ppo", "bc"])
def test_act_on_an_empty_batch_gives_no_actions(agents, algorithm):
    for deterministic in (True, False):
        actions = agents[algorithm].act(torch.zeros(0, 4), deterministic=deterministic)
        assert actions.shape == (0,) and actions.dtype == torch.int64
