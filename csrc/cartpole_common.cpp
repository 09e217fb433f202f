#include "cartpole_common.h"

#include <ATen/ATen.h>


#include "checks.h"
#include "env_checks.h"
#include "rltorch/cartpole.h"

namespace rltorch {

int64_t check_cartpole_state(const char* op, const at::Tensor& state, const at::Tensor& steps,
                             const at::Tensor& prev_done, const at::Tensor& episode) {
  const int64_t n = check_env_state(op, state, 4, "CartPole", "x, x_dot, theta, theta_dot");
  check_env_tensor(op, state, steps, "steps", at::kInt, n);
  check_env_tensor(op, state, prev_done, "prev_done", at::kBool, n);
  check_env_tensor(op, state, episode, "episode", at::kLong, n);
  return n;
}

CartPoleStepArgs prepare_cartpole_step(const at::Tensor& state, const at::Tensor& steps,
                                       const at::Tensor& prev_done, const at::Tensor& episode,
                                       const at::Tensor& action, int64_t seed, double low, double high,
                                       int64_t max_episode_steps, int64_t autoreset_mode) {
  constexpr const char* op = "cartpole_step_";
  CartPoleStepArgs a;
  a.n = check_cartpole_state(op, state, steps, prev_done, episode);
  check_same_device(op, state, "state", action, "actions");
  // Any integer dtype, signed or unsigned (uint16/32/64 included); bool is not an action.
  TORCH_CHECK(at::isIntegralType(action.scalar_type(), /*includeBool=*/false), "rltorch.", op,
              ": `actions` must be an integer tensor (0 = push left, 1 = push right), got ",
              action.scalar_type());
  TORCH_CHECK(action.dim() == 1 && action.size(0) == a.n, "rltorch.", op,
              ": `actions` must have shape [", a.n, "] (one per env), got ", shape_string(action));
  check_step_limits(op, max_episode_steps, autoreset_mode);
  check_reset_bounds(op, low, high);
  a.action = action.contiguous();
  a.seed = static_cast<uint64_t>(seed);
  a.max_episode_steps = static_cast<int32_t>(max_episode_steps);

  a.allocate(state.options(), a.n, 4, autoreset_mode == cartpole::kSameStep);
  return a;
}

at::Tensor prepare_cartpole_reset(const at::Tensor& state, const at::Tensor& steps,
                                  const at::Tensor& prev_done, const at::Tensor& episode,
                                  const std::optional<at::Tensor>& mask, double low, double high) {
  constexpr const char* op = "cartpole_reset_";
  const int64_t n = check_cartpole_state(op, state, steps, prev_done, episode);
  check_reset_bounds(op, low, high);
  return checked_reset_mask(op, state, mask, n);
}

}  // namespace rltorch
