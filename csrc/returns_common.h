// Validation and output allocation of the Bellman-target ops, shared by the
// CPU and CUDA kernels (the math itself is in include/rltorch/returns.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

#include "rltorch/returns.h"

namespace rltorch {

struct TdTargetArgs {
  at::Tensor reward;          // contiguous, flattened to [B]
  at::Tensor terminated;      // bool, contiguous [B]
  at::Tensor next_q;          // contiguous [B, A] (A = 1 for state values)
  at::Tensor next_q_online;   // contiguous [B, A] or undefined
  at::Tensor next_action;     // int64 contiguous [B] or undefined
  at::Tensor discount;        // contiguous [B] or undefined (then gamma)
  int64_t batch = 0;
  int64_t num_actions = 1;
  Bootstrap mode = Bootstrap::kValue;
};

TdTargetArgs prepare_td_target(const at::Tensor& reward, const at::Tensor& terminated,
                               const at::Tensor& next_q,
                               const std::optional<at::Tensor>& next_q_online,
                               const std::optional<at::Tensor>& next_action,
                               const std::optional<at::Tensor>& discount, double gamma);

// Time-major [T, *batch] inputs, made contiguous; N is the product of the batch dims.
struct NstepArgs {
  at::Tensor reward, terminated, truncated;  // flags as bool
  int64_t T = 0, N = 0;
};

NstepArgs prepare_nstep_returns(const at::Tensor& reward, const at::Tensor& terminated,
                                const at::Tensor& truncated, int64_t n, double gamma);

struct GaeArgs {
  at::Tensor reward, value, next_value, terminated, done;  // flags as bool
  int64_t T = 0, N = 0;
};

GaeArgs prepare_gae(const at::Tensor& reward, const at::Tensor& value, const at::Tensor& next_value,
                    const at::Tensor& terminated, const at::Tensor& done, double gamma, double lmbda);

}  // namespace rltorch
