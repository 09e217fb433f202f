"""Writes the checkpoints of tests/test_legacy_checkpoints.py with an older rltorch: each agent paused half way
(``<name>_<tag>.pt``) and what that rltorch did next (``<name>_<tag>_expected.pt``: greedy actions on fixed
observations at the pause and after training on to the end, and the policy's parameters then).

Run from a checkout of the old commit, with its extension built:
``PYTHONPATH=. python /path/to/write_fixtures.py OUT_DIR TAG WITH_PENDULUM``; the files here came from
7f53795 (format 2: ``format2 0``) and f155e46 (format 3, before population training: ``format3 1``).
"""

import sys

import torch

from rltorch.agents import DQN, PPO, DQNConfig, PPOConfig

out, tag, pendulum = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
torch.manual_seed(0)
cases = {
    "dqn": (DQN, DQNConfig(seed=3, num_envs=4, total_steps=512, learning_starts=64, batch_size=16, buffer_size=512,
                           eval_interval=10**6, log_interval=128, device="cpu", hidden_sizes=(16, 16))),
    "ppo": (PPO, PPOConfig(seed=3, num_envs=4, num_steps=16, total_steps=512, eval_interval=10**6, log_interval=64,
                           device="cpu", hidden_sizes=(16, 16))),
}
if pendulum:
    cases["ppo_pendulum"] = (PPO, PPOConfig(env_id="Pendulum-v1", seed=3, num_envs=4, num_steps=16, total_steps=512,
                                            eval_interval=10**6, log_interval=64, device="cpu", hidden_sizes=(16, 16),
                                            normalize_obs=True))
for name, (cls, cfg) in cases.items():
    agent = cls(cfg)
    agent.train(stop_at=256)
    path = f"{out}/{name}_{tag}.pt"
    agent.save(path, include_buffer=True)
    obs = torch.randn(5, *agent.env.obs_shape, generator=torch.Generator().manual_seed(1))
    before = agent.act(obs)
    agent = cls.load(path)
    agent.train()
    torch.save({"obs": obs, "actions": before, "actions_after_training": agent.act(obs),
                "env_steps_after_training": agent.env_steps,
                "params_after_training": [p.detach().clone() for p in agent.policy_module().parameters()]},
               f"{out}/{name}_{tag}_expected.pt")
    print(name, agent.env_steps)
