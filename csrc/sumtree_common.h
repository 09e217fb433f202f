// Validation shared by the CPU and CUDA sum-tree and replay kernels (the tree
// math is in include/rltorch/sumtree.h). Every check runs before anything is
// written, so a rejected call leaves the tree as it was.
//
// Every op takes one tree, a float64 [size] tensor (sumtree::Layout::size(): the
// sums, then the internal mins), or a batch of T independent trees, [T, size]
// (a population's buffers: one kernel call for all of them). With a batch, the per-entry arguments gain a leading
// dimension T (row t goes to tree t) and the running maxima hold T values.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

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
// with a factor 2 to spare for rounding on the way up. Never above DBL_MAX:
// where the power overflows (alpha < 1, small capacity) every finite value
// passes but an infinite `priority + eps` (e.g. 1.79e308 + 1e307) does not.
// Checked before any write; the Python reference and SumTree.update's CUDA
// validation use the same bound (rltorch/_reference.py::max_raw_priority).
double max_raw_priority(int64_t capacity, double alpha);

// A checked tree argument: its layout and how many trees it holds.
struct Trees {
  sumtree::Layout layout;
  int64_t count = 1;     // 1 for an unbatched [size] tree
  bool batched = false;  // [count, size]
  int64_t stride() const { return layout.size(); }  // elements from one tree to the next
};

Trees checked_trees(const char* op, const at::Tensor& tree, int64_t capacity, int64_t fanout);

struct SumtreeUpdateArgs {
  Trees trees;
  at::Tensor index;     // int64, contiguous, [trees.count * per_tree]
  at::Tensor priority;  // float64, contiguous, same size
  at::Tensor keep;      // bool, contiguous, same size, or undefined (keep all)
  int64_t per_tree = 0;
};

SumtreeUpdateArgs prepare_sumtree_update(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                         const at::Tensor& index, const at::Tensor& priority,
                                         const std::optional<at::Tensor>& keep, double alpha,
                                         double eps, const std::optional<at::Tensor>& running_max);

// Returns `mass` as contiguous float64 (row t of a batched call searches tree t).
at::Tensor prepare_sumtree_find(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                const at::Tensor& mass, Trees* trees);

// Rejects a tree with nothing to sample: a zero total would return leaf 0
// with weight inf, a non-finite one garbage. Host memory only: the CUDA
// kernels report the same through the device's error record.
void check_sampling_mass(const char* op, double total, int64_t tree, bool batched);

Trees prepare_sumtree_sample(const char* op, const at::Tensor& tree, int64_t capacity, int64_t fanout,
                             int64_t batch_size, double beta);

struct PerUpdateArgs {
  Trees trees;
  // int64 [capacity] or [T, capacity], any strides: a row-packed buffer's ids
  // column is a strided view, and copying it would cost more than the update.
  at::Tensor slot_ids;
  int64_t ids_tree_stride = 0;  // elements from tree t's ids to tree t + 1's
  int64_t ids_stride = 1;       // elements from slot s to slot s + 1
  at::Tensor index;     // int64, contiguous, [trees.count * per_tree]
  // Contiguous, same size: float64, or float32 where the caller reads it as
  // is (`float32_kept`: a float32 loss's td errors skip a conversion).
  at::Tensor td_error;
  int64_t per_tree = 0;
};

PerUpdateArgs prepare_per_update(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                 const at::Tensor& slot_ids, const at::Tensor& index,
                                 const at::Tensor& td_error, double alpha, double eps,
                                 const at::Tensor& running_max, bool float32_kept = false);

// One column of transitions as byte rows: row r of tree t starts at
// base + t * tree_stride + r * row_stride and holds row_bytes contiguous bytes.
// A row-packed buffer's columns are views of one [rows, row_bytes] storage,
// so a sampled transition's columns share one or two cache lines.
struct ColumnRows {
  const char* base = nullptr;
  int64_t tree_stride = 0;
  int64_t row_stride = 0;
  int64_t row_bytes = 0;
  bool dense = true;  // every row is contiguous (else the kernels fall back to index_select)
  // Every row of this column lies in the 64-byte line that holds the same row
  // of an earlier column (a row-packed buffer's later fields): the CPU
  // gathers prefetch that line once, for the earlier column.
  bool in_earlier_line = false;
};

// Checks `columns` for a gather of rows from `rows` rows each (after the
// leading tree dimension when `trees` > 0) and describes them.
std::vector<ColumnRows> checked_columns(const char* op, at::TensorList columns, const at::Tensor& anchor,
                                        const char* anchor_name, int64_t trees, int64_t rows);

// The output of gathering `batch` rows (per tree) of `column`.
at::Tensor gathered_like(const at::Tensor& column, int64_t trees, int64_t batch);

// What sumtree_sample and replay_sample return, allocated, with their uniform
// draws: [B] or [T, B] (a batch of trees), and one [.., B, ...] tensor per column.
struct SampleOutputs {
  Trees trees;
  std::vector<ColumnRows> columns;
  // The uniform draws: on the host for a CPU tree (this thread's scratch,
  // valid until its next call), else a tensor on the tree's device.
  const double* host_uniform = nullptr;
  at::Tensor uniform;
  at::Tensor index, weight;
  std::vector<at::Tensor> rows;
};

// Checks everything (with `check_mass_on_host`, also that every tree holds
// priority mass: the CPU kernels read it, CUDA records it on the device),
// then draws the uniforms from `generator`: a rejected call draws nothing.
SampleOutputs prepare_sample(const char* op, const at::Tensor& tree, int64_t capacity, int64_t fanout,
                             at::TensorList columns, int64_t batch_size, double beta,
                             std::optional<at::Generator> generator, bool check_mass_on_host);

// Checks the columns and returns `index` as a contiguous int64 tensor whose
// entries are in range (range checked on CPU only; CUDA checks on device).
// A 1-D index gathers from [rows, ...] columns; a 2-D [T, B] index gathers
// row index[t, b] of tree t from [T, rows, ...] columns.
at::Tensor prepare_replay_gather(at::TensorList columns, const at::Tensor& index, bool check_values = true);

}  // namespace rltorch
