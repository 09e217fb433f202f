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

// Serial ns per env step on the 2-core dev VM (x86-64-v4 clone), from which
// csrc/cpu/parallel.h decides whether a call forks: measured in interleaved
// one-thread runs as multiples of CartPole's step (kStepNs 6 in
// cartpole_cpu.cpp): MountainCar 1.1x, MountainCarContinuous 2.4x, Pendulum
// 1.75x, Acrobot 9.5x.
template <class Env>
constexpr double kStepNs = 7.0;
template <>
constexpr double kStepNs<cc::MountainCarContinuous> = 15.0;
template <>
constexpr double kStepNs<cc::Pendulum> = 11.0;
template <>
constexpr double kStepNs<cc::Acrobot> = 57.0;

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

#ifdef RLTORCH_ENV_VECTOR
// Vector groups (four envs each) stepped side by side per loop iteration. One
// group's step is a long chain of dependent operations (two sin/cos
// reductions and polynomials for Pendulum), so a core running one group at a
// time mostly waits on latency; independent groups interleaved in one basic
// block fill the pipeline. The per-lane operations are unchanged, so are the bits.
template <class Env>
constexpr int kGroups = 4;
template <>
constexpr int kGroups<cc::Acrobot> = 2;

// G groups of envs from env i: each env's whole step (physics, obs, counters,
// flags, rewards, episode returns; the operations of classic::settle, lane by
// lane) but the resets, which it only marks in `pending` (the envs that ended
// on the previous call with next-step autoreset, or on this one with
// same-step autoreset). Returns nonzero if any is marked.
template <class Env, int64_t Mode, int G, typename action_t>
RLTORCH_ENV_INLINE int step_groups(const cc::EnvTensors& e, const cc::StepOutputs& o,
                                   const typename Env::Params& params, const action_t* __restrict__ actions,
                                   int64_t i, bool* pending) {
  using cpu::vdouble;
  using cpu::vfloat;
  using cpu::vint;
  using cpu::vlong;
  constexpr int D = Env::kStateDim, O = Env::kObsDim, L = cpu::kLanes;
  const int64_t n = e.n;
  vdouble s[G][D];
  vint steps_before[G], terminated[G];
  vdouble reward[G];
  vfloat columns[G][O];
  for (int g = 0; g < G; ++g) {
    for (int k = 0; k < D; ++k) s[g][k] = cpu::load<vdouble>(e.state + k * n + i + g * L);
    steps_before[g] = cpu::load<vint>(e.steps + i + g * L);
  }
  for (int g = 0; g < G; ++g) {
    const vdouble fresh = __builtin_convertvector(steps_before[g] == 0, vlong) ? vdouble{} + 1.0 : vdouble{};
    terminated[g] = __builtin_convertvector(
        Env::step(s[g], cpu::load_lanes(actions + i + g * L), fresh, params, reward[g]), vint);
  }
  for (int g = 0; g < G; ++g) {
    vdouble ob[O];
    Env::observe(s[g], ob);
    for (int k = 0; k < O; ++k) columns[g][k] = __builtin_convertvector(ob[k], vfloat);
  }
  const vint max_steps = vint{} + o.max_steps;
  vint any_reset{};
  for (int g = 0; g < G; ++g) {
    const int64_t at = i + g * L;
    for (int k = 0; k < D; ++k) cpu::store(e.state + k * n + at, s[g][k]);
    cpu::store_rows<O>(o.obs + O * at, columns[g]);
    const vint steps = steps_before[g] + 1;
    const vint truncated = steps >= max_steps;
    const vint done = terminated[g] | truncated;
    const vdouble episode_return = cpu::load<vdouble>(e.returns + at) + reward[g];
    cpu::store(e.steps + at, steps);
    cpu::store(e.returns + at, episode_return);
    cpu::store(o.reward + at, __builtin_convertvector(reward[g], vfloat));
    cpu::store_flags(o.terminated + at, terminated[g]);
    cpu::store_flags(o.truncated + at, truncated);
    cpu::store_flags(o.done + at, done);
    cpu::store(o.episode_length + at, steps & done);
    const vint return_bits = (vint)__builtin_convertvector(episode_return, vfloat);
    cpu::store(o.episode_return + at, (vfloat)(return_bits & done));  // 0.0f where not done
    vint reset;
    if constexpr (Mode == env::kSameStep) {
      vfloat final_columns[O];
      for (int k = 0; k < O; ++k) final_columns[k] = (vfloat)((vint)columns[g][k] & done);
      cpu::store_rows<O>(o.final_obs + O * at, final_columns);
      cpu::store_flags(e.prev_done + at, vint{});
      reset = done;
    } else {
      reset = Mode == env::kNextStep ? cpu::load_flags(e.prev_done + at) : vint{};
      cpu::store_flags(e.prev_done + at, done);
    }
    cpu::store_flags(pending + g * L, reset);
    any_reset |= reset;
  }
  return any_reset[0] | any_reset[1] | any_reset[2] | any_reset[3];
}
#endif

// One tile: blocks of kGroups<Env> vector groups, then single groups, then
// the last few envs one at a time; the envs marked for a reset are reset in
// a scalar loop afterwards, as classic::settle would.
template <class Env, int64_t Mode, typename action_t>
RLTORCH_ENV_INLINE void step_tile(const cc::EnvTensors& e, const cc::StepOutputs& o,
                                  const typename Env::Params& params, const typename Env::Reset& bounds,
                                  const action_t* __restrict__ actions, int64_t begin, int64_t count) {
  int64_t j = 0;
#ifdef RLTORCH_ENV_VECTOR
  constexpr int G = kGroups<Env>, L = cpu::kLanes;
  bool pending[kTile];
  int any_pending = 0;
  for (; j + G * L <= count; j += G * L) {
    any_pending |= step_groups<Env, Mode, G>(e, o, params, actions, begin + j, pending + j);
  }
  for (; j + L <= count; j += L) {
    any_pending |= step_groups<Env, Mode, 1>(e, o, params, actions, begin + j, pending + j);
  }
  if (any_pending) {
    for (int64_t k = 0; k < j; ++k) {
      if (!pending[k]) continue;
      float* row = o.obs + Env::kObsDim * (begin + k);
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
