"""rltorch's operators (compiled kernels with pure-PyTorch fallbacks)."""

from rltorch.ops.cartpole import cartpole_reset_, cartpole_step_, new_cartpole_state
from rltorch.ops.classic_control import (
    acrobot_reset_,
    acrobot_step_,
    classic_reset_,
    classic_step_,
    mountain_car_continuous_reset_,
    mountain_car_continuous_step_,
    mountain_car_reset_,
    mountain_car_step_,
    new_classic_state,
    pendulum_reset_,
    pendulum_step_,
)
from rltorch.ops.device_errors import check_device_errors, device_error_pending
from rltorch.ops.parallel import cpu_parallel, cpu_parallel_report, set_cpu_parallel
from rltorch.ops.returns import double_dqn_target, gae, lambda_returns, nstep_returns, td_target
from rltorch.ops.sumtree import SumTree

__all__ = [
    "td_target", "double_dqn_target", "nstep_returns", "gae", "lambda_returns",
    "cartpole_step_", "cartpole_reset_", "new_cartpole_state",
    "mountain_car_step_", "mountain_car_reset_", "mountain_car_continuous_step_", "mountain_car_continuous_reset_",
    "pendulum_step_", "pendulum_reset_", "acrobot_step_", "acrobot_reset_", "classic_step_", "classic_reset_",
    "new_classic_state",
    "SumTree", "check_device_errors", "device_error_pending",
    "cpu_parallel", "set_cpu_parallel", "cpu_parallel_report",
]
