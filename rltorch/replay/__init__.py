"""Replay buffers over preallocated tensors: uniform and prioritized (sum tree), with an n-step writer."""

from rltorch.replay.buffers import PrioritizedReplayBuffer, ReplayBatch, ReplayBuffer

__all__ = ["ReplayBuffer", "PrioritizedReplayBuffer", "ReplayBatch"]
