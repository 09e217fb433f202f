// CartPole math (header) and the registered CPU ops, from C++.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <tuple>

#include "check.h"
#include "rltorch/cartpole.h"

namespace cp = rltorch::cartpole;

namespace {

int64_t ulp_distance(double a, double b) {
  int64_t ia, ib;
  std::memcpy(&ia, &a, sizeof(a));
  std::memcpy(&ib, &b, sizeof(b));
  if (ia < 0) ia = INT64_MIN - ia;  // map the bit patterns onto a monotone integer line
  if (ib < 0) ib = INT64_MIN - ib;
  return ia > ib ? ia - ib : ib - ia;
}

void test_sin_cos_polynomial_accuracy() {
  // Over the polynomial's whole range, within 1 ulp of libm (itself < 1 ulp off).
  int64_t worst_sin = 0, worst_cos = 0;
  const int samples = 200001;
  for (int i = 0; i < samples; ++i) {
    const double x = -cp::kPolyLimit + 2 * cp::kPolyLimit * i / (samples - 1);
    worst_sin = std::max(worst_sin, ulp_distance(cp::sin_poly(x), std::sin(x)));
    worst_cos = std::max(worst_cos, ulp_distance(cp::cos_poly(x), std::cos(x)));
  }
  std::printf("sin/cos polynomial: max %lld / %lld ulp from libm\n", static_cast<long long>(worst_sin),
              static_cast<long long>(worst_cos));
  EXPECT(worst_sin <= 1);
  EXPECT(worst_cos <= 1);
  // Inside the range sincos_any is the polynomial itself (the CPU kernel's
  // vector loop calls the polynomial directly and must agree bit for bit).
  for (double x : {0.0, -0.0, 0.3, -0.2, cp::kPolyLimit, -cp::kPolyLimit}) {
    double s, c;
    cp::sincos_any(x, &s, &c);
    EXPECT(s == cp::sin_poly(x) && c == cp::cos_poly(x));
  }
  double s, c;
  cp::sincos_any(NAN, &s, &c);
  EXPECT(std::isnan(s) && std::isnan(c));
  cp::sincos_any(INFINITY, &s, &c);
  EXPECT(std::isnan(s) && std::isnan(c));
}

// Error in ulps of the double nearest the reference (long double: 64 or 113
// significant bits, 2^-11 ulp of a double or better).
double ulp_error(double got, long double ref) {
  const double nearest = static_cast<double>(ref);
  const double ulp = std::nextafter(std::fabs(nearest), INFINITY) - std::fabs(nearest);
  return static_cast<double>(std::fabs(static_cast<long double>(got) - ref) / ulp);
}

void test_sin_cos_wide_angles() {
  // Argument reduction + polynomial: every angle up to the reduction's exact
  // range, quadrant boundaries and tiny angles included, within 1 ulp of the
  // exact value (measured: 0.76 ulp against a 200-bit reference).
  double worst_sin = 0, worst_cos = 0;
  auto check = [&](double x) {
    double s, c;
    cp::sincos_any(x, &s, &c);
    worst_sin = std::max(worst_sin, ulp_error(s, std::sin(static_cast<long double>(x))));
    worst_cos = std::max(worst_cos, ulp_error(c, std::cos(static_cast<long double>(x))));
  };
  uint64_t key = 12345;
  for (int i = 0; i < 300000; ++i) {
    key = cp::mix64(key + cp::kGoldenGamma);
    const double u = 2.0 * (static_cast<double>(key >> 11) * (1.0 / 9007199254740992.0)) - 1.0;
    check(u * (i % 3 == 0 ? 10.0 : i % 3 == 1 ? 1000.0 : cp::kReductionLimit));
  }
  for (int k = -4000; k <= 4000; ++k) {
    const double x = k * (M_PI / 2);
    check(x);
    check(std::nextafter(x, INFINITY));
    check(std::nextafter(x, -INFINITY));
  }
  for (double x = 1e-300; x < cp::kReductionLimit; x *= 1.01) {
    check(x);
    check(-x);
  }
  std::printf("sin/cos with argument reduction: max %.3f / %.3f ulp from the exact value\n", worst_sin, worst_cos);
  EXPECT(worst_sin < 1.0);
  EXPECT(worst_cos < 1.0);
}

void test_physics_matches_gymnasium() {
  // gymnasium 1.4: gym.make("CartPole-v1").reset(seed=42) leaves this float64 state;
  // step(1) gives the next one (values printed by Python's repr).
  double x = 0.027395604855596334, x_dot = -0.006112156024794771, th = 0.03585979199113824,
         th_dot = 0.019736802905936393;
  auto step = [&](bool right) {
    double s, c;
    cp::sincos_any(th, &s, &c);
    cp::physics(x, x_dot, th, th_dot, cp::force_of<double>(right), s, c);
  };
  step(true);
  EXPECT_NEAR(x, 0.02727336173510044, 1e-15);
  EXPECT_NEAR(x_dot, 0.18847766618842926, 1e-15);
  EXPECT_NEAR(th, 0.03625452804925697, 1e-15);
  EXPECT_NEAR(th_dot, -0.26141976017845603, 1e-15);
  // FACTS.md: always pushing right from that reset ends the episode on step 10.
  int ended = 0;
  for (int t = 2; t <= 20 && ended == 0; ++t) {
    step(true);
    if (cp::terminated(x, th)) ended = t;
  }
  EXPECT(ended == 10);
  EXPECT_NEAR(static_cast<float>(th_dot), -2.9908078, 1e-6);
  EXPECT_NEAR(static_cast<float>(x), 0.20159529, 1e-6);
}

void test_termination_is_strict() {
  EXPECT(!cp::terminated(2.4, 0.0));
  EXPECT(!cp::terminated(-2.4, 0.0));
  EXPECT(cp::terminated(std::nextafter(2.4, 3.0), 0.0));
  EXPECT(!cp::terminated(0.0, cp::kThetaThreshold));
  EXPECT(cp::terminated(0.0, std::nextafter(-cp::kThetaThreshold, -1.0)));
  EXPECT(cp::kThetaThreshold == 12 * 2 * M_PI / 360);
  EXPECT(!cp::terminated(NAN, NAN));  // NumPy's comparisons say the same
}

void test_reset_generator() {
  // Deterministic, in [0, 1), and every key part matters.
  const uint64_t k = cp::episode_key(42, 7, 3);
  EXPECT(k == cp::episode_key(42, 7, 3));
  EXPECT(k != cp::episode_key(43, 7, 3));
  EXPECT(k != cp::episode_key(42, 8, 3));
  EXPECT(k != cp::episode_key(42, 7, 4));
  double sum = 0, lo = 1, hi = 0;
  const int draws = 100000;
  for (int i = 0; i < draws; ++i) {
    const double u = cp::unit_double(cp::episode_key(1, i, 0), i % 4);
    sum += u;
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  EXPECT(lo >= 0.0 && hi < 1.0);
  EXPECT_NEAR(sum / draws, 0.5, 0.01);
  const double v = cp::reset_value(k, 0, -0.05, 0.05);
  EXPECT(v >= -0.05 && v < 0.05);
  EXPECT(cp::reset_value(k, 2, 0.3, 0.3) == 0.3);
}

using StepFn = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                          at::Tensor>(at::Tensor&, at::Tensor&, at::Tensor&, at::Tensor&, const at::Tensor&, int64_t,
                                      double, double, int64_t, int64_t, bool);
using ResetFn = at::Tensor(at::Tensor&, at::Tensor&, at::Tensor&, at::Tensor&, const std::optional<at::Tensor>&,
                           int64_t, double, double);

void test_registered_ops() {
  auto step = c10::Dispatcher::singleton().findSchemaOrThrow("rltorch::cartpole_step_", "").typed<StepFn>();
  auto reset = c10::Dispatcher::singleton().findSchemaOrThrow("rltorch::cartpole_reset_", "").typed<ResetFn>();
  const int64_t n = 37;
  at::Tensor state = at::zeros({4, n}, at::kDouble), steps = at::zeros({n}, at::kInt);
  at::Tensor prev_done = at::zeros({n}, at::kBool), episode = at::zeros({n}, at::kLong);
  const at::Tensor obs0 = reset.call(state, steps, prev_done, episode, std::nullopt, 5, -0.05, 0.05);
  EXPECT(obs0.sizes() == at::IntArrayRef({n, 4}));
  EXPECT(state.abs().max().item<double>() < 0.05);
  EXPECT(episode.eq(1).all().item<bool>());

  // Always push right: every env terminates within 30 steps; rewards 1 until then.
  const at::Tensor right = at::ones({n}, at::kLong);
  int64_t terminations = 0;
  for (int t = 0; t < 30; ++t) {
    auto [obs, reward, terminated, truncated, done, ep_return, ep_length, final_obs] =
        step.call(state, steps, prev_done, episode, right, 5, -0.05, 0.05, 500, 0, false);
    EXPECT(obs.sizes() == at::IntArrayRef({n, 4}) && final_obs.size(0) == 0);
    EXPECT(at::equal(done, terminated.logical_or(truncated)));
    terminations += terminated.sum().item<int64_t>();
  }
  EXPECT(terminations >= n);
  EXPECT(episode.gt(1).all().item<bool>());  // autoreset drew new episodes

  // Bad calls throw (never crash): action 2, float actions, disabled autoreset on an ended env.
  at::Tensor bad = at::zeros({n}, at::kLong);
  bad[3] = 2;
  EXPECT_THROWS(step.call(state, steps, prev_done, episode, bad, 5, -0.05, 0.05, 500, 0, false));
  EXPECT_THROWS(step.call(state, steps, prev_done, episode, at::zeros({n}), 5, -0.05, 0.05, 500, 0, false));
  EXPECT_THROWS(reset.call(state, steps, prev_done, episode, std::nullopt, 5, 0.1, -0.1));
  reset.call(state, steps, prev_done, episode, std::nullopt, 5, -0.05, 0.05);
  prev_done[0] = true;
  EXPECT_THROWS(step.call(state, steps, prev_done, episode, right, 5, -0.05, 0.05, 500, 2, false));
}

}  // namespace

int main() {
  try {
    test_sin_cos_polynomial_accuracy();
    test_sin_cos_wide_angles();
    test_physics_matches_gymnasium();
    test_termination_is_strict();
    test_reset_generator();
    test_registered_ops();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    return 1;
  }
  return rltorch_test::report("test_cartpole");
}
