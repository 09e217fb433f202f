// MountainCar-v0 and MountainCarContinuous-v0 as gymnasium 1.x computes them
// (gymnasium/envs/classic_control/{mountain_car,continuous_mountain_car}.py;
// docs/classic_control.md has the facts read there), for csrc/cpu and
// csrc/cuda. The step functions are templates on the lane type (double or a
// CPU vector of doubles, rltorch/env_common.h); the driver that runs them is
// rltorch/classic_control.h.
#pragma once

#include <cstdint>

#include "rltorch/env_common.h"

namespace rltorch::classic {

using env::clip_lane;
using env::cos_lane;
using env::pick;
using env::round_f32;

// MountainCar-v0: float64 throughout (the state is a NumPy float64 array and
// every operand a float64 or a Python number).
struct MountainCar {
  static constexpr const char* kStepOp = "mountain_car_step_";
  static constexpr const char* kResetOp = "mountain_car_reset_";
  static constexpr const char* kClass = "MountainCarVecEnv";
  static constexpr const char* kGymId = "MountainCar-v0";
  static constexpr const char* kStateRows = "position, velocity";
  static constexpr int kStateDim = 2;  // position, velocity
  static constexpr int kObsDim = 2;
  static constexpr bool kContinuous = false;
  static constexpr int64_t kNumActions = 3;  // 0 push left, 1 no push, 2 push right

  static constexpr double kMinPosition = -1.2;
  static constexpr double kMaxPosition = 0.6;
  static constexpr double kMaxSpeed = 0.07;
  static constexpr double kGoalPosition = 0.5;
  static constexpr double kForce = 0.001;
  static constexpr double kGravity = 0.0025;

  struct Params {
    double goal_velocity;
  };
  // position ~ uniform(low, high), velocity = 0.
  struct Reset {
    double low, high;
  };

  RLTORCH_ENV_INLINE static void reset(double* s, uint64_t key, const Reset& r) {
    s[0] = env::reset_value(key, 0, r.low, r.high);
    s[1] = 0.0;
  }

  // `action` holds 0.0, 1.0 or 2.0; `fresh` (1.0 for a state as reset left
  // it) does not matter here. Returns the termination mask.
  template <typename T>
  RLTORCH_ENV_INLINE static auto step(T* s, T action, T /*fresh*/, const Params& p, T& reward) {
    T position = s[0], velocity = s[1];
    // velocity += (action - 1) * force + cos(3 * position) * (-gravity)
    velocity = velocity + ((action - 1.0) * kForce + cos_lane(3.0 * position) * (-kGravity));
    velocity = clip_lane(velocity, -kMaxSpeed, kMaxSpeed);
    position = position + velocity;
    position = clip_lane(position, kMinPosition, kMaxPosition);
    // At the left wall a car moving left stops (gymnasium writes the int 0).
    velocity = pick((position == kMinPosition) & (velocity < 0.0), T{}, velocity);
    s[0] = position;
    s[1] = velocity;
    reward = T{} - 1.0;
    return (position >= kGoalPosition) & (velocity >= p.goal_velocity);
  }

  template <typename T>
  RLTORCH_ENV_INLINE static void observe(const T* s, T* obs) {
    obs[0] = s[0];
    obs[1] = s[1];
  }
};

// MountainCarContinuous-v0. Its arithmetic mixes float32 and float64 the way
// NumPy 2's promotion rules (NEP 50) decide: the action is float32, a Python
// float operand is rounded to float32 when the other one is a NumPy float32,
// and the state is stored as float32 after every step, while reset leaves a
// float64 state. So the first step of an episode (`fresh` = 1.0) computes in
// float64 where later steps compute in float32; round_f32 marks every place
// NumPy rounds to float32.
struct MountainCarContinuous {
  static constexpr const char* kStepOp = "mountain_car_continuous_step_";
  static constexpr const char* kResetOp = "mountain_car_continuous_reset_";
  static constexpr const char* kClass = "MountainCarContinuousVecEnv";
  static constexpr const char* kGymId = "MountainCarContinuous-v0";
  static constexpr const char* kStateRows = "position, velocity";
  static constexpr int kStateDim = 2;  // position, velocity
  static constexpr int kObsDim = 2;
  static constexpr bool kContinuous = true;
  static constexpr int64_t kNumActions = 0;

  static constexpr double kMinAction = -1.0;
  static constexpr double kMaxAction = 1.0;
  static constexpr double kMinPosition = -1.2;
  static constexpr double kMaxPosition = 0.6;
  static constexpr double kMaxSpeed = 0.07;
  static constexpr double kGoalPosition = 0.45;
  static constexpr double kPower = 0.0015;
  static constexpr double kGravity = 0.0025;

  using Params = MountainCar::Params;
  using Reset = MountainCar::Reset;

  RLTORCH_ENV_INLINE static void reset(double* s, uint64_t key, const Reset& r) { MountainCar::reset(s, key, r); }

  template <typename T>
  RLTORCH_ENV_INLINE static auto step(T* s, T action, T fresh, const Params& p, T& reward) {
    const T zero{};
    const auto is_fresh = fresh != 0.0;
    const T position = s[0], velocity = s[1];
    // force = min(max(action, -1.0), 1.0): the float32 action, or the Python
    // float -1.0 / 1.0 when it is clipped.
    const auto clipped = (action < kMinAction) | (action > kMaxAction);
    const T force = clip_lane(action, kMinAction, kMaxAction);
    const T push = pick(clipped, force * kPower, round_f32(force * round_f32(kPower)));
    const T slope = kGravity * cos_lane(pick(is_fresh, 3.0 * position, round_f32(3.0 * position)));
    // push - slope: float32 when push is float32 (slope rounded first).
    const T dv = pick(clipped, push - slope, round_f32(push - round_f32(slope)));
    T v = pick(is_fresh, velocity + dv, round_f32(velocity + round_f32(dv)));
    // `if velocity > max_speed: velocity = max_speed` (a Python float); a
    // float32 velocity is compared with the float32 of the bound.
    const T speed_limit = pick(is_fresh, zero + kMaxSpeed, zero + round_f32(kMaxSpeed));
    const auto v_high = v > speed_limit;
    v = pick(v_high, zero + kMaxSpeed, v);
    const auto v_low = v < -speed_limit;
    v = pick(v_low, zero - kMaxSpeed, v);
    T pos = pick(is_fresh, position + v, round_f32(position + round_f32(v)));
    const T pos_max = pick(is_fresh, zero + kMaxPosition, zero + round_f32(kMaxPosition));
    const T pos_min = pick(is_fresh, zero + kMinPosition, zero + round_f32(kMinPosition));
    pos = pick(pos > pos_max, zero + kMaxPosition, pos);
    const auto p_low = pos < pos_min;
    // `position == min_position`: a clamped position is the Python float itself.
    const auto at_wall = p_low | (pos == pos_min);
    pos = pick(p_low, zero + kMinPosition, pos);
    const auto stopped = at_wall & (v < 0.0);
    v = pick(stopped, zero, v);
    // velocity >= goal_velocity in float32 only while the velocity is still a
    // float32 (not a clamped Python float, not the int 0, not a fresh float64).
    const T v_is_f32 = pick(is_fresh | v_high | v_low | stopped, zero, zero + 1.0);
    const T goal_v = pick(v_is_f32 != 0.0, zero + round_f32(p.goal_velocity), zero + p.goal_velocity);
    const T goal_x = pick(is_fresh, zero + kGoalPosition, zero + round_f32(kGoalPosition));
    const auto terminated = (pos >= goal_x) & (v >= goal_v);
    // reward = (100.0 if terminated else 0) - pow(action, 2) * 0.1, with the
    // unclipped action (a float32, so its square is exact in float64).
    reward = pick(terminated, zero + 100.0, zero) - (action * action) * 0.1;
    s[0] = round_f32(pos);
    s[1] = round_f32(v);
    return terminated;
  }

  template <typename T>
  RLTORCH_ENV_INLINE static void observe(const T* s, T* obs) {
    obs[0] = s[0];
    obs[1] = s[1];
  }
};

}  // namespace rltorch::classic
