"""Synthetic classification data made in torch (nothing is downloaded).

Every generator returns ``(X float32 [n, features], y)`` on ``device``, drawn
from a ``torch.Generator`` seeded with ``seed`` (same seed, same data). ``y`` is
int64 class labels, except :func:`make_multilabel` (int64 ``[n, labels]`` of
0/1). Shapes follow scikit-learn's ``make_*`` functions, the values are not
theirs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rltorch import _checks
from rltorch.classifiers.data import held_out_count

__all__ = ["make_circles", "make_moons", "make_blobs", "make_spirals", "make_multilabel", "train_test_split",
           "SYNTHETIC_DATASETS"]


def _count(owner: str, name: str, value, minimum: int = 1) -> int:
    return _checks.integer(owner, name, value, minimum, 2**40)


def _nonnegative(owner: str, name: str, value) -> float:
    return _checks.real(owner, name, value, 0.0)


def _finite(owner: str, X: Tensor, *names: str) -> Tensor:
    """``X`` once it is known to be finite: a huge noise or spread overflows float32, which no later check
    should be the first to find."""
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"{owner}: `{'`/`'.join(names)}` too large: the samples overflow float32")
    return X


def _generator(seed: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


def _balanced_labels(n: int, k: int, g: torch.Generator, device) -> Tensor:
    """``n`` labels, classes as equal as ``n`` allows, in random order."""
    labels = torch.arange(n, device=device) % k
    return labels[torch.randperm(n, generator=g, device=device)]


def make_circles(n_samples: int = 1000, noise: float = 0.05, factor: float = 0.5, seed: int = 0,
                 device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """Two concentric circles: class 0 on radius 1, class 1 on radius ``factor``, plus Gaussian ``noise``."""
    owner = "make_circles"
    n = _count(owner, "n_samples", n_samples)
    noise = _nonnegative(owner, "noise", noise)
    factor = _checks.real(owner, "factor", factor, 0.0, 1.0, low_open=True, high_open=True)
    g = _generator(seed, device)
    y = _balanced_labels(n, 2, g, device)
    angle = torch.rand(n, generator=g, device=device) * (2 * math.pi)
    radius = torch.where(y == 1, factor, 1.0)
    X = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1)
    X = X + noise * torch.randn(n, 2, generator=g, device=device)
    return _finite(owner, X.float(), "noise"), y


def make_moons(n_samples: int = 1000, noise: float = 0.1, seed: int = 0,
               device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """Two interleaving half circles (class 0 the upper, class 1 the lower, shifted), plus Gaussian ``noise``."""
    owner = "make_moons"
    n = _count(owner, "n_samples", n_samples)
    noise = _nonnegative(owner, "noise", noise)
    g = _generator(seed, device)
    y = _balanced_labels(n, 2, g, device)
    angle = torch.rand(n, generator=g, device=device) * math.pi
    upper = torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], 1)
    X = torch.where((y == 1).unsqueeze(1), lower, upper)
    X = X + noise * torch.randn(n, 2, generator=g, device=device)
    return _finite(owner, X.float(), "noise"), y


def make_blobs(n_samples: int = 1000, num_classes: int = 4, num_features: int = 2, cluster_std: float = 1.0,
               spread: float = 5.0, seed: int = 0, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """``num_classes`` isotropic Gaussian clusters of std ``cluster_std``.

    The centres sit evenly on a circle of radius ``spread`` in the first two
    features (0 in the others), so the classes are separable by design: with the
    defaults neighbouring centres are 7 standard deviations apart.
    """
    owner = "make_blobs"
    n = _count(owner, "n_samples", n_samples)
    k = _count(owner, "num_classes", num_classes, 2)
    d = _count(owner, "num_features", num_features, 2)
    std = _nonnegative(owner, "cluster_std", cluster_std)
    spread = _nonnegative(owner, "spread", spread)
    g = _generator(seed, device)
    y = _balanced_labels(n, k, g, device)
    angle = torch.arange(k, device=device, dtype=torch.float64) * (2 * math.pi / k)
    centers = torch.zeros(k, d, device=device, dtype=torch.float64)
    centers[:, 0], centers[:, 1] = spread * torch.cos(angle), spread * torch.sin(angle)
    X = centers[y] + std * torch.randn(n, d, generator=g, device=device, dtype=torch.float64)
    return _finite(owner, X.float(), "cluster_std", "spread"), y


def make_spirals(n_samples: int = 1000, num_classes: int = 2, noise: float = 0.05, turns: float = 1.5,
                 seed: int = 0, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """``num_classes`` interleaved spiral arms from the origin out to radius 1, each turning ``turns`` times."""
    owner = "make_spirals"
    n = _count(owner, "n_samples", n_samples)
    k = _count(owner, "num_classes", num_classes, 2)
    noise = _nonnegative(owner, "noise", noise)
    turns = _checks.real(owner, "turns", turns, 0.0, None, low_open=True)
    g = _generator(seed, device)
    y = _balanced_labels(n, k, g, device)
    # sqrt spreads the points evenly along the arm's area rather than its length.
    radius = torch.rand(n, generator=g, device=device).sqrt() * 0.95 + 0.05
    angle = radius * (2 * math.pi * turns) + y * (2 * math.pi / k)
    X = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1)
    X = X + noise * torch.randn(n, 2, generator=g, device=device)
    return _finite(owner, X.float(), "noise"), y


def make_multilabel(n_samples: int = 1000, num_labels: int = 4, num_features: int = 2, seed: int = 0,
                    device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """Points uniform in ``[-1, 1]^num_features``; label ``j`` is 1 inside ball ``j`` (random centre
    in ``[-0.5, 0.5]^d``, radius in ``[0.45, 0.8]``), so a sample carries any subset of the labels."""
    owner = "make_multilabel"
    n = _count(owner, "n_samples", n_samples)
    labels = _count(owner, "num_labels", num_labels)
    d = _count(owner, "num_features", num_features)
    g = _generator(seed, device)
    centers = torch.rand(labels, d, generator=g, device=device) - 0.5
    radii = 0.45 + 0.35 * torch.rand(labels, generator=g, device=device)
    X = torch.rand(n, d, generator=g, device=device) * 2 - 1
    y = (torch.cdist(X, centers) < radii).long()
    return X, y


def train_test_split(X: Tensor, y: Tensor, test_size: float = 0.25, seed: int = 0
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(X_train, X_test, y_train, y_test)`` from one random permutation (scikit-learn's order)."""
    if len(X) != len(y):
        raise ValueError(f"`X` and `y` differ in length: {len(X)} vs {len(y)}")
    test_size = _checks.real("train_test_split", "test_size", test_size, 0.0, 1.0, low_open=True, high_open=True)
    n = len(X)
    n_test = held_out_count(n, test_size)
    if n_test < 1 or n_test >= n:
        raise ValueError(f"`test_size`={test_size} leaves an empty split of {n} samples")
    perm = torch.randperm(n, generator=_generator(seed, "cpu")).to(X.device)
    test, train = perm[:n_test], perm[n_test:]
    return X[train], X[test], y[train], y[test]


#: Name -> generator, for the CLI's ``--dataset``.
SYNTHETIC_DATASETS = {
    "circles": make_circles,
    "moons": make_moons,
    "blobs": make_blobs,
    "spirals": make_spirals,
    "multilabel": make_multilabel,
}
