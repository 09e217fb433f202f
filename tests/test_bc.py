"""Behaviour cloning on the agent frame: a cloned CartPole policy solves rltorch's env and gymnasium's own
CartPole-v1, checkpoints and exports round-trip, DAgger relabels the learner's states, experts come from run
directories, and `rltorch train bc` / `rltorch train classifier` write the run directory."""

import json
import os

import gymnasium as gym
import numpy as np
import pytest
import torch

from rltorch.agents import ALGORITHMS, BC, Agent, BCConfig
from rltorch.classifiers import LinearExpert, load_classifier
from rltorch.cli import main

pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning"), pytest.mark.usefixtures("one_thread")]


def fast(**overrides) -> BCConfig:
    values = dict(device="cpu", seed=0, num_samples=20_000, eval_interval=20_000, log_interval=20_000)
    values.update(overrides)
    return BCConfig(**values)


@pytest.fixture(scope="module")
def cloned():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    agent = BC(fast())
    result = agent.train()
    torch.set_num_threads(before)
    yield agent, result
    agent.close()


def gymnasium_returns(policy, episodes: int = 100, seed: int = 2024) -> np.ndarray:
    """Greedy returns in gymnasium's own CartPole-v1 (scalar envs + TimeLimit in a SyncVectorEnv)."""
    env = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * episodes)
    obs, _ = env.reset(seed=seed)
    returns = np.zeros(episodes)
    done = np.zeros(episodes, dtype=bool)
    while not done.all():
        with torch.no_grad():
            actions = policy(torch.as_tensor(obs)).numpy()
        obs, reward, terminated, truncated, _ = env.step(actions)
        returns += reward * ~done
        done |= terminated | truncated
    env.close()
    return returns


def test_bc_is_registered():
    assert ALGORITHMS["bc"] is BC and BC.config_class is BCConfig


def test_cloned_policy_solves_both_cartpoles(cloned):
    agent, result = cloned
    assert result.solved and result.env_steps <= 200_000
    rltorch_returns = agent.evaluate_returns(100, seed=77)
    assert rltorch_returns.mean().item() >= 475
    assert gymnasium_returns(agent.policy()).mean() >= 475


def test_dataset_is_the_experts_actions(cloned):
    agent, _ = cloned
    assert agent.data_obs.shape == (20_000, 4)
    assert torch.equal(agent.data_actions, LinearExpert()(agent.data_obs))


def test_checkpoint_and_exports_round_trip(cloned, tmp_path):
    agent, _ = cloned
    obs = torch.randn(300, 4) * torch.tensor([1.0, 1.0, 0.1, 1.0])
    expected = agent.policy()(obs)
    path = tmp_path / "bc.pt"
    agent.save(path, include_buffer=True)
    loaded = Agent.load(path)
    try:
        assert type(loaded) is BC and loaded.epochs == agent.epochs and loaded.env_steps == agent.env_steps
        assert torch.equal(loaded.policy()(obs), expected)
        assert torch.equal(loaded.data_obs, agent.data_obs)
    finally:
        loaded.close()
    scripted = torch.jit.load(agent.export(str(tmp_path / "bc.ts")))
    assert torch.equal(scripted(obs), expected)
    program = torch.export.load(agent.export(str(tmp_path / "bc.pt2"), format="export")).module()
    assert torch.equal(program(obs), expected)


def test_resumed_training_continues_exactly(tmp_path):
    config = fast(num_samples=4000, eval_interval=10**9, log_interval=4000, total_steps=12_000)
    straight = BC(config)
    straight.train()
    paused = BC(config)
    paused.train(stop_at=4000)
    paused.save(tmp_path / "half.pt", include_buffer=True)
    resumed = Agent.load(tmp_path / "half.pt")
    resumed.train()
    for a, b in zip(straight.classifier.network.parameters(), resumed.classifier.network.parameters()):
        assert torch.equal(a, b)
    for agent in (straight, paused, resumed):
        agent.close()


def test_dagger_relabels_the_learners_states():
    agent = BC(fast(num_samples=3000, dagger_rounds=2, dagger_samples=1000, dagger_interval=1,
                    total_steps=20_000, eval_interval=10**9, stop_when_solved=False))
    agent.train()
    assert agent.dagger_done == 2 and len(agent.data_obs) == 5000
    assert torch.equal(agent.data_actions, LinearExpert()(agent.data_obs))
    agent.close()


def test_expert_from_a_run_directory(cloned, tmp_path):
    agent, _ = cloned
    run_dir = tmp_path / "expert_run"
    run_dir.mkdir()
    agent.save(run_dir / "checkpoint.pt")
    student = BC(fast(expert=str(run_dir), num_samples=2000))
    student.collect()
    assert torch.equal(student.data_actions, agent.policy()(student.data_obs))
    student.close()


@pytest.mark.parametrize("field, value, fragment", [
    ("num_samples", 0, "`num_samples` must be >= 1"),
    ("epsilon", 1.5, "`epsilon` must lie in [0, 1]"),
    ("dagger_rounds", -1, "`dagger_rounds`"),
    ("learning_rate", 0.0, "`learning_rate`"),
    ("dropout", 1.0, "`dropout`"),
    ("hidden_sizes", (), "`hidden_sizes`"),
    ("expert", "", "`expert`"),
])
def test_bad_config_names_the_field(field, value, fragment):
    with pytest.raises(ValueError) as info:
        BCConfig(**{field: value})
    assert fragment in str(info.value)


def test_missing_expert_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="`expert` must be 'linear' or a trained agent's run directory"):
        BC(fast(expert=str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match="holds no checkpoint.pt"):
        BC(fast(expert=str(tmp_path)))


# ---------------------------------------------------------------- command line


def run_cli(capsys, *args):
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_bc_eval_and_export(tmp_path, capsys):
    run_dir = tmp_path / "bc"
    code, out, err = run_cli(capsys, "train", "bc", "--quiet", "--device", "cpu", "--num-samples", "20000",
                             "--eval-interval", "20000", "--expert", "linear", "--run-dir", run_dir)
    assert code == 0, err
    assert "solved CartPole-v1" in out
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "result.json", "learning_curve.png",
                 "confusion_matrix.png"):
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "config.json").read_text())["algorithm"] == "bc"
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == BC.metric_columns()
    code, out, err = run_cli(capsys, "eval", run_dir, "--episodes", "20")
    assert code == 0 and "greedy return over 20 episodes" in out, err
    code, out, err = run_cli(capsys, "export", run_dir)
    assert code == 0 and (run_dir / "policy.ts").exists(), err


@pytest.mark.parametrize("dataset, figure", [("circles", "decision_boundary.png"),
                                             ("multilabel", "decision_boundary.png"),
                                             ("cartpole-bc", "confusion_matrix.png")])
def test_cli_train_classifier(tmp_path, capsys, dataset, figure):
    run_dir = tmp_path / dataset
    code, out, err = run_cli(capsys, "train", "classifier", "--dataset", dataset, "--num-samples", "1200",
                             "--epochs", "6", "--quiet", "--device", "cpu", "--run-dir", run_dir)
    assert code == 0, err
    assert "test accuracy" in out
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "result.json", "learning_curve.png", figure):
        assert (run_dir / name).exists(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algorithm"] == "classifier" and config["dataset"] == dataset
    result = json.loads((run_dir / "result.json").read_text())
    assert result["epochs"] == 6 and result["test_samples"] == 300
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,loss") and len(rows) == 7
    classifier = load_classifier(run_dir / "checkpoint.pt")
    assert classifier.history[-1]["epoch"] == 6
    code, out, err = run_cli(capsys, "export", run_dir, "--format", "export")
    assert code == 0 and (run_dir / "policy.pt2").exists(), err


@pytest.mark.parametrize("args, fragment", [
    (["--dataset", "mnist"], "invalid choice"),
    (["--epochs", "0"], "`epochs` must be >= 1"),
    (["--kind", "binary", "--dataset", "blobs"], "`kind` binary needs a two-class dataset"),
    (["--dataset", "cartpole-bc", "--expert", "no/such/run"], "--expert 'no/such/run'"),
    (["--learning-rate", "abc"], "`learning_rate` must be a number"),
])
def test_cli_classifier_errors_leave_nothing_behind(tmp_path, capsys, args, fragment):
    run_dir = tmp_path / "never"
    code, out, err = run_cli(capsys, "train", "classifier", "--quiet", "--run-dir", run_dir, *args)
    assert code == 2 and fragment in err and "Traceback" not in err, err
    assert not os.path.exists(run_dir)


def test_cli_eval_of_a_classifier_run_says_what_it_is(tmp_path, capsys):
    run_dir = tmp_path / "c"
    assert run_cli(capsys, "train", "classifier", "--num-samples", "200", "--epochs", "1", "--quiet",
                   "--device", "cpu", "--run-dir", run_dir)[0] == 0
    code, out, err = run_cli(capsys, "eval", run_dir)
    assert code == 2 and "is a classifier run" in err
