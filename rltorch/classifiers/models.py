"""Binary, multiclass and multilabel classifiers with a scikit-learn-like surface.

Each classifier owns a network (the shared :func:`rltorch.nn.mlp`, or
:func:`rltorch.nn.cnn` for ``[C, H, W]`` inputs) that is built on the first
``fit`` from the data's shape. Data that fits in memory (tensors, NumPy arrays,
a ``TensorDataset``) is moved to the device once and batched by index, one
``randperm`` per epoch and no ``DataLoader``, so the epoch is spent in
forward/backward. Other ``Dataset``/``DataLoader`` inputs are streamed.

Example::

    from rltorch.classifiers import MulticlassClassifier, make_blobs, train_test_split
    X, y = make_blobs(4000, num_classes=4)
    X_train, X_test, y_train, y_test = train_test_split(X, y)
    clf = MulticlassClassifier(hidden_sizes=(64, 64), seed=0).fit(X_train, y_train, epochs=20)
    print(clf.evaluate(X_test, y_test)["accuracy"])
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from rltorch.classifiers import metrics as _metrics
from rltorch._checks import resolve_device
from rltorch.nn import ACTIVATIONS, cnn, mlp

__all__ = ["Classifier", "BinaryClassifier", "MulticlassClassifier", "MultilabelClassifier", "NotFittedError",
           "load_classifier", "CHECKPOINT_FORMAT"]

CHECKPOINT_KIND = "rltorch.classifier"
CHECKPOINT_FORMAT = 1
OPTIMIZERS = ("adam", "sgd")
BACKBONES = ("mlp", "cnn")
_PREDICT_BATCH = 65536


class NotFittedError(ValueError, AttributeError):
    """``predict``/``evaluate``/``save``/``export`` called before ``fit`` (scikit-learn's name)."""


class Standardize(nn.Module):
    """``(x - mean) / std`` with the training data's statistics stored as buffers, so the
    exported network takes raw inputs."""

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("inv_std", torch.ones(shape))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) * self.inv_std


class Decision(nn.Module):
    """A trained network plus what turns its logits into the requested output; what ``export`` saves."""

    def __init__(self, network: nn.Module, output: str, multiclass: bool, threshold_logit: float, single: bool):
        super().__init__()
        self.network = network
        self.output = output
        self.multiclass = multiclass
        self.threshold_logit = threshold_logit
        self.single = single  # the binary classifier's one logit: outputs are [N], not [N, 1]

    def forward(self, x: Tensor) -> Tensor:
        logits = self.network(x)
        if self.multiclass:
            if self.output == "logits":
                return logits
            if self.output == "proba":
                return torch.softmax(logits, dim=1)
            return logits.argmax(dim=1)
        if self.output == "logits":
            out = logits
        elif self.output == "proba":
            out = torch.sigmoid(logits)
        else:
            out = (logits > self.threshold_logit).long()
        if self.single:
            out = out[:, 0]
        return out


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        return resolve_device(device)
    except RuntimeError as exc:  # CUDA asked for but absent: a bad argument here
        raise ValueError(f"`device`: {exc}") from None


def _int_at_least(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _finite(value: Any, name: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False
            ) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}")
    value = float(value)
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"`{name}` must lie in {interval}, got {value!r}")
    return value


def _as_tensor(data: Any, name: str) -> Tensor:
    if isinstance(data, Tensor):
        return data
    if isinstance(data, (Dataset, DataLoader)):
        raise TypeError(f"`{name}` must be a tensor or an array here, got a {type(data).__name__}")
    try:
        array = np.asarray(data)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"`{name}` must be a tensor or an array-like, got {type(data).__name__}: {exc}") from exc
    if array.dtype == object or array.dtype.kind in "USV":
        raise TypeError(f"`{name}` must be numeric, got an array of dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array))


class Classifier:
    """The shared part of the three classifiers: network, fit loop, prediction, metrics, files.

    Args:
        hidden_sizes: widths of the MLP (or of the CNN's head after its conv blocks).
        activation: one of :data:`rltorch.nn.ACTIVATIONS`.
        dropout: dropout probability after each hidden layer.
        batch_norm: BatchNorm1d after each hidden linear layer (MLP backbone).
        backbone: ``"mlp"`` for ``[N, features]`` inputs, ``"cnn"`` for ``[N, C, H, W]``.
        channels: conv widths of the CNN backbone (one Conv-ReLU-MaxPool block each).
        kernel_size: conv kernel of the CNN backbone.
        standardize: scale inputs by the first fit's mean and std (per feature; per channel
            for the CNN) inside the network.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: seeds the initial weights, the shuffling, the validation split and dropout:
            the same seed and data give the same model.
    """

    name: ClassVar[str] = "classifier"
    _multiclass: ClassVar[bool] = False

    def __init__(self, *, hidden_sizes: Sequence[int] = (64, 64), activation: str = "relu", dropout: float = 0.0,
                 batch_norm: bool = False, backbone: str = "mlp", channels: Sequence[int] = (16, 32),
                 kernel_size: int = 3, standardize: bool = True, device: str | torch.device = "cpu", seed: int = 0):
        sizes = list(hidden_sizes) if isinstance(hidden_sizes, Iterable) and not isinstance(hidden_sizes, str) else None
        if sizes is None or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in sizes):
            raise ValueError(f"`hidden_sizes` must be a sequence of integers >= 1, got {hidden_sizes!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if backbone not in BACKBONES:
            raise ValueError(f"`backbone` must be one of {BACKBONES}, got {backbone!r}")
        conv = list(channels) if isinstance(channels, Iterable) and not isinstance(channels, str) else None
        if not conv or any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1 for c in conv):
            raise ValueError(f"`channels` must be a non-empty sequence of integers >= 1, got {channels!r}")
        kernel_size = _int_at_least(kernel_size, "kernel_size", 1)
        if kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd, got {kernel_size}")
        if batch_norm and backbone == "cnn":
            raise ValueError("`batch_norm` applies to the MLP backbone only; use backbone='mlp' or batch_norm=False")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"`seed` must be an integer, got {seed!r}")
        self.hidden_sizes = tuple(int(h) for h in sizes)
        self.activation = activation
        self.dropout = _finite(dropout, "dropout", 0.0, 1.0, high_open=True)
        self.batch_norm = bool(batch_norm)
        self.backbone = backbone
        self.channels = tuple(int(c) for c in conv)
        self.kernel_size = kernel_size
        self.standardize = bool(standardize)
        self.device = _resolve_device(device)
        self.seed = int(seed)
        self.network: nn.Sequential | None = None
        self.input_shape: tuple[int, ...] | None = None
        self.history: list[dict] = []
        self._generator: torch.Generator | None = None
        #: The optimizer of the last ``fit`` (None before); see :meth:`make_optimizer`.
        self.optimizer: torch.optim.Optimizer | None = None
        self._optimizer_key: tuple | None = None
        self._stats_pending = False

    # ---- what each kind defines ----

    def get_params(self) -> dict:
        """The constructor arguments as plain Python values (what ``save`` stores)."""
        return {"hidden_sizes": list(self.hidden_sizes), "activation": self.activation, "dropout": self.dropout,
                "batch_norm": self.batch_norm, "backbone": self.backbone, "channels": list(self.channels),
                "kernel_size": self.kernel_size, "standardize": self.standardize, "seed": self.seed}

    @property
    def num_outputs(self) -> int | None:
        raise NotImplementedError

    def _targets(self, y: Any, n: int, name: str = "y") -> Tensor:
        """Checks ``y`` for ``n`` samples; returns the loss's target tensor on the device."""
        raise NotImplementedError

    def _adopt_targets(self, y: Tensor) -> None:
        """First fit: take what the data says (class count, label count)."""

    def _loss(self, logits: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def _scores(self, y_true: Tensor, y_pred: Tensor) -> dict:
        raise NotImplementedError

    def _threshold_logit(self) -> float:
        return 0.0

    # ---- building ----

    @property
    def is_fitted(self) -> bool:
        return self.network is not None

    def _require_fitted(self, what: str) -> nn.Sequential:
        if self.network is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit(X, y) before {what}")
        return self.network

    def _build(self, input_shape: tuple[int, ...]) -> None:
        if self.backbone == "mlp" and len(input_shape) != 1:
            raise ValueError(f"`X` must be [samples, features] for the MLP backbone, got samples of shape "
                             f"{input_shape}; flatten it or use backbone='cnn'")
        if self.backbone == "cnn" and len(input_shape) != 3:
            raise ValueError(f"`X` must be [samples, channels, height, width] for the CNN backbone, got samples "
                             f"of shape {input_shape}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if self.backbone == "mlp":
                body = mlp(input_shape[0], self.hidden_sizes, self.num_outputs, activation=self.activation,
                           dropout=self.dropout, batch_norm=self.batch_norm)
            else:
                body = cnn(input_shape, self.channels, self.num_outputs, kernel_size=self.kernel_size,
                           hidden_sizes=self.hidden_sizes, activation=self.activation, dropout=self.dropout)
        stats_shape = (input_shape[0],) if self.backbone == "mlp" else (input_shape[0], 1, 1)
        layers = ([Standardize(stats_shape)] if self.standardize else []) + list(body)
        self.network = nn.Sequential(*layers).to(self.device)
        self.input_shape = tuple(input_shape)
        self._generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.optimizer, self._optimizer_key = None, None
        self._stats_pending = True

    def build(self, input_shape: Sequence[int]) -> "Classifier":
        """Builds the (untrained) network for samples of ``input_shape`` now rather than at the first
        ``fit`` (needs ``num_classes``/``num_labels``); the first fit still sets the input statistics."""
        shape = tuple(input_shape)
        if not shape or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in shape):
            raise ValueError(f"`input_shape` must be positive integers, got {input_shape!r}")
        if self.network is not None:
            raise ValueError(f"{type(self).__name__} is already built for inputs of shape {self.input_shape}")
        if self.num_outputs is None:
            raise ValueError(f"{type(self).__name__}.build needs the number of outputs: pass "
                             f"{'num_classes' if self._multiclass else 'num_labels'} to the constructor")
        self._build(tuple(int(v) for v in shape))
        return self

    def _set_standardization(self, total: Tensor, total_sq: Tensor, count: int) -> None:
        self._stats_pending = False
        if not self.standardize:
            return
        mean = total / count
        var = (total_sq / count - mean * mean).clamp_min(0)
        std = var.sqrt()
        std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant feature passes through unscaled
        layer = self.network[0]
        layer.mean.copy_(mean.reshape(layer.mean.shape))
        layer.inv_std.copy_((1.0 / std).reshape(layer.inv_std.shape))

    @staticmethod
    def _moment_dims(x: Tensor) -> list[int]:
        return [0] if x.dim() == 2 else [0, 2, 3]

    # ---- input checks ----

    def _features(self, X: Any, name: str = "X") -> Tensor:
        """``X`` as float32 on the device, after every check (a fresh tensor only where needed)."""
        X = _as_tensor(X, name)
        if X.dtype.is_complex:
            raise TypeError(f"`{name}` must be real-valued, got {X.dtype}")
        if X.dim() < 2:
            raise ValueError(f"`{name}` must be [samples, ...features], got shape {tuple(X.shape)}; "
                             f"a single feature is X.reshape(-1, 1)")
        if X.shape[0] == 0:
            raise ValueError(f"`{name}` is empty: it needs at least one sample")
        if self.input_shape is not None and tuple(X.shape[1:]) != self.input_shape:
            raise ValueError(f"`{name}` has samples of shape {tuple(X.shape[1:])}, but the classifier was fitted "
                             f"on {self.input_shape}")
        X = X.to(device=self.device, dtype=torch.float32)
        if not bool(torch.isfinite(X).all()):
            raise ValueError(f"`{name}` contains NaN or infinite values")
        return X

    @staticmethod
    def _matching_length(X: Tensor, y: Tensor, x_name: str, y_name: str) -> None:
        if y.dim() == 0 or len(X) != len(y):
            raise ValueError(f"`{x_name}` and `{y_name}` differ in length: {len(X)} vs "
                             f"{len(y) if y.dim() else 'a scalar'}")

    def _in_memory(self, data: Any, y: Any, x_name: str, y_name: str) -> tuple[Tensor, Any] | None:
        """``(X, y)`` when ``data`` fits in memory (arrays, tensors, a TensorDataset), else None."""
        if isinstance(data, TensorDataset):
            if y is not None:
                raise TypeError(f"`{y_name}` must be None when `{x_name}` is a Dataset (it holds the targets)")
            if len(data.tensors) != 2:
                raise ValueError(f"`{x_name}`: a TensorDataset must hold (X, y), got {len(data.tensors)} tensors")
            return data.tensors[0], data.tensors[1]
        if isinstance(data, (Dataset, DataLoader)):
            if y is not None:
                raise TypeError(f"`{y_name}` must be None when `{x_name}` is a Dataset or DataLoader")
            return None
        if y is None:
            raise TypeError(f"`{y_name}` is required when `{x_name}` is a tensor or an array")
        return data, y

    # ---- fit ----

    def fit(self, X: Any, y: Any = None, *, epochs: int = 10, batch_size: int = 256, lr: float = 1e-3,
            optimizer: str = "adam", weight_decay: float = 0.0, momentum: float = 0.9,
            validation_data: Any = None, validation_split: float = 0.0, early_stopping: int | None = None,
            monitor: str | None = None, progress: bool = False,
            callback: Callable[[dict], Any] | None = None) -> "Classifier":
        """Trains for ``epochs`` passes over the data (continuing from the current weights when fitted).

        ``X, y``: tensors or arrays, or ``X`` a ``Dataset``/``DataLoader`` yielding ``(x, y)``
        with ``y=None``. ``validation_data``: ``(X_val, y_val)`` or a Dataset/DataLoader;
        ``validation_split``: the fraction of in-memory data held out instead (seeded).
        ``early_stopping=k`` stops after ``k`` epochs without improving ``monitor``
        (``"loss"``, ``"val_loss"``, ``"val_accuracy"`` or ``"val_f1_macro"``; default
        ``"val_loss"`` with validation data, else ``"loss"``) and restores the best weights.
        ``callback(row)`` receives each epoch's row of :attr:`history`. Returns ``self``.
        """
        epochs = _int_at_least(epochs, "epochs", 1)
        batch_size = _int_at_least(batch_size, "batch_size", 1)
        lr = _finite(lr, "lr", 0.0, math.inf, low_open=True, high_open=True)
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}, got {optimizer!r}")
        weight_decay = _finite(weight_decay, "weight_decay", 0.0, math.inf, high_open=True)
        momentum = _finite(momentum, "momentum", 0.0, 1.0, high_open=True)
        validation_split = _finite(validation_split, "validation_split", 0.0, 1.0, high_open=True)
        if early_stopping is not None:
            early_stopping = _int_at_least(early_stopping, "early_stopping", 1)
        if callback is not None and not callable(callback):
            raise TypeError(f"`callback` must be callable or None, got {callback!r}")
        if validation_data is not None and validation_split > 0:
            raise ValueError("give either `validation_data` or `validation_split`, not both")
        has_validation = validation_data is not None or validation_split > 0
        if monitor is None:
            monitor = "val_loss" if has_validation else "loss"
        monitors = ("loss", "val_loss", "val_accuracy", "val_f1_macro")
        if monitor not in monitors:
            raise ValueError(f"`monitor` must be one of {monitors}, got {monitor!r}")
        if monitor.startswith("val_") and not has_validation:
            raise ValueError(f"`monitor`={monitor!r} needs `validation_data` or `validation_split`")

        # Everything is checked before anything changes: a rejected fit leaves the classifier as it was.
        snapshot = dict(self.__dict__)
        generator_state = self._generator.get_state() if self._generator is not None else None
        try:
            batches, num_batches, validation = self._prepare_fit(X, y, batch_size, validation_data,
                                                                 validation_split)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            if generator_state is not None:
                self._generator.set_state(generator_state)
            raise

        network = self.network
        opt = self.make_optimizer(optimizer, lr, weight_decay, momentum)
        bar_cls = None
        if progress:
            from tqdm.auto import tqdm as bar_cls
        maximize = monitor in ("val_accuracy", "val_f1_macro")
        best_value, best_state, stale = None, None, 0
        start_epoch = len(self.history)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            # Dropout draws from the global generator: seed it from ours so fits repeat.
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=self._generator, device=self.device)))
            for epoch in range(epochs):
                network.train()
                began = time.perf_counter()
                bar = bar_cls(total=num_batches, desc=f"epoch {start_epoch + epoch + 1}", unit="batch",
                              leave=False) if bar_cls else None
                loss_sum = torch.zeros((), device=self.device)
                seen = 0
                for xb, yb in batches():
                    logits = network(xb)
                    loss = self._loss(logits, yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    loss_sum += loss.detach() * len(xb)
                    seen += len(xb)
                    if bar is not None:
                        bar.update(1)
                if seen == 0:
                    raise ValueError("`X` yielded no batches: the dataset is empty")
                elapsed = time.perf_counter() - began
                row = {"epoch": start_epoch + epoch + 1, "loss": loss_sum.item() / seen,
                       "samples": seen, "wall_time_s": elapsed, "samples_per_s": seen / max(elapsed, 1e-12)}
                if validation is not None:
                    scores = self._evaluate_tensors(*validation) if isinstance(validation, tuple) else \
                        self._evaluate_loader(validation)
                    row.update({"val_loss": scores["loss"], "val_accuracy": scores["accuracy"],
                                "val_f1_macro": scores["f1_macro"]})
                self.history.append(row)
                if bar is not None:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k in ("loss", "val_loss",
                                                                                     "val_accuracy")})
                    bar.close()
                if callback is not None:
                    callback(dict(row))
                if early_stopping is not None:
                    value = row[monitor]
                    better = best_value is None or (value > best_value if maximize else value < best_value)
                    if better:
                        best_value, stale = value, 0
                        best_state = copy.deepcopy(network.state_dict())
                    else:
                        stale += 1
                        if stale >= early_stopping:
                            break
        if best_state is not None:
            network.load_state_dict(best_state)
        network.eval()
        return self

    def _prepare_fit(self, X: Any, y: Any, batch_size: int, validation_data: Any, validation_split: float):
        """Checks the data, builds the network on the first fit; returns (batches, count, validation)."""
        memory = self._in_memory(X, y, "X", "y")
        if memory is None:
            if validation_split > 0:
                raise ValueError("`validation_split` needs in-memory data; pass `validation_data` with a Dataset")
            loader = X if isinstance(X, DataLoader) else DataLoader(
                X, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(self.seed))
            if self.network is None or self._stats_pending:
                self._build_from_loader(loader)
            validation = None if validation_data is None else self._validation_set(validation_data)
            num_batches = len(loader) if hasattr(loader, "__len__") else None
            return (lambda: self._loader_batches(loader)), num_batches, validation

        X_t = self._features(memory[0], "X")
        if self.network is None:
            self._check_trainable_shape(X_t)
        y_raw = _as_tensor(memory[1], "y")
        self._matching_length(X_t, y_raw, "X", "y")
        if self.network is None:
            self._adopt_targets(y_raw)
        y_t = self._targets(y_raw, len(X_t), "y")
        n_val = 0
        if validation_split > 0:
            n_val = int(round(len(X_t) * validation_split))
            if n_val < 1 or n_val >= len(X_t):
                raise ValueError(f"`validation_split`={validation_split} leaves an empty split of {len(X_t)} samples")
        validation = None
        if validation_data is not None:
            validation = self._validation_set(validation_data, tuple(X_t.shape[1:]))
        if self.network is None:
            self._build(tuple(X_t.shape[1:]))
        if self._stats_pending:
            dims = self._moment_dims(X_t)
            x64 = X_t.double()
            count = math.prod(X_t.shape[d] for d in dims)
            self._set_standardization(x64.sum(dims), (x64 * x64).sum(dims), count)
        if n_val:
            perm = torch.randperm(len(X_t), generator=self._generator, device=self.device)
            validation = (X_t[perm[:n_val]], y_t[perm[:n_val]])
            X_t, y_t = X_t[perm[n_val:]], y_t[perm[n_val:]]
        return (lambda: self._index_batches(X_t, y_t, batch_size)), math.ceil(len(X_t) / batch_size), validation

    def make_optimizer(self, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                       momentum: float = 0.9) -> torch.optim.Optimizer:
        """The optimizer ``fit`` uses: the current one (its moments intact) when the settings are
        unchanged, so repeated ``fit`` calls continue training; a fresh one otherwise."""
        network = self._require_fitted("make_optimizer")
        key = (optimizer, float(lr), float(weight_decay), float(momentum))
        if self.optimizer is None or self._optimizer_key != key:
            params = [p for p in network.parameters() if p.requires_grad]
            if optimizer == "adam":
                # The fused kernel updates every parameter in one call: ~15% more samples/s for small MLPs.
                fused = self.device.type in ("cpu", "cuda")
                self.optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
            elif optimizer == "sgd":
                self.optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
            else:
                raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}, got {optimizer!r}")
            self._optimizer_key = key
        return self.optimizer

    def _check_trainable_shape(self, X: Tensor) -> None:
        if self.batch_norm and len(X) < 2:
            raise ValueError("`X` needs at least 2 samples to train with batch_norm=True")

    def _index_batches(self, X: Tensor, y: Tensor, batch_size: int):
        n = len(X)
        perm = torch.randperm(n, generator=self._generator, device=self.device)
        # BatchNorm cannot train on a batch of one: fold a trailing single sample into the epoch's next pass.
        stop = n - 1 if self.batch_norm and n % batch_size == 1 and n > 1 else n
        for start in range(0, stop, batch_size):
            index = perm[start:min(start + batch_size, stop)]
            yield X.index_select(0, index), y.index_select(0, index)

    def _loader_batches(self, loader: Iterable):
        for batch in loader:
            xb, yb = self._split_batch(batch, "X")
            xb = self._features(xb, "X")
            yb_raw = _as_tensor(yb, "y")
            self._matching_length(xb, yb_raw, "X", "y")
            if self.batch_norm and len(xb) < 2:
                continue
            yield xb, self._targets(yb_raw, len(xb), "y")

    @staticmethod
    def _split_batch(batch: Any, name: str) -> tuple[Any, Any]:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(f"`{name}`: a Dataset/DataLoader must yield (x, y) pairs, got {type(batch).__name__}")
        return batch[0], batch[1]

    def _build_from_loader(self, loader: Iterable) -> None:
        """One pass to learn the input shape, the targets' extent and the standardization statistics."""
        total = total_sq = None
        count = 0
        first_shape = None
        labels = []
        for batch in loader:
            xb, yb = self._split_batch(batch, "X")
            xb = self._features(xb, "X").double()
            yb = _as_tensor(yb, "y")
            self._matching_length(xb, yb, "X", "y")
            if first_shape is None:
                first_shape = tuple(xb.shape[1:])
            elif tuple(xb.shape[1:]) != first_shape:
                raise ValueError(f"`X`: batches differ in sample shape ({first_shape} vs {tuple(xb.shape[1:])})")
            dims = self._moment_dims(xb)
            s, sq = xb.sum(dims), (xb * xb).sum(dims)
            total = s if total is None else total + s
            total_sq = sq if total_sq is None else total_sq + sq
            count += math.prod(xb.shape[d] for d in dims)
            labels.append(yb)
        if first_shape is None:
            raise ValueError("`X` is empty: the Dataset/DataLoader yielded no samples")
        y_all = torch.cat([t.reshape(len(t), -1) if t.dim() > 1 else t for t in labels])
        if self.network is None:
            self._adopt_targets(y_all)
            self._targets(y_all, len(y_all), "y")
            self._build(first_shape)
        elif first_shape != self.input_shape:
            raise ValueError(f"`X` has samples of shape {first_shape}, but the classifier was built for "
                             f"{self.input_shape}")
        self._set_standardization(total.to(self.device), total_sq.to(self.device), count)

    def _validation_set(self, data: Any, sample_shape: tuple[int, ...] | None = None
                        ) -> tuple[Tensor, Tensor] | Iterable:
        memory = self._in_memory(data, None, "validation_data", "validation_data") if isinstance(
            data, (Dataset, DataLoader)) else None
        if isinstance(data, (Dataset, DataLoader)):
            if memory is None:
                return data if isinstance(data, DataLoader) else DataLoader(data, batch_size=_PREDICT_BATCH)
            X_v, y_v = memory
        else:
            if not isinstance(data, (tuple, list)) or len(data) != 2:
                raise TypeError("`validation_data` must be (X_val, y_val) or a Dataset/DataLoader")
            X_v, y_v = data
        X_v = self._features(X_v, "validation_data")
        if sample_shape is not None and tuple(X_v.shape[1:]) != sample_shape:
            raise ValueError(f"`validation_data` has samples of shape {tuple(X_v.shape[1:])}, `X` of {sample_shape}")
        y_raw = _as_tensor(y_v, "validation_data")
        self._matching_length(X_v, y_raw, "validation_data[0]", "validation_data[1]")
        return X_v, self._targets(y_raw, len(X_v), "validation_data")

    # ---- prediction ----

    def _logits_of(self, X: Tensor) -> Tensor:
        network = self._require_fitted("predict")
        network.eval()
        with torch.inference_mode():
            return torch.cat([network(X[i:i + _PREDICT_BATCH]) for i in range(0, len(X), _PREDICT_BATCH)])

    def _predict_input(self, X: Any, what: str) -> tuple[Tensor, Callable[[Tensor], Any]]:
        self._require_fitted(what)
        if isinstance(X, (Dataset, DataLoader)):
            parts = [b[0] if isinstance(b, (tuple, list)) else b for b in (
                X if isinstance(X, DataLoader) else DataLoader(X, batch_size=_PREDICT_BATCH))]
            if not parts:
                raise ValueError("`X` is empty: the Dataset/DataLoader yielded no samples")
            X = torch.cat([_as_tensor(p, "X") for p in parts])
            return self._features(X), lambda out: out.cpu()
        if isinstance(X, Tensor):
            device = X.device
            return self._features(X), lambda out: out.to(device)
        return self._features(X), lambda out: out.cpu().numpy()

    def decision_function(self, X: Any) -> Any:
        """Raw logits ``[N, outputs]`` (``[N]`` for the binary classifier)."""
        X_t, back = self._predict_input(X, "decision_function")
        return back(self._shape_logits(self._logits_of(X_t)))

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities ``[N, classes]`` (multiclass), ``P(y=1)`` ``[N]`` (binary) or
        per-label probabilities ``[N, labels]`` (multilabel)."""
        X_t, back = self._predict_input(X, "predict_proba")
        logits = self._logits_of(X_t)
        proba = torch.softmax(logits, 1) if self._multiclass else torch.sigmoid(logits)
        return back(self._shape_logits(proba))

    def predict(self, X: Any) -> Any:
        """Labels (int64): class indices, 0/1, or ``[N, labels]`` of 0/1. Same type as ``X``
        (a tensor on ``X``'s device, or a NumPy array)."""
        X_t, back = self._predict_input(X, "predict")
        return back(self._decide(self._logits_of(X_t)))

    def _shape_logits(self, logits: Tensor) -> Tensor:
        return logits

    def _decide(self, logits: Tensor) -> Tensor:
        if self._multiclass:
            return logits.argmax(1)
        return self._shape_logits((logits > self._threshold_logit()).long())

    # ---- evaluation ----

    def evaluate(self, X: Any, y: Any = None) -> dict:
        """Loss, accuracy, macro and per-class precision/recall/F1, support and confusion matrix
        on ``(X, y)`` or a Dataset/DataLoader of pairs, as plain Python values."""
        self._require_fitted("evaluate")
        memory = self._in_memory(X, y, "X", "y")
        if memory is None:
            loader = X if isinstance(X, DataLoader) else DataLoader(X, batch_size=_PREDICT_BATCH)
            return self._evaluate_loader(loader)
        X_t = self._features(memory[0])
        y_raw = _as_tensor(memory[1], "y")
        self._matching_length(X_t, y_raw, "X", "y")
        return self._evaluate_tensors(X_t, self._targets(y_raw, len(X_t)))

    def _evaluate_tensors(self, X: Tensor, target: Tensor) -> dict:
        logits = self._logits_of(X)
        loss = self._loss(logits, target).item()
        out = {"loss": loss}
        out.update(self._scores(self._target_labels(target), self._decide(logits)))
        return out

    def _evaluate_loader(self, loader: Iterable) -> dict:
        logits, targets = [], []
        for batch in loader:
            xb, yb = self._split_batch(batch, "X")
            xb = self._features(xb)
            yb_raw = _as_tensor(yb, "y")
            self._matching_length(xb, yb_raw, "X", "y")
            targets.append(self._targets(yb_raw, len(xb)))
            logits.append(self._logits_of(xb))
        if not logits:
            raise ValueError("`X` is empty: the Dataset/DataLoader yielded no samples")
        logits_t, target_t = torch.cat(logits), torch.cat(targets)
        with torch.inference_mode():
            loss = self._loss(logits_t, target_t).item()
        out = {"loss": loss}
        out.update(self._scores(self._target_labels(target_t), self._decide(logits_t)))
        return out

    def _target_labels(self, target: Tensor) -> Tensor:
        return target

    # ---- files ----

    def state_dict(self) -> dict:
        """Everything ``load`` needs, in plain types and tensors only (``torch.load(weights_only=True)`` reads it)."""
        network = self._require_fitted("state_dict")
        return {
            "kind": CHECKPOINT_KIND, "format_version": CHECKPOINT_FORMAT, "class": type(self).__name__,
            "params": self.get_params(), "input_shape": list(self.input_shape),
            "network": {k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
            "history": [dict(row) for row in self.history],
            "stats_pending": self._stats_pending,
            # The shuffling/split/dropout stream, so that a loaded classifier trains on exactly as it would have.
            "generator": self._generator.get_state(),
            "generator_device": self.device.type,
        }

    def save(self, path: str | os.PathLike) -> str:
        """Writes the classifier to ``path`` atomically (a temporary file, then a rename). Returns the path."""
        payload = self.state_dict()
        path = os.fspath(path)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    @classmethod
    def from_state_dict(cls, state: dict, device: str | torch.device | None = None) -> "Classifier":
        if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
            raise ValueError("not an rltorch classifier checkpoint")
        if state.get("format_version") != CHECKPOINT_FORMAT:
            raise ValueError(f"classifier checkpoint format {state.get('format_version')!r} is not supported "
                             f"(this rltorch reads format {CHECKPOINT_FORMAT})")
        kinds = {k.__name__: k for k in (BinaryClassifier, MulticlassClassifier, MultilabelClassifier)}
        klass = kinds.get(state.get("class"))
        if klass is None:
            raise ValueError(f"unknown classifier class {state.get('class')!r} in the checkpoint")
        if cls is not Classifier and not issubclass(klass, cls):
            raise ValueError(f"the checkpoint holds a {klass.__name__}, not a {cls.__name__}")
        params = dict(state["params"])
        params["device"] = "cpu" if device is None else device
        model = klass(**params)
        model._build(tuple(state["input_shape"]))
        model.network.load_state_dict(state["network"])
        model.network.eval()
        model.history = [dict(row) for row in state.get("history", [])]
        model._stats_pending = bool(state.get("stats_pending", False))
        generator = state.get("generator")
        if isinstance(generator, Tensor) and state.get("generator_device") == model.device.type:
            model._generator.set_state(generator)
        return model

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> "Classifier":
        """Reads a file written by :meth:`save` (``weights_only=True``: loading runs no code)."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"classifier file {path!r} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickled code (refused by weights_only), a damaged or foreign file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"{path!r} is not a readable rltorch classifier file (rltorch never runs code from a "
                             f"file): {first}") from None
        return cls.from_state_dict(state, device)

    def to(self, device: str | torch.device) -> "Classifier":
        """Moves the classifier (and future fits and predictions) to ``device``."""
        self.device = _resolve_device(device)
        if self.network is not None:
            self.network.to(self.device)
            self._generator = torch.Generator(device=self.device).manual_seed(self.seed)
            self.optimizer, self._optimizer_key = None, None
        return self

    def as_module(self, output: str = "labels") -> Decision:
        """A CPU ``nn.Module`` (eval mode) mapping float32 inputs to ``output``: ``"labels"``,
        ``"proba"`` or ``"logits"``, with the shapes of ``predict``/``predict_proba``/``decision_function``."""
        network = self._require_fitted("as_module")
        if output not in ("labels", "proba", "logits"):
            raise ValueError(f"`output` must be 'labels', 'proba' or 'logits', got {output!r}")
        module = Decision(copy.deepcopy(network).cpu(), output, self._multiclass, self._threshold_logit(),
                          self.num_outputs == 1 and isinstance(self, BinaryClassifier))
        return module.eval()

    def export(self, path: str | os.PathLike, format: str = "torchscript", output: str = "labels") -> str:
        """Saves :meth:`as_module` for use without rltorch: ``format="torchscript"`` (load with
        ``torch.jit.load``) or ``"export"`` (``torch.export``; load with ``torch.export.load(path).module()``).
        The batch dimension stays dynamic. Returns the path."""
        if format not in ("torchscript", "export"):
            raise ValueError(f"`format` must be 'torchscript' or 'export', got {format!r}")
        module = self.as_module(output)
        path = os.fspath(path)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if format == "torchscript":
            with warnings.catch_warnings():  # torch >= 2.10 flags TorchScript as deprecated; users still ask for it
                warnings.simplefilter("ignore", FutureWarning)
                torch.jit.save(torch.jit.script(module), path)
        else:
            example = torch.zeros(4, *self.input_shape)
            batch = torch.export.Dim("batch", min=1)
            program = torch.export.export(module, (example,), dynamic_shapes={"x": {0: batch}})
            torch.export.save(program, path)
        return path

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def _label_tensor(y: Tensor, name: str, allow_float01: bool) -> Tensor:
    if y.dtype.is_complex:
        raise TypeError(f"`{name}` must hold integer labels, got {y.dtype}")
    if y.dtype.is_floating_point and not allow_float01:
        raise TypeError(f"`{name}` must hold integer class labels, got {y.dtype}; convert with y.long() "
                        f"if the values are whole numbers")
    return y


class MulticlassClassifier(Classifier):
    """One of ``num_classes`` labels per sample: logits, softmax cross entropy.

    Args:
        num_classes: number of classes; ``None`` takes ``max(y) + 1`` at the first fit.
        label_smoothing: cross-entropy label smoothing in ``[0, 1)``.
        class_weights: one positive weight per class for the loss (imbalanced data).
        (the rest: see :class:`Classifier`)
    """

    name = "multiclass"
    _multiclass = True

    def __init__(self, num_classes: int | None = None, *, label_smoothing: float = 0.0,
                 class_weights: Sequence[float] | None = None, **kwargs: Any):
        if num_classes is not None:
            num_classes = _int_at_least(num_classes, "num_classes", 2)
        label_smoothing = _finite(label_smoothing, "label_smoothing", 0.0, 1.0, high_open=True)
        weights = None
        if class_weights is not None:
            weights = [float(w) for w in class_weights]
            if not weights or any(not math.isfinite(w) or w <= 0 for w in weights):
                raise ValueError(f"`class_weights` must be finite numbers > 0, got {class_weights!r}")
            if num_classes is not None and len(weights) != num_classes:
                raise ValueError(f"`class_weights` has {len(weights)} entries for {num_classes} classes")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.class_weights = weights
        self._weight_tensor: Tensor | None = None

    def get_params(self) -> dict:
        return {"num_classes": self.num_classes, "label_smoothing": self.label_smoothing,
                "class_weights": self.class_weights, **super().get_params()}

    @property
    def num_outputs(self) -> int | None:
        return self.num_classes

    def _adopt_targets(self, y: Tensor) -> None:
        if self.num_classes is None:
            y = _label_tensor(y, "y", allow_float01=False)
            if y.numel() and y.dtype != torch.bool:
                self.num_classes = max(2, int(y.max()) + 1)
            if self.class_weights is not None and len(self.class_weights) != self.num_classes:
                raise ValueError(f"`class_weights` has {len(self.class_weights)} entries but `y` has "
                                 f"{self.num_classes} classes")

    def _targets(self, y: Any, n: int, name: str = "y") -> Tensor:
        y = _label_tensor(_as_tensor(y, name), name, allow_float01=False)
        if y.dtype == torch.bool:
            raise TypeError(f"`{name}` must hold integer class labels, got bool; use BinaryClassifier or y.long()")
        if y.dim() == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.dim() != 1:
            raise ValueError(f"`{name}` must be one label per sample, shape [{n}], got {tuple(y.shape)}")
        if len(y) == 0:
            raise ValueError(f"`{name}` is empty: it needs at least one sample")
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= self.num_classes:
            raise ValueError(f"`{name}` holds labels outside [0, {self.num_classes}): min {low}, max {high}")
        return y.to(self.device, torch.int64)

    def _loss(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.class_weights is not None and (self._weight_tensor is None or
                                               self._weight_tensor.device != logits.device):
            self._weight_tensor = torch.tensor(self.class_weights, dtype=torch.float32, device=logits.device)
        return F.cross_entropy(logits, target, weight=self._weight_tensor if self.class_weights else None,
                               label_smoothing=self.label_smoothing)

    def _scores(self, y_true: Tensor, y_pred: Tensor) -> dict:
        return _metrics.classification_metrics(y_true, y_pred, self.num_classes)


class BinaryClassifier(Classifier):
    """Two classes, one logit: BCE with logits; ``predict`` is ``P(y=1) > threshold``.

    Args:
        threshold: decision threshold on ``P(y=1)`` (default 0.5).
        pos_weight: weight of the positive class in the loss (imbalanced data).
        (the rest: see :class:`Classifier`)
    """

    name = "binary"

    def __init__(self, *, threshold: float = 0.5, pos_weight: float | None = None, **kwargs: Any):
        self.threshold = _finite(threshold, "threshold", 0.0, 1.0, low_open=True, high_open=True)
        if pos_weight is not None:
            pos_weight = _finite(pos_weight, "pos_weight", 0.0, math.inf, low_open=True, high_open=True)
        super().__init__(**kwargs)
        self.pos_weight = pos_weight
        self.num_classes = 2

    def get_params(self) -> dict:
        return {"threshold": self.threshold, "pos_weight": self.pos_weight, **super().get_params()}

    @property
    def num_outputs(self) -> int:
        return 1

    def _threshold_logit(self) -> float:
        return math.log(self.threshold / (1 - self.threshold))

    def _targets(self, y: Any, n: int, name: str = "y") -> Tensor:
        y = _label_tensor(_as_tensor(y, name), name, allow_float01=True)
        if y.dim() == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.dim() != 1:
            raise ValueError(f"`{name}` must be one 0/1 label per sample, shape [{n}], got {tuple(y.shape)}")
        if len(y) == 0:
            raise ValueError(f"`{name}` is empty: it needs at least one sample")
        if not bool(((y == 0) | (y == 1)).all()):
            bad = y[(y != 0) & (y != 1)][0].item()
            raise ValueError(f"`{name}` must hold only 0 and 1 for a BinaryClassifier, found {bad!r}; "
                             f"use MulticlassClassifier for more classes")
        return y.to(self.device, torch.float32)

    def _shape_logits(self, logits: Tensor) -> Tensor:
        return logits[:, 0]

    def _loss(self, logits: Tensor, target: Tensor) -> Tensor:
        pos_weight = None
        if self.pos_weight is not None:
            pos_weight = torch.tensor(self.pos_weight, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits[:, 0], target, pos_weight=pos_weight)

    def _target_labels(self, target: Tensor) -> Tensor:
        return target.long()

    def _scores(self, y_true: Tensor, y_pred: Tensor) -> dict:
        return _metrics.classification_metrics(y_true, y_pred, 2)


class MultilabelClassifier(Classifier):
    """Any subset of ``num_labels`` labels per sample: one sigmoid per label, BCE.

    Args:
        num_labels: number of labels; ``None`` takes ``y.shape[1]`` at the first fit.
        threshold: decision threshold on each label's probability (default 0.5).
        (the rest: see :class:`Classifier`)
    """

    name = "multilabel"

    def __init__(self, num_labels: int | None = None, *, threshold: float = 0.5, **kwargs: Any):
        if num_labels is not None:
            num_labels = _int_at_least(num_labels, "num_labels", 1)
        self.threshold = _finite(threshold, "threshold", 0.0, 1.0, low_open=True, high_open=True)
        super().__init__(**kwargs)
        self.num_labels = num_labels

    def get_params(self) -> dict:
        return {"num_labels": self.num_labels, "threshold": self.threshold, **super().get_params()}

    @property
    def num_outputs(self) -> int | None:
        return self.num_labels

    def _threshold_logit(self) -> float:
        return math.log(self.threshold / (1 - self.threshold))

    def _adopt_targets(self, y: Tensor) -> None:
        if self.num_labels is None:
            if y.dim() != 2 or y.shape[1] < 1:
                raise ValueError(f"`y` must be [samples, labels] of 0/1 for a MultilabelClassifier, got shape "
                                 f"{tuple(y.shape)}")
            self.num_labels = int(y.shape[1])

    def _targets(self, y: Any, n: int, name: str = "y") -> Tensor:
        y = _as_tensor(y, name)
        if y.dtype.is_complex:
            raise TypeError(f"`{name}` must hold 0/1 values, got {y.dtype}")
        if y.dim() != 2 or y.shape[1] != self.num_labels:
            raise ValueError(f"`{name}` must be [samples, {self.num_labels}] of 0/1, got shape {tuple(y.shape)}")
        if len(y) == 0:
            raise ValueError(f"`{name}` is empty: it needs at least one sample")
        if not bool(((y == 0) | (y == 1)).all()):
            bad = y[(y != 0) & (y != 1)][0].item()
            raise ValueError(f"`{name}` must hold only 0 and 1 (a multilabel target), found {bad!r}")
        return y.to(self.device, torch.float32)

    def _loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits, target)

    def _target_labels(self, target: Tensor) -> Tensor:
        return target.long()

    def _scores(self, y_true: Tensor, y_pred: Tensor) -> dict:
        return _metrics.multilabel_metrics(y_true, y_pred)


def load_classifier(path: str | os.PathLike, device: str | torch.device | None = None) -> Classifier:
    """Loads any classifier saved with ``save`` (the file records its class)."""
    return Classifier.load(path, device)
