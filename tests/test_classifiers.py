"""rltorch.classifiers: accuracy on made-up data, metrics against hand-computed tables, any class labels through
``classes_``, warm starts that continue exactly (also across save/load), files and exports that round-trip
exactly and reject crafted files with one-line errors, the thread policy, seeded determinism, every input kind,
env-collected data, the layering, and errors that name the argument."""

import ast
import math
import os
import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from rltorch.classifiers import (
    BinaryClassifier,
    LinearExpert,
    MulticlassClassifier,
    MultilabelClassifier,
    NotFittedError,
    classification_metrics,
    collect_expert_pairs,
    collect_failure_pairs,
    confusion_matrix,
    load_classifier,
    make_blobs,
    make_circles,
    make_moons,
    make_multilabel,
    make_spirals,
    multilabel_metrics,
    train_test_split,
)
from rltorch.classifiers.env_data import _failure_labels
from rltorch.envs import CartPoleVecEnv
from rltorch.nn import cnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = dict(epochs=15, batch_size=64, lr=1e-2)
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning"), pytest.mark.usefixtures("one_thread")]


def split(data, seed=0):
    X, y = data
    return train_test_split(X, y, 0.25, seed=seed)


def one_hot(y, k):
    return torch.nn.functional.one_hot(y, k)


def weights(clf):
    return {k: v.clone() for k, v in clf.network_.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- accuracy


@pytest.mark.parametrize("dataset", ["circles", "blobs"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_each_classifier_reaches_99_percent(dataset, kind):
    X, y = make_circles(1000, seed=1) if dataset == "circles" else make_blobs(1000, num_classes=4, seed=1)
    k = int(y.max()) + 1
    if kind == "binary":
        y = (y == 0).long()  # blobs: class 0 against the other three
        clf = BinaryClassifier(seed=0, **FAST)
    elif kind == "multiclass":
        clf = MulticlassClassifier(seed=0, **FAST)
    else:
        y = one_hot(y, k)
        clf = MultilabelClassifier(seed=0, **FAST)
    X_train, X_test, y_train, y_test = train_test_split(X, y, 0.25, seed=2)
    clf.fit(X_train, y_train)
    scores = clf.evaluate(X_test, y_test)
    assert scores["accuracy"] >= 0.99, scores
    assert clf.score(X_test, y_test) == pytest.approx(scores["accuracy"])
    assert len(clf.history_) == FAST["epochs"] == clf.n_iter_


def test_multilabel_macro_f1():
    X_train, X_test, y_train, y_test = split(make_multilabel(2000, num_labels=4, seed=3))
    clf = MultilabelClassifier(seed=0, epochs=25, batch_size=64, lr=1e-2).fit(X_train, y_train)
    scores = clf.evaluate(X_test, y_test)
    assert scores["f1_macro"] >= 0.95, scores
    assert len(scores["f1"]) == 4 and np.asarray(scores["confusion_matrix"]).shape == (4, 2, 2)
    assert clf.classes_.tolist() == [0, 1, 2, 3] and clf.predict_proba(X_test).shape == (len(X_test), 4)


@pytest.mark.parametrize("make", [make_moons, make_spirals])
def test_nonlinear_sets_are_learned(make):
    X_train, X_test, y_train, y_test = split(make(1500, seed=0))
    clf = MulticlassClassifier(hidden_sizes=(64, 64), seed=0, epochs=30, batch_size=64, lr=1e-2)
    assert clf.fit(X_train, y_train).score(X_test, y_test) >= 0.97


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
    X_train, X_test, y_train, y_test = split(bars(800, 0))
    clf = MulticlassClassifier(backbone="cnn", channels=(8, 16), hidden_sizes=(32,), seed=0, epochs=8, batch_size=64,
                               lr=3e-3)
    clf.fit(X_train, y_train)
    assert clf.evaluate(X_test, y_test)["accuracy"] >= 0.99
    assert clf.input_shape_ == (1, 8, 8) and clf.n_features_in_ == 64
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


# ---------------------------------------------------------------- labels through classes_


def blob_labels(labels, n=300, seed=0):
    X, y = make_blobs(n, num_classes=len(labels), seed=seed)
    return X, np.asarray(labels)[y.numpy()]


@pytest.mark.parametrize("labels", [["cat", "dog", "emu"], [-7, 3, 2**40], [-1.0, 2.0, 9.0], [False, True]])
def test_any_labels_map_through_classes(labels):
    X, y = blob_labels(labels)
    klass = BinaryClassifier if len(labels) == 2 else MulticlassClassifier
    clf = klass(hidden_sizes=(16,), seed=0, **FAST)
    params = clf.get_params()
    clf.fit(X.numpy(), y)
    assert clf.get_params() == params  # nothing the constructor stored is overwritten (num_classes stays None)
    assert clf.classes_.tolist() == sorted(labels)
    predicted = clf.predict(X.numpy())
    assert isinstance(predicted, np.ndarray) and predicted.dtype == np.asarray(labels).dtype
    assert np.mean(predicted == y) >= 0.99
    proba = clf.predict_proba(X.numpy())
    assert proba.shape == (len(X), len(labels))
    assert np.array_equal(clf.classes_[proba.argmax(1)], predicted)
    scores = clf.evaluate(X.numpy(), y)  # the metrics' classes in the order of classes_
    assert np.asarray(scores["confusion_matrix"]).shape == (len(labels), len(labels)) and scores["accuracy"] >= 0.99


def test_a_huge_label_costs_nothing_and_comes_back():
    # A label of 2**40 once made fit size the network for 2**40 + 1 classes (an 8 TB allocation).
    X, y = make_blobs(200, num_classes=2, seed=0)
    y = torch.where(y == 1, 2**40, 0)
    clf = MulticlassClassifier(hidden_sizes=(8,), seed=0, epochs=10, lr=1e-2).fit(X, y)
    assert clf.classes_.tolist() == [0, 2**40] and clf.network_[-1].out_features == 2
    assert set(clf.predict(X).unique().tolist()) == {0, 2**40}
    with pytest.raises(ValueError, match=r"`y` holds labels outside \[0, 3\): min 1099511627776"):
        MulticlassClassifier(3).fit(X, y)


def test_tensor_labels_come_back_as_tensors_on_the_input_device():
    X, y = make_blobs(200, num_classes=3, seed=0)
    clf = MulticlassClassifier(hidden_sizes=(8,), seed=0, epochs=2).fit(X, y * 5)  # labels 0, 5, 10
    predicted = clf.predict(X)
    assert isinstance(predicted, torch.Tensor) and predicted.dtype == torch.int64
    assert set(predicted.unique().tolist()) <= {0, 5, 10}
    module = clf.as_module("labels")  # integer labels survive export
    assert torch.equal(module(X), predicted)


def test_binary_labels_zero_one_keep_both_classes_even_if_one_is_absent():
    X = torch.randn(20, 3)
    clf = BinaryClassifier(hidden_sizes=(4,), seed=0, epochs=1).fit(X, torch.zeros(20, dtype=torch.long))
    assert clf.classes_.tolist() == [0, 1]
    with pytest.raises(ValueError, match="`y` holds one class"):
        BinaryClassifier(epochs=1).fit(X, np.array(["a"] * 20))
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        BinaryClassifier(epochs=1).fit(X, torch.arange(20) % 3)
    with pytest.raises(ValueError, match="`y` holds one class"):
        MulticlassClassifier(epochs=1).fit(X, torch.ones(20, dtype=torch.long))


def test_decision_function_and_export_shapes_follow_scikit_learn():
    X, y = make_blobs(120, num_classes=2, seed=0)
    for clf in (BinaryClassifier(hidden_sizes=(8,), epochs=3), MulticlassClassifier(hidden_sizes=(8,), epochs=3)):
        clf.fit(X, y)
        scores, labels = clf.decision_function(X), clf.predict(X)
        assert scores.shape == (120,) and torch.equal((scores > 0).long(), labels)
        assert clf.predict_proba(X).shape == (120, 2)
        assert torch.equal(clf.as_module("logits")(X), scores)


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
    clf = MulticlassClassifier(seed=0, epochs=3).fit(X_train, y_train)
    scores = clf.evaluate(X_test, y_test)
    direct = classification_metrics(y_test, clf.predict(X_test), 3)
    assert {k: v for k, v in scores.items() if k != "loss"} == direct
    expected_loss = torch.nn.functional.cross_entropy(clf.decision_function(X_test), y_test).item()
    assert scores["loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert torch.equal(confusion_matrix(y_test, clf.predict(X_test), 3), torch.tensor(direct["confusion_matrix"]))


# ---------------------------------------------------------------- files, exports, determinism


FITTED = {
    "binary": lambda: BinaryClassifier(hidden_sizes=(16,), seed=0, epochs=2).fit(*make_circles(300, seed=0)),
    "multiclass": lambda: MulticlassClassifier(hidden_sizes=(16, 16), batch_norm=True, dropout=0.1, seed=0,
                                               epochs=2).fit(*make_blobs(300, num_classes=3, seed=0)),
    "multilabel": lambda: MultilabelClassifier(hidden_sizes=(16,), seed=0, epochs=2).fit(
        *make_multilabel(300, seed=0)),
}


@pytest.mark.parametrize("kind", sorted(FITTED))
def test_save_load_and_exports_round_trip_exactly(kind, tmp_path):
    clf = FITTED[kind]()
    X = torch.randn(57, 2)
    labels, proba, logits = clf.predict(X), clf.predict_proba(X), clf.decision_function(X)
    loaded = load_classifier(clf.save(tmp_path / "clf.pt"))
    assert type(loaded) is type(clf) and loaded.get_params() == clf.get_params()
    assert loaded.history_ == clf.history_ and np.array_equal(loaded.classes_, clf.classes_)
    assert same_weights(weights(loaded), weights(clf))
    assert torch.equal(loaded.predict(X), labels) and torch.equal(loaded.predict_proba(X), proba)
    assert torch.equal(type(clf).load(tmp_path / "clf.pt").decision_function(X), logits)
    for output, expected in (("labels", labels), ("proba", proba), ("logits", logits)):
        scripted = torch.jit.load(clf.export(tmp_path / f"{output}.ts", output=output))
        assert torch.equal(scripted(X), expected), output
    program = torch.export.load(clf.export(tmp_path / "clf.pt2", format="export", output="proba")).module()
    assert torch.equal(program(X), proba)
    assert torch.equal(program(X[:1]), clf.predict_proba(X[:1]))  # the batch dimension stays dynamic


def test_exports_load_without_rltorch_and_importing_it_imports_no_sklearn(tmp_path):
    clf = FITTED["multiclass"]()
    X = torch.randn(9, 2)
    clf.export(tmp_path / "m.ts")
    torch.save({"X": X, "labels": clf.predict(X)}, tmp_path / "expected.pt")
    code = (
        "import sys, torch\n"
        "sys.modules['rltorch'] = None  # any import of rltorch fails\n"
        f"e = torch.load({str(tmp_path / 'expected.pt')!r})\n"
        f"assert torch.equal(torch.jit.load({str(tmp_path / 'm.ts')!r})(e['X']), e['labels'])\n"
        "del sys.modules['rltorch']\n"
        "import rltorch, rltorch.classifiers\n"
        "rltorch.classifiers.MulticlassClassifier(epochs=1).fit(torch.randn(8, 2), torch.arange(8) % 2)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn' or m.startswith('rltorch.agents')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_classifiers_import_nothing_above_them():
    """The layering: rltorch.classifiers may use the base, ops, envs and nn, never agents, apps, bench or cli."""
    above = ("rltorch.agents", "rltorch.apps", "rltorch.bench", "rltorch.cli", "rltorch.distributed",
             "rltorch.integrations", "rltorch.runs")
    package = os.path.join(ROOT, "rltorch", "classifiers")
    for name in os.listdir(package):
        if name.endswith(".py"):
            tree = ast.parse(open(os.path.join(package, name)).read())
            for node in ast.walk(tree):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                # scikit-learn only inside the tags method it alone calls
                optional = [m for m in modules if m.split(".")[0] == "sklearn"] if name != "kinds.py" else []
                assert not [m for m in modules if m.startswith(above)] + optional, (name, modules)


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


def test_format_1_files_still_load(tmp_path):
    clf = FITTED["binary"]()
    state = clf.state_dict()
    old = {k: state[k] for k in ("kind", "class", "input_shape", "network", "history", "stats_pending", "generator",
                                 "generator_device")}
    old["format_version"] = 1
    old["params"] = {k: v for k, v in state["params"].items()
                     if k in ("hidden_sizes", "activation", "dropout", "batch_norm", "backbone", "channels",
                              "kernel_size", "standardize", "seed", "threshold", "pos_weight")}
    torch.save(old, tmp_path / "v1.pt")
    loaded = load_classifier(tmp_path / "v1.pt")
    X = torch.randn(10, 2)
    assert torch.equal(loaded.predict_proba(X), clf.predict_proba(X)) and loaded.optimizer_ is None


def crafted(state, path, **changes):
    state = {**state, **changes}
    torch.save({k: v for k, v in state.items() if v is not ...}, path)
    return path


@pytest.mark.parametrize("changes, entry", [
    (dict(network=...), "`network` is missing"),
    (dict(network={"0.mean": torch.zeros(2)}), "`network.0.inv_std` is missing"),
    (dict(network="weights"), "`network` must be a dict"),
    (dict(params={"hidden_sizes": [0]}), "`params` BinaryClassifier: `hidden_sizes` must be a list"),
    (dict(params={"layers": 3}), "`params.layers` is no parameter"),
    (dict(params=[1, 2]), "`params` must be a dict"),
    (dict(input_shape=[2, 2]), "`input_shape` must be 1 positive integer"),
    (dict(input_shape=[2**40]), "`input_shape` must be 1 positive integer"),
    (dict(classes=[0, 1, 2]), "`classes` must be two labels for a BinaryClassifier"),
    (dict(classes=[2, 1, 0]), "`classes` must be distinct labels in increasing order"),
    (dict(classes_dtype="not a dtype"), "`classes_dtype` must name a NumPy dtype"),
    (dict(history=[{"epoch": "one"}]), "`history[0]` must map metric names to numbers"),
    (dict(history=[{"epoch": 2}]), "`history[0].epoch` must count the epochs in order"),
    (dict(stats_pending="no"), "`stats_pending` must be true or false"),
    (dict(generator=torch.zeros(3, dtype=torch.uint8)), "`generator` must be a uint8 tensor"),
    (dict(generator_device="banana"), "`generator_device` must be a device type"),
    (dict(generator_device="cuda:0"), "`generator_device` must be a device type"),
    (dict(generator_device=3), "`generator_device` must be a device type"),
    (dict(optimizer={"state": {}, "param_groups": []}), "`optimizer.param_groups` must be one parameter group"),
    (dict(optimizer_settings=["adam", -1.0, 0.0, 0.9]), "`optimizer_settings`"),
    (dict(format_version=7), "format 7 is not supported"),
    (dict(extra=1), "`extra` is not an entry of format 2"),
    (dict(**{"class": "ForestClassifier"}), "`class` names no rltorch classifier"),
])
def test_crafted_files_give_one_line_value_errors_naming_the_entry(tmp_path, changes, entry):
    state = FITTED["binary"]().state_dict()
    path = crafted(state, tmp_path / "crafted.pt", **changes)
    with pytest.raises(ValueError) as info:
        load_classifier(path)
    message = str(info.value)
    assert entry in message and "crafted.pt" in message and "\n" not in message, message


def test_crafted_optimizer_state_is_refused(tmp_path):
    state = FITTED["binary"]().state_dict()
    optimizer = state["optimizer"]
    bad_shape = {"state": {0: {**optimizer["state"][0], "exp_avg": torch.zeros(3)}},
                 "param_groups": optimizer["param_groups"]}
    bad_lr = {"state": optimizer["state"], "param_groups": [{**optimizer["param_groups"][0], "lr": float("nan")}]}
    for bad, entry in ((bad_shape, "`optimizer.state[0].exp_avg` must be a float tensor of shape"),
                       (bad_lr, "`optimizer.param_groups[0].lr`")):
        with pytest.raises(ValueError, match=entry.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
            load_classifier(crafted(state, tmp_path / "opt.pt", optimizer=bad))


def test_same_seed_same_model_other_seed_other_model():
    X, y = make_moons(300, seed=0)

    def trained(seed):
        clf = MulticlassClassifier(hidden_sizes=(16, 16), dropout=0.2, seed=seed, epochs=3, batch_size=32,
                                   validation_split=0.2)
        return weights(clf.fit(X, y))

    assert same_weights(trained(7), trained(7))
    assert not same_weights(trained(7), trained(8))


def test_fit_starts_afresh_unless_warm_start():
    X, y = make_circles(300, seed=0)
    clf = BinaryClassifier(hidden_sizes=(8,), seed=0, epochs=2)
    first = weights(clf.fit(X, y))
    assert same_weights(weights(clf.fit(X, y)), first) and len(clf.history_) == 2  # idempotent
    clf.set_params(warm_start=True)
    network = clf.network_
    optimizer = clf.optimizer_
    clf.fit(X, y)
    assert [row["epoch"] for row in clf.history_] == [1, 2, 3, 4] and clf.optimizer_ is optimizer
    assert not same_weights(weights(clf), first)
    clf.set_params(lr=1e-4).fit(X, y)  # other settings: a fresh optimizer on the same network
    assert clf.optimizer_ is not optimizer and clf.network_ is network
    with pytest.raises(ValueError, match="hidden_sizes changed since it was built"):
        clf.set_params(hidden_sizes=(4,)).fit(X, y)


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_fit_after_load_continues_exactly(kind, tmp_path):
    """A saved and reloaded classifier's next warm fit is bit for bit the uninterrupted one: weights, optimizer
    moments, shuffling, validation split and dropout all continue."""
    X, y = make_blobs(400, num_classes=2 if kind == "binary" else 3, cluster_std=3.0, seed=1)
    klass = BinaryClassifier if kind == "binary" else MulticlassClassifier
    params = dict(hidden_sizes=(16,), dropout=0.2, epochs=2, batch_size=32, validation_split=0.2, warm_start=True,
                  seed=3)
    straight = klass(**params).fit(X, y).fit(X, y)
    klass(**params).fit(X, y).save(tmp_path / "half.pt")
    resumed = load_classifier(tmp_path / "half.pt")
    assert resumed.warm_start and resumed.optimizer_ is not None
    resumed.fit(X, y)
    assert same_weights(weights(resumed), weights(straight))
    assert [row["loss"] for row in resumed.history_] == [row["loss"] for row in straight.history_]
    moments = straight.optimizer_.state_dict()["state"]
    for index, entry in resumed.optimizer_.state_dict()["state"].items():
        assert all(torch.equal(value, moments[index][name]) for name, value in entry.items())


def test_deprecated_fit_arguments_warn_and_keep_their_meaning():
    X, y = make_circles(200, seed=0)
    clf = BinaryClassifier(hidden_sizes=(8,), seed=0)
    with pytest.warns(FutureWarning, match="training settings passed to fit"):
        clf.fit(X, y, epochs=1, lr=1e-2, optimizer="sgd")
    assert isinstance(clf.optimizer_, torch.optim.SGD) and clf.epochs == 10 and clf.solver == "adam"
    with pytest.warns(FutureWarning):
        clf.fit(X, y, epochs=1, lr=1e-2, optimizer="sgd")
    assert len(clf.history_) == 2  # continued, as fit with settings always did
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        clf.fit(X, y, epoch=1)
    torch.set_num_threads(2)  # and on the caller's threads, as before the thread policy
    seen = []
    with pytest.warns(FutureWarning):
        clf.fit(X, y, epochs=1, callback=lambda row: seen.append(torch.get_num_threads()))
    assert seen == [2]


def test_old_attribute_names_still_read():
    clf = FITTED["binary"]()
    assert clf.network is clf.network_ and clf.history is clf.history_ and clf.optimizer is clf.optimizer_
    assert clf.input_shape == (2,) and clf.is_fitted
    fresh = BinaryClassifier()
    assert fresh.network is None and fresh.history == [] and not fresh.is_fitted


def test_build_then_warm_fits_train_the_built_network():
    clf = MulticlassClassifier(3, hidden_sizes=(8,), warm_start=True, epochs=1).build((2,))
    network = clf.network_
    X, y = make_blobs(90, num_classes=3, seed=0)
    clf.fit(X, y)
    assert clf.network_ is network and clf.classes_.tolist() == [0, 1, 2]
    assert not torch.equal(network[0].mean, torch.zeros(2))  # the first fit set the input statistics


# ---------------------------------------------------------------- threads


@pytest.mark.parametrize("threads, inside", [("auto", 1), (2, 2)])
def test_fit_and_predict_run_on_the_thread_policy_and_restore_the_callers(threads, inside):
    X, y = make_circles(100, seed=0)
    seen = []
    torch.set_num_threads(3)
    clf = BinaryClassifier(hidden_sizes=(4,), epochs=2, threads=threads)
    clf.fit(X, y, callback=lambda row: seen.append(torch.get_num_threads()))
    assert seen == [inside, inside] and torch.get_num_threads() == 3
    clf.predict(X)
    assert torch.get_num_threads() == 3
    with pytest.raises(ValueError):
        clf.fit(X, y + 0.5)
    assert torch.get_num_threads() == 3
    with pytest.raises(ValueError, match="`threads` must lie in"):
        BinaryClassifier(threads=0).fit(X, y)
    with pytest.raises(ValueError, match="`threads` must be 'auto'"):
        BinaryClassifier(threads="many").fit(X, y)


# ---------------------------------------------------------------- inputs


class PairDataset(Dataset):
    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], self.y[i]


def test_numpy_tensor_dataset_and_loader_inputs():
    X_train, X_test, y_train, y_test = split(make_circles(800, seed=5))
    params = dict(seed=0, **FAST)
    from_numpy = MulticlassClassifier(**params).fit(X_train.numpy(), y_train.numpy())
    predicted = from_numpy.predict(X_test.numpy())
    assert isinstance(predicted, np.ndarray) and predicted.dtype == np.int64
    assert isinstance(from_numpy.predict(X_test), torch.Tensor)
    from_tensors = MulticlassClassifier(**params).fit(X_train, y_train)
    from_dataset = MulticlassClassifier(**params).fit(TensorDataset(X_train, y_train))
    # Same data, same seed, same batching by index: the same model.
    assert torch.equal(from_tensors.predict_proba(X_test), from_dataset.predict_proba(X_test))
    assert torch.equal(from_tensors.predict_proba(X_test), torch.from_numpy(from_numpy.predict_proba(X_test.numpy())))
    streamed = MulticlassClassifier(**params).fit(
        DataLoader(PairDataset(X_train, y_train), batch_size=64, shuffle=True,
                   generator=torch.Generator().manual_seed(0)), validation_data=PairDataset(X_test, y_test))
    assert streamed.history_[-1]["val_accuracy"] >= 0.99
    assert streamed.evaluate(PairDataset(X_test, y_test))["accuracy"] >= 0.99
    assert torch.equal(streamed.predict(PairDataset(X_test, y_test)), streamed.predict(X_test))
    shuffled_dataset = MulticlassClassifier(**params).fit(PairDataset(X_train, y_train))
    assert shuffled_dataset.score(X_test, y_test) >= 0.99


def test_a_bad_batch_late_in_a_stream_leaves_the_classifier_as_it_was():
    X, y = make_circles(200, seed=0)
    clf = BinaryClassifier(hidden_sizes=(8,), epochs=1, warm_start=True).fit(X, y)
    before, history = weights(clf), list(clf.history_)
    bad = y.clone()
    bad[-1] = 7  # the last batch holds a label the classifier does not know
    with pytest.raises(ValueError, match=r"`y` holds labels outside \[0, 2\): min 7"):
        clf.fit(DataLoader(TensorDataset(X, bad), batch_size=50))
    assert same_weights(weights(clf), before) and clf.history_ == history


def test_validation_and_early_stopping_restore_the_best_weights():
    X_train, X_val, y_train, y_val = split(make_blobs(600, num_classes=4, cluster_std=3.0, seed=6))
    clf = MulticlassClassifier(hidden_sizes=(128, 128), seed=0, epochs=200, batch_size=32, lr=1e-2, early_stopping=3)
    clf.fit(X_train, y_train, validation_data=(X_val, y_val))
    history = clf.history_
    assert len(history) < 200  # stopped early (noisy, overlapping blobs overfit)
    best = min(row["val_loss"] for row in history)
    assert history[-4]["val_loss"] == best and all(row["val_loss"] > best for row in history[-3:])
    assert clf.evaluate(X_val, y_val)["loss"] == pytest.approx(best, rel=1e-5)


def test_progress_bar_and_callback(capsys):
    rows = []
    X, y = make_circles(200, seed=0)
    BinaryClassifier(seed=0, epochs=2, progress=True, validation_split=0.25).fit(X, y, callback=rows.append)
    assert [row["epoch"] for row in rows] == [1, 2] and {"loss", "val_loss", "val_accuracy"} <= set(rows[0])
    assert "epoch 1" in capsys.readouterr().err


def test_class_weights_and_label_smoothing_reach_the_loss():
    X, y = make_blobs(300, num_classes=3, seed=0)
    clf = MulticlassClassifier(class_weights=[1.0, 2.0, 3.0], label_smoothing=0.1, seed=0, epochs=1).fit(X, y)
    logits = clf.decision_function(X)
    expected = torch.nn.functional.cross_entropy(logits, y, weight=torch.tensor([1.0, 2.0, 3.0]),
                                                 label_smoothing=0.1)
    assert clf.evaluate(X, y)["loss"] == pytest.approx(expected.item(), rel=1e-6)


def test_column_vector_labels_warn_and_fit_as_one_label_per_sample():
    X, y = make_circles(100, seed=0)
    clf = BinaryClassifier(hidden_sizes=(4,), epochs=1)
    with pytest.warns(UserWarning, match="A column-vector y was passed"):
        clf.fit(X, y[:, None])
    assert torch.equal(clf.predict(X), BinaryClassifier(hidden_sizes=(4,), epochs=1).fit(X, y).predict(X))


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


def test_linear_expert_lives_with_the_envs():
    from rltorch.envs.experts import LinearExpert as Home

    assert LinearExpert is Home


@pytest.mark.parametrize("backend", ["rltorch", "gymnasium-sync"])
def test_expert_pairs_are_the_experts_actions_on_live_states(backend):
    expert = LinearExpert()
    env = None if backend == "rltorch" else gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 8)
    obs, actions = collect_expert_pairs(expert, 2000, env=env, num_envs=64, epsilon=0.5, seed=1)
    assert obs.shape == (2000, 4) and obs.dtype == torch.float32 and actions.dtype == torch.int64
    assert torch.equal(actions, expert(obs))  # labels stay the expert's even where random actions ran
    # Only states the expert acted in: no terminal observation (gymnasium's NEXT_STEP reset rows are dropped).
    assert bool((obs[:, 0].abs() <= 2.4).all()) and bool((obs[:, 2].abs() <= 12 * 2 * math.pi / 360).all())
    again = collect_expert_pairs(expert, 2000, env=None if env is None else gym.vector.SyncVectorEnv(
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
    X, y = collect_failure_pairs(LinearExpert(), 4000, horizon=10, seed=0)
    assert X.shape == (4000, 4) and set(y.unique().tolist()) == {0, 1}
    assert 0.1 < y.float().mean().item() < 0.5
    X_train, X_test, y_train, y_test = train_test_split(X, y, 0.25, seed=0)
    clf = BinaryClassifier(seed=0, epochs=10, batch_size=128, lr=3e-3).fit(X_train, y_train)
    majority = max(y_test.float().mean().item(), 1 - y_test.float().mean().item())
    assert clf.evaluate(X_test, y_test)["accuracy"] > majority + 0.05


# ---------------------------------------------------------------- errors


def fitted_multiclass():
    return MulticlassClassifier(hidden_sizes=(8,), seed=0, epochs=1).fit(torch.randn(20, 2), torch.arange(20) % 3)


X2 = torch.randn(10, 2)
Y3 = torch.arange(10) % 3

ERRORS = [
    # (call, exception, fragment of the message)
    (lambda: MulticlassClassifier(num_classes=3).fit(X2, Y3 + 1), ValueError, "`y` holds labels outside [0, 3)"),
    (lambda: MulticlassClassifier().fit(X2, Y3 + 0.5), ValueError, "Unknown label type: `y` holds continuous"),
    (lambda: MulticlassClassifier().fit(X2, torch.full((10,), math.nan)), ValueError, "`y` contains NaN"),
    (lambda: MulticlassClassifier().fit(X2, Y3[:9]), ValueError, "`X` and `y` differ in length"),
    (lambda: MulticlassClassifier().fit(X2, torch.zeros(10, 2, dtype=torch.long)), ValueError,
     "`y` must be one label per sample"),
    (lambda: MultilabelClassifier().fit(X2, torch.full((10, 3), 2)), ValueError, "`y` must hold only 0 and 1"),
    (lambda: MultilabelClassifier().fit(X2, torch.ones(10)), ValueError, "`y` must be [samples, labels]"),
    (lambda: MultilabelClassifier(num_labels=2).fit(X2, torch.ones(10, 3)), ValueError, "num_labels is 2"),
    (lambda: BinaryClassifier().fit(X2, Y3), ValueError, "Only binary classification is supported"),
    (lambda: BinaryClassifier().fit(torch.empty(0, 2), torch.empty(0, dtype=torch.long)), ValueError, "`X` is empty"),
    (lambda: BinaryClassifier().fit(torch.empty(4, 0), torch.zeros(4)), ValueError, "`X` has 0 feature(s)"),
    (lambda: MulticlassClassifier().fit(TensorDataset(torch.empty(0, 2), torch.empty(0, dtype=torch.long))),
     ValueError, "empty"),
    (lambda: BinaryClassifier().fit(torch.tensor([[0.0, math.nan]] * 4), torch.tensor([0, 1, 0, 1])), ValueError,
     "`X` contains NaN or infinite"),
    (lambda: BinaryClassifier().fit(np.array([[1e39, 0.0]] * 4), [0, 1, 0, 1]), ValueError,
     "`X` contains NaN or infinite values (as float32)"),
    (lambda: BinaryClassifier().fit(torch.randn(4), torch.tensor([0, 1, 0, 1])), ValueError, "Reshape your data"),
    (lambda: BinaryClassifier().fit([["a", "b"]], [0]), TypeError, "`X` must be numeric"),
    (lambda: BinaryClassifier().fit(np.ones((4, 2), dtype=complex), [0, 1, 0, 1]), ValueError,
     "Complex data not supported"),
    (lambda: BinaryClassifier().fit(X2), ValueError, "requires y to be passed"),
    (lambda: MulticlassClassifier().predict(X2), NotFittedError, "not fitted yet: call fit(X, y) before predict"),
    (lambda: MulticlassClassifier().evaluate(X2, Y3), NotFittedError, "before evaluate"),
    (lambda: MulticlassClassifier().save("never.pt"), NotFittedError, "not fitted"),
    (lambda: fitted_multiclass().predict(torch.randn(5, 3)), ValueError,
     "X has 3 features, but MulticlassClassifier is expecting 2"),
    (lambda: fitted_multiclass().predict(torch.tensor([[math.nan, 0.0]])), ValueError, "`X` contains NaN"),
    (lambda: fitted_multiclass().set_params(warm_start=True).fit(X2, Y3 + 5), ValueError, "`y` holds labels outside"),
    (lambda: fitted_multiclass().evaluate(X2, np.array(["a"] * 10)), ValueError,
     "`y` holds the label 'a', which is none of the classes the classifier was fitted on (classes_: [0, 1, 2])"),
    (lambda: MulticlassClassifier(epochs=0).fit(X2, Y3), ValueError, "`epochs` must lie in [1, "),
    (lambda: MulticlassClassifier(batch_size=0).fit(X2, Y3), ValueError, "`batch_size`"),
    (lambda: MulticlassClassifier(lr=-1.0).fit(X2, Y3), ValueError, "`lr` must be a finite number in (0, inf)"),
    (lambda: MulticlassClassifier(lr=math.nan).fit(X2, Y3), ValueError, "`lr`"),
    (lambda: MulticlassClassifier(lr="fast").fit(X2, Y3), TypeError, "`lr` must be a number"),
    (lambda: MulticlassClassifier(solver="rmsprop").fit(X2, Y3), ValueError, "`solver` must be one of"),
    (lambda: MulticlassClassifier(weight_decay=-0.1).fit(X2, Y3), ValueError, "`weight_decay`"),
    (lambda: MulticlassClassifier(validation_split=1.0).fit(X2, Y3), ValueError, "`validation_split`"),
    (lambda: MulticlassClassifier(validation_split=0.01).fit(X2, Y3), ValueError, "leaves an empty split"),
    (lambda: MulticlassClassifier(monitor="val_loss", early_stopping=2).fit(X2, Y3), ValueError,
     "`monitor`='val_loss' needs"),
    (lambda: MulticlassClassifier(monitor="accuracy").fit(X2, Y3), ValueError, "`monitor` must be one of"),
    (lambda: MulticlassClassifier(early_stopping=0).fit(X2, Y3), ValueError, "`early_stopping`"),
    (lambda: MulticlassClassifier().fit(X2, Y3, validation_data=(X2, Y3[:5])), ValueError, "differ in length"),
    (lambda: MulticlassClassifier().fit(X2, Y3, validation_data=(torch.randn(10, 3), Y3)), ValueError,
     "validation_data has 3 features"),
    (lambda: MulticlassClassifier().fit(X2, Y3, validation_data=X2), TypeError, "`validation_data` must be"),
    (lambda: MulticlassClassifier().fit(X2, Y3, callback=3), TypeError, "`callback` must be callable"),
    (lambda: MulticlassClassifier(hidden_sizes=[0]).fit(X2, Y3), ValueError, "`hidden_sizes`"),
    (lambda: MulticlassClassifier(dropout=1.0).fit(X2, Y3), ValueError, "`dropout` must be a finite number in [0, 1)"),
    (lambda: MulticlassClassifier(activation="swish9").fit(X2, Y3), ValueError, "`activation` must be one of"),
    (lambda: MulticlassClassifier(backbone="rnn").fit(X2, Y3), ValueError, "`backbone` must be one of"),
    (lambda: MulticlassClassifier(batch_norm=1).fit(X2, Y3), TypeError, "`batch_norm` must be True or False"),
    (lambda: MulticlassClassifier(num_classes=1).fit(X2, Y3), ValueError, "`num_classes` must lie in [2, "),
    (lambda: MulticlassClassifier(label_smoothing=1.0).fit(X2, Y3), ValueError, "`label_smoothing`"),
    (lambda: MulticlassClassifier(num_classes=3, class_weights=[1.0, 2.0]).fit(X2, Y3), ValueError,
     "`class_weights` has 2"),
    (lambda: MulticlassClassifier(class_weights=[1.0, 2.0]).fit(X2, Y3), ValueError, "`class_weights` has 2 entries"),
    (lambda: MulticlassClassifier(class_weights=[1.0, -2.0]).fit(X2, Y3), ValueError,
     "`class_weights` must be finite"),
    (lambda: BinaryClassifier(threshold=1.0).fit(X2, Y3 % 2), ValueError, "`threshold`"),
    (lambda: BinaryClassifier(device="tpu").fit(X2, Y3 % 2), ValueError, "`device`"),
    (lambda: BinaryClassifier(seed=1.5).fit(X2, Y3 % 2), TypeError, "`seed` must be an integer"),
    (lambda: MulticlassClassifier(backbone="cnn").fit(X2, Y3), ValueError, "`X` must be [samples, channels"),
    (lambda: MulticlassClassifier().fit(torch.randn(10, 1, 4, 4), Y3), ValueError, "flatten it or use backbone='cnn'"),
    (lambda: MulticlassClassifier().build((2, 2)), ValueError, "`input_shape` must be (features,)"),
    (lambda: MulticlassClassifier().build((2,)), ValueError, "pass num_classes"),
    (lambda: fitted_multiclass().export("x.ts", format="onnx"), ValueError, "`format` must be"),
    (lambda: fitted_multiclass().export("/nonexistent_dir/x.ts"), ValueError, "not in an existing directory"),
    (lambda: fitted_multiclass().as_module("votes"), ValueError, "`output` must be"),
    (lambda: fitted_multiclass().set_params(layers=3), ValueError, "Invalid parameter 'layers'"),
    (lambda: make_circles(0), ValueError, "`n_samples`"),
    (lambda: make_circles(10, factor=1.5), ValueError, "`factor`"),
    (lambda: make_circles(10, noise=1e39), ValueError, "make_circles: `noise` too large"),
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


def test_constructors_store_parameters_as_given_and_check_nothing():
    clf = MulticlassClassifier(num_classes=1, hidden_sizes="junk", dropout=5, device="tpu")
    assert clf.num_classes == 1 and clf.hidden_sizes == "junk" and clf.dropout == 5 and clf.device == "tpu"
    assert set(vars(clf)) == set(clf.get_params())


def test_rejected_fit_changes_nothing():
    clf = MulticlassClassifier(seed=0)
    with pytest.raises(ValueError):
        clf.fit(X2, Y3 + 0.5)
    assert clf.num_classes is None and not clf.is_fitted and set(vars(clf)) == set(clf.get_params())
    clf = fitted_multiclass()
    before, history, classes = weights(clf), list(clf.history_), clf.classes_
    with pytest.raises(ValueError):
        clf.fit(X2, Y3, validation_data=(X2, Y3 + 7))
    assert clf.history_ == history and clf.classes_ is classes and same_weights(weights(clf), before)
    with pytest.raises(ValueError, match="`class_weights` has 2 entries"):
        clf.set_params(class_weights=[1.0, 2.0]).fit(X2, Y3)  # rejected once the classes are known: the old fit stays
    assert clf.classes_ is classes and same_weights(weights(clf), before)


def test_not_fitted_error_is_a_value_error_and_sklearns_once_loaded():
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    with pytest.raises(ValueError):
        BinaryClassifier().predict_proba(X2)
    sklearn_exceptions = pytest.importorskip("sklearn.exceptions")
    with pytest.raises(sklearn_exceptions.NotFittedError):
        BinaryClassifier().predict(X2)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch notes the foreign file's protocol
def test_pickle_protocol_is_not_used_for_checkpoints(tmp_path):
    # A checkpoint is read with weights_only=True: a plain pickle of the object is not a checkpoint.
    path = tmp_path / "pickled.pt"
    with open(path, "wb") as f:
        pickle.dump({"kind": "rltorch.classifier"}, f)
    with pytest.raises(ValueError):
        load_classifier(path)


def test_fitted_classifiers_pickle_and_predict_the_same():
    clf = FITTED["multiclass"]()
    X = torch.randn(11, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = pickle.loads(pickle.dumps(clf))
    assert torch.equal(again.predict_proba(X), clf.predict_proba(X))
