"""Classification metrics on label tensors, returned as plain Python numbers and lists.

Conventions follow scikit-learn's: the confusion matrix has true labels on rows
and predictions on columns; precision of a class never predicted (and recall of
a class absent from ``y_true``) is 0 rather than undefined (sklearn's
``zero_division=0``); macro averages weigh every class equally, including those.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rltorch import _checks

__all__ = ["confusion_matrix", "classification_metrics", "multilabel_confusion_matrix", "multilabel_metrics"]


def _labels(values: Tensor, name: str, num_classes: int) -> Tensor:
    values = torch.as_tensor(values)
    if values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold integer class labels, got {values.dtype}")
    values = values.reshape(-1).long()
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= num_classes):
        raise ValueError(f"`{name}` holds labels outside [0, {num_classes}): "
                         f"min {int(values.min())}, max {int(values.max())}")
    return values


def confusion_matrix(y_true: Tensor, y_pred: Tensor, num_classes: int) -> Tensor:
    """``int64 [num_classes, num_classes]``: entry ``[i, j]`` counts samples of class ``i`` predicted as ``j``."""
    num_classes = _checks.integer("confusion_matrix", "num_classes", num_classes, 1, 2**31 - 1)
    y_true = _labels(y_true, "y_true", num_classes)
    y_pred = _labels(y_pred, "y_pred", num_classes).to(y_true.device)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"`y_true` and `y_pred` differ in length: {y_true.numel()} vs {y_pred.numel()}")
    flat = torch.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).cpu()


def _scores(tp: Tensor, fp: Tensor, fn: Tensor) -> dict:
    tp, fp, fn = tp.double(), fp.double(), fn.double()
    precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp_min(1), torch.zeros_like(tp))
    recall = torch.where(tp + fn > 0, tp / (tp + fn).clamp_min(1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), torch.zeros_like(tp))
    return {
        "precision_macro": precision.mean().item(),
        "recall_macro": recall.mean().item(),
        "f1_macro": f1.mean().item(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": (tp + fn).long().tolist(),
    }


def classification_metrics(y_true: Tensor, y_pred: Tensor, num_classes: int) -> dict:
    """Accuracy, macro and per-class precision, recall and F1, support and the confusion matrix."""
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    total = int(matrix.sum())
    if total == 0:
        raise ValueError("`y_true` is empty: metrics need at least one sample")
    tp = matrix.diagonal()
    out = {"accuracy": tp.sum().item() / total}
    out.update(_scores(tp, matrix.sum(0) - tp, matrix.sum(1) - tp))
    out["confusion_matrix"] = matrix.tolist()
    return out


def _binary_matrix(values: Tensor, name: str) -> Tensor:
    values = torch.as_tensor(values)
    if values.dim() != 2:
        raise ValueError(f"`{name}` must be [samples, labels], got shape {tuple(values.shape)}")
    if values.dtype.is_complex or not bool(((values == 0) | (values == 1)).all()):
        raise ValueError(f"`{name}` must hold only 0 and 1")
    return values.bool()


def multilabel_confusion_matrix(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """``int64 [labels, 2, 2]``: for each label, ``[[tn, fp], [fn, tp]]`` (scikit-learn's layout)."""
    y_true = _binary_matrix(y_true, "y_true")
    y_pred = _binary_matrix(y_pred, "y_pred").to(y_true.device)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"`y_true` and `y_pred` differ in shape: {tuple(y_true.shape)} vs {tuple(y_pred.shape)}")
    tp = (y_true & y_pred).sum(0)
    fp = (~y_true & y_pred).sum(0)
    fn = (y_true & ~y_pred).sum(0)
    tn = (~y_true & ~y_pred).sum(0)
    return torch.stack([torch.stack([tn, fp], -1), torch.stack([fn, tp], -1)], -2).cpu()


def multilabel_metrics(y_true: Tensor, y_pred: Tensor) -> dict:
    """``accuracy`` (all labels of a sample right, sklearn's subset accuracy), ``label_accuracy``
    (fraction of single label decisions right), macro and per-label precision/recall/F1,
    support and the per-label confusion matrices."""
    matrices = multilabel_confusion_matrix(y_true, y_pred)
    y_true, y_pred = torch.as_tensor(y_true).bool(), torch.as_tensor(y_pred).bool().to(torch.as_tensor(y_true).device)
    if y_true.shape[0] == 0:
        raise ValueError("`y_true` is empty: metrics need at least one sample")
    out = {
        "accuracy": (y_true == y_pred).all(1).double().mean().item(),
        "label_accuracy": (y_true == y_pred).double().mean().item(),
    }
    out.update(_scores(matrices[:, 1, 1], matrices[:, 0, 1], matrices[:, 1, 0]))
    out["confusion_matrix"] = matrices.tolist()
    return out
