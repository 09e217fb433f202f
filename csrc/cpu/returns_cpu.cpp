#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../returns_common.h"
#include "rltorch/returns.h"

namespace rltorch {
namespace {

// Below this many elements one thread is faster than waking the pool.
constexpr int64_t kGrain = 1 << 15;

// The bootstrap source is a template parameter so the per-row loop carries no
// mode branches (they would be re-tested for every sample).
template <Bootstrap mode, typename scalar_t>
void td_target_rows(const TdTargetArgs& a, double gamma, scalar_t* y) {
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* r = a.reward.const_data_ptr<scalar_t>();
  const bool* term = a.terminated.const_data_ptr<bool>();
  const scalar_t* q = a.next_q.const_data_ptr<scalar_t>();
  const scalar_t* q_online = mode == Bootstrap::kOnlineArgmax ? a.next_q_online.const_data_ptr<scalar_t>() : nullptr;
  const int64_t* action = mode == Bootstrap::kAction ? a.next_action.const_data_ptr<int64_t>() : nullptr;
  const scalar_t* disc = a.discount.defined() ? a.discount.const_data_ptr<scalar_t>() : nullptr;
  const int64_t A = a.num_actions;
  const acc_t g = static_cast<acc_t>(gamma);
  at::parallel_for(0, a.batch, kGrain / (A + 1) + 1, [&](int64_t begin, int64_t end) {
    if constexpr (mode == Bootstrap::kAction) {
      // Validate the whole chunk before writing, so a bad index leaves no partial output behind.
      for (int64_t i = begin; i < end; ++i) {
        TORCH_CHECK_INDEX(action[i] >= 0 && action[i] < A, "rltorch.td_target: `next_action` holds ",
                          action[i], " at position ", i, ", outside [0, ", A, ")");
      }
    }
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t* row = q + i * A;
      acc_t bootstrap;
      if constexpr (mode == Bootstrap::kOnlineArgmax) {
        bootstrap = static_cast<acc_t>(row[row_argmax<acc_t>(q_online + i * A, A)]);
      } else if constexpr (mode == Bootstrap::kAction) {
        bootstrap = static_cast<acc_t>(row[action[i]]);
      } else if constexpr (mode == Bootstrap::kMax) {
        bootstrap = row_max<acc_t>(row, A);
      } else {
        bootstrap = static_cast<acc_t>(row[0]);
      }
      const acc_t d = disc != nullptr ? static_cast<acc_t>(disc[i]) : g;
      y[i] = static_cast<scalar_t>(td_target<acc_t>(static_cast<acc_t>(r[i]), term[i], d, bootstrap));
    }
  });
}

at::Tensor td_target_cpu(const at::Tensor& reward, const at::Tensor& terminated,
                         const at::Tensor& next_q, const std::optional<at::Tensor>& next_q_online,
                         const std::optional<at::Tensor>& next_action,
                         const std::optional<at::Tensor>& discount, double gamma) {
  const TdTargetArgs a =
      prepare_td_target(reward, terminated, next_q, next_q_online, next_action, discount, gamma);
  at::Tensor out = at::empty(reward.sizes(), reward.options().memory_format(at::MemoryFormat::Contiguous));
  if (a.batch == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, reward.scalar_type(), "td_target_cpu", [&] {
    scalar_t* y = out.mutable_data_ptr<scalar_t>();
    switch (a.mode) {
      case Bootstrap::kOnlineArgmax: td_target_rows<Bootstrap::kOnlineArgmax>(a, gamma, y); break;
      case Bootstrap::kAction: td_target_rows<Bootstrap::kAction>(a, gamma, y); break;
      case Bootstrap::kMax: td_target_rows<Bootstrap::kMax>(a, gamma, y); break;
      case Bootstrap::kValue: td_target_rows<Bootstrap::kValue>(a, gamma, y); break;
    }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> nstep_returns_cpu(const at::Tensor& reward,
                                                                  const at::Tensor& terminated,
                                                                  const at::Tensor& truncated,
                                                                  int64_t n, double gamma) {
  const NstepArgs a = prepare_nstep_returns(reward, terminated, truncated, n, gamma);
  const at::Tensor& r = a.reward;
  at::Tensor returns = at::empty(reward.sizes(), r.options());
  at::Tensor discount = at::empty(reward.sizes(), r.options());
  at::Tensor index = at::empty(reward.sizes(), r.options().dtype(at::kLong));
  const int64_t total = a.T * a.N;
  if (total == 0) return {returns, discount, index};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, r.scalar_type(), "nstep_returns_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* rp = r.const_data_ptr<scalar_t>();
    const bool* tp = a.terminated.const_data_ptr<bool>();
    const bool* up = a.truncated.const_data_ptr<bool>();
    scalar_t* gp = returns.mutable_data_ptr<scalar_t>();
    scalar_t* dp = discount.mutable_data_ptr<scalar_t>();
    int64_t* ip = index.mutable_data_ptr<int64_t>();
    const int64_t T = a.T, N = a.N;
    const acc_t g = static_cast<acc_t>(gamma);
    at::parallel_for(0, total, kGrain / n + 1, [&](int64_t begin, int64_t end) {
      for (int64_t cell = begin; cell < end; ++cell) {
        const int64_t t = cell / N, env = cell % N;
        acc_t ret, disc;
        int64_t last;
        nstep_cell<acc_t>(rp + env, tp + env, up + env, t, T, N, n, g, &ret, &disc, &last);
        gp[cell] = static_cast<scalar_t>(ret);
        dp[cell] = static_cast<scalar_t>(disc);
        ip[cell] = last;
      }
    });
  });
  return {returns, discount, index};
}

std::tuple<at::Tensor, at::Tensor> gae_cpu(const at::Tensor& reward, const at::Tensor& value,
                                           const at::Tensor& next_value,
                                           const at::Tensor& terminated, const at::Tensor& done,
                                           double gamma, double lmbda) {
  const GaeArgs in = prepare_gae(reward, value, next_value, terminated, done, gamma, lmbda);
  const at::Tensor& r = in.reward;
  at::Tensor adv = at::empty(reward.sizes(), r.options());
  at::Tensor ret = at::empty(reward.sizes(), r.options());
  if (in.T * in.N == 0) return {adv, ret};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, r.scalar_type(), "gae_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* rp = r.const_data_ptr<scalar_t>();
    const scalar_t* vp = in.value.const_data_ptr<scalar_t>();
    const scalar_t* nvp = in.next_value.const_data_ptr<scalar_t>();
    const bool* tp = in.terminated.const_data_ptr<bool>();
    const bool* dp = in.done.const_data_ptr<bool>();
    scalar_t* ap = adv.mutable_data_ptr<scalar_t>();
    scalar_t* gp = ret.mutable_data_ptr<scalar_t>();
    const int64_t T = in.T, N = in.N;
    const acc_t g = static_cast<acc_t>(gamma), gl = static_cast<acc_t>(gamma * lmbda);
    // Envs are independent: each thread owns a slice of them and walks time
    // backwards; the inner loop over contiguous envs vectorizes.
    at::parallel_for(0, N, std::max<int64_t>(kGrain / T, 256), [&](int64_t begin, int64_t end) {
      const int64_t width = end - begin;
      std::vector<acc_t> carry(static_cast<size_t>(width), acc_t(0));
      acc_t* c = carry.data();
      for (int64_t t = T - 1; t >= 0; --t) {
        const int64_t base = t * N + begin;
        for (int64_t j = 0; j < width; ++j) {
          const int64_t i = base + j;
          const acc_t value_i = static_cast<acc_t>(vp[i]);
          const acc_t a = gae_cell<acc_t>(static_cast<acc_t>(rp[i]), value_i,
                                          static_cast<acc_t>(nvp[i]), tp[i], dp[i], g, gl, c[j]);
          c[j] = a;
          ap[i] = static_cast<scalar_t>(a);
          gp[i] = static_cast<scalar_t>(a + value_i);
        }
      }
    });
  });
  return {adv, ret};
}

}  // namespace

TORCH_LIBRARY_IMPL(rltorch, CPU, m) {
  m.impl("td_target", &td_target_cpu);
  m.impl("nstep_returns", &nstep_returns_cpu);
  m.impl("gae", &gae_cpu);
}

}  // namespace rltorch
