"""Classifier files: what a checkpoint holds, every entry checked when it is read back.

Files are written and read through :mod:`rltorch._io` (atomic, checksummed, ``weights_only=True``), as
the agents' are. Format 2 holds the parameters, ``classes_``, the network, the history, the optimizer
state and the random stream, so that a loaded classifier with ``warm_start=True`` trains on exactly as
the saved one would have. Format 1 files (no optimizer state; classes ``0 .. K-1``) still load.

A file that is not a classifier checkpoint, or one whose entries do not fit together (a crafted or
damaged file), gives a one-line ``ValueError`` naming the file and the entry; nothing is allocated
beyond what the file itself holds (the expected network is laid out on the meta device first).
"""

from __future__ import annotations

import math
import os
import types
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rltorch import _checks
from rltorch._io import first_line, load_checked, save_checked
from rltorch.classifiers.estimators import Classifier
from rltorch.classifiers.kinds import BinaryClassifier, MulticlassClassifier, MultilabelClassifier
from rltorch.classifiers.training import SOLVERS, make_optimizer

__all__ = ["CHECKPOINT_KIND", "CHECKPOINT_FORMAT", "state_of", "restore", "save", "load", "load_classifier"]

CHECKPOINT_KIND = "rltorch.classifier"
CHECKPOINT_FORMAT = 2
READABLE_FORMATS = (1, 2)
KINDS = {k.__name__: k for k in (BinaryClassifier, MulticlassClassifier, MultilabelClassifier)}
WHAT = "classifier"
_ENTRIES = {
    1: {"kind", "format_version", "class", "params", "input_shape", "network", "history", "stats_pending",
        "generator", "generator_device"},
}
_ENTRIES[2] = _ENTRIES[1] | {"classes", "classes_dtype", "optimizer", "optimizer_settings"}
_OPTIMIZER_STATE = {"adam": {"step", "exp_avg", "exp_avg_sq"}, "sgd": {"momentum_buffer"}}


def _plain(value: Any, name: str) -> Any:
    """A parameter value as a plain Python value a checkpoint can hold (tuples become lists)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v, name) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, torch.device):
        return str(value)
    raise ValueError(f"cannot save the classifier: parameter `{name}` is a {type(value).__name__}, not a plain value")


def state_of(model: Classifier) -> dict:
    """The checkpoint of a fitted classifier (format 2)."""
    optimizer = model.optimizer_
    return {
        "kind": CHECKPOINT_KIND, "format_version": CHECKPOINT_FORMAT, "class": type(model).__name__,
        "params": {k: _plain(v, k) for k, v in model.get_params(deep=False).items() if k != "device"},
        "input_shape": list(model.input_shape_),
        "classes": model.classes_.tolist(), "classes_dtype": model.classes_.dtype.str,
        "network": {k: v.detach().cpu().clone() for k, v in model.network_.state_dict().items()},
        "history": [dict(row) for row in model.history_],
        "stats_pending": model._stats_pending,
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "optimizer_settings": None if optimizer is None else list(model._optimizer_key),
        # The shuffling/split/dropout stream, so that a loaded classifier trains on exactly as it would have.
        "generator": model._generator.get_state(),
        "generator_device": model.device_.type,
    }


def save(model: Classifier, path: str | os.PathLike) -> str:
    return save_checked(state_of(model), path, WHAT)


def load(path: str | os.PathLike, device: str | torch.device | None, expected: type = Classifier) -> Classifier:
    state = load_checked(path, WHAT)
    return restore(state, device, expected, source=repr(os.fspath(path)))


class _Invalid:
    def __init__(self, source: str):
        self.source = source

    def __call__(self, entry: str, problem: str) -> ValueError:
        return ValueError(f"{self.source} is not a valid rltorch classifier: `{entry}` {problem}"[:600])


def _shown(value: Any) -> str:
    """A value as a short, one-line text for an error message."""
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return " ".join(repr(value).split())[:60]


def _is_plain(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return depth < 2 and isinstance(value, (list, tuple)) and all(_is_plain(v, depth + 1) for v in value)


def restore(state: Any, device: str | torch.device | None, expected: type = Classifier,
            source: str = "classifier checkpoint") -> Classifier:
    """The classifier ``state`` describes, on ``device`` (CPU by default), after checking every entry."""
    invalid = _Invalid(source)
    if not isinstance(state, dict) or not isinstance(state.get("kind"), str) or state["kind"] != CHECKPOINT_KIND:
        raise ValueError(f"{source} is not an rltorch classifier checkpoint")
    version = state.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version not in READABLE_FORMATS:
        raise ValueError(f"{source}: classifier checkpoint format {_shown(version)} is not supported (this rltorch "
                         f"reads formats {', '.join(map(str, READABLE_FORMATS))})")
    missing = sorted(_ENTRIES[version] - set(state))
    unexpected = sorted(map(str, set(state) - _ENTRIES[version]))
    if missing or unexpected:
        raise invalid(missing[0] if missing else unexpected[0], "is missing" if missing else "is not an entry of "
                      f"format {version}")
    klass = KINDS.get(state["class"]) if isinstance(state["class"], str) else None
    if klass is None:
        raise invalid("class", f"names no rltorch classifier: {_shown(state['class'])}")
    if expected is not Classifier and not issubclass(klass, expected):
        raise ValueError(f"{source} holds a {klass.__name__}, not a {expected.__name__}")

    model, s = _model(klass, state["params"], device, invalid)
    shape = _input_shape(state["input_shape"], s, invalid)
    classes = _classes(state, version, model, s, invalid)
    model.classes_ = classes  # the network's output count comes from the classes
    _check_network(state["network"], model, s, shape, invalid)
    history = _history(state["history"], invalid)
    if not isinstance(state["stats_pending"], bool):
        raise invalid("stats_pending", f"must be true or false, got {_shown(state['stats_pending'])}")

    model._initialize(s, shape, classes)
    model.network_.load_state_dict(state["network"])
    model.network_.eval()
    model.history_ = history
    model.n_iter_ = len(history)
    model._stats_pending = state["stats_pending"]
    _restore_generator(model, state["generator"], state["generator_device"], invalid)
    if version >= 2:
        _restore_optimizer(model, state["optimizer"], state["optimizer_settings"], invalid)
    return model


def _model(klass: type, params: Any, device: Any, invalid: _Invalid) -> tuple[Classifier, types.SimpleNamespace]:
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise invalid("params", "must be a dict of parameter names to values")
    names = set(klass._param_names()) - {"device"}
    unknown = sorted(set(params) - names)
    if unknown:
        raise invalid(f"params.{unknown[0]}"[:80], f"is no parameter of {klass.__name__}")
    for name, value in params.items():
        if not _is_plain(value):
            raise invalid(f"params.{name}", f"must be a plain value, got {type(value).__name__}")
    defaults = klass()
    values = {k: tuple(v) if isinstance(v, (list, tuple)) and isinstance(getattr(defaults, k), tuple) else v
              for k, v in params.items()}
    model = klass(**values)
    model.device = "cpu" if device is None else device
    try:
        s = model._settings()
    except (TypeError, ValueError) as exc:
        message = first_line(exc)
        if "`device`" in message:
            raise ValueError(message) from None  # the caller's argument, not the file's
        raise invalid("params", message) from None
    return model, s


def _input_shape(value: Any, s: types.SimpleNamespace, invalid: _Invalid) -> tuple[int, ...]:
    rank = 1 if s.backbone == "mlp" else 3
    if not isinstance(value, list) or len(value) != rank or any(
            isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 2**31 for v in value):
        raise invalid("input_shape", f"must be {rank} positive integer(s) for the {s.backbone} backbone, got "
                                     f"{_shown(value)}")
    return tuple(value)


def _classes(state: dict, version: int, model: Classifier, s: types.SimpleNamespace, invalid: _Invalid
             ) -> np.ndarray:
    if version == 1:  # classes were always 0 .. K-1, K stored as a parameter
        count = {"MulticlassClassifier": s.num_classes, "BinaryClassifier": 2,
                 "MultilabelClassifier": getattr(s, "num_labels", None)}[type(model).__name__]
        if count is None:
            raise invalid("params", "must give the number of classes (format 1)")
        return np.arange(count)
    values, dtype = state["classes"], state["classes_dtype"]
    if not isinstance(values, list) or not all(isinstance(v, (bool, int, float, str)) for v in values):
        raise invalid("classes", "must be a list of labels (numbers, bools or strings)")
    try:
        dtype = np.dtype(dtype) if isinstance(dtype, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "biufUO":
        raise invalid("classes_dtype", f"must name a NumPy dtype of labels, got {_shown(state['classes_dtype'])}")
    try:
        classes = np.asarray(values, dtype=dtype)
        ordered = classes.ndim == 1 and len(classes) >= 1 and bool(np.all(classes[1:] > classes[:-1]))
    except (TypeError, ValueError, OverflowError):
        ordered = False
    if not ordered or (classes.dtype.kind != "O" and classes.tolist() != values):
        raise invalid("classes", f"must be distinct labels in increasing order, of dtype {dtype}")
    kind = type(model).__name__
    if kind == "BinaryClassifier" and len(classes) != 2:
        raise invalid("classes", f"must be two labels for a BinaryClassifier, got {len(classes)}")
    if kind == "MulticlassClassifier" and len(classes) < 2:
        raise invalid("classes", "must be at least two labels for a MulticlassClassifier")
    fixed = s.num_classes if kind == "MulticlassClassifier" else getattr(s, "num_labels", None)
    if (kind == "MultilabelClassifier" or fixed is not None) and not np.array_equal(
            classes, np.arange(fixed if fixed is not None else len(classes))):
        raise invalid("classes", f"must be 0 .. {(fixed or len(classes)) - 1}")
    return classes


def _check_network(weights: Any, model: Classifier, s: types.SimpleNamespace, shape: tuple[int, ...],
                   invalid: _Invalid) -> None:
    """The file's tensors against the network these parameters build (laid out on the meta device)."""
    if not isinstance(weights, dict) or not all(isinstance(k, str) for k in weights):
        raise invalid("network", "must be a dict of tensor names to tensors")
    expected = model._build_network(s, shape, torch.device("meta")).state_dict()
    for name, tensor in expected.items():
        if name not in weights:
            raise invalid(f"network.{name}", "is missing")
        given = weights[name]
        if not isinstance(given, Tensor):
            raise invalid(f"network.{name}", f"must be a tensor, got {type(given).__name__}")
        if given.shape != tensor.shape or given.dtype != tensor.dtype:
            raise invalid(f"network.{name}", f"is {given.dtype} {tuple(given.shape)}, expected {tensor.dtype} "
                                             f"{tuple(tensor.shape)} for these parameters")
        if given.is_floating_point() and not bool(torch.isfinite(given).all()):
            raise invalid(f"network.{name}", "holds NaN or infinite values")
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise invalid(f"network.{extra[0]}", "is not part of the network these parameters build")


def _history(rows: Any, invalid: _Invalid) -> list[dict]:
    if not isinstance(rows, list):
        raise invalid("history", f"must be a list of rows, got {_shown(rows)}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not all(isinstance(k, str) for k in row) or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) for v in row.values()):
            raise invalid(f"history[{i}]", "must map metric names to numbers")
        if row.get("epoch") != i + 1 or not isinstance(row["epoch"], int):
            raise invalid(f"history[{i}].epoch", "must count the epochs in order")
    return [dict(row) for row in rows]


def _is_device_type(name: str) -> bool:
    try:
        return torch.device(name).type == name
    except (RuntimeError, ValueError):
        return False


def _restore_generator(model: Classifier, state: Any, device_type: Any, invalid: _Invalid) -> None:
    if not isinstance(device_type, str) or not _is_device_type(device_type):
        raise invalid("generator_device", f"must be a device type such as 'cpu' or 'cuda', got {_shown(device_type)}")
    if device_type != model.device_.type:
        return  # another device's stream cannot be continued here: the new one starts from `seed`
    expected = model._generator.get_state()
    if not isinstance(state, Tensor) or state.dtype != torch.uint8 or state.shape != expected.shape:
        raise invalid("generator", f"must be a uint8 tensor of shape {tuple(expected.shape)} (a {device_type} "
                                   "generator state)")
    try:
        model._generator.set_state(state)
    except RuntimeError as exc:
        raise invalid("generator", f"is no valid generator state: {first_line(exc)}") from None


def _restore_optimizer(model: Classifier, state: Any, settings: Any, invalid: _Invalid) -> None:
    if state is None and settings is None:
        return
    if not isinstance(settings, list) or len(settings) != 4:
        raise invalid("optimizer_settings", "must be [solver, lr, weight_decay, momentum] (or none with no optimizer)")
    solver, lr, weight_decay, momentum = settings
    owner = "optimizer_settings"
    try:
        if not isinstance(solver, str) or solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {_shown(solver)}")
        key = (solver, _checks.real(owner, "lr", lr, 0.0, None, low_open=True),
               _checks.real(owner, "weight_decay", weight_decay, 0.0),
               _checks.real(owner, "momentum", momentum, 0.0, 1.0, high_open=True))
    except (TypeError, ValueError) as exc:
        raise invalid("optimizer_settings", first_line(exc)) from None
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        raise invalid("optimizer", "must be an optimizer state: a dict of 'state' and 'param_groups'")
    optimizer = make_optimizer(model.network_, *key)
    params = optimizer.param_groups[0]["params"]
    groups = state["param_groups"]
    if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], dict):
        raise invalid("optimizer.param_groups", "must be one parameter group")
    fresh = optimizer.state_dict()["param_groups"][0]
    for name, value in groups[0].items():
        if name == "params":
            if not isinstance(value, list) or not all(type(v) is int for v in value) or \
                    value != list(range(len(params))):
                raise invalid("optimizer.param_groups[0].params", f"must be 0 .. {len(params) - 1}")
        elif name not in fresh or not _is_plain(value) or _plainify(value) != _plainify(fresh[name]):
            raise invalid(f"optimizer.param_groups[0].{name}"[:80], f"is {_shown(value)}, but these settings give "
                                                                    f"{_shown(fresh.get(name))}")
    per_param = state["state"]
    if not isinstance(per_param, dict):
        raise invalid("optimizer.state", "must be a dict")
    for index, entry in per_param.items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(params):
            raise invalid("optimizer.state", f"names parameter {_shown(index)}, not 0 .. {len(params) - 1}")
        where = f"optimizer.state[{index}]"
        if not isinstance(entry, dict) or not all(isinstance(k, str) for k in entry) or \
                not set(entry) <= _OPTIMIZER_STATE[solver]:
            raise invalid(where, f"must hold {sorted(_OPTIMIZER_STATE[solver])} for {solver}")
        for name, tensor in entry.items():
            if tensor is None and name == "momentum_buffer":
                continue
            expected_shape = () if name == "step" else tuple(params[index].shape)
            if not isinstance(tensor, Tensor) or not tensor.is_floating_point() or \
                    tuple(tensor.shape) != expected_shape:
                raise invalid(f"{where}.{name}", f"must be a float tensor of shape {expected_shape}")
            if not bool(torch.isfinite(tensor).all()) or (name in ("step", "exp_avg_sq") and bool((tensor < 0).any())):
                raise invalid(f"{where}.{name}", "holds values no optimizer state can have (NaN, inf or negative)")
    try:
        optimizer.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise invalid("optimizer", f"does not load: {first_line(exc)}") from None
    model.optimizer_ = optimizer
    model._optimizer_key = key


def _plainify(value: Any) -> Any:
    """Tuples as lists, so a saved (list) value compares equal to a fresh (tuple) one."""
    if isinstance(value, (list, tuple)):
        return [_plainify(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def load_classifier(path: str | os.PathLike, device: str | torch.device | None = None) -> Classifier:
    """Loads any classifier saved with ``save`` (the file records its class), on ``device`` (CPU by default)."""
    return load(path, device)
