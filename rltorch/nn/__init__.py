"""Network builders shared by every rltorch model: Q-networks, actor-critics and classifiers."""

from rltorch.nn.cnn import cnn
from rltorch.nn.mlp import ACTIVATIONS, mlp

__all__ = ["mlp", "cnn", "ACTIVATIONS"]
