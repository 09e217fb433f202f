// The Bellman-target math (header) and the registered CPU ops, from C++.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <vector>

#include "check.h"
#include "rltorch/returns.h"

namespace {

void test_header_math() {
  const float q[4] = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT(rltorch::row_max<float>(q, 4) == 2.0f);
  EXPECT(rltorch::row_argmax<float>(q, 4) == 1);  // first maximal index
  const float with_nan[3] = {1.0f, NAN, 5.0f};
  EXPECT(std::isnan(rltorch::row_max<float>(with_nan, 3)));
  EXPECT(rltorch::row_argmax<float>(with_nan, 3) == 1);
  EXPECT(rltorch::td_target<double>(1.0, false, 0.5, 4.0) == 3.0);
  EXPECT(rltorch::td_target<double>(1.0, true, 0.5, 4.0) == 1.0);
  // A terminated step neither bootstraps nor continues the chain.
  EXPECT(rltorch::gae_cell<double>(1.0, 0.5, 10.0, true, true, 0.9, 0.9 * 0.8, 7.0) == 0.5);
  // Truncated: bootstraps, but the chain stops.
  EXPECT_NEAR(rltorch::gae_cell<double>(1.0, 0.5, 10.0, false, true, 0.9, 0.72, 7.0), 9.5, 1e-12);
  EXPECT_NEAR(rltorch::gae_cell<double>(1.0, 0.5, 10.0, false, false, 0.9, 0.72, 7.0), 9.5 + 0.72 * 7.0, 1e-12);
}

void test_nstep_cell() {
  // One env, T = 5: rewards 1..5, terminated at t = 2, truncated at t = 4.
  const float reward[5] = {1, 2, 3, 4, 5};
  const bool terminated[5] = {false, false, true, false, false};
  const bool truncated[5] = {false, false, false, false, true};
  double ret, disc;
  int64_t last;
  rltorch::nstep_cell<double>(reward, terminated, truncated, 0, 5, 1, 3, 0.5, &ret, &disc, &last);
  EXPECT_NEAR(ret, 1 + 0.5 * 2 + 0.25 * 3, 1e-12);
  EXPECT(disc == 0.0);  // terminated inside the window
  EXPECT(last == 2);
  rltorch::nstep_cell<double>(reward, terminated, truncated, 3, 5, 1, 3, 0.5, &ret, &disc, &last);
  EXPECT_NEAR(ret, 4 + 0.5 * 5, 1e-12);
  EXPECT(disc == 0.25);  // truncated: bootstraps from the final observation
  EXPECT(last == 4);
}

void test_registered_ops() {
  auto td = c10::Dispatcher::singleton().findSchemaOrThrow("rltorch::td_target", "").typed<at::Tensor(
      const at::Tensor&, const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
      const std::optional<at::Tensor>&, const std::optional<at::Tensor>&, double)>();
  const at::Tensor reward = at::tensor({1.0f, 1.0f});
  const at::Tensor terminated = at::tensor({0, 1}).to(at::kBool);
  const at::Tensor next_q = at::tensor({0.5f, 2.0f, 3.0f, 4.0f}).reshape({2, 2});
  const at::Tensor y = td.call(reward, terminated, next_q, std::nullopt, std::nullopt, std::nullopt, 0.5);
  EXPECT(y[0].item<float>() == 2.0f);
  EXPECT(y[1].item<float>() == 1.0f);
  // Bad input is an exception, never a crash.
  EXPECT_THROWS(td.call(reward, terminated, next_q, std::nullopt, std::nullopt, std::nullopt, 1.5));
  EXPECT_THROWS(td.call(reward, at::tensor({1}).to(at::kBool), next_q, std::nullopt, std::nullopt, std::nullopt, 0.5));
  EXPECT_THROWS(td.call(reward, terminated, next_q, std::nullopt, at::tensor({0, 2}), std::nullopt, 0.5));

  auto gae = c10::Dispatcher::singleton().findSchemaOrThrow("rltorch::gae", "").typed<std::tuple<at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, double, double)>();
  const at::Tensor r = at::ones({3, 2}, at::kDouble);
  const at::Tensor zeros = at::zeros({3, 2}, at::kDouble);
  const at::Tensor no = at::zeros({3, 2}, at::kBool);
  auto [adv, ret] = gae.call(r, zeros, zeros, no, no, 0.5, 1.0);
  // Values are zero: the advantage is the discounted sum of the remaining rewards.
  EXPECT_NEAR(adv[0][0].item<double>(), 1.0 + 0.5 + 0.25, 1e-12);
  EXPECT_NEAR(adv[2][1].item<double>(), 1.0, 1e-12);
  EXPECT(at::equal(adv, ret));
}

}  // namespace

int main() {
  try {
    test_header_math();
    test_nstep_cell();
    test_registered_ops();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    return 1;
  }
  return rltorch_test::report("test_returns");
}
