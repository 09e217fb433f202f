"""rltorch: fast C++/CUDA reinforcement-learning operators for PyTorch."""

from rltorch import _ext
from rltorch import ops
from rltorch import envs  # registers rltorch/CartPole-v1 with gymnasium (~20 ms)
from rltorch._info import info

from rltorch._version import __version__
__all__ = ["ops", "envs", "info", "__version__"]
