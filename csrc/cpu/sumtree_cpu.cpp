#include <ATen/ATen.h>
#include <ATen/Parallel.h>
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

// Queries descend in groups: each level's child groups for the whole group
// are prefetched before any is read, so up to kGroup cache misses overlap
// instead of one dependent miss per level per query.
constexpr int64_t kGroup = 16;
// One descent at 2^20 leaves, measured serial on the 2-core dev VM: 30-60 ns
// (a cache miss per lower level); csrc/cpu/parallel.h decides from it.
constexpr double kSearchNs = 45.0;
// How many entries ahead the update loop prefetches leaves.
constexpr int64_t kUpdateLookahead = 8;
// Rows ahead that replay_gather and per_update_priorities_ prefetch.
constexpr int64_t kGatherLookahead = 16;

template <int K>
void find_many(const double* sums, const sumtree::Layout& layout, const double* mass, int64_t begin,
               int64_t end, int64_t* out, const double* scale_total, int64_t batch_for_scale) {
  // scale_total != nullptr: stratified sampling, mass[i] is U_i in [0, 1) and
  // the searched mass is (i + U_i) / B * total.
  for (int64_t g = begin; g < end; g += kGroup) {
    const int64_t n = std::min<int64_t>(kGroup, end - g);
    double u[kGroup];
    int64_t node[kGroup];
    for (int64_t q = 0; q < n; ++q) {
      double m = mass[g + q];
      if (scale_total != nullptr) {
        m = (static_cast<double>(g + q) + m) / static_cast<double>(batch_for_scale) * *scale_total;
      }
      u[q] = m > 0.0 ? m : 0.0;
      node[q] = 0;
    }
    for (int level = 0; level + 1 < layout.levels; ++level) {
      const double* base = sums + layout.offset[level + 1];
      for (int64_t q = 0; q < n; ++q) __builtin_prefetch(base + node[q] * K);
      for (int64_t q = 0; q < n; ++q) {
        node[q] = node[q] * K + sumtree::choose_child<K, double>(base + node[q] * K, u[q]);
      }
    }
    for (int64_t q = 0; q < n; ++q) out[g + q] = node[q];
  }
}

// Batches at least this large write all leaves first and then recompute
// each touched internal node once per level; smaller ones walk every leaf to
// the root (for them the repeated recomputes of the top levels cost less
// than queueing).
constexpr int64_t kLevelSyncMinBatch = 64;

template <int K>
double update_level_sync(double* sums, double* mins, const sumtree::Layout& layout, const int64_t* idx,
                         const double* p, const bool* kept, int64_t B, double alpha, double eps) {
  std::vector<int64_t> current, next;
  current.reserve(B);
  next.reserve(B);
  double batch_max = NAN;  // NaN: no kept entry yet (see running_max_fold)
  const int64_t leaf_offset = layout.leaf_offset();
  // Leaves in input order: the last kept write to a leaf is the one that stays.
  for (int64_t i = 0; i < B; ++i) {
    if (i + kUpdateLookahead < B) {
      __builtin_prefetch(sums + leaf_offset + idx[i + kUpdateLookahead], 1);
      __builtin_prefetch(mins + leaf_offset + idx[i + kUpdateLookahead], 1);
    }
    if (kept != nullptr && !kept[i]) continue;
    const double raw = p[i] + eps;
    batch_max = sumtree::running_max_fold(batch_max, raw);
    const double v = sumtree::transform_priority(p[i], alpha, eps);
    sums[leaf_offset + idx[i]] = v;
    mins[leaf_offset + idx[i]] = sumtree::min_value(v);
    current.push_back(idx[i]);
  }
  // Level by level: every child is final before its parent is recomputed.
  // A parent is queued once: queuing stores -1 in its sum (real sums are
  // >= 0), which its recompute overwrites. The mark lives in the line the
  // recompute writes anyway, so deduplication costs no extra cache misses.
  constexpr double kQueued = -1.0;
  for (int level = layout.levels - 2; level >= 0; --level) {
    next.clear();
    double* level_sums = sums + layout.offset[level];
    for (const int64_t child : current) {
      const int64_t node = child / K;
      if (level_sums[node] != kQueued) {
        level_sums[node] = kQueued;
        next.push_back(node);
      }
    }
    const int64_t n = static_cast<int64_t>(next.size());
    const int64_t child_off = layout.offset[level + 1];
    for (int64_t j = 0; j < n; ++j) {
      if (j + kUpdateLookahead < n) {
        __builtin_prefetch(sums + child_off + next[j + kUpdateLookahead] * K);
        __builtin_prefetch(mins + child_off + next[j + kUpdateLookahead] * K);
      }
      sumtree::recompute_node<K, double>(sums, mins, layout, level, next[j]);
    }
    std::swap(current, next);
  }
  return batch_max;
}

// Writes validated (index, priority) pairs; returns max(priority + eps) over
// kept entries, NaN when none is kept.
double apply_update(const at::Tensor& tree, const sumtree::Layout& layout, int64_t fanout, const int64_t* idx,
                    const double* p, const bool* kept, int64_t B, double alpha, double eps) {
  double* sums = tree.mutable_data_ptr<double>();
  double* mins = sums + layout.storage;
  double batch_max = NAN;  // NaN: no kept entry yet (see running_max_fold)
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    if (B < kLevelSyncMinBatch) {
      // Few leaves: walk each one up to the root, in input order, so a leaf
      // named twice ends with its last kept value (sequential assignment).
      for (int64_t i = 0; i < B; ++i) {
        if (kept != nullptr && !kept[i]) continue;
        const double raw = p[i] + eps;
        batch_max = sumtree::running_max_fold(batch_max, raw);
        sumtree::set_leaf<K, double>(sums, mins, layout, idx[i], sumtree::transform_priority(p[i], alpha, eps));
      }
    } else {
      batch_max = update_level_sync<K>(sums, mins, layout, idx, p, kept, B, alpha, eps);
    }
  });
  return batch_max;
}

void sumtree_update_cpu(const at::Tensor& tree, int64_t capacity, int64_t fanout, const at::Tensor& index,
                        const at::Tensor& priority, const std::optional<at::Tensor>& keep,
                        double alpha, double eps, const std::optional<at::Tensor>& running_max) {
  const SumtreeUpdateArgs a =
      prepare_sumtree_update(tree, capacity, fanout, index, priority, keep, alpha, eps, running_max);
  const int64_t* idx = a.index.const_data_ptr<int64_t>();
  const double* p = a.priority.const_data_ptr<double>();
  const bool* kept = a.keep.defined() ? a.keep.const_data_ptr<bool>() : nullptr;
  const int64_t B = a.batch;
  const double max_raw = max_raw_priority(capacity, alpha);
  // Validate everything before the first write: a rejected batch leaves
  // the tree untouched.
  for (int64_t i = 0; i < B; ++i) {
    TORCH_CHECK_INDEX(idx[i] >= 0 && idx[i] < capacity, "rltorch.sumtree_update_: `index` holds ",
                      idx[i], " at position ", i, ", outside [0, ", capacity, ")");
    TORCH_CHECK_VALUE(std::isfinite(p[i]) && p[i] >= 0.0, "rltorch.sumtree_update_: `priority` holds ",
                      p[i], " at position ", i, "; priorities must be finite and >= 0");
    TORCH_CHECK_VALUE(p[i] + eps <= max_raw, "rltorch.sumtree_update_: `priority` holds ", p[i],
                      " at position ", i, "; priority + eps must be <= ", max_raw,
                      " for this capacity and alpha, or the total of the tree could overflow");
  }
  const double batch_max = apply_update(tree, a.layout, fanout, idx, p, kept, B, alpha, eps);
  if (running_max.has_value() && running_max->defined()) {
    double* rm = running_max->mutable_data_ptr<double>();
    if (!std::isnan(batch_max)) *rm = sumtree::running_max_fold(*rm, batch_max);
  }
}

void per_update_priorities_cpu(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                               const at::Tensor& slot_ids, const at::Tensor& index, const at::Tensor& td_error,
                               double alpha, double eps, const at::Tensor& running_max) {
  const PerUpdateArgs a =
      prepare_per_update(tree, capacity, fanout, slot_ids, index, td_error, alpha, eps, running_max);
  const int64_t* ids = a.slot_ids.const_data_ptr<int64_t>();
  const int64_t* idx = a.index.const_data_ptr<int64_t>();
  const double* td = a.td_error.const_data_ptr<double>();
  const int64_t B = a.batch;
  std::vector<int64_t> slots(B);
  std::vector<double> priority(B);
  std::vector<uint8_t> kept(B);
  const double max_raw = max_raw_priority(capacity, alpha);
  for (int64_t i = 0; i < B; ++i) {
    if (i + kGatherLookahead < B && idx[i + kGatherLookahead] >= 0) {
      __builtin_prefetch(ids + idx[i + kGatherLookahead] % capacity);
    }
    TORCH_CHECK_VALUE(std::isfinite(td[i]), "rltorch.per_update_priorities_: `td_error` holds ", td[i],
                      " at position ", i, "; td errors must be finite");
    TORCH_CHECK_VALUE(std::fabs(td[i]) + eps <= max_raw, "rltorch.per_update_priorities_: `td_error` holds ",
                      td[i], " at position ", i, "; |td_error| + eps must be <= ", max_raw,
                      " for this capacity and alpha, or the total of the tree could overflow");
    const int64_t id = idx[i];
    const int64_t slot = id >= 0 ? id % capacity : 0;
    slots[i] = slot;
    priority[i] = std::fabs(td[i]);
    kept[i] = id >= 0 && ids[slot] == id;
  }
  const double batch_max = apply_update(tree, a.layout, fanout, slots.data(), priority.data(),
                                        reinterpret_cast<const bool*>(kept.data()), B, alpha, eps);
  double* rm = running_max.mutable_data_ptr<double>();
  if (!std::isnan(batch_max)) *rm = sumtree::running_max_fold(*rm, batch_max);
}

std::vector<at::Tensor> replay_gather_cpu(at::TensorList columns, const at::Tensor& index) {
  const at::Tensor idx = prepare_replay_gather(columns, index);
  const int64_t B = idx.numel();
  const int64_t* ip = idx.const_data_ptr<int64_t>();
  std::vector<at::Tensor> out;
  out.reserve(columns.size());
  for (const at::Tensor& column : columns) {
    std::vector<int64_t> shape(column.sizes().begin(), column.sizes().end());
    shape[0] = B;
    if (!column.is_contiguous()) {  // no copy of a whole storage column just to gather rows
      out.push_back(at::index_select(column, 0, idx));
      continue;
    }
    at::Tensor rows = at::empty(shape, column.options());
    const int64_t row_bytes = column.numel() / std::max<int64_t>(column.size(0), 1) * column.element_size();
    const char* src = static_cast<const char*>(column.const_data_ptr());
    char* dst = static_cast<char*>(rows.mutable_data_ptr());
    // Sampled rows are random: each is a cache miss, so keep many in flight.
    for (int64_t i = 0; i < B; ++i) {
      if (i + kGatherLookahead < B) __builtin_prefetch(src + ip[i + kGatherLookahead] * row_bytes);
      std::memcpy(dst + i * row_bytes, src + ip[i] * row_bytes, row_bytes);
    }
    out.push_back(std::move(rows));
  }
  return out;
}

at::Tensor sumtree_find_cpu(const at::Tensor& tree, int64_t capacity, int64_t fanout, const at::Tensor& mass) {
  sumtree::Layout layout;
  const at::Tensor m = prepare_sumtree_find(tree, capacity, fanout, mass, &layout);
  at::Tensor out = at::empty(mass.sizes(), mass.options().dtype(at::kLong));
  const int64_t n = m.numel();
  if (n == 0) return out;
  const double* sums = tree.const_data_ptr<double>();
  const double* mp = m.const_data_ptr<double>();
  int64_t* op = out.mutable_data_ptr<int64_t>();
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    static cpu::ParallelSite site("sumtree_find");
    cpu::parallel_for(site, n, kSearchNs, [&](int64_t begin, int64_t end) {
      find_many<K>(sums, layout, mp, begin, end, op, nullptr, 0);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> sumtree_sample_cpu(const at::Tensor& tree, int64_t capacity,
                                                      int64_t fanout, int64_t batch_size, double beta,
                                                      std::optional<at::Generator> generator) {
  const sumtree::Layout layout = prepare_sumtree_sample(tree, capacity, fanout, batch_size, beta);
  check_sampling_mass(tree.const_data_ptr<double>()[0]);
  const at::Tensor uniform = at::rand({batch_size}, generator, tree.options());
  at::Tensor index = at::empty({batch_size}, tree.options().dtype(at::kLong));
  at::Tensor weight = at::empty({batch_size}, tree.options().dtype(at::kFloat));
  if (batch_size == 0) return {index, weight};
  const double* sums = tree.const_data_ptr<double>();
  const double* mins = sums + layout.storage;
  const double* up = uniform.const_data_ptr<double>();
  int64_t* ip = index.mutable_data_ptr<int64_t>();
  float* wp = weight.mutable_data_ptr<float>();
  const int64_t leaf_offset = layout.leaf_offset();
  const double total = sums[0], min_priority = mins[0];
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    static cpu::ParallelSite site("sumtree_sample");
    cpu::parallel_for(site, batch_size, kSearchNs, [&](int64_t begin, int64_t end) {
      find_many<K>(sums, layout, up, begin, end, ip, &total, batch_size);
      for (int64_t i = begin; i < end; ++i) {
        wp[i] = sumtree::importance_weight(sums[leaf_offset + ip[i]], min_priority, static_cast<float>(beta));
      }
    });
  });
  return {index, weight};
}

}  // namespace

TORCH_LIBRARY_IMPL(rltorch, CPU, m) {
  m.impl("sumtree_update_", &sumtree_update_cpu);
  m.impl("sumtree_find", &sumtree_find_cpu);
  m.impl("sumtree_sample", &sumtree_sample_cpu);
  m.impl("per_update_priorities_", &per_update_priorities_cpu);
  m.impl("replay_gather", &replay_gather_cpu);
}

}  // namespace rltorch
