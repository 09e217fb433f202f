"""rltorch.classifiers: accuracy on made-up data, metrics against hand-computed tables, files and exports that
round-trip exactly, seeded determinism, every input kind, env-collected data, and errors that name the argument."""

import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from rltorch.classifiers import (
    BinaryClassifier, LinearExpert, MulticlassClassifier, MultilabelClassifier, NotFittedError, classification_metrics,
    collect_expert_pairs, collect_failure_pairs, confusion_matrix, load_classifier, make_blobs, make_circles,
    make_moons, make_multilabel, make_spirals, multilabel_metrics, train_test_split,
)
from rltorch.classifiers.env_data import _failure_labels
from rltorch.envs import CartPoleVecEnv
from rltorch.nn import cnn

FIT = dict(epochs=30, batch_size=64, lr=3e-3)
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning"), pytest.mark.usefixtures("one_thread")]  # loading the TorchScript exports




def split(data, seed=0):
    X, y = data
    return train_test_split(X, y, 0.25, seed=seed)


def one_hot(y, k):
    return torch.nn.functional.one_hot(y, k)


# ---------------------------------------------------------------- accuracy


@pytest.mark.parametrize("dataset", ["circles", "blobs"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_each_classifier_reaches_99_percent(dataset, kind):
    X, y = make_circles(2000, seed=1) if dataset == "circles" else make_blobs(2000, num_classes=4, seed=1)
    k = int(y.max()) + 1
    if kind == "binary":
        y = (y == 0).long()  # blobs: class 0 against the other three
        clf = BinaryClassifier(seed=0)
    elif kind == "multiclass":
        clf = MulticlassClassifier(seed=0)
    else:
        y = one_hot(y, k)
        clf = MultilabelClassifier(seed=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, 0.25, seed=2)
    clf.fit(X_train, y_train, **FIT)
    scores = clf.evaluate(X_test, y_test)
    assert scores["accuracy"] >= 0.99, scores
    assert len(clf.history) == FIT["epochs"]


def test_multilabel_macro_f1():
    X_train, X_test, y_train, y_test = split(make_multilabel(4000, num_labels=4, seed=3))
    clf = MultilabelClassifier(seed=0).fit(X_train, y_train, epochs=40, batch_size=64, lr=3e-3)
    scores = clf.evaluate(X_test, y_test)
    assert scores["f1_macro"] >= 0.95, scores
    assert len(scores["f1"]) == 4 and np.asarray(scores["confusion_matrix"]).shape == (4, 2, 2)


@pytest.mark.parametrize("make", [make_moons, make_spirals])
def test_nonlinear_sets_are_learned(make):
    X_train, X_test, y_train, y_test = split(make(3000, seed=0))
    clf = MulticlassClassifier(hidden_sizes=(64, 64), seed=0).fit(X_train, y_train, epochs=40, batch_size=64, lr=5e-3)
    assert clf.evaluate(X_test, y_test)["accuracy"] >= 0.97


def bars(n, seed):
    """8x8 one-channel images: a horizontal (class 0) or vertical (class 1) bar, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    pos = torch.randint(1, 7, (n,), generator=g)
    X = 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    rows = torch.arange(n)
    X[rows[y == 0], 0, pos[y == 0], :] += 1.5
    X[rows[y == 1], 0, :, pos[y == 1]] += 1.5
    return X, y


def test_cnn_backbone_on_images(tmp_path):
    X_train, X_test, y_train, y_test = split(bars(1200, 0))
    clf = MulticlassClassifier(backbone="cnn", channels=(8, 16), hidden_sizes=(32,), seed=0)
    clf.fit(X_train, y_train, epochs=8, batch_size=64, lr=3e-3)
    assert clf.evaluate(X_test, y_test)["accuracy"] >= 0.99
    expected = clf.predict_proba(X_test)
    loaded = load_classifier(clf.save(tmp_path / "cnn.pt"))
    assert torch.equal(loaded.predict_proba(X_test), expected)
    scripted = torch.jit.load(clf.export(tmp_path / "cnn.ts", output="proba"))
    assert torch.equal(scripted(X_test), expected)


def test_cnn_builder_shapes():
    net = cnn((3, 5, 5), (4, 8), 3)
    assert net(torch.randn(2, 3, 5, 5)).shape == (2, 3)
    with pytest.raises(ValueError, match="in_shape"):
        cnn((5, 5), (4,), 3)
    with pytest.raises(ValueError, match="kernel_size"):
        cnn((1, 8, 8), (4,), 2, kernel_size=2)


# ---------------------------------------------------------------- metrics


def test_metrics_match_a_hand_computed_table():
    y_true = torch.tensor([0, 0, 1, 1, 2, 2, 3])
    y_pred = torch.tensor([0, 1, 1, 1, 0, 2, 0])  # class 3 is never predicted
    m = classification_metrics(y_true, y_pred, 4)
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0]]
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["precision"] == pytest.approx([1 / 3, 2 / 3, 1.0, 0.0])
    assert m["recall"] == pytest.approx([0.5, 1.0, 0.5, 0.0])
    assert m["f1"] == pytest.approx([0.4, 0.8, 2 / 3, 0.0])
    assert m["support"] == [2, 2, 2, 1]
    assert m["precision_macro"] == pytest.approx(0.5)
    assert m["recall_macro"] == pytest.approx(0.5)
    assert m["f1_macro"] == pytest.approx((0.4 + 0.8 + 2 / 3) / 4)
    # A fifth class absent from both: zeros everywhere, and it counts in the macro average.
    m5 = classification_metrics(y_true, y_pred, 5)
    assert m5["precision"][4] == m5["recall"][4] == m5["f1"][4] == 0.0 and m5["support"][4] == 0
    assert m5["f1_macro"] == pytest.approx((0.4 + 0.8 + 2 / 3) / 5)


def test_multilabel_metrics_match_a_hand_computed_table():
    y_true = torch.tensor([[1, 0], [1, 1], [0, 0]])
    y_pred = torch.tensor([[1, 0], [0, 1], [1, 0]])
    m = multilabel_metrics(y_true, y_pred)
    assert m["confusion_matrix"] == [[[0, 1], [1, 1]], [[2, 0], [0, 1]]]  # per label [[tn, fp], [fn, tp]]
    assert m["accuracy"] == pytest.approx(1 / 3) and m["label_accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx([0.5, 1.0]) and m["recall"] == pytest.approx([0.5, 1.0])
    assert m["f1_macro"] == pytest.approx(0.75) and m["support"] == [2, 1]


def test_evaluate_agrees_with_the_metric_functions():
    X_train, X_test, y_train, y_test = split(make_blobs(800, num_classes=3, cluster_std=2.5, seed=4))
    clf = MulticlassClassifier(seed=0).fit(X_train, y_train, epochs=3)
    scores = clf.evaluate(X_test, y_test)
    direct = classification_metrics(y_test, clf.predict(X_test), 3)
    assert {k: v for k, v in scores.items() if k != "loss"} == direct
    expected_loss = torch.nn.functional.cross_entropy(clf.decision_function(X_test), y_test).item()
    assert scores["loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert torch.equal(confusion_matrix(y_test, clf.predict(X_test), 3), torch.tensor(direct["confusion_matrix"]))


# ---------------------------------------------------------------- files, exports, determinism


FITTED = {
    "binary": lambda: BinaryClassifier(hidden_sizes=(16,), seed=0).fit(*make_circles(300, seed=0), epochs=2),
    "multiclass": lambda: MulticlassClassifier(hidden_sizes=(16, 16), batch_norm=True, dropout=0.1, seed=0).fit(
        *make_blobs(300, num_classes=3, seed=0), epochs=2),
    "multilabel": lambda: MultilabelClassifier(hidden_sizes=(16,), seed=0).fit(*make_multilabel(300, seed=0),
                                                                               epochs=2),
}


@pytest.mark.parametrize("kind", sorted(FITTED))
def test_save_load_and_exports_round_trip_exactly(kind, tmp_path):
    clf = FITTED[kind]()
    X = torch.randn(57, 2)
    labels, proba, logits = clf.predict(X), clf.predict_proba(X), clf.decision_function(X)
    loaded = load_classifier(clf.save(tmp_path / "clf.pt"))
    assert type(loaded) is type(clf) and loaded.get_params() == clf.get_params()
    assert loaded.history == clf.history
    for key, value in clf.network.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], value), key
    assert torch.equal(loaded.predict(X), labels) and torch.equal(loaded.predict_proba(X), proba)
    assert torch.equal(type(clf).load(tmp_path / "clf.pt").decision_function(X), logits)
    for output, expected in (("labels", labels), ("proba", proba), ("logits", logits)):
        scripted = torch.jit.load(clf.export(tmp_path / f"{output}.ts", output=output))
        assert torch.equal(scripted(X), expected), output
    program = torch.export.load(clf.export(tmp_path / "clf.pt2", format="export", output="proba")).module()
    assert torch.equal(program(X), proba)
    assert torch.equal(program(X[:1]), clf.predict_proba(X[:1]))  # the batch dimension stays dynamic


def test_checkpoints_hold_plain_types_and_refuse_code(tmp_path):
    path = FITTED["multiclass"]().save(tmp_path / "clf.pt")
    torch.load(path, weights_only=True)  # plain types and tensors only

    class Payload:
        def __reduce__(self):
            return (print, ("ran code from a file",))

    evil = tmp_path / "evil.pt"
    torch.save({"kind": "rltorch.classifier", "x": Payload()}, evil)
    with pytest.raises(ValueError, match="never runs code"):
        load_classifier(evil)
    torch.save({"kind": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an rltorch classifier"):
        load_classifier(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a BinaryClassifier"):
        BinaryClassifier.load(path)
    with pytest.raises(FileNotFoundError):
        load_classifier(tmp_path / "missing.pt")


def test_same_seed_same_model_other_seed_other_model():
    X, y = make_moons(500, seed=0)

    def weights(seed):
        clf = MulticlassClassifier(hidden_sizes=(16, 16), dropout=0.2, seed=seed)
        clf.fit(X, y, epochs=3, batch_size=32, validation_split=0.2)
        return torch.cat([p.flatten() for p in clf.network.parameters()])

    assert torch.equal(weights(7), weights(7))
    assert not torch.equal(weights(7), weights(8))


def test_repeated_fit_continues_training():
    X, y = make_circles(400, seed=0)
    clf = BinaryClassifier(seed=0).fit(X, y, epochs=2)
    optimizer = clf.optimizer
    clf.fit(X, y, epochs=2)
    assert clf.optimizer is optimizer and [row["epoch"] for row in clf.history] == [1, 2, 3, 4]
    clf.fit(X, y, epochs=1, lr=1e-4)  # other settings: a fresh optimizer
    assert clf.optimizer is not optimizer


# ---------------------------------------------------------------- inputs


class PairDataset(Dataset):
    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], self.y[i]


def test_numpy_tensor_dataset_and_loader_inputs():
    X_train, X_test, y_train, y_test = split(make_circles(1200, seed=5))
    from_numpy = MulticlassClassifier(seed=0).fit(X_train.numpy(), y_train.numpy(), **FIT)
    predicted = from_numpy.predict(X_test.numpy())
    assert isinstance(predicted, np.ndarray) and predicted.dtype == np.int64
    assert isinstance(from_numpy.predict(X_test), torch.Tensor)
    from_tensors = MulticlassClassifier(seed=0).fit(X_train, y_train, **FIT)
    from_dataset = MulticlassClassifier(seed=0).fit(TensorDataset(X_train, y_train), **FIT)
    # Same data, same seed, same batching by index: the same model.
    assert torch.equal(from_tensors.predict_proba(X_test), from_dataset.predict_proba(X_test))
    assert torch.equal(from_tensors.predict_proba(X_test), from_numpy.predict_proba(X_test))
    streamed = MulticlassClassifier(seed=0).fit(
        DataLoader(PairDataset(X_train, y_train), batch_size=64, shuffle=True,
                   generator=torch.Generator().manual_seed(0)),
        epochs=30, lr=3e-3, validation_data=PairDataset(X_test, y_test))
    assert streamed.history[-1]["val_accuracy"] >= 0.99
    assert streamed.evaluate(PairDataset(X_test, y_test))["accuracy"] >= 0.99
    assert torch.equal(streamed.predict(PairDataset(X_test, y_test)), streamed.predict(X_test))


def test_validation_and_early_stopping_restore_the_best_weights():
    X_train, X_val, y_train, y_val = split(make_blobs(600, num_classes=4, cluster_std=3.0, seed=6))
    clf = MulticlassClassifier(hidden_sizes=(128, 128), seed=0)
    clf.fit(X_train, y_train, epochs=200, batch_size=32, lr=1e-2, validation_data=(X_val, y_val), early_stopping=3)
    history = clf.history
    assert len(history) < 200  # stopped early (noisy, overlapping blobs overfit)
    best = min(row["val_loss"] for row in history)
    assert history[-4]["val_loss"] == best and all(row["val_loss"] > best for row in history[-3:])
    assert clf.evaluate(X_val, y_val)["loss"] == pytest.approx(best, rel=1e-5)


def test_progress_bar_and_callback(capsys):
    rows = []
    X, y = make_circles(200, seed=0)
    BinaryClassifier(seed=0).fit(X, y, epochs=2, progress=True, callback=rows.append, validation_split=0.25)
    assert [row["epoch"] for row in rows] == [1, 2] and {"loss", "val_loss", "val_accuracy"} <= set(rows[0])
    assert "epoch 1" in capsys.readouterr().err


def test_class_weights_and_label_smoothing_reach_the_loss():
    X, y = make_blobs(300, num_classes=3, seed=0)
    clf = MulticlassClassifier(class_weights=[1.0, 2.0, 3.0], label_smoothing=0.1, seed=0).fit(X, y, epochs=1)
    logits = clf.decision_function(X)
    expected = torch.nn.functional.cross_entropy(logits, y, weight=torch.tensor([1.0, 2.0, 3.0]),
                                                 label_smoothing=0.1)
    assert clf.evaluate(X, y)["loss"] == pytest.approx(expected.item(), rel=1e-6)


# ---------------------------------------------------------------- data from the env


def test_linear_expert_scores_500():
    env = CartPoleVecEnv(200, seed=11, autoreset_mode="same_step")
    expert = LinearExpert()
    obs, _ = env.reset()
    total = torch.zeros(200)
    done = torch.zeros(200, dtype=torch.bool)
    for _ in range(500):
        obs, reward, terminated, truncated, _ = env.step(expert(obs))
        total += reward * ~done
        done |= terminated | truncated
    assert done.all() and bool((total == 500).all())


@pytest.mark.parametrize("backend", ["rltorch", "gymnasium-sync"])
def test_expert_pairs_are_the_experts_actions_on_live_states(backend):
    expert = LinearExpert()
    env = None if backend == "rltorch" else gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 8)
    obs, actions = collect_expert_pairs(expert, 3000, env=env, num_envs=64, epsilon=0.5, seed=1)
    assert obs.shape == (3000, 4) and obs.dtype == torch.float32 and actions.dtype == torch.int64
    assert torch.equal(actions, expert(obs))  # labels stay the expert's even where random actions ran
    # Only states the expert acted in: no terminal observation (gymnasium's NEXT_STEP reset rows are dropped).
    assert bool((obs[:, 0].abs() <= 2.4).all()) and bool((obs[:, 2].abs() <= 12 * 2 * math.pi / 360).all())
    again = collect_expert_pairs(expert, 3000, env=None if env is None else gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1")] * 8), num_envs=64, epsilon=0.5, seed=1)
    assert torch.equal(again[0], obs)  # seeded


def test_failure_labels_match_a_hand_computed_table():
    # One env, 8 steps: falls on step 2 (terminated), a new episode truncates on step 5, then 2 more steps unseen.
    terminated = torch.tensor([0, 0, 1, 0, 0, 0, 0, 0], dtype=torch.bool).unsqueeze(1)
    truncated = torch.tensor([0, 0, 0, 0, 0, 1, 0, 0], dtype=torch.bool).unsqueeze(1)
    rows = {"terminated": terminated, "truncated": truncated, "valid": torch.ones(8, 1, dtype=torch.bool),
            "obs": torch.arange(8.0).reshape(8, 1, 1)}
    obs, falls = _failure_labels(rows, horizon=2)
    # steps 0-2 are 3, 2, 1 steps from the fall; 3-5 end by truncation (0); rows 7 is too close to the end
    # to know; row 6 sees 2 steps (6, 7) without a fall: 0.
    assert obs.flatten().tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert falls.tolist() == [0, 1, 1, 0, 0, 0, 0]


def test_failure_pairs_and_predictor():
    X, y = collect_failure_pairs(LinearExpert(), 6000, horizon=10, seed=0)
    assert X.shape == (6000, 4) and set(y.unique().tolist()) == {0, 1}
    assert 0.1 < y.float().mean().item() < 0.5
    X_train, X_test, y_train, y_test = train_test_split(X, y, 0.25, seed=0)
    clf = BinaryClassifier(seed=0).fit(X_train, y_train, epochs=10, batch_size=128, lr=3e-3)
    majority = max(y_test.float().mean().item(), 1 - y_test.float().mean().item())
    assert clf.evaluate(X_test, y_test)["accuracy"] > majority + 0.05


# ---------------------------------------------------------------- errors


def fitted_multiclass():
    return MulticlassClassifier(hidden_sizes=(8,), seed=0).fit(torch.randn(20, 2), torch.arange(20) % 3, epochs=1)


X2 = torch.randn(10, 2)
Y3 = torch.arange(10) % 3

ERRORS = [
    # (call, exception, fragment of the message)
    (lambda: MulticlassClassifier(num_classes=3).fit(X2, Y3 + 1), ValueError, "`y` holds labels outside [0, 3)"),
    (lambda: MulticlassClassifier().fit(X2, Y3 - 1), ValueError, "`y` holds labels outside"),
    (lambda: MulticlassClassifier().fit(X2, Y3.float()), TypeError, "`y` must hold integer class labels"),
    (lambda: MulticlassClassifier().fit(X2, Y3.bool()), TypeError, "`y` must hold integer class labels"),
    (lambda: MulticlassClassifier().fit(X2, Y3[:9]), ValueError, "`X` and `y` differ in length"),
    (lambda: MultilabelClassifier().fit(X2, torch.full((10, 3), 2)), ValueError, "`y` must hold only 0 and 1"),
    (lambda: MultilabelClassifier().fit(X2, torch.ones(10)), ValueError, "`y` must be [samples, labels]"),
    (lambda: BinaryClassifier().fit(X2, Y3), ValueError, "`y` must hold only 0 and 1"),
    (lambda: BinaryClassifier().fit(torch.empty(0, 2), torch.empty(0, dtype=torch.long)), ValueError, "`X` is empty"),
    (lambda: MulticlassClassifier().fit(TensorDataset(torch.empty(0, 2), torch.empty(0, dtype=torch.long))),
     ValueError, "empty"),
    (lambda: BinaryClassifier().fit(torch.tensor([[0.0, math.nan]] * 4), torch.tensor([0, 1, 0, 1])), ValueError,
     "`X` contains NaN or infinite"),
    (lambda: BinaryClassifier().fit(torch.tensor([[0.0, math.inf]] * 4), torch.tensor([0, 1, 0, 1])), ValueError,
     "`X` contains NaN or infinite"),
    (lambda: BinaryClassifier().fit(torch.randn(4), torch.tensor([0, 1, 0, 1])), ValueError, "`X` must be [samples"),
    (lambda: BinaryClassifier().fit([["a", "b"]], [0]), TypeError, "`X` must be numeric"),
    (lambda: BinaryClassifier().fit(X2), TypeError, "`y` is required"),
    (lambda: MulticlassClassifier().predict(X2), NotFittedError, "not fitted yet: call fit(X, y) before predict"),
    (lambda: MulticlassClassifier().evaluate(X2, Y3), NotFittedError, "before evaluate"),
    (lambda: MulticlassClassifier().save("never.pt"), NotFittedError, "not fitted"),
    (lambda: fitted_multiclass().predict(torch.randn(5, 3)), ValueError, "`X` has samples of shape (3,)"),
    (lambda: fitted_multiclass().predict(torch.tensor([[math.nan, 0.0]])), ValueError, "`X` contains NaN"),
    (lambda: fitted_multiclass().fit(X2, Y3 + 5), ValueError, "`y` holds labels outside [0, 3)"),
    (lambda: MulticlassClassifier().fit(X2, Y3, epochs=0), ValueError, "`epochs` must be an integer >= 1"),
    (lambda: MulticlassClassifier().fit(X2, Y3, batch_size=0), ValueError, "`batch_size`"),
    (lambda: MulticlassClassifier().fit(X2, Y3, lr=-1.0), ValueError, "`lr` must lie in (0, inf)"),
    (lambda: MulticlassClassifier().fit(X2, Y3, lr=math.nan), ValueError, "`lr`"),
    (lambda: MulticlassClassifier().fit(X2, Y3, optimizer="rmsprop"), ValueError, "`optimizer` must be one of"),
    (lambda: MulticlassClassifier().fit(X2, Y3, weight_decay=-0.1), ValueError, "`weight_decay`"),
    (lambda: MulticlassClassifier().fit(X2, Y3, validation_split=1.0), ValueError, "`validation_split`"),
    (lambda: MulticlassClassifier().fit(X2, Y3, validation_split=0.01), ValueError, "leaves an empty split"),
    (lambda: MulticlassClassifier().fit(X2, Y3, monitor="val_loss"), ValueError, "`monitor`='val_loss' needs"),
    (lambda: MulticlassClassifier().fit(X2, Y3, early_stopping=0), ValueError, "`early_stopping`"),
    (lambda: MulticlassClassifier().fit(X2, Y3, validation_data=(X2, Y3[:5])), ValueError, "differ in length"),
    (lambda: MulticlassClassifier().fit(X2, Y3, validation_data=(torch.randn(10, 3), Y3)), ValueError,
     "`validation_data` has samples of shape"),
    (lambda: MulticlassClassifier().fit(X2, Y3, callback=3), TypeError, "`callback` must be callable"),
    (lambda: MulticlassClassifier(hidden_sizes=[0]), ValueError, "`hidden_sizes`"),
    (lambda: MulticlassClassifier(dropout=1.0), ValueError, "`dropout` must lie in [0, 1)"),
    (lambda: MulticlassClassifier(activation="swish9"), ValueError, "`activation` must be one of"),
    (lambda: MulticlassClassifier(backbone="rnn"), ValueError, "`backbone` must be one of"),
    (lambda: MulticlassClassifier(num_classes=1), ValueError, "`num_classes` must be an integer >= 2"),
    (lambda: MulticlassClassifier(label_smoothing=1.0), ValueError, "`label_smoothing`"),
    (lambda: MulticlassClassifier(num_classes=3, class_weights=[1.0, 2.0]), ValueError, "`class_weights` has 2"),
    (lambda: MulticlassClassifier(class_weights=[1.0, -2.0]), ValueError, "`class_weights` must be finite"),
    (lambda: BinaryClassifier(threshold=1.0), ValueError, "`threshold`"),
    (lambda: BinaryClassifier(device="tpu"), ValueError, "`device`"),
    (lambda: BinaryClassifier(seed=1.5), TypeError, "`seed` must be an integer"),
    (lambda: MulticlassClassifier(backbone="cnn").fit(X2, Y3), ValueError, "`X` must be [samples, channels"),
    (lambda: MulticlassClassifier().fit(torch.randn(10, 1, 4, 4), Y3), ValueError, "flatten it or use backbone='cnn'"),
    (lambda: fitted_multiclass().export("x.ts", format="onnx"), ValueError, "`format` must be"),
    (lambda: fitted_multiclass().as_module("votes"), ValueError, "`output` must be"),
    (lambda: make_circles(0), ValueError, "`n_samples`"),
    (lambda: make_circles(10, factor=1.5), ValueError, "`factor`"),
    (lambda: make_blobs(10, num_classes=1), ValueError, "`num_classes`"),
    (lambda: train_test_split(X2, Y3, test_size=0.0), ValueError, "`test_size`"),
    (lambda: confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), 3), ValueError, "`y_true` holds labels"),
    (lambda: confusion_matrix(torch.tensor([0.0]), torch.tensor([0]), 3), TypeError, "`y_true` must hold integer"),
    (lambda: collect_expert_pairs(LinearExpert(), 0), ValueError, "`num_samples`"),
    (lambda: collect_expert_pairs(LinearExpert(), 10, epsilon=2.0), ValueError, "`epsilon`"),
    (lambda: collect_failure_pairs(LinearExpert(), 10, horizon=0), ValueError, "`horizon`"),
    (lambda: LinearExpert([1.0, 2.0]), ValueError, "`weights`"),
]


@pytest.mark.parametrize("call, error, fragment", ERRORS, ids=[f"error{i}" for i in range(len(ERRORS))])
def test_bad_input_raises_a_clear_error(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


def test_rejected_fit_changes_nothing():
    clf = MulticlassClassifier(seed=0)
    with pytest.raises(ValueError):
        clf.fit(X2, Y3 - 1)
    assert clf.num_classes is None and clf.network is None and not clf.is_fitted
    clf = fitted_multiclass()
    before = {k: v.clone() for k, v in clf.network.state_dict().items()}
    history = list(clf.history)
    with pytest.raises(ValueError):
        clf.fit(X2, Y3, validation_data=(X2, Y3 + 7))
    assert clf.history == history
    assert all(torch.equal(before[k], v) for k, v in clf.network.state_dict().items())


def test_not_fitted_error_is_a_value_error():
    assert issubclass(NotFittedError, ValueError)
    with pytest.raises(ValueError):
        BinaryClassifier().predict_proba(X2)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch notes the foreign file's protocol
def test_pickle_protocol_is_not_used_for_checkpoints(tmp_path):
    # A checkpoint is read with weights_only=True: a plain pickle of the object is not a checkpoint.
    path = tmp_path / "pickled.pt"
    with open(path, "wb") as f:
        pickle.dump({"kind": "rltorch.classifier"}, f)
    with pytest.raises(ValueError):
        load_classifier(path)
