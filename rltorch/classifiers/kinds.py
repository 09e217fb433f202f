"""The three classifiers: what differs between them (their labels, loss, metrics and parameters of their own)
on top of the shared estimator (:class:`~rltorch.classifiers.estimators.Classifier`)."""

from __future__ import annotations

import math
import types
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rltorch import _checks
from rltorch._threads import AUTO
from rltorch.classifiers import metrics as _metrics
from rltorch.classifiers.estimators import Classifier
from rltorch.classifiers.labels import check_class_labels, label_index

__all__ = ["BinaryClassifier", "MulticlassClassifier", "MultilabelClassifier"]


def _threshold_logit(model: BinaryClassifier | MultilabelClassifier) -> float:
    """The logit at which the ``threshold`` probability is reached (checked here too: predict reads it)."""
    threshold = _checks.real(type(model).__name__, "threshold", model.threshold, 0.0, 1.0, low_open=True,
                             high_open=True)
    return math.log(threshold / (1 - threshold))


class MulticlassClassifier(Classifier):
    """One of several classes per sample: one logit per class, softmax cross entropy.

    Args:
        num_classes: the number of classes when the labels are ``0 .. num_classes - 1`` (some may be absent
            from the data); ``None`` takes the distinct labels of ``y``, whatever they are, as ``classes_``.
        label_smoothing: cross-entropy label smoothing in ``[0, 1)``.
        class_weights: one positive weight per class (in the order of ``classes_``) for the loss.
        (the rest: see :class:`Classifier`)
    """

    name = "multiclass"
    _multiclass = True

    def __init__(self, num_classes: int | None = None, *, label_smoothing: float = 0.0,
                 class_weights: Sequence[float] | None = None, hidden_sizes: Sequence[int] = (64, 64),
                 activation: str = "relu", dropout: float = 0.0, batch_norm: bool = False, backbone: str = "mlp",
                 channels: Sequence[int] = (16, 32), kernel_size: int = 3, standardize: bool = True,
                 epochs: int = 10, batch_size: int = 256, lr: float = 1e-3, solver: str = "adam",
                 weight_decay: float = 0.0, momentum: float = 0.9, validation_split: float = 0.0,
                 early_stopping: int | None = None, monitor: str | None = None, warm_start: bool = False,
                 threads: int | str = AUTO, progress: bool = False, device: str | torch.device = "cpu", seed: int = 0):
        self._store_params(locals())

    def _check_kind_params(self, s: types.SimpleNamespace, owner: str) -> None:
        if s.num_classes is not None:
            s.num_classes = _checks.integer(owner, "num_classes", s.num_classes, 2, 2**31 - 1)
        s.label_smoothing = _checks.real(owner, "label_smoothing", s.label_smoothing, 0.0, 1.0, high_open=True)
        if s.class_weights is not None:
            weights = s.class_weights
            if isinstance(weights, (np.ndarray, Tensor)):
                weights = weights.tolist()
            if not isinstance(weights, (list, tuple)) or not weights or any(
                    isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating))
                    or not math.isfinite(w) or w <= 0 for w in weights):
                raise ValueError(f"{owner}: `class_weights` must be finite numbers > 0, got "
                                 f"{' '.join(repr(s.class_weights).split())[:80]}")
            s.class_weights = [float(w) for w in weights]
            if s.num_classes is not None and len(s.class_weights) != s.num_classes:
                raise ValueError(f"{owner}: `class_weights` has {len(s.class_weights)} entries for {s.num_classes} "
                                 "classes")

    def _check_labels(self, y: Any, name: str) -> Any:
        return check_class_labels(y, name)

    def _classes_from(self, labels: np.ndarray | None, num_columns: int | None, s: types.SimpleNamespace
                      ) -> np.ndarray:
        if s.num_classes is not None:
            return np.arange(s.num_classes)
        if labels is None:
            raise ValueError(f"{type(self).__name__}.build needs the number of outputs: pass num_classes to the "
                             "constructor")
        if len(labels) < 2:
            raise ValueError(f"`y` holds one class ({labels[0]!r}): a classifier needs at least two classes "
                             "(or num_classes)")
        return labels

    def _encode(self, y: Any, name: str = "y") -> Tensor:
        return label_index(self.classes_, y, self.device_, name)

    def _loss_fn(self, s: types.SimpleNamespace) -> Callable[[Tensor, Tensor], Tensor]:
        weight = None
        if s.class_weights is not None:
            if len(s.class_weights) != len(self.classes_):
                raise ValueError(f"`class_weights` has {len(s.class_weights)} entries for {len(self.classes_)} "
                                 "classes")
            weight = torch.tensor(s.class_weights, dtype=torch.float32, device=self.device_)
        smoothing = s.label_smoothing
        return lambda logits, target: F.cross_entropy(logits, target, weight=weight, label_smoothing=smoothing)

    def _scores(self, target: Tensor, predicted: Tensor) -> dict:
        return _metrics.classification_metrics(target, predicted, len(self.classes_))

    def __sklearn_tags__(self):
        return _sklearn_tags(self, multi_class=True)


class BinaryClassifier(Classifier):
    """Two classes, one logit: BCE with logits; ``predict`` is ``P(classes_[1]) > threshold``.

    The labels are any two values (``classes_``, sorted; the second is the positive class). Labels that
    are all 0 or 1 keep ``classes_ = [0, 1]`` even when one of them is absent from ``y``.

    Args:
        threshold: decision threshold on ``P(classes_[1])`` (default 0.5).
        pos_weight: weight of the positive class in the loss (imbalanced data).
        (the rest: see :class:`Classifier`)
    """

    name = "binary"
    _single_logit = True

    def __init__(self, *, threshold: float = 0.5, pos_weight: float | None = None,
                 hidden_sizes: Sequence[int] = (64, 64), activation: str = "relu", dropout: float = 0.0,
                 batch_norm: bool = False, backbone: str = "mlp", channels: Sequence[int] = (16, 32),
                 kernel_size: int = 3, standardize: bool = True, epochs: int = 10, batch_size: int = 256,
                 lr: float = 1e-3, solver: str = "adam", weight_decay: float = 0.0, momentum: float = 0.9,
                 validation_split: float = 0.0, early_stopping: int | None = None, monitor: str | None = None,
                 warm_start: bool = False, threads: int | str = AUTO, progress: bool = False,
                 device: str | torch.device = "cpu", seed: int = 0):
        self._store_params(locals())

    def _check_kind_params(self, s: types.SimpleNamespace, owner: str) -> None:
        s.threshold = _checks.real(owner, "threshold", s.threshold, 0.0, 1.0, low_open=True, high_open=True)
        if s.pos_weight is not None:
            s.pos_weight = _checks.real(owner, "pos_weight", s.pos_weight, 0.0, None, low_open=True)
        s.num_classes = None
        s.class_weights = None

    def _num_outputs(self) -> int:
        return 1

    def _threshold_logit(self) -> float:
        return _threshold_logit(self)

    def _check_labels(self, y: Any, name: str) -> Any:
        return check_class_labels(y, name)

    def _classes_from(self, labels: np.ndarray | None, num_columns: int | None, s: types.SimpleNamespace
                      ) -> np.ndarray:
        if labels is None:
            return np.arange(2)
        if labels.dtype.kind in "biuf" and np.isin(labels, [0, 1]).all():
            return np.array([0, 1]).astype(labels.dtype)
        if len(labels) == 2:
            return labels
        if len(labels) < 2:
            raise ValueError(f"`y` holds one class ({labels[0]!r}): a classifier needs two")
        shown = labels[:10].tolist()
        raise ValueError(f"`y` holds {len(labels)} classes ({shown}{'...' if len(labels) > 10 else ''}): Only binary "
                         "classification is supported. A BinaryClassifier takes two; use MulticlassClassifier for "
                         "more classes")

    def _encode(self, y: Any, name: str = "y") -> Tensor:
        return label_index(self.classes_, y, self.device_, name).float()

    def _loss_fn(self, s: types.SimpleNamespace) -> Callable[[Tensor, Tensor], Tensor]:
        pos_weight = None if s.pos_weight is None else torch.tensor(s.pos_weight, device=self.device_)
        return lambda logits, target: F.binary_cross_entropy_with_logits(logits[:, 0], target, pos_weight=pos_weight)

    def _scores(self, target: Tensor, predicted: Tensor) -> dict:
        return _metrics.classification_metrics(target.long(), predicted, 2)

    def __sklearn_tags__(self):
        return _sklearn_tags(self, multi_class=False)


class MultilabelClassifier(Classifier):
    """Any subset of several labels per sample: one sigmoid per label, BCE. ``y`` is ``[N, labels]`` of 0/1.

    Args:
        num_labels: number of labels; ``None`` takes ``y.shape[1]``.
        threshold: decision threshold on each label's probability (default 0.5).
        (the rest: see :class:`Classifier`)
    """

    name = "multilabel"
    _multilabel = True

    def __init__(self, num_labels: int | None = None, *, threshold: float = 0.5,
                 hidden_sizes: Sequence[int] = (64, 64), activation: str = "relu", dropout: float = 0.0,
                 batch_norm: bool = False, backbone: str = "mlp", channels: Sequence[int] = (16, 32),
                 kernel_size: int = 3, standardize: bool = True, epochs: int = 10, batch_size: int = 256,
                 lr: float = 1e-3, solver: str = "adam", weight_decay: float = 0.0, momentum: float = 0.9,
                 validation_split: float = 0.0, early_stopping: int | None = None, monitor: str | None = None,
                 warm_start: bool = False, threads: int | str = AUTO, progress: bool = False,
                 device: str | torch.device = "cpu", seed: int = 0):
        self._store_params(locals())

    def _check_kind_params(self, s: types.SimpleNamespace, owner: str) -> None:
        if s.num_labels is not None:
            s.num_labels = _checks.integer(owner, "num_labels", s.num_labels, 1, 2**31 - 1)
        s.threshold = _checks.real(owner, "threshold", s.threshold, 0.0, 1.0, low_open=True, high_open=True)
        s.num_classes = None
        s.class_weights = None

    def _threshold_logit(self) -> float:
        return _threshold_logit(self)

    def _check_labels(self, y: Any, name: str) -> Any:
        if not isinstance(y, Tensor):
            raise TypeError(f"`{name}` must hold 0/1 values, got an array of dtype {y.dtype}")
        if y.dim() != 2 or y.shape[1] < 1:
            raise ValueError(f"`{name}` must be [samples, labels] of 0/1 for a MultilabelClassifier, got shape "
                             f"{tuple(y.shape)}")
        if not bool(((y == 0) | (y == 1)).all()):
            bad = y[(y != 0) & (y != 1)][0].item()
            raise ValueError(f"`{name}` must hold only 0 and 1 (a multilabel target), found {bad!r}")
        return y

    def _classes_from(self, labels: np.ndarray | None, num_columns: int | None, s: types.SimpleNamespace
                      ) -> np.ndarray:
        count = num_columns if num_columns is not None else s.num_labels
        if count is None:
            raise ValueError(f"{type(self).__name__}.build needs the number of outputs: pass num_labels to the "
                             "constructor")
        if s.num_labels is not None and count != s.num_labels:
            raise ValueError(f"`y` has {count} labels per sample but num_labels is {s.num_labels}")
        return np.arange(count)

    def _encode(self, y: Any, name: str = "y") -> Tensor:
        if y.shape[1] != len(self.classes_):
            raise ValueError(f"`{name}` must be [samples, {len(self.classes_)}] of 0/1, got shape {tuple(y.shape)}")
        return y.to(self.device_, torch.float32)

    def _loss_fn(self, s: types.SimpleNamespace) -> Callable[[Tensor, Tensor], Tensor]:
        return lambda logits, target: F.binary_cross_entropy_with_logits(logits, target)

    def _scores(self, target: Tensor, predicted: Tensor) -> dict:
        return _metrics.multilabel_metrics(target.long(), predicted)

    def __sklearn_tags__(self):
        return _sklearn_tags(self, multi_class=True, multi_label=True)


def _sklearn_tags(estimator: Classifier, *, multi_class: bool, multi_label: bool = False):
    """scikit-learn's tags for a classifier (only scikit-learn calls this, so importing it here costs nothing
    otherwise)."""
    from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

    return Tags(estimator_type="classifier",
                target_tags=TargetTags(required=True, multi_output=multi_label, single_output=not multi_label),
                classifier_tags=ClassifierTags(multi_class=multi_class, multi_label=multi_label),
                input_tags=InputTags(two_d_array=True, allow_nan=False, sparse=False),
                non_deterministic=False)
