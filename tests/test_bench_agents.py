"""The agents and classifiers cases of ``rltorch bench`` in tiny mode: every case sets up and runs
(SB3 is installed here, so its cases must run too); CleanRL, which needs a checkout, says how to get one."""

from __future__ import annotations

import os
import stat
import sys
import time

import pytest

from rltorch.bench.cases import agents, classifiers, collect
from rltorch.bench.core import Settings, SolveRun, Unavailable

TINY = Settings.for_mode("tiny")
SOLVE_SECONDS_LIMIT = 30  # a tiny solve run trains for a moment; the rest is one interpreter's start-up


def _tiny_cases():
    return [pytest.param(case, id=case.key) for case in collect(["agents", "classifiers"], TINY)]


def _names(mode: str) -> set[tuple[str, str, str]]:
    # Agents cases by where (group and env), classifier cases by group (their sizes are in params).
    return {(c.where if c.capability == "agents" else c.group, c.impl, c.kind)
            for c in collect(["agents", "classifiers"], Settings.for_mode(mode))}


def test_case_names_and_modes():
    agents_cases = {("ppo_time_to_solve", "rltorch", "solve"), ("ppo_time_to_solve", "SB3 PPO", "solve"),
                    ("dqn_time_to_solve", "rltorch", "solve"), ("stacked_mlp_update agents=64", "rltorch", "timed"),
                    ("stacked_mlp_update agents=64", "torch.func vmap", "timed")}

    def population(agents: int) -> set:  # tiny runs train 4 agents, the others the 64
        return {(f"ppo_population agents={agents}", "rltorch", "solve")}

    classifier_cases = {("classifier_fit", "rltorch", "timed"), ("classifier_fit", "DataLoader loop", "timed"),
                        ("expert_collection", "rltorch", "timed"),
                        ("expert_collection", "gymnasium CartPoleVectorEnv", "timed"),
                        ("expert_collection", "gymnasium SyncVectorEnv", "timed"),
                        ("bc_time_to_solve", "rltorch", "solve")}
    slow_peers = {("dqn_time_to_solve", "SB3 DQN", "solve"), ("ppo_time_to_solve", "CleanRL PPO", "solve"),
                  ("dqn_time_to_solve", "CleanRL DQN", "solve")}
    # The classic-control suite (issue #22) trains for seconds to minutes per seed: full runs only, and
    # tiny runs check rltorch's set-up.
    classic = {("ppo_time_to_solve env=Acrobot-v1", "rltorch", "solve"),
               ("ppo_time_to_solve env=Pendulum-v1", "rltorch", "solve"),
               ("dqn_time_to_solve env=MountainCar-v0", "rltorch", "solve")}
    classic_peers = {("ppo_time_to_solve env=Acrobot-v1", "SB3 PPO", "solve"),
                     ("ppo_time_to_solve env=Pendulum-v1", "SB3 PPO", "solve"),
                     ("dqn_time_to_solve env=MountainCar-v0", "SB3 DQN", "solve")}
    assert _names("quick") == agents_cases | classifier_cases | population(64)  # slow peers: too long for --quick
    assert _names("tiny") == agents_cases | classifier_cases | slow_peers | classic | population(4)
    # Ape-X starts a Ray cluster per seed: only full runs time it (tests/test_distributed.py runs it).
    apex = {("dqn_time_to_solve", "rltorch Ape-X (2 actors)", "solve")}
    # rejax compiles for half a minute and trains its whole budget: full runs only, once (max_seeds=1).
    rejax = {("ppo_population agents=64", "rejax PPO (jit+vmap)", "solve")}
    assert _names("full") == (agents_cases | classifier_cases | slow_peers | apex | classic | classic_peers
                              | population(64) | rejax)
    assert [c.max_seeds for c in collect(["agents"], Settings.for_mode("full")) if c.impl.startswith("rejax")] == [1]


def test_full_mode_sizes_are_the_published_ones():
    full = collect(["classifiers"], Settings.for_mode("full"))
    fit = [c for c in full if c.group == "classifier_fit"]
    assert {c.size for c in fit} == {1_000_000} and {c.items for c in fit} == {1_000_000}
    collection = {(c.impl, c.size) for c in full if c.group == "expert_collection"}
    assert ("gymnasium SyncVectorEnv", 4096) not in collection
    assert {("rltorch", 256), ("rltorch", 4096), ("gymnasium CartPoleVectorEnv", 4096)} <= collection


@pytest.mark.parametrize("case", _tiny_cases())
def test_tiny_case_runs(case, monkeypatch):
    monkeypatch.delenv(agents.CLEANRL_ENV, raising=False)
    monkeypatch.delenv(agents.SB3_PYTHON_ENV, raising=False)
    monkeypatch.delenv(agents.REJAX_PYTHON_ENV, raising=False)
    try:
        run = case.setup(TINY)
    except Unavailable as exc:
        # Only CleanRL needs what this machine lacks (a checkout); SB3 is installed in the test venv.
        assert case.impl.startswith("CleanRL"), f"{case.key} unavailable: {exc.reason}"
        assert agents.CLEANRL_ENV in exc.reason and agents.CLEANRL_ENV in exc.install
        assert "git clone" in exc.install
        return
    if case.kind == "timed":
        run()
        run()
        return
    start = time.perf_counter()
    result = run(0)
    elapsed = time.perf_counter() - start
    assert isinstance(result, SolveRun)
    assert result.seconds > 0 and result.env_steps > 0
    assert result.seconds <= elapsed
    assert elapsed < SOLVE_SECONDS_LIMIT, f"{case.key}: a tiny run took {elapsed:.1f} s"
    assert result.extra


def test_rejax_without_its_venv_says_how_to_make_one(monkeypatch):
    monkeypatch.delenv(agents.REJAX_PYTHON_ENV, raising=False)
    case = agents._rejax_case("ppo_population", 64)
    with pytest.raises(Unavailable) as info:
        case.setup(TINY)
    assert agents.REJAX_PYTHON_ENV in info.value.reason and "--rejax-venv" in info.value.install
    monkeypatch.setenv(agents.REJAX_PYTHON_ENV, sys.executable)  # an interpreter without rejax
    with pytest.raises(Unavailable, match="rejax does not import"):
        case.setup(TINY)


def _tiny_case(group: str, impl: str):
    # By where: the classic-control cases share CartPole's groups, with an env parameter.
    (case,) = [c for c in collect(["agents", "classifiers"], TINY) if (c.where, c.impl) == (group, impl)]
    return case


def test_tiny_rltorch_ppo_stops_at_its_step_cap_unsolved():
    """The cap reaches the training process, and an unsolved run is reported as one."""
    result = _tiny_case("ppo_time_to_solve", "rltorch").setup(TINY)(1)
    assert result.env_steps == 4096 and result.solved is False
    assert result.extra["threads"] == 1  # RunConfig.threads="auto"
    assert result.extra["from_process_start_s"] > result.seconds


def test_cleanrl_rejects_a_directory_that_is_no_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv(agents.CLEANRL_ENV, str(tmp_path))
    with pytest.raises(Unavailable) as info:
        _tiny_case("dqn_time_to_solve", "CleanRL DQN").setup(TINY)
    assert "not a CleanRL checkout" in info.value.reason and info.value.install


def test_sb3_is_unavailable_where_it_does_not_import(tmp_path):
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'stable_baselines3'\" >&2\nexit 1\n")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    settings = Settings.for_mode("tiny", python=str(python))
    with pytest.raises(Unavailable) as info:
        _tiny_case("ppo_time_to_solve", "SB3 PPO").setup(settings)
    assert "stable_baselines3" in info.value.reason and "rltorch[bench]" in info.value.install
    missing = Settings.for_mode("tiny", python=os.path.join(str(tmp_path), "no-such-python"))
    with pytest.raises(Unavailable):
        _tiny_case("dqn_time_to_solve", "SB3 DQN").setup(missing)


def test_sb3_interpreter_choice(monkeypatch):
    monkeypatch.delenv(agents.SB3_PYTHON_ENV, raising=False)
    assert agents.sb3_python(TINY) == sys.executable
    monkeypatch.setenv(agents.SB3_PYTHON_ENV, "/opt/sb3/bin/python")
    assert agents.sb3_python(TINY) == "/opt/sb3/bin/python"
    assert agents.sb3_python(Settings.for_mode("tiny", python="/other/python")) == "/other/python"


def test_classifier_fit_cases_train_the_same_model():
    tiny_fit = [c for c in collect(["classifiers"], TINY) if c.group == "classifier_fit"]
    assert {c.params for c in tiny_fit} == {(("features", 4), ("MLP", "64x64"), ("batch", classifiers.BATCH))}
    X, y = classifiers.fit_data(1000)
    assert X.shape == (1000, 4) and set(y.unique().tolist()) == {0, 1}


def test_cleanrl_run_is_timed_by_its_own_criterion(tmp_path, monkeypatch):
    """A stand-in checkout (its venv is this interpreter): the run counts as solved at the episode where the
    mean of the last 100 training returns reaches 475, and the tiny step cap reaches the script."""
    (tmp_path / "cleanrl").mkdir()
    (tmp_path / "cleanrl" / "dqn.py").write_text(
        "import sys\n"
        "capped = '--total-timesteps' in sys.argv\n"
        "for episode in range(150):\n"
        "    ret = 500.0 if capped and episode >= 40 else 10.0\n"
        "    print(f'global_step={(episode + 1) * 100}, episodic_return=[{ret}]')\n")
    venv_bin = tmp_path / ".rltorch-bench-venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    monkeypatch.setenv(agents.CLEANRL_ENV, str(tmp_path))
    result = _tiny_case("dqn_time_to_solve", "CleanRL DQN").setup(TINY)(1)
    # Episodes 40..: 500; the mean of the last 100 first reaches 475 at episode 134 (95 x 500 + 5 x 10 = 47,550).
    assert result.solved and result.env_steps == 135 * 100 and result.seconds > 0


def _dqn_config(args: list[str]):
    import argparse

    from rltorch.agents import DQNConfig
    from rltorch.config import add_config_flags, config_from_flags

    parser = argparse.ArgumentParser()
    add_config_flags(parser, DQNConfig)
    return config_from_flags(parser.parse_args(args), DQNConfig, "dqn")


def test_mountain_car_dqn_case_runs_rl_zoo3_settings_in_rltorch_terms():
    """rl-zoo3's hyperparams/dqn.yml for MountainCar-v0 (what sb3_solve.py gives SB3), read through the flags
    the bench passes to rltorch: one env, gradient_steps 8 after every train_freq 16 env steps (run together:
    tests/test_dqn_sb3.py), a target copy every 600 env steps, epsilon 1 -> 0.07 over 0.2 x 1.2e5 env steps,
    no Double DQN, and the zoo's step budget."""
    args, cap = agents.CLASSIC_SOLVE[("dqn", "MountainCar-v0")]
    cfg = _dqn_config(["--env", "MountainCar-v0", *args, "--total-steps", str(cap)])
    zoo_train_freq, zoo_gradient_steps, zoo_target_every = 16, 8, 600
    assert cap == 120_000
    assert cfg.num_envs == 1 and cfg.train_freq == zoo_train_freq
    assert cfg.updates_per_step == zoo_gradient_steps / zoo_train_freq
    assert cfg.target_update == "hard" and cfg.target_update_interval / cfg.updates_per_step == zoo_target_every
    assert (cfg.eps_start, cfg.eps_end, cfg.eps_decay_steps) == (1.0, 0.07, 0.2 * cap)
    assert (cfg.learning_rate, cfg.batch_size, cfg.buffer_size, cfg.learning_starts, cfg.gamma) == (
        4e-3, 128, 10_000, 1000, 0.98)
    assert cfg.hidden_sizes == (256, 256) and cfg.double_dqn is False and cfg.loss == "huber"
    assert cfg.max_grad_norm == 10  # SB3's DQN default
    # The SB3 side of the same case names the same env and trains the zoo's budget.
    sb3 = [c for c in collect(["agents"], Settings.for_mode("full"))
           if c.where == "dqn_time_to_solve env=MountainCar-v0" and c.impl == "SB3 DQN"]
    assert len(sb3) == 1 and sb3[0].devices == ("cpu",)
