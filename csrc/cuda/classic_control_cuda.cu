// The classic-control envs on CUDA: one thread per env (after a validation
// pass; see device_error.cuh for how bad actions are reported). The state is
// [D, N] structure-of-arrays, so a warp's loads and stores of each component
// are coalesced. Each thread runs rltorch/classic_control.h's step_env, the
// functions the CPU kernel calls, so the two agree bit for bit.
#include <ATen/ATen.h>
#include <ATen/Dispatch_v2.h>
#include <torch/library.h>

#include "../classic_control_common.h"
#include "device_error.cuh"
#include "launch.cuh"

namespace rltorch {
namespace {

namespace cc = classic;

// The device error codes of each env (rltorch/device_error.h).
template <class Env>
struct ErrorCodes;
template <>
struct ErrorCodes<cc::MountainCar> {
  static constexpr int kBadAction = device_error::kMountainCarBadAction, kEnded = device_error::kMountainCarEnded;
};
template <>
struct ErrorCodes<cc::MountainCarContinuous> {
  static constexpr int kBadAction = device_error::kMountainCarContinuousBadAction;
  static constexpr int kEnded = device_error::kMountainCarContinuousEnded;
};
template <>
struct ErrorCodes<cc::Pendulum> {
  static constexpr int kBadAction = device_error::kPendulumBadAction, kEnded = device_error::kPendulumEnded;
};
template <>
struct ErrorCodes<cc::Acrobot> {
  static constexpr int kBadAction = device_error::kAcrobotBadAction, kEnded = device_error::kAcrobotEnded;
};

template <class Env, typename action_t>
__device__ __forceinline__ bool bad_action(action_t a) {
  if constexpr (Env::kContinuous) {
    return !isfinite(a);
  } else {
    // As unsigned, negative values are huge (the CPU check's rule).
    using bits_t = std::make_unsigned_t<action_t>;
    return static_cast<bits_t>(a) >= static_cast<bits_t>(Env::kNumActions);
  }
}

// What check_device_errors prints for a bad action: the integer, or a float's double bits.
template <class Env, typename action_t>
__device__ __forceinline__ long long action_payload(action_t a) {
  if constexpr (Env::kContinuous) {
    return __double_as_longlong(static_cast<double>(a));
  } else {
    return static_cast<long long>(a);
  }
}

// Checks every env before any is stepped (the step kernel follows in the same
// stream): a bad action, or an env stepped after it ended with autoreset
// disabled, is recorded in the device's error record instead of asserting.
template <class Env, typename action_t>
__global__ void validate_kernel(const action_t* __restrict__ actions, const bool* __restrict__ prev_done, int64_t n,
                                int64_t mode, cuda::ErrorRecord record) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  if (bad_action<Env>(actions[i])) cuda::record_error(record, ErrorCodes<Env>::kBadAction, i);
  if (mode == env::kDisabled && prev_done[i]) cuda::record_error(record, ErrorCodes<Env>::kEnded, i);
}

template <class Env, typename action_t>
__global__ void step_kernel(cc::EnvTensors e, cc::StepOutputs o, typename Env::Params params,
                            typename Env::Reset bounds, const action_t* __restrict__ actions, int64_t mode,
                            cuda::ErrorRecord record) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= e.n) return;
  const action_t a = actions[i];
  const unsigned long long word = cuda::read_error_word(record);
  if (device_error::is_blocking(word)) {
    // Bad input in this call (or an unchecked error from an earlier one): no
    // env moves. The outputs describe the unchanged envs.
    if (device_error::key_position(word) == i && device_error::key_code(word) == ErrorCodes<Env>::kBadAction) {
      cuda::store_payload(record, word, action_payload<Env>(a), 0);
    }
    double s[Env::kStateDim];
    cc::load_state<Env>(e, i, s);
    cc::observe_row<Env>(s, o.obs + Env::kObsDim * i);
    cc::clear_outputs(o, i);
    if (o.final_obs != nullptr) {
      for (int k = 0; k < Env::kObsDim; ++k) o.final_obs[Env::kObsDim * i + k] = 0.0f;
    }
    return;
  }
  cc::step_env<Env>(e, o, i, mode, params, bounds, static_cast<double>(a));
}

template <class Env>
__global__ void reset_kernel(cc::EnvTensors e, const bool* __restrict__ mask, typename Env::Reset bounds,
                             float* __restrict__ obs) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= e.n) return;
  cc::reset_or_observe<Env>(e, mask, i, bounds, obs);
}

template <class Env, typename action_t>
void launch_step(const cc::EnvTensors& e, const cc::StepOutputs& o, const typename Env::Params& params,
                 const typename Env::Reset& bounds, const action_t* actions, const bool* prev_done, int64_t mode,
                 cuda::ErrorRecord record) {
  const unsigned int blocks = cuda::blocks_for(e.n);
  const cudaStream_t stream = cuda::current_stream();
  validate_kernel<Env, action_t><<<blocks, cuda::kThreads, 0, stream>>>(actions, prev_done, e.n, mode, record);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  step_kernel<Env, action_t><<<blocks, cuda::kThreads, 0, stream>>>(e, o, params, bounds, actions, mode, record);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// ---- the registered ops (schemas in csrc/ops.cpp; arguments as in classic_control_cpu.cpp) ----

template <class Env>
ClassicStepOutputs step_cuda(at::Tensor& state, at::Tensor& steps, at::Tensor& prev_done, at::Tensor& episode,
                             at::Tensor& returns, const at::Tensor& actions, int64_t seed, double first,
                             double second, int64_t max_episode_steps, int64_t autoreset_mode, double param) {
  // Arguments first, so a CPU tensor among CUDA ones gets the message that names it.
  const ClassicStep<Env> s = prepare_step<Env>(state, steps, prev_done, episode, returns, actions, seed, first,
                                               second, max_episode_steps, autoreset_mode, param);
  const ClassicStepArgs& a = s.args;  // (a non-dependent name: no `template` needed below)
  if (a.n == 0) return a.outputs();
  const c10::cuda::CUDAGuard guard(state.device());
  const cuda::ErrorRecord record = cuda::error_record_for(state);
  const cc::EnvTensors e = env_tensors(state, steps, prev_done, episode, returns, seed);
  const cc::StepOutputs o = a.pointers();
  const bool* done_before = prev_done.const_data_ptr<bool>();
  if constexpr (Env::kContinuous) {
    launch_step<Env>(e, o, s.params, s.bounds, a.action.const_data_ptr<float>(), done_before, autoreset_mode,
                     record);
  } else {
    AT_DISPATCH_V2(a.action.scalar_type(), "classic_control_step_cuda", AT_WRAP([&] {
      launch_step<Env>(e, o, s.params, s.bounds, a.action.const_data_ptr<scalar_t>(), done_before,
                       autoreset_mode, record);
    }), AT_INTEGRAL_TYPES_V2);
  }
  return a.outputs();
}

template <class Env>
at::Tensor reset_cuda(at::Tensor& state, at::Tensor& steps, at::Tensor& prev_done, at::Tensor& episode,
                      at::Tensor& returns, const std::optional<at::Tensor>& reset_mask, int64_t seed, double first,
                      double second) {
  const ClassicReset<Env> r = prepare_reset<Env>(state, steps, prev_done, episode, returns, reset_mask, first, second);
  const at::Tensor& mask = r.mask;
  const at::Tensor& obs = r.obs;
  const int64_t n = state.size(1);
  if (n == 0) return obs;
  const c10::cuda::CUDAGuard guard(state.device());
  const cc::EnvTensors e = env_tensors(state, steps, prev_done, episode, returns, seed);
  reset_kernel<Env><<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::current_stream()>>>(
      e, mask.defined() ? mask.const_data_ptr<bool>() : nullptr, r.bounds, obs.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return obs;
}

}  // namespace

TORCH_LIBRARY_IMPL(rltorch, CUDA, m) {
  m.impl("mountain_car_step_", &step_cuda<cc::MountainCar>);
  m.impl("mountain_car_reset_", &reset_cuda<cc::MountainCar>);
  m.impl("mountain_car_continuous_step_", &step_cuda<cc::MountainCarContinuous>);
  m.impl("mountain_car_continuous_reset_", &reset_cuda<cc::MountainCarContinuous>);
  m.impl("pendulum_step_", &step_cuda<cc::Pendulum>);
  m.impl("pendulum_reset_", &reset_cuda<cc::Pendulum>);
  m.impl("acrobot_step_", &step_without_param<&step_cuda<cc::Acrobot>>);
  m.impl("acrobot_reset_", &reset_cuda<cc::Acrobot>);
}

}  // namespace rltorch
