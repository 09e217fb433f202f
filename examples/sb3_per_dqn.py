"""Prioritized-replay DQN in stable-baselines3, on rltorch's CartPole and sum tree.

    pip install "rltorch[sb3]"
    python examples/sb3_per_dqn.py --steps 50000

Trains SB3's DQN with rltorch's prioritized replay (``PrioritizedDQN``) on
``SB3VecEnv`` (rltorch's batched CartPole-v1 behind SB3's VecEnv API), evaluates
the greedy policy, and round-trips the model through SB3's own save/load.
``--plain`` trains SB3's stock DQN with uniform replay instead, for comparison.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from stable_baselines3 import DQN
from stable_baselines3.common.evaluation import evaluate_policy

from rltorch.integrations.sb3 import PrioritizedDQN, SB3VecEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="environment steps to train for")
    parser.add_argument("--envs", type=int, default=4, help="CartPole envs stepped together")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain", action="store_true", help="SB3's DQN with uniform replay, for comparison")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small MLPs: one thread is fastest

    env = SB3VecEnv(num_envs=args.envs, seed=args.seed)
    # rl-zoo3's CartPole-v1 settings; train_freq counts calls of env.step (args.envs transitions each).
    settings = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99,
                    target_update_interval=10, train_freq=max(256 // args.envs, 1), gradient_steps=128,
                    exploration_fraction=0.16, exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]),
                    seed=args.seed, verbose=0)
    if args.plain:
        model = DQN("MlpPolicy", env, **settings)
    else:
        model = PrioritizedDQN("MlpPolicy", env, per_alpha=0.6, per_beta=0.4, per_final_beta=1.0, **settings)

    start = time.perf_counter()
    model.learn(args.steps)
    print(f"{type(model).__name__}: {args.steps} steps in {time.perf_counter() - start:.1f} s")
    eval_env = SB3VecEnv(num_envs=8, seed=args.seed + 1000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=40, warn=False)
    print(f"greedy return over 40 episodes: {mean:.1f} +- {std:.1f} (CartPole-v1 is solved at 475)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        model.save(path)
        loaded = type(model).load(path, env=env)
        obs = env.reset()
        same = (loaded.predict(obs, deterministic=True)[0] == model.predict(obs, deterministic=True)[0]).all()
        print(f"saved and loaded with SB3's own mechanism; same greedy actions: {bool(same)}")


if __name__ == "__main__":
    main()
