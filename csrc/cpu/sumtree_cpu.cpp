#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>

#include "../sumtree_common.h"
#include "rltorch/sumtree.h"

namespace rltorch {
namespace {

// Queries descend in groups: each level's child groups for the whole group
// are prefetched before any is read, so up to kGroup cache misses overlap
// instead of one dependent miss per level per query.
constexpr int64_t kGroup = 16;
// Below this many queries one thread beats waking the pool.
constexpr int64_t kSearchGrain = 512;
// How many entries ahead the update loop prefetches leaves.
constexpr int64_t kUpdateLookahead = 8;

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

void sumtree_update_cpu(const at::Tensor& tree, int64_t capacity, int64_t fanout, const at::Tensor& index,
                        const at::Tensor& priority, const std::optional<at::Tensor>& keep,
                        double alpha, double eps, const std::optional<at::Tensor>& running_max) {
  const SumtreeUpdateArgs a =
      prepare_sumtree_update(tree, capacity, fanout, index, priority, keep, alpha, eps, running_max);
  const int64_t* idx = a.index.const_data_ptr<int64_t>();
  const double* p = a.priority.const_data_ptr<double>();
  const bool* kept = a.keep.defined() ? a.keep.const_data_ptr<bool>() : nullptr;
  const int64_t B = a.batch;
  // Validate everything before the first write: a rejected batch leaves
  // the tree untouched.
  for (int64_t i = 0; i < B; ++i) {
    TORCH_CHECK_INDEX(idx[i] >= 0 && idx[i] < capacity, "rltorch.sumtree_update_: `index` holds ",
                      idx[i], " at position ", i, ", outside [0, ", capacity, ")");
    TORCH_CHECK_VALUE(std::isfinite(p[i]) && p[i] >= 0.0, "rltorch.sumtree_update_: `priority` holds ",
                      p[i], " at position ", i, "; priorities must be finite and >= 0");
  }
  double* sums = tree.mutable_data_ptr<double>();
  double* mins = sums + a.layout.storage;
  const int64_t leaf_offset = a.layout.leaf_offset();
  double batch_max = 0.0;
  // In input order, so a leaf named twice ends with its last kept value,
  // exactly as sequential assignment would leave it.
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    const int64_t parent_offset = a.layout.levels >= 2 ? a.layout.offset[a.layout.levels - 2] : -1;
    for (int64_t i = 0; i < B; ++i) {
      if (i + kUpdateLookahead < B) {
        // The two lowest levels of a large tree miss the L2 cache; fetch the
        // leaf group and its parent's group ahead of their turn.
        const int64_t ahead = idx[i + kUpdateLookahead];
        __builtin_prefetch(sums + leaf_offset + ahead, 1);
        __builtin_prefetch(mins + leaf_offset + ahead, 1);
        if (parent_offset >= 0) {
          __builtin_prefetch(sums + parent_offset + ahead / K, 1);
          __builtin_prefetch(mins + parent_offset + ahead / K, 1);
        }
      }
      if (kept != nullptr && !kept[i]) continue;
      const double raw = p[i] + eps;
      batch_max = raw > batch_max ? raw : batch_max;
      sumtree::set_leaf<K, double>(sums, mins, a.layout, idx[i],
                                   sumtree::transform_priority(p[i], alpha, eps));
    }
  });
  if (running_max.has_value() && running_max->defined()) {
    double* rm = running_max->mutable_data_ptr<double>();
    *rm = batch_max > *rm ? batch_max : *rm;
  }
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
    at::parallel_for(0, n, kSearchGrain, [&](int64_t begin, int64_t end) {
      find_many<K>(sums, layout, mp, begin, end, op, nullptr, 0);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> sumtree_sample_cpu(const at::Tensor& tree, int64_t capacity,
                                                      int64_t fanout, int64_t batch_size, double beta,
                                                      std::optional<at::Generator> generator) {
  const sumtree::Layout layout = prepare_sumtree_sample(tree, capacity, fanout, batch_size, beta);
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
    at::parallel_for(0, batch_size, kSearchGrain, [&](int64_t begin, int64_t end) {
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
}

}  // namespace rltorch
