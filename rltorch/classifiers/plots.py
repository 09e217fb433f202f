"""PNG figures of a trained classifier: decision regions of 2-D data, confusion matrices, training curves.

Each function writes one PNG and returns its path, or None when matplotlib is
not installed (figures are a convenience, never a reason for a run to fail).
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import torch
from torch import Tensor

from rltorch.classifiers.estimators import Classifier
from rltorch.classifiers.kinds import BinaryClassifier, MultilabelClassifier

__all__ = ["plot_decision_boundary", "plot_confusion_matrix", "plot_training_curves"]

_MAX_POINTS = 2000


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _title(fig, text: str) -> None:
    """A figure title wrapped to the figure's width (long titles are cut off otherwise)."""
    width_chars = max(30, int(fig.get_figwidth() * 10))
    fig.suptitle(textwrap.fill(text, width_chars), fontsize=10)


def plot_decision_boundary(classifier: Classifier, X: Tensor, y: Tensor, path: str, title: str = "",
                           resolution: int = 200) -> str | None:
    """Predicted regions over the bounding box of 2-D ``X``, with (up to 2000 of) the points on top.
    Multilabel classifiers get one panel per label (its probability, the points' 0/1 labels)."""
    plt = _pyplot()
    if plt is None:
        return None
    X = torch.as_tensor(X).detach().float().cpu()
    y = y.detach().cpu() if isinstance(y, Tensor) else np.asarray(y)
    if X.dim() != 2 or X.shape[1] != 2:
        raise ValueError(f"`X` must be [samples, 2] to draw decision regions, got shape {tuple(X.shape)}")
    low, high = X.min(0).values, X.max(0).values
    pad = (high - low) * 0.08 + 1e-3
    xs = torch.linspace(float(low[0] - pad[0]), float(high[0] + pad[0]), resolution)
    ys = torch.linspace(float(low[1] - pad[1]), float(high[1] + pad[1]), resolution)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    shown = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))[:_MAX_POINTS]
    Xs, ys_ = X[shown], y[shown] if isinstance(y, Tensor) else y[shown.numpy()]
    extent = (float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1]))
    if isinstance(classifier, MultilabelClassifier):
        proba = classifier.predict_proba(grid)
        labels = proba.shape[1]
        cols = min(labels, 3)
        rows = math.ceil(labels / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4 * rows), squeeze=False)
        for j in range(labels):
            ax = axes[j // cols][j % cols]
            ax.imshow(proba[:, j].reshape(resolution, resolution).numpy(), origin="lower", extent=extent,
                      cmap="RdBu_r", vmin=0, vmax=1, alpha=0.55, aspect="auto")
            ax.contour(gx.numpy(), gy.numpy(), proba[:, j].reshape(resolution, resolution).numpy(), levels=[0.5],
                       colors="k", linewidths=1)
            on = ys_[:, j] == 1
            ax.scatter(Xs[~on, 0], Xs[~on, 1], s=6, c="tab:blue", label="0")
            ax.scatter(Xs[on, 0], Xs[on, 1], s=6, c="tab:red", label="1")
            ax.set_title(f"label {j}")
            ax.legend(loc="upper right", fontsize=7, markerscale=2)
        for j in range(labels, rows * cols):
            axes[j // cols][j % cols].axis("off")
    else:
        fig, ax = plt.subplots(figsize=(6, 5.2))
        classes = classifier.classes_
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        if isinstance(classifier, BinaryClassifier):
            proba = classifier.predict_proba(grid)[:, 1].reshape(resolution, resolution)
            image = ax.imshow(proba.numpy(), origin="lower", extent=extent, cmap="RdBu_r", vmin=0, vmax=1,
                              alpha=0.5, aspect="auto")
            fig.colorbar(image, ax=ax, label=f"P(class {classes[1]})")
            ax.contour(gx.numpy(), gy.numpy(), proba.numpy(), levels=[classifier.threshold], colors="k",
                       linewidths=1)
            colors = ["tab:blue", "tab:red"]
        else:
            regions = np.searchsorted(classes, np.asarray(classifier.predict(grid.numpy()))).reshape(resolution,
                                                                                                     resolution)
            ax.imshow(regions, origin="lower", extent=extent, cmap=cmap, vmin=-0.5, vmax=cmap.N - 0.5, alpha=0.35,
                      aspect="auto", interpolation="nearest")
            colors = [cmap(k % cmap.N) for k in range(len(classes))]
        shown_labels = ys_.numpy().reshape(-1) if isinstance(ys_, torch.Tensor) else np.asarray(ys_).reshape(-1)
        for k, label in enumerate(classes):
            mask = torch.from_numpy(shown_labels == label)
            ax.scatter(Xs[mask, 0], Xs[mask, 1], s=7, color=colors[k], edgecolors="none", label=f"class {label}")
        ax.legend(loc="upper right", fontsize=8, markerscale=2)
        ax.set_xlabel("x0")
        ax.set_ylabel("x1")
    _title(fig, title or f"{type(classifier).__name__}: decision regions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion_matrix(matrix, path: str, title: str = "", class_names: list[str] | None = None) -> str | None:
    """Counts (and the row share in %) of a ``[K, K]`` confusion matrix (true rows, predicted columns),
    or one 2x2 panel per label of a ``[L, 2, 2]`` multilabel one."""
    plt = _pyplot()
    if plt is None:
        return None
    matrix = torch.as_tensor(matrix).long()
    panels = [matrix] if matrix.dim() == 2 else list(matrix)
    names = [f"label {j}" for j in range(len(panels))] if matrix.dim() == 3 else [""]
    cols = min(len(panels), 4)
    rows = math.ceil(len(panels) / cols)
    size = 4.2 if matrix.dim() == 3 else max(4.5, 0.55 * matrix.shape[0] + 2.5)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows * 0.92), squeeze=False)
    for idx, (panel, name) in enumerate(zip(panels, names)):
        ax = axes[idx // cols][idx % cols]
        k = panel.shape[0]
        share = panel.double() / panel.sum(1, keepdim=True).clamp_min(1)
        ax.imshow(share.numpy(), cmap="Blues", vmin=0, vmax=1)
        ticks = class_names if class_names and len(class_names) == k else [str(i) for i in range(k)]
        ax.set_xticks(range(k), ticks)
        ax.set_yticks(range(k), ticks)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(panel[i, j])}\n{100 * share[i, j]:.1f}%", ha="center", va="center",
                        fontsize=8 if k <= 6 else 6, color="white" if share[i, j] > 0.5 else "black")
        if name:
            ax.set_title(name)
    for idx in range(len(panels), rows * cols):
        axes[idx // cols][idx % cols].axis("off")
    _title(fig, title or "confusion matrix (rows: true class)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training_curves(history: list[dict], path: str, title: str = "") -> str | None:
    """Training (and validation) loss per epoch, with validation accuracy on a second axis when present."""
    plt = _pyplot()
    if plt is None or not history:
        return None
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [row["loss"] for row in history], "o-", ms=3, color="tab:blue", label="training loss")
    if "val_loss" in history[0]:
        ax.plot(epochs, [row["val_loss"] for row in history], "o-", ms=3, color="tab:orange",
                label="validation loss")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("loss (log scale)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if "val_accuracy" in history[0]:
        acc = ax.twinx()
        acc.plot(epochs, [row["val_accuracy"] for row in history], "s--", ms=3, color="tab:green",
                 label="validation accuracy")
        acc.set_ylabel("accuracy")
        acc.set_ylim(min(0.5, min(row["val_accuracy"] for row in history)), 1.0)
        more = acc.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, loc="center right")
    ax.set_title(title or "training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
