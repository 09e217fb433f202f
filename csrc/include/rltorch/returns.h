// Math of the Bellman-target family, shared by csrc/cpu and csrc/cuda.
// Everything here is per element (one sample, or one (t, env) cell); the
// kernels only decide which elements each thread owns.
#pragma once

#include <cmath>
#include <cstdint>

#include "rltorch/macros.h"

namespace rltorch {

// max_a q[a] over a row of `num_actions` values. A NaN anywhere wins (like
// torch.max), so a diverged network shows up in the targets instead of being
// masked. Branch-free (see select): on random Q values a compare-and-branch
// mispredicts half the time (7 ns per row here), and a branch-free row lets
// the batch loop vectorize.
template <typename acc_t, typename scalar_t>
RLTORCH_HOST_DEVICE_INLINE acc_t row_max(const scalar_t* q, int64_t num_actions) {
  acc_t best = static_cast<acc_t>(q[0]);
  bool saw_nan = best != best;
  for (int64_t a = 1; a < num_actions; ++a) {
    const acc_t v = static_cast<acc_t>(q[a]);
    saw_nan |= v != v;
    best = select(v > best, v, best);
  }
  return select(saw_nan, acc_t(NAN), best);
}

// argmax_a q[a]: the first maximal index, or the first NaN if any (torch.argmax's rule).
template <typename acc_t, typename scalar_t>
RLTORCH_HOST_DEVICE_INLINE int64_t row_argmax(const scalar_t* q, int64_t num_actions) {
  acc_t best = static_cast<acc_t>(q[0]);
  int64_t best_index = 0;
  int64_t first_nan = best != best ? 0 : -1;
  for (int64_t a = 1; a < num_actions; ++a) {
    const acc_t v = static_cast<acc_t>(q[a]);
    first_nan = (v != v && first_nan < 0) ? a : first_nan;
    best_index = v > best ? a : best_index;
    best = v > best ? v : best;
  }
  return first_nan >= 0 ? first_nan : best_index;
}

// Where the bootstrap value of a TD target comes from.
enum class Bootstrap { kValue, kMax, kOnlineArgmax, kAction };

// y = r + discount * (1 - terminated) * bootstrap. A terminated transition has
// no successor value; a truncated one keeps its bootstrap (it is not passed here).
template <typename acc_t>
RLTORCH_HOST_DEVICE_INLINE acc_t td_target(acc_t reward, bool terminated, acc_t discount,
                                           acc_t bootstrap) {
  return select(terminated, reward, reward + discount * bootstrap);
}

// One cell of the reverse GAE scan:
//   delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)
//   A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}
// `terminated` stops the bootstrap, `done` (terminated or truncated) stops the
// lambda chain; mixing the two up was pytorch/rl#2773.
template <typename acc_t>
RLTORCH_HOST_DEVICE_INLINE acc_t gae_cell(acc_t reward, acc_t value, acc_t next_value,
                                          bool terminated, bool done, acc_t gamma,
                                          acc_t gamma_lambda, acc_t next_advantage) {
  const acc_t bootstrap = select(terminated, acc_t(0), gamma * next_value);
  const acc_t delta = reward + bootstrap - value;
  return select(done, delta, delta + gamma_lambda * next_advantage);
}

// n-step return of the transition at time t of one env, over a time-major
// block with `stride` elements between consecutive times. Sums at most n
// rewards, stopping after the first terminated or truncated step.
// Writes the bootstrap discount (0 after a termination) and the time index
// whose next observation is the bootstrap state.
template <typename acc_t, typename scalar_t>
RLTORCH_HOST_DEVICE_INLINE void nstep_cell(const scalar_t* reward, const bool* terminated,
                                           const bool* truncated, int64_t t, int64_t T,
                                           int64_t stride, int64_t n, acc_t gamma,
                                           acc_t* out_return, acc_t* out_discount,
                                           int64_t* out_index) {
  acc_t total = 0;
  acc_t discount = 1;
  int64_t last = t;
  // n < T - t, not t + n < T: a huge n (sys.maxsize for "to the episode end")
  // would overflow the sum.
  const int64_t stop = (n < T - t) ? t + n : T;
  bool ended_by_termination = false;
  for (int64_t k = t; k < stop; ++k) {
    const int64_t i = k * stride;
    total += discount * static_cast<acc_t>(reward[i]);
    discount *= gamma;
    last = k;
    if (terminated[i]) {
      ended_by_termination = true;
      break;
    }
    if (truncated[i]) break;
  }
  *out_return = total;
  *out_discount = ended_by_termination ? acc_t(0) : discount;
  *out_index = last;
}

}  // namespace rltorch
