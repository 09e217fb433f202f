// Random operations on the header-only sum tree, checked against a plain
// array model. Built without libtorch and with AddressSanitizer +
// UndefinedBehaviorSanitizer (target test_sumtree_asan), so an out-of-bounds
// read or write anywhere in include/rltorch/sumtree.h fails the run, which
// libtorch's own allocator would otherwise hide.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "rltorch/sumtree.h"

namespace {

using rltorch::sumtree::Layout;

template <int K>
void fuzz_one(int64_t capacity, std::mt19937_64& rng) {
  const Layout layout = rltorch::sumtree::make_layout(capacity, K);
  // Exactly `storage` elements each: one past the end is a heap overflow.
  std::vector<double> sums(layout.storage, 0.0);
  std::vector<double> mins(layout.storage, rltorch::sumtree::infinity<double>());
  std::vector<double> model(capacity, 0.0);
  std::uniform_int_distribution<int64_t> leaf_dist(0, capacity - 1);
  std::uniform_int_distribution<int> value_dist(0, 9);
  for (int round = 0; round < 20; ++round) {
    const int updates = 1 + static_cast<int>(rng() % (2 * capacity + 1));
    for (int u = 0; u < updates; ++u) {
      const int64_t leaf = leaf_dist(rng);
      const double p = value_dist(rng) < 3 ? 0.0 : static_cast<double>(value_dist(rng));
      rltorch::sumtree::set_leaf<K, double>(sums.data(), mins.data(), layout, leaf, p);
      model[leaf] = p;
    }
    // Totals and minima: integer priorities, so exact.
    double total = 0.0, min_nonzero = rltorch::sumtree::infinity<double>();
    int64_t last_nonzero = -1;
    for (int64_t i = 0; i < capacity; ++i) {
      total += model[i];
      if (model[i] > 0) {
        min_nonzero = std::fmin(min_nonzero, model[i]);
        last_nonzero = i;
      }
    }
    EXPECT(sums[0] == total);
    EXPECT(mins[0] == min_nonzero);
    // Prefix search at every integer mass and in between, plus the edges.
    double running = 0.0;
    for (int64_t i = 0; i < capacity; ++i) {
      for (double m = running; m < running + model[i]; m += 0.5) {
        const int64_t got = rltorch::sumtree::find_prefix<K, double>(sums.data(), layout, m);
        if (got != i) {
          std::fprintf(stderr, "K=%d capacity=%lld mass=%g: got %lld want %lld\n", K,
                       static_cast<long long>(capacity), m, static_cast<long long>(got),
                       static_cast<long long>(i));
        }
        EXPECT(got == i);
      }
      running += model[i];
    }
    if (last_nonzero >= 0) {
      const int64_t at_total = rltorch::sumtree::find_prefix<K, double>(sums.data(), layout, total);
      EXPECT(at_total == last_nonzero);
      const int64_t at_nan = rltorch::sumtree::find_prefix<K, double>(sums.data(), layout, NAN);
      EXPECT(at_nan >= 0 && at_nan < capacity && model[at_nan] > 0);
    }
  }
  // Zero everything: the root returns to exactly 0.
  for (int64_t i = 0; i < capacity; ++i) rltorch::sumtree::set_leaf<K, double>(sums.data(), mins.data(), layout, i, 0.0);
  EXPECT(sums[0] == 0.0);
  EXPECT(std::isinf(mins[0]));
}

}  // namespace

int main() {
  std::mt19937_64 rng(12345);
  const int64_t capacities[] = {1, 2, 3, 5, 8, 9, 15, 16, 17, 63, 64, 65, 100, 257, 1000};
  for (const int64_t capacity : capacities) {
    fuzz_one<2>(capacity, rng);
    fuzz_one<4>(capacity, rng);
    fuzz_one<8>(capacity, rng);
    fuzz_one<16>(capacity, rng);
  }
  return rltorch_test::report("test_sumtree_asan");
}
