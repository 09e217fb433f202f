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

  // ---- CartPole-v1, vectorized (csrc/include/rltorch/cartpole.h) ----
  // The env is a set of tensors owned by the caller (rltorch.envs.CartPoleVecEnv):
  // state float64 [4, N] (rows x, x_dot, theta, theta_dot), steps int32 [N]
  // (steps since reset), prev_done bool [N] (done on the previous call) and
  // episode int64 [N] (resets so far: with `seed` it keys the reset generator).
  // One call steps every env: gymnasium's physics, termination, reward, step
  // count, truncation at max_episode_steps and autoreset (autoreset_mode 0 =
  // next step, 1 = same step, 2 = disabled). Returns obs float32 [N, 4], reward
  // float32, terminated, truncated, done = terminated | truncated (bool [N]),
  // the return (float32) and length (int32) of episodes that ended on this call
  // (0 elsewhere), and, in same-step mode, the final obs of those episodes
  // (float32 [N, 4], 0 elsewhere; [0, 4] in the other modes).
  m.def(
      "cartpole_step_(Tensor(a!) state, Tensor(b!) steps, Tensor(c!) prev_done, Tensor(d!) episode, "
      "Tensor actions, int seed, float low=-0.05, float high=0.05, int max_episode_steps=500, "
      "int autoreset_mode=0, bool sutton_barto_reward=False) -> (Tensor obs, Tensor reward, "
      "Tensor terminated, Tensor truncated, Tensor done, Tensor episode_return, "
      "Tensor episode_length, Tensor final_obs)");
  // Resets the envs in reset_mask (all if None): state ~ uniform(low, high) from
  // the counter-based generator keyed by (seed, env, episode[env]), then
  // episode[env] += 1, steps = 0, prev_done = False. Returns obs float32 [N, 4]
  // of every env.
  m.def(
      "cartpole_reset_(Tensor(a!) state, Tensor(b!) steps, Tensor(c!) prev_done, Tensor(d!) episode, "
      "Tensor? reset_mask, int seed, float low=-0.05, float high=0.05) -> Tensor obs");

  // ---- Prioritized-replay sum tree (csrc/include/rltorch/sumtree.h) ----
  // `tree` is a float64 [2, storage] tensor (row 0 sums, row 1 mins over the
  // same K-ary layout) created by rltorch.ops.SumTree, or a batch of T
  // independent trees [T, 2, storage] (rltorch.ops.SumTree(num_trees=T)): one
  // call then serves every tree, and each per-entry argument gains a leading
  // dimension T whose row t belongs to tree t. `capacity` and `fanout`
  // (2, 4, 8 or 16) fix the layout and are checked against the shape.
  //
  // Sets leaf index[i] to (priority[i] + eps) ** alpha for every i with
  // keep[i] (all when keep is None) and recomputes only their ancestors.
  // A leaf named twice ends with its last kept value (sequential-assignment
  // order) on every device. Priorities must be finite and >= 0, indices in
  // [0, capacity); the CPU kernel checks before writing anything.
  // running_max (one value per tree), if given, becomes max(running_max, max
  // kept priority + eps) of its tree.
  m.def(
      "sumtree_update_(Tensor(a!) tree, int capacity, int fanout, Tensor index, Tensor priority, "
      "Tensor? keep=None, float alpha=1.0, float eps=0.0, Tensor(b!)? running_max=None) -> ()");
  // For each mass u, the first leaf whose inclusive prefix sum exceeds u
  // (zero leaves are never returned; u >= total gives the last non-zero leaf).
  m.def("sumtree_find(Tensor tree, int capacity, int fanout, Tensor mass) -> Tensor");
  // Stratified sampling: u_i = (i + U_i) / batch_size * total with U_i ~ U[0, 1)
  // drawn on the tree's device from `generator`; returns the leaves and
  // float32 importance weights (p_i / p_min) ** -beta (p_min over non-zero
  // leaves), [batch_size] or [T, batch_size].
  m.def(
      "sumtree_sample(Tensor tree, int capacity, int fanout, int batch_size, float beta=0.0, "
      "Generator? generator=None) -> (Tensor index, Tensor weight)");
  // ---- Prioritized replay (rltorch/replay) ----
  // update_priorities in one call: for each transition id index[i] >= 0 whose
  // slot (index[i] mod capacity) still holds it (slot_ids[slot] == index[i]),
  // sets the slot's leaf to (|td_error[i]| + eps) ** alpha; ids of overwritten
  // transitions are skipped. running_max tracks max(|td| + eps) over kept
  // entries. Batched: slot_ids [T, capacity], running_max [T].
  m.def(
      "per_update_priorities_(Tensor(a!) tree, int capacity, int fanout, Tensor slot_ids, Tensor index, "
      "Tensor td_error, float alpha, float eps, Tensor(b!) running_max) -> ()");
  // Rows `index` of every column (all share dim 0), in one call. A [T, B]
  // index gathers row index[t, b] of [T, rows, ...] columns.
  m.def("replay_gather(Tensor[] columns, Tensor index) -> Tensor[]");
  // sumtree_sample and the gather of the sampled rows in one call: the slots,
  // their importance weights and rows `index` of every column (each
  // [capacity, ...], or [T, capacity, ...] for a batched tree). A PER step is
  // this plus per_update_priorities_.
  m.def(
      "replay_sample(Tensor tree, int capacity, int fanout, Tensor[] columns, int batch_size, float beta=0.0, "
      "Generator? generator=None) -> (Tensor index, Tensor weight, Tensor[] rows)");
}

// ---- Classic control, vectorized (csrc/include/rltorch/classic_control.h) ----
// MountainCar-v0, MountainCarContinuous-v0, Pendulum-v1 and Acrobot-v1, each a
// pair of ops shaped like CartPole's. The env is a set of tensors owned by the
// caller (rltorch.envs.MountainCarVecEnv, ...): state float64 [D, N] (rows:
// position, velocity | theta, theta_dot | theta1, theta2, dtheta1, dtheta2),
// steps int32 [N], prev_done bool [N], episode int64 [N] and returns float64
// [N] (the running episode's return so far). Actions are integers in {0, 1, 2}
// [N] (MountainCar, Acrobot) or finite float32 [N, 1] (MountainCarContinuous,
// Pendulum). A step returns obs float32 [N, O] (O = 2, 2, 3, 6), reward
// float32, terminated, truncated, done (bool [N]), the return (float32, summed
// in float64) and length (int32) of episodes that ended on this call (0
// elsewhere), and the final obs of those episodes in same-step mode (float32
// [N, O], 0 elsewhere; [0, O] in the other modes). A reset draws the envs in
// reset_mask (all if None) from the generator keyed by (seed, env,
// episode[env]) and returns obs float32 [N, O] of every env.
TORCH_LIBRARY_FRAGMENT(rltorch, m) {
  m.def(
      "mountain_car_step_(Tensor(a!) state, Tensor(b!) steps, Tensor(c!) prev_done, Tensor(d!) episode, "
      "Tensor(e!) returns, Tensor actions, int seed, float low=-0.6, float high=-0.4, int max_episode_steps=200, "
      "int autoreset_mode=0, float goal_velocity=0.0) -> (Tensor obs, Tensor reward, Tensor terminated, "
      "Tensor truncated, Tensor done, Tensor episode_return, Tensor episode_length, Tensor final_obs)");
  m.def(
      "mountain_car_reset_(Tensor(a!) state, Tensor(b!) steps, Tensor(c!) prev_done, Tensor(d!) episode, "
      "Tensor(e!) returns, Tensor? reset_mask, int seed, float low=-0.6, float high=-0.4) -> Tensor obs");
  m.def(
      "mountain_car_continuous_step_(Tensor(a!) state, Tensor(b!) steps, Tensor(c!) prev_done, "
      "Tensor(d!) episode, Tensor(e!) returns, Tensor actions, int seed, float low=-0.6, float high=-0.4, "
      "int max_episode_steps=999, int autoreset_mode=0, float goal_velocity=0.0) -> (Tensor obs, Tensor reward, "
      "Tensor terminated, Tensor truncated, Tensor done, Tensor episode_return, Tensor episode_length, "
      "Tensor final_obs)");
  m.def(
      "mountain_car_continuous_reset_(Tensor(a!) state, Tensor(b!) steps, Tensor(c!) prev_done, "
      "Tensor(d!) episode, Tensor(e!) returns, Tensor? reset_mask, int seed, float low=-0.6, float high=-0.4) "
      "-> Tensor obs");
  // theta ~ uniform(-x_init, x_init), theta_dot ~ uniform(-y_init, y_init); g is gravity.
  m.def(
      "pendulum_step_(Tensor(a!) state, Tensor(b!) steps, Tensor(c!) prev_done, Tensor(d!) episode, "
      "Tensor(e!) returns, Tensor actions, int seed, float x_init=3.141592653589793, float y_init=1.0, "
      "int max_episode_steps=200, int autoreset_mode=0, float g=10.0) -> (Tensor obs, Tensor reward, "
      "Tensor terminated, Tensor truncated, Tensor done, Tensor episode_return, Tensor episode_length, "
      "Tensor final_obs)");
  m.def(
      "pendulum_reset_(Tensor(a!) state, Tensor(b!) steps, Tensor(c!) prev_done, Tensor(d!) episode, "
      "Tensor(e!) returns, Tensor? reset_mask, int seed, float x_init=3.141592653589793, float y_init=1.0) "
      "-> Tensor obs");
  m.def(
      "acrobot_step_(Tensor(a!) state, Tensor(b!) steps, Tensor(c!) prev_done, Tensor(d!) episode, "
      "Tensor(e!) returns, Tensor actions, int seed, float low=-0.1, float high=0.1, int max_episode_steps=500, "
      "int autoreset_mode=0) -> (Tensor obs, Tensor reward, Tensor terminated, Tensor truncated, Tensor done, "
      "Tensor episode_return, Tensor episode_length, Tensor final_obs)");
  m.def(
      "acrobot_reset_(Tensor(a!) state, Tensor(b!) steps, Tensor(c!) prev_done, Tensor(d!) episode, "
      "Tensor(e!) returns, Tensor? reset_mask, int seed, float low=-0.1, float high=0.1) -> Tensor obs");
}
