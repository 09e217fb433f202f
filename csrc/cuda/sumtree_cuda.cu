#include <ATen/ATen.h>
#include <torch/library.h>

#include <vector>

#include "../sumtree_common.h"
#include "device_error.cuh"
#include "launch.cuh"
#include "rltorch/sumtree.h"

// Every kernel serves one tree or a batch of T trees ([T, size]): entry i of
// a batched call belongs to tree i / per_tree.
//
// The CUDA update resolves duplicates the way the CPU loop does (the last
// kept occurrence of a leaf wins) without a serial kernel: a stable sort
// groups equal (tree, leaf) keys with their input order preserved, the last
// entry of each run writes the leaf, and the ancestors are then recomputed
// level by level, each touched node by exactly one thread (the first of its
// run of equal ancestors in sorted order). Entries that are not kept sort
// under a key of their own (capacity + position within the tree), so they
// never form a run: a batch padded with -1 ids costs what its kept entries
// cost. Work is O(B log N) per call, never a rebuild of the whole tree.
//
// Batches of at most kSmallBatch entries (all trees together) run as one
// block (sort in shared memory, __syncthreads() between levels): one launch
// instead of ~11.
//
// Bad input (index out of range, NaN/inf/negative priority, priority + eps
// above max_raw_priority) is recorded in the device's error record
// (device_error.cuh) and every tree and running max are left unchanged, as
// when any blocking error is pending on the device. per_update_priorities_
// skips non-finite and too large td errors (the rest of the batch is written)
// and records them as a report. Sampling a tree without priority mass records
// an error too (the samples are then meaningless).

namespace rltorch {
namespace {

using cuda::ErrorRecord;
namespace de = device_error;

constexpr int kSmallBatch = 1024;
// Columns one replay_sample / replay_gather launch copies (more: a second launch).
constexpr int kMaxColumns = 12;

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

// Folds kept values (v = priority + eps) into the running max of their tree.
// One tree: one atomic per warp. Several: one per lane (a warp may span trees;
// the loop above returns at once for a value that does not raise the max).
// Every lane of the warp must call it.
__device__ __forceinline__ void fold_running_max(double* running_max, bool batched, int64_t tree, bool kept,
                                                 double v) {
  if (batched) {
    if (kept) atomic_running_max(running_max + tree, v);
    return;
  }
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
  double eps;
  double max_raw;

  __device__ bool load(int64_t i, int64_t, ErrorRecord record, int64_t* leaf, double* p, bool* kept) const {
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
    } else if (!(pr + eps <= max_raw)) {
      cuda::record_error(record, de::kSumtreePriorityTooLarge, i);
      ok = false;
    }
    *leaf = idx;
    *p = pr;
    *kept = ok && (keep == nullptr || keep[i]);
    return ok;
  }

  // Only an entry that is bad in the recorded way keeps its value: the record
  // may hold an older call's key at the same position.
  __device__ void store_payload(int64_t i, unsigned long long word, ErrorRecord record) const {
    const int code = de::key_code(word);
    const double pr = priority[i];
    if (code == de::kSumtreeIndex && (index[i] < 0 || index[i] >= capacity)) {
      cuda::store_payload(record, word, index[i], capacity);
    } else if ((code == de::kSumtreePriority && !(isfinite(pr) && pr >= 0.0)) ||
               (code == de::kSumtreePriorityTooLarge && isfinite(pr) && pr >= 0.0 && !(pr + eps <= max_raw))) {
      cuda::store_payload(record, word, __double_as_longlong(pr), __double_as_longlong(max_raw));
    }
  }
};

struct PerSource {  // per_update_priorities_
  const int64_t* slot_ids;
  int64_t ids_tree_stride;
  int64_t ids_stride;
  const int64_t* index;
  const double* td_error;
  int64_t capacity;
  double eps;
  double max_raw;

  __device__ bool load(int64_t i, int64_t tree, ErrorRecord record, int64_t* leaf, double* p, bool* kept) const {
    const int64_t id = index[i];
    const double td = td_error[i];
    const bool finite = isfinite(td);
    const bool fits = finite && fabs(td) + eps <= max_raw;
    if (!finite) {
      cuda::record_error(record, td != td ? de::kPerTdNan : (td > 0.0 ? de::kPerTdPosInf : de::kPerTdNegInf), i);
    } else if (!fits) {
      cuda::record_error(record, de::kPerTdTooLarge, i);
    }
    const int64_t r = id % capacity;  // C++ remainder: negative for negative ids
    const int64_t slot = r < 0 ? r + capacity : r;
    *leaf = slot;
    *p = fits ? fabs(td) : 0.0;
    *kept = fits && id >= 0 && slot_ids[tree * ids_tree_stride + slot * ids_stride] == id;
    return true;  // skipped entries are reports: the rest of the batch is written
  }

  __device__ void store_payload(int64_t i, unsigned long long word, ErrorRecord record) const {
    // The other codes name their value; a too large one is kept for the message
    // (only by the entry that holds one: the record may name an older call's).
    const double td = td_error[i];
    if (de::key_code(word) == de::kPerTdTooLarge && isfinite(td) && !(fabs(td) + eps <= max_raw)) {
      cuda::store_payload(record, word, __double_as_longlong(td), __double_as_longlong(max_raw));
    }
  }
};

// Key of an entry: its tree's range of keys, then the leaf (kept) or a key of
// its own past every leaf (dropped).
__device__ __forceinline__ int64_t entry_key(int64_t tree, int64_t key_stride, int64_t capacity, bool kept,
                                             int64_t leaf, int64_t within) {
  return tree * key_stride + (kept ? leaf : capacity + within);
}

// ---- small batches: one block does everything ----

template <int K, typename Source>
__global__ void __launch_bounds__(kSmallBatch)
    update_small_kernel(double* trees, const sumtree::Layout layout, bool batched, int64_t per_tree,
                        const Source source, int64_t batch, double alpha, double eps, double* running_max,
                        ErrorRecord record) {
  __shared__ int64_t keys[kSmallBatch];
  __shared__ int32_t positions[kSmallBatch];
  __shared__ double raw[kSmallBatch];
  __shared__ int bad_input;
  __shared__ int blocked;
  const int t = threadIdx.x;
  const int padded = blockDim.x;  // a power of two >= batch, >= 32
  const int64_t key_stride = layout.capacity + per_tree;
  if (t == 0) {
    bad_input = 0;
    blocked = de::is_blocking(cuda::read_error_word(record));
  }
  __syncthreads();
  int64_t key = INT64_MAX;  // padding sorts last
  double p = 0.0;
  bool kept = false;
  int64_t tree = 0;
  if (t < batch) {
    tree = t / per_tree;
    int64_t leaf;
    if (!source.load(t, tree, record, &leaf, &p, &kept)) atomicOr(&bad_input, 1);  // atomic: no racecheck hazard
    key = entry_key(tree, key_stride, layout.capacity, kept, leaf, t - tree * per_tree);
  }
  keys[t] = key;
  positions[t] = t;
  raw[t] = p;
  __syncthreads();
  if (t < batch) {
    // Every record of this call is in by now; the thread whose entry holds
    // the recorded key keeps its value for the message.
    const unsigned long long word = cuda::read_error_word(record);
    if (word != de::kClear && de::key_position(word) == t) source.store_payload(t, word, record);
  }
  if (bad_input || blocked) return;
  if (running_max != nullptr) fold_running_max(running_max, batched, tree, kept, p + eps);
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
  const int64_t mine_key = keys[t];
  const int64_t my_tree = mine_key == INT64_MAX ? 0 : mine_key / key_stride;
  const int64_t leaf = mine_key == INT64_MAX ? layout.capacity : mine_key - my_tree * key_stride;
  const bool mine = leaf < layout.capacity;  // a kept entry (padding and dropped entries have keys past the leaves)
  double* sums = trees + my_tree * layout.size();
  double* mins = sums + layout.storage;
  if (mine && (t + 1 == padded || keys[t + 1] != mine_key)) {  // the last of its run wins
    sums[layout.leaf_offset() + leaf] = sumtree::transform_priority(raw[positions[t]], alpha, eps);
  }
  __syncthreads();
  int64_t divisor = 1;
  for (int level = layout.levels - 2; level >= 0; --level) {
    divisor *= K;
    if (mine) {
      const int64_t node = leaf / divisor;
      bool first = t == 0;
      if (!first) {
        const int64_t prev = keys[t - 1];
        const int64_t prev_tree = prev / key_stride;
        first = prev_tree != my_tree || (prev - prev_tree * key_stride) / divisor != node;
      }
      if (first) sumtree::recompute_node<K, double>(sums, mins, layout, level, node);
    }
    __syncthreads();  // a level's nodes are final before their parents read them
  }
}

// ---- large batches: validate, sort, write the leaves, one launch per level ----

template <typename Source>
__global__ void update_prepare_kernel(const Source source, int64_t batch, int64_t per_tree, int64_t capacity,
                                      int64_t* __restrict__ keys, double* __restrict__ raw, ErrorRecord record) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch) return;
  const int64_t tree = i / per_tree;
  int64_t leaf;
  double p;
  bool kept;
  source.load(i, tree, record, &leaf, &p, &kept);
  keys[i] = entry_key(tree, capacity + per_tree, capacity, kept, leaf, i - tree * per_tree);
  raw[i] = p;
}

template <typename Source>
__global__ void write_leaves_kernel(double* trees, const sumtree::Layout layout, bool batched, int64_t per_tree,
                                    const int64_t* __restrict__ sorted, const int64_t* __restrict__ order,
                                    const double* __restrict__ raw, const Source source, int64_t batch,
                                    double alpha, double eps, double* running_max, ErrorRecord record) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  // One read per warp, so the whole warp takes one branch (the running max
  // below needs every lane).
  unsigned long long word = (threadIdx.x & 31) == 0 ? cuda::read_error_word(record) : 0ull;
  word = __shfl_sync(0xffffffffu, word, 0);
  if (i < batch && word != de::kClear && de::key_position(word) == i) source.store_payload(i, word, record);
  // Blocked: leaves untouched; the ancestors' recompute that follows is then a no-op.
  if (de::is_blocking(word)) return;
  const int64_t key_stride = layout.capacity + per_tree;
  const int64_t key = i < batch ? sorted[i] : -1;
  const int64_t tree = key >= 0 ? key / key_stride : 0;
  const int64_t leaf = key >= 0 ? key - tree * key_stride : layout.capacity;
  const bool kept = leaf < layout.capacity;
  const double p = kept ? raw[order[i]] : 0.0;
  if (running_max != nullptr) fold_running_max(running_max, batched, tree, kept, p + eps);  // whole warps get here
  if (!kept) return;
  if (i + 1 < batch && sorted[i + 1] == key) return;  // not the last of its run
  double* sums = trees + tree * layout.size();
  sums[layout.leaf_offset() + leaf] = sumtree::transform_priority(p, alpha, eps);
}

template <int K>
__global__ void recompute_level_kernel(double* __restrict__ trees, const sumtree::Layout layout, int64_t per_tree,
                                       const int64_t* __restrict__ sorted, int64_t batch, int level, int64_t divisor) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch) return;
  const int64_t key_stride = layout.capacity + per_tree;
  const int64_t key = sorted[i];
  const int64_t tree = key / key_stride;
  const int64_t leaf = key - tree * key_stride;
  if (leaf >= layout.capacity) return;  // dropped entries sort after every kept one of their tree
  const int64_t node = leaf / divisor;
  if (i > 0) {
    const int64_t prev = sorted[i - 1];
    const int64_t prev_tree = prev / key_stride;
    if (prev_tree == tree && (prev - prev_tree * key_stride) / divisor == node) return;
  }
  double* sums = trees + tree * layout.size();
  sumtree::recompute_node<K, double>(sums, sums + layout.storage, layout, level, node);
}

int small_block_size(int64_t batch) {
  int threads = 32;
  while (threads < batch) threads *= 2;
  return threads;
}

// The update shared by sumtree_update_ and per_update_priorities_; the
// arguments have been checked on the host (shapes, dtypes, devices).
template <typename Source>
void launch_update(const at::Tensor& tree, const Trees& trees, int64_t fanout, const Source& source,
                   int64_t batch, int64_t per_tree, double alpha, double eps, double* running_max) {
  if (batch == 0) return;
  const sumtree::Layout& layout = trees.layout;
  double* base = tree.mutable_data_ptr<double>();
  const ErrorRecord record = cuda::error_record_for(tree);
  const cudaStream_t stream = cuda::current_stream();
  TORCH_CHECK(layout.capacity <= (INT64_MAX - 1) / trees.count - per_tree,
              "rltorch.sumtree_update_: trees * (capacity + batch) overflows int64");
  if (batch <= kSmallBatch) {
    dispatch_fanout(fanout, [&](auto k) {
      constexpr int K = decltype(k)::value;
      update_small_kernel<K, Source><<<1, small_block_size(batch), 0, stream>>>(
          base, layout, trees.batched, per_tree, source, batch, alpha, eps, running_max, record);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return;
  }
  const unsigned int blocks = cuda::blocks_for(batch);
  at::Tensor keys = at::empty({batch}, tree.options().dtype(at::kLong));
  at::Tensor raw = at::empty({batch}, tree.options());
  update_prepare_kernel<Source><<<blocks, cuda::kThreads, 0, stream>>>(
      source, batch, per_tree, layout.capacity, keys.mutable_data_ptr<int64_t>(), raw.mutable_data_ptr<double>(),
      record);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const auto [sorted, order] = at::sort(keys, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  write_leaves_kernel<Source><<<blocks, cuda::kThreads, 0, stream>>>(
      base, layout, trees.batched, per_tree, sorted.const_data_ptr<int64_t>(), order.const_data_ptr<int64_t>(),
      raw.const_data_ptr<double>(), source, batch, alpha, eps, running_max, record);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    int64_t divisor = 1;
    for (int level = layout.levels - 2; level >= 0; --level) {
      divisor *= K;
      recompute_level_kernel<K><<<blocks, cuda::kThreads, 0, stream>>>(
          base, layout, per_tree, sorted.const_data_ptr<int64_t>(), batch, level, divisor);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
}

template <int K>
__global__ void find_kernel(const double* __restrict__ trees, const sumtree::Layout layout, int64_t per_tree,
                            const double* __restrict__ mass, int64_t n, int64_t* __restrict__ out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  out[i] = sumtree::find_prefix<K, double>(trees + (i / per_tree) * layout.size(), layout, mass[i]);
}

// The rows of `count` columns gathered per sample; dst[c] is [n, row_bytes[c]].
struct GatherColumns {
  const char* base[kMaxColumns];
  char* dst[kMaxColumns];
  int64_t tree_stride[kMaxColumns];
  int64_t row_stride[kMaxColumns];
  int64_t row_bytes[kMaxColumns];
  int count = 0;
};

// Copies one row in the widest words its addresses and size allow.
__device__ __forceinline__ void copy_row(char* dst, const char* src, int64_t bytes) {
  const uintptr_t both = reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src) |
                         static_cast<uintptr_t>(bytes);
  if ((both & 7) == 0) {
    for (int64_t b = 0; b < bytes; b += 8) {
      *reinterpret_cast<uint64_t*>(dst + b) = *reinterpret_cast<const uint64_t*>(src + b);
    }
  } else if ((both & 3) == 0) {
    for (int64_t b = 0; b < bytes; b += 4) {
      *reinterpret_cast<uint32_t*>(dst + b) = *reinterpret_cast<const uint32_t*>(src + b);
    }
  } else {
    for (int64_t b = 0; b < bytes; ++b) dst[b] = src[b];
  }
}

__device__ __forceinline__ void gather_one(const GatherColumns& columns, int64_t i, int64_t tree, int64_t slot) {
  for (int c = 0; c < columns.count; ++c) {
    copy_row(columns.dst[c] + i * columns.row_bytes[c],
             columns.base[c] + tree * columns.tree_stride[c] + slot * columns.row_stride[c], columns.row_bytes[c]);
  }
}

// `rows` bounds the slots of a caller's index (replay_gather): one outside
// stops the kernel with a device-side assert, as index_select does (a range
// check that raises would need a host sync).
__global__ void gather_kernel(const GatherColumns columns, const int64_t* __restrict__ slot, int64_t n,
                              int64_t per_tree, int64_t rows) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int64_t s = slot[i];
  CUDA_KERNEL_ASSERT(s >= 0 && s < rows);
  gather_one(columns, i, per_tree > 0 ? i / per_tree : 0, s);
}

// Stratified sampling of batch_size leaves per tree, their weights, and (with
// columns.count > 0) their rows. A tree without priority mass is recorded
// (by its first sample) as the CPU kernel's error.
template <int K>
__global__ void sample_kernel(const double* __restrict__ trees, const sumtree::Layout layout, bool batched,
                              const double* __restrict__ uniform, int64_t batch_size, int64_t n, double beta,
                              int64_t* __restrict__ index, float* __restrict__ weight, const GatherColumns columns,
                              int op, ErrorRecord record) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int64_t tree = i / batch_size;
  const int64_t j = i - tree * batch_size;
  const double* sums = trees + tree * layout.size();
  const double total = sums[0];
  if (!(isfinite(total) && total > 0.0)) {
    if (j == 0) {
      // With several such trees at once the total in the message may be
      // another's: payloads of concurrent records are not ordered.
      const int64_t position = de::sampling_position(tree, op, batched);
      cuda::record_error(record, de::kSumtreeNoMass, position);
      cuda::store_payload(record, de::make_key(de::kSumtreeNoMass, position), __double_as_longlong(total), 0);
    }
    index[i] = 0;
    weight[i] = 0.0f;
    return;
  }
  const double u = (static_cast<double>(j) + uniform[i]) / static_cast<double>(batch_size) * total;
  const int64_t leaf = sumtree::find_prefix<K, double>(sums, layout, u);
  index[i] = leaf;
  weight[i] = sumtree::importance_weight(sums[layout.leaf_offset() + leaf],
                                         sumtree::root_min(sums, sums + layout.storage, layout),
                                         static_cast<float>(beta));
  if (columns.count > 0) gather_one(columns, i, batched ? tree : 0, leaf);
}

void sumtree_update_cuda(const at::Tensor& tree, int64_t capacity, int64_t fanout, const at::Tensor& index,
                         const at::Tensor& priority, const std::optional<at::Tensor>& keep,
                         double alpha, double eps, const std::optional<at::Tensor>& running_max) {
  const SumtreeUpdateArgs a =
      prepare_sumtree_update(tree, capacity, fanout, index, priority, keep, alpha, eps, running_max);
  const int64_t batch = a.index.numel();
  if (batch == 0) return;
  const c10::cuda::CUDAGuard guard(tree.device());
  double* rm = (running_max.has_value() && running_max->defined()) ? running_max->mutable_data_ptr<double>() : nullptr;
  const UpdateSource source{a.index.const_data_ptr<int64_t>(), a.priority.const_data_ptr<double>(),
                            a.keep.defined() ? a.keep.const_data_ptr<bool>() : nullptr, capacity, eps,
                            max_raw_priority(capacity, alpha)};
  launch_update(tree, a.trees, fanout, source, batch, a.per_tree, alpha, eps, rm);
}

at::Tensor sumtree_find_cuda(const at::Tensor& tree, int64_t capacity, int64_t fanout, const at::Tensor& mass) {
  Trees trees;
  const at::Tensor m = prepare_sumtree_find(tree, capacity, fanout, mass, &trees);
  at::Tensor out = at::empty(mass.sizes(), mass.options().dtype(at::kLong));
  const int64_t n = m.numel();
  if (n == 0) return out;
  const c10::cuda::CUDAGuard guard(tree.device());
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    find_kernel<K><<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(
        tree.const_data_ptr<double>(), trees.layout, n / trees.count, m.const_data_ptr<double>(), n,
        out.mutable_data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// Describes the dense columns (up to kMaxColumns from `first`) for the kernels.
GatherColumns gather_columns(const std::vector<ColumnRows>& described, std::vector<at::Tensor>& out, size_t first) {
  GatherColumns columns;
  for (size_t c = first; c < described.size() && columns.count < kMaxColumns; ++c) {
    if (!described[c].dense) continue;
    columns.base[columns.count] = described[c].base;
    columns.dst[columns.count] = static_cast<char*>(out[c].mutable_data_ptr());
    columns.tree_stride[columns.count] = described[c].tree_stride;
    columns.row_stride[columns.count] = described[c].row_stride;
    columns.row_bytes[columns.count] = described[c].row_bytes;
    ++columns.count;
  }
  return columns;
}

// Index of the first dense column after the first kMaxColumns dense ones (described.size() if none).
size_t next_dense_batch(const std::vector<ColumnRows>& described, size_t first) {
  int seen = 0;
  for (size_t c = first; c < described.size(); ++c) {
    if (!described[c].dense) continue;
    if (seen++ == kMaxColumns) return c;
  }
  return described.size();
}

// Gathers the columns the sampling kernel did not (beyond its first
// kMaxColumns, and strided rows through index_select), on the stream: no sync.
void gather_rest(at::TensorList columns, const std::vector<ColumnRows>& described, std::vector<at::Tensor>& out,
                 const at::Tensor& slots, int64_t trees, int64_t rows, size_t first) {
  const int64_t n = slots.numel();
  const int64_t per_tree = trees > 0 ? slots.size(1) : 0;
  for (size_t c = first; c < described.size(); c = next_dense_batch(described, c)) {
    const GatherColumns batch = gather_columns(described, out, c);
    if (batch.count == 0 || n == 0) break;
    gather_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(
        batch, slots.const_data_ptr<int64_t>(), n, per_tree, rows);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  for (size_t c = 0; c < described.size(); ++c) {
    if (described[c].dense) continue;
    if (trees == 0) {
      out[c].copy_(at::index_select(columns[c], 0, slots));
    } else {
      // Out-of-range slots would land in another tree's rows of the flattened column.
      at::_assert_async(at::logical_and(slots >= 0, slots < rows).all(),
                        "rltorch.replay_gather: `index` holds a value outside the rows of the columns");
      const at::Tensor flat = (slots + at::arange(trees, slots.options()).unsqueeze(1) * rows).view({-1});
      out[c].copy_(at::index_select(columns[c].flatten(0, 1), 0, flat).view(out[c].sizes()));
    }
  }
}

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>> sample_cuda(
    const char* op, const at::Tensor& tree, int64_t capacity, int64_t fanout, at::TensorList columns,
    int64_t batch_size, double beta, std::optional<at::Generator> generator) {
  const c10::cuda::CUDAGuard guard(tree.device());
  // Drawn on the tree's device from the caller's generator: no host sync (the
  // mass of each tree is checked on the device).
  SampleOutputs s = prepare_sample(op, tree, capacity, fanout, columns, batch_size, beta, generator, false);
  const Trees& trees = s.trees;
  const std::vector<ColumnRows>& described = s.columns;
  std::vector<at::Tensor>& rows = s.rows;
  const int64_t lead = trees.batched ? trees.count : 0;
  const int64_t n = trees.count * batch_size;
  if (n == 0) return {s.index, s.weight, rows};
  const GatherColumns first = gather_columns(described, rows, 0);
  const int op_code = std::string(op) == "replay_sample" ? de::kSampleOpReplay : de::kSampleOpSumtree;
  dispatch_fanout(fanout, [&](auto k) {
    constexpr int K = decltype(k)::value;
    sample_kernel<K><<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(
        tree.const_data_ptr<double>(), trees.layout, trees.batched, s.uniform.const_data_ptr<double>(), batch_size,
        n, beta, s.index.mutable_data_ptr<int64_t>(), s.weight.mutable_data_ptr<float>(), first, op_code,
        cuda::error_record_for(tree));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  gather_rest(columns, described, rows, s.index, lead, capacity, next_dense_batch(described, 0));
  return {s.index, s.weight, rows};
}

std::tuple<at::Tensor, at::Tensor> sumtree_sample_cuda(const at::Tensor& tree, int64_t capacity,
                                                       int64_t fanout, int64_t batch_size, double beta,
                                                       std::optional<at::Generator> generator) {
  auto [index, weight, rows] = sample_cuda("sumtree_sample", tree, capacity, fanout, {}, batch_size, beta, generator);
  return {index, weight};
}

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>> replay_sample_cuda(
    const at::Tensor& tree, int64_t capacity, int64_t fanout, at::TensorList columns, int64_t batch_size,
    double beta, std::optional<at::Generator> generator) {
  return sample_cuda("replay_sample", tree, capacity, fanout, columns, batch_size, beta, generator);
}

// Non-finite and too large td errors are skipped (not written, not in the
// running max) and reported through the device's error record: no host sync.
void per_update_priorities_cuda(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                const at::Tensor& slot_ids, const at::Tensor& index, const at::Tensor& td_error,
                                double alpha, double eps, const at::Tensor& running_max) {
  const PerUpdateArgs a =
      prepare_per_update(tree, capacity, fanout, slot_ids, index, td_error, alpha, eps, running_max);
  const int64_t batch = a.index.numel();
  if (batch == 0) return;
  const c10::cuda::CUDAGuard guard(tree.device());
  const PerSource source{a.slot_ids.const_data_ptr<int64_t>(), a.ids_tree_stride, a.ids_stride,
                         a.index.const_data_ptr<int64_t>(), a.td_error.const_data_ptr<double>(), capacity, eps,
                         max_raw_priority(capacity, alpha)};
  launch_update(tree, a.trees, fanout, source, batch, a.per_tree, alpha, eps, running_max.mutable_data_ptr<double>());
}

std::vector<at::Tensor> replay_gather_cuda(at::TensorList columns, const at::Tensor& index) {
  // Range checks of `index` would need a host sync: gather_kernel asserts on device instead.
  const at::Tensor idx = prepare_replay_gather(columns, index, /*check_values=*/false);
  const int64_t trees = idx.dim() == 2 ? idx.size(0) : 0;
  const int64_t lead = trees > 0 ? 1 : 0;
  const int64_t rows = columns[0].size(lead);
  const c10::cuda::CUDAGuard guard(index.device());
  const std::vector<ColumnRows> described = checked_columns("replay_gather", columns, index, "index", trees, rows);
  std::vector<at::Tensor> out;
  out.reserve(columns.size());
  for (const at::Tensor& column : columns) out.push_back(gathered_like(column, trees, lead ? idx.size(1) : idx.numel()));
  gather_rest(columns, described, out, idx, trees, rows, 0);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(rltorch, CUDA, m) {
  m.impl("per_update_priorities_", &per_update_priorities_cuda);
  m.impl("replay_gather", &replay_gather_cuda);
  m.impl("replay_sample", &replay_sample_cuda);
  m.impl("sumtree_update_", &sumtree_update_cuda);
  m.impl("sumtree_find", &sumtree_find_cuda);
  m.impl("sumtree_sample", &sumtree_sample_cuda);
}

}  // namespace rltorch
