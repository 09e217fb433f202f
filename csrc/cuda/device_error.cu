// The per-device error record lives in a __device__ array: one per device
// context, at a fixed address, so kernels captured in a CUDA graph keep
// pointing at it and no allocation ever happens (not even during capture).
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <atomic>

#include "device_error.cuh"

namespace {
__device__ unsigned long long rltorch_error_record[rltorch::device_error::kRecordSize] = {
    ~0ull, ~0ull, 0ull, 0ull};

// Cached per device: cudaGetSymbolAddress loads the module (lazy loading), so
// the first call should not happen inside a graph capture; every op warms it.
std::atomic<uint64_t*> record_address[256];
}  // namespace

namespace rltorch::cuda {

uint64_t* error_record(c10::DeviceIndex device) {
  TORCH_CHECK(device >= 0 && device < 256, "rltorch: bad CUDA device index ", static_cast<int>(device));
  uint64_t* address = record_address[device].load(std::memory_order_acquire);
  if (address != nullptr) return address;
  const c10::cuda::CUDAGuard guard(device);
  void* p = nullptr;
  C10_CUDA_CHECK(cudaGetSymbolAddress(&p, rltorch_error_record));
  address = static_cast<uint64_t*>(p);
  record_address[device].store(address, std::memory_order_release);
  return address;
}

ErrorRecord error_record_for(const at::Tensor& t) {
  return reinterpret_cast<ErrorRecord>(error_record(t.device().index()));
}

}  // namespace rltorch::cuda
