// Validation shared by the CPU and CUDA sum-tree kernels (the tree math is in
// include/rltorch/sumtree.h). Every check runs before anything is written, so
// a rejected call leaves the tree as it was.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <type_traits>
#include <utility>

#include "rltorch/sumtree.h"

namespace rltorch {

// The fan-outs the kernels are compiled for (compared by benchmarks/bench_sumtree.py).
template <typename F>
void dispatch_fanout(int64_t fanout, F&& body) {
  switch (fanout) {
    case 2: body(std::integral_constant<int, 2>{}); break;
    case 4: body(std::integral_constant<int, 4>{}); break;
    case 8: body(std::integral_constant<int, 8>{}); break;
    case 16: body(std::integral_constant<int, 16>{}); break;
    default: TORCH_CHECK_VALUE(false, "rltorch.sumtree: `fanout` must be 2, 4, 8 or 16, got ", fanout);
  }
}

// The largest `priority + eps` a leaf may receive: its transformed value
// (priority + eps) ** alpha stays <= DBL_MAX / (2 * capacity), so the sum of
// all leaves (the root) cannot overflow to inf however the leaves are filled,
// with a factor 2 to spare for rounding on the way up. Checked before any
// write; the Python reference and SumTree.update's CUDA validation use the
// same bound (rltorch/_reference.py::max_raw_priority).
double max_raw_priority(int64_t capacity, double alpha);

// Checks the tree tensor against (capacity, fanout) and returns its layout.
sumtree::Layout checked_tree_layout(const char* op, const at::Tensor& tree, int64_t capacity,
                                    int64_t fanout);

struct SumtreeUpdateArgs {
  sumtree::Layout layout;
  at::Tensor index;     // int64, contiguous, flat [B]
  at::Tensor priority;  // float64, contiguous, flat [B]
  at::Tensor keep;      // bool, contiguous, flat [B], or undefined (keep all)
  int64_t batch = 0;
};

SumtreeUpdateArgs prepare_sumtree_update(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                         const at::Tensor& index, const at::Tensor& priority,
                                         const std::optional<at::Tensor>& keep, double alpha,
                                         double eps, const std::optional<at::Tensor>& running_max);

// Returns `mass` as contiguous float64.
at::Tensor prepare_sumtree_find(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                const at::Tensor& mass, sumtree::Layout* layout);

// Rejects a tree with nothing to sample: a zero total would return leaf 0
// with weight inf, a non-finite one garbage. Host memory only: the CUDA
// kernel reports the same through its device error word.
void check_sampling_mass(double total);

sumtree::Layout prepare_sumtree_sample(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                       int64_t batch_size, double beta);

struct PerUpdateArgs {
  sumtree::Layout layout;
  at::Tensor slot_ids;  // int64 [capacity], contiguous
  at::Tensor index;     // int64, contiguous, flat [B]
  at::Tensor td_error;  // float64, contiguous, flat [B]
  int64_t batch = 0;
};

PerUpdateArgs prepare_per_update(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                 const at::Tensor& slot_ids, const at::Tensor& index,
                                 const at::Tensor& td_error, double alpha, double eps,
                                 const at::Tensor& running_max);

// Checks the columns and returns `index` as a contiguous int64 vector whose
// entries are in range for every column (CPU only; CUDA checks on device).
at::Tensor prepare_replay_gather(at::TensorList columns, const at::Tensor& index, bool check_values = true);

}  // namespace rltorch
