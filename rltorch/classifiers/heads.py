"""The modules a classifier is made of besides its backbone: input standardization, and the decision head.

:class:`Decision` is the one place where logits become labels, probabilities or decision scores:
``predict``/``predict_proba``/``decision_function`` run it, and ``export`` saves it, so the exported
module and the estimator cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["Standardize", "Decision", "OUTPUTS"]

#: What a :class:`Decision` module returns: labels (``predict``), probabilities (``predict_proba``) or
#: decision scores (``decision_function``).
OUTPUTS = ("labels", "proba", "logits")


class Standardize(nn.Module):
    """``(x - mean) * inv_std`` with the training data's statistics stored as buffers, so the
    exported network takes raw inputs."""

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("inv_std", torch.ones(shape))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) * self.inv_std


class Decision(nn.Module):
    """A network plus what turns its logits into ``output``, with scikit-learn's shapes:

    - ``"labels"``: ``[N]`` class indices (``[N, labels]`` of 0/1 for multilabel), mapped through
      ``classes`` when given (an int64 tensor of the class labels);
    - ``"proba"``: ``[N, classes]`` (two columns for a binary classifier), or ``[N, labels]``;
    - ``"logits"``: ``[N, classes]``, or ``[N]`` for two classes (the log-odds of the second class:
      the binary logit, or ``z1 - z0`` of a two-class softmax), or ``[N, labels]``.

    ``multiclass`` means a softmax over the outputs, otherwise one sigmoid per output;
    ``single`` means one sigmoid output that stands for two classes (the binary classifier).
    """

    def __init__(self, network: nn.Module, output: str, multiclass: bool, threshold_logit: float, single: bool,
                 classes: Tensor | None = None):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"`output` must be one of {', '.join(map(repr, OUTPUTS))}, got {output!r}")
        self.network = network
        self.output = output
        self.multiclass = multiclass
        self.threshold_logit = threshold_logit
        self.single = single
        # Two softmax outputs give one score, as scikit-learn's decision_function does for two classes.
        linear = [m for m in network.modules() if isinstance(m, nn.Linear)]
        self.margin = multiclass and bool(linear) and linear[-1].out_features == 2
        if classes is None:
            self.classes = None
        else:
            self.register_buffer("classes", classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.decide(self.network(x))

    def decide(self, logits: Tensor) -> Tensor:
        """``output`` from the network's ``[N, outputs]`` logits."""
        if self.multiclass:
            if self.output == "logits":
                return logits[:, 1] - logits[:, 0] if self.margin else logits
            if self.output == "proba":
                return torch.softmax(logits, dim=1)
            index = logits.argmax(dim=1)
        else:
            if self.output == "logits":
                return logits[:, 0] if self.single else logits
            if self.output == "proba":
                p = torch.sigmoid(logits)
                return torch.cat([1 - p, p], dim=1) if self.single else p
            index = (logits > self.threshold_logit).long()
            if self.single:
                index = index[:, 0]
        return index if self.classes is None else self.classes[index]
