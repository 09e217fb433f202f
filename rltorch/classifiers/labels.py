"""Class labels: their format, the distinct labels of a fit, and the mapping between labels and their index in
``classes_`` (on the device for numeric tensors, so a fit on CUDA copies no labels to the host)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rltorch.classifiers.params import sklearn_compatible

__all__ = ["DataConversionWarning", "distinct_labels", "check_class_labels", "label_index"]


class DataConversionWarning(UserWarning):
    """Data given in another shape than expected and converted (scikit-learn's name; once scikit-learn is loaded,
    the warning is also its ``DataConversionWarning``)."""


def distinct_labels(labels: Any, name: str) -> np.ndarray:
    """The sorted distinct labels of a tensor or an array; ValueError naming ``name`` when they cannot be ordered."""
    if isinstance(labels, Tensor):
        return torch.unique(labels).cpu().numpy()
    try:
        return np.unique(labels)
    except TypeError as exc:
        raise ValueError(f"Unknown label type: `{name}` mixes labels that cannot be ordered ({exc})") from None


def check_class_labels(y: Any, name: str) -> Any:
    """One label per sample (a ``[N, 1]`` column is taken as ``[N]``): numbers with whole values, bools or
    strings; continuous values are no class labels (scikit-learn's "Unknown label type")."""
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(f"A column-vector y was passed when a 1d array was expected: `{name}` of shape "
                      f"{tuple(y.shape)} is read as {tuple(y.shape[:1])}",
                      sklearn_compatible(DataConversionWarning, "sklearn.exceptions", "DataConversionWarning"),
                      stacklevel=2)
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"`{name}` must be one label per sample, shape [samples], got {tuple(y.shape)}")
    if isinstance(y, Tensor) and y.dtype.is_floating_point:
        if not bool(torch.isfinite(y).all()):
            raise ValueError(f"`{name}` contains NaN or infinite values")
        fractional = y != torch.round(y)
        if bool(fractional.any()):
            example = y[fractional][0].item()
            raise ValueError(f"Unknown label type: `{name}` holds continuous values (e.g. {example!r}); a classifier "
                             "needs class labels")
    elif isinstance(y, np.ndarray) and y.dtype == object:
        for value in y:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"`{name}` contains NaN or infinite values")
    return y


def label_index(classes: np.ndarray, y: Any, device: torch.device, name: str) -> Tensor:
    """The index in ``classes_`` of each label of ``y``, on ``device``; ValueError naming ``name`` for a label that
    is none of the classes."""
    if isinstance(y, Tensor) and classes.dtype.kind in "biuf":
        exact = torch.float64 if (y.dtype.is_floating_point or classes.dtype.kind == "f") else torch.int64
        table = torch.as_tensor(classes.astype(np.float64 if exact == torch.float64 else np.int64)).to(y.device)
        values = y.to(exact)
        index = torch.searchsorted(table, values).clamp_max(len(classes) - 1)
        known = table[index] == values
        if not bool(known.all()):
            _unknown_label(classes, values[~known], name)
        return index.to(device)
    values = y.cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    try:
        index = np.searchsorted(classes, values).clip(max=len(classes) - 1)
        known = classes[index] == values
    except TypeError as exc:
        raise ValueError(f"`{name}` holds labels of another type than the classes the classifier was fitted on "
                         f"({classes[:5].tolist()}...): {exc}") from None
    if not bool(np.all(known)):
        _unknown_label(classes, values[~known], name)
    return torch.from_numpy(index.astype(np.int64)).to(device)


def _unknown_label(classes: np.ndarray, unknown: Any, name: str) -> None:
    if classes.dtype.kind in "iu" and np.array_equal(classes, np.arange(len(classes))) and isinstance(unknown, Tensor):
        raise ValueError(f"`{name}` holds labels outside [0, {len(classes)}): min {unknown.min().item()!r}, "
                         f"max {unknown.max().item()!r}")
    first = unknown[0]
    first = first.item() if hasattr(first, "item") else first
    shown = classes[:10].tolist() + (["..."] if len(classes) > 10 else [])
    raise ValueError(f"`{name}` holds the label {first!r}, which is none of the classes the classifier was fitted on "
                     f"(classes_: {shown})")
