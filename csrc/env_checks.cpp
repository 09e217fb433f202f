#include "env_checks.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "checks.h"
#include "rltorch/env_common.h"

namespace rltorch {

int64_t check_env_state(const char* op, const at::Tensor& state, int64_t rows, const char* gym_name,
                        const char* row_names) {
  TORCH_CHECK(state.scalar_type() == at::kDouble, "rltorch.", op, ": `state` must be float64 (gymnasium steps ",
              gym_name, " in float64), got ", state.scalar_type());
  TORCH_CHECK(state.dim() == 2 && state.size(0) == rows, "rltorch.", op, ": `state` must have shape [", rows,
              ", num_envs] (", row_names, " rows), got ", shape_string(state));
  TORCH_CHECK(state.is_contiguous(), "rltorch.", op, ": `state` must be contiguous");
  const int64_t n = state.size(1);
  TORCH_CHECK(n <= std::numeric_limits<int32_t>::max(), "rltorch.", op, ": at most 2^31 - 1 envs, got ", n);
  return n;
}

void check_env_tensor(const char* op, const at::Tensor& state, const at::Tensor& t, const char* name,
                      at::ScalarType dtype, int64_t n) {
  check_same_device(op, state, "state", t, name);
  TORCH_CHECK(t.scalar_type() == dtype, "rltorch.", op, ": `", name, "` must be ", dtype, ", got ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == n, "rltorch.", op, ": `", name, "` must have shape [", n,
              "] (one entry per env), got ", shape_string(t));
  TORCH_CHECK(t.is_contiguous(), "rltorch.", op, ": `", name, "` must be contiguous");
}

void check_reset_bounds(const char* op, double low, double high, const char* low_name, const char* high_name) {
  TORCH_CHECK_VALUE(std::isfinite(low), "rltorch.", op, ": reset bound `", low_name, "` must be finite, got ", low);
  TORCH_CHECK_VALUE(std::isfinite(high), "rltorch.", op, ": reset bound `", high_name, "` must be finite, got ",
                    high);
  TORCH_CHECK_VALUE(low <= high, "rltorch.", op, ": reset bound `", low_name, "` (", low, ") must not exceed `",
                    high_name, "` (", high, ")");
  // An infinite width gives inf/NaN states.
  TORCH_CHECK_VALUE(std::isfinite(high - low), "rltorch.", op, ": reset bounds `", low_name, "` (", low, ") and `",
                    high_name, "` (", high, ") are too far apart: high - low overflows");
}

void check_step_limits(const char* op, int64_t max_episode_steps, int64_t autoreset_mode) {
  TORCH_CHECK_VALUE(max_episode_steps >= 1 && max_episode_steps <= std::numeric_limits<int32_t>::max(),
                    "rltorch.", op, ": `max_episode_steps` must be in [1, 2^31 - 1], got ", max_episode_steps);
  TORCH_CHECK_VALUE(autoreset_mode == env::kNextStep || autoreset_mode == env::kSameStep ||
                        autoreset_mode == env::kDisabled,
                    "rltorch.", op, ": `autoreset_mode` must be 0 (next step), 1 (same step) or 2 (disabled), got ",
                    autoreset_mode);
}

at::Tensor checked_reset_mask(const char* op, const at::Tensor& state, const std::optional<at::Tensor>& mask,
                              int64_t n) {
  if (!mask.has_value() || !mask->defined()) return at::Tensor();
  check_same_device(op, state, "state", *mask, "reset_mask");
  TORCH_CHECK(mask->scalar_type() == at::kBool, "rltorch.", op, ": `reset_mask` must be bool, got ",
              mask->scalar_type());
  TORCH_CHECK(mask->dim() == 1 && mask->size(0) == n, "rltorch.", op, ": `reset_mask` must have shape [", n,
              "], got ", shape_string(*mask));
  return mask->contiguous();
}

void EnvStepOutputs::allocate(const at::TensorOptions& options, int64_t n, int64_t obs_dim, bool same_step) {
  obs = at::empty({n, obs_dim}, options.dtype(at::kFloat));
  reward = at::empty({n}, options.dtype(at::kFloat));
  terminated = at::empty({n}, options.dtype(at::kBool));
  truncated = at::empty({n}, options.dtype(at::kBool));
  done = at::empty({n}, options.dtype(at::kBool));
  episode_return = at::empty({n}, options.dtype(at::kFloat));
  episode_length = at::empty({n}, options.dtype(at::kInt));
  final_obs = at::empty({same_step ? n : 0, obs_dim}, options.dtype(at::kFloat));
}

}  // namespace rltorch
