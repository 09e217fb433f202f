"""rltorch: fast C++/CUDA reinforcement-learning operators for PyTorch."""

from rltorch import (
    _ext,  # noqa: F401  (loads the compiled operators before anything uses them)
    envs,  # registers rltorch's envs with gymnasium (~20 ms)
    ops,
)
from rltorch._info import info
from rltorch._version import __version__

__all__ = ["ops", "envs", "info", "__version__"]
