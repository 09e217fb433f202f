"""The `rltorch` command line: flags from config docstrings, run directories, eval/export, and one-line
errors (exit 2, no traceback, no run directory left behind) for bad input. In-process via
``rltorch.cli.main`` except one subprocess smoke test."""

import json
import os
import subprocess
import sys

import pytest
import torch

from rltorch.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--quiet", "--total-steps", "600", "--learning-starts", "200", "--eval-interval", "600", "--eval-episodes", "3",
        "--hidden-sizes", "32,32", "--num-envs", "4", "--device", "cpu"]


def run_cli(capsys, *args):
    """(exit status, stdout, stderr) of ``rltorch ARGS`` run in this process."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.startswith("rltorch")]
    assert lines and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    code = main(["train", "dqn", *FAST, "--seed", "2", "--no-stop", "--run-dir", str(run_dir)])
    assert code == 0
    return run_dir


def test_train_writes_the_run_directory(trained_run):
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "result.json"):
        assert (trained_run / name).exists(), name
    config = json.loads((trained_run / "config.json").read_text())
    assert config["algorithm"] == "dqn" and config["seed"] == 2 and config["hidden_sizes"] == [32, 32]
    assert config["stop_when_solved"] is False and config["device"] == "cpu"
    header = (trained_run / "metrics.csv").read_text().splitlines()[0].split(",")
    from rltorch.agents import DQN

    assert header == DQN.metric_columns() and "epsilon" in header
    result = json.loads((trained_run / "result.json").read_text())
    assert result["env_steps"] >= 600


def test_eval_and_export(trained_run, capsys, tmp_path):
    code, out, err = run_cli(capsys, "eval", trained_run, "--episodes", "7")
    assert code == 0, err
    assert "greedy return over 7 episodes" in out
    code, out, err = run_cli(capsys, "export", trained_run, "--output", tmp_path / "p.ts")
    assert code == 0 and (tmp_path / "p.ts").exists(), err
    code, out, err = run_cli(capsys, "export", trained_run, "--format", "export", "--output", tmp_path / "p.pt2")
    assert code == 0 and (tmp_path / "p.pt2").exists(), err


def test_config_file_then_flags_then_set(tmp_path, capsys):
    cfg = tmp_path / "fast.toml"
    cfg.write_text('[dqn]\ntotal_steps = 600\nlearning_starts = 200\neval_interval = 600\neval_episodes = 3\n'
                   'hidden_sizes = [32, 32]\nstop_when_solved = false\nseed = 5\ngamma = 0.9\n')
    code, _, err = run_cli(capsys, "train", "dqn", "--config", cfg, "--quiet", "--device", "cpu", "--seed", "6",
                           "--set", "seed=7", "--no-double-dqn", "--run-dir", tmp_path / "run")
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["hidden_sizes"] == [32, 32] and config["total_steps"] == 600 and config["gamma"] == 0.9
    assert config["seed"] == 7 and config["double_dqn"] is False


def test_every_config_field_is_a_flag_with_its_docstring(capsys):
    import dataclasses

    from rltorch.agents import ALGORITHMS
    from rltorch.agents.config import field_docs

    for name, agent_class in ALGORITHMS.items():
        with pytest.raises(SystemExit):
            main(["train", name, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        docs = field_docs(agent_class.config_class)
        for f in dataclasses.fields(agent_class.config_class):
            assert "--" + f.name.replace("_", "-") in text, f.name
            if f.name in docs:
                assert docs[f.name][:40] in text, f.name
    assert field_docs(ALGORITHMS["dqn"].config_class)["learning_rate"] == "Adam's learning rate."


def cli_subprocess(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "rltorch", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_subprocess_smoke(tmp_path):
    """`python -m rltorch` end to end: train, then a one-line error with exit 2."""
    proc = cli_subprocess("train", "dqn", *FAST, "--no-stop", "--run-dir", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    proc = cli_subprocess("eval", tmp_path / "run", "--episodes", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--episodes" in proc.stderr


# ---------------------------------------------------------------- errors: one line, exit 2


def test_unknown_flag_and_bad_set(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "dqn", "--bogus-flag")
    assert code == 2 and "unrecognized arguments: --bogus-flag" in err
    code, _, err = run_cli(capsys, "train", "dqn", "--set", "nonsense", "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "KEY=VALUE")
    code, _, err = run_cli(capsys, "train", "dqn", "--set", "learning_rat=1", "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "unknown field learning_rat")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--env", "NoSuchEnv-v9"], "unknown or unusable env id 'NoSuchEnv-v9'"),
    (["--env", "Pendulum-v1"], "Discrete action space"),
    (["--set", "gamma=2"], "`gamma` must lie in [0, 1]"),
    (["--seed", "-1"], "`seed`"),
    (["--set", "seed=1.5"], "`seed` must be an integer"),
    (["--seed", "abc"], "`seed` must be an integer"),
    (["--set", "device=foo"], "`device`"),
    (["--device", "foo"], "`device`"),
    (["--set", "updates_per_step=Infinity"], "`updates_per_step` must be a finite number"),
    (["--learning-rate", "nan"], "`learning_rate` must be a finite number"),
    (["--batch-size", "64.5"], "`batch_size` must be an integer"),
    (["--set", "prioritized=maybe"], "`prioritized` must be true or false"),
    (["--hidden-sizes", "64,x"], "`hidden_sizes[1]` must be an integer"),
    (["--hidden-sizes", "64,0"], "`hidden_sizes`"),
    (["--total-steps", "0"], "`total_steps` must be >= 1"),
    (["--set", "seed=18446744073709551616"], "`seed`"),
])
def test_bad_config_values_leave_no_run_dir(capsys, tmp_path, args, fragment):
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "dqn", "--quiet", "--run-dir", run_dir, *args)
    assert_one_line_error(code, err, fragment)
    assert not run_dir.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is missing")
def test_cuda_without_cuda(capsys, tmp_path, trained_run):
    code, _, err = run_cli(capsys, "train", "dqn", "--device", "cuda", "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "CUDA is not available")
    assert not (tmp_path / "r").exists()
    code, _, err = run_cli(capsys, "eval", trained_run, "--device", "cuda")
    assert_one_line_error(code, err, "CUDA is not available")


def test_bad_config_files(capsys, tmp_path):
    run_dir = tmp_path / "run"
    cases = {
        "missing.toml": (None, "does not exist"),
        "bad.toml": ("total_steps = = 3\n", "not valid TOML"),
        "bad.json": ("{not json", "not valid JSON"),
        "list.json": ("[1, 2]", "must hold a table/object"),
        "binary.json": (b"\xff\xfe\x00", "not valid JSON"),
        "typo.toml": ("learning_rat = 0.1\n", "unknown field(s) learning_rat"),
        "wrongtype.json": ('{"batch_size": "64"}', "`batch_size` must be an integer"),
        "other.json": ('{"algorithm": "ppo", "seed": 1}', "is for 'ppo', not 'dqn'"),
    }
    for name, (content, fragment) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        code, _, err = run_cli(capsys, "train", "dqn", "--config", path, "--run-dir", run_dir)
        assert_one_line_error(code, err, fragment)
    (tmp_path / "adir").mkdir()
    code, _, err = run_cli(capsys, "train", "dqn", "--config", tmp_path / "adir", "--run-dir", run_dir)
    assert_one_line_error(code, err, "is a directory")
    assert not run_dir.exists()


def test_run_dir_and_runs_root_that_cannot_be_used(capsys, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = run_cli(capsys, "train", "dqn", "--run-dir", a_file)
    assert_one_line_error(code, err, "--run-dir", "is not a directory")
    code, _, err = run_cli(capsys, "train", "dqn", "--run-dir", a_file / "run")
    assert_one_line_error(code, err, "--run-dir", "cannot be created")
    code, _, err = run_cli(capsys, "train", "dqn", "--runs-root", a_file)
    assert_one_line_error(code, err, "--runs-root", "is not a directory")
    code, _, err = run_cli(capsys, "train", "dqn", "--runs-root", a_file / "sub")
    assert_one_line_error(code, err, "--runs-root", "cannot be created")
    assert a_file.read_text() == "x"


def test_eval_and_export_errors(capsys, tmp_path, trained_run):
    code, _, err = run_cli(capsys, "eval", tmp_path / "missing")
    assert_one_line_error(code, err, "does not exist")
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(capsys, "eval", tmp_path / "file")
    assert_one_line_error(code, err, "is not a directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "eval", empty)
    assert_one_line_error(code, err, "no checkpoint")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "checkpoint.pt").write_bytes(b"definitely not a checkpoint")
    code, _, err = run_cli(capsys, "eval", corrupt)
    assert_one_line_error(code, err, "not a readable rltorch checkpoint")
    code, _, err = run_cli(capsys, "eval", trained_run, "--episodes", "0")
    assert code == 2 and "--episodes" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "eval", trained_run, "--seed", "-3")
    assert code == 2 and "--seed" in err
    code, _, err = run_cli(capsys, "eval", trained_run, "--device", "foo")
    assert_one_line_error(code, err, "`device`")
    code, _, err = run_cli(capsys, "export", trained_run, "--output", tmp_path / "file" / "policy.ts")
    assert_one_line_error(code, err, "`path`", "existing directory")
    code, _, err = run_cli(capsys, "export", trained_run, "--output", tmp_path / "nodir" / "policy.ts")
    assert_one_line_error(code, err, "`path`")
    code, _, err = run_cli(capsys, "export", trained_run, "--output", tmp_path)
    assert_one_line_error(code, err, "`path`")


def test_malicious_checkpoint_is_refused(capsys, tmp_path, trained_run):
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "evil_run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text((trained_run / "config.json").read_text())
    write_malicious_pickle(run_dir / "checkpoint.pt", marker)
    for command in ("eval", "export"):
        code, _, err = run_cli(capsys, command, run_dir)
        assert_one_line_error(code, err, "rltorch never runs code from a file")
        assert not marker.exists()


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling this would create the marker file


def write_malicious_pickle(path, marker):
    torch.save({"format": 2, "algorithm": "dqn", "config": {}, "payload": _Exploit(marker)}, path)


# ---------------------------------------------------------------- damaged files, unwritable outputs, bad env data


def test_resume_from_a_damaged_checkpoint_is_one_line_naming_the_file(capsys, tmp_path, trained_run):
    from tests.test_agent_frame import _flip_a_tensor_byte

    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes((trained_run / "checkpoint.pt").read_bytes())
    _flip_a_tensor_byte(flipped)
    code, _, err = run_cli(capsys, "train", "dqn", "--resume", flipped, "--run-dir", tmp_path / "resumed")
    assert_one_line_error(code, err, str(flipped), "is damaged")
    assert not (tmp_path / "resumed").exists()
    code, _, err = run_cli(capsys, "train", "dqn", "--resume", trained_run / "checkpoint.pt", "--quiet",
                           "--run-dir", tmp_path / "resumed")  # the undamaged file resumes
    assert code in (0, 1), err


def test_export_to_an_unwritable_output_is_one_line(capsys, trained_run):
    code, _, err = run_cli(capsys, "export", trained_run, "--output", "/proc/rltorch-policy.ts")
    assert_one_line_error(code, err, "--output", "/proc/rltorch-policy.ts")


def _nan_reward_env(at: int):
    import gymnasium as gym

    class NaNReward(gym.Wrapper):
        """CartPole whose ``at``-th step (counted over the process) returns a NaN reward."""

        calls = 0

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            NaNReward.calls += 1
            return obs, float("nan") if NaNReward.calls == at else reward, terminated, truncated, info

    return lambda **kwargs: NaNReward(gym.make("CartPole-v1", **kwargs))


def test_non_finite_env_data_stops_the_run_and_keeps_the_last_good_checkpoint(capsys, tmp_path):
    import gymnasium as gym

    from rltorch.agents import PPO

    gym.register("rltorch-test/NaNRewardCartPole-v0", entry_point=_nan_reward_env(at=4 * 110))
    try:
        run_dir = tmp_path / "run"
        code, _, err = run_cli(capsys, "train", "ppo", "--env", "rltorch-test/NaNRewardCartPole-v0", "--num-envs",
                               "4", "--num-steps", "8", "--total-steps", "4096", "--log-interval", "64",
                               "--checkpoint-every", "64", "--eval-interval", "1000000", "--device", "cpu", "--quiet",
                               "--run-dir", run_dir)
        assert code == 1 and "Traceback" not in err, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "non-finite reward or observation" in lines[0], err
        assert "'rltorch-test/NaNRewardCartPole-v0'" in lines[0] and "last checkpoint" in lines[0]
        # The NaN came in the vector step after env step `bad` (the 440th sub-env step, later than env step 436
        # since gymnasium's reset calls are no steps): the checkpoint of the last row before it is the one left.
        bad = int(lines[0].split("after env step ")[1].split(";")[0])
        assert 436 <= bad < 600
        agent = PPO.load(run_dir / "checkpoint.pt")
        assert agent.env_steps == bad // 64 * 64
        assert all(bool(torch.isfinite(p).all()) for p in agent.net.parameters())
        agent.close()
    finally:
        del gym.registry["rltorch-test/NaNRewardCartPole-v0"]


def test_bc_expert_that_is_no_fitting_agent_leaves_nothing_behind(capsys, tmp_path, trained_run):
    not_a_checkpoint = tmp_path / "notes.txt"
    not_a_checkpoint.write_text("not a checkpoint")
    classifier_run = tmp_path / "classifier"
    assert run_cli(capsys, "train", "classifier", "--num-samples", "200", "--epochs", "1", "--quiet",
                   "--device", "cpu", "--run-dir", classifier_run)[0] == 0
    acrobot_run = tmp_path / "acrobot"
    assert run_cli(capsys, "train", "dqn", "--env", "Acrobot-v1", "--total-steps", "64", "--learning-starts", "32",
                   "--batch-size", "32", "--num-envs", "2", "--eval-interval", "1000000", "--hidden-sizes", "8",
                   "--device", "cpu", "--quiet", "--no-stop", "--run-dir", acrobot_run)[0] in (0, 1)
    for expert, fragment in ((not_a_checkpoint, "is not a trained agent"),
                             (classifier_run, "is not a trained agent"),
                             (acrobot_run, "is a dqn agent for Acrobot-v1"),
                             (tmp_path / "missing", "does not exist")):
        run_dir = tmp_path / "bc"
        code, _, err = run_cli(capsys, "train", "bc", "--expert", expert, "--device", "cpu", "--run-dir", run_dir)
        assert_one_line_error(code, err, "`expert`", str(expert), fragment)
        assert not run_dir.exists()
    code, _, err = run_cli(capsys, "train", "bc", "--expert", trained_run, "--device", "cpu", "--quiet",
                           "--num-samples", "500", "--total-steps", "500", "--no-stop", "--run-dir", tmp_path / "ok")
    assert code == 0, err  # a CartPole agent is an expert


def test_ppo_rejects_an_init_log_std_that_makes_infinite_actions(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "ppo", "--env", "Pendulum-v1", "--init-log-std", "1000",
                           "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "`init_log_std` must lie in [-20, 2]")
    assert not (tmp_path / "r").exists()
