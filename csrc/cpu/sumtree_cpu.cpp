#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../sumtree_common.h"
#include "parallel.h"
#include "rltorch/sumtree.h"

namespace rltorch {
namespace {

// Queries descend in groups (sumtree::descend_group): up to kGroup cache
// misses overlap instead of one dependent miss per level per query.
constexpr int64_t kGroup = 32;
// One descent at 2^20 leaves, measured serial on the 2-core dev VM: 19-25 ns
// with the AVX2 descent (30-45 without); csrc/cpu/parallel.h decides from it.
constexpr double kSearchNs = 25.0;
// One leaf of a batched update at 2^20 leaves (the sweep of sumtree.h).
constexpr double kUpdateNs = 25.0;
// Rows ahead that the gathers prefetch: each sampled row is a cache miss.
constexpr int64_t kGatherLookahead = 16;

// Descends the queries [begin, end) of a (possibly batched) call; query i
// searches tree i / per_tree. With `totals` (stratified sampling) mass[i] is
// U_i in [0, 1) and the searched mass is (j + U_i) / per_tree * total of the
// tree, j = i mod per_tree.
// `found(i, t, leaf)` runs as each group's leaves are known (replay_sample
// prefetches their rows there, so those misses overlap the next group's search).
template <int K, typename Found>
void find_range(const double* trees, int64_t stride, const sumtree::Layout& layout, const double* mass,
                int64_t per_tree, int64_t begin, int64_t end, int64_t* out, bool stratified, const Found& found) {
  double u[kGroup];
  int64_t node[kGroup];
  for (int64_t g = begin; g < end;) {
    const int64_t t = g / per_tree;
    const int64_t n = std::min({kGroup, end - g, (t + 1) * per_tree - g});
    const double* sums = trees + t * stride;
    for (int64_t q = 0; q < n; ++q) {
      double m = mass[g + q];
      if (stratified) m = (static_cast<double>(g + q - t * per_tree) + m) / static_cast<double>(per_tree) * sums[0];
      u[q] = m > 0.0 ? m : 0.0;
      node[q] = 0;
    }
    sumtree::descend_group<K>(sums, layout, u, node, n);
    for (int64_t q = 0; q < n; ++q) {
      out[g + q] = node[q];
      found(g + q, t, node[q]);
    }
    g += n;
  }
}

constexpr auto kNothing = [](int64_t, int64_t, int64_t) {};

// A thread's reusable buffers for one tree's update.
struct UpdateScratch {
  std::vector<int64_t> leaves;
  std::vector<double> values;
  sumtree::SweepScratch sweep;
};

UpdateScratch& thread_scratch() {
  thread_local UpdateScratch scratch;
  return scratch;
}

// A large batch on one tree is split between threads by subtree: each
// thread writes the leaves below a range of nodes of the split level and
// rebuilds their subtrees up to that level (disjoint memory), then the calling
// thread rebuilds the few levels above. Below this many kept entries the
// split cannot pay for a fork (csrc/cpu/parallel.h decides above it).
constexpr int64_t kSplitMinBatch = 1024;
// The split level is the first with at least this many nodes: enough ranges
// for dynamic chunks, few enough that the serial top costs little.
constexpr int64_t kSplitMinNodes = 16;

template <int K>
void set_leaves_split(double* sums, double* mins, const sumtree::Layout& layout, const int64_t* leaf,
                      const double* value, int64_t n, UpdateScratch& s) {
  constexpr int lk = sumtree::log2_fanout<K>();
  int split = 0;
  while (split < layout.levels - 2 && layout.width[split] < kSplitMinNodes) ++split;
  const int split_shift = lk * (layout.levels - 1 - split);  // leaf >> split_shift: its node at the split level
  if (split == 0 || split_shift < sumtree::group_shift(layout, n)) {
    // No level both wide enough and coarser than the sort's groups: one thread.
    sumtree::set_leaves<K, double>(sums, mins, layout, leaf, value, n, s.sweep);
    return;
  }
  const int64_t* order = sumtree::sweep_order(layout, leaf, n, s.sweep);
  // The first ordered entry whose split-level node is >= node (nodes are monotone along `order`).
  const auto first_entry = [&](int64_t node) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if ((leaf[order[mid]] >> split_shift) < node) lo = mid + 1; else hi = mid;
    }
    return lo;
  };
  static cpu::ParallelSite site("sumtree_update_split");
  const int64_t nodes = layout.width[split];
  cpu::parallel_for(site, nodes, static_cast<double>(n) * kUpdateNs / static_cast<double>(nodes),
                    [&](int64_t begin, int64_t end) {
                      sumtree::set_leaves_range<K, double>(sums, mins, layout, leaf, value, order, first_entry(begin),
                                                           first_entry(end), split, thread_scratch().sweep);
                    });
  // The levels above the split, from the parents of the touched split-level nodes.
  std::vector<int64_t>& above = s.sweep.nodes;
  above.resize(static_cast<size_t>(n));
  int64_t count = 0;
  int64_t last = -1;
  for (int64_t j = 0; j < n; ++j) {
    sumtree::append_distinct(above.data(), count, last, leaf[order[j]] >> (split_shift + lk));
  }
  sumtree::recompute_levels<K, double>(sums, mins, layout, above, count, split - 1, 0, s.sweep.parents);
}

// Writes one tree's validated entries: leaf[i] = (p[i] + eps) ** alpha for
// every kept i, the last kept one of a leaf winning. Returns the running-max
// fold of the kept p[i] + eps (NaN when none is kept).
template <int K>
double update_tree(double* sums, double* mins, const sumtree::Layout& layout, const int64_t* idx, const double* p,
                   const bool* kept, int64_t n, double alpha, double eps, bool may_split) {
  UpdateScratch& s = thread_scratch();
  s.leaves.resize(static_cast<size_t>(n));
  s.values.resize(static_cast<size_t>(n));
  int64_t count = 0;
  double batch_max = NAN;  // NaN: no kept entry yet (see running_max_fold)
  for (int64_t i = 0; i < n; ++i) {
    if (kept != nullptr && !kept[i]) continue;
    batch_max = sumtree::running_max_fold(batch_max, p[i] + eps);
    s.leaves[count] = idx[i];
    s.values[count] = sumtree::transform_priority(p[i], alpha, eps);
    ++count;
  }
  if (may_split && count >= kSplitMinBatch) {
    set_leaves_split<K>(sums, mins, layout, s.leaves.data(), s.values.data(), count, s);
  } else {
    sumtree::set_leaves<K, double>(sums, mins, layout, s.leaves.data(), s.values.data(), count, s.sweep);
  }
  return batch_max;
}

// Applies validated entries to every tree; tree t takes entries [t * per_tree, (t + 1) * per_tree).
void apply_update(const at::Tensor& tree, const Trees& trees, int64_t fanout, const int64_t* idx, const double* p,
                  const bool* kept, int64_t per_tree, double alpha, double eps, double* running_max) {
  double* base = tree.mutable_data_ptr<double>();
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    const auto body = [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        double* sums = base + t * trees.stride();
        const int64_t first = t * per_tree;
        const double batch_max = update_tree<K>(sums, sums + trees.layout.storage, trees.layout, idx + first,
                                                p + first, kept == nullptr ? nullptr : kept + first, per_tree, alpha,
                                                eps, trees.count == 1);
        if (running_max != nullptr && !std::isnan(batch_max)) {
          running_max[t] = sumtree::running_max_fold(running_max[t], batch_max);
        }
      }
    };
    if (trees.count == 1) {
      body(0, 1);
    } else {
      // Trees are independent: a population's trees update in parallel.
      static cpu::ParallelSite site("sumtree_update_trees");
      cpu::parallel_for(site, trees.count, static_cast<double>(std::max<int64_t>(per_tree, 1)) * kUpdateNs, body);
    }
  });
}

void sumtree_update_cpu(const at::Tensor& tree, int64_t capacity, int64_t fanout, const at::Tensor& index,
                        const at::Tensor& priority, const std::optional<at::Tensor>& keep,
                        double alpha, double eps, const std::optional<at::Tensor>& running_max) {
  const SumtreeUpdateArgs a =
      prepare_sumtree_update(tree, capacity, fanout, index, priority, keep, alpha, eps, running_max);
  const int64_t* idx = a.index.const_data_ptr<int64_t>();
  const double* p = a.priority.const_data_ptr<double>();
  const bool* kept = a.keep.defined() ? a.keep.const_data_ptr<bool>() : nullptr;
  const int64_t n = a.index.numel();
  const double max_raw = max_raw_priority(capacity, alpha);
  // Validate everything before the first write: a rejected batch leaves
  // every tree untouched.
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK_INDEX(idx[i] >= 0 && idx[i] < capacity, "rltorch.sumtree_update_: `index` holds ",
                      idx[i], " at position ", i, ", outside [0, ", capacity, ")");
    TORCH_CHECK_VALUE(std::isfinite(p[i]) && p[i] >= 0.0, "rltorch.sumtree_update_: `priority` holds ",
                      p[i], " at position ", i, "; priorities must be finite and >= 0");
    TORCH_CHECK_VALUE(p[i] + eps <= max_raw, "rltorch.sumtree_update_: `priority` holds ", p[i],
                      " at position ", i, "; priority + eps must be <= ", max_raw,
                      " for this capacity and alpha, or the total of the tree could overflow");
  }
  double* rm = (running_max.has_value() && running_max->defined()) ? running_max->mutable_data_ptr<double>() : nullptr;
  apply_update(tree, a.trees, fanout, idx, p, kept, a.per_tree, alpha, eps, rm);
}

// Validates every td error (read as double: float32 converts exactly), then
// writes the kept entries.
template <typename TD>
void per_update_checked(const at::Tensor& tree, const PerUpdateArgs& a, const TD* td_error, int64_t capacity,
                        int64_t fanout, double alpha, double eps, const at::Tensor& running_max) {
  const int64_t* ids = a.slot_ids.const_data_ptr<int64_t>();
  const int64_t* idx = a.index.const_data_ptr<int64_t>();
  const int64_t n = a.index.numel();
  const int64_t per_tree = a.per_tree;
  thread_local std::vector<int64_t> slots;
  thread_local std::vector<double> priority;
  thread_local std::vector<uint8_t> kept;
  slots.resize(static_cast<size_t>(n));
  priority.resize(static_cast<size_t>(n));
  kept.resize(static_cast<size_t>(n));
  const double max_raw = max_raw_priority(capacity, alpha);
  // Every value first (a rejected batch writes nothing), with each id's slot:
  // one division per entry (none for a power-of-two capacity), where the
  // staleness pass used to divide four times per entry.
  const bool power_of_two = (capacity & (capacity - 1)) == 0;
  for (int64_t i = 0; i < n; ++i) {
    const double td = static_cast<double>(td_error[i]);
    TORCH_CHECK_VALUE(std::isfinite(td), "rltorch.per_update_priorities_: `td_error` holds ", td,
                      " at position ", i, "; td errors must be finite");
    TORCH_CHECK_VALUE(std::fabs(td) + eps <= max_raw, "rltorch.per_update_priorities_: `td_error` holds ",
                      td, " at position ", i, "; |td_error| + eps must be <= ", max_raw,
                      " for this capacity and alpha, or the total of the tree could overflow");
    const int64_t id = idx[i];
    slots[i] = id < 0 ? 0 : power_of_two ? (id & (capacity - 1)) : id % capacity;
    priority[i] = std::fabs(td);
  }
  // An entry is kept while its slot still holds its id (the slot's row is a
  // cache miss unless just sampled: prefetched ahead).
  const int64_t tree_stride = a.ids_tree_stride, slot_stride = a.ids_stride;
  for (int64_t t = 0; per_tree > 0 && t < a.trees.count; ++t) {
    const int64_t* tree_ids = ids + t * tree_stride;
    const int64_t first = t * per_tree, last = first + per_tree;
    for (int64_t i = first; i < last; ++i) {
      if (i + kGatherLookahead < last) __builtin_prefetch(tree_ids + slots[i + kGatherLookahead] * slot_stride);
      kept[i] = idx[i] >= 0 && tree_ids[slots[i] * slot_stride] == idx[i];
    }
  }
  apply_update(tree, a.trees, fanout, slots.data(), priority.data(), reinterpret_cast<const bool*>(kept.data()),
               per_tree, alpha, eps, running_max.mutable_data_ptr<double>());
}

void per_update_priorities_cpu(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                               const at::Tensor& slot_ids, const at::Tensor& index, const at::Tensor& td_error,
                               double alpha, double eps, const at::Tensor& running_max) {
  const PerUpdateArgs a =
      prepare_per_update(tree, capacity, fanout, slot_ids, index, td_error, alpha, eps, running_max, true);
  if (a.td_error.scalar_type() == at::kFloat) {
    per_update_checked(tree, a, a.td_error.const_data_ptr<float>(), capacity, fanout, alpha, eps, running_max);
  } else {
    per_update_checked(tree, a, a.td_error.const_data_ptr<double>(), capacity, fanout, alpha, eps, running_max);
  }
}

// One column's rows [begin, end): a loop per row size, so a field of a few
// bytes is one load and one store, not a call of memcpy. The first column's
// pass takes the cache misses (prefetched ahead); the other fields of a
// row-packed buffer are then in the lines it brought in.
template <int64_t Bytes>
void copy_rows(const ColumnRows& col, char* dst, const int64_t* slot, int64_t begin, int64_t end, int64_t per_tree) {
  const int64_t bytes = Bytes > 0 ? Bytes : col.row_bytes;
  for (int64_t i = begin; i < end; ++i) {
    if (!col.in_earlier_line && i + kGatherLookahead < end) {
      const int64_t ahead = i + kGatherLookahead;
      __builtin_prefetch(col.base + (per_tree > 0 ? ahead / per_tree : 0) * col.tree_stride + slot[ahead] * col.row_stride);
    }
    const char* src = col.base + (per_tree > 0 ? i / per_tree : 0) * col.tree_stride + slot[i] * col.row_stride;
    std::memcpy(dst + i * bytes, src, static_cast<size_t>(bytes));
  }
}

// out[c][i] = row slot[i] of tree i / per_tree of every dense column c, for i in [begin, end).
void gather_rows(const std::vector<ColumnRows>& columns, char* const* dst, const int64_t* slot, int64_t begin,
                 int64_t end, int64_t per_tree) {
  for (size_t c = 0; c < columns.size(); ++c) {
    const ColumnRows& col = columns[c];
    if (!col.dense) continue;
    switch (col.row_bytes) {
      case 1: copy_rows<1>(col, dst[c], slot, begin, end, per_tree); break;
      case 2: copy_rows<2>(col, dst[c], slot, begin, end, per_tree); break;
      case 4: copy_rows<4>(col, dst[c], slot, begin, end, per_tree); break;
      case 8: copy_rows<8>(col, dst[c], slot, begin, end, per_tree); break;
      case 16: copy_rows<16>(col, dst[c], slot, begin, end, per_tree); break;
      case 32: copy_rows<32>(col, dst[c], slot, begin, end, per_tree); break;
      default: copy_rows<0>(col, dst[c], slot, begin, end, per_tree);
    }
  }
}

std::vector<char*> output_pointers(std::vector<at::Tensor>& out) {
  std::vector<char*> dst(out.size());
  for (size_t c = 0; c < out.size(); ++c) dst[c] = static_cast<char*>(out[c].mutable_data_ptr());
  return dst;
}

// Columns whose rows are not contiguous (rare: a user's strided view) take index_select.
void gather_strided_columns(at::TensorList columns, const std::vector<ColumnRows>& described,
                            std::vector<at::Tensor>& out, const at::Tensor& slots, int64_t trees) {
  for (size_t c = 0; c < described.size(); ++c) {
    if (described[c].dense) continue;
    if (trees == 0) {
      out[c].copy_(at::index_select(columns[c], 0, slots));
    } else {
      for (int64_t t = 0; t < trees; ++t) out[c][t].copy_(at::index_select(columns[c][t], 0, slots[t]));
    }
  }
}

std::vector<at::Tensor> replay_gather_cpu(at::TensorList columns, const at::Tensor& index) {
  const at::Tensor idx = prepare_replay_gather(columns, index);
  const int64_t trees = idx.dim() == 2 ? idx.size(0) : 0;
  const int64_t per_tree = trees > 0 ? idx.size(1) : idx.numel();
  const int64_t lead = trees > 0 ? 1 : 0;
  const std::vector<ColumnRows> described =
      checked_columns("replay_gather", columns, index, "index", trees, columns[0].size(lead));
  std::vector<at::Tensor> out;
  out.reserve(columns.size());
  for (const at::Tensor& column : columns) out.push_back(gathered_like(column, trees, per_tree));
  const std::vector<char*> dst = output_pointers(out);
  gather_rows(described, dst.data(), idx.const_data_ptr<int64_t>(), 0, idx.numel(), trees > 0 ? per_tree : 0);
  gather_strided_columns(columns, described, out, idx, trees);
  return out;
}

at::Tensor sumtree_find_cpu(const at::Tensor& tree, int64_t capacity, int64_t fanout, const at::Tensor& mass) {
  Trees trees;
  const at::Tensor m = prepare_sumtree_find(tree, capacity, fanout, mass, &trees);
  at::Tensor out = at::empty(mass.sizes(), mass.options().dtype(at::kLong));
  const int64_t n = m.numel();
  if (n == 0) return out;
  const int64_t per_tree = n / trees.count;
  const double* base = tree.const_data_ptr<double>();
  const double* mp = m.const_data_ptr<double>();
  int64_t* op = out.mutable_data_ptr<int64_t>();
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    static cpu::ParallelSite site("sumtree_find");
    cpu::parallel_for(site, n, kSearchNs, [&](int64_t begin, int64_t end) {
      find_range<K>(base, trees.stride(), trees.layout, mp, per_tree, begin, end, op, false, kNothing);
    });
  });
  return out;
}

// Stratified sampling with importance weights into index and weight ([B] or
// [T, B]) and, when `columns` is given, the sampled rows of every column into
// `dst`: each thread gathers the rows of the samples it has just found.
void sample_into(const at::Tensor& tree, const Trees& trees, int64_t fanout, int64_t batch_size, double beta,
                 const double* uniform, at::Tensor& index, at::Tensor& weight,
                 const std::vector<ColumnRows>* columns = nullptr, char* const* dst = nullptr) {
  const int64_t n = trees.count * batch_size;
  if (n == 0) return;
  const double* base = tree.const_data_ptr<double>();
  int64_t* ip = index.mutable_data_ptr<int64_t>();
  float* wp = weight.mutable_data_ptr<float>();
  const int64_t leaf_offset = trees.layout.leaf_offset();
  const int64_t stride = trees.stride();
  const int64_t storage = trees.layout.storage;
  const float b = static_cast<float>(beta);
  const sumtree::Layout& layout = trees.layout;
  const int64_t rows_per_tree = trees.batched ? batch_size : 0;
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    static cpu::ParallelSite site("sumtree_sample");
    cpu::parallel_for(site, n, kSearchNs, [&](int64_t begin, int64_t end) {
      if (columns == nullptr) {
        find_range<K>(base, stride, trees.layout, uniform, batch_size, begin, end, ip, true, kNothing);
      } else {
        const auto prefetch_rows = [&](int64_t, int64_t t, int64_t leaf) {
          for (const ColumnRows& col : *columns) {
            if (col.in_earlier_line) continue;
            __builtin_prefetch(col.base + (rows_per_tree > 0 ? t : 0) * col.tree_stride + leaf * col.row_stride);
          }
        };
        find_range<K>(base, stride, trees.layout, uniform, batch_size, begin, end, ip, true, prefetch_rows);
      }
      // Tree by tree: no division per sample.
      for (int64_t t = begin / batch_size, i = begin; i < end; ++t) {
        const double* sums = base + t * stride;
        const double min = sumtree::root_min(sums, sums + storage, layout);
        for (const int64_t stop = std::min(end, (t + 1) * batch_size); i < stop; ++i) {
          wp[i] = sumtree::importance_weight(sums[leaf_offset + ip[i]], min, b);
        }
      }
      if (columns != nullptr) gather_rows(*columns, dst, ip, begin, end, rows_per_tree);
    });
  });
}

std::tuple<at::Tensor, at::Tensor> sumtree_sample_cpu(const at::Tensor& tree, int64_t capacity,
                                                      int64_t fanout, int64_t batch_size, double beta,
                                                      std::optional<at::Generator> generator) {
  SampleOutputs s =
      prepare_sample("sumtree_sample", tree, capacity, fanout, {}, batch_size, beta, generator, true);
  sample_into(tree, s.trees, fanout, batch_size, beta, s.host_uniform, s.index, s.weight);
  return {s.index, s.weight};
}

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>> replay_sample_cpu(
    const at::Tensor& tree, int64_t capacity, int64_t fanout, at::TensorList columns, int64_t batch_size,
    double beta, std::optional<at::Generator> generator) {
  SampleOutputs s =
      prepare_sample("replay_sample", tree, capacity, fanout, columns, batch_size, beta, generator, true);
  const std::vector<char*> dst = output_pointers(s.rows);
  sample_into(tree, s.trees, fanout, batch_size, beta, s.host_uniform, s.index, s.weight, &s.columns, dst.data());
  gather_strided_columns(columns, s.columns, s.rows, s.index, s.trees.batched ? s.trees.count : 0);
  return {s.index, s.weight, s.rows};
}

}  // namespace

TORCH_LIBRARY_IMPL(rltorch, CPU, m) {
  m.impl("sumtree_update_", &sumtree_update_cpu);
  m.impl("sumtree_find", &sumtree_find_cpu);
  m.impl("sumtree_sample", &sumtree_sample_cpu);
  m.impl("per_update_priorities_", &per_update_priorities_cpu);
  m.impl("replay_gather", &replay_gather_cpu);
  m.impl("replay_sample", &replay_sample_cpu);
}

}  // namespace rltorch
