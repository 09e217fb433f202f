"""The one MLP builder: every fully connected network in rltorch is made here."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

#: Activation names accepted by :func:`mlp` (also the CLI's choices).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU,
}


def mlp(
    in_features: int,
    hidden_sizes: Sequence[int],
    out_features: int | None = None,
    *,
    activation: str | type[nn.Module] = "relu",
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> nn.Sequential:
    """``Linear -> [BatchNorm1d] -> activation -> [Dropout]`` per hidden size, then a linear head.

    ``out_features=None`` leaves the head off (the last hidden layer's
    activations are the output, for networks with several heads). The layers
    are a plain ``nn.Sequential``, so TorchScript and ``torch.export`` take
    them as they are.
    """
    if isinstance(in_features, bool) or int(in_features) != in_features or in_features < 1:
        raise ValueError(f"mlp: `in_features` must be an integer >= 1, got {in_features!r}")
    sizes = list(hidden_sizes)
    if any(isinstance(h, bool) or int(h) != h or h < 1 for h in sizes):
        raise ValueError(f"mlp: `hidden_sizes` must be integers >= 1, got {hidden_sizes!r}")
    if out_features is not None and (isinstance(out_features, bool) or int(out_features) != out_features
                                     or out_features < 1):
        raise ValueError(f"mlp: `out_features` must be an integer >= 1 or None, got {out_features!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"mlp: `dropout` must lie in [0, 1), got {dropout!r}")
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"mlp: `activation` must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        activation = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    width = int(in_features)
    for size in sizes:
        layers.append(nn.Linear(width, int(size)))
        if batch_norm:
            layers.append(nn.BatchNorm1d(int(size)))
        layers.append(activation())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(size)
    if out_features is not None:
        layers.append(nn.Linear(width, int(out_features)))
    return nn.Sequential(*layers)
