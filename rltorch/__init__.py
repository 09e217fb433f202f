"""rltorch: fast C++/CUDA reinforcement-learning operators for PyTorch."""

from rltorch import _ext
from rltorch import ops
from rltorch import envs  # registers rltorch/CartPole-v1 with gymnasium (~20 ms)
from rltorch._info import info

__version__ = "0.1.0"
__all__ = ["ops", "envs", "info", "__version__"]
