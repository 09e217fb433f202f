// CartPole on CUDA: one thread per env (after a validation pass; see
// device_error.cuh for how bad actions are reported). The state is [4, N] structure-of-arrays,
// so a warp's loads and stores of each component are coalesced. The math is
// the header shared with the CPU kernel.
#include <ATen/ATen.h>
#include <ATen/Dispatch_v2.h>
#include <torch/library.h>

#include "../cartpole_common.h"
#include "device_error.cuh"
#include "launch.cuh"
#include "rltorch/cartpole.h"

namespace rltorch {
namespace {

namespace cp = cartpole;

// One 16-byte store per obs row (rows are 16-byte aligned: the allocator aligns
// the tensor and a row is 4 floats), so a warp writes 512 contiguous bytes.
__device__ __forceinline__ void store_row(float* rows, int64_t i, double a, double b, double c, double d) {
  reinterpret_cast<float4*>(rows)[i] =
      make_float4(static_cast<float>(a), static_cast<float>(b), static_cast<float>(c), static_cast<float>(d));
}

// Checks every env before any is stepped (the step kernel follows in the same
// stream): a bad action, or an env stepped after it ended with autoreset
// disabled, is recorded in the device's error record instead of asserting.
template <typename action_t>
__global__ void cartpole_validate_kernel(const action_t* __restrict__ actions, const bool* __restrict__ prev_done,
                                         int64_t n, int64_t mode, cuda::ErrorRecord record) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const action_t a = actions[i];
  if (a != action_t(0) && a != action_t(1)) cuda::record_error(record, device_error::kCartpoleBadAction, i);
  if (mode == cp::kDisabled && prev_done[i]) cuda::record_error(record, device_error::kCartpoleEnded, i);
}

template <typename action_t>
__global__ void cartpole_step_kernel(double* __restrict__ state, int32_t* __restrict__ steps,
                                     bool* __restrict__ prev_done, int64_t* __restrict__ episode,
                                     const action_t* __restrict__ actions, int64_t n, uint64_t seed, double low,
                                     double high, int32_t max_steps, int64_t mode, bool sutton_barto,
                                     float* __restrict__ obs, float* __restrict__ reward,
                                     bool* __restrict__ term_out, bool* __restrict__ trunc_out,
                                     bool* __restrict__ done_out, float* __restrict__ ep_return,
                                     int32_t* __restrict__ ep_length, float* __restrict__ final_obs,
                                     cuda::ErrorRecord record) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const action_t a = actions[i];
  const unsigned long long word = cuda::read_error_word(record);
  if (device_error::is_blocking(word)) {
    // Bad input in this call (or an unchecked error from an earlier one): no
    // env moves. The outputs describe the unchanged envs: their current obs,
    // reward 0, no flags, no finished episode.
    if (device_error::key_position(word) == i && device_error::key_code(word) == device_error::kCartpoleBadAction) {
      cuda::store_payload(record, word, static_cast<long long>(a), 0);
    }
    store_row(obs, i, state[i], state[n + i], state[2 * n + i], state[3 * n + i]);
    reward[i] = 0.0f;
    term_out[i] = trunc_out[i] = done_out[i] = false;
    ep_return[i] = 0.0f;
    ep_length[i] = 0;
    if (final_obs != nullptr) store_row(final_obs, i, 0.0, 0.0, 0.0, 0.0);
    return;
  }
  const bool was_done = prev_done[i];
  if (mode == cp::kNextStep && was_done) {
    // The call after an episode ends only resets the env (gymnasium's next-step rule).
    cp::reset_env(state, steps, prev_done, episode, obs, n, i, seed, low, high);
    reward[i] = 0.0f;
    term_out[i] = trunc_out[i] = done_out[i] = false;
    ep_return[i] = 0.0f;
    ep_length[i] = 0;
    return;
  }
  double x = state[i], x_dot = state[n + i], th = state[2 * n + i], th_dot = state[3 * n + i];
  double s, c;
  cp::sincos_any(th, &s, &c);
  cp::physics(x, x_dot, th, th_dot, cp::force_of<double>(a == action_t(1)), s, c);
  state[i] = x;
  state[n + i] = x_dot;
  state[2 * n + i] = th;
  state[3 * n + i] = th_dot;
  const cp::StepOutcome out = cp::step_outcome(x, th, steps[i], max_steps, sutton_barto);
  const bool d = out.done;
  steps[i] = out.steps;
  term_out[i] = out.terminated;
  trunc_out[i] = out.truncated;
  done_out[i] = d;
  reward[i] = out.reward;
  ep_length[i] = out.episode_length;
  ep_return[i] = out.episode_return;
  if (mode == cp::kSameStep) {
    if (d) {
      store_row(final_obs, i, x, x_dot, th, th_dot);
      cp::reset_env(state, steps, prev_done, episode, obs, n, i, seed, low, high);
    } else {
      store_row(final_obs, i, 0.0, 0.0, 0.0, 0.0);
      store_row(obs, i, x, x_dot, th, th_dot);
      prev_done[i] = false;
    }
  } else {
    store_row(obs, i, x, x_dot, th, th_dot);
    prev_done[i] = d;
  }
}

__global__ void cartpole_reset_kernel(double* __restrict__ state, int32_t* __restrict__ steps,
                                      bool* __restrict__ prev_done, int64_t* __restrict__ episode,
                                      const bool* __restrict__ mask, int64_t n, uint64_t seed, double low,
                                      double high, float* __restrict__ obs) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  cp::reset_or_observe(state, steps, prev_done, episode, mask, obs, n, i, seed, low, high);
}

CartPoleStepOutputs cartpole_step_cuda(at::Tensor& state, at::Tensor& steps, at::Tensor& prev_done,
                                       at::Tensor& episode, const at::Tensor& actions, int64_t seed, double low,
                                       double high, int64_t max_episode_steps, int64_t autoreset_mode,
                                       bool sutton_barto_reward) {
  // Arguments first, so a CPU tensor among CUDA ones gets the message that names it.
  CartPoleStepArgs a = prepare_cartpole_step(state, steps, prev_done, episode, actions, seed, low, high,
                                             max_episode_steps, autoreset_mode);
  if (a.n == 0) return a.outputs();
  const c10::cuda::CUDAGuard guard(state.device());
  const cuda::ErrorRecord record = cuda::error_record_for(state);
  const unsigned int blocks = cuda::blocks_for(a.n);
  const cudaStream_t stream = cuda::current_stream();
  // Unsigned action dtypes too, as on the CPU (prepare_cartpole_step accepts them).
  AT_DISPATCH_V2(a.action.scalar_type(), "cartpole_step_cuda", AT_WRAP([&] {
    cartpole_validate_kernel<scalar_t><<<blocks, cuda::kThreads, 0, stream>>>(
        a.action.const_data_ptr<scalar_t>(), prev_done.const_data_ptr<bool>(), a.n, autoreset_mode, record);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    cartpole_step_kernel<scalar_t><<<blocks, cuda::kThreads, 0, stream>>>(
        state.data_ptr<double>(), steps.data_ptr<int32_t>(), prev_done.data_ptr<bool>(),
        episode.data_ptr<int64_t>(), a.action.const_data_ptr<scalar_t>(), a.n, a.seed, low, high,
        a.max_episode_steps, autoreset_mode, sutton_barto_reward, a.obs.data_ptr<float>(),
        a.reward.data_ptr<float>(), a.terminated.data_ptr<bool>(), a.truncated.data_ptr<bool>(),
        a.done.data_ptr<bool>(), a.episode_return.data_ptr<float>(), a.episode_length.data_ptr<int32_t>(),
        autoreset_mode == cp::kSameStep ? a.final_obs.data_ptr<float>() : nullptr, record);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }), AT_INTEGRAL_TYPES_V2);
  return a.outputs();
}

at::Tensor cartpole_reset_cuda(at::Tensor& state, at::Tensor& steps, at::Tensor& prev_done, at::Tensor& episode,
                               const std::optional<at::Tensor>& reset_mask, int64_t seed, double low,
                               double high) {
  const at::Tensor mask = prepare_cartpole_reset(state, steps, prev_done, episode, reset_mask, low, high);
  const int64_t n = state.size(1);
  at::Tensor obs = at::empty({n, 4}, state.options().dtype(at::kFloat));
  if (n == 0) return obs;
  const c10::cuda::CUDAGuard guard(state.device());
  cartpole_reset_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(
      state.data_ptr<double>(), steps.data_ptr<int32_t>(), prev_done.data_ptr<bool>(), episode.data_ptr<int64_t>(),
      mask.defined() ? mask.const_data_ptr<bool>() : nullptr, n, static_cast<uint64_t>(seed), low, high,
      obs.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return obs;
}

}  // namespace

TORCH_LIBRARY_IMPL(rltorch, CUDA, m) {
  m.impl("cartpole_step_", &cartpole_step_cuda);
  m.impl("cartpole_reset_", &cartpole_reset_cuda);
}

}  // namespace rltorch
