"""Adapters that plug rltorch into other RL stacks.

Each submodule imports its framework, so import the one you use:

- :mod:`rltorch.integrations.sb3`: stable-baselines3 (``pip install rltorch[sb3]``):
  a ``VecEnv`` over :class:`rltorch.envs.CartPoleVecEnv`, and prioritized replay for
  SB3's DQN on rltorch's sum tree.

TorchRL needs no adapter: ``torchrl.envs.GymWrapper`` wraps :class:`~rltorch.envs.CartPoleVecEnv`
(torch or NumPy face) built with ``autoreset_mode="same_step"`` or ``"disabled"``, the
modes TorchRL accepts (see ``tests/test_integrations.py``).

This package itself imports nothing, so ``import rltorch`` never pulls in these frameworks.
"""
