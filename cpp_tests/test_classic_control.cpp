// Classic-control math (headers) and the registered CPU ops, from C++.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <tuple>

#include "check.h"
#include "rltorch/acrobot.h"
#include "rltorch/classic_control.h"
#include "rltorch/mountain_car.h"
#include "rltorch/pendulum.h"

namespace env = rltorch::env;
namespace cc = rltorch::classic;

namespace {

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0 || (a != a && b != b); }

double random_angle(uint64_t& key, double scale) {
  key = env::mix64(key + env::kGoldenGamma);
  return (2.0 * (static_cast<double>(key >> 11) * (1.0 / 9007199254740992.0)) - 1.0) * scale;
}

void test_branch_free_sincos_is_sincos_any() {
  // The classic envs' lanes take every angle through the reduction; CartPole's
  // sincos_any skips it for |x| <= pi/4. Same values for every nonzero angle.
  uint64_t key = 7;
  int differ = 0;
  for (int i = 0; i < 300000; ++i) {
    const double x = random_angle(key, i % 3 == 0 ? 0.8 : i % 3 == 1 ? 100.0 : env::kReductionLimit);
    double s, c, sl, cl;
    env::sincos_any(x, &s, &c);
    env::sincos_lane(x, sl, cl);
    differ += !same_bits(s, sl) || !same_bits(c, cl);
  }
  EXPECT(differ == 0);
  double s, c;
  env::sincos_lane<double>(NAN, s, c);
  EXPECT(std::isnan(s) && std::isnan(c));
  env::sincos_lane<double>(-INFINITY, s, c);
  EXPECT(std::isnan(s) && std::isnan(c));
}

void test_rint_and_fmod_lanes_are_exact() {
  uint64_t key = 11;
  for (int i = 0; i < 200000; ++i) {
    const double x = random_angle(key, i % 2 ? 1e3 : 1e17);
    EXPECT(same_bits(env::rint_lane(x), std::rint(x)));
    EXPECT(same_bits(env::floor_lane(x), std::floor(x)));
    const double m = 2 * env::kPi;
    EXPECT(same_bits(cc::fmod_positive(x, m), std::fmod(x, m)));
  }
  EXPECT(same_bits(env::rint_lane(-0.3), -0.0) && env::rint_lane(2.5) == 2.0 && env::rint_lane(3.5) == 4.0);
  EXPECT(std::isnan(cc::fmod_positive(INFINITY, 1.0)));
}

#ifdef RLTORCH_ENV_VECTOR
void test_vector_lanes_equal_the_scalar_code() {
  // Four envs per instruction on the CPU, one per thread on CUDA: the same bits.
  uint64_t key = 5;
  for (int i = 0; i < 20000; ++i) {
    env::vdouble x;
    for (int lane = 0; lane < env::kLanes; ++lane) x[lane] = random_angle(key, lane == 3 ? 1e4 : 10.0);
    env::vdouble s, c;
    env::sincos_lane(x, s, c);
    const env::vdouble wrapped = cc::Acrobot::wrap(x), mod = cc::fmod_positive(x, 2 * env::kPi);
    for (int lane = 0; lane < env::kLanes; ++lane) {
      double sl, cl;
      env::sincos_lane(x[lane], sl, cl);
      EXPECT(same_bits(s[lane], sl) && same_bits(c[lane], cl));
      EXPECT(same_bits(wrapped[lane], cc::Acrobot::wrap(x[lane])));
      EXPECT(same_bits(mod[lane], cc::fmod_positive(x[lane], 2 * env::kPi)));
    }
  }
}
#endif

void test_acrobot_wrap_is_gymnasiums_loop() {
  const double two_pi = env::kPi - (-env::kPi);
  for (double x : {0.0, 3.0, 3.2, -3.2, 10.0, -25.0, 150.0}) {
    double y = x;
    while (y > env::kPi) y -= two_pi;
    while (y < -env::kPi) y += two_pi;
    EXPECT(same_bits(cc::Acrobot::wrap(x), y));
  }
  EXPECT(std::fabs(cc::Acrobot::wrap(1e9)) <= env::kPi + 1e-6);  // capped loop, then one reduction
  EXPECT(std::isnan(cc::Acrobot::wrap(INFINITY)));               // gymnasium's loop never ends
}

template <class Env>
void step_from(const double* start, double action, double fresh, const typename Env::Params& params, double* after,
               double* reward) {
  double s[Env::kStateDim];
  for (int k = 0; k < Env::kStateDim; ++k) s[k] = start[k];
  Env::step(s, action, fresh, params, *reward);
  for (int k = 0; k < Env::kStateDim; ++k) after[k] = s[k];
}

void test_golden_steps_match_gymnasium() {
  // gymnasium 1.4: gym.make(ID).reset(seed=42) then one step (docs/classic_control.md).
  double after[4], reward;
  const double car[2] = {-0.44520879028880733, 0.0};
  step_from<cc::MountainCar>(car, 2.0, 1.0, {0.0}, after, &reward);
  EXPECT_NEAR(after[0], -4.4479131095562391e-01, 1e-15);
  EXPECT_NEAR(after[1], 4.1747933318344926e-04, 1e-15);
  EXPECT(reward == -1.0);
  step_from<cc::MountainCarContinuous>(car, static_cast<double>(0.5f), 1.0, {0.0}, after, &reward);
  EXPECT(after[0] == static_cast<double>(-4.4504130e-01f) && after[1] == static_cast<double>(1.6747933e-04f));
  EXPECT(reward == -0.025);
  const double pendulum[2] = {1.721316619099806, -0.12224312049589536};
  step_from<cc::Pendulum>(pendulum, 1.0, 1.0, {10.0}, after, &reward);
  EXPECT_NEAR(after[0], 1.7597804577973981, 1e-15);
  EXPECT_NEAR(after[1], 0.7692767739518424, 1e-15);
  EXPECT_NEAR(reward, -2.965425241287541, 1e-15);
  const double acrobot[4] = {static_cast<double>(0.05479121f), static_cast<double>(-0.012224312f),
                             static_cast<double>(0.07171959f), static_cast<double>(0.039473604f)};
  step_from<cc::Acrobot>(acrobot, 2.0, 1.0, {}, after, &reward);
  EXPECT_NEAR(after[0], 0.04845445617775009, 1e-14);
  EXPECT_NEAR(after[3], 0.43717728508877896, 1e-14);
  EXPECT(reward == -1.0);
}

using StepFn = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                          at::Tensor>(at::Tensor&, at::Tensor&, at::Tensor&, at::Tensor&, at::Tensor&,
                                      const at::Tensor&, int64_t, double, double, int64_t, int64_t, double);
using ResetFn = at::Tensor(at::Tensor&, at::Tensor&, at::Tensor&, at::Tensor&, at::Tensor&,
                           const std::optional<at::Tensor>&, int64_t, double, double);

void test_registered_ops() {
  auto step = c10::Dispatcher::singleton().findSchemaOrThrow("rltorch::pendulum_step_", "").typed<StepFn>();
  auto reset = c10::Dispatcher::singleton().findSchemaOrThrow("rltorch::pendulum_reset_", "").typed<ResetFn>();
  const int64_t n = 37;
  at::Tensor state = at::zeros({2, n}, at::kDouble), steps = at::zeros({n}, at::kInt);
  at::Tensor prev_done = at::zeros({n}, at::kBool), episode = at::zeros({n}, at::kLong);
  at::Tensor returns = at::zeros({n}, at::kDouble);
  const at::Tensor obs0 = reset.call(state, steps, prev_done, episode, returns, std::nullopt, 5, env::kPi, 1.0);
  EXPECT(obs0.sizes() == at::IntArrayRef({n, 3}));
  EXPECT(state[1].abs().max().item<double>() <= 1.0 && episode.eq(1).all().item<bool>());

  // 200 steps of zero torque: every env is truncated on the last one, with the summed return.
  const at::Tensor torque = at::zeros({n, 1}, at::kFloat);
  for (int t = 1; t <= 200; ++t) {
    auto [obs, reward, terminated, truncated, done, ep_return, ep_length, final_obs] =
        step.call(state, steps, prev_done, episode, returns, torque, 5, env::kPi, 1.0, 200, 1, 10.0);
    EXPECT(obs.sizes() == at::IntArrayRef({n, 3}) && final_obs.sizes() == at::IntArrayRef({n, 3}));
    EXPECT(!terminated.any().item<bool>());
    EXPECT(truncated.all().item<bool>() == (t == 200));
    if (t == 200) EXPECT(ep_length.eq(200).all().item<bool>() && ep_return.lt(0).all().item<bool>());
  }
  EXPECT(episode.eq(2).all().item<bool>());  // same-step autoreset drew new episodes

  // Bad calls throw (never crash): a NaN torque, integer actions, bad bounds, negative x_init.
  at::Tensor bad = torque.clone();
  bad[3][0] = NAN;
  const at::Tensor before = state.clone();
  EXPECT_THROWS(step.call(state, steps, prev_done, episode, returns, bad, 5, env::kPi, 1.0, 200, 0, 10.0));
  EXPECT(at::equal(state, before));
  EXPECT_THROWS(step.call(state, steps, prev_done, episode, returns, at::zeros({n}, at::kLong), 5, env::kPi, 1.0,
                          200, 0, 10.0));
  EXPECT_THROWS(step.call(state, steps, prev_done, episode, returns, torque, 5, env::kPi, 1.0, 200, 0, NAN));
  EXPECT_THROWS(reset.call(state, steps, prev_done, episode, returns, std::nullopt, 5, -1.0, 1.0));
}

}  // namespace

int main() {
  try {
    test_branch_free_sincos_is_sincos_any();
    test_rint_and_fmod_lanes_are_exact();
#ifdef RLTORCH_ENV_VECTOR
    test_vector_lanes_equal_the_scalar_code();
#endif
    test_acrobot_wrap_is_gymnasiums_loop();
    test_golden_steps_match_gymnasium();
    test_registered_ops();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    return 1;
  }
  return rltorch_test::report("test_classic_control");
}
