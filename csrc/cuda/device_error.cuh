// Device-side error reporting for the CUDA kernels (record layout and keys in
// include/rltorch/device_error.h). A kernel that finds bad input records a key
// instead of asserting: the CUDA context survives, and
// rltorch.ops.check_device_errors() raises the CPU kernel's exception later.
// Kernels that validate their input leave their state unchanged while a
// blocking error is pending on the device.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "rltorch/device_error.h"

namespace rltorch::cuda {

using ErrorRecord = unsigned long long*;

// The record of `device` (csrc/cuda/device_error.cu).
uint64_t* error_record(c10::DeviceIndex device);
ErrorRecord error_record_for(const at::Tensor& on_device);

namespace de = ::rltorch::device_error;

__device__ __forceinline__ void record_error(ErrorRecord record, int code, int64_t position) {
  atomicMin(record + de::kWord, static_cast<unsigned long long>(de::make_key(code, position)));
}

// volatile: another block (or an earlier kernel) may have changed it; never
// through the read-only cache.
__device__ __forceinline__ unsigned long long read_error_word(const unsigned long long* record) {
  return *reinterpret_cast<const volatile unsigned long long*>(record + de::kWord);
}

// Stores the offending value for `key`; called only by the thread that owns
// the entry at key's position (for the op that owns key's code), so no two
// threads race on it. A payload already stored for this key (by the call that
// recorded it) is kept.
__device__ __forceinline__ void store_payload(ErrorRecord record, unsigned long long key, long long value,
                                              long long aux) {
  volatile unsigned long long* r = record;
  if (r[de::kPayloadKey] == key) return;
  r[de::kValue] = static_cast<unsigned long long>(value);
  r[de::kAux] = static_cast<unsigned long long>(aux);
  __threadfence();
  r[de::kPayloadKey] = key;
}

}  // namespace rltorch::cuda
