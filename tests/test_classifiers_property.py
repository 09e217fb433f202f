"""Property tests for the classifiers: random valid and invalid inputs to fit/predict/evaluate/score (shapes, dtypes,
NaN/inf, empty, mismatched lengths, unknown labels) leave the classifier exactly as it was when rejected, and
randomly damaged checkpoint files give a one-line ValueError naming the file, never another exception."""

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltorch.classifiers import BinaryClassifier, MulticlassClassifier, MultilabelClassifier, load_classifier

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:A column-vector y was passed")]

TINY = dict(hidden_sizes=(4,), epochs=1, batch_size=4, warm_start=True, seed=0)
FEATURES = 3


def fitted(kind: str):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(16, FEATURES, generator=g)
    if kind == "binary":
        return BinaryClassifier(**TINY).fit(X, torch.arange(16) % 2)
    if kind == "multiclass":
        return MulticlassClassifier(**TINY).fit(X, (torch.arange(16) % 3) * 7)  # classes 0, 7, 14
    return MultilabelClassifier(**TINY).fit(X, (torch.arange(32).reshape(16, 2) % 3 == 0).long())


def snapshot(clf) -> dict:
    state = {"vars": sorted(vars(clf))}
    if hasattr(clf, "network_"):
        state["weights"] = {k: v.clone() for k, v in clf.network_.state_dict().items()}
        state["optimizer"] = copy.deepcopy(clf.optimizer_.state_dict()) if clf.optimizer_ is not None else None
        state["history"] = copy.deepcopy(clf.history_)
        state["classes"] = clf.classes_.copy()
        state["generator"] = clf._generator.get_state()
        state["shape"] = clf.input_shape_
    return state


def same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


# ---------------------------------------------------------------- inputs

SAMPLES = st.sampled_from([0, 1, 2, 5, 9])
X_KINDS = st.sampled_from(["ok", "nan", "inf", "huge", "features", "rank1", "rank3", "int", "bool", "object",
                           "strings", "complex", "empty_features"])
Y_KINDS = st.sampled_from(["ok", "short", "long", "float_fraction", "nan", "unknown", "huge", "negative", "strings",
                           "column", "matrix", "bool", "scalar"])
CONTAINERS = st.sampled_from(["tensor", "numpy", "list"])


def make_x(n: int, kind: str, container: str, seed: int):
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, FEATURES))
    if kind == "nan" and n:
        X[0, 0] = np.nan
    elif kind == "inf" and n:
        X[-1, -1] = -np.inf
    elif kind == "huge" and n:
        X[0, 1] = 1e39  # finite in float64, infinite as float32
    elif kind == "features":
        X = g.normal(size=(n, FEATURES + 1))
    elif kind == "rank1":
        X = X.reshape(-1)
    elif kind == "rank3":
        X = X.reshape(n, FEATURES, 1)
    elif kind == "int":
        X = (X * 3).astype(np.int64)
    elif kind == "bool":
        X = X > 0
    elif kind == "object":
        X = X.astype(object)
    elif kind == "strings":
        X = X.astype(str)
    elif kind == "complex":
        X = X + 1j
    elif kind == "empty_features":
        X = np.zeros((n, 0))
    if container == "tensor" and X.dtype.kind not in "OUS":
        return torch.from_numpy(X)
    return X.tolist() if container == "list" else X


def make_y(clf, n: int, kind: str, container: str, seed: int):
    g = np.random.default_rng(seed)
    if isinstance(clf, MultilabelClassifier):
        y = g.integers(0, 2, size=(n, 2))
        if kind == "matrix":
            y = g.integers(0, 2, size=(n, 3))
        elif kind in ("column", "scalar"):
            y = y[:, :1] if kind == "column" else np.int64(1)
        elif kind == "unknown" and n:
            y[0, 0] = 2
    else:
        classes = clf.classes_ if hasattr(clf, "classes_") else np.array([0, 1])
        y = classes[g.integers(0, len(classes), size=n)]
        if kind == "column":
            y = y[:, None]
        elif kind == "matrix":
            y = np.stack([y, y], 1)
        elif kind == "scalar":
            y = classes[0]
    if kind == "short":
        y = y[:-1]
    elif kind == "long":
        y = np.concatenate([y, y[:1]]) if np.ndim(y) and len(y) else np.zeros((1,) + np.shape(y)[1:], np.int64)
    elif kind == "float_fraction":
        y = np.asarray(y, dtype=np.float64) + 0.25
    elif kind == "nan":
        y = np.asarray(y, dtype=np.float64)
        if y.size:
            y.flat[0] = np.nan
    elif kind in ("unknown", "huge", "negative") and np.ndim(y) == 1 and len(y):
        y = y.copy()
        y[0] = {"unknown": 3, "huge": 2**40, "negative": -5}[kind]
    elif kind == "strings":
        y = np.asarray(y).astype(str)
    elif kind == "bool":
        y = np.asarray(y) > 0
    if container == "tensor" and np.asarray(y).dtype.kind not in "OUS":
        return torch.as_tensor(np.asarray(y))
    return np.asarray(y).tolist() if container == "list" else y


CALLS = st.tuples(st.sampled_from(["fit", "predict", "predict_proba", "decision_function", "evaluate", "score"]),
                  SAMPLES, X_KINDS, Y_KINDS, CONTAINERS, st.integers(0, 2**16))


def apply(clf, call):
    method, n, x_kind, y_kind, container, seed = call
    X = make_x(n, x_kind, container, seed)
    if method in ("fit", "evaluate", "score"):
        return getattr(clf, method)(X, make_y(clf, n, y_kind, container, seed))
    return getattr(clf, method)(X)


def run_calls(clf, calls):
    for call in calls:
        before = snapshot(clf)
        try:
            out = apply(clf, call)
        except (ValueError, TypeError) as exc:
            assert "\n" not in str(exc).strip() or "Reshape" in str(exc), exc
            assert same(snapshot(clf), before), call
            continue
        if call[0] in ("predict", "predict_proba", "decision_function"):
            values = out.numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
            assert len(values) == call[1]
            if values.dtype.kind == "f":
                assert np.isfinite(values).all()
    # Valid calls keep working after whatever was rejected.
    probe = torch.randn(4, FEATURES)
    if hasattr(clf, "network_"):
        assert len(clf.predict(probe)) == 4


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["binary", "multiclass", "multilabel"]), calls=st.lists(CALLS, min_size=1, max_size=6))
def test_property_rejected_calls_leave_a_fitted_classifier_unchanged(kind, calls):
    run_calls(fitted(kind), calls)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["binary", "multiclass", "multilabel"]), call=CALLS.filter(lambda c: c[0] == "fit"))
def test_property_a_rejected_first_fit_leaves_no_learned_state(kind, call):
    klass = {"binary": BinaryClassifier, "multiclass": MulticlassClassifier, "multilabel": MultilabelClassifier}[kind]
    clf = klass(**TINY)
    try:
        apply(clf, call)
    except (ValueError, TypeError):
        assert sorted(vars(clf)) == sorted(clf.get_params())


# ---------------------------------------------------------------- damaged files

JUNK = st.sampled_from([None, 0, -1, 2**40, 1.5, math.nan, "x", [], {}, [1, 2], {"a": 1}, True,
                        "tensor", "tensor_int", "tensor_nan", "tensor_big"])


def junk_value(choice):
    return {"tensor": torch.zeros(3), "tensor_int": torch.zeros(2, 2, dtype=torch.int64),
            "tensor_nan": torch.full((2,), math.nan), "tensor_big": torch.zeros(70, 70)}.get(choice, choice) \
        if isinstance(choice, str) else copy.deepcopy(choice)


def paths(state, prefix=()):
    """Every (nested) place in a checkpoint that a damaged file could change."""
    for key, value in state.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from paths(value, prefix + (key,))
        elif isinstance(value, list):
            for i, item in enumerate(value[:3]):
                yield prefix + (key, i)
                if isinstance(item, dict):
                    yield from paths(item, prefix + (key, i))


def damaged(state, where, value, delete):
    state = copy.deepcopy(state)
    parent = state
    for key in where[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    return state


@pytest.fixture(scope="module")
def saved_states():
    return {kind: fitted(kind).state_dict() for kind in ("binary", "multiclass", "multilabel")}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["binary", "multiclass", "multilabel"]), index=st.integers(0, 10**6), junk=JUNK,
       delete=st.booleans())
def test_property_damaged_files_give_one_line_value_errors(saved_states, tmp_path, kind, index, junk, delete):
    state = saved_states[kind]
    places = list(paths(state))
    where = places[index % len(places)]
    path = tmp_path / "damaged.pt"
    torch.save(damaged(state, where, junk_value(junk), delete), path)
    try:
        clf = load_classifier(path)
    except ValueError as exc:
        message = str(exc)
        assert "\n" not in message and "damaged.pt" in message, message
        return
    # Accepted: the change was harmless (e.g. a history number), and the classifier works.
    out = clf.predict_proba(torch.randn(3, FEATURES))
    assert torch.isfinite(out).all()
