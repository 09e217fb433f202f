"""Time to solve CartPole-v1 (and Acrobot-v1, Pendulum-v1 with PPO, MountainCar-v0 with DQN) with
stable-baselines3 (rl-zoo3 hyperparameters): one seed per process.

Run by path, not as ``python -m rltorch...``: it may run in a virtualenv of
its own (SB3's pins), where rltorch's compiled extension need not load, so it
imports nothing from rltorch. The last line it prints is ``RESULT {json}``.

The criterion is rltorch's: a greedy mean return of at least the env's solve
threshold (475, -100, -200, -110) over 100 episodes, checked every
``--eval-every`` env steps. The 100 episodes run side by side in one gymnasium
vector env (``CartPoleVectorEnv``, else a ``SyncVectorEnv``; SB3's
``evaluate_policy`` steps one env at a time and would dominate the run); the
time spent evaluating is reported apart as ``eval_s``, and ``training_only_s``
leaves it out.

    python sb3_solve.py ppo --seed 1
    python sb3_solve.py dqn --seed 1 --total-steps 100000
    python sb3_solve.py ppo --env Pendulum-v1 --seed 1
"""

import argparse
import json
import os
import sys
import time

process_start = time.perf_counter()

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv  # noqa: E402
from stable_baselines3 import DQN, PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

EVAL_EPISODES = 100
#: The greedy mean return that counts as solved (gymnasium's reward_threshold; -200 for Pendulum-v1,
#: which has none: rltorch's, rltorch/envs/vector.py).
SOLVED_AT = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "Pendulum-v1": -200.0, "MountainCar-v0": -110.0}

# rl-baselines3-zoo hyperparams/ppo.yml, CartPole-v1 (1e5 steps).
PPO_ZOO_STEPS = 100_000
# rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1 (DLR-RM/rl-baselines3-zoo ce95481): 5e4 steps, one env.
DQN_ZOO_STEPS = 50_000
DQN_ZOO_EXPLORATION_FRACTION = 0.16


def linear(start):
    return lambda progress_remaining: progress_remaining * start


def make_ppo(seed, total_steps):
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    return PPO("MlpPolicy", env, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0,
               learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu", verbose=0)


def make_dqn(seed, total_steps):
    env = make_vec_env("CartPole-v1", n_envs=1, seed=seed)
    # SB3 spreads exploration over a fraction of the *whole* run; keep the zoo's
    # schedule in env steps (0.16 x 5e4 = 8000) whatever the step cap is.
    exploration_fraction = min(1.0, DQN_ZOO_EXPLORATION_FRACTION * DQN_ZOO_STEPS / total_steps)
    return DQN("MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
               gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
               exploration_fraction=exploration_fraction, exploration_final_eps=0.04,
               policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device="cpu", verbose=0)


# rl-baselines3-zoo hyperparams/ppo.yml, Acrobot-v1 (1e6 steps, observations normalized) and Pendulum-v1 (1e5).
ACROBOT_ZOO_STEPS = 1_000_000
PENDULUM_ZOO_STEPS = 100_000
# rl-baselines3-zoo hyperparams/dqn.yml, MountainCar-v0 (DLR-RM/rl-baselines3-zoo ce95481): 1.2e5 steps, one env.
MOUNTAIN_CAR_ZOO_STEPS = 120_000


def make_ppo_acrobot(seed, total_steps):
    env = VecNormalize(make_vec_env("Acrobot-v1", n_envs=16, seed=seed), norm_obs=True, norm_reward=False)
    return PPO("MlpPolicy", env, n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0, seed=seed,
               device="cpu", verbose=0)


def make_ppo_pendulum(seed, total_steps):
    env = make_vec_env("Pendulum-v1", n_envs=4, seed=seed)
    return PPO("MlpPolicy", env, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
               learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4, seed=seed, device="cpu", verbose=0)


def make_dqn_mountain_car(seed, total_steps):
    env = make_vec_env("MountainCar-v0", n_envs=1, seed=seed)
    # As for CartPole: the zoo's exploration schedule in env steps (0.2 x 1.2e5), whatever the cap.
    exploration_fraction = min(1.0, 0.2 * MOUNTAIN_CAR_ZOO_STEPS / total_steps)
    return DQN("MlpPolicy", env, learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1000,
               gamma=0.98, target_update_interval=600, train_freq=16, gradient_steps=8,
               exploration_fraction=exploration_fraction, exploration_final_eps=0.07,
               policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device="cpu", verbose=0)


#: (algorithm, env id) -> (model factory, the zoo's step budget).
SETUPS = {
    ("ppo", "CartPole-v1"): (make_ppo, PPO_ZOO_STEPS),
    ("dqn", "CartPole-v1"): (make_dqn, DQN_ZOO_STEPS),
    ("ppo", "Acrobot-v1"): (make_ppo_acrobot, ACROBOT_ZOO_STEPS),
    ("ppo", "Pendulum-v1"): (make_ppo_pendulum, PENDULUM_ZOO_STEPS),
    ("dqn", "MountainCar-v0"): (make_dqn_mountain_car, MOUNTAIN_CAR_ZOO_STEPS),
}


def greedy_mean(model, seed, env_id="CartPole-v1"):
    # NEXT_STEP autoreset: each env's first episode is the one counted.
    if env_id == "CartPole-v1":
        env = CartPoleVectorEnv(num_envs=EVAL_EPISODES, max_episode_steps=500)
    else:
        env = gym.make_vec(env_id, num_envs=EVAL_EPISODES, vectorization_mode="sync")
    normalize = model.get_vec_normalize_env()  # the training statistics, where the zoo normalizes
    obs, _ = env.reset(seed=seed + 10_000 + model.num_timesteps)
    returns, finished = np.zeros(EVAL_EPISODES), np.zeros(EVAL_EPISODES, dtype=bool)
    while not finished.all():
        action, _ = model.predict(obs if normalize is None else normalize.normalize_obs(obs), deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action)
        returns += reward * ~finished
        finished |= terminated | truncated
    env.close()
    return float(returns.mean())


class Evaluate(BaseCallback):
    def __init__(self, seed, eval_every, train_start, env_id="CartPole-v1"):
        super().__init__()
        self.seed, self.eval_every, self.train_start, self.env_id = seed, eval_every, train_start, env_id
        self.next_eval, self.eval_s, self.solved, self.last_eval_return = eval_every, 0.0, None, None

    def _on_step(self):
        if self.num_timesteps < self.next_eval:
            return True
        self.next_eval += self.eval_every
        start = time.perf_counter()
        self.last_eval_return = greedy_mean(self.model, self.seed, self.env_id)
        self.eval_s += time.perf_counter() - start
        if self.last_eval_return >= SOLVED_AT[self.env_id]:
            now = time.perf_counter()
            self.solved = dict(time_to_solve_s=now - self.train_start,
                               training_only_s=now - self.train_start - self.eval_s,
                               from_process_start_s=now - process_start, steps_to_solve=self.num_timesteps)
            return False
        return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("algorithm", choices=["ppo", "dqn"])
    parser.add_argument("--env", default="CartPole-v1", choices=sorted({env for _, env in SETUPS}),
                        help="gymnasium id (PPO: CartPole-v1, Acrobot-v1, Pendulum-v1; "
                             "DQN: CartPole-v1, MountainCar-v0)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 leaves torch's default")
    parser.add_argument("--eval-every", type=int, default=2048, help="env steps between greedy evaluations")
    parser.add_argument("--total-steps", type=int, default=None,
                        help="give up after this many env steps (default: the zoo's budget)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if (args.algorithm, args.env) not in SETUPS:
        parser.error(f"no rl-zoo3 setting here for {args.algorithm} on {args.env}")
    make, zoo_steps = SETUPS[(args.algorithm, args.env)]
    total_steps = args.total_steps or zoo_steps
    model = make(args.seed, total_steps)
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default logger makes a folder in /tmp per run
    train_start = time.perf_counter()
    callback = Evaluate(args.seed, args.eval_every, train_start, args.env)
    model.learn(total_timesteps=total_steps, callback=callback)
    wall = time.perf_counter() - train_start
    result = dict(solved=callback.solved is not None, env_steps=model.num_timesteps, wall_time_s=wall,
                  eval_s=callback.eval_s, steps_per_s=model.num_timesteps / wall,
                  last_eval_return=callback.last_eval_return, threads=torch.get_num_threads(),
                  time_to_solve_s=None, training_only_s=None, from_process_start_s=None, steps_to_solve=None)
    result.update(callback.solved or {})
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    # The interpreter's teardown (torch's among it) takes over half a second and measures nothing.
    os._exit(status)
