// The episode bookkeeping of the classic-control envs (MountainCar,
// MountainCarContinuous, Pendulum, Acrobot), shared by csrc/cpu and csrc/cuda:
// resets from the counter-based generator, step counts, truncation, rewards,
// the return of the running episode, and the three autoreset modes. Each env
// is a struct (rltorch/{mountain_car,pendulum,acrobot}.h) with
//   kStateDim, kObsDim, kContinuous, kNumActions, names (kStepOp, kResetOp, kClass, kGymId, kStateRows),
//   Params (step arguments), Reset (reset bounds),
//   reset(double* s, key, Reset), step<T>(T* s, T action, T fresh, Params, T& reward) -> terminated mask,
//   observe<T>(const T* s, T* obs).
// A kernel runs an env's step on its state, stores the new state, writes its
// observation row, then calls settle() for that env: the CPU steps four envs
// per instruction first and settles them afterwards, CUDA does both in one
// thread, and both call the same functions, so they agree bit for bit.
#pragma once

#include <cstdint>

#include "rltorch/env_common.h"

namespace rltorch::classic {

// The env: state float64 [kStateDim, N] (structure of arrays), steps taken in
// the running episode, done on the previous call, episodes begun (with `seed`
// it keys the reset generator) and the running episode's return so far.
struct EnvTensors {
  double* state;
  int32_t* steps;
  bool* prev_done;
  int64_t* episode;
  double* returns;
  int64_t n;
  uint64_t seed;
};

// A step's outputs (csrc/ops.cpp); final_obs is null unless autoreset is same-step.
struct StepOutputs {
  float* obs;  // [N, kObsDim]
  float* reward;
  bool* terminated;
  bool* truncated;
  bool* done;
  float* episode_return;
  int32_t* episode_length;
  float* final_obs;  // [N, kObsDim]
  int32_t max_steps;
};

template <class Env>
RLTORCH_ENV_INLINE void load_state(const EnvTensors& e, int64_t i, double* s) {
  for (int k = 0; k < Env::kStateDim; ++k) s[k] = e.state[k * e.n + i];
}

template <class Env>
RLTORCH_ENV_INLINE void store_state(const EnvTensors& e, int64_t i, const double* s) {
  for (int k = 0; k < Env::kStateDim; ++k) e.state[k * e.n + i] = s[k];
}

// The float32 observation of a state (NumPy's astype: round to nearest).
template <class Env>
RLTORCH_ENV_INLINE void observe_row(const double* s, float* row) {
  double o[Env::kObsDim];
  Env::observe(s, o);
  for (int k = 0; k < Env::kObsDim; ++k) row[k] = static_cast<float>(o[k]);
}

// "The state as reset left it": MountainCarContinuous steps such a state in
// float64 (see mountain_car.h); the other envs ignore it.
RLTORCH_ENV_INLINE double fresh_of(int32_t steps) { return steps == 0 ? 1.0 : 0.0; }

// Starts a new episode in env i: a fresh state from the generator keyed by
// its episode counter (which then advances), no steps, nothing pending, a
// zero return, and its observation written to `row`.
template <class Env>
RLTORCH_ENV_INLINE void reset_env(const EnvTensors& e, int64_t i, const typename Env::Reset& bounds, float* row) {
  const int64_t ep = e.episode[i];
  e.episode[i] = ep + 1;
  double s[Env::kStateDim];
  Env::reset(s, env::episode_key(e.seed, static_cast<uint64_t>(i), static_cast<uint64_t>(ep)), bounds);
  store_state<Env>(e, i, s);
  e.steps[i] = 0;
  e.prev_done[i] = false;
  e.returns[i] = 0.0;
  observe_row<Env>(s, row);
}

// One env of a reset call: envs in `mask` (all when null) start a new episode,
// the others only report their current observation.
template <class Env>
RLTORCH_ENV_INLINE void reset_or_observe(const EnvTensors& e, const bool* mask, int64_t i,
                                         const typename Env::Reset& bounds, float* obs) {
  float* row = obs + Env::kObsDim * i;
  if (mask == nullptr || mask[i]) {
    reset_env<Env>(e, i, bounds, row);
  } else {
    double s[Env::kStateDim];
    load_state<Env>(e, i, s);
    observe_row<Env>(s, row);
  }
}

// Outputs of an env that did not step in this call (the next-step reset, or a
// CUDA call rejected on the device): reward 0, no flags, no finished episode.
RLTORCH_ENV_INLINE void clear_outputs(const StepOutputs& o, int64_t i) {
  o.reward[i] = 0.0f;
  o.terminated[i] = o.truncated[i] = o.done[i] = false;
  o.episode_return[i] = 0.0f;
  o.episode_length[i] = 0;
}

// Env i after its physics (new state stored, obs row written): termination as
// the env decided, the step count and truncation at max_steps (both flags may
// hold, as with gymnasium's TimeLimit), the reward, the return and length of
// an episode that ends here (0 elsewhere), and the autoreset:
//  - next step: an env done on the previous call starts over instead (the
//    action is ignored, reward 0, both flags False; gymnasium's rule);
//  - same step: a finished episode's last obs goes to final_obs (0 elsewhere)
//    and the env restarts in this call;
//  - disabled: the caller has rejected any call stepping an ended env.
template <class Env>
RLTORCH_ENV_INLINE void settle(const EnvTensors& e, const StepOutputs& o, int64_t i, int64_t mode,
                               const typename Env::Reset& bounds, bool terminated, double reward) {
  float* row = o.obs + Env::kObsDim * i;
  if (mode == env::kNextStep && e.prev_done[i]) {
    reset_env<Env>(e, i, bounds, row);
    clear_outputs(o, i);
    return;
  }
  const int32_t steps = e.steps[i] + 1;
  const bool truncated = steps >= o.max_steps;
  const bool done = terminated | truncated;
  const double episode_return = e.returns[i] + reward;
  e.steps[i] = steps;
  e.returns[i] = episode_return;
  o.reward[i] = static_cast<float>(reward);
  o.terminated[i] = terminated;
  o.truncated[i] = truncated;
  o.done[i] = done;
  o.episode_return[i] = done ? static_cast<float>(episode_return) : 0.0f;
  o.episode_length[i] = done ? steps : 0;
  if (mode == env::kSameStep) {
    float* final_row = o.final_obs + Env::kObsDim * i;
    for (int k = 0; k < Env::kObsDim; ++k) final_row[k] = done ? row[k] : 0.0f;
    e.prev_done[i] = false;
    if (done) reset_env<Env>(e, i, bounds, row);
  } else {
    e.prev_done[i] = done;
  }
}

// One env's whole step, for a kernel that handles one env at a time (CUDA, and
// the CPU's scalar tail): the same operations the CPU's vector loop performs.
template <class Env>
RLTORCH_ENV_INLINE void step_env(const EnvTensors& e, const StepOutputs& o, int64_t i, int64_t mode,
                                 const typename Env::Params& params, const typename Env::Reset& bounds,
                                 double action) {
  if (mode == env::kNextStep && e.prev_done[i]) {
    settle<Env>(e, o, i, mode, bounds, false, 0.0);  // resets; the physics would be discarded
    return;
  }
  double s[Env::kStateDim];
  load_state<Env>(e, i, s);
  double reward;
  const bool terminated = Env::step(s, action, fresh_of(e.steps[i]), params, reward);
  store_state<Env>(e, i, s);
  observe_row<Env>(s, o.obs + Env::kObsDim * i);
  settle<Env>(e, o, i, mode, bounds, terminated, reward);
}

}  // namespace rltorch::classic
