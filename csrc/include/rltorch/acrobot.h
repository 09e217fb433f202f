// Acrobot-v1 as gymnasium 1.x computes it (gymnasium/envs/classic_control/
// acrobot.py, book dynamics, no torque noise; docs/classic_control.md), for
// csrc/cpu and csrc/cuda: one RK4 step of length dt = 0.2 through _dsdt,
// angles wrapped into [-pi, pi], velocities bounded, termination when the tip
// rises above the bar. float64 state; reset draws float32 values (gymnasium
// casts them with astype(np.float32)).
#pragma once

#include <cmath>
#include <cstdint>

#include "rltorch/env_common.h"

namespace rltorch::classic {

struct Acrobot {
  static constexpr const char* kStepOp = "acrobot_step_";
  static constexpr const char* kResetOp = "acrobot_reset_";
  static constexpr const char* kClass = "AcrobotVecEnv";
  static constexpr const char* kGymId = "Acrobot-v1";
  static constexpr const char* kStateRows = "theta1, theta2, dtheta1, dtheta2";
  static constexpr int kStateDim = 4;  // theta1, theta2, dtheta1, dtheta2
  static constexpr int kObsDim = 6;    // cos/sin theta1, cos/sin theta2, dtheta1, dtheta2
  static constexpr bool kContinuous = false;
  static constexpr int64_t kNumActions = 3;  // torque -1, 0, +1

  static constexpr double kDt = 0.2;
  static constexpr double kM1 = 1.0, kM2 = 1.0;    // link masses
  static constexpr double kL1 = 1.0;               // length of link 1
  static constexpr double kLc1 = 0.5, kLc2 = 0.5;  // centres of mass
  static constexpr double kI1 = 1.0, kI2 = 1.0;    // moments of inertia
  static constexpr double kG = 9.8;
  static constexpr double kMaxVel1 = 4 * env::kPi;
  static constexpr double kMaxVel2 = 9 * env::kPi;
  static constexpr double kHalfPi = env::kPi / 2.0;
  static constexpr double kTwoPi = env::kPi - (-env::kPi);  // wrap's `diff = M - m`

  // The products of constants in _dsdt, multiplied left to right as Python does.
  static constexpr double kLc1Sq = kLc1 * kLc1;  // lc1**2 (exact)
  static constexpr double kLc2Sq = kLc2 * kLc2;
  static constexpr double kL1Sq = kL1 * kL1;
  static constexpr double kTwoL1Lc2 = 2 * kL1 * kLc2;
  static constexpr double kL1Lc2 = kL1 * kLc2;
  static constexpr double kPhi2Coef = kM2 * kLc2 * kG;
  static constexpr double kNegM2L1Lc2 = -kM2 * kL1 * kLc2;
  static constexpr double kTwoM2L1Lc2 = 2 * kM2 * kL1 * kLc2;
  static constexpr double kPhi1Coef = (kM1 * kLc1 + kM2 * kL1) * kG;
  static constexpr double kM2L1Lc2 = kM2 * kL1 * kLc2;

  // Beyond this many turns, wrap's loop is replaced by one reduction (only
  // states loaded with set_state or drawn from enormous reset bounds get
  // there; gymnasium would loop |x| / 2 pi times, forever for inf).
  static constexpr int kWrapTurns = 32;

  struct Params {};
  // Each component ~ uniform(low, high), rounded to float32.
  struct Reset {
    double low, high;
  };

  RLTORCH_ENV_INLINE static void reset(double* s, uint64_t key, const Reset& r) {
    for (int k = 0; k < kStateDim; ++k) s[k] = env::round_f32(env::reset_value(key, k, r.low, r.high));
  }

  // _dsdt(s_augmented) for the book dynamics: (dtheta1, dtheta2, ddtheta1, ddtheta2).
  template <typename T>
  RLTORCH_ENV_INLINE static void dsdt(const T* y, T a, T* dy) {
    const T theta1 = y[0], theta2 = y[1], dtheta1 = y[2], dtheta2 = y[3];
    T sin2, cos2;
    env::sincos_lane(theta2, sin2, cos2);
    const T d1 = ((kM1 * kLc1Sq + kM2 * ((kL1Sq + kLc2Sq) + kTwoL1Lc2 * cos2)) + kI1) + kI2;
    const T d2 = kM2 * (kLc2Sq + kL1Lc2 * cos2) + kI2;
    const T phi2 = kPhi2Coef * env::cos_lane((theta1 + theta2) - kHalfPi);
    const T phi1 = ((kNegM2L1Lc2 * (dtheta2 * dtheta2) * sin2 - kTwoM2L1Lc2 * dtheta2 * dtheta1 * sin2) +
                    kPhi1Coef * env::cos_lane(theta1 - kHalfPi)) +
                   phi2;
    const T ddtheta2 = (((a + (d2 / d1) * phi1) - kM2L1Lc2 * (dtheta1 * dtheta1) * sin2) - phi2) /
                       ((kM2 * kLc2Sq + kI2) - (d2 * d2) / d1);
    const T ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    dy[0] = dtheta1;
    dy[1] = dtheta2;
    dy[2] = ddtheta1;
    dy[3] = ddtheta2;
  }

  // wrap(x, -pi, pi): `while x > pi: x -= 2 pi`, then `while x < -pi: x += 2 pi`.
  RLTORCH_ENV_INLINE static double wrap(double x) {
    int turns = 0;
    while (x > env::kPi && turns < kWrapTurns) {
      x = x - kTwoPi;
      ++turns;
    }
    while (x < -env::kPi && turns < kWrapTurns) {
      x = x + kTwoPi;
      ++turns;
    }
    if (turns == kWrapTurns) x = x - kTwoPi * env::rint_lane(x / kTwoPi);
    return x;
  }

#ifdef RLTORCH_ENV_VECTOR
  // The loop's first turns without branches; lanes still outside [-pi, pi]
  // (a state from set_state) run the scalar wrap from their start value.
  RLTORCH_ENV_INLINE static env::vdouble wrap(env::vdouble x) {
    env::vdouble w = x > env::kPi ? x - kTwoPi : x;
    w = w > env::kPi ? w - kTwoPi : w;
    w = w < -env::kPi ? w + kTwoPi : w;
    w = w < -env::kPi ? w + kTwoPi : w;
    // A lane still outside [-pi, pi] needed a third turn down or up.
    const env::vlong more = (w > env::kPi) | (w < -env::kPi);
    if (more[0] | more[1] | more[2] | more[3]) {
      for (int lane = 0; lane < env::kLanes; ++lane) {
        if (more[lane]) w[lane] = wrap(x[lane]);
      }
    }
    return w;
  }
#endif

  template <typename T>
  RLTORCH_ENV_INLINE static auto step(T* s, T action, T /*fresh*/, const Params&, T& reward) {
    const T torque = action - 1.0;  // AVAIL_TORQUE[a] = [-1.0, 0.0, +1][a]
    // rk4(_dsdt, [s, torque], [0, dt]): the torque's derivative is 0, so it stays put.
    constexpr double dt = kDt, dt2 = dt / 2.0;
    T k1[4], k2[4], k3[4], k4[4], y[4];
    dsdt(s, torque, k1);
    for (int i = 0; i < 4; ++i) y[i] = s[i] + dt2 * k1[i];
    dsdt(y, torque, k2);
    for (int i = 0; i < 4; ++i) y[i] = s[i] + dt2 * k2[i];
    dsdt(y, torque, k3);
    for (int i = 0; i < 4; ++i) y[i] = s[i] + dt * k3[i];
    dsdt(y, torque, k4);
    T ns[4];
    for (int i = 0; i < 4; ++i) ns[i] = s[i] + dt / 6.0 * (((k1[i] + 2 * k2[i]) + 2 * k3[i]) + k4[i]);
    s[0] = wrap(ns[0]);
    s[1] = wrap(ns[1]);
    s[2] = env::clip_lane(ns[2], -kMaxVel1, kMaxVel1);  // bound: min(max(x, m), M)
    s[3] = env::clip_lane(ns[3], -kMaxVel2, kMaxVel2);
    const auto terminated = (-env::cos_lane(s[0]) - env::cos_lane(s[1] + s[0])) > 1.0;
    reward = env::pick(terminated, T{}, T{} - 1.0);
    return terminated;
  }

  template <typename T>
  RLTORCH_ENV_INLINE static void observe(const T* s, T* obs) {
    env::sincos_lane(s[0], obs[1], obs[0]);
    env::sincos_lane(s[1], obs[3], obs[2]);
    obs[4] = s[2];
    obs[5] = s[3];
  }
};

}  // namespace rltorch::classic
