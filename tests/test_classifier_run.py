"""`rltorch train classifier` and `rltorch export` of a classifier run under bad input: every mistake is found
before the run directory exists and reported in one line (exit 2), and the run lives above the classifiers."""

import os

import pytest
import torch

from rltorch import runs
from rltorch.apps.classifier_run import ClassifierConfig, prepare
from rltorch.classifiers import BinaryClassifier, make_circles
from tests.test_cli import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


def one_line_error(code, err, fragment):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("rltorch: error:"), err
    assert fragment in lines[0], err


@pytest.fixture
def not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("an existing file that is no checkpoint\n")
    return path


@pytest.mark.parametrize("args, fragment", [
    (["--dataset", "cartpole-bc", "--expert", "NOT_A_CHECKPOINT"], "--expert"),
    (["--dataset", "cartpole-fail", "--expert", "CLASSIFIER_CHECKPOINT"], "--expert"),
    (["--dataset", "cartpole-bc", "--expert", "EMPTY_DIR"], "holds no checkpoint.pt"),
    (["--noise", "1e39"], "`noise` 1e+39 is too large for the circles data"),
    (["--dataset", "blobs", "--noise", "1e39"], "`noise` 1e+39 is too large for the blobs data"),
    (["--num-samples", "20", "--validation-split", "0.01"], "`validation_split` 0.01 of the 15 training samples"),
    (["--num-samples", "20", "--test-fraction", "0.01"], "`test_fraction` 0.01 of 20 samples leaves an empty split"),
    (["--hidden-sizes", "0"], "`hidden_sizes`"),
])
def test_bad_input_is_found_before_the_run_directory_exists(tmp_path, capsys, not_a_checkpoint, args, fragment):
    classifier = tmp_path / "classifier.pt"
    BinaryClassifier(hidden_sizes=(4,), epochs=1).fit(*make_circles(40, seed=0)).save(classifier)
    (tmp_path / "empty").mkdir()
    places = {"NOT_A_CHECKPOINT": not_a_checkpoint, "CLASSIFIER_CHECKPOINT": classifier,
              "EMPTY_DIR": tmp_path / "empty"}
    args = [str(places.get(a, a)) for a in args]
    run_dir = tmp_path / "never"
    code, out, err = run_cli(capsys, "train", "classifier", "--quiet", "--device", "cpu", "--run-dir", run_dir, *args)
    one_line_error(code, err, fragment)
    assert not run_dir.exists()


def test_prepare_makes_and_splits_the_data_and_checks_the_classifier():
    prepared = prepare(ClassifierConfig(num_samples=100, validation_split=0.1, epochs=1, device="cpu"))
    assert len(prepared.X_train) == 75 and len(prepared.X_test) == 25
    assert prepared.classifier.epochs == 1 and not prepared.classifier.is_fitted


def classifier_run(tmp_path, state_changes=None):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runs.write_config(str(run_dir), "classifier", ClassifierConfig())
    clf = BinaryClassifier(hidden_sizes=(4,), epochs=1).fit(*make_circles(40, seed=0))
    state = {**clf.state_dict(), **(state_changes or {})}
    torch.save(state, run_dir / runs.CHECKPOINT_FILE)
    return run_dir


@pytest.mark.parametrize("changes, fragment", [
    ({"network": {}}, "`network.0.mean` is missing"),
    ({"params": {"hidden_sizes": "wide"}}, "`hidden_sizes`"),
    ({"input_shape": "2"}, "`input_shape`"),
    ({"optimizer_settings": None}, "`optimizer_settings`"),
])
def test_export_of_a_crafted_classifier_run_is_a_one_line_error(tmp_path, capsys, changes, fragment):
    run_dir = classifier_run(tmp_path, changes)
    code, out, err = run_cli(capsys, "export", run_dir)
    one_line_error(code, err, fragment)
    assert "checkpoint.pt" in err and not (run_dir / "policy.ts").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_export_of_a_classifier_run_to_an_unwritable_place_is_a_one_line_error(tmp_path, capsys):
    run_dir = classifier_run(tmp_path)
    code, out, err = run_cli(capsys, "export", run_dir, "--output", tmp_path / "no" / "such" / "dir" / "m.ts")
    one_line_error(code, err, "not in an existing directory")
    code, out, err = run_cli(capsys, "export", run_dir)
    assert code == 0 and os.path.exists(run_dir / "policy.ts"), err
