// CartPole on the CPU: threads own contiguous ranges of envs; each range is
// walked in tiles of 256 envs, four envs per vector operation (the state is
// structure-of-arrays, sin/cos is a polynomial, the loop has no data-dependent
// branch but the rare wide-angle argument reduction). Rare per-env work
// (autoresets) runs in scalar loops over the tile afterwards. Every action
// (and, with autoreset disabled, every env's done flag) is validated in a
// read-only pass before any env moves, so a rejected call leaves the env
// tensors untouched.
#include <ATen/ATen.h>
#include <ATen/Dispatch_v2.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__GNUC__)
// The kernel's vector types only cross always-inlined helpers, so GCC's note
// that passing them by value would change the ABI is moot.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include "../cartpole_common.h"
#include "parallel.h"
#include "simd.h"
#include "rltorch/cartpole.h"

namespace rltorch {
namespace {

namespace cp = cartpole;

// Envs per tile: the per-tile sin/cos scratch stays in L1.
constexpr int64_t kTile = 256;
// Serial costs on the 2-core dev VM, from which csrc/cpu/parallel.h decides
// whether a call forks: a step ~4-8 ns per env, a reset ~10 ns, checking an
// action well under 1 ns.
constexpr double kStepNs = 6.0;
constexpr double kResetNs = 10.0;
constexpr double kCheckNs = 0.5;

struct StepPointers {
  double* state;
  int32_t* steps;
  bool* prev_done;
  int64_t* episode;
  float* obs;
  float* reward;
  bool* terminated;
  bool* truncated;
  bool* done;
  float* episode_return;
  int32_t* episode_length;
  float* final_obs;
  int64_t n;
  uint64_t seed;
  double low, high;
  int32_t max_episode_steps;
  bool sutton_barto;
};

// Whether any of actions[begin, end) is neither 0 nor 1: as unsigned, only 0
// and 1 have no bit above the lowest (negative values set the top bit). A
// branch-free OR, so the compiler vectorises it.
template <typename action_t>
bool any_invalid_action(const action_t* actions, int64_t begin, int64_t end) {
  using bits_t = std::make_unsigned_t<action_t>;
  bits_t acc = 0;
  for (int64_t i = begin; i < end; ++i) acc |= static_cast<bits_t>(actions[i]) >> 1;
  return acc != 0;
}

#ifdef RLTORCH_ENV_VECTOR
#define RLTORCH_CP_VECTOR 1
#endif

#if defined(__GNUC__)
#define RLTORCH_LAMBDA_INLINE __attribute__((always_inline))
#else
#define RLTORCH_LAMBDA_INLINE
#endif

#ifdef RLTORCH_CP_VECTOR
using cpu::kLanes;
using cpu::load;
using cpu::store;
using cpu::store_flags;
using cpu::Vec4;
using cpu::vbyte;
using cpu::vdouble;
using cpu::vfloat;
using cpu::vint;
using cpu::vlong;

// Four envs' float32 obs rows from their four state components (a 4x4 transpose).
RLTORCH_CP_INLINE void store_obs_rows(float* rows, vfloat a, vfloat b, vfloat c, vfloat d) {
  const vfloat ab_lo = __builtin_shufflevector(a, b, 0, 4, 1, 5), ab_hi = __builtin_shufflevector(a, b, 2, 6, 3, 7);
  const vfloat cd_lo = __builtin_shufflevector(c, d, 0, 4, 1, 5), cd_hi = __builtin_shufflevector(c, d, 2, 6, 3, 7);
  store(rows, __builtin_shufflevector(ab_lo, cd_lo, 0, 1, 4, 5));
  store(rows + 4, __builtin_shufflevector(ab_lo, cd_lo, 2, 3, 6, 7));
  store(rows + 8, __builtin_shufflevector(ab_hi, cd_hi, 0, 1, 4, 5));
  store(rows + 12, __builtin_shufflevector(ab_hi, cd_hi, 2, 3, 6, 7));
}
#endif

template <int64_t Mode, typename action_t>
RLTORCH_CP_INLINE void step_tile(const StepPointers& p, const action_t* __restrict__ actions, int64_t begin, int64_t count) {
  const int64_t n = p.n;
  double* __restrict__ xs = p.state + begin;
  double* __restrict__ x_dots = p.state + n + begin;
  double* __restrict__ thetas = p.state + 2 * n + begin;
  double* __restrict__ theta_dots = p.state + 3 * n + begin;
  const action_t* __restrict__ act = actions + begin;
  int32_t* __restrict__ steps = p.steps + begin;
  bool* __restrict__ prev_done = p.prev_done + begin;
  float* __restrict__ obs = p.obs + 4 * begin;
  float* __restrict__ reward = p.reward + begin;
  bool* __restrict__ term_out = p.terminated + begin;
  bool* __restrict__ trunc_out = p.truncated + begin;
  bool* __restrict__ done_out = p.done + begin;
  float* __restrict__ ep_return = p.episode_return + begin;
  int32_t* __restrict__ ep_length = p.episode_length + begin;
  float* __restrict__ final_obs = Mode == cp::kSameStep ? p.final_obs + 4 * begin : nullptr;
  const int32_t max_steps = p.max_episode_steps;
  const bool sutton_barto = p.sutton_barto;

  bool was_done[kTile];
  int any_was_done = 0;
  // One env after its physics: flags, reward, counters and the obs row (the
  // scalar tail of a tile, and every env when the vector path is compiled out).
  auto finish = [&](int64_t j, double x, double x_dot, double th, double th_dot) RLTORCH_LAMBDA_INLINE {
    const cp::StepOutcome out = cp::step_outcome(x, th, steps[j], max_steps, sutton_barto);
    const bool d = out.done;
    steps[j] = out.steps;
    term_out[j] = out.terminated;
    trunc_out[j] = out.truncated;
    done_out[j] = d;
    reward[j] = out.reward;
    ep_length[j] = out.episode_length;
    ep_return[j] = out.episode_return;
    cp::write_obs(obs + 4 * j, x, x_dot, th, th_dot);
    if constexpr (Mode == cp::kSameStep) {
      cp::write_obs(final_obs + 4 * j, d ? x : 0.0, d ? x_dot : 0.0, d ? th : 0.0, d ? th_dot : 0.0);
    }
    const bool wd = prev_done[j];
    was_done[j] = wd;
    any_was_done |= wd;
    prev_done[j] = Mode == cp::kSameStep ? false : d;
  };

  // Physics of every env, including those about to be reset (gymnasium also
  // steps them, then overwrites them).
  int64_t j = 0;
#ifdef RLTORCH_CP_VECTOR
  vint was_done_lanes = {0, 0, 0, 0};
  const vint max_lanes = {max_steps, max_steps, max_steps, max_steps};
  const vfloat ones = {1.0f, 1.0f, 1.0f, 1.0f};
  const vdouble push_right = {cp::kForceMag, cp::kForceMag, cp::kForceMag, cp::kForceMag};
  for (; j + kLanes <= count; j += kLanes) {
    vdouble x = load<vdouble>(xs + j), x_dot = load<vdouble>(x_dots + j);
    vdouble th = load<vdouble>(thetas + j), th_dot = load<vdouble>(theta_dots + j);
    const vlong a = __builtin_convertvector(load<typename Vec4<action_t>::type>(act + j), vlong);
    const vdouble force = a == 1 ? push_right : -push_right;
    vdouble s = cp::sin_poly(th), c = cp::cos_poly(th);
    const vlong wide = (th > cp::kPolyLimit) | (th < -cp::kPolyLimit) | (th != th);
    if (wide[0] | wide[1] | wide[2] | wide[3]) {  // rare: |angle| > pi/4 (or NaN/inf) is reduced first
      for (int k = 0; k < kLanes; ++k) {
        double sk, ck;
        cp::sincos_any(th[k], &sk, &ck);
        s[k] = sk;
        c[k] = ck;
      }
    }
    cp::physics(x, x_dot, th, th_dot, force, s, c);
    store(xs + j, x);
    store(x_dots + j, x_dot);
    store(thetas + j, th);
    store(theta_dots + j, th_dot);

    const vint term = __builtin_convertvector(cp::terminated(x, th), vint);  // -1 / 0
    const vint st = load<vint>(steps + j) + 1;
    const vint trunc = st >= max_lanes;
    const vint d = term | trunc;
    store(steps + j, st);
    store_flags(term_out + j, term);
    store_flags(trunc_out + j, trunc);
    store_flags(done_out + j, d);
    // -float(terminated), like gymnasium (-0.0 on ordinary steps).
    const vfloat term_f = __builtin_convertvector(term, vfloat);  // -1.0 / 0.0
    store(reward + j, sutton_barto ? -__builtin_convertvector(-term, vfloat) : ones);
    store(ep_length + j, st & d);
    store(ep_return + j, sutton_barto ? term_f : __builtin_convertvector(st & d, vfloat));
    const vfloat fx = __builtin_convertvector(x, vfloat), fx_dot = __builtin_convertvector(x_dot, vfloat);
    const vfloat fth = __builtin_convertvector(th, vfloat), fth_dot = __builtin_convertvector(th_dot, vfloat);
    store_obs_rows(obs + 4 * j, fx, fx_dot, fth, fth_dot);
    if constexpr (Mode == cp::kSameStep) {
      const vfloat zero = {0.0f, 0.0f, 0.0f, 0.0f};
      store_obs_rows(final_obs + 4 * j, d ? fx : zero, d ? fx_dot : zero, d ? fth : zero, d ? fth_dot : zero);
    }
    const vint wd = -__builtin_convertvector(load<vbyte>(reinterpret_cast<const int8_t*>(prev_done + j)), vint);
    was_done_lanes |= wd;
    store_flags(was_done + j, wd);
    store_flags(prev_done + j, Mode == cp::kSameStep ? vint{0, 0, 0, 0} : d);
  }
  any_was_done |= (was_done_lanes[0] | was_done_lanes[1] | was_done_lanes[2] | was_done_lanes[3]) != 0;
#endif
  for (; j < count; ++j) {  // the last few envs of the tile, one at a time
    double x = xs[j], x_dot = x_dots[j], th = thetas[j], th_dot = theta_dots[j];
    double s, c;
    cp::sincos_any(th, &s, &c);
    cp::physics(x, x_dot, th, th_dot, cp::force_of<double>(act[j] == action_t(1)), s, c);
    xs[j] = x;
    x_dots[j] = x_dot;
    thetas[j] = th;
    theta_dots[j] = th_dot;
    finish(j, x, x_dot, th, th_dot);
  }

  if constexpr (Mode == cp::kNextStep) {
    // Envs done on the previous call start over instead: the action is
    // ignored, reward 0, both flags False (gymnasium's CartPoleVectorEnv).
    if (any_was_done) {
      for (int64_t i = 0; i < count; ++i) {
        if (!was_done[i]) continue;
        cp::reset_env(p.state, p.steps, p.prev_done, p.episode, p.obs, n, begin + i, p.seed, p.low, p.high);
        reward[i] = 0.0f;
        term_out[i] = trunc_out[i] = done_out[i] = false;
        ep_return[i] = 0.0f;
        ep_length[i] = 0;
      }
    }
  } else if constexpr (Mode == cp::kSameStep) {
    // Finished episodes restart in this very call; their last obs went to final_obs.
    for (int64_t i = 0; i < count; ++i) {
      if (done_out[i]) cp::reset_env(p.state, p.steps, p.prev_done, p.episode, p.obs, n, begin + i, p.seed, p.low, p.high);
    }
  }
  // kDisabled: the pre-pass has rejected any call stepping an env that had ended.
}

template <int64_t Mode, typename action_t>
RLTORCH_CPU_CLONES void step_range(const StepPointers& p, const action_t* actions, int64_t begin, int64_t end) {
  for (int64_t t = begin; t < end; t += kTile) step_tile<Mode, action_t>(p, actions, t, std::min(kTile, end - t));
}

// Rejects the call before any env moves: an action other than 0 or 1, or (with
// autoreset disabled) an env that ended on the previous call. The same
// thread ranges as the step loop, so each thread's actions stay in its cache.
template <typename action_t>
void check_step_preconditions(const action_t* act, const bool* prev_done, int64_t n, bool autoreset_disabled) {
  std::atomic<bool> bad_action{false}, ended{false};
  static cpu::ParallelSite site("cartpole_check_actions");
  cpu::parallel_for(site, n, kCheckNs, [&](int64_t begin, int64_t end) {
    if (any_invalid_action(act, begin, end)) bad_action.store(true, std::memory_order_relaxed);
    if (autoreset_disabled && cpu::any_set(prev_done, begin, end)) ended.store(true, std::memory_order_relaxed);
  });
  if (bad_action.load()) {
    int64_t env = 0;
    while (!any_invalid_action(act, env, env + 1)) ++env;
    using print_t = std::conditional_t<std::is_unsigned_v<action_t>, uint64_t, int64_t>;
    TORCH_CHECK_VALUE(false, "rltorch.cartpole_step_: `actions` must be 0 or 1, got ", static_cast<print_t>(act[env]),
                      " for env ", env, " (no env was stepped)");
  }
  if (ended.load()) {
    int64_t env = 0;
    while (!prev_done[env]) ++env;
    TORCH_CHECK(false, "rltorch.cartpole_step_: env ", env,
                " ended on the previous call and autoreset is disabled; reset the ended envs first "
                "(CartPoleVecEnv.reset(options={\"reset_mask\": mask}), or cartpole_reset_ with that mask). "
                "No env was stepped.");
  }
}

CartPoleStepOutputs cartpole_step_cpu(at::Tensor& state, at::Tensor& steps, at::Tensor& prev_done,
                                      at::Tensor& episode, const at::Tensor& actions, int64_t seed, double low,
                                      double high, int64_t max_episode_steps, int64_t autoreset_mode,
                                      bool sutton_barto_reward) {
  CartPoleStepArgs a = prepare_cartpole_step(state, steps, prev_done, episode, actions, seed, low, high,
                                             max_episode_steps, autoreset_mode);
  if (a.n == 0) return a.outputs();
  StepPointers p{state.data_ptr<double>(),
                 steps.data_ptr<int32_t>(),
                 prev_done.data_ptr<bool>(),
                 episode.data_ptr<int64_t>(),
                 a.obs.data_ptr<float>(),
                 a.reward.data_ptr<float>(),
                 a.terminated.data_ptr<bool>(),
                 a.truncated.data_ptr<bool>(),
                 a.done.data_ptr<bool>(),
                 a.episode_return.data_ptr<float>(),
                 a.episode_length.data_ptr<int32_t>(),
                 autoreset_mode == cp::kSameStep ? a.final_obs.data_ptr<float>() : nullptr,
                 a.n,
                 a.seed,
                 low,
                 high,
                 a.max_episode_steps,
                 sutton_barto_reward};
  AT_DISPATCH_V2(a.action.scalar_type(), "cartpole_step_cpu", AT_WRAP([&] {
    const scalar_t* act = a.action.const_data_ptr<scalar_t>();
    check_step_preconditions(act, p.prev_done, a.n, autoreset_mode == cp::kDisabled);
    static cpu::ParallelSite site("cartpole_step");
    cpu::parallel_for(site, a.n, kStepNs, [&](int64_t begin, int64_t end) {
      switch (autoreset_mode) {
        case cp::kNextStep:
          step_range<cp::kNextStep>(p, act, begin, end);
          break;
        case cp::kSameStep:
          step_range<cp::kSameStep>(p, act, begin, end);
          break;
        default:
          step_range<cp::kDisabled>(p, act, begin, end);
      }
    }, kTile);
  }), AT_INTEGRAL_TYPES_V2);
  return a.outputs();
}

at::Tensor cartpole_reset_cpu(at::Tensor& state, at::Tensor& steps, at::Tensor& prev_done, at::Tensor& episode,
                              const std::optional<at::Tensor>& reset_mask, int64_t seed, double low, double high) {
  const at::Tensor mask = prepare_cartpole_reset(state, steps, prev_done, episode, reset_mask, low, high);
  const int64_t n = state.size(1);
  at::Tensor obs = at::empty({n, 4}, state.options().dtype(at::kFloat));
  if (n == 0) return obs;
  double* s = state.data_ptr<double>();
  int32_t* st = steps.data_ptr<int32_t>();
  bool* pd = prev_done.data_ptr<bool>();
  int64_t* ep = episode.data_ptr<int64_t>();
  float* o = obs.data_ptr<float>();
  const bool* m = mask.defined() ? mask.const_data_ptr<bool>() : nullptr;
  const uint64_t key_seed = static_cast<uint64_t>(seed);
  static cpu::ParallelSite site("cartpole_reset");
  cpu::parallel_for(site, n, kResetNs, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) cp::reset_or_observe(s, st, pd, ep, m, o, n, i, key_seed, low, high);
  });
  return obs;
}

}  // namespace

TORCH_LIBRARY_IMPL(rltorch, CPU, m) {
  m.impl("cartpole_step_", &cartpole_step_cpu);
  m.impl("cartpole_reset_", &cartpole_reset_cpu);
}

}  // namespace rltorch
