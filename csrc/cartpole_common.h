// Validation and output allocation of the CartPole ops, shared by the CPU and
// CUDA kernels (the math is in include/rltorch/cartpole.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "env_checks.h"

namespace rltorch {

// Outputs of rltorch::cartpole_step_, in schema order.
using CartPoleStepOutputs = EnvStepTuple;

struct CartPoleStepArgs : EnvStepOutputs {
  at::Tensor action;  // contiguous [N], integer
  int64_t n = 0;
  uint64_t seed = 0;
  int32_t max_episode_steps = 0;
};

// Checks the env tensors (state float64 [4, N], steps int32 [N], prev_done bool [N],
// episode int64 [N], all contiguous on one device) and returns N.
int64_t check_cartpole_state(const char* op, const at::Tensor& state, const at::Tensor& steps,
                             const at::Tensor& prev_done, const at::Tensor& episode);

CartPoleStepArgs prepare_cartpole_step(const at::Tensor& state, const at::Tensor& steps,
                                       const at::Tensor& prev_done, const at::Tensor& episode,
                                       const at::Tensor& action, int64_t seed, double low, double high,
                                       int64_t max_episode_steps, int64_t autoreset_mode);

// Returns the reset mask as a contiguous bool tensor, or an undefined tensor (reset all).
at::Tensor prepare_cartpole_reset(const at::Tensor& state, const at::Tensor& steps,
                                  const at::Tensor& prev_done, const at::Tensor& episode,
                                  const std::optional<at::Tensor>& mask, double low, double high);

}  // namespace rltorch
