// The classic-control envs on the CPU (MountainCar, MountainCarContinuous,
// Pendulum, Acrobot). Threads own contiguous ranges of envs; each range is
// walked in tiles of 256 envs, four envs per vector operation (the state is
// structure-of-arrays, sin/cos are polynomials, the physics have no branch on
// values but rare fix-ups of extreme states); the physics are the header
// functions CUDA runs, the bookkeeping is rltorch/classic_control.h's settle()
// lane by lane, and resets (rare) run one env at a time afterwards. Every action
// (and, with autoreset disabled, every env's done flag) is validated in a
// read-only pass before any env moves, so a rejected call leaves the env
// tensors untouched.
#include <ATen/ATen.h>
#include <ATen/Dispatch_v2.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>

#if defined(__GNUC__)
// The kernel's vector types only cross always-inlined helpers, so GCC's note
// that passing them by value would change the ABI is moot.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include "../classic_control_common.h"
#include "parallel.h"
#include "simd.h"

namespace rltorch {
namespace {

namespace cc = classic;

// Envs per tile: the tile's pending-reset flags stay in L1.
constexpr int64_t kTile = 256;
// Checking an action costs well under 1 ns; a reset ~10-20 ns.
constexpr double kCheckNs = 0.5;
constexpr double kResetNs = 15.0;

// Serial ns per env step on the 2-core dev VM (AVX2 clone), from which
// csrc/cpu/parallel.h decides whether a call forks: measured in one
// `rltorch bench --only env` run as multiples of CartPole's step (kStepNs 6 in
// cartpole_cpu.cpp): MountainCar 1.7x, MountainCarContinuous 3.3x, Pendulum
// 2.6x, Acrobot 11x.
template <class Env>
constexpr double kStepNs = 10.0;
template <>
constexpr double kStepNs<cc::MountainCarContinuous> = 20.0;
template <>
constexpr double kStepNs<cc::Pendulum> = 16.0;
template <>
constexpr double kStepNs<cc::Acrobot> = 65.0;

// ---- validation (read-only, before any env moves) ----

// Whether any of actions[begin, end) lies outside [0, num_actions): as
// unsigned, negative values are huge. Branch-free, so it vectorizes.
template <typename action_t>
bool any_bad_discrete(const action_t* actions, int64_t begin, int64_t end, int64_t num_actions) {
  using bits_t = std::make_unsigned_t<action_t>;
  const bits_t limit = static_cast<bits_t>(num_actions);
  bool bad = false;
  for (int64_t i = begin; i < end; ++i) bad |= static_cast<bits_t>(actions[i]) >= limit;
  return bad;
}

// Whether any of actions[begin, end) is NaN or infinite (exponent all ones).
bool any_non_finite(const float* actions, int64_t begin, int64_t end) {
  bool bad = false;
  for (int64_t i = begin; i < end; ++i) {
    uint32_t bits;
    std::memcpy(&bits, actions + i, sizeof(bits));
    bad |= (bits & 0x7f800000u) == 0x7f800000u;
  }
  return bad;
}

template <class Env, typename action_t>
bool any_bad_action(const action_t* actions, int64_t begin, int64_t end) {
  if constexpr (Env::kContinuous) {
    return any_non_finite(actions, begin, end);
  } else {
    return any_bad_discrete(actions, begin, end, Env::kNumActions);
  }
}

template <class Env, typename action_t>
void check_step_preconditions(const action_t* actions, const bool* prev_done, int64_t n, bool autoreset_disabled) {
  std::atomic<bool> bad_action{false}, ended{false};
  static cpu::ParallelSite site("classic_control_check_actions");
  cpu::parallel_for(site, n, kCheckNs, [&](int64_t begin, int64_t end) {
    if (any_bad_action<Env>(actions, begin, end)) bad_action.store(true, std::memory_order_relaxed);
    if (autoreset_disabled && cpu::any_set(prev_done, begin, end)) ended.store(true, std::memory_order_relaxed);
  });
  if (bad_action.load()) {
    int64_t env = 0;
    while (!any_bad_action<Env>(actions, env, env + 1)) ++env;
    if constexpr (Env::kContinuous) {
      TORCH_CHECK_VALUE(false, "rltorch.", Env::kStepOp, ": `actions` must be finite, got ",
                        static_cast<double>(actions[env]), " for env ", env, " (no env was stepped)");
    } else {
      using print_t = std::conditional_t<std::is_unsigned_v<action_t>, uint64_t, int64_t>;
      TORCH_CHECK_VALUE(false, "rltorch.", Env::kStepOp, ": `actions` must be 0, 1 or 2, got ",
                        static_cast<print_t>(actions[env]), " for env ", env, " (no env was stepped)");
    }
  }
  if (ended.load()) {
    int64_t env = 0;
    while (!prev_done[env]) ++env;
    TORCH_CHECK(false, "rltorch.", Env::kStepOp, ": env ", env,
                " ended on the previous call and autoreset is disabled; reset the ended envs first (", Env::kClass,
                ".reset(options={\"reset_mask\": mask}), or ", Env::kResetOp, " with that mask). No env was stepped.");
  }
}

// ---- stepping ----

// One tile. The vector loop does each env's whole step (physics, obs,
// counters, flags, rewards, episode returns; the operations of
// classic::settle, lane by lane) but the resets, which it only marks: the
// envs that ended on the previous call (next step) or on this one (same
// step) are reset in a scalar loop afterwards, as settle would.
template <class Env, int64_t Mode, typename action_t>
RLTORCH_ENV_INLINE void step_tile(const cc::EnvTensors& e, const cc::StepOutputs& o,
                                  const typename Env::Params& params, const typename Env::Reset& bounds,
                                  const action_t* __restrict__ actions, int64_t begin, int64_t count) {
  constexpr int D = Env::kStateDim, O = Env::kObsDim;
  const int64_t n = e.n;
  int64_t j = 0;
#ifdef RLTORCH_ENV_VECTOR
  using cpu::vdouble;
  using cpu::vfloat;
  using cpu::vint;
  using cpu::vlong;
  bool pending[kTile];
  int any_pending = 0;
  const vdouble one = vdouble{} + 1.0;
  const vint max_steps = vint{} + o.max_steps;
  for (; j + cpu::kLanes <= count; j += cpu::kLanes) {
    const int64_t i = begin + j;
    vdouble s[D];
    for (int k = 0; k < D; ++k) s[k] = cpu::load<vdouble>(e.state + k * n + i);
    const vint steps_before = cpu::load<vint>(e.steps + i);
    const vdouble fresh = __builtin_convertvector(steps_before == 0, vlong) ? one : vdouble{};
    vdouble reward;
    const vint terminated = __builtin_convertvector(Env::step(s, cpu::load_lanes(actions + i), fresh, params, reward), vint);
    for (int k = 0; k < D; ++k) cpu::store(e.state + k * n + i, s[k]);
    vdouble ob[O];
    Env::observe(s, ob);
    vfloat columns[O];
    for (int k = 0; k < O; ++k) columns[k] = __builtin_convertvector(ob[k], vfloat);
    cpu::store_rows<O>(o.obs + O * i, columns);

    const vint steps = steps_before + 1;
    const vint truncated = steps >= max_steps;
    const vint done = terminated | truncated;
    const vdouble episode_return = cpu::load<vdouble>(e.returns + i) + reward;
    cpu::store(e.steps + i, steps);
    cpu::store(e.returns + i, episode_return);
    cpu::store(o.reward + i, __builtin_convertvector(reward, vfloat));
    cpu::store_flags(o.terminated + i, terminated);
    cpu::store_flags(o.truncated + i, truncated);
    cpu::store_flags(o.done + i, done);
    cpu::store(o.episode_length + i, steps & done);
    const vint return_bits = (vint)__builtin_convertvector(episode_return, vfloat);
    cpu::store(o.episode_return + i, (vfloat)(return_bits & done));  // 0.0f where not done
    vint reset;
    if constexpr (Mode == env::kSameStep) {
      for (int k = 0; k < O; ++k) columns[k] = (vfloat)((vint)columns[k] & done);
      cpu::store_rows<O>(o.final_obs + O * i, columns);
      cpu::store_flags(e.prev_done + i, vint{});
      reset = done;
    } else {
      reset = Mode == env::kNextStep ? cpu::load_flags(e.prev_done + i) : vint{};
      cpu::store_flags(e.prev_done + i, done);
    }
    cpu::store_flags(pending + j, reset);
    any_pending |= reset[0] | reset[1] | reset[2] | reset[3];
  }
  if (any_pending) {
    for (int64_t k = 0; k < j; ++k) {
      if (!pending[k]) continue;
      float* row = o.obs + O * (begin + k);
      cc::reset_env<Env>(e, begin + k, bounds, row);
      if constexpr (Mode == env::kNextStep) cc::clear_outputs(o, begin + k);
    }
  }
#endif
  for (; j < count; ++j) {  // the last few envs of the tile, one at a time
    cc::step_env<Env>(e, o, begin + j, Mode, params, bounds, static_cast<double>(actions[begin + j]));
  }
}

template <class Env, int64_t Mode, typename action_t>
RLTORCH_CPU_CLONES void step_range(const cc::EnvTensors& e, const cc::StepOutputs& o,
                                   const typename Env::Params& params, const typename Env::Reset& bounds,
                                   const action_t* actions, int64_t begin, int64_t end) {
  for (int64_t t = begin; t < end; t += kTile) {
    step_tile<Env, Mode>(e, o, params, bounds, actions, t, std::min(kTile, end - t));
  }
}

template <class Env, typename action_t>
void step_all(const cc::EnvTensors& e, const cc::StepOutputs& o, const typename Env::Params& params,
              const typename Env::Reset& bounds, const action_t* actions, int64_t mode) {
  check_step_preconditions<Env>(actions, e.prev_done, e.n, mode == env::kDisabled);
  static cpu::ParallelSite site(Env::kStepOp);
  cpu::parallel_for(site, e.n, kStepNs<Env>, [&](int64_t begin, int64_t end) {
    switch (mode) {
      case env::kNextStep:
        step_range<Env, env::kNextStep>(e, o, params, bounds, actions, begin, end);
        break;
      case env::kSameStep:
        step_range<Env, env::kSameStep>(e, o, params, bounds, actions, begin, end);
        break;
      default:
        step_range<Env, env::kDisabled>(e, o, params, bounds, actions, begin, end);
    }
  }, kTile);
}

// ---- the registered ops (schemas in csrc/ops.cpp) ----
// `first` and `second` are the env's two reset bounds (low/high, or Pendulum's
// x_init/y_init), `param` its step parameter (goal_velocity, g).

template <class Env>
ClassicStepOutputs step_cpu(at::Tensor& state, at::Tensor& steps, at::Tensor& prev_done, at::Tensor& episode,
                            at::Tensor& returns, const at::Tensor& actions, int64_t seed, double first, double second,
                            int64_t max_episode_steps, int64_t autoreset_mode, double param) {
  const ClassicStep<Env> s = prepare_step<Env>(state, steps, prev_done, episode, returns, actions, seed, first,
                                               second, max_episode_steps, autoreset_mode, param);
  const ClassicStepArgs& a = s.args;  // (a non-dependent name: no `template` needed below)
  if (a.n == 0) return a.outputs();
  const cc::EnvTensors e = env_tensors(state, steps, prev_done, episode, returns, seed);
  const cc::StepOutputs o = a.pointers();
  if constexpr (Env::kContinuous) {
    step_all<Env>(e, o, s.params, s.bounds, a.action.const_data_ptr<float>(), autoreset_mode);
  } else {
    AT_DISPATCH_V2(a.action.scalar_type(), "classic_control_step_cpu", AT_WRAP([&] {
      step_all<Env>(e, o, s.params, s.bounds, a.action.const_data_ptr<scalar_t>(), autoreset_mode);
    }), AT_INTEGRAL_TYPES_V2);
  }
  return a.outputs();
}

template <class Env>
at::Tensor reset_cpu(at::Tensor& state, at::Tensor& steps, at::Tensor& prev_done, at::Tensor& episode,
                     at::Tensor& returns, const std::optional<at::Tensor>& reset_mask, int64_t seed, double first,
                     double second) {
  const ClassicReset<Env> r = prepare_reset<Env>(state, steps, prev_done, episode, returns, reset_mask, first, second);
  const at::Tensor& mask = r.mask;
  const at::Tensor& obs = r.obs;
  const int64_t n = state.size(1);
  if (n == 0) return obs;
  const cc::EnvTensors e = env_tensors(state, steps, prev_done, episode, returns, seed);
  const bool* m = mask.defined() ? mask.const_data_ptr<bool>() : nullptr;
  float* o = obs.data_ptr<float>();
  static cpu::ParallelSite site("classic_control_reset");
  cpu::parallel_for(site, n, kResetNs, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) cc::reset_or_observe<Env>(e, m, i, r.bounds, o);
  });
  return obs;
}

}  // namespace

TORCH_LIBRARY_IMPL(rltorch, CPU, m) {
  m.impl("mountain_car_step_", &step_cpu<cc::MountainCar>);
  m.impl("mountain_car_reset_", &reset_cpu<cc::MountainCar>);
  m.impl("mountain_car_continuous_step_", &step_cpu<cc::MountainCarContinuous>);
  m.impl("mountain_car_continuous_reset_", &reset_cpu<cc::MountainCarContinuous>);
  m.impl("pendulum_step_", &step_cpu<cc::Pendulum>);
  m.impl("pendulum_reset_", &reset_cpu<cc::Pendulum>);
  m.impl("acrobot_step_", &step_without_param<&step_cpu<cc::Acrobot>>);
  m.impl("acrobot_reset_", &reset_cpu<cc::Acrobot>);
}

}  // namespace rltorch
