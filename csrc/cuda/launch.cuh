// Launch helpers shared by the CUDA kernels. Only c10 headers: this toolkit
// lacks the cuSPARSE headers that ATen/cuda/CUDAContext.h pulls in.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>

namespace rltorch::cuda {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n, int threads = kThreads) {
  return static_cast<unsigned int>(std::max<int64_t>(1, (n + threads - 1) / threads));
}

// Kernels run on the caller's current stream, which CUDA graphs and
// torch.compile's reduce-overhead mode rely on.
inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

}  // namespace rltorch::cuda
