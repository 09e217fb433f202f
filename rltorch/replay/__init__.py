"""Replay buffers over preallocated tensors: uniform and prioritized (sum tree), with an n-step writer,
and the on-policy rollout buffer."""

from rltorch.replay.buffers import PrioritizedReplayBuffer, ReplayBatch, ReplayBuffer
from rltorch.replay.rollout import RolloutBatch, RolloutBuffer

__all__ = ["ReplayBuffer", "PrioritizedReplayBuffer", "ReplayBatch", "RolloutBuffer", "RolloutBatch"]
