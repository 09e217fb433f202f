#include "classic_control_common.h"

#include <ATen/ATen.h>

#include <cmath>

#include "checks.h"
#include "env_checks.h"

namespace rltorch {

classic::StepOutputs ClassicStepArgs::pointers() const {
  return {obs.data_ptr<float>(),
          reward.data_ptr<float>(),
          terminated.data_ptr<bool>(),
          truncated.data_ptr<bool>(),
          done.data_ptr<bool>(),
          episode_return.data_ptr<float>(),
          episode_length.data_ptr<int32_t>(),
          final_obs.numel() > 0 ? final_obs.data_ptr<float>() : nullptr,
          max_episode_steps};
}

int64_t check_classic_state(const char* op, const ClassicEnvInfo& env, const at::Tensor& state,
                            const at::Tensor& steps, const at::Tensor& prev_done, const at::Tensor& episode,
                            const at::Tensor& returns) {
  const int64_t n = check_env_state(op, state, env.state_dim, env.gym_id, env.state_rows);
  check_env_tensor(op, state, steps, "steps", at::kInt, n);
  check_env_tensor(op, state, prev_done, "prev_done", at::kBool, n);
  check_env_tensor(op, state, episode, "episode", at::kLong, n);
  check_env_tensor(op, state, returns, "returns", at::kDouble, n);
  return n;
}

classic::EnvTensors env_tensors(at::Tensor& state, at::Tensor& steps, at::Tensor& prev_done, at::Tensor& episode,
                                at::Tensor& returns, int64_t seed) {
  return {state.data_ptr<double>(),  steps.data_ptr<int32_t>(),  prev_done.data_ptr<bool>(),
          episode.data_ptr<int64_t>(), returns.data_ptr<double>(), state.size(1),
          static_cast<uint64_t>(seed)};
}

ClassicStepArgs prepare_classic_step(const char* op, const ClassicEnvInfo& env, const at::Tensor& state,
                                     const at::Tensor& steps, const at::Tensor& prev_done,
                                     const at::Tensor& episode, const at::Tensor& returns,
                                     const at::Tensor& actions, int64_t seed, int64_t max_episode_steps,
                                     int64_t autoreset_mode) {
  ClassicStepArgs a;
  a.n = check_classic_state(op, env, state, steps, prev_done, episode, returns);
  check_same_device(op, state, "state", actions, "actions");
  if (env.continuous) {
    // The action space is Box(shape=(1,), float32): gymnasium computes with float32 actions.
    TORCH_CHECK(actions.scalar_type() == at::kFloat, "rltorch.", op,
                ": `actions` must be float32 (the action space's dtype), got ", actions.scalar_type());
    TORCH_CHECK(actions.dim() == 2 && actions.size(0) == a.n && actions.size(1) == 1, "rltorch.", op,
                ": `actions` must have shape [", a.n, ", 1] (one per env), got ", shape_string(actions));
  } else {
    // Any integer dtype, signed or unsigned; bool is not an action.
    TORCH_CHECK(at::isIntegralType(actions.scalar_type(), /*includeBool=*/false), "rltorch.", op,
                ": `actions` must be an integer tensor (0, 1 or 2), got ", actions.scalar_type());
    TORCH_CHECK(actions.dim() == 1 && actions.size(0) == a.n, "rltorch.", op, ": `actions` must have shape [", a.n,
                "] (one per env), got ", shape_string(actions));
  }
  check_step_limits(op, max_episode_steps, autoreset_mode);
  a.action = actions.contiguous();
  a.seed = static_cast<uint64_t>(seed);
  a.max_episode_steps = static_cast<int32_t>(max_episode_steps);

  a.allocate(state.options(), a.n, env.obs_dim, autoreset_mode == env::kSameStep);
  return a;
}

at::Tensor prepare_classic_reset(const char* op, const ClassicEnvInfo& env, const at::Tensor& state,
                                 const at::Tensor& steps, const at::Tensor& prev_done, const at::Tensor& episode,
                                 const at::Tensor& returns, const std::optional<at::Tensor>& mask) {
  const int64_t n = check_classic_state(op, env, state, steps, prev_done, episode, returns);
  return checked_reset_mask(op, state, mask, n);
}

namespace {

void check_finite_param(const char* op, double value, const char* name) {
  TORCH_CHECK_VALUE(std::isfinite(value), "rltorch.", op, ": `", name, "` must be finite, got ", value);
}

// Pendulum's x_init / y_init: the draw is uniform(-value, value).
void check_half_width(const char* op, double value, const char* name) {
  TORCH_CHECK_VALUE(std::isfinite(value) && value >= 0.0, "rltorch.", op, ": reset bound `", name,
                    "` must be finite and >= 0, got ", value);
  TORCH_CHECK_VALUE(std::isfinite(value - (-value)), "rltorch.", op, ": reset bound `", name, "` (", value,
                    ") is too large: 2 * ", name, " overflows");
}

// uniform(low, high) bounds.
template <class Reset>
Reset low_high(const char* op, double low, double high) {
  check_reset_bounds(op, low, high);
  return {low, high};
}

}  // namespace

template <>
classic::MountainCar::Reset checked_bounds<classic::MountainCar>(const char* op, double low, double high) {
  return low_high<classic::MountainCar::Reset>(op, low, high);
}
template <>
classic::MountainCar::Params checked_params<classic::MountainCar>(const char* op, double goal_velocity) {
  check_finite_param(op, goal_velocity, "goal_velocity");
  return {goal_velocity};
}
template <>
classic::MountainCarContinuous::Reset checked_bounds<classic::MountainCarContinuous>(const char* op, double low,
                                                                                    double high) {
  return checked_bounds<classic::MountainCar>(op, low, high);
}
template <>
classic::MountainCarContinuous::Params checked_params<classic::MountainCarContinuous>(const char* op,
                                                                                     double goal_velocity) {
  return checked_params<classic::MountainCar>(op, goal_velocity);
}
template <>
classic::Pendulum::Reset checked_bounds<classic::Pendulum>(const char* op, double x_init, double y_init) {
  check_half_width(op, x_init, "x_init");
  check_half_width(op, y_init, "y_init");
  return {x_init, y_init};
}
template <>
classic::Pendulum::Params checked_params<classic::Pendulum>(const char* op, double g) {
  check_finite_param(op, g, "g");
  return {g};
}
template <>
classic::Acrobot::Reset checked_bounds<classic::Acrobot>(const char* op, double low, double high) {
  return low_high<classic::Acrobot::Reset>(op, low, high);
}
template <>
classic::Acrobot::Params checked_params<classic::Acrobot>(const char*, double) {
  return {};
}

}  // namespace rltorch
