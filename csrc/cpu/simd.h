// The CPU env kernels' SIMD plumbing: four lanes per operation with GCC/Clang
// vector extensions (they lower to SSE2 pairs by default and to single AVX
// instructions in the AVX2 clone), and the function-clone attribute. IEEE
// arithmetic is per lane, so a vector lane computes what the scalar code does.
#pragma once

#include <cstdint>
#include <cstring>

#include "rltorch/env_common.h"

namespace rltorch::cpu {

// Whether any of flags[begin, end) is set: a branch-free OR the compiler vectorizes.
inline bool any_set(const bool* flags, int64_t begin, int64_t end) {
  uint8_t acc = 0;
  for (int64_t i = begin; i < end; ++i) acc |= static_cast<uint8_t>(flags[i]);
  return acc != 0;
}

}  // namespace rltorch::cpu

#ifdef RLTORCH_ENV_VECTOR
namespace rltorch::cpu {

using env::kLanes;
using env::vdouble;
using env::vfloat;
using env::vlong;
typedef int32_t vint __attribute__((vector_size(16)));
typedef int8_t vbyte __attribute__((vector_size(4)));

// Four actions of each integer dtype the env kernels accept.
template <typename T>
struct Vec4;
#define RLTORCH_VEC4(T)                                           \
  template <>                                                     \
  struct Vec4<T> {                                                \
    typedef T type __attribute__((vector_size(4 * sizeof(T)))); \
  };
RLTORCH_VEC4(uint8_t)
RLTORCH_VEC4(int8_t)
RLTORCH_VEC4(int16_t)
RLTORCH_VEC4(int32_t)
RLTORCH_VEC4(int64_t)
RLTORCH_VEC4(uint16_t)
RLTORCH_VEC4(uint32_t)
RLTORCH_VEC4(uint64_t)
RLTORCH_VEC4(float)
#undef RLTORCH_VEC4

template <typename V, typename T>
RLTORCH_ENV_INLINE V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename V, typename T>
RLTORCH_ENV_INLINE void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(v));
}
// -1/0 lane masks as 1/0 bytes (bool storage).
RLTORCH_ENV_INLINE void store_flags(bool* p, vint mask) { store(p, __builtin_convertvector(-mask, vbyte)); }

// Four envs' rows of an [N, O] float32 array from its O columns (a transpose
// through L1: O * 4 scalar moves, cheaper than lane extracts).
template <int O>
RLTORCH_ENV_INLINE void store_rows(float* rows, const vfloat* columns) {
  float tmp[O][kLanes];
  for (int k = 0; k < O; ++k) store(tmp[k], columns[k]);
  for (int lane = 0; lane < kLanes; ++lane) {
    for (int k = 0; k < O; ++k) rows[lane * O + k] = tmp[k][lane];
  }
}

// -1/0 int32 lane masks of the bool flags at p.
RLTORCH_ENV_INLINE vint load_flags(const bool* p) {
  return -__builtin_convertvector(load<vbyte>(reinterpret_cast<const int8_t*>(p)), vint);
}

// Four consecutive values of any accepted action dtype as doubles.
template <typename action_t>
RLTORCH_ENV_INLINE vdouble load_lanes(const action_t* p) {
  return __builtin_convertvector(load<typename Vec4<action_t>::type>(p), vdouble);
}

}  // namespace rltorch::cpu
#endif

// x86-64 builds carry an AVX2 clone of each stepping loop, picked at load time
// by the CPU's features (an ifunc), so wheels stay baseline-x86-64 yet use
// 4-wide instructions where they exist. No FMA: it would change rounding.
#if defined(__x86_64__) && defined(__linux__) && defined(__has_attribute) && !defined(RLTORCH_NO_CPU_CLONES)
#if __has_attribute(target_clones)
#define RLTORCH_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef RLTORCH_CPU_CLONES
#define RLTORCH_CPU_CLONES
#endif
