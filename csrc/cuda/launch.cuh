// Launch helpers shared by the CUDA kernels. Only c10 headers: this toolkit
// lacks the cuSPARSE headers that ATen/cuda/CUDAContext.h pulls in.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>

namespace rltorch::cuda {

constexpr int kThreads = 256;

// CUDA grids have at most 2^31 - 1 blocks in x. Kernels index with int64, so
// only the grid size itself can overflow: refuse it rather than wrap it.
constexpr int64_t kMaxBlocks = 2147483647;

inline unsigned int blocks_for(int64_t n, int threads = kThreads) {
  TORCH_CHECK(n >= 0 && threads > 0, "rltorch: bad launch size ", n, " with ", threads, " threads per block");
  const int64_t blocks = std::max<int64_t>(1, n / threads + (n % threads != 0));
  TORCH_CHECK(blocks <= kMaxBlocks, "rltorch: ", n, " elements need ", blocks, " blocks of ", threads,
              " threads, more than a CUDA grid holds (", kMaxBlocks, ")");
  return static_cast<unsigned int>(blocks);
}

// Kernels run on the caller's current stream, which CUDA graphs and
// torch.compile's reduce-overhead mode rely on.
inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

}  // namespace rltorch::cuda
