#include <ATen/ATen.h>
#include <torch/library.h>

#include "../sumtree_common.h"
#include "device_error.cuh"
#include "launch.cuh"
#include "rltorch/sumtree.h"

// The CUDA update resolves duplicates the way the CPU loop does (the last
// kept occurrence of a leaf wins) without a serial kernel: a stable sort
// groups equal leaves with their input order preserved, the last entry of
// each run writes the leaf, and the ancestors are then recomputed level by
// level, each touched node by exactly one thread (the first of its run of
// equal ancestors in sorted order). Entries that are not kept sort under a
// key of their own (capacity + position), so they never form a run: a batch
// padded with -1 ids costs what its kept entries cost. Work is O(B log N) per
// call, never a rebuild of the whole tree.
//
// Batches of at most kSmallBatch entries run as one block (sort in shared
// memory, __syncthreads() between levels): one launch instead of ~11.
//
// Bad input (index out of range, NaN/inf/negative priority) is recorded in
// the device's error record (device_error.cuh) and the tree and running max
// are left unchanged, as when any blocking error is pending on the device.
// per_update_priorities_ skips non-finite td errors (the rest of the batch is
// written) and records them as a report.

namespace rltorch {
namespace {

using cuda::ErrorRecord;
namespace de = device_error;

constexpr int kSmallBatch = 1024;

// running_max_fold (sumtree.h) as an atomic: a compare-and-swap loop on the
// double itself. (The integer atomicMax on the bits this replaces never
// raised a negative start such as -inf or -0.0.) Values are never NaN, so the
// result does not depend on the order in which threads get here.
__device__ void atomic_running_max(double* address, double value) {
  unsigned long long* bits = reinterpret_cast<unsigned long long*>(address);
  unsigned long long seen = *reinterpret_cast<volatile unsigned long long*>(bits);
  while (true) {
    const double current = __longlong_as_double(static_cast<long long>(seen));
    const double wanted = sumtree::running_max_fold(current, value);
    if (__double_as_longlong(wanted) == __double_as_longlong(current)) return;
    const unsigned long long before =
        atomicCAS(bits, seen, static_cast<unsigned long long>(__double_as_longlong(wanted)));
    if (before == seen) return;
    seen = before;
  }
}

// Folds one warp's kept values (v = priority + eps) into the running max with
// one atomic per warp. Every lane of the warp must call it.
__device__ __forceinline__ void warp_running_max(double* running_max, bool kept, double v) {
  const unsigned int lanes = __ballot_sync(0xffffffffu, kept);
  if (lanes == 0) return;
  double m = kept ? v : -INFINITY;  // values are >= 0: -inf never wins
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const double other = __shfl_xor_sync(0xffffffffu, m, offset);
    m = other > m ? other : m;
  }
  if ((threadIdx.x & 31) == 0) atomic_running_max(running_max, m);
}

// Where the entries of an update come from. load() returns the entry's leaf,
// raw priority and whether it is kept, recording bad input; it returns false
// for input that must block the whole call. store_payload() saves the
// offending value of a recorded error for the message.
struct UpdateSource {  // sumtree_update_
  const int64_t* index;
  const double* priority;
  const bool* keep;  // null: keep all
  int64_t capacity;

  __device__ bool load(int64_t i, ErrorRecord record, int64_t* leaf, double* p, bool* kept) const {
    const int64_t idx = index[i];
    const double pr = priority[i];
    bool ok = true;
    if (idx < 0 || idx >= capacity) {
      cuda::record_error(record, de::kSumtreeIndex, i);
      ok = false;
    }
    if (!(isfinite(pr) && pr >= 0.0)) {
      cuda::record_error(record, de::kSumtreePriority, i);
      ok = false;
    }
    *leaf = idx;
    *p = pr;
    *kept = ok && (keep == nullptr || keep[i]);
    return ok;
  }

  __device__ void store_payload(int64_t i, unsigned long long word, ErrorRecord record) const {
    if (de::key_code(word) == de::kSumtreeIndex) {
      cuda::store_payload(record, word, index[i], capacity);
    } else if (de::key_code(word) == de::kSumtreePriority) {
      cuda::store_payload(record, word, __double_as_longlong(priority[i]), 0);
    }
  }
};

struct PerSource {  // per_update_priorities_
  const int64_t* slot_ids;
  const int64_t* index;
  const double* td_error;
  int64_t capacity;

  __device__ bool load(int64_t i, ErrorRecord record, int64_t* leaf, double* p, bool* kept) const {
    const int64_t id = index[i];
    const double td = td_error[i];
    const bool finite = isfinite(td);
    if (!finite) {
      cuda::record_error(record, td != td ? de::kPerTdNan : (td > 0.0 ? de::kPerTdPosInf : de::kPerTdNegInf), i);
    }
    const int64_t r = id % capacity;  // C++ remainder: negative for negative ids
    const int64_t slot = r < 0 ? r + capacity : r;
    *leaf = slot;
    *p = finite ? fabs(td) : 0.0;
    *kept = finite && id >= 0 && slot_ids[slot] == id;
    return true;  // skipped entries are reports: the rest of the batch is written
  }

  __device__ void store_payload(int64_t, unsigned long long, ErrorRecord) const {}  // the code says the value
};

// ---- small batches: one block does everything ----

template <int K, typename Source>
__global__ void __launch_bounds__(kSmallBatch)
    update_small_kernel(double* sums, double* mins, const sumtree::Layout layout, const Source source,
                        int64_t batch, double alpha, double eps, double* running_max, ErrorRecord record) {
  __shared__ int64_t keys[kSmallBatch];
  __shared__ int32_t positions[kSmallBatch];
  __shared__ double raw[kSmallBatch];
  __shared__ int bad_input;
  __shared__ int blocked;
  const int t = threadIdx.x;
  const int padded = blockDim.x;  // a power of two >= batch, >= 32
  if (t == 0) {
    bad_input = 0;
    blocked = de::is_blocking(cuda::read_error_word(record));
  }
  __syncthreads();
  int64_t key = INT64_MAX;  // padding sorts last
  double p = 0.0;
  bool kept = false;
  if (t < batch) {
    int64_t leaf;
    if (!source.load(t, record, &leaf, &p, &kept)) atomicOr(&bad_input, 1);  // atomic: no racecheck hazard
    key = kept ? leaf : layout.capacity + t;
  }
  keys[t] = key;
  positions[t] = t;
  raw[t] = p;
  __syncthreads();
  if (bad_input || blocked) {
    // Every record of this call is in by now; the thread whose entry holds
    // the recorded key keeps its value for the message.
    if (t < batch) {
      const unsigned long long word = cuda::read_error_word(record);
      if (de::key_position(word) == t) source.store_payload(t, word, record);
    }
    return;
  }
  if (running_max != nullptr) warp_running_max(running_max, kept, p + eps);
  // Bitonic sort of (key, position): positions are distinct, so the order is
  // total and equal leaves keep their input order (a stable sort).
  for (int k = 2; k <= padded; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      const int partner = t ^ j;
      if (partner > t) {
        const int64_t ka = keys[t], kb = keys[partner];
        const int32_t pa = positions[t], pb = positions[partner];
        const bool greater = ka > kb || (ka == kb && pa > pb);
        if (greater == ((t & k) == 0)) {
          keys[t] = kb;
          keys[partner] = ka;
          positions[t] = pb;
          positions[partner] = pa;
        }
      }
      __syncthreads();
    }
  }
  const int64_t leaf = keys[t];
  const bool mine = leaf < layout.capacity;  // a kept entry (padding and dropped entries sort after them)
  if (mine && (t + 1 == padded || keys[t + 1] != leaf)) {  // the last of its run wins
    const double v = sumtree::transform_priority(raw[positions[t]], alpha, eps);
    sums[layout.leaf_offset() + leaf] = v;
    mins[layout.leaf_offset() + leaf] = sumtree::min_value(v);
  }
  __syncthreads();
  int64_t divisor = 1;
  for (int level = layout.levels - 2; level >= 0; --level) {
    divisor *= K;
    if (mine) {
      const int64_t node = leaf / divisor;
      if (t == 0 || keys[t - 1] / divisor != node) sumtree::recompute_node<K, double>(sums, mins, layout, level, node);
    }
    __syncthreads();  // a level's nodes are final before their parents read them
  }
}

// ---- large batches: validate, sort, write the leaves, one launch per level ----

template <typename Source>
__global__ void update_prepare_kernel(const Source source, int64_t batch, int64_t capacity,
                                      int64_t* __restrict__ keys, double* __restrict__ raw, ErrorRecord record) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch) return;
  int64_t leaf;
  double p;
  bool kept;
  source.load(i, record, &leaf, &p, &kept);
  keys[i] = kept ? leaf : capacity + i;
  raw[i] = p;
}

template <typename Source>
__global__ void write_leaves_kernel(double* sums, double* mins, const sumtree::Layout layout,
                                    const int64_t* __restrict__ sorted, const int64_t* __restrict__ order,
                                    const double* __restrict__ raw, const Source source, int64_t batch,
                                    double alpha, double eps, double* running_max, ErrorRecord record) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  // One read per warp, so the whole warp takes one branch (the running max
  // below needs every lane).
  unsigned long long word = (threadIdx.x & 31) == 0 ? cuda::read_error_word(record) : 0ull;
  word = __shfl_sync(0xffffffffu, word, 0);
  if (de::is_blocking(word)) {
    // Leaves untouched; the ancestors' recompute that follows is then a no-op.
    if (i < batch && de::key_position(word) == i) source.store_payload(i, word, record);
    return;
  }
  const bool active = i < batch;
  const int64_t leaf = active ? sorted[i] : layout.capacity;
  const bool kept = leaf < layout.capacity;
  const double p = kept ? raw[order[i]] : 0.0;
  if (running_max != nullptr) warp_running_max(running_max, kept, p + eps);  // whole warps get here
  if (!kept) return;
  if (i + 1 < batch && sorted[i + 1] == leaf) return;  // not the last of its run
  const double v = sumtree::transform_priority(p, alpha, eps);
  sums[layout.leaf_offset() + leaf] = v;
  mins[layout.leaf_offset() + leaf] = sumtree::min_value(v);
}

template <int K>
__global__ void recompute_level_kernel(double* __restrict__ sums, double* __restrict__ mins,
                                       const sumtree::Layout layout, const int64_t* __restrict__ sorted,
                                       int64_t batch, int level, int64_t divisor) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch) return;
  const int64_t leaf = sorted[i];
  if (leaf >= layout.capacity) return;  // dropped entries sort after every kept one
  const int64_t node = leaf / divisor;
  if (i > 0 && sorted[i - 1] / divisor == node) return;
  sumtree::recompute_node<K, double>(sums, mins, layout, level, node);
}

int small_block_size(int64_t batch) {
  int threads = 32;
  while (threads < batch) threads *= 2;
  return threads;
}

// The update shared by sumtree_update_ and per_update_priorities_; the
// arguments have been checked on the host (shapes, dtypes, devices).
template <typename Source>
void launch_update(const at::Tensor& tree, const sumtree::Layout& layout, int64_t fanout, const Source& source,
                   int64_t batch, double alpha, double eps, double* running_max) {
  if (batch == 0) return;
  double* sums = tree.mutable_data_ptr<double>();
  double* mins = sums + layout.storage;
  const ErrorRecord record = cuda::error_record_for(tree);
  const cudaStream_t stream = cuda::current_stream();
  if (batch <= kSmallBatch) {
    dispatch_fanout(fanout, [&](auto k) {
      constexpr int K = decltype(k)::value;
      update_small_kernel<K, Source><<<1, small_block_size(batch), 0, stream>>>(
          sums, mins, layout, source, batch, alpha, eps, running_max, record);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return;
  }
  TORCH_CHECK(layout.capacity <= INT64_MAX - batch, "rltorch.sumtree_update_: capacity + batch overflows int64");
  const unsigned int blocks = cuda::blocks_for(batch);
  at::Tensor keys = at::empty({batch}, tree.options().dtype(at::kLong));
  at::Tensor raw = at::empty({batch}, tree.options());
  update_prepare_kernel<Source><<<blocks, cuda::kThreads, 0, stream>>>(
      source, batch, layout.capacity, keys.mutable_data_ptr<int64_t>(), raw.mutable_data_ptr<double>(), record);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const auto [sorted, order] = at::sort(keys, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  write_leaves_kernel<Source><<<blocks, cuda::kThreads, 0, stream>>>(
      sums, mins, layout, sorted.const_data_ptr<int64_t>(), order.const_data_ptr<int64_t>(),
      raw.const_data_ptr<double>(), source, batch, alpha, eps, running_max, record);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    int64_t divisor = 1;
    for (int level = layout.levels - 2; level >= 0; --level) {
      divisor *= K;
      recompute_level_kernel<K><<<blocks, cuda::kThreads, 0, stream>>>(
          sums, mins, layout, sorted.const_data_ptr<int64_t>(), batch, level, divisor);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
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
  double* rm = (running_max.has_value() && running_max->defined()) ? running_max->mutable_data_ptr<double>() : nullptr;
  const UpdateSource source{a.index.const_data_ptr<int64_t>(), a.priority.const_data_ptr<double>(),
                            a.keep.defined() ? a.keep.const_data_ptr<bool>() : nullptr, capacity};
  launch_update(tree, a.layout, fanout, source, a.batch, alpha, eps, rm);
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

// Non-finite td errors are skipped (not written, not in the running max) and
// reported through the device's error record: no host sync.
void per_update_priorities_cuda(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                const at::Tensor& slot_ids, const at::Tensor& index, const at::Tensor& td_error,
                                double alpha, double eps, const at::Tensor& running_max) {
  const PerUpdateArgs a =
      prepare_per_update(tree, capacity, fanout, slot_ids, index, td_error, alpha, eps, running_max);
  if (a.batch == 0) return;
  const c10::cuda::CUDAGuard guard(tree.device());
  const PerSource source{a.slot_ids.const_data_ptr<int64_t>(), a.index.const_data_ptr<int64_t>(),
                         a.td_error.const_data_ptr<double>(), capacity};
  launch_update(tree, a.layout, fanout, source, a.batch, alpha, eps, running_max.mutable_data_ptr<double>());
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
