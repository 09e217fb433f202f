// Lets one header hold the math that both the C++ (CPU) and the CUDA kernels
// compile, so the two devices can never drift apart.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define RLTORCH_HOST_DEVICE __host__ __device__
#define RLTORCH_HOST_DEVICE_INLINE __host__ __device__ __forceinline__
#else
#define RLTORCH_HOST_DEVICE
#define RLTORCH_HOST_DEVICE_INLINE inline
#endif
