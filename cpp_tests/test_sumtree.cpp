// The sum-tree ops through the dispatcher, from C++: layout, update, find,
// sample, and bad input leaving the tree unchanged.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <limits>

#include "check.h"
#include "sumtree_common.h"
#include "rltorch/sumtree.h"

namespace {

using UpdateFn = void(const at::Tensor&, int64_t, int64_t, const at::Tensor&, const at::Tensor&,
                      const std::optional<at::Tensor>&, double, double, const std::optional<at::Tensor>&);

// One tree ([size]) or a batch of them ([trees, size]): sums, then the internal mins.
at::Tensor empty_tree(int64_t capacity, int fanout, int64_t trees = 0) {
  const auto layout = rltorch::sumtree::make_layout(capacity, fanout);
  at::Tensor tree = trees > 0 ? at::zeros({trees, layout.size()}, at::kDouble) : at::zeros({layout.size()}, at::kDouble);
  tree.narrow(-1, layout.storage, layout.leaf_offset()).fill_(std::numeric_limits<double>::infinity());
  return tree;
}

void test_layout() {
  const auto one = rltorch::sumtree::make_layout(1, 8);
  EXPECT(one.levels == 1 && one.storage == 8 && one.leaf_offset() == 0 && one.size() == 8);
  const auto nine = rltorch::sumtree::make_layout(9, 8);  // widths 1, 2, 9: mins for the two internal levels only
  EXPECT(nine.storage == 32 && nine.leaf_offset() == 16 && nine.size() == 48);
  const auto l = rltorch::sumtree::make_layout(1 << 20, 8);
  EXPECT(l.levels == 8);
  EXPECT(l.width[0] == 1 && l.width[l.levels - 1] == (1 << 20));
  for (int i = 0; i < l.levels; ++i) EXPECT(l.offset[i] % 8 == 0);  // cache-line aligned groups
  const auto odd = rltorch::sumtree::make_layout(9, 2);  // widths 1, 2, 3, 5, 9
  EXPECT(odd.levels == 5 && odd.width[2] == 3 && odd.width[3] == 5);
}

void test_ops() {
  auto& dispatcher = c10::Dispatcher::singleton();
  auto update = dispatcher.findSchemaOrThrow("rltorch::sumtree_update_", "").typed<UpdateFn>();
  auto find = dispatcher.findSchemaOrThrow("rltorch::sumtree_find", "")
                  .typed<at::Tensor(const at::Tensor&, int64_t, int64_t, const at::Tensor&)>();
  auto sample = dispatcher.findSchemaOrThrow("rltorch::sumtree_sample", "")
                    .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, int64_t, int64_t, int64_t,
                                                              double, std::optional<at::Generator>)>();
  const int64_t capacity = 11;
  for (int fanout : {2, 4, 8, 16}) {
    at::Tensor tree = empty_tree(capacity, fanout);
    // Leaf 4 is named twice: the last value (5) wins.
    update.call(tree, capacity, fanout, at::tensor({0, 4, 7, 4, 10}, at::kLong), at::tensor({1.0, 9.0, 2.0, 5.0, 0.0}),
                std::nullopt, 1.0, 0.0, std::nullopt);
    const auto layout = rltorch::sumtree::make_layout(capacity, fanout);
    EXPECT(tree[0].item<double>() == 8.0);
    EXPECT(tree[layout.storage].item<double>() == 1.0);  // the root of the min tree
    const at::Tensor idx = find.call(tree, capacity, fanout, at::tensor({0.0, 0.99, 1.0, 5.99, 6.0, 7.99, 8.0, 100.0}));
    const std::vector<int64_t> want = {0, 0, 4, 4, 7, 7, 7, 7};
    for (size_t i = 0; i < want.size(); ++i) EXPECT(idx[i].item<int64_t>() == want[i]);
    auto [s_idx, s_w] = sample.call(tree, capacity, fanout, 64, 1.0, std::nullopt);
    EXPECT(s_idx.size(0) == 64 && s_w.scalar_type() == at::kFloat);
    EXPECT(at::isin(s_idx, at::tensor({0, 4, 7}, at::kLong)).all().item<bool>());
    // Bad input throws and leaves the tree as it was.
    const at::Tensor before = tree.clone();
    EXPECT_THROWS(update.call(tree, capacity, fanout, at::tensor({1, 11}, at::kLong), at::tensor({1.0, 1.0}),
                              std::nullopt, 1.0, 0.0, std::nullopt));
    EXPECT_THROWS(update.call(tree, capacity, fanout, at::tensor({1, 2}, at::kLong), at::tensor({1.0, NAN}),
                              std::nullopt, 1.0, 0.0, std::nullopt));
    EXPECT_THROWS(update.call(tree, capacity, fanout, at::tensor({1, 2}, at::kLong), at::tensor({-1.0, 1.0}),
                              std::nullopt, 1.0, 0.0, std::nullopt));
    EXPECT_THROWS(update.call(tree, capacity, fanout, at::tensor({1, 2}, at::kInt), at::tensor({1.0, 1.0}),
                              std::nullopt, 1.0, 0.0, std::nullopt));
    EXPECT_THROWS(find.call(tree, capacity + 100, fanout, at::tensor({0.0})));
    EXPECT(at::equal(tree, before));
    // Three trees in one call: row t of the entries goes to tree t.
    at::Tensor batch = empty_tree(capacity, fanout, 3);
    update.call(batch, capacity, fanout, at::tensor({0, 4, 7, 4, 10, 10}, at::kLong).view({3, 2}),
                at::tensor({1.0, 9.0, 2.0, 5.0, 0.0, 3.0}).view({3, 2}), std::nullopt, 1.0, 0.0, std::nullopt);
    EXPECT(batch[0][0].item<double>() == 10.0 && batch[1][0].item<double>() == 7.0 && batch[2][0].item<double>() == 3.0);
    EXPECT(batch[2][layout.storage].item<double>() == 3.0);
    auto [b_idx, b_w] = sample.call(batch, capacity, fanout, 5, 1.0, std::nullopt);
    EXPECT(b_idx.size(0) == 3 && b_idx.size(1) == 5 && (b_idx[2] == 10).all().item<bool>());
    EXPECT_THROWS(update.call(batch, capacity, fanout, at::tensor({0, 1}, at::kLong), at::tensor({1.0, 1.0}),
                              std::nullopt, 1.0, 0.0, std::nullopt));  // no row per tree
  }
}

// A row-packed buffer's later fields share their row's line with the first
// field, so the gathers prefetch each row once; separate or unaligned columns
// keep their own prefetches.
void test_shared_row_lines() {
  const at::Tensor rows = at::zeros({100, 64}, at::kByte);  // one 64-byte row per transition
  const at::Tensor first = rows.narrow(1, 0, 16).view(at::kFloat);  // [100, 4] float32 at offset 0
  const at::Tensor second = rows.narrow(1, 16, 8).view(at::kLong).squeeze(1);  // int64 at offset 16
  const at::Tensor last = rows.narrow(1, 56, 8).view(at::kLong).squeeze(1);  // the row's last 8 bytes
  const at::Tensor separate = at::zeros({100}, at::kLong);
  const auto described = rltorch::checked_columns("test", {first, second, last, separate}, rows, "rows", 0, 100);
  EXPECT(!described[0].in_earlier_line);
  EXPECT(described[1].in_earlier_line && described[2].in_earlier_line);
  EXPECT(!described[3].in_earlier_line);
  // Rows of 48 bytes straddle lines: every column prefetches its own.
  const at::Tensor narrow_rows = at::zeros({100, 48}, at::kByte);
  const auto straddling = rltorch::checked_columns(
      "test", {narrow_rows.narrow(1, 0, 8).view(at::kLong), narrow_rows.narrow(1, 8, 8).view(at::kLong)},
      narrow_rows, "rows", 0, 100);
  EXPECT(!straddling[0].in_earlier_line && !straddling[1].in_earlier_line);
}

}  // namespace

int main() {
  try {
    test_layout();
    test_ops();
    test_shared_row_lines();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    return 1;
  }
  return rltorch_test::report("test_sumtree");
}
