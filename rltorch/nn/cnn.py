"""The one small-CNN builder, for image-shaped inputs ``[batch, channels, height, width]``."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from rltorch.nn.mlp import ACTIVATIONS, mlp


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"cnn: `{name}` must be an integer >= 1, got {value!r}")
    return int(value)


def cnn(
    in_shape: Sequence[int],
    channels: Sequence[int] = (16, 32),
    out_features: int | None = None,
    *,
    kernel_size: int = 3,
    pool: int = 2,
    hidden_sizes: Sequence[int] = (),
    activation: str | type[nn.Module] = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """``Conv2d(kernel_size, same padding) -> activation -> MaxPool2d(pool)`` per entry of
    ``channels``, then ``Flatten`` and :func:`rltorch.nn.mlp` over ``hidden_sizes`` to
    ``out_features`` (``None`` leaves the linear head off).

    ``in_shape`` is ``(channels, height, width)``. A block whose input is smaller than
    ``pool`` skips the pooling, so small images (8x8 and up) work with the defaults.
    """
    shape = list(in_shape)
    if len(shape) != 3:
        raise ValueError(f"cnn: `in_shape` must be (channels, height, width), got {tuple(in_shape)!r}")
    c, h, w = (_positive_int(v, "in_shape") for v in shape)
    widths = [_positive_int(v, "channels") for v in channels]
    if not widths:
        raise ValueError("cnn: `channels` must name at least one conv block")
    kernel_size = _positive_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"cnn: `kernel_size` must be odd (same padding), got {kernel_size}")
    pool = _positive_int(pool, "pool")
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"cnn: `activation` must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        activation = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(c, width, kernel_size, padding=kernel_size // 2), activation()]
        if pool > 1 and h >= pool and w >= pool:
            layers.append(nn.MaxPool2d(pool))
            h, w = h // pool, w // pool
        c = width
    layers.append(nn.Flatten())
    head = mlp(c * h * w, hidden_sizes, out_features, activation=activation, dropout=dropout)
    return nn.Sequential(*layers, *head)
