// Every rltorch operator schema, in one place. Kernels are registered per
// dispatch key next to their code (csrc/cpu, csrc/cuda); fake kernels for
// torch.compile live in rltorch/ops/*.py.
#include <torch/library.h>

TORCH_LIBRARY(rltorch, m) {
  // ---- Bellman targets (csrc/include/rltorch/returns.h) ----
  // y = reward + discount * (1 - terminated) * bootstrap, where bootstrap is
  // max_a next_q (DQN), next_q[argmax_a next_q_online] or next_q[next_action]
  // (Double DQN), or next_q itself when it has no action dim (state values).
  // `discount` (scalar or per sample, e.g. gamma**n) overrides `gamma`.
  m.def(
      "td_target(Tensor reward, Tensor terminated, Tensor next_q, Tensor? next_q_online=None, "
      "Tensor? next_action=None, Tensor? discount=None, float gamma=0.99) -> Tensor");
  // Over a time-major [T, *batch] block: the n-step discounted return of every
  // transition, stopping at episode ends; the discount to apply to its
  // bootstrap value (0 after termination); and the time index whose next
  // observation is the bootstrap state.
  m.def(
      "nstep_returns(Tensor reward, Tensor terminated, Tensor truncated, int n, float gamma) "
      "-> (Tensor returns, Tensor discount, Tensor bootstrap_index)");
  // Exact GAE over a time-major [T, *batch] block; returns (advantages,
  // lambda-returns = advantages + values).
  m.def(
      "gae(Tensor reward, Tensor value, Tensor next_value, Tensor terminated, Tensor done, "
      "float gamma, float lmbda) -> (Tensor advantage, Tensor returns)");
}
