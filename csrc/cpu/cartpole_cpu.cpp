// CartPole on the CPU: threads own contiguous ranges of envs; each range is
// walked in tiles whose hot loops are branch-free so the compiler vectorizes
// them (the state is structure-of-arrays). Rare per-env work (autoresets,
// angles outside the polynomial's range, errors) runs in separate scalar loops.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../cartpole_common.h"
#include "rltorch/cartpole.h"

namespace rltorch {
namespace {

namespace cp = cartpole;

// Envs per tile: the per-tile sin/cos scratch stays in L1.
constexpr int64_t kTile = 256;
// At ~5 ns per env, 8192 envs amortise waking a second thread.
constexpr int64_t kGrain = 8192;

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

#if defined(__GNUC__)
// The vector type only crosses inlined helpers, so the ABI note is moot.
#pragma GCC diagnostic ignored "-Wpsabi"
// Four envs per operation: GCC/Clang vector extensions lower this to SSE2
// pairs by default and to single AVX instructions in the AVX2 clone below.
// (Auto-vectorization gave up on the mixed-width loop.) IEEE arithmetic is per
// lane, so the vector and scalar paths agree bit for bit.
constexpr int64_t kLanes = 4;
typedef double vdouble __attribute__((vector_size(kLanes * sizeof(double))));
#else
constexpr int64_t kLanes = 1;
typedef double vdouble;
#endif

inline vdouble load(const double* p) {
  vdouble v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store(double* p, const vdouble& v) { std::memcpy(p, &v, sizeof(v)); }
inline double lane(const vdouble& v, int64_t k) {
#if defined(__GNUC__)
  return v[k];
#else
  return v;
#endif
}

template <int64_t Mode, typename action_t>
void step_tile(const StepPointers& p, const action_t* __restrict__ actions, int64_t begin, int64_t count) {
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
  int bad_action = 0, any_was_done = 0;
  // Per env, after the physics: flags, reward, counters and the obs row.
  auto finish = [&](int64_t j, double x, double x_dot, double th, double th_dot) {
    const action_t a = act[j];
    bad_action |= (a != action_t(0)) & (a != action_t(1));
    const bool term = cp::terminated(x, th);
    const int32_t st = steps[j] + 1;
    const bool trunc = st >= max_steps;
    const bool d = term | trunc;
    steps[j] = st;
    term_out[j] = term;
    trunc_out[j] = trunc;
    done_out[j] = d;
    // -float(terminated), like gymnasium (-0.0 on ordinary steps).
    reward[j] = sutton_barto ? -static_cast<float>(term) : 1.0f;
    ep_length[j] = d ? st : 0;
    ep_return[j] = d ? (sutton_barto ? (term ? -1.0f : 0.0f) : static_cast<float>(st)) : 0.0f;
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
  for (; j + kLanes <= count; j += kLanes) {
    vdouble x = load(xs + j), x_dot = load(x_dots + j), th = load(thetas + j), th_dot = load(theta_dots + j);
    vdouble s = cp::sin_poly(th), c = cp::cos_poly(th);
    vdouble force;
    bool wide = false;
    for (int64_t k = 0; k < kLanes; ++k) {
#if defined(__GNUC__)
      force[k] = cp::force_of<double>(act[j + k] == action_t(1));
      wide |= !(std::fabs(th[k]) <= cp::kPolyLimit);
#else
      force = cp::force_of<double>(act[j] == action_t(1));
      wide = !(std::fabs(th) <= cp::kPolyLimit);
#endif
    }
    if (wide) {  // rare: an angle beyond pi/4 (or NaN/inf) takes libm's values
      double sv[kLanes], cv[kLanes];
      for (int64_t k = 0; k < kLanes; ++k) cp::sincos_any(lane(th, k), &sv[k], &cv[k]);
      s = load(sv);
      c = load(cv);
    }
    cp::physics(x, x_dot, th, th_dot, force, s, c);
    store(xs + j, x);
    store(x_dots + j, x_dot);
    store(thetas + j, th);
    store(theta_dots + j, th_dot);
    for (int64_t k = 0; k < kLanes; ++k) finish(j + k, lane(x, k), lane(x_dot, k), lane(th, k), lane(th_dot, k));
  }
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

  if (bad_action) {
    for (int64_t i = 0; i < count; ++i) {
      TORCH_CHECK_VALUE(act[i] == action_t(0) || act[i] == action_t(1),
                        "rltorch.cartpole_step_: `actions` must be 0 or 1, got ", static_cast<int64_t>(act[i]),
                        " for env ", begin + i,
                        " (envs already processed in this call have advanced; reset before stepping again)");
    }
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
  } else {
    if (any_was_done) {
      for (int64_t i = 0; i < count; ++i) {
        TORCH_CHECK(!was_done[i], "rltorch.cartpole_step_: env ", begin + i,
                    " ended on the previous call and autoreset is disabled; reset it first "
                    "(reset(options={\"reset_mask\": mask})). Envs already processed in this call have advanced.");
      }
    }
  }
}

template <int64_t Mode, typename action_t>
void step_range(const StepPointers& p, const action_t* actions, int64_t begin, int64_t end) {
  for (int64_t t = begin; t < end; t += kTile) step_tile<Mode, action_t>(p, actions, t, std::min(kTile, end - t));
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
  AT_DISPATCH_INTEGRAL_TYPES(a.action.scalar_type(), "cartpole_step_cpu", [&] {
    const scalar_t* act = a.action.const_data_ptr<scalar_t>();
    at::parallel_for(0, a.n, kGrain, [&](int64_t begin, int64_t end) {
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
    });
  });
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
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (m == nullptr || m[i]) {
        cp::reset_env(s, st, pd, ep, o, n, i, key_seed, low, high);
      } else {
        cp::write_obs(o + 4 * i, s[i], s[n + i], s[2 * n + i], s[3 * n + i]);
      }
    }
  });
  return obs;
}

}  // namespace

TORCH_LIBRARY_IMPL(rltorch, CPU, m) {
  m.impl("cartpole_step_", &cartpole_step_cpu);
  m.impl("cartpole_reset_", &cartpole_reset_cpu);
}

}  // namespace rltorch
