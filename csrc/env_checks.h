// Argument checks every env op shares (CartPole and the classic-control
// suite), so each rejects the same mistakes with the same words.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>

namespace rltorch {

using EnvStepTuple =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The eight outputs of every env step op (csrc/ops.cpp): obs float32 [N, obs_dim], reward float32,
// terminated, truncated, done bool, episode_return float32, episode_length int32 [N], and
// final_obs float32 [N, obs_dim] in same-step mode ([0, obs_dim] otherwise).
struct EnvStepOutputs {
  at::Tensor obs, reward, terminated, truncated, done, episode_return, episode_length, final_obs;
  void allocate(const at::TensorOptions& options, int64_t n, int64_t obs_dim, bool same_step);
  EnvStepTuple outputs() const {
    return {obs, reward, terminated, truncated, done, episode_return, episode_length, final_obs};
  }
};

// `state` float64 [rows, N] (rows named by `row_names`), contiguous; returns N
// (at most 2^31 - 1). `gym_name` names the env in the dtype message.
int64_t check_env_state(const char* op, const at::Tensor& state, int64_t rows, const char* gym_name,
                        const char* row_names);

// A per-env tensor written in place: on `state`'s device, of `dtype`, shape
// [n], contiguous (a copy would silently drop the update).
void check_env_tensor(const char* op, const at::Tensor& state, const at::Tensor& t, const char* name,
                      at::ScalarType dtype, int64_t n);

// Initial states are low + (high - low) * u: finite bounds, low <= high, and
// a finite width. `low_name`/`high_name` name them as the op's schema does.
void check_reset_bounds(const char* op, double low, double high, const char* low_name = "low",
                        const char* high_name = "high");

void check_step_limits(const char* op, int64_t max_episode_steps, int64_t autoreset_mode);

// The reset mask as a contiguous bool tensor of shape [n], or an undefined
// tensor (reset every env) when none is given.
at::Tensor checked_reset_mask(const char* op, const at::Tensor& state, const std::optional<at::Tensor>& mask,
                              int64_t n);

}  // namespace rltorch
