#include <ATen/ATen.h>
#include <torch/library.h>

#include "../sumtree_common.h"
#include "launch.cuh"
#include "rltorch/sumtree.h"

// The CUDA update resolves duplicates the way the CPU loop does (the last
// kept occurrence of a leaf wins) without a serial kernel: a stable sort
// groups equal indices with their input order preserved, the last entry of
// each run writes the leaf, and the ancestors are then recomputed level by
// level, each touched node by exactly one thread (the first of its run of
// equal ancestors in sorted order). Work is O(B log N) per call, never a
// rebuild of the whole tree.

namespace rltorch {
namespace {

__device__ __forceinline__ void atomic_max_nonneg(double* address, double value) {
  // Non-negative IEEE doubles order like their bit patterns read as unsigned integers.
  // A negative value or NaN (unvalidated input) would compare above every
  // positive one there and pin the running max for good; the CPU's
  // `raw > batch_max` never lets them win, so neither may the GPU.
  if (!(value > 0.0)) return;
  atomicMax(reinterpret_cast<unsigned long long*>(address),
            static_cast<unsigned long long>(__double_as_longlong(value)));
}

template <int K>
__global__ void write_leaves_kernel(double* __restrict__ sums, double* __restrict__ mins,
                                    const sumtree::Layout layout, const int64_t* __restrict__ sorted,
                                    const int64_t* __restrict__ order, const double* __restrict__ priority,
                                    const bool* __restrict__ keep, int64_t batch, double alpha,
                                    double eps, double* __restrict__ running_max) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch) return;
  const int64_t leaf = sorted[i];
  CUDA_KERNEL_ASSERT(leaf >= 0 && leaf < layout.capacity && "rltorch.sumtree_update_: index out of range");
  if (leaf < 0 || leaf >= layout.capacity) return;
  const int64_t pos = order[i];
  if (running_max != nullptr && (keep == nullptr || keep[pos])) {
    atomic_max_nonneg(running_max, priority[pos] + eps);
  }
  if (i + 1 < batch && sorted[i + 1] == leaf) return;  // not the last of its run
  // Walk back to the last kept entry of the run (runs are short: duplicates).
  for (int64_t j = i;; --j) {
    const int64_t p = order[j];
    if (keep == nullptr || keep[p]) {
      const double v = sumtree::transform_priority(priority[p], alpha, eps);
      sums[layout.leaf_offset() + leaf] = v;
      mins[layout.leaf_offset() + leaf] = sumtree::min_value(v);
      return;
    }
    if (j == 0 || sorted[j - 1] != leaf) return;
  }
}

template <int K>
__global__ void recompute_level_kernel(double* __restrict__ sums, double* __restrict__ mins,
                                       const sumtree::Layout layout, const int64_t* __restrict__ sorted,
                                       int64_t batch, int level, int64_t divisor) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch) return;
  const int64_t leaf = sorted[i];
  if (leaf < 0 || leaf >= layout.capacity) return;
  const int64_t node = leaf / divisor;
  if (i > 0 && sorted[i - 1] / divisor == node) return;
  sumtree::recompute_node<K, double>(sums, mins, layout, level, node);
}

template <int K>
__global__ void find_kernel(const double* __restrict__ sums, const sumtree::Layout layout,
                            const double* __restrict__ mass, int64_t n, int64_t* __restrict__ out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  out[i] = sumtree::find_prefix<K, double>(sums, layout, mass[i]);
}

template <int K>
__global__ void sample_kernel(const double* __restrict__ sums, const double* __restrict__ mins,
                              const sumtree::Layout layout, const double* __restrict__ uniform,
                              int64_t batch, double beta, int64_t* __restrict__ index,
                              float* __restrict__ weight) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch) return;
  const double u = (static_cast<double>(i) + uniform[i]) / static_cast<double>(batch) * sums[0];
  const int64_t leaf = sumtree::find_prefix<K, double>(sums, layout, u);
  index[i] = leaf;
  weight[i] = sumtree::importance_weight(sums[layout.leaf_offset() + leaf], mins[0], static_cast<float>(beta));
}

void sumtree_update_cuda(const at::Tensor& tree, int64_t capacity, int64_t fanout, const at::Tensor& index,
                         const at::Tensor& priority, const std::optional<at::Tensor>& keep,
                         double alpha, double eps, const std::optional<at::Tensor>& running_max) {
  const SumtreeUpdateArgs a =
      prepare_sumtree_update(tree, capacity, fanout, index, priority, keep, alpha, eps, running_max);
  if (a.batch == 0) return;
  const c10::cuda::CUDAGuard guard(tree.device());
  const auto [sorted, order] = at::sort(a.index, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  double* sums = tree.mutable_data_ptr<double>();
  double* mins = sums + a.layout.storage;
  double* rm = (running_max.has_value() && running_max->defined()) ? running_max->mutable_data_ptr<double>() : nullptr;
  const bool* kp = a.keep.defined() ? a.keep.const_data_ptr<bool>() : nullptr;
  const cudaStream_t stream = cuda::current_stream();
  const unsigned int blocks = cuda::blocks_for(a.batch);
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    write_leaves_kernel<K><<<blocks, cuda::kThreads, 0, stream>>>(
        sums, mins, a.layout, sorted.const_data_ptr<int64_t>(), order.const_data_ptr<int64_t>(),
        a.priority.const_data_ptr<double>(), kp, a.batch, alpha, eps, rm);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    int64_t divisor = 1;
    for (int level = a.layout.levels - 2; level >= 0; --level) {
      divisor *= K;
      recompute_level_kernel<K><<<blocks, cuda::kThreads, 0, stream>>>(
          sums, mins, a.layout, sorted.const_data_ptr<int64_t>(), a.batch, level, divisor);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
}

at::Tensor sumtree_find_cuda(const at::Tensor& tree, int64_t capacity, int64_t fanout, const at::Tensor& mass) {
  sumtree::Layout layout;
  const at::Tensor m = prepare_sumtree_find(tree, capacity, fanout, mass, &layout);
  at::Tensor out = at::empty(mass.sizes(), mass.options().dtype(at::kLong));
  const int64_t n = m.numel();
  if (n == 0) return out;
  const c10::cuda::CUDAGuard guard(tree.device());
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    find_kernel<K><<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(
        tree.const_data_ptr<double>(), layout, m.const_data_ptr<double>(), n, out.mutable_data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> sumtree_sample_cuda(const at::Tensor& tree, int64_t capacity,
                                                       int64_t fanout, int64_t batch_size, double beta,
                                                       std::optional<at::Generator> generator) {
  const sumtree::Layout layout = prepare_sumtree_sample(tree, capacity, fanout, batch_size, beta);
  const c10::cuda::CUDAGuard guard(tree.device());
  // Drawn on the tree's device from the caller's generator: no host sync.
  const at::Tensor uniform = at::rand({batch_size}, generator, tree.options());
  at::Tensor index = at::empty({batch_size}, tree.options().dtype(at::kLong));
  at::Tensor weight = at::empty({batch_size}, tree.options().dtype(at::kFloat));
  if (batch_size == 0) return {index, weight};
  const double* sums = tree.const_data_ptr<double>();
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    sample_kernel<K><<<cuda::blocks_for(batch_size), cuda::kThreads, 0, cuda::current_stream()>>>(
        sums, sums + layout.storage, layout, uniform.const_data_ptr<double>(), batch_size, beta,
        index.mutable_data_ptr<int64_t>(), weight.mutable_data_ptr<float>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {index, weight};
}

// Composed of ATen ops on the device (no host sync); the value checks of the
// td errors happen in the Python wrapper (validate=True), as for sumtree_update_.
void per_update_priorities_cuda(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                const at::Tensor& slot_ids, const at::Tensor& index, const at::Tensor& td_error,
                                double alpha, double eps, const at::Tensor& running_max) {
  const PerUpdateArgs a =
      prepare_per_update(tree, capacity, fanout, slot_ids, index, td_error, alpha, eps, running_max);
  const at::Tensor slots = a.index.remainder(capacity);
  const at::Tensor keep = a.slot_ids.index_select(0, slots).eq(a.index).logical_and_(a.index.ge(0));
  sumtree_update_cuda(tree, capacity, fanout, slots, a.td_error.abs(), keep, alpha, eps, running_max);
}

std::vector<at::Tensor> replay_gather_cuda(at::TensorList columns, const at::Tensor& index) {
  // Range checks of `index` would need a host sync; index_select asserts on device instead.
  const at::Tensor idx = prepare_replay_gather(columns, index, /*check_values=*/false);
  std::vector<at::Tensor> out;
  out.reserve(columns.size());
  for (const at::Tensor& column : columns) out.push_back(at::index_select(column, 0, idx));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(rltorch, CUDA, m) {
  m.impl("per_update_priorities_", &per_update_priorities_cuda);
  m.impl("replay_gather", &replay_gather_cuda);
  m.impl("sumtree_update_", &sumtree_update_cuda);
  m.impl("sumtree_find", &sumtree_find_cuda);
  m.impl("sumtree_sample", &sumtree_sample_cuda);
}

}  // namespace rltorch
