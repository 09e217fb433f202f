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

// descend_group (a batch of queries together, four per vector where the
// host has AVX2) finds what find_prefix finds for every query, the rare
// fall-through lanes (masses at or above the total) included.
template <int K>
void check_descent(const double* sums, const Layout& layout, double total, std::mt19937_64& rng) {
  const int64_t n = 1 + static_cast<int64_t>(rng() % 70);
  std::vector<double> u(n);
  std::vector<int64_t> node(n, 0);
  std::uniform_real_distribution<double> mass(0.0, total);
  for (int64_t q = 0; q < n; ++q) {
    const int kind = static_cast<int>(rng() % 10);
    u[q] = kind == 0 ? total : kind == 1 ? total * 2.0 : kind == 2 ? std::nextafter(total, 0.0) : mass(rng);
  }
  std::vector<double> asked(u);
  rltorch::sumtree::descend_group<K>(sums, layout, u.data(), node.data(), n);
  for (int64_t q = 0; q < n; ++q) {
    const int64_t want = rltorch::sumtree::find_prefix<K, double>(sums, layout, asked[q]);
    EXPECT(node[q] == want);
  }
}

template <int K>
void fuzz_one(int64_t capacity, std::mt19937_64& rng) {
  const Layout layout = rltorch::sumtree::make_layout(capacity, K);
  // Exactly their sizes (the sums, and the mins of the internal levels): one
  // past the end is a heap overflow.
  std::vector<double> sums(layout.storage, 0.0);
  std::vector<double> mins(layout.leaf_offset(), rltorch::sumtree::infinity<double>());
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
    EXPECT(rltorch::sumtree::root_min(sums.data(), mins.data(), layout) == min_nonzero);
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
    if (last_nonzero >= 0) check_descent<K>(sums.data(), layout, total, rng);
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
  EXPECT(std::isinf(rltorch::sumtree::root_min(sums.data(), mins.data(), layout)));
}

// A batch written by set_leaves (ordered, level by level) equals the same
// entries written one by one: duplicates keep the last value, and every node
// is bit for bit what set_leaf leaves. Also split as the CPU kernel splits a
// large batch between threads: leaves and subtrees per range of nodes of one
// level, then the levels above.
template <int K>
void fuzz_batch(int64_t capacity, std::mt19937_64& rng) {
  const Layout layout = rltorch::sumtree::make_layout(capacity, K);
  std::vector<double> sums(layout.storage, 0.0), mins(layout.leaf_offset(), rltorch::sumtree::infinity<double>());
  std::vector<double> one_sums(sums), one_mins(mins), split_sums(sums), split_mins(mins);
  rltorch::sumtree::SweepScratch scratch;
  std::uniform_int_distribution<int64_t> leaf_dist(0, capacity - 1);
  for (int round = 0; round < 8; ++round) {
    const int64_t n = 1 + static_cast<int64_t>(rng() % (3 * capacity + 40));
    std::vector<int64_t> leaves(n);
    std::vector<double> values(n);
    for (int64_t i = 0; i < n; ++i) {
      leaves[i] = leaf_dist(rng);
      values[i] = rng() % 4 == 0 ? 0.0 : static_cast<double>(rng() % 1000) / 7.0;
      rltorch::sumtree::set_leaf<K, double>(one_sums.data(), one_mins.data(), layout, leaves[i], values[i]);
    }
    rltorch::sumtree::set_leaves<K, double>(sums.data(), mins.data(), layout, leaves.data(), values.data(), n, scratch);
    EXPECT(sums == one_sums && mins == one_mins);
    if (sums[0] > 0.0) check_descent<K>(sums.data(), layout, sums[0], rng);  // fractional sums: rounding at the top
    if (layout.levels >= 3) {
      const int split = 1;
      const int shift = rltorch::sumtree::log2_fanout<K>() * (layout.levels - 1 - split);
      const int64_t* order = rltorch::sumtree::sweep_order(layout, leaves.data(), n, scratch);
      std::vector<int64_t> sorted_order(order, order + n);
      if (shift >= rltorch::sumtree::group_shift(layout, n)) {
        for (int64_t begin = 0; begin < n;) {
          int64_t end = begin;
          while (end < n && (leaves[sorted_order[end]] >> shift) == (leaves[sorted_order[begin]] >> shift)) ++end;
          rltorch::sumtree::SweepScratch part;
          rltorch::sumtree::set_leaves_range<K, double>(split_sums.data(), split_mins.data(), layout, leaves.data(),
                                                        values.data(), sorted_order.data(), begin, end, split, part);
          begin = end;
        }
        std::vector<int64_t> above;
        for (int64_t j = 0; j < n; ++j) {
          const int64_t parent = leaves[sorted_order[j]] >> (shift + rltorch::sumtree::log2_fanout<K>());
          if (above.empty() || above.back() != parent) above.push_back(parent);
        }
        rltorch::sumtree::recompute_levels<K, double>(split_sums.data(), split_mins.data(), layout, above,
                                                      static_cast<int64_t>(above.size()), split - 1, 0,
                                                      scratch.parents);
        EXPECT(split_sums == one_sums && split_mins == one_mins);
      } else {  // the sort's groups are coarser than the split level: the kernel does not split
        split_sums = one_sums;
        split_mins = one_mins;
      }
    }
  }
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
    fuzz_batch<2>(capacity, rng);
    fuzz_batch<4>(capacity, rng);
    fuzz_batch<8>(capacity, rng);
    fuzz_batch<16>(capacity, rng);
  }
  return rltorch_test::report("test_sumtree_asan");
}
