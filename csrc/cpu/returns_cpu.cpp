#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "../returns_common.h"
#include "parallel.h"
#include "rltorch/returns.h"

namespace rltorch {
namespace {

// Serial cost per element read, measured on the 2-core dev VM (float32, in
// cache: 0.5-1.6 ns); csrc/cpu/parallel.h turns it into the thread decision.
constexpr double kElementNs = 1.0;
// A thread's slice of GAE walks T rows, five input streams and two output
// streams each; slices narrower than this left the hardware prefetcher short
// runs (128 x 1,024 float32 on 2 threads: 117-env slices 82 us, 256 61 us,
// 512 52 us, serial 80 us).
constexpr int64_t kGaeMinSliceEnvs = 512;
// Slices start on a cache line of float32, so two threads never write one line.
constexpr int64_t kCacheLineFloats = 16;

// The bootstrap source (and, for the common two-action case, the action
// count) are template parameters so the per-row loop has no branches and, with
// restrict pointers and byte flags, vectorizes (0.46 vs 1.6 ns per row at A = 2).
template <Bootstrap mode, int64_t kActions, typename scalar_t, typename acc_t>
void td_target_chunk(const scalar_t* __restrict__ r, const uint8_t* __restrict__ term,
                     const scalar_t* __restrict__ q, const scalar_t* __restrict__ q_online,
                     const int64_t* __restrict__ action, const scalar_t* __restrict__ disc,
                     scalar_t* __restrict__ y, int64_t begin, int64_t end, int64_t runtime_actions,
                     acc_t g) {
  const int64_t A = kActions > 0 ? kActions : runtime_actions;
#pragma omp simd
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
    y[i] = static_cast<scalar_t>(td_target<acc_t>(static_cast<acc_t>(r[i]), term[i] != 0, d, bootstrap));
  }
}

template <Bootstrap mode, typename scalar_t>
void td_target_rows(const TdTargetArgs& a, double gamma, scalar_t* y) {
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* r = a.reward.const_data_ptr<scalar_t>();
  // bool tensors hold one byte per element, 0 or 1.
  const uint8_t* term = reinterpret_cast<const uint8_t*>(a.terminated.const_data_ptr<bool>());
  const scalar_t* q = a.next_q.const_data_ptr<scalar_t>();
  const scalar_t* q_online = mode == Bootstrap::kOnlineArgmax ? a.next_q_online.const_data_ptr<scalar_t>() : nullptr;
  const int64_t* action = mode == Bootstrap::kAction ? a.next_action.const_data_ptr<int64_t>() : nullptr;
  const scalar_t* disc = a.discount.defined() ? a.discount.const_data_ptr<scalar_t>() : nullptr;
  const int64_t A = a.num_actions;
  const acc_t g = static_cast<acc_t>(gamma);
  static cpu::ParallelSite site("td_target");
  cpu::parallel_for(site, a.batch, kElementNs * static_cast<double>(A + 1), [&](int64_t begin, int64_t end) {
    if constexpr (mode == Bootstrap::kAction) {
      // Validate the whole chunk before writing, so a bad index leaves no partial output behind.
      for (int64_t i = begin; i < end; ++i) {
        TORCH_CHECK_INDEX(action[i] >= 0 && action[i] < A, "rltorch.td_target: `next_action` holds ",
                          action[i], " at position ", i, ", outside [0, ", A, ")");
      }
    }
    if (A == 2 && mode != Bootstrap::kValue) {
      td_target_chunk<mode, 2>(r, term, q, q_online, action, disc, y, begin, end, A, g);
    } else {
      td_target_chunk<mode, 0>(r, term, q, q_online, action, disc, y, begin, end, A, g);
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
    // Threads take whole time rows and walk envs in memory order, so each
    // thread writes contiguous output and no cell divides to find its (t, env).
    // A row costs at most N * min(n, T) reads; that product is bounded by the
    // tensor's numel, so unlike N * n (n may be 2**62: "to the episode end")
    // it cannot overflow.
    const int64_t row_cost = N * std::min(n, T);
    static cpu::ParallelSite site("nstep_returns");
    cpu::parallel_for(site, T, kElementNs * static_cast<double>(row_cost), [&](int64_t t_begin, int64_t t_end) {
      for (int64_t t = t_begin; t < t_end; ++t) {
        for (int64_t env = 0; env < N; ++env) {
          const int64_t cell = t * N + env;
          acc_t ret, disc;
          int64_t last;
          nstep_cell<acc_t>(rp + env, tp + env, up + env, t, T, N, n, g, &ret, &disc, &last);
          gp[cell] = static_cast<scalar_t>(ret);
          dp[cell] = static_cast<scalar_t>(disc);
          ip[cell] = last;
        }
      }
    });
  });
  return {returns, discount, index};
}

// One time step of the scan for a contiguous run of envs. Flags are read as
// bytes and every pointer is restrict so GCC vectorizes the branch-free select
// (bool loads and possible aliasing each kept it scalar: 11 us vs 3 us at 128 x 64).
template <typename scalar_t, typename acc_t>
void gae_time_step(const scalar_t* __restrict__ r, const scalar_t* __restrict__ v,
                   const scalar_t* __restrict__ nv, const uint8_t* __restrict__ term,
                   const uint8_t* __restrict__ done, acc_t* __restrict__ carry,
                   scalar_t* __restrict__ adv, scalar_t* __restrict__ ret, int64_t width, acc_t g,
                   acc_t gl) {
#pragma omp simd
  for (int64_t j = 0; j < width; ++j) {
    const acc_t value = static_cast<acc_t>(v[j]);
    const acc_t a = gae_cell<acc_t>(static_cast<acc_t>(r[j]), value, static_cast<acc_t>(nv[j]),
                                    term[j] != 0, done[j] != 0, g, gl, carry[j]);
    carry[j] = a;
    adv[j] = static_cast<scalar_t>(a);
    ret[j] = static_cast<scalar_t>(a + value);
  }
}

std::tuple<at::Tensor, at::Tensor> gae_cpu(const at::Tensor& reward, const at::Tensor& value,
                                           const at::Tensor& next_value,
                                           const at::Tensor& terminated, const at::Tensor& done,
                                           double gamma, double lmbda) {
  const GaeArgs in = prepare_gae(reward, value, next_value, terminated, done, gamma, lmbda);
  at::Tensor adv = at::empty(reward.sizes(), in.reward.options());
  at::Tensor ret = at::empty(reward.sizes(), in.reward.options());
  if (in.T * in.N == 0) return {adv, ret};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.reward.scalar_type(), "gae_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* rp = in.reward.const_data_ptr<scalar_t>();
    const scalar_t* vp = in.value.const_data_ptr<scalar_t>();
    const scalar_t* nvp = in.next_value.const_data_ptr<scalar_t>();
    // bool tensors hold one byte per element, 0 or 1.
    const uint8_t* tp = reinterpret_cast<const uint8_t*>(in.terminated.const_data_ptr<bool>());
    const uint8_t* dp = reinterpret_cast<const uint8_t*>(in.done.const_data_ptr<bool>());
    scalar_t* ap = adv.mutable_data_ptr<scalar_t>();
    scalar_t* gp = ret.mutable_data_ptr<scalar_t>();
    const int64_t T = in.T, N = in.N;
    const acc_t g = static_cast<acc_t>(gamma), gl = static_cast<acc_t>(gamma * lmbda);
    // Envs are independent: each thread owns a slice of them and walks time
    // backwards over rows that are contiguous in memory.
    static cpu::ParallelSite site("gae");
    cpu::parallel_for(site, N, kElementNs * static_cast<double>(T), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> carry(static_cast<size_t>(end - begin), acc_t(0));
      for (int64_t t = T - 1; t >= 0; --t) {
        const int64_t base = t * N + begin;
        gae_time_step<scalar_t, acc_t>(rp + base, vp + base, nvp + base, tp + base, dp + base,
                                       carry.data(), ap + base, gp + base, end - begin, g, gl);
      }
    }, kCacheLineFloats, kGaeMinSliceEnvs);
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
