"""Network builders shared by every rltorch model (Q-networks, actor-critics and classifiers), and their
stacked forms for populations of agents: K networks as ``[K, ...]`` parameters, and one Adam for all."""

from rltorch.nn.cnn import cnn
from rltorch.nn.mlp import ACTIVATIONS, mlp
from rltorch.nn.stacked import StackedLinear, StackedMLP, stacked_orthogonal_
from rltorch.nn.stacked_adam import StackedAdam

__all__ = ["mlp", "cnn", "ACTIVATIONS", "StackedLinear", "StackedMLP", "StackedAdam", "stacked_orthogonal_"]
