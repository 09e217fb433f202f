// Validation and output allocation of the classic-control ops (MountainCar,
// MountainCarContinuous, Pendulum, Acrobot), shared by the CPU and CUDA
// kernels; the math is in include/rltorch/{classic_control,mountain_car,
// pendulum,acrobot}.h.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <optional>
#include <tuple>
#include <utility>

#include "env_checks.h"
#include "rltorch/acrobot.h"
#include "rltorch/classic_control.h"
#include "rltorch/mountain_car.h"
#include "rltorch/pendulum.h"

namespace rltorch {

// What the checks need to know of an env, and how its messages name things.
struct ClassicEnvInfo {
  const char* gym_id;      // "MountainCar-v0"
  const char* state_rows;  // "position, velocity"
  int state_dim;
  int obs_dim;
  bool continuous;
  int64_t num_actions;
};

template <class Env>
ClassicEnvInfo classic_env_info() {
  return {Env::kGymId, Env::kStateRows, Env::kStateDim, Env::kObsDim, Env::kContinuous, Env::kNumActions};
}

// Outputs of every <env>_step_ op, in schema order.
using ClassicStepOutputs = EnvStepTuple;

struct ClassicStepArgs : EnvStepOutputs {
  at::Tensor action;  // contiguous: integer [N] (discrete) or float32 [N, 1] (continuous)
  int64_t n = 0;
  uint64_t seed = 0;
  int32_t max_episode_steps = 0;
  classic::StepOutputs pointers() const;
};

// Checks the env tensors (state float64 [D, N], steps int32 [N], prev_done
// bool [N], episode int64 [N], returns float64 [N], contiguous, one device)
// and returns N.
int64_t check_classic_state(const char* op, const ClassicEnvInfo& env, const at::Tensor& state,
                            const at::Tensor& steps, const at::Tensor& prev_done, const at::Tensor& episode,
                            const at::Tensor& returns);

classic::EnvTensors env_tensors(at::Tensor& state, at::Tensor& steps, at::Tensor& prev_done, at::Tensor& episode,
                                at::Tensor& returns, int64_t seed);

// Everything but the per-env arguments (reset bounds, params), which the
// *_bounds / *_params functions below check.
ClassicStepArgs prepare_classic_step(const char* op, const ClassicEnvInfo& env, const at::Tensor& state,
                                     const at::Tensor& steps, const at::Tensor& prev_done,
                                     const at::Tensor& episode, const at::Tensor& returns,
                                     const at::Tensor& actions, int64_t seed, int64_t max_episode_steps,
                                     int64_t autoreset_mode);

// The reset mask as a contiguous bool tensor, or an undefined tensor (reset all).
at::Tensor prepare_classic_reset(const char* op, const ClassicEnvInfo& env, const at::Tensor& state,
                                 const at::Tensor& steps, const at::Tensor& prev_done, const at::Tensor& episode,
                                 const at::Tensor& returns, const std::optional<at::Tensor>& mask);

// An env's reset bounds and step parameters from the op's scalar arguments
// (the schema's two bounds, and its one parameter where the env has one),
// checked: finite, and bounds that give finite initial states.
template <class Env>
typename Env::Reset checked_bounds(const char* op, double first, double second);
template <class Env>
typename Env::Params checked_params(const char* op, double param);

// A step op's checked arguments and allocated outputs (every check, in the
// order the schema lists the arguments), for the CPU and CUDA kernels alike.
template <class Env>
struct ClassicStep {
  ClassicStepArgs args;
  typename Env::Reset bounds;
  typename Env::Params params;
};

template <class Env>
ClassicStep<Env> prepare_step(const at::Tensor& state, const at::Tensor& steps, const at::Tensor& prev_done,
                              const at::Tensor& episode, const at::Tensor& returns, const at::Tensor& actions,
                              int64_t seed, double first, double second, int64_t max_episode_steps,
                              int64_t autoreset_mode, double param) {
  ClassicStepArgs args = prepare_classic_step(Env::kStepOp, classic_env_info<Env>(), state, steps, prev_done,
                                              episode, returns, actions, seed, max_episode_steps, autoreset_mode);
  const typename Env::Reset bounds = checked_bounds<Env>(Env::kStepOp, first, second);
  const typename Env::Params params = checked_params<Env>(Env::kStepOp, param);
  return {std::move(args), bounds, params};
}

// A reset op's checked mask (undefined: every env), bounds and output obs.
template <class Env>
struct ClassicReset {
  at::Tensor mask;
  typename Env::Reset bounds;
  at::Tensor obs;
};

template <class Env>
ClassicReset<Env> prepare_reset(const at::Tensor& state, const at::Tensor& steps, const at::Tensor& prev_done,
                                const at::Tensor& episode, const at::Tensor& returns,
                                const std::optional<at::Tensor>& reset_mask, double first, double second) {
  at::Tensor mask = prepare_classic_reset(Env::kResetOp, classic_env_info<Env>(), state, steps, prev_done, episode,
                                          returns, reset_mask);
  const typename Env::Reset bounds = checked_bounds<Env>(Env::kResetOp, first, second);
  at::Tensor obs = at::empty({state.size(1), Env::kObsDim}, state.options().dtype(at::kFloat));
  return {std::move(mask), bounds, std::move(obs)};
}

// The step op of an env without a step parameter (Acrobot's schema has none).
template <auto step>
ClassicStepOutputs step_without_param(at::Tensor& state, at::Tensor& steps, at::Tensor& prev_done,
                                      at::Tensor& episode, at::Tensor& returns, const at::Tensor& actions,
                                      int64_t seed, double first, double second, int64_t max_episode_steps,
                                      int64_t autoreset_mode) {
  return step(state, steps, prev_done, episode, returns, actions, seed, first, second, max_episode_steps,
              autoreset_mode, 0.0);
}

}  // namespace rltorch
