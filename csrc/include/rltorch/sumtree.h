// Sum tree (plus a min tree over its internal nodes) for prioritized replay,
// shared by csrc/cpu and csrc/cuda. Header-only and libtorch-free, so the
// sanitized C++ test can exercise exactly this code without linking torch.
//
// Layout: a K-ary tree over `capacity` leaves (any capacity >= 1), stored
// level by level from the root: one tree is one float64 row of size()
// elements, [sums: storage][mins: leaf_offset()]. The sums cover every level;
// the mins only the internal levels, at the same offsets (a leaf's min is its
// own priority, or +inf when it is 0: min_value). Level widths are
// ceil(width_below / K); every level's storage is padded to a multiple of K
// with neutral values (0 for sums, +inf for mins), so a node's K children are
// always one aligned, fully readable group: with K = 8 and float64 that group
// is exactly one 64-byte cache line.
//
// Not storing the leaves' mins saves a cache miss per updated leaf (the
// leaves' parents derive them from the leaf line they read anyway) and half
// the memory of the tree.
//
// The min tree counts zero-priority leaves as +inf: a zero leaf can never be
// sampled, so it must not drag the minimum used by importance weights to 0.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "rltorch/macros.h"

#if defined(__x86_64__) && !defined(__CUDACC__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>  // the AVX2 descent below (compiled for AVX2 per function, chosen at run time)
#endif

namespace rltorch::sumtree {

// Enough for any capacity representable as int64 with K >= 2.
constexpr int kMaxLevels = 64;

struct Layout {
  int64_t capacity = 0;
  int32_t levels = 0;    // root is level 0, leaves are level levels - 1
  int32_t fanout = 0;
  int64_t storage = 0;   // sums of every level, padded
  int64_t offset[kMaxLevels] = {};
  int64_t width[kMaxLevels] = {};
  RLTORCH_HOST_DEVICE_INLINE int64_t leaf_offset() const { return offset[levels - 1]; }
  // Elements of one tree: the sums, then the mins of the internal levels.
  RLTORCH_HOST_DEVICE_INLINE int64_t size() const { return storage + leaf_offset(); }
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

// The min of the whole tree (over its non-zero leaves; +inf when all are 0).
template <typename T>
RLTORCH_HOST_DEVICE_INLINE T root_min(const T* sums, const T* mins, const Layout& layout) {
  return layout.levels == 1 ? min_value(sums[0]) : mins[0];
}

#if !defined(__CUDA_ARCH__) && (defined(__GNUC__) || defined(__clang__))
#define RLTORCH_SUMTREE_HOST_VECTORS 1
// Two doubles (SSE2, the baseline of x86-64): the fold below, lane by lane,
// is exactly the scalar fold, so every device gets the same bits.
typedef double Double2 __attribute__((vector_size(16)));
typedef long long Long2 __attribute__((vector_size(16)));

inline Double2 load2(const double* p) {
  Double2 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline Double2 min_value2(Double2 c) {
  const Long2 positive = (Long2)(c > 0.0);
  const Long2 inf = {0x7ff0000000000000LL, 0x7ff0000000000000LL};
  return (Double2)(((Long2)c & positive) | (inf & ~positive));
}

inline Double2 min2(Double2 a, Double2 b) { return b < a ? b : a; }

// recompute_node's fold for double on the host: written with vectors because
// the compiler keeps the leaf level's min_value scalar (and then reloads the
// scalars as vectors through memory, stalling on every node). One function
// per kind of children, so the vectors stay in registers.
template <int K, bool Leaves>
inline void fold_children(const double* child_sums, const double* child_mins, double* sum, double* min) {
  static_assert(K >= 2 && (K & (K - 1)) == 0, "fan-out must be a power of two");
  Double2 s[K / 2], m[K / 2];
  for (int j = 0; j < K / 2; ++j) {
    s[j] = load2(child_sums + 2 * j);
    if constexpr (Leaves) {
      m[j] = min_value2(s[j]);
    } else {
      m[j] = load2(child_mins + 2 * j);
    }
  }
  for (int half = K / 4; half >= 1; half /= 2) {
    for (int j = 0; j < half; ++j) {
      s[j] = s[j] + s[j + half];
      m[j] = min2(m[j], m[j + half]);
    }
  }
  *sum = s[0][0] + s[0][1];
  *min = m[0][1] < m[0][0] ? m[0][1] : m[0][0];
}
#endif

// Recomputes one internal node from its K children, never by adding a delta:
// whatever happened before, the node is exactly the sum of its children
// afterwards, so totals cannot drift over many updates. The children are
// folded in halves (c[j] += c[j + K/2], then K/4, ...): a fixed order, so every
// device and the Python reference get the same bits, and one that compiles
// to SIMD adds (a left-to-right sum cannot be vectorized without reassociating).
// The leaves' parents take their children's mins from the leaf sums.
template <int K, typename T>
RLTORCH_HOST_DEVICE_INLINE void recompute_node(T* sums, T* mins, const Layout& layout, int level,
                                               int64_t node) {
  static_assert(K >= 2 && (K & (K - 1)) == 0, "fan-out must be a power of two");
  const int64_t child = layout.offset[level + 1] + node * K;
  const bool leaves = level + 2 == layout.levels;
  const int64_t at = layout.offset[level] + node;
#if defined(RLTORCH_SUMTREE_HOST_VECTORS)
  if constexpr (std::is_same_v<T, double>) {
    if (leaves) {
      fold_children<K, true>(sums + child, mins + child, sums + at, mins + at);
    } else {
      fold_children<K, false>(sums + child, mins + child, sums + at, mins + at);
    }
    return;
  }
#endif
  T s[K], m[K];
  for (int j = 0; j < K; ++j) {
    s[j] = sums[child + j];
    m[j] = leaves ? min_value(s[j]) : mins[child + j];
  }
  for (int half = K / 2; half >= 1; half /= 2) {
    for (int j = 0; j < half; ++j) {
      s[j] = s[j] + s[j + half];
      m[j] = m[j + half] < m[j] ? m[j + half] : m[j];
    }
  }
  sums[at] = s[0];
  mins[at] = m[0];
}

// Writes one leaf and recomputes its ancestors, bottom-up: O(K log_K N).
template <int K, typename T>
RLTORCH_HOST_DEVICE_INLINE void set_leaf(T* sums, T* mins, const Layout& layout, int64_t leaf,
                                         T priority) {
  sums[layout.leaf_offset() + leaf] = priority;
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
// The count of children below u is branch-free on purpose: which child wins
// is random, so a loop that exits early mispredicts about once per level
// (measured: ~2x slower search).
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
  // The last non-zero child matters only when u is not below the children's
  // sum (rounding at the top, or u >= total): found in that rare branch,
  // which is predictable, instead of on every level (1.5x faster search).
  T prefix[K + 1];
  prefix[0] = T(0);
  int below = 0;  // children whose inclusive prefix is <= u
  for (int j = 0; j < K; ++j) {
    prefix[j + 1] = prefix[j] + children[j];
    below += prefix[j + 1] <= u ? 1 : 0;
  }
  if (below == K) {
    int last_nonzero = 0;  // 0 also for an all-zero node (only on an empty tree)
    for (int j = 0; j < K; ++j) last_nonzero = children[j] > T(0) ? j : last_nonzero;
    u = infinity<T>();
    return last_nonzero;
  }
  u = u - prefix[below];
  return below;
#endif
}

#if defined(__GNUC__) || defined(__clang__)
#define RLTORCH_PREFETCH_WRITE(address) __builtin_prefetch((address), 1)
#define RLTORCH_PREFETCH_READ(address) __builtin_prefetch((address), 0)
#else
#define RLTORCH_PREFETCH_WRITE(address) ((void)0)
#define RLTORCH_PREFETCH_READ(address) ((void)0)
#endif

// ---- Batched descent on the host (CPU search and sampling) ----
//
// descend_group walks n independent queries down together, level by level:
// each level's child groups are prefetched for every query before any is
// read, so their cache misses overlap. Past the misses, a descent is
// arithmetic: choose_child's K sequential adds and compares per level. On
// x86-64 with AVX2 (checked at run time; the library is built for baseline
// x86-64) four queries take one vector lane each: lane by lane the same
// adds in the same order, so the same bits as choose_child; a lane that falls
// through (u >= the children's sum) is redone by choose_child. Measured on the
// 2-core dev VM, 2^20 leaves: 28 -> 19 ns per query (BENCHMARKS.md, #23).

#if defined(RLTORCH_SUMTREE_HOST_VECTORS) && defined(__x86_64__) && !defined(__CUDACC__)
#define RLTORCH_SUMTREE_AVX2 1
// Queries 0..3 (`node`, `u`), one level: the children of each query's node
// are read as pairs, (a, c) and (b, d) packed and unpacked so that each
// vector holds child j of the four nodes.
template <int K>
__attribute__((target("avx2"))) inline void descend_four_avx2(const double* children, double* u, int64_t* node) {
  static_assert(K % 2 == 0, "children are read in pairs");
  constexpr int shift = K == 4 ? 2 : K == 8 ? 3 : 4;
  const double* a = children + node[0] * K;
  const double* b = children + node[1] * K;
  const double* c = children + node[2] * K;
  const double* d = children + node[3] * K;
  const __m256d uq = _mm256_loadu_pd(u);
  __m256d prefix = _mm256_setzero_pd();
  __m256d start = prefix;
  __m256i below = _mm256_setzero_si256();
  __m256d le = prefix;
#pragma GCC unroll 16
  for (int j = 0; j < K; j += 2) {
    const __m256d ac = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(a + j)), _mm_loadu_pd(c + j), 1);
    const __m256d bd = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(b + j)), _mm_loadu_pd(d + j), 1);
    prefix = _mm256_add_pd(prefix, _mm256_unpacklo_pd(ac, bd));  // + child j of each node
    le = _mm256_cmp_pd(prefix, uq, _CMP_LE_OQ);
    below = _mm256_sub_epi64(below, _mm256_castpd_si256(le));
    start = _mm256_blendv_pd(start, prefix, le);  // prefixes rise: the last one <= u
    prefix = _mm256_add_pd(prefix, _mm256_unpackhi_pd(ac, bd));  // + child j + 1
    le = _mm256_cmp_pd(prefix, uq, _CMP_LE_OQ);
    below = _mm256_sub_epi64(below, _mm256_castpd_si256(le));
    if (j + 2 < K) start = _mm256_blendv_pd(start, prefix, le);
  }
  // `le` now marks the lanes whose whole node sum is <= u: rare (rounding at
  // the top, or u >= total), and redone by choose_child from the old values.
  const int fell_through = _mm256_movemask_pd(le);
  alignas(32) int64_t old_node[4];
  alignas(32) double old_u[4];
  if (fell_through != 0) {
    std::memcpy(old_node, node, sizeof(old_node));
    std::memcpy(old_u, u, sizeof(old_u));
  }
  const __m256i first = _mm256_slli_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(node)), shift);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(node), _mm256_add_epi64(first, below));
  _mm256_storeu_pd(u, _mm256_sub_pd(uq, start));
  if (fell_through != 0) {
    for (int l = 0; l < 4; ++l) {
      if ((fell_through >> l) & 1) {
        u[l] = old_u[l];
        node[l] = old_node[l] * K + choose_child<K, double>(children + old_node[l] * K, u[l]);
      }
    }
  }
}

inline bool host_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

// Descends queries 0..n-1 (node[q] = 0 and u[q] >= 0 on entry) to their leaves.
template <int K>
inline void descend_group(const double* sums, const Layout& layout, double* u, int64_t* node, int64_t n) {
#if defined(RLTORCH_SUMTREE_AVX2)
  const bool vectors = K >= 4 && K <= 16 && host_has_avx2();
#endif
  for (int level = 0; level + 1 < layout.levels; ++level) {
    const double* children = sums + layout.offset[level + 1];
    for (int64_t q = 0; q < n; ++q) RLTORCH_PREFETCH_READ(children + node[q] * K);
    int64_t q = 0;
#if defined(RLTORCH_SUMTREE_AVX2)
    if constexpr (K >= 4 && K <= 16) {
      if (vectors) {
        for (; q + 4 <= n; q += 4) descend_four_avx2<K>(children, u + q, node + q);
      }
    }
#endif
    for (; q < n; ++q) node[q] = node[q] * K + choose_child<K, double>(children + node[q] * K, u[q]);
  }
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

// ---- Batched update on the host (CPU kernels; cpp_tests/standalone fuzzes it) ----
//
// A batch is ordered by the top bits of its leaves (a stable counting sort),
// its leaves are written in that order, and then the tree is rebuilt level by
// level above them: each level's pass recomputes the parents of the nodes
// touched below, in order, dropping a parent equal to the one before it.
// Every child is final before its parent is read, so the result is exactly
// what sequential set_leaf calls would leave; ordered passes touch each
// upper node about once per batch (not once per leaf) and walk memory in
// address order. Leaves named twice stay in input order within their group,
// so the last write wins. Each pass prefetches the lines of the entries
// kSweepAhead ahead, so their cache misses overlap. (Measured alternatives,
// in BENCHMARKS.md: walking each leaf to the root, marking queued parents in
// the tree, and one sweep that recomputes on leaving a subtree, which stalls
// on reading back the value it has just stored.)

constexpr int64_t kSweepAhead = 16;
// Counting sort by at most this many top bits: 2^11 counters stay in L1.
constexpr int kMaxGroupBits = 11;
// Smaller batches are ordered by insertion sort (stable, no counters to clear).
constexpr int64_t kInsertionSortMax = 16;

inline int bit_width(uint64_t x) {
  int bits = 0;
  while (x != 0) {
    ++bits;
    x >>= 1;
  }
  return bits;
}

template <int K>
constexpr int log2_fanout() {
  static_assert(K >= 2 && (K & (K - 1)) == 0, "fan-out must be a power of two");
  int bits = 0;
  for (int k = K; k > 1; k >>= 1) ++bits;
  return bits;
}

// Reusable buffers of one thread (no allocation per call once grown).
struct SweepScratch {
  std::vector<int64_t> order;
  std::vector<int64_t> counts;
  std::vector<int64_t> nodes;
  std::vector<int64_t> parents;
};

// Appends `node` to list[0..count) unless it equals the last one appended
// (`last`, -1 before the first). Branch-free on purpose: in an ordered pass,
// whether a parent repeats the one before is close to a coin toss at the
// levels where about two touched nodes share a parent, and the mispredicted
// branch cost more than the store (measured at B=4096 on 2^20 leaves: that
// level's pass 23 -> 19.5 us). `list` must have room for one more entry.
inline void append_distinct(int64_t* list, int64_t& count, int64_t& last, int64_t node) {
  list[count] = node;
  count += node != last ? 1 : 0;
  last = node;
}

// How many low bits of a leaf index the counting sort ignores (0: a full sort).
inline int group_shift(const Layout& layout, int64_t n) {
  const int bits = bit_width(static_cast<uint64_t>(layout.capacity - 1));
  int group_bits = bit_width(static_cast<uint64_t>(n)) + 1;
  group_bits = group_bits < kMaxGroupBits ? group_bits : kMaxGroupBits;
  return n <= kInsertionSortMax ? 0 : (bits > group_bits ? bits - group_bits : 0);
}

// Positions 0..n-1 of `leaf` ordered by leaf >> group_shift(layout, n), input
// order kept among equal keys; written to scratch.order.
inline const int64_t* sweep_order(const Layout& layout, const int64_t* leaf, int64_t n, SweepScratch& scratch) {
  scratch.order.resize(static_cast<size_t>(n));
  int64_t* order = scratch.order.data();
  if (n <= kInsertionSortMax) {
    for (int64_t i = 0; i < n; ++i) {
      int64_t j = i;
      while (j > 0 && leaf[order[j - 1]] > leaf[i]) {
        order[j] = order[j - 1];
        --j;
      }
      order[j] = i;
    }
    return order;
  }
  const int shift = group_shift(layout, n);
  const int64_t groups = ((layout.capacity - 1) >> shift) + 1;
  scratch.counts.assign(static_cast<size_t>(groups + 1), 0);
  int64_t* counts = scratch.counts.data();
  for (int64_t i = 0; i < n; ++i) ++counts[(leaf[i] >> shift) + 1];
  for (int64_t g = 0; g < groups; ++g) counts[g + 1] += counts[g];
  for (int64_t i = 0; i < n; ++i) order[counts[leaf[i] >> shift]++] = i;
  return order;
}

// Recomputes nodes[0..count) of `level` (in order), then their parents, and so
// on up to and including `top_level`. `nodes` is consumed (scratch.parents
// holds the next level while one is recomputed).
template <int K, typename T>
void recompute_levels(T* sums, T* mins, const Layout& layout, std::vector<int64_t>& nodes, int64_t count,
                      int level, int top_level, std::vector<int64_t>& parents) {
  constexpr int shift = log2_fanout<K>();
  parents.resize(nodes.size());
  for (; level >= top_level && count > 0; --level) {
    const int64_t offset = layout.offset[level];
    const int64_t* list = nodes.data();
    for (int64_t j = 0; j < count && j < kSweepAhead; ++j) {
      RLTORCH_PREFETCH_WRITE(sums + offset + list[j]);
      RLTORCH_PREFETCH_WRITE(mins + offset + list[j]);
    }
    int64_t next = 0;
    int64_t last = -1;
    int64_t* up = parents.data();
    const int64_t child_offset = layout.offset[level + 1];
    const bool above_leaves = level + 2 < layout.levels;
    for (int64_t j = 0; j < count; ++j) {
      if (j + kSweepAhead < count) {
        const int64_t ahead = list[j + kSweepAhead];
        RLTORCH_PREFETCH_WRITE(sums + offset + ahead);
        RLTORCH_PREFETCH_WRITE(mins + offset + ahead);
        // The children were written by the pass below, and may have left L1 since.
        RLTORCH_PREFETCH_READ(sums + child_offset + ahead * K);
        if (above_leaves) RLTORCH_PREFETCH_READ(mins + child_offset + ahead * K);
      }
      recompute_node<K, T>(sums, mins, layout, level, list[j]);
      append_distinct(up, next, last, list[j] >> shift);
    }
    nodes.swap(parents);
    count = next;
  }
}

// Writes entries order[begin..end) (leaf[i] = value[i]) and recomputes their
// ancestors from the leaves' parents up to and including `top_level`.
template <int K, typename T>
void set_leaves_range(T* sums, T* mins, const Layout& layout, const int64_t* leaf, const T* value,
                      const int64_t* order, int64_t begin, int64_t end, int top_level, SweepScratch& scratch) {
  constexpr int shift = log2_fanout<K>();
  const int64_t leaf_offset = layout.leaf_offset();
  for (int64_t j = begin; j < end && j < begin + kSweepAhead; ++j) {
    RLTORCH_PREFETCH_WRITE(sums + leaf_offset + leaf[order[j]]);
  }
  scratch.nodes.resize(static_cast<size_t>(end - begin));
  int64_t* parents = scratch.nodes.data();
  int64_t count = 0;
  int64_t last = -1;
  for (int64_t j = begin; j < end; ++j) {
    if (j + kSweepAhead < end) RLTORCH_PREFETCH_WRITE(sums + leaf_offset + leaf[order[j + kSweepAhead]]);
    const int64_t i = order[j];
    sums[leaf_offset + leaf[i]] = value[i];
    append_distinct(parents, count, last, leaf[i] >> shift);
  }
  if (layout.levels >= 2) {
    recompute_levels<K, T>(sums, mins, layout, scratch.nodes, count, layout.levels - 2, top_level, scratch.parents);
  }
}

// Sets leaf[i] to value[i] (already transformed, >= 0) for i in 0..n-1 and
// recomputes their ancestors; the last of equal leaves wins. Leaves must be in
// [0, capacity): callers validate first.
template <int K, typename T>
void set_leaves(T* sums, T* mins, const Layout& layout, const int64_t* leaf, const T* value, int64_t n,
                SweepScratch& scratch) {
  if (n <= 0) return;
  const int64_t* order = sweep_order(layout, leaf, n, scratch);
  set_leaves_range<K, T>(sums, mins, layout, leaf, value, order, 0, n, 0, scratch);
}

}  // namespace rltorch::sumtree
