#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>
#include <utility>

#include "../returns_common.h"
#include "device_error.cuh"
#include "launch.cuh"
#include "rltorch/returns.h"

namespace rltorch {
namespace {

template <typename scalar_t>
__global__ void td_target_kernel(const scalar_t* __restrict__ reward, const bool* __restrict__ terminated,
                                 const scalar_t* __restrict__ next_q,
                                 const scalar_t* __restrict__ next_q_online,
                                 const int64_t* __restrict__ next_action,
                                 const scalar_t* __restrict__ discount, double gamma, int64_t batch,
                                 int64_t num_actions, Bootstrap mode, scalar_t* __restrict__ out,
                                 cuda::ErrorRecord record) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch) return;
  const scalar_t* row = next_q + i * num_actions;
  acc_t bootstrap;
  if (next_q_online != nullptr) {
    bootstrap = static_cast<acc_t>(row[row_argmax<acc_t>(next_q_online + i * num_actions, num_actions)]);
  } else if (next_action != nullptr) {
    const int64_t act = next_action[i];
    if (act < 0 || act >= num_actions) {
      // Recorded for check_device_errors(); the row's target is NaN.
      cuda::record_error(record, device_error::kTdTargetAction, i);
      out[i] = static_cast<scalar_t>(NAN);
      return;
    }
    bootstrap = static_cast<acc_t>(row[act]);
  } else if (mode == Bootstrap::kMax) {
    bootstrap = row_max<acc_t>(row, num_actions);
  } else {
    bootstrap = static_cast<acc_t>(row[0]);
  }
  const acc_t d = discount != nullptr ? static_cast<acc_t>(discount[i]) : static_cast<acc_t>(gamma);
  out[i] = static_cast<scalar_t>(td_target<acc_t>(static_cast<acc_t>(reward[i]), terminated[i], d, bootstrap));
}

// One thread: stores the value behind a recorded bad next_action (a second
// kernel, because only after the first has finished is the recorded position
// final).
__global__ void td_target_payload_kernel(const int64_t* __restrict__ next_action, int64_t batch,
                                         int64_t num_actions, cuda::ErrorRecord record) {
  const unsigned long long word = cuda::read_error_word(record);
  if (word == device_error::kClear || device_error::key_code(word) != device_error::kTdTargetAction) return;
  const int64_t i = device_error::key_position(word);
  if (i < batch) cuda::store_payload(record, word, next_action[i], num_actions);
}

at::Tensor td_target_cuda(const at::Tensor& reward, const at::Tensor& terminated,
                          const at::Tensor& next_q, const std::optional<at::Tensor>& next_q_online,
                          const std::optional<at::Tensor>& next_action,
                          const std::optional<at::Tensor>& discount, double gamma) {
  const TdTargetArgs a =
      prepare_td_target(reward, terminated, next_q, next_q_online, next_action, discount, gamma);
  at::Tensor out = at::empty(reward.sizes(), reward.options().memory_format(at::MemoryFormat::Contiguous));
  if (a.batch == 0) return out;
  const c10::cuda::CUDAGuard guard(reward.device());
  const cuda::ErrorRecord record = cuda::error_record_for(reward);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, reward.scalar_type(), "td_target_cuda", [&] {
    td_target_kernel<scalar_t><<<cuda::blocks_for(a.batch), cuda::kThreads, 0, cuda::current_stream()>>>(
        a.reward.const_data_ptr<scalar_t>(), a.terminated.const_data_ptr<bool>(),
        a.next_q.const_data_ptr<scalar_t>(),
        a.next_q_online.defined() ? a.next_q_online.const_data_ptr<scalar_t>() : nullptr,
        a.next_action.defined() ? a.next_action.const_data_ptr<int64_t>() : nullptr,
        a.discount.defined() ? a.discount.const_data_ptr<scalar_t>() : nullptr, gamma, a.batch,
        a.num_actions, a.mode, out.mutable_data_ptr<scalar_t>(), record);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  if (a.next_action.defined()) {
    td_target_payload_kernel<<<1, 1, 0, cuda::current_stream()>>>(a.next_action.const_data_ptr<int64_t>(), a.batch,
                                                                   a.num_actions, record);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return out;
}

template <typename scalar_t>
__global__ void nstep_kernel(const scalar_t* __restrict__ reward, const bool* __restrict__ terminated,
                             const bool* __restrict__ truncated, int64_t T, int64_t N, int64_t n,
                             double gamma, scalar_t* __restrict__ returns, scalar_t* __restrict__ discount,
                             int64_t* __restrict__ index) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t cell = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (cell >= T * N) return;
  const int64_t t = cell / N, env = cell % N;
  acc_t ret, disc;
  int64_t last;
  nstep_cell<acc_t>(reward + env, terminated + env, truncated + env, t, T, N, n,
                    static_cast<acc_t>(gamma), &ret, &disc, &last);
  returns[cell] = static_cast<scalar_t>(ret);
  discount[cell] = static_cast<scalar_t>(disc);
  index[cell] = last;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> nstep_returns_cuda(const at::Tensor& reward,
                                                                   const at::Tensor& terminated,
                                                                   const at::Tensor& truncated,
                                                                   int64_t n, double gamma) {
  const NstepArgs a = prepare_nstep_returns(reward, terminated, truncated, n, gamma);
  const c10::cuda::CUDAGuard guard(reward.device());
  const at::Tensor& r = a.reward;
  at::Tensor returns = at::empty(reward.sizes(), r.options());
  at::Tensor discount = at::empty(reward.sizes(), r.options());
  at::Tensor index = at::empty(reward.sizes(), r.options().dtype(at::kLong));
  const int64_t total = a.T * a.N;
  if (total == 0) return {returns, discount, index};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, r.scalar_type(), "nstep_returns_cuda", [&] {
    nstep_kernel<scalar_t><<<cuda::blocks_for(total), cuda::kThreads, 0, cuda::current_stream()>>>(
        r.const_data_ptr<scalar_t>(), a.terminated.const_data_ptr<bool>(),
        a.truncated.const_data_ptr<bool>(), a.T, a.N, n, gamma, returns.mutable_data_ptr<scalar_t>(), discount.mutable_data_ptr<scalar_t>(),
        index.mutable_data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {returns, discount, index};
}

// One thread per env walks time backwards; neighbouring threads read
// neighbouring addresses at every step, so loads coalesce.
template <typename scalar_t>
__global__ void gae_kernel(const scalar_t* __restrict__ reward, const scalar_t* __restrict__ value,
                           const scalar_t* __restrict__ next_value, const bool* __restrict__ terminated,
                           const bool* __restrict__ done, int64_t T, int64_t N, double gamma,
                           double gamma_lambda, scalar_t* __restrict__ advantage,
                           scalar_t* __restrict__ returns) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t env = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (env >= N) return;
  const acc_t g = static_cast<acc_t>(gamma), gl = static_cast<acc_t>(gamma_lambda);
  acc_t carry = 0;
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t i = t * N + env;
    const acc_t v = static_cast<acc_t>(value[i]);
    carry = gae_cell<acc_t>(static_cast<acc_t>(reward[i]), v, static_cast<acc_t>(next_value[i]),
                            terminated[i], done[i], g, gl, carry);
    advantage[i] = static_cast<scalar_t>(carry);
    returns[i] = static_cast<scalar_t>(carry + v);
  }
}

// Few envs and long rollouts (PPO with N = 8, T = 2048): one thread per env
// would leave the GPU idle for the whole serial walk, so each env gets a
// block and each thread a chunk of time. A_t = delta_t + c_t * A_{t+1} (c_t =
// gamma * lambda, or 0 where done) is a linear recurrence, so a chunk [b, e)
// maps the advantage entering it from the right to A_b = a + p * A_e:
//   1. each thread walks its chunk with A_e = 0, giving a, and p = prod c_t;
//   2. one thread combines the chunks right to left: the advantage entering
//      each chunk (A_T = 0);
//   3. each thread walks its chunk again from that carry, writing outputs.
// Step 3 is the sequential recurrence itself; only the carries of step 2 are
// reassociated (a + p * carry instead of the cell-by-cell walk), so results
// differ from the one-thread scan by rounding only. tests/test_gae_chunked.py
// holds a Python replica of these three steps, bit-compared on the GPU and
// compared with the sequential reference on the CPU.
constexpr int64_t kGaeChunkedMaxEnvs = 2048;  // at and above: enough envs for one thread each
constexpr int64_t kGaeChunkedMinSteps = 256;  // below: the serial walk is short anyway
constexpr int kGaeChunkedThreads = 256;
constexpr int64_t kGaeMinChunk = 16;

bool gae_use_chunked(int64_t T, int64_t N) { return N < kGaeChunkedMaxEnvs && T >= kGaeChunkedMinSteps; }

// Threads per env (a multiple of 32) and steps per thread for a rollout of T steps.
std::pair<int, int64_t> gae_chunking(int64_t T) {
  const int64_t wanted = std::min<int64_t>(kGaeChunkedThreads, (T + kGaeMinChunk - 1) / kGaeMinChunk);
  const int threads = static_cast<int>((wanted + 31) / 32 * 32);
  return {threads, (T + threads - 1) / threads};
}

template <typename scalar_t>
__global__ void gae_chunked_kernel(const scalar_t* __restrict__ reward, const scalar_t* __restrict__ value,
                                   const scalar_t* __restrict__ next_value, const bool* __restrict__ terminated,
                                   const bool* __restrict__ done, int64_t T, int64_t N, int64_t chunk,
                                   double gamma, double gamma_lambda, scalar_t* __restrict__ advantage,
                                   scalar_t* __restrict__ returns) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t chunk_a[kGaeChunkedThreads];
  __shared__ acc_t chunk_p[kGaeChunkedThreads];
  __shared__ acc_t carry_in[kGaeChunkedThreads];
  const int64_t env = blockIdx.x;
  const int c = threadIdx.x;
  const acc_t g = static_cast<acc_t>(gamma), gl = static_cast<acc_t>(gamma_lambda);
  const int64_t begin = std::min<int64_t>(T, c * chunk), end = std::min<int64_t>(T, begin + chunk);
  acc_t a = 0, p = 1;
  for (int64_t t = end - 1; t >= begin; --t) {
    const int64_t i = t * N + env;
    a = gae_cell<acc_t>(static_cast<acc_t>(reward[i]), static_cast<acc_t>(value[i]),
                        static_cast<acc_t>(next_value[i]), terminated[i], done[i], g, gl, a);
    p = done[i] ? acc_t(0) : gl * p;
  }
  chunk_a[c] = a;
  chunk_p[c] = p;
  __syncthreads();
  if (c == 0) {
    acc_t carry = 0;
    for (int k = static_cast<int>(blockDim.x) - 1; k >= 0; --k) {
      carry_in[k] = carry;
      carry = chunk_a[k] + chunk_p[k] * carry;
    }
  }
  __syncthreads();
  acc_t carry = carry_in[c];
  for (int64_t t = end - 1; t >= begin; --t) {
    const int64_t i = t * N + env;
    const acc_t v = static_cast<acc_t>(value[i]);
    carry = gae_cell<acc_t>(static_cast<acc_t>(reward[i]), v, static_cast<acc_t>(next_value[i]), terminated[i],
                            done[i], g, gl, carry);
    advantage[i] = static_cast<scalar_t>(carry);
    returns[i] = static_cast<scalar_t>(carry + v);
  }
}

std::tuple<at::Tensor, at::Tensor> gae_cuda(const at::Tensor& reward, const at::Tensor& value,
                                            const at::Tensor& next_value, const at::Tensor& terminated,
                                            const at::Tensor& done, double gamma, double lmbda) {
  const GaeArgs in = prepare_gae(reward, value, next_value, terminated, done, gamma, lmbda);
  const c10::cuda::CUDAGuard guard(reward.device());
  const at::Tensor& r = in.reward;
  at::Tensor adv = at::empty(reward.sizes(), r.options());
  at::Tensor ret = at::empty(reward.sizes(), r.options());
  if (in.T * in.N == 0) return {adv, ret};
  if (gae_use_chunked(in.T, in.N)) {
    const auto [threads, chunk] = gae_chunking(in.T);
    TORCH_CHECK(in.N <= cuda::kMaxBlocks, "rltorch.gae: too many envs for the chunked scan");
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, r.scalar_type(), "gae_cuda", [&] {
      gae_chunked_kernel<scalar_t><<<static_cast<unsigned int>(in.N), threads, 0, cuda::current_stream()>>>(
          r.const_data_ptr<scalar_t>(), in.value.const_data_ptr<scalar_t>(),
          in.next_value.const_data_ptr<scalar_t>(), in.terminated.const_data_ptr<bool>(),
          in.done.const_data_ptr<bool>(), in.T, in.N, chunk, gamma, gamma * lmbda,
          adv.mutable_data_ptr<scalar_t>(), ret.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return {adv, ret};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, r.scalar_type(), "gae_cuda", [&] {
    gae_kernel<scalar_t><<<cuda::blocks_for(in.N, 128), 128, 0, cuda::current_stream()>>>(
        r.const_data_ptr<scalar_t>(), in.value.const_data_ptr<scalar_t>(),
        in.next_value.const_data_ptr<scalar_t>(), in.terminated.const_data_ptr<bool>(),
        in.done.const_data_ptr<bool>(), in.T, in.N, gamma, gamma * lmbda,
        adv.mutable_data_ptr<scalar_t>(), ret.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {adv, ret};
}

}  // namespace

TORCH_LIBRARY_IMPL(rltorch, CUDA, m) {
  m.impl("td_target", &td_target_cuda);
  m.impl("nstep_returns", &nstep_returns_cuda);
  m.impl("gae", &gae_cuda);
}

}  // namespace rltorch
