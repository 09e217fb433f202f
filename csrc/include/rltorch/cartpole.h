// CartPole-v1 math shared by csrc/cpu and csrc/cuda: gymnasium's constants and
// equations in gymnasium's order of floating-point operations (see
// shared/FACTS.md section 1). The reset generator, sin/cos and the autoreset
// codes are every env's (rltorch/env_common.h).
#pragma once

#include <cmath>
#include <cstdint>

#include "rltorch/env_common.h"
#include "rltorch/macros.h"

#define RLTORCH_CP_INLINE RLTORCH_ENV_INLINE

namespace rltorch::cartpole {

using env::AutoresetMode;
using env::cos_poly;
using env::episode_key;
using env::kDisabled;
using env::kGoldenGamma;
using env::kNextStep;
using env::kPi;
using env::kPolyLimit;
using env::kReductionLimit;
using env::kSameStep;
using env::mix64;
using env::reset_value;
using env::sin_poly;
using env::sincos_any;
using env::unit_double;

// Constants written as gymnasium computes them, so every derived value is the
// same double (0.1 + 1.0 == 1.1 and 0.1 * 0.5 == 0.05 exactly in float64).
constexpr double kGravity = 9.8;
constexpr double kMassCart = 1.0;
constexpr double kMassPole = 0.1;
constexpr double kTotalMass = kMassPole + kMassCart;
constexpr double kLength = 0.5;  // half the pole's length
constexpr double kPoleMassLength = kMassPole * kLength;
constexpr double kForceMag = 10.0;
constexpr double kTau = 0.02;
constexpr double kThetaThreshold = 12 * 2 * kPi / 360;  // (24 * pi) / 360, as in Python
constexpr double kXThreshold = 2.4;
constexpr double kFourThirds = 4.0 / 3.0;

constexpr double kDefaultResetLow = -0.05;
constexpr double kDefaultResetHigh = 0.05;

// Action 1 pushes right, 0 left (gymnasium: sign(action - 0.5) * force_mag).
template <typename T>
RLTORCH_CP_INLINE T force_of(bool push_right) {
  return push_right ? T(kForceMag) : T(-kForceMag);
}

// One Euler step of the dynamics given sin/cos of the current angle.
// The association of every product and quotient mirrors gymnasium's NumPy
// expressions (e.g. polemass_length * theta_dot**2 * sin is (pml * thd^2) * s),
// so with the same sin/cos and no FMA contraction the result is bit-identical.
// T is double, or a GCC/Clang vector of doubles (the CPU kernel steps several
// envs per instruction); the double constants broadcast in either case.
template <typename T>
RLTORCH_CP_INLINE void physics(T& x, T& x_dot, T& theta, T& theta_dot, T force, T sin_t, T cos_t) {
  const T temp = (force + kPoleMassLength * (theta_dot * theta_dot) * sin_t) / kTotalMass;
  const T theta_acc =
      (kGravity * sin_t - cos_t * temp) / (kLength * (kFourThirds - kMassPole * (cos_t * cos_t) / kTotalMass));
  const T x_acc = temp - kPoleMassLength * theta_acc * cos_t / kTotalMass;
  // Positions move with the old velocities (explicit Euler, gymnasium's default).
  x = x + kTau * x_dot;
  x_dot = x_dot + kTau * x_acc;
  theta = theta + kTau * theta_dot;
  theta_dot = theta_dot + kTau * theta_acc;
}

// Tested on the new state with strict inequalities; a NaN state never
// terminates (NumPy's comparisons say the same). For vector T the result is a
// lane mask (-1 / 0).
template <typename T>
RLTORCH_CP_INLINE auto terminated(T x, T theta) {
  return (x < -kXThreshold) | (x > kXThreshold) | (theta < -kThetaThreshold) | (theta > kThetaThreshold);
}

// Draws env `env`'s initial state (x, x_dot, theta, theta_dot) into a [4, N]
// structure-of-arrays state.
RLTORCH_CP_INLINE void draw_initial_state(double* state, int64_t n, int64_t env, uint64_t seed,
                                                   int64_t episode, double low, double high) {
  const uint64_t key = episode_key(seed, static_cast<uint64_t>(env), static_cast<uint64_t>(episode));
  for (int k = 0; k < 4; ++k) state[k * n + env] = reset_value(key, k, low, high);
}

}  // namespace rltorch::cartpole

namespace rltorch::cartpole {

// Writes one env's float32 observation row (NumPy's astype: round to nearest).
RLTORCH_CP_INLINE void write_obs(float* obs_row, double x, double x_dot, double theta,
                                          double theta_dot) {
  obs_row[0] = static_cast<float>(x);
  obs_row[1] = static_cast<float>(x_dot);
  obs_row[2] = static_cast<float>(theta);
  obs_row[3] = static_cast<float>(theta_dot);
}

// The bookkeeping of one env after its physics step: termination on the new
// state, the step count, truncation at max_steps (the 500th step for v1; both
// flags may hold), gymnasium's reward (1 every step incl. the terminating one;
// sutton_barto: -float(terminated), so -0.0 on ordinary steps), and the return
// and length of an episode that ends here (0 elsewhere).
struct StepOutcome {
  bool terminated, truncated, done;
  int32_t steps;
  float reward, episode_return;
  int32_t episode_length;
};

RLTORCH_CP_INLINE StepOutcome step_outcome(double x, double theta, int32_t steps_before,
                                           int32_t max_steps, bool sutton_barto) {
  StepOutcome out;
  out.terminated = terminated(x, theta);
  out.steps = steps_before + 1;
  out.truncated = out.steps >= max_steps;
  out.done = out.terminated | out.truncated;
  out.reward = sutton_barto ? -static_cast<float>(out.terminated) : 1.0f;
  out.episode_length = out.done ? out.steps : 0;
  out.episode_return =
      out.done ? (sutton_barto ? (out.terminated ? -1.0f : 0.0f) : static_cast<float>(out.steps)) : 0.0f;
  return out;
}

// Starts a new episode in env `env`: fresh state from the generator (keyed by
// its episode counter, which then advances), zero steps, nothing pending, and
// the new observation written to obs[env].
RLTORCH_CP_INLINE void reset_env(double* state, int32_t* steps, bool* prev_done, int64_t* episode,
                                          float* obs, int64_t n, int64_t env, uint64_t seed, double low,
                                          double high) {
  const int64_t ep = episode[env];
  episode[env] = ep + 1;
  draw_initial_state(state, n, env, seed, ep, low, high);
  steps[env] = 0;
  prev_done[env] = false;
  write_obs(obs + 4 * env, state[env], state[n + env], state[2 * n + env], state[3 * n + env]);
}

// One env of a reset call: envs in `mask` (all when null) start a new episode,
// the others only report their current observation.
RLTORCH_CP_INLINE void reset_or_observe(double* state, int32_t* steps, bool* prev_done, int64_t* episode,
                                        const bool* mask, float* obs, int64_t n, int64_t env, uint64_t seed,
                                        double low, double high) {
  if (mask == nullptr || mask[env]) {
    reset_env(state, steps, prev_done, episode, obs, n, env, seed, low, high);
  } else {
    write_obs(obs + 4 * env, state[env], state[n + env], state[2 * n + env], state[3 * n + env]);
  }
}

}  // namespace rltorch::cartpole
