// Pendulum-v1 as gymnasium 1.x computes it (gymnasium/envs/classic_control/
// pendulum.py; docs/classic_control.md), for csrc/cpu and csrc/cuda. The state
// (theta, theta_dot) is float64; the torque is the float32 action, and NumPy 2
// computes the terms that involve only it and Python numbers in float32
// (round_f32 marks them). theta is never wrapped: it is normalised only
// inside the cost.
#pragma once

#include <cmath>
#include <cstdint>

#include "rltorch/env_common.h"

namespace rltorch::classic {

// x mod m for m > 0 by binary long division: each conditional subtraction of
// m * 2^k from a remainder in [m * 2^k, m * 2^(k+1)) is exact (Sterbenz), so
// the result is fmod's, which is exact too, with no loop and no libm call for
// |x| < m * 2^kFmodSteps (about 100 rad for 2 pi: a pendulum spinning at full
// speed for 250 steps). Larger |x| (and inf) take fmod itself.
constexpr int kFmodSteps = 4;
constexpr double kFmodRange = static_cast<double>(1 << kFmodSteps);

RLTORCH_ENV_INLINE double fmod_positive(double x, double m) {
  double r = ::fabs(x);
  if (!(r < m * kFmodRange)) return ::fmod(x, m);  // also NaN (fmod keeps it NaN)
  for (int k = kFmodSteps - 1; k >= 0; --k) {
    const double d = m * static_cast<double>(1 << k);
    r = r >= d ? r - d : r;
  }
  return ::copysign(r, x);
}

#ifdef RLTORCH_ENV_VECTOR
RLTORCH_ENV_INLINE env::vdouble fmod_positive(env::vdouble x, double m) {
  env::vdouble r = env::abs_lane(x);
  const env::vlong wide = ~(r < m * kFmodRange);
  for (int k = kFmodSteps - 1; k >= 0; --k) {
    const double d = m * static_cast<double>(1 << k);
    r = r >= d ? r - d : r;
  }
  r = env::copysign_lane(r, x);
  if (wide[0] | wide[1] | wide[2] | wide[3]) {  // rare: |x| beyond the long division's range
    for (int lane = 0; lane < env::kLanes; ++lane) {
      if (wide[lane]) r[lane] = ::fmod(x[lane], m);
    }
  }
  return r;
}
#endif

struct Pendulum {
  static constexpr const char* kStepOp = "pendulum_step_";
  static constexpr const char* kResetOp = "pendulum_reset_";
  static constexpr const char* kClass = "PendulumVecEnv";
  static constexpr const char* kGymId = "Pendulum-v1";
  static constexpr const char* kStateRows = "theta, theta_dot";
  static constexpr int kStateDim = 2;  // theta, theta_dot
  static constexpr int kObsDim = 3;    // cos(theta), sin(theta), theta_dot
  static constexpr bool kContinuous = true;
  static constexpr int64_t kNumActions = 0;

  static constexpr double kMaxSpeed = 8;
  static constexpr double kMaxTorque = 2.0;
  static constexpr double kDt = 0.05;
  static constexpr double kMass = 1.0;
  static constexpr double kLength = 1.0;
  static constexpr double kTwoPi = 2 * env::kPi;

  struct Params {
    double g;
  };
  // theta ~ uniform(-x_init, x_init), theta_dot ~ uniform(-y_init, y_init).
  struct Reset {
    double x_init, y_init;
  };

  RLTORCH_ENV_INLINE static void reset(double* s, uint64_t key, const Reset& r) {
    s[0] = env::reset_value(key, 0, -r.x_init, r.x_init);
    s[1] = env::reset_value(key, 1, -r.y_init, r.y_init);
  }

  // angle_normalize: ((x + pi) % (2 pi)) - pi with NumPy's float remainder
  // (fmod, moved into [0, 2 pi) when negative, +0.0 for a zero remainder).
  template <typename T>
  RLTORCH_ENV_INLINE static T angle_normalize(T x) {
    const T shifted = x + env::kPi;
    T mod = fmod_positive(shifted, kTwoPi);
    mod = pick(mod < 0.0, mod + kTwoPi, mod);
    mod = pick(mod == 0.0, T{}, mod);
    return mod - env::kPi;
  }

  template <typename T>
  RLTORCH_ENV_INLINE static auto step(T* s, T action, T /*fresh*/, const Params& p, T& reward) {
    const T th = s[0], thdot = s[1];
    const T u = clip_lane(action, -kMaxTorque, kMaxTorque);  // float32 clip of a float32: exact
    const T an = angle_normalize(th);
    // u**2 and 0.001 * (u**2) are float32 (NumPy scalars); the sum is float64.
    const T torque_cost = round_f32(round_f32(0.001) * round_f32(u * u));
    const T costs = ((an * an) + 0.1 * (thdot * thdot)) + torque_cost;
    // 3 * g / (2 * l) * sin(th) + 3.0 / (m * l**2) * u, the second term float32.
    const double gravity_coef = 3 * p.g / (2 * kLength);
    const T new_thdot_raw = thdot + (gravity_coef * env::sin_lane(th) + round_f32((3.0 / (kMass * kLength * kLength)) * u)) * kDt;
    const T new_thdot = clip_lane(new_thdot_raw, -kMaxSpeed, kMaxSpeed);
    s[0] = th + new_thdot * kDt;
    s[1] = new_thdot;
    reward = -costs;
    return T{} != T{};  // never terminates (a false mask of the lane type)
  }

  template <typename T>
  RLTORCH_ENV_INLINE static void observe(const T* s, T* obs) {
    T sn, cs;
    env::sincos_lane(s[0], sn, cs);
    obs[0] = cs;
    obs[1] = sn;
    obs[2] = s[1];
  }
};

}  // namespace rltorch::classic
