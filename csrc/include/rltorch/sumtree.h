// Sum tree (plus a parallel min tree) for prioritized replay, shared by
// csrc/cpu and csrc/cuda. Header-only and libtorch-free, so the sanitized C++
// test can exercise exactly this code without linking torch.
//
// Layout: a K-ary tree over `capacity` leaves (any capacity >= 1), stored
// level by level from the root in one array; the min tree uses the same
// offsets in a second array (row 1 of the [2, storage] tree tensor). Level
// widths are ceil(width_below / K); every level's storage is padded to a
// multiple of K with neutral values (0 for sums, +inf for mins), so a node's
// K children are always one aligned, fully readable group: with K = 8 and
// float64 that group is exactly one 64-byte cache line.
//
// The min tree stores +inf for zero-priority leaves: a zero leaf can never be
// sampled, so it must not drag the minimum used by importance weights to 0.
#pragma once

#include <cmath>
#include <cstdint>

#include "rltorch/macros.h"

namespace rltorch::sumtree {

// Enough for any capacity representable as int64 with K >= 2.
constexpr int kMaxLevels = 64;

struct Layout {
  int64_t capacity = 0;
  int32_t levels = 0;    // root is level 0, leaves are level levels - 1
  int32_t fanout = 0;
  int64_t storage = 0;   // elements per row (sums or mins)
  int64_t offset[kMaxLevels] = {};
  int64_t width[kMaxLevels] = {};
  RLTORCH_HOST_DEVICE_INLINE int64_t leaf_offset() const { return offset[levels - 1]; }
};

// Host-side construction; the Python class computes the same numbers
// (rltorch/ops/sumtree.py::tree_storage) and the kernels check they agree.
inline Layout make_layout(int64_t capacity, int fanout) {
  Layout layout;
  layout.capacity = capacity;
  layout.fanout = fanout;
  int64_t widths[kMaxLevels];
  int n = 0;
  int64_t w = capacity;
  widths[n++] = w;
  while (w > 1) {
    w = (w + fanout - 1) / fanout;
    widths[n++] = w;
  }
  layout.levels = n;
  int64_t off = 0;
  for (int level = 0; level < n; ++level) {
    const int64_t width = widths[n - 1 - level];
    layout.width[level] = width;
    layout.offset[level] = off;
    off += (width + fanout - 1) / fanout * fanout;
  }
  layout.storage = off;
  return layout;
}

template <typename T>
RLTORCH_HOST_DEVICE_INLINE T infinity() {
  return static_cast<T>(1.0 / 0.0);
}

// What a leaf contributes to the min tree.
template <typename T>
RLTORCH_HOST_DEVICE_INLINE T min_value(T priority) {
  return priority > T(0) ? priority : infinity<T>();
}

// Recomputes one internal node from its K children, never by adding a delta:
// whatever happened before, the node is exactly the sum of its children
// afterwards, so totals cannot drift over many updates. The children are
// folded in halves (c[j] += c[j + K/2], then K/4, ...): a fixed order, so every
// device and the Python reference get the same bits, and one that compiles
// to SIMD adds (a left-to-right sum cannot be vectorized without reassociating).
template <int K, typename T>
RLTORCH_HOST_DEVICE_INLINE void recompute_node(T* sums, T* mins, const Layout& layout, int level,
                                               int64_t node) {
  static_assert(K >= 2 && (K & (K - 1)) == 0, "fan-out must be a power of two");
  const int64_t child = layout.offset[level + 1] + node * K;
  T s[K], m[K];
  for (int j = 0; j < K; ++j) {
    s[j] = sums[child + j];
    m[j] = mins[child + j];
  }
  for (int half = K / 2; half >= 1; half /= 2) {
    for (int j = 0; j < half; ++j) {
      s[j] = s[j] + s[j + half];
      m[j] = m[j + half] < m[j] ? m[j + half] : m[j];
    }
  }
  sums[layout.offset[level] + node] = s[0];
  mins[layout.offset[level] + node] = m[0];
}

// Writes one leaf and recomputes its ancestors, bottom-up: O(K log_K N).
template <int K, typename T>
RLTORCH_HOST_DEVICE_INLINE void set_leaf(T* sums, T* mins, const Layout& layout, int64_t leaf,
                                         T priority) {
  const int64_t at = layout.leaf_offset() + leaf;
  sums[at] = priority;
  mins[at] = min_value(priority);
  int64_t node = leaf;
  for (int level = layout.levels - 2; level >= 0; --level) {
    node /= K;
    recompute_node<K, T>(sums, mins, layout, level, node);
  }
}

// One level of the prefix-sum descent: the first child whose inclusive
// prefix sum (left to right within the node) exceeds u, i.e. searchsorted
// (right) over the node's children; on return `u` is the mass left within
// that child. A zero child leaves the prefix unchanged, so it can never be
// the first to exceed u. If u >= the sum of all children (the parent's
// stored sum can exceed the re-summed children by an ulp, or u >= total was
// asked for), the last non-zero child is entered with u = +inf, which keeps
// choosing the last non-zero child down to the leaf.
// Branch-free on purpose: which child wins is random, so a loop that exits
// early mispredicts about once per level (measured: ~2x slower search).
template <int K, typename T>
RLTORCH_HOST_DEVICE_INLINE int choose_child(const T* children, T& u) {
#if defined(__CUDA_ARCH__)
  // On the GPU a prefix array indexed by the runtime `chosen` would live in
  // local memory (a stack frame per thread). Here every index is a
  // compile-time constant after unrolling, so c[] and the sums stay in
  // registers; the start of the chosen child is re-summed in the same order
  // as the prefix (adding +0.0 past it leaves the bits unchanged), so the
  // result is the CPU's bit for bit.
  T c[K];
  T prefix = T(0);
  int below = 0;
  int last_nonzero = 0;
#pragma unroll
  for (int j = 0; j < K; ++j) {
    c[j] = children[j];
    prefix = prefix + c[j];
    below += prefix <= u ? 1 : 0;
    last_nonzero = c[j] > T(0) ? j : last_nonzero;
  }
  const bool fell_through = below == K;
  const int chosen = fell_through ? last_nonzero : below;
  T start = T(0);
#pragma unroll
  for (int j = 0; j < K; ++j) start = start + (j < chosen ? c[j] : T(0));
  u = fell_through ? infinity<T>() : u - start;
  return chosen;
#else
  T prefix[K + 1];
  prefix[0] = T(0);
  int below = 0;         // children whose inclusive prefix is <= u
  int last_nonzero = 0;  // 0 also for an all-zero node (only on an empty tree)
  for (int j = 0; j < K; ++j) {
    const T c = children[j];
    prefix[j + 1] = prefix[j] + c;
    below += prefix[j + 1] <= u ? 1 : 0;
    last_nonzero = c > T(0) ? j : last_nonzero;
  }
  const bool fell_through = below == K;
  const int chosen = fell_through ? last_nonzero : below;
  u = fell_through ? infinity<T>() : u - prefix[chosen];
  return chosen;
#endif
}

// The first leaf whose inclusive running sum exceeds u (u is clamped to
// >= 0; NaN counts as 0). Only on an all-zero tree can a zero leaf come back
// (index 0): callers must not sample an empty tree.
template <int K, typename T>
RLTORCH_HOST_DEVICE_INLINE int64_t find_prefix(const T* sums, const Layout& layout, T u) {
  u = u > T(0) ? u : T(0);
  int64_t node = 0;
  for (int level = 0; level + 1 < layout.levels; ++level) {
    const T* children = sums + layout.offset[level + 1] + node * K;
    node = node * K + choose_child<K, T>(children, u);
  }
  return node;
}

// Importance weight (p / p_min)^-beta, i.e. w_i / max_j w_j over the leaves
// that can be sampled. The output is float32, so the power is taken in
// float: powf costs a fraction of a double pow, which dominated sampling.
template <typename T>
RLTORCH_HOST_DEVICE_INLINE float importance_weight(T priority, T min_priority, float beta) {
  if (beta == 0.0f) return 1.0f;
  return powf(static_cast<float>(priority / min_priority), -beta);
}

// The running-max rule of sumtree_update_ and per_update_priorities_, the
// same on CPU, CUDA and in the reference: fold every kept entry's v =
// priority + eps (before alpha) into m by `if (isnan(m) || v > m) m = v`.
// A NaN start is replaced by the first value; -inf and -0.0 starts are raised
// by any larger value; +0.0 does not replace -0.0 (they compare equal); no
// kept entry leaves m as it was. With non-NaN values (priorities are
// validated) the result does not depend on the order of the fold, so CUDA can
// fold in any order with a compare-and-swap loop.
template <typename T>
RLTORCH_HOST_DEVICE_INLINE T running_max_fold(T m, T v) {
  return (m != m || v > m) ? v : m;
}

// The stored leaf for a raw priority: (p + eps)^alpha.
template <typename T>
RLTORCH_HOST_DEVICE_INLINE T transform_priority(T raw, T alpha, T eps) {
  const T shifted = raw + eps;
  return alpha == T(1) ? shifted : pow(shifted, alpha);
}

}  // namespace rltorch::sumtree
