#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../returns_common.h"
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
                                 int64_t num_actions, Bootstrap mode, scalar_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch) return;
  const scalar_t* row = next_q + i * num_actions;
  acc_t bootstrap;
  if (next_q_online != nullptr) {
    bootstrap = static_cast<acc_t>(row[row_argmax<acc_t>(next_q_online + i * num_actions, num_actions)]);
  } else if (next_action != nullptr) {
    const int64_t act = next_action[i];
    CUDA_KERNEL_ASSERT(act >= 0 && act < num_actions && "rltorch.td_target: next_action out of range");
    bootstrap = static_cast<acc_t>(row[act]);
  } else if (mode == Bootstrap::kMax) {
    bootstrap = row_max<acc_t>(row, num_actions);
  } else {
    bootstrap = static_cast<acc_t>(row[0]);
  }
  const acc_t d = discount != nullptr ? static_cast<acc_t>(discount[i]) : static_cast<acc_t>(gamma);
  out[i] = static_cast<scalar_t>(td_target<acc_t>(static_cast<acc_t>(reward[i]), terminated[i], d, bootstrap));
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
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, reward.scalar_type(), "td_target_cuda", [&] {
    td_target_kernel<scalar_t><<<cuda::blocks_for(a.batch), cuda::kThreads, 0, cuda::current_stream()>>>(
        a.reward.const_data_ptr<scalar_t>(), a.terminated.const_data_ptr<bool>(),
        a.next_q.const_data_ptr<scalar_t>(),
        a.next_q_online.defined() ? a.next_q_online.const_data_ptr<scalar_t>() : nullptr,
        a.next_action.defined() ? a.next_action.const_data_ptr<int64_t>() : nullptr,
        a.discount.defined() ? a.discount.const_data_ptr<scalar_t>() : nullptr, gamma, a.batch,
        a.num_actions, a.mode, out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
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

std::tuple<at::Tensor, at::Tensor> gae_cuda(const at::Tensor& reward, const at::Tensor& value,
                                            const at::Tensor& next_value, const at::Tensor& terminated,
                                            const at::Tensor& done, double gamma, double lmbda) {
  const GaeArgs in = prepare_gae(reward, value, next_value, terminated, done, gamma, lmbda);
  const c10::cuda::CUDAGuard guard(reward.device());
  const at::Tensor& r = in.reward;
  at::Tensor adv = at::empty(reward.sizes(), r.options());
  at::Tensor ret = at::empty(reward.sizes(), r.options());
  if (in.T * in.N == 0) return {adv, ret};
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
