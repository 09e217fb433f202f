"""Adapters that plug rltorch into other RL stacks.

Each submodule imports its framework, so import the one you use:

- :mod:`rltorch.integrations.sb3`: stable-baselines3 (``pip install rltorch[sb3]``):
  a ``VecEnv`` over any of rltorch's vector envs (CartPole, MountainCar, MountainCarContinuous,
  Pendulum, Acrobot), and prioritized replay for SB3's DQN on rltorch's sum tree.

- :mod:`rltorch.integrations.torchrl`: TorchRL (``pip install rltorch[torchrl]``): native
  ``EnvBase`` classes over rltorch's vector envs whose tensors stay on their device.
  ``torchrl.envs.GymWrapper`` works too, on either face of a vector env built with
  ``autoreset_mode="same_step"`` or ``"disabled"`` (the modes TorchRL accepts).

This package itself imports nothing, so ``import rltorch`` never pulls in these frameworks.
"""
