"""The estimator every rltorch classifier is (the kinds are in :mod:`rltorch.classifiers.kinds`): scikit-learn's
protocol over rltorch's networks, and what all kinds share (fit, predict, evaluate, files).

Each classifier owns a network (the shared :func:`rltorch.nn.mlp`, or :func:`rltorch.nn.cnn` for
``[C, H, W]`` inputs) built by ``fit`` from the data's shape. Following scikit-learn, the constructor
stores its parameters as given and ``fit`` checks them; what ``fit`` learns ends in an underscore
(``classes_``, ``n_features_in_``, ``network_``, ``optimizer_``, ``history_``); labels may be any
sortable values (ints, strings, bools), mapped through ``classes_``. ``sklearn.base.clone``,
``Pipeline``, ``GridSearchCV`` and ``cross_val_score`` work, and ``check_estimator`` passes (the
checks that cannot apply are listed, with reasons, in ``tests/test_classifiers_sklearn.py``);
scikit-learn itself is never imported by rltorch.

``fit`` starts from fresh weights (seeded by ``seed``: the same data give the same model) unless
``warm_start=True``, which continues from the current weights, optimizer moments, random stream and
history: two fits of 5 epochs then equal one of 10, also across ``save``/``load``.

Example::

    from rltorch.classifiers import MulticlassClassifier, make_blobs, train_test_split
    X, y = make_blobs(4000, num_classes=4)
    X_train, X_test, y_train, y_test = train_test_split(X, y)
    clf = MulticlassClassifier(hidden_sizes=(64, 64), epochs=20, seed=0).fit(X_train, y_train)
    print(clf.score(X_test, y_test), clf.evaluate(X_test, y_test)["f1_macro"])
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import types
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from rltorch import _checks
from rltorch._io import first_line
from rltorch._threads import AUTO, agent_threads, torch_threads
from rltorch.classifiers.data import PREDICT_BATCH, InMemory, Streamed, as_features, as_labels, held_out_count, source
from rltorch.classifiers.heads import OUTPUTS, Decision, Standardize
from rltorch.classifiers.labels import distinct_labels
from rltorch.classifiers.params import Estimator, sklearn_compatible
from rltorch.classifiers.training import MONITORS, SOLVERS, make_optimizer, run_epochs
from rltorch.nn import ACTIVATIONS, cnn, mlp

__all__ = ["Classifier", "NotFittedError"]

BACKBONES = ("mlp", "cnn")
#: Parameters that shape the network: ``warm_start`` continues only a network built with the same ones.
ARCHITECTURE = ("hidden_sizes", "activation", "dropout", "batch_norm", "backbone", "channels", "kernel_size",
                "standardize")
#: Training settings ``fit`` still takes as keyword arguments, deprecated in favour of the constructor.
DEPRECATED_FIT_ARGUMENTS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "optimizer": "solver",
                            "weight_decay": "weight_decay", "momentum": "momentum",
                            "validation_split": "validation_split", "early_stopping": "early_stopping",
                            "monitor": "monitor", "progress": "progress"}


class NotFittedError(ValueError, AttributeError):
    """``predict``/``evaluate``/``save``/``export`` called before ``fit`` (scikit-learn's name and bases; once
    scikit-learn is loaded, the error raised is also a ``sklearn.exceptions.NotFittedError``)."""


class _Check:
    """The checks every batch of ``X`` (and ``y``) passes, naming the argument; remembers the sample shape."""

    def __init__(self, model: Classifier, device: torch.device, sample_shape: tuple[int, ...] | None,
                 backbone: str, x_name: str = "X", y_name: str = "y", fitted_shape: bool = False):
        self.model, self.device, self.sample_shape, self.backbone = model, device, sample_shape, backbone
        self.x_name, self.y_name, self.fitted_shape = x_name, y_name, fitted_shape

    def __call__(self, X: Any, y: Any) -> tuple[Tensor, Any]:
        name = self.x_name
        X = as_features(X, name)
        if X.dim() < 2:
            raise ValueError(f"`{name}` must be [samples, features], got shape {tuple(X.shape)}: Reshape your data "
                             f"with {name}.reshape(-1, 1) for a single feature or {name}.reshape(1, -1) for a "
                             "single sample")
        dims = 2 if self.backbone == "mlp" else 4
        if self.sample_shape is None and X.dim() != dims:
            if self.backbone == "mlp":
                raise ValueError(f"`{name}` must be [samples, features] for the MLP backbone, got samples of shape "
                                 f"{tuple(X.shape[1:])}; flatten it or use backbone='cnn'")
            raise ValueError(f"`{name}` must be [samples, channels, height, width] for the CNN backbone, got "
                             f"samples of shape {tuple(X.shape[1:])}")
        if X.shape[0] == 0:
            raise ValueError(f"`{name}` is empty: it needs at least one sample, got shape {tuple(X.shape)}")
        if 0 in X.shape[1:]:
            raise ValueError(f"`{name}` has 0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 is required.")
        shape = tuple(X.shape[1:])
        if self.sample_shape is None:
            self.sample_shape = shape
        elif shape != self.sample_shape and self.fitted_shape and len(shape) == len(self.sample_shape) == 1:
            raise ValueError(f"{name} has {shape[0]} features, but {type(self.model).__name__} is expecting "
                             f"{self.sample_shape[0]} features as input (`{name}` of shape {tuple(X.shape)})")
        elif shape != self.sample_shape:
            what = "the classifier was fitted on" if self.fitted_shape else "earlier batches had"
            raise ValueError(f"`{name}` has samples of shape {shape}, but {what} {self.sample_shape}")
        X = X.to(device=self.device, dtype=torch.float32)
        if not bool(torch.isfinite(X).all()):
            raise ValueError(f"`{name}` contains NaN or infinite values (as float32)")
        if y is not None:
            y = self.model._check_labels(as_labels(y, self.y_name), self.y_name)
            if len(y) != len(X):
                raise ValueError(f"`{self.x_name}` and `{self.y_name}` differ in length: {len(X)} vs {len(y)}")
        return X, y


class Classifier(Estimator):
    """The shared part of the three classifiers: parameters, fit, prediction, metrics and files.

    Network:
        hidden_sizes: widths of the MLP (or of the CNN's head after its conv blocks); ``()`` is a linear model.
        activation: one of :data:`rltorch.nn.ACTIVATIONS`.
        dropout: dropout probability after each hidden layer.
        batch_norm: BatchNorm1d after each hidden linear layer (MLP backbone).
        backbone: ``"mlp"`` for ``[N, features]`` inputs, ``"cnn"`` for ``[N, C, H, W]``.
        channels: conv widths of the CNN backbone (one Conv-ReLU-MaxPool block each).
        kernel_size: conv kernel of the CNN backbone (odd).
        standardize: scale inputs by the fit data's mean and std (per feature; per channel for the CNN)
            inside the network, so exports take raw inputs.

    Training:
        epochs: passes over the data per ``fit``.
        batch_size: samples per gradient step.
        lr: learning rate.
        solver: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        weight_decay: L2 weight decay.
        momentum: SGD's momentum.
        validation_split: fraction of in-memory data held out (seeded) for per-epoch validation metrics.
        early_stopping: stop after this many epochs without a better ``monitor`` and restore the best
            weights; ``None`` trains every epoch.
        monitor: ``"loss"``, ``"val_loss"``, ``"val_accuracy"`` or ``"val_f1_macro"``; ``None``:
            ``"val_loss"`` with validation data, else ``"loss"``.
        warm_start: ``fit`` continues from the fitted weights, optimizer state, random stream and history
            (scikit-learn's meaning); ``False`` starts afresh every ``fit``.
        threads: torch intra-op threads while fitting and predicting; ``"auto"`` is one thread (these small
            networks cannot gain from a second and lose much when another process holds a core). The
            caller's ``torch.get_num_threads()`` is restored afterwards.
        progress: a progress bar per epoch.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        seed: seeds the initial weights, the shuffling, the validation split and dropout: the same seed and
            data give the same model.
    """

    name: ClassVar[str] = "classifier"
    _multiclass: ClassVar[bool] = False  # one softmax over the outputs (else a sigmoid per output)
    _multilabel: ClassVar[bool] = False  # y is [samples, labels] of 0/1
    _single_logit: ClassVar[bool] = False  # one sigmoid output standing for two classes (binary)

    def __init__(self, *, hidden_sizes: Sequence[int] = (64, 64), activation: str = "relu", dropout: float = 0.0,
                 batch_norm: bool = False, backbone: str = "mlp", channels: Sequence[int] = (16, 32),
                 kernel_size: int = 3, standardize: bool = True, epochs: int = 10, batch_size: int = 256,
                 lr: float = 1e-3, solver: str = "adam", weight_decay: float = 0.0, momentum: float = 0.9,
                 validation_split: float = 0.0, early_stopping: int | None = None, monitor: str | None = None,
                 warm_start: bool = False, threads: int | str = AUTO, progress: bool = False,
                 device: str | torch.device = "cpu", seed: int = 0):
        self._store_params(locals())

    # ------------------------------------------------------------------ what each kind defines

    def _check_kind_params(self, values: types.SimpleNamespace, owner: str) -> None:
        """Checks the kind's own parameters in ``values`` (normalising them in place)."""

    def _check_labels(self, y: Any, name: str) -> Any:
        """``y`` (a tensor or an array) checked for this kind's label format, one entry per sample."""
        raise NotImplementedError

    def _classes_from(self, labels: np.ndarray | None, num_columns: int | None, s: types.SimpleNamespace
                      ) -> np.ndarray:
        """``classes_`` from the distinct labels of the fit data (``num_columns``: multilabel's label count)."""
        raise NotImplementedError

    def _encode(self, y: Any, name: str = "y") -> Tensor:
        """The loss's target tensor on the device for checked labels ``y``."""
        raise NotImplementedError

    def _loss_fn(self, s: types.SimpleNamespace) -> Callable[[Tensor, Tensor], Tensor]:
        raise NotImplementedError

    def _scores(self, target: Tensor, predicted: Tensor) -> dict:
        raise NotImplementedError

    def _num_outputs(self) -> int:
        return len(self.classes_)

    def _threshold_logit(self) -> float:
        return 0.0

    # ------------------------------------------------------------------ parameters

    def _settings(self, overrides: dict | None = None) -> types.SimpleNamespace:
        """Every parameter checked and normalised (with ``overrides`` applied); the parameters themselves stay
        as they were given. Errors name the parameter."""
        s = types.SimpleNamespace(**{**self.get_params(deep=False), **(overrides or {})})
        owner = type(self).__name__
        s.hidden_sizes = _checks.integers(owner, "hidden_sizes", s.hidden_sizes, 1, min_length=0)
        _checks.choice(owner, "activation", s.activation, sorted(ACTIVATIONS))
        s.dropout = _checks.real(owner, "dropout", s.dropout, 0.0, 1.0, high_open=True)
        for name in ("batch_norm", "standardize", "warm_start", "progress"):
            if not isinstance(getattr(s, name), (bool, np.bool_)):
                raise TypeError(f"{owner}: `{name}` must be True or False, got {type(getattr(s, name)).__name__}")
            setattr(s, name, bool(getattr(s, name)))
        _checks.choice(owner, "backbone", s.backbone, BACKBONES)
        s.channels = _checks.integers(owner, "channels", s.channels, 1)
        s.kernel_size = _checks.integer(owner, "kernel_size", s.kernel_size, 1, 99)
        if s.kernel_size % 2 == 0:
            raise ValueError(f"{owner}: `kernel_size` must be odd, got {s.kernel_size}")
        if s.batch_norm and s.backbone == "cnn":
            raise ValueError(f"{owner}: `batch_norm` applies to the MLP backbone only; use backbone='mlp' or "
                             "batch_norm=False")
        s.epochs = _checks.integer(owner, "epochs", s.epochs, 1, 2**31 - 1)
        s.batch_size = _checks.integer(owner, "batch_size", s.batch_size, 1, 2**31 - 1)
        s.lr = _checks.real(owner, "lr", s.lr, 0.0, None, low_open=True)
        _checks.choice(owner, "solver", s.solver, SOLVERS)
        s.weight_decay = _checks.real(owner, "weight_decay", s.weight_decay, 0.0)
        s.momentum = _checks.real(owner, "momentum", s.momentum, 0.0, 1.0, high_open=True)
        s.validation_split = _checks.real(owner, "validation_split", s.validation_split, 0.0, 1.0, high_open=True)
        if s.early_stopping is not None:
            s.early_stopping = _checks.integer(owner, "early_stopping", s.early_stopping, 1, 2**31 - 1)
        if s.monitor is not None:
            _checks.choice(owner, "monitor", s.monitor, MONITORS)
        if not (isinstance(s.threads, str) and s.threads == AUTO):
            if isinstance(s.threads, str):
                raise ValueError(f"{owner}: `threads` must be 'auto' or an integer >= 1, got {s.threads!r:.40}")
            s.threads = _checks.integer(owner, "threads", s.threads, 1, 4096)
        try:
            s.device = _checks.resolve_device(s.device)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"{owner}: `device`: {first_line(exc)}") from None
        s.seed = _checks.integer(owner, "seed", s.seed)
        self._check_kind_params(s, owner)
        return s

    def _deprecated_overrides(self, arguments: dict) -> dict:
        unknown = sorted(set(arguments) - set(DEPRECATED_FIT_ARGUMENTS))
        if unknown:
            raise TypeError(f"{type(self).__name__}.fit() got an unexpected keyword argument {unknown[0]!r}")
        if arguments:
            given = ", ".join(f"{k}=" for k in arguments)
            warnings.warn(f"{type(self).__name__}.fit({given}...): training settings passed to fit() are deprecated "
                          "and will be removed; set them in the constructor or with set_params(), with "
                          "warm_start=True to continue training across fits (as fit() does when given them)",
                          FutureWarning, stacklevel=3)
        return {DEPRECATED_FIT_ARGUMENTS[k]: v for k, v in arguments.items()}

    # ------------------------------------------------------------------ learned state

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")

    @property
    def is_fitted(self) -> bool:
        return self.__sklearn_is_fitted__()

    # The names these had before they became scikit-learn's learned attributes (read-only).
    network = property(lambda self: getattr(self, "network_", None), doc="``network_`` (None before fit).")
    history = property(lambda self: getattr(self, "history_", []), doc="``history_`` ([] before fit).")
    input_shape = property(lambda self: getattr(self, "input_shape_", None), doc="``input_shape_``.")
    optimizer = property(lambda self: getattr(self, "optimizer_", None), doc="``optimizer_`` (None before fit).")

    def _require_fitted(self, what: str) -> nn.Sequential:
        if not self.__sklearn_is_fitted__():
            error = sklearn_compatible(NotFittedError, "sklearn.exceptions", "NotFittedError")
            raise error(f"This {type(self).__name__} instance is not fitted yet: call fit(X, y) before {what}")
        return self.network_

    def _architecture(self, s: types.SimpleNamespace) -> dict:
        return {name: getattr(s, name) for name in ARCHITECTURE}

    def _build_network(self, s: types.SimpleNamespace, input_shape: tuple[int, ...], device: torch.device
                       ) -> nn.Sequential:
        """The untrained network for samples of ``input_shape`` on ``device``, its weights drawn from ``seed`` on
        the CPU (the same weights on every device; the caller's global RNG is left as it was). On the meta
        device nothing is allocated: it lays out the tensors a checkpoint must hold."""
        meta = device.type == "meta"
        with torch.random.fork_rng(devices=[]), torch.device("meta" if meta else "cpu"):
            torch.manual_seed(s.seed)
            if s.backbone == "mlp":
                body = mlp(input_shape[0], s.hidden_sizes, self._num_outputs(), activation=s.activation,
                           dropout=s.dropout, batch_norm=s.batch_norm)
            else:
                body = cnn(input_shape, s.channels, self._num_outputs(), kernel_size=s.kernel_size,
                           hidden_sizes=s.hidden_sizes, activation=s.activation, dropout=s.dropout)
            stats_shape = (input_shape[0],) if s.backbone == "mlp" else (input_shape[0], 1, 1)
            layers = ([Standardize(stats_shape)] if s.standardize else []) + list(body)
        network = nn.Sequential(*layers)
        return network if meta else network.to(device)

    def _initialize(self, s: types.SimpleNamespace, input_shape: tuple[int, ...], classes: np.ndarray) -> None:
        """Fresh learned state: classes, shapes, network, random stream, no optimizer and no history yet."""
        self.classes_ = classes
        self.input_shape_ = tuple(int(v) for v in input_shape)
        self.n_features_in_ = math.prod(self.input_shape_)
        self.device_ = s.device
        self.network_ = self._build_network(s, self.input_shape_, s.device).eval()
        self.optimizer_ = None
        self.history_ = []
        self.n_iter_ = 0
        self._architecture_ = self._architecture(s)
        self._optimizer_key = None
        self._generator = torch.Generator(device=s.device).manual_seed(s.seed)
        self._stats_pending = True

    def build(self, input_shape: Sequence[int]) -> Classifier:
        """Builds the untrained network for samples of ``input_shape`` now rather than in ``fit`` (needs
        ``num_classes``/``num_labels``); the first fit with ``warm_start`` trains it, setting the input
        statistics. Returns ``self``."""
        s = self._settings()
        shape = tuple(input_shape) if isinstance(input_shape, (list, tuple)) else None
        if not shape or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in shape):
            raise ValueError(f"`input_shape` must be positive integers, got {input_shape!r}")
        if len(shape) != (1 if s.backbone == "mlp" else 3):
            raise ValueError(f"`input_shape` must be (features,) for the MLP backbone or (channels, height, width) "
                             f"for the CNN, got {shape}")
        if self.__sklearn_is_fitted__():
            raise ValueError(f"{type(self).__name__} is already built for inputs of shape {self.input_shape_}")
        self._initialize(s, shape, self._classes_from(None, None, s))
        return self

    def _set_standardization(self, total: Tensor, total_sq: Tensor, count: int) -> None:
        layer = self.network_[0]
        if not isinstance(layer, Standardize):
            return
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
        std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant feature passes through unscaled
        layer.mean.copy_(mean.reshape(layer.mean.shape))
        layer.inv_std.copy_((1.0 / std).reshape(layer.inv_std.shape))

    # ------------------------------------------------------------------ fit

    def fit(self, X: Any, y: Any = None, *, validation_data: Any = None, callback: Callable[[dict], Any] | None = None,
            **deprecated: Any) -> Classifier:
        """Trains on ``X, y``: tensors, arrays or array-likes, or ``X`` a ``Dataset``/``DataLoader`` yielding
        ``(x, y)`` pairs with ``y=None``. ``validation_data``: ``(X_val, y_val)`` or a Dataset/DataLoader,
        scored after every epoch. ``callback(row)`` receives each epoch's row of ``history_``.

        Starts from fresh weights unless ``warm_start`` (see the class). A rejected or failed fit leaves the
        classifier as it was. Returns ``self``.
        """
        overrides = self._deprecated_overrides(deprecated)
        s = self._settings(overrides)
        if callback is not None and not callable(callback):
            raise TypeError(f"`callback` must be callable or None, got {callback!r}")
        if validation_data is not None and s.validation_split > 0:
            raise ValueError("give either `validation_data` or `validation_split`, not both")
        has_validation = validation_data is not None or s.validation_split > 0
        monitor = s.monitor or ("val_loss" if has_validation else "loss")
        if s.early_stopping is not None and monitor.startswith("val_") and not has_validation:
            raise ValueError(f"`monitor`={monitor!r} needs `validation_data` or `validation_split`")
        # Deprecated fit arguments keep their old meaning: continue training when already fitted, on the caller's
        # threads (an agent that trains a classifier this way has set them already).
        warm = (s.warm_start or bool(overrides)) and self.__sklearn_is_fitted__()
        threads = torch_threads(agent_threads(s.threads)) if not overrides else contextlib.nullcontext()
        with threads, self._restored_on_error():
            self._fit(X, y, validation_data, callback, s, monitor, warm)
        return self

    def _fit(self, X: Any, y: Any, validation_data: Any, callback: Callable | None, s: types.SimpleNamespace,
             monitor: str, warm: bool) -> None:
        if warm:
            if self._architecture(s) != self._architecture_:
                changed = sorted(k for k in ARCHITECTURE if self._architecture(s)[k] != self._architecture_[k])
                raise ValueError(f"warm_start continues the fitted network, but {', '.join(changed)} changed since "
                                 "it was built; set warm_start=False to build a new one")
            if s.device != self.device_:
                self._move(s.device)
        check = _Check(self, s.device, self.input_shape_ if warm else None, s.backbone, fitted_shape=warm)
        train = source(X, y, check, labelled=True)
        if isinstance(train, Streamed) and s.validation_split > 0:
            raise ValueError("`validation_split` needs in-memory data; pass `validation_data` with a Dataset")
        held_out = held_out_count(len(train), s.validation_split) if isinstance(train, InMemory) else 0
        if s.validation_split > 0 and not 1 <= held_out < len(train):
            raise ValueError(f"`validation_split`={s.validation_split} leaves an empty split of {len(train)} samples")
        if s.batch_norm and isinstance(train, InMemory) and len(train) - held_out < 2:
            raise ValueError("`X` needs at least 2 training samples to train with batch_norm=True")
        if not warm or self._stats_pending:
            fixed_classes = self._multilabel or getattr(s, "num_classes", None) is not None
            scan = self._scan(train, need_labels=not warm and not fixed_classes, need_moments=s.standardize)
            if not warm:
                self._initialize(s, check.sample_shape, self._classes_from(scan.labels, scan.num_columns, s))
            if s.standardize:
                self._set_standardization(scan.total, scan.total_sq, scan.count)
            self._stats_pending = False
        validation = None
        if validation_data is not None:
            validation = self._validation_source(validation_data)
        if held_out:
            train, validation = train.split(held_out, self._generator)
        train = train.encoded(self._encode)
        if validation is not None:
            validation = validation.encoded(lambda labels: self._encode(labels, "validation_data"))
        self.optimizer_ = self._optimizer(s)
        loss_fn = self._loss_fn(s)
        min_batch = 2 if s.batch_norm else 1

        def on_row(row: dict) -> None:
            self.history_.append(row)
            self.n_iter_ = len(self.history_)
            if callback is not None:
                callback(dict(row))

        run_epochs(self.network_, self.optimizer_, loss_fn,
                   lambda: train.batches(s.batch_size, self._generator, min_batch), epochs=s.epochs,
                   first_epoch=len(self.history_), generator=self._generator,
                   num_batches=math.ceil(len(train) / s.batch_size) if isinstance(train, InMemory) else None,
                   validate=None if validation is None else (lambda: self._evaluate_source(validation, loss_fn)),
                   early_stopping=s.early_stopping, monitor=monitor, progress=s.progress, on_row=on_row)

    @contextlib.contextmanager
    def _restored_on_error(self) -> Iterator[None]:
        """Any exception inside leaves the learned state (weights, optimizer, random stream, history) as it was."""
        saved = dict(self.__dict__)
        network, optimizer = saved.get("network_"), saved.get("optimizer_")
        weights = None if network is None else {k: v.detach().clone() for k, v in network.state_dict().items()}
        optimizer_state = None if optimizer is None else copy.deepcopy(optimizer.state_dict())
        generator = saved.get("_generator")
        generator_state = None if generator is None else generator.get_state()
        history = list(saved.get("history_", []))
        try:
            yield
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(saved)
            if network is not None:
                network.load_state_dict(weights)
                network.eval()
            if optimizer is not None:
                optimizer.load_state_dict(optimizer_state)
            if generator is not None:
                generator.set_state(generator_state)
            if "history_" in saved:
                self.history_[:] = history
            raise

    def _scan(self, data: InMemory | Streamed, need_labels: bool, need_moments: bool) -> types.SimpleNamespace:
        """One pass over the (checked) data: its sample count and, as needed, the input statistics, the distinct
        labels and the label count (multilabel)."""
        total = total_sq = None
        count = seen = 0
        uniques: list = []
        num_columns = None
        for xb, yb in data.batches(PREDICT_BATCH):
            seen += len(xb)
            num_columns = yb.shape[1] if yb.ndim == 2 else None
            if need_moments:
                x64 = xb.double()
                dims = [0] if x64.dim() == 2 else [0, 2, 3]
                s, sq = x64.sum(dims), (x64 * x64).sum(dims)
                total = s if total is None else total + s
                total_sq = sq if total_sq is None else total_sq + sq
                count += math.prod(x64.shape[d] for d in dims)
            if need_labels:
                uniques.append(distinct_labels(yb, "y"))
        if seen == 0:
            raise ValueError("`X` is empty: the Dataset/DataLoader yielded no samples")
        labels = None
        if uniques:
            kinds = {u.dtype.kind for u in uniques}
            labels = distinct_labels(np.concatenate(uniques) if len(kinds) == 1 else
                             np.concatenate([u.astype(object) for u in uniques]), "y")
        return types.SimpleNamespace(total=total, total_sq=total_sq, count=count, labels=labels,
                                     num_columns=num_columns)

    def _validation_source(self, data: Any) -> InMemory | Streamed:
        if not isinstance(data, (Dataset, DataLoader)):
            if not isinstance(data, (tuple, list)) or len(data) != 2:
                raise TypeError("`validation_data` must be (X_val, y_val) or a Dataset/DataLoader")
            X_v, y_v = data
        else:
            X_v, y_v = data, None
        check = _Check(self, self.device_, self.input_shape_, "mlp" if len(self.input_shape_) == 1 else "cnn",
                       "validation_data", "validation_data", fitted_shape=True)
        return source(X_v, y_v, check, labelled=True, x_name="validation_data", y_name="validation_data")

    def _optimizer(self, s: types.SimpleNamespace) -> torch.optim.Optimizer:
        """The optimizer ``fit`` uses: the current one (its moments intact) when the settings are unchanged,
        so warm fits continue; a fresh one otherwise."""
        key = (s.solver, s.lr, s.weight_decay, s.momentum)
        if self.optimizer_ is None or self._optimizer_key != key:
            self.optimizer_ = make_optimizer(self.network_, *key)
            self._optimizer_key = key
        return self.optimizer_

    def make_optimizer(self, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                       momentum: float = 0.9) -> torch.optim.Optimizer:
        """The optimizer a fit with these settings would use (kept: a later fit with the same settings
        continues with it), e.g. to load a saved optimizer state into."""
        self._require_fitted("make_optimizer")
        s = self._settings({"solver": optimizer, "lr": lr, "weight_decay": weight_decay, "momentum": momentum})
        return self._optimizer(s)

    def _move(self, device: torch.device) -> None:
        """The fitted state on ``device`` (a new network object; the random stream restarts from ``seed``)."""
        self.network_ = copy.deepcopy(self.network_).to(device)
        if self.optimizer_ is not None:
            state = self.optimizer_.state_dict()
            self.optimizer_ = make_optimizer(self.network_, *self._optimizer_key)
            self.optimizer_.load_state_dict(state)
        seed = _checks.integer(type(self).__name__, "seed", self.seed)
        self._generator = torch.Generator(device=device).manual_seed(seed)
        self.device_ = device

    def to(self, device: str | torch.device) -> Classifier:
        """Moves the classifier (and its later fits and predictions) to ``device``; sets the ``device``
        parameter. Returns ``self``."""
        try:
            resolved = _checks.resolve_device(device)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"{type(self).__name__}: `device`: {first_line(exc)}") from None
        self.device = device
        if self.__sklearn_is_fitted__() and resolved != self.device_:
            self._move(resolved)
        return self

    # ------------------------------------------------------------------ prediction

    def _decision(self, output: str) -> Decision:
        network = self._require_fitted("predicting")
        return Decision(network, output, self._multiclass, self._threshold_logit(), self._single_logit)

    def _prediction_source(self, X: Any) -> InMemory | Streamed:
        check = _Check(self, self.device_, self.input_shape_, "mlp" if len(self.input_shape_) == 1 else "cnn",
                       fitted_shape=True)
        return source(X, None, check, labelled=False)

    def _run(self, X: Any, output: str, what: str) -> tuple[Tensor, Callable[[Tensor], Any]]:
        """``output`` of the decision head for every sample of ``X``, and how to return it: a tensor on
        ``X``'s device for a tensor, a CPU tensor for a Dataset, a NumPy array otherwise."""
        self._require_fitted(what)
        head = self._decision(output)
        with torch_threads(agent_threads(self._threads())):
            data = self._prediction_source(X)
            self.network_.eval()
            with torch.inference_mode():
                parts = [head(xb) for xb, _ in data.batches(PREDICT_BATCH)]
        if not parts:
            raise ValueError("`X` is empty: the Dataset/DataLoader yielded no samples")
        out = torch.cat(parts)
        if isinstance(X, Tensor):
            return out, lambda t: t.to(X.device)
        if isinstance(X, (Dataset, DataLoader)):
            return out, lambda t: t.cpu()
        return out, lambda t: t.cpu().numpy()

    def _threads(self) -> int | str:
        threads = self.threads
        if not (isinstance(threads, str) and threads == AUTO):
            threads = _checks.integer(type(self).__name__, "threads", threads, 1, 4096)
        return threads

    def decision_function(self, X: Any) -> Any:
        """Decision scores with scikit-learn's shapes: ``[N]`` for two classes (the log-odds of
        ``classes_[1]``), ``[N, classes]`` for more, ``[N, labels]`` for multilabel."""
        out, back = self._run(X, "logits", "decision_function")
        return back(out)

    def predict_proba(self, X: Any) -> Any:
        """Probabilities ``[N, classes]`` in the order of ``classes_`` (two columns for a binary
        classifier), or per-label probabilities ``[N, labels]`` (multilabel)."""
        out, back = self._run(X, "proba", "predict_proba")
        return back(out)

    def predict(self, X: Any) -> Any:
        """Labels from ``classes_`` (``[N, labels]`` of 0/1 for multilabel), in the type of ``X`` (a tensor on
        its device, else a NumPy array); string labels always come back as a NumPy array."""
        out, back = self._run(X, "labels", "predict")
        if self._multilabel:
            return back(out)
        classes = self.classes_
        if classes.dtype.kind in "biuf" and (isinstance(X, Tensor) or isinstance(X, (Dataset, DataLoader))):
            return back(torch.as_tensor(classes).to(out.device)[out])
        return classes[out.cpu().numpy()]

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, X: Any, y: Any = None) -> dict:
        """Loss, accuracy, macro and per-class precision/recall/F1, support and confusion matrix (classes in
        the order of ``classes_``) on ``(X, y)`` or a Dataset/DataLoader of pairs, as plain Python values."""
        self._require_fitted("evaluate")
        s = self._settings()
        with torch_threads(agent_threads(s.threads)):
            check = _Check(self, self.device_, self.input_shape_, "mlp" if len(self.input_shape_) == 1 else "cnn",
                           fitted_shape=True)
            data = source(X, y, check, labelled=True).encoded(self._encode)
            return self._evaluate_source(data, self._loss_fn(s))

    def _evaluate_source(self, data: InMemory | Streamed, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> dict:
        network = self.network_
        network.eval()
        logits, targets = [], []
        with torch.inference_mode():
            for xb, yb in data.batches(PREDICT_BATCH):
                logits.append(network(xb))
                targets.append(yb)
            if not logits:
                raise ValueError("`X` is empty: the Dataset/DataLoader yielded no samples")
            logits_t, target_t = torch.cat(logits), torch.cat(targets)
            loss = loss_fn(logits_t, target_t).item()
            predicted = self._decision("labels").decide(logits_t)
        return {"loss": loss, **self._scores(target_t, predicted)}

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Mean accuracy of ``predict(X)`` against ``y`` (all labels right for multilabel), weighted by
        ``sample_weight`` when given; scikit-learn's default score for classifiers."""
        if isinstance(X, (Dataset, DataLoader)):
            if sample_weight is not None:
                raise TypeError("`sample_weight` needs in-memory `X` and `y`")
            return self.evaluate(X, y)["accuracy"]
        predicted = self.predict(X)
        predicted = predicted.cpu().numpy() if isinstance(predicted, Tensor) else np.asarray(predicted)
        truth = as_labels(y, "y")
        truth = truth.cpu().numpy() if isinstance(truth, Tensor) else truth
        if truth.ndim == 2 and truth.shape[1] == 1 and predicted.ndim == 1:
            truth = truth[:, 0]
        if truth.shape[:1] != predicted.shape[:1]:
            raise ValueError(f"`X` and `y` differ in length: {len(predicted)} vs {len(truth)}")
        correct = predicted == truth
        if correct.ndim == 2:
            correct = correct.all(axis=1)
        if sample_weight is None:
            return float(np.mean(correct))
        weights = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if len(weights) != len(correct) or not np.all(np.isfinite(weights)) or weights.sum() <= 0:
            raise ValueError(f"`sample_weight` must be {len(correct)} finite weights with a positive sum")
        return float(np.average(correct, weights=weights))

    # ------------------------------------------------------------------ files

    def state_dict(self) -> dict:
        """Everything ``load`` needs, in plain types and tensors only (``torch.load(weights_only=True)`` reads
        it): parameters, classes, network, history, optimizer state and random stream."""
        from rltorch.classifiers import persistence

        self._require_fitted("state_dict")
        return persistence.state_of(self)

    @classmethod
    def from_state_dict(cls, state: dict, device: str | torch.device | None = None,
                        source: str = "classifier checkpoint") -> Classifier:
        """The classifier a :meth:`state_dict` describes, every entry checked (ValueError naming ``source`` and
        the entry)."""
        from rltorch.classifiers import persistence

        return persistence.restore(state, device, expected=cls, source=source)

    def save(self, path: str | os.PathLike) -> str:
        """Writes the classifier to ``path`` atomically, with a checksum. Returns the path."""
        from rltorch.classifiers import persistence

        self._require_fitted("save")
        return persistence.save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> Classifier:
        """Reads a file written by :meth:`save` (``weights_only=True``: loading runs no code). With
        ``warm_start=True`` (``clf.set_params(warm_start=True)``) its next ``fit`` continues exactly where the
        saved one stopped."""
        from rltorch.classifiers import persistence

        return persistence.load(path, device, expected=cls)

    def as_module(self, output: str = "labels") -> Decision:
        """A CPU ``nn.Module`` (eval mode) mapping float32 inputs to ``output`` (``"labels"``, ``"proba"`` or
        ``"logits"``) with the shapes of ``predict``/``predict_proba``/``decision_function``. Integer labels
        come out as the labels themselves; other labels as indices into ``classes_``."""
        self._require_fitted("as_module")
        if output not in OUTPUTS:
            raise ValueError(f"`output` must be 'labels', 'proba' or 'logits', got {output!r}")
        classes = None
        if output == "labels" and not self._multilabel and self.classes_.dtype.kind in "biu":
            classes = torch.as_tensor(self.classes_.astype(np.int64))
        module = Decision(copy.deepcopy(self.network_).cpu(), output, self._multiclass, self._threshold_logit(),
                          self._single_logit, classes)
        return module.eval()

    def export(self, path: str | os.PathLike, format: str = "torchscript", output: str = "labels") -> str:
        """Saves :meth:`as_module` for use without rltorch: ``format="torchscript"`` (load with
        ``torch.jit.load``) or ``"export"`` (``torch.export.load(path).module()``), with a dynamic batch
        dimension, written atomically. Returns the path."""
        from rltorch._io import EXPORT_FORMATS, export_module

        if format not in EXPORT_FORMATS:
            raise ValueError(f"`format` must be 'torchscript' or 'export', got {format!r}")
        module = self.as_module(output)
        return export_module(module, torch.zeros(4, *self.input_shape_), path, format, "classifier export")
