#include "returns_common.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "checks.h"

namespace rltorch {

at::Tensor as_contiguous_flags(const char* op, const at::Tensor& flags, const char* name) {
  TORCH_CHECK(!at::isComplexType(flags.scalar_type()), "rltorch.", op, ": `", name,
              "` must be bool (or 0/1 integers or floats), got ", flags.scalar_type());
  if (flags.scalar_type() == at::kBool) return flags.contiguous();
  return flags.ne(0).contiguous();
}

TdTargetArgs prepare_td_target(const at::Tensor& reward, const at::Tensor& terminated,
                               const at::Tensor& next_q,
                               const std::optional<at::Tensor>& next_q_online,
                               const std::optional<at::Tensor>& next_action,
                               const std::optional<at::Tensor>& discount, double gamma) {
  constexpr const char* op = "td_target";
  check_floating(op, reward, "reward");
  check_same_device(op, reward, "reward", terminated, "terminated");
  check_same_device(op, reward, "reward", next_q, "next_q");
  check_same_shape(op, reward, "reward", terminated, "terminated");
  check_same_dtype(op, reward, "reward", next_q, "next_q");

  TdTargetArgs args;
  args.batch = reward.numel();
  const bool has_action_dim = next_q.dim() == reward.dim() + 1;
  TORCH_CHECK(has_action_dim || next_q.dim() == reward.dim(), "rltorch.", op,
              ": `next_q` must have shape [*reward.shape, num_actions] (Q values) or "
              "reward.shape (state values), got ",
              shape_string(next_q), " with reward ", shape_string(reward));
  TORCH_CHECK(next_q.sizes().slice(0, reward.dim()) == reward.sizes(), "rltorch.", op,
              ": the leading dims of `next_q` ", shape_string(next_q),
              " must equal the shape of `reward` ", shape_string(reward));
  if (has_action_dim) {
    args.num_actions = next_q.size(-1);
    TORCH_CHECK(args.num_actions >= 1, "rltorch.", op,
                ": `next_q` needs at least one action, got shape ", shape_string(next_q));
    args.mode = Bootstrap::kMax;
  }

  const bool has_online = next_q_online.has_value() && next_q_online->defined();
  const bool has_action = next_action.has_value() && next_action->defined();
  TORCH_CHECK(!(has_online && has_action), "rltorch.", op,
              ": pass either `next_q_online` or `next_action` for Double DQN, not both");
  if (has_online || has_action) {
    TORCH_CHECK(has_action_dim, "rltorch.", op,
                ": Double DQN needs `next_q` with an action dim [*reward.shape, num_actions], got ",
                shape_string(next_q));
  }
  if (has_online) {
    check_same_device(op, reward, "reward", *next_q_online, "next_q_online");
    check_same_shape(op, next_q, "next_q", *next_q_online, "next_q_online");
    check_same_dtype(op, next_q, "next_q", *next_q_online, "next_q_online");
    args.next_q_online = next_q_online->contiguous();
    args.mode = Bootstrap::kOnlineArgmax;
  }
  if (has_action) {
    check_same_device(op, reward, "reward", *next_action, "next_action");
    TORCH_CHECK(at::isIntegralType(next_action->scalar_type(), /*includeBool=*/false),
                "rltorch.", op, ": `next_action` must hold integer action indices, got ",
                next_action->scalar_type());
    check_same_shape(op, reward, "reward", *next_action, "next_action");
    args.next_action = next_action->to(at::kLong).contiguous();
    args.mode = Bootstrap::kAction;
  }
  if (discount.has_value() && discount->defined()) {
    // Named `gamma` in messages: rltorch.ops.td_target takes the tensor discount as `gamma`.
    check_same_device(op, reward, "reward", *discount, "gamma");
    check_same_dtype(op, reward, "reward", *discount, "gamma");
    TORCH_CHECK(discount->dim() == 0 || discount->sizes() == reward.sizes(), "rltorch.", op,
                ": a tensor `gamma` must be a scalar tensor or have the shape of `reward` ",
                shape_string(reward), ", got ", shape_string(*discount));
    args.discount = discount->expand(reward.sizes()).contiguous();
  } else {
    check_unit_interval(op, gamma, "gamma");
  }

  args.reward = reward.contiguous();
  args.terminated = as_contiguous_flags(op, terminated, "terminated");
  args.next_q = next_q.contiguous();
  return args;
}

namespace {

// Checks reward is a time-major [T, *batch] float tensor; returns (T, N).
std::pair<int64_t, int64_t> time_major_extent(const char* op, const at::Tensor& reward) {
  check_floating(op, reward, "reward");
  TORCH_CHECK(reward.dim() >= 1, "rltorch.", op,
              ": `reward` must be time-major [T, *batch] with at least one dim, got a scalar");
  int64_t N = 1;
  for (int64_t d = 1; d < reward.dim(); ++d) N *= reward.size(d);
  return {reward.size(0), N};
}

void check_flag_like(const char* op, const at::Tensor& reward, const at::Tensor& flags,
                     const char* name) {
  check_same_device(op, reward, "reward", flags, name);
  check_same_shape(op, reward, "reward", flags, name);
}

}  // namespace

NstepArgs prepare_nstep_returns(const at::Tensor& reward, const at::Tensor& terminated,
                                const at::Tensor& truncated, int64_t n, double gamma) {
  constexpr const char* op = "nstep_returns";
  NstepArgs args;
  std::tie(args.T, args.N) = time_major_extent(op, reward);
  check_flag_like(op, reward, terminated, "terminated");
  check_flag_like(op, reward, truncated, "truncated");
  TORCH_CHECK_VALUE(n >= 1, "rltorch.nstep_returns: `n` must be >= 1, got ", n);
  check_unit_interval(op, gamma, "gamma");
  args.reward = reward.contiguous();
  args.terminated = as_contiguous_flags(op, terminated, "terminated");
  args.truncated = as_contiguous_flags(op, truncated, "truncated");
  return args;
}

GaeArgs prepare_gae(const at::Tensor& reward, const at::Tensor& value, const at::Tensor& next_value,
                    const at::Tensor& terminated, const at::Tensor& done, double gamma, double lmbda) {
  constexpr const char* op = "gae";
  GaeArgs args;
  std::tie(args.T, args.N) = time_major_extent(op, reward);
  check_flag_like(op, reward, value, "value");
  check_flag_like(op, reward, next_value, "next_value");
  check_same_dtype(op, reward, "reward", value, "value");
  check_same_dtype(op, reward, "reward", next_value, "next_value");
  check_flag_like(op, reward, terminated, "terminated");
  check_flag_like(op, reward, done, "done");
  check_unit_interval(op, gamma, "gamma");
  check_unit_interval(op, lmbda, "lmbda");
  args.reward = reward.contiguous();
  args.value = value.contiguous();
  args.next_value = next_value.contiguous();
  args.terminated = as_contiguous_flags(op, terminated, "terminated");
  args.done = as_contiguous_flags(op, done, "done");
  return args;
}

// Targets, returns and advantages are regression labels: they carry no
// gradient on any device, like the pure-PyTorch fallback (which runs under
// no_grad). Without this the autograd fallback marks the outputs as requiring
// grad and backward silently yields nothing.
TORCH_LIBRARY_IMPL(rltorch, Autograd, m) {
  m.impl("td_target", torch::CppFunction::makeFallthrough());
  m.impl("nstep_returns", torch::CppFunction::makeFallthrough());
  m.impl("gae", torch::CppFunction::makeFallthrough());
}

}  // namespace rltorch
