"""Prioritized replay: the sum tree's search and update, and one full PER
training-step cycle, rltorch beside what users do without it (``torch.searchsorted``
on a cumsum, a pure-PyTorch PER), TorchRL's segment tree and samplers, and cpprb;
rltorch's own cycle over column storage (sample, then gather) beside the fused,
row-packed one; and a population's K trees and K buffers in one call beside K
separate ones.

Every case draws its priorities, indices and masses before timing and cycles
through ``POOL`` batches of them, so repeated calls do not replay one cached
path. TorchRL and cpprb are CPU libraries here (their cases list ``("cpu",)``);
on ``--device cuda`` rltorch and the pure-PyTorch baselines run on the GPU.
"""

from __future__ import annotations

import functools
import itertools

import torch

from rltorch.bench.core import Case, Settings, Unavailable

POOL = 16
ALPHA, BETA, EPS = 0.6, 0.4, 1e-6
OBS_SHAPE = (4,)  # CartPole's transitions
FANOUTS = (2, 4, 8, 16)
INSTALL_TORCHRL = "pip install 'rltorch[bench]'  (or: pip install torchrl tensordict)"
INSTALL_CPPRB = "pip install 'rltorch[bench]'  (or: pip install cpprb)"


def power_of_two(n: int) -> str:
    return f"2^{n.bit_length() - 1}" if n & (n - 1) == 0 else str(n)


@functools.cache
def priorities(leaves: int) -> torch.Tensor:
    """float64 priorities in [0.01, 1.01): every leaf reachable, none dominating."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(leaves, generator=generator, dtype=torch.float64) + 0.01


@functools.cache
def batches(leaves: int, batch: int) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """``POOL`` batches of leaf indices, new priorities and masses in [0, total) (CPU tensors)."""
    generator = torch.Generator().manual_seed(1)
    total = float(priorities(leaves).sum())
    index = [torch.randint(leaves, (batch,), generator=generator) for _ in range(POOL)]
    priority = [torch.rand(batch, generator=generator, dtype=torch.float64) + 0.01 for _ in range(POOL)]
    mass = [torch.rand(batch, generator=generator, dtype=torch.float64) * total for _ in range(POOL)]
    return index, priority, mass


def _on(tensors: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    return [t.to(device) for t in tensors]


def filled_tree(leaves: int, device: torch.device, fanout: int | None = None):
    from rltorch.ops.sumtree import DEFAULT_FANOUT, SumTree

    tree = SumTree(leaves, device=device, fanout=fanout or DEFAULT_FANOUT)
    tree.update(torch.arange(leaves, device=device), priorities(leaves).to(device))
    return tree


def torchrl_segment_tree(leaves: int):
    """TorchRL's CPU sum segment tree (its C++ module) holding ``priorities(leaves)``.

    float64, as rltorch's tree: the comparison is of the data structure, not of precision.
    """
    try:
        from torchrl._torchrl import SumSegmentTreeFp64
    except Exception as exc:  # not installed, or its C++ module does not load against this torch
        raise Unavailable(f"TorchRL's C++ segment tree not importable: {type(exc).__name__}: {exc}",
                          INSTALL_TORCHRL) from None
    tree = SumSegmentTreeFp64(leaves)
    tree.update(torch.arange(leaves), priorities(leaves))
    return tree


def _cycled(fn, *pools):
    next_args = itertools.cycle(list(zip(*pools))).__next__
    return lambda: fn(*next_args())


def _search_case(impl: str, leaves: int, batch: int) -> Case:
    def setup(settings: Settings):
        device = settings.torch_device
        masses = _on(batches(leaves, batch)[2], device)
        if impl == "rltorch":
            return _cycled(filled_tree(leaves, device).find, masses)
        if impl == "torch.searchsorted":
            # Its best case: the cumsum is ready, as if no priority had changed since.
            cumsum = priorities(leaves).to(device).cumsum(0)
            return _cycled(lambda mass: torch.searchsorted(cumsum, mass, right=True), masses)
        if impl == "torch cumsum+searchsorted":
            # What a pure-PyTorch PER pays: priorities change after every sample.
            leaf_values = priorities(leaves).to(device)
            return _cycled(lambda mass: torch.searchsorted(leaf_values.cumsum(0), mass, right=True), masses)
        if impl == "TorchRL SumSegmentTree":
            return _cycled(torchrl_segment_tree(leaves).scan_lower_bound, masses)
        raise ValueError(f"unknown sumtree_search impl {impl!r}")

    return Case("replay", "sumtree_search", impl, setup, size=batch, size_label="B",
                params=(("leaves", power_of_two(leaves)),), items=batch, item="search",
                devices=("cpu",) if impl.startswith("TorchRL") else ("cpu", "cuda"))


def _update_case(impl: str, leaves: int, batch: int) -> Case:
    def setup(settings: Settings):
        device = settings.torch_device
        index, priority, _ = batches(leaves, batch)
        index, priority = _on(index, device), _on(priority, device)
        if impl == "rltorch":
            return _cycled(filled_tree(leaves, device).update, index, priority)
        if impl == "torch index_put (leaves only)":
            # A floor, not a peer: writes the leaves and keeps no sums at all.
            leaf_values = priorities(leaves).to(device).clone()
            return _cycled(lambda i, p: leaf_values.index_put_((i,), p), index, priority)
        if impl == "TorchRL SumSegmentTree":
            return _cycled(torchrl_segment_tree(leaves).update, index, priority)
        raise ValueError(f"unknown sumtree_update impl {impl!r}")

    return Case("replay", "sumtree_update", impl, setup, size=batch, size_label="B",
                params=(("leaves", power_of_two(leaves)),), items=batch, item="update",
                devices=("cpu",) if impl.startswith("TorchRL") else ("cpu", "cuda"))


def _fanout_case(op: str, fanout: int, leaves: int, batch: int) -> Case:
    """The layout experiment behind DEFAULT_FANOUT (8: one 64-byte line holds a node's children)."""
    from rltorch.ops.sumtree import DEFAULT_FANOUT

    def setup(settings: Settings):
        device = settings.torch_device
        tree = filled_tree(leaves, device, fanout)
        index, priority, mass = batches(leaves, batch)
        if op == "search":
            return _cycled(tree.find, _on(mass, device))
        if op == "update":
            return _cycled(tree.update, _on(index, device), _on(priority, device))
        generator = torch.Generator(device=device).manual_seed(0)
        return lambda: tree.sample(batch, BETA, generator)

    impl = "rltorch" if fanout == DEFAULT_FANOUT else f"rltorch K={fanout}"
    return Case("replay", "sumtree_fanout", impl, setup, size=batch, size_label="B",
                params=(("op", op), ("leaves", power_of_two(leaves))), items=batch, item=op)


class TorchPER:
    """A straightforward pure-PyTorch proportional PER: the baseline of the PER cycle."""

    def __init__(self, capacity: int, device: torch.device, seed: int = 0):
        self.priority = torch.zeros(capacity, dtype=torch.float64, device=device)
        self.obs = torch.zeros((capacity, *OBS_SHAPE), device=device)
        self.next_obs = torch.zeros_like(self.obs)
        self.action = torch.zeros(capacity, dtype=torch.long, device=device)
        self.reward = torch.zeros(capacity, device=device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        for column, value in ((self.obs, obs), (self.action, action), (self.reward, reward),
                              (self.next_obs, next_obs), (self.terminated, terminated)):
            column.copy_(value)

    def sample(self, batch: int):
        """Stratified: one mass per equal slice of the total, as rltorch samples."""
        cumsum = self.priority.cumsum(0)
        unit = torch.rand(batch, generator=self.generator, dtype=torch.float64, device=cumsum.device)
        mass = (torch.arange(batch, device=cumsum.device) + unit) / batch * cumsum[-1]
        index = torch.searchsorted(cumsum, mass, right=True).clamp_max_(self.priority.numel() - 1)
        weight = (self.priority[index] / self.priority[self.priority > 0].min()).pow(-BETA).float()
        return (self.obs[index], self.action[index], self.reward[index], self.next_obs[index],
                self.terminated[index], index, weight)

    def update_priorities(self, index: torch.Tensor, td_error: torch.Tensor) -> None:
        # In float64 from the start, as rltorch computes: eps added in float32 would round.
        self.priority[index] = (td_error.double().abs() + EPS).pow(ALPHA)


@functools.cache
def transitions(capacity: int) -> tuple[torch.Tensor, ...]:
    """CPU columns (obs, action, reward, next_obs, terminated) of ``capacity`` transitions."""
    generator = torch.Generator().manual_seed(0)
    obs = torch.randn(capacity, *OBS_SHAPE, generator=generator)
    action = torch.randint(2, (capacity,), generator=generator)
    return obs, action, torch.ones(capacity), obs.roll(-1, 0), torch.zeros(capacity, dtype=torch.bool)


@functools.cache
def td_errors(batch: int) -> list[torch.Tensor]:
    return [torch.randn(batch, generator=torch.Generator().manual_seed(i)) for i in range(POOL)]


@functools.cache
def initial_td_errors(capacity: int) -> torch.Tensor:
    """Priorities of the filled buffer: varied, so sampling walks the whole tree."""
    return torch.rand(capacity, generator=torch.Generator().manual_seed(2))


def _torchrl(what: str):
    try:
        import torchrl._torchrl  # noqa: F401  the C++ module its samplers need
        from torchrl.data import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
        from torchrl.data.replay_buffers.samplers import PrioritizedSampler
    except Exception as exc:  # not installed, or its C++ module does not load against this torch
        raise Unavailable(f"TorchRL not importable ({what}): {type(exc).__name__}: {exc}", INSTALL_TORCHRL) from None
    return PrioritizedSampler, TensorDictPrioritizedReplayBuffer, LazyTensorStorage


def _per_cycle_case(impl: str, capacity: int, batch: int, devices: tuple[str, ...] = ("cpu", "cuda")) -> Case:
    """One training step's replay work: sample a batch with importance weights, then
    write its new priorities from the TD errors."""

    def setup(settings: Settings):
        device = settings.torch_device
        columns = transitions(capacity)
        td = _on(td_errors(batch), device)
        if impl == "rltorch":
            from rltorch.replay import PrioritizedReplayBuffer

            buffer = PrioritizedReplayBuffer(capacity, obs_shape=OBS_SHAPE, device=device, alpha=ALPHA, beta=BETA,
                                             eps=EPS, seed=0)
            buffer.add(*_on(list(columns), device))
            buffer.update_priorities(torch.arange(capacity, device=device), initial_td_errors(capacity).to(device))

            def cycle(td_error):
                sampled = buffer.sample(batch)
                buffer.update_priorities(sampled.index, td_error)

            return _cycled(cycle, td)
        if impl == "rltorch, column storage":
            # What the buffer did before its rows were packed: the tree's sample, a gather of
            # seven separate columns (a cache miss each per transition), the priority update.
            from rltorch.ops.sumtree import SumTree

            tree = SumTree(capacity, device=device)
            stored = [c.to(device) for c in columns] + [torch.ones(capacity, device=device),
                                                       torch.arange(capacity, device=device)]
            running = torch.ones(1, dtype=torch.float64, device=device)
            slot_ids = stored[-1]
            ops = torch.ops.rltorch
            ops.per_update_priorities_(tree.tree, capacity, tree.fanout, slot_ids, slot_ids,
                                       initial_td_errors(capacity).to(device), ALPHA, EPS, running)
            generator = torch.Generator(device=device).manual_seed(0)

            def cycle(td_error):
                index, _weight = ops.sumtree_sample(tree.tree, capacity, tree.fanout, batch, BETA, generator)
                rows = ops.replay_gather(stored, index)
                ops.per_update_priorities_(tree.tree, capacity, tree.fanout, slot_ids, rows[-1], td_error, ALPHA,
                                           EPS, running)

            return _cycled(cycle, td)
        if impl == "pure PyTorch":
            per = TorchPER(capacity, device)
            per.add(*_on(list(columns), device))
            per.update_priorities(torch.arange(capacity, device=device), initial_td_errors(capacity).to(device))

            def cycle(td_error):
                sampled = per.sample(batch)
                per.update_priorities(sampled[5], td_error)

            return _cycled(cycle, td)
        if impl == "cpprb":
            try:
                import cpprb
            except Exception as exc:
                raise Unavailable(f"cpprb not importable: {type(exc).__name__}: {exc}", INSTALL_CPPRB) from None
            import numpy as np

            buffer = cpprb.PrioritizedReplayBuffer(
                capacity, {"obs": {"shape": OBS_SHAPE}, "act": {}, "rew": {}, "next_obs": {"shape": OBS_SHAPE},
                           "done": {}}, alpha=ALPHA, eps=EPS)
            obs, action, reward, next_obs, terminated = (c.numpy() for c in columns)
            buffer.add(obs=obs, act=action, rew=reward, next_obs=next_obs, done=terminated)
            buffer.update_priorities(np.arange(capacity), initial_td_errors(capacity).numpy())
            # cpprb adds eps and raises to alpha itself: it takes |td|.
            abs_td = [t.abs().numpy() for t in td_errors(batch)]

            def cycle(abs_td_error):
                sampled = buffer.sample(batch, beta=BETA)  # the gathered batch, weights and indexes
                buffer.update_priorities(sampled["indexes"], abs_td_error)

            return _cycled(cycle, abs_td)
        if impl == "TorchRL PrioritizedSampler":
            PrioritizedSampler, _, _ = _torchrl(impl)
            sampler = PrioritizedSampler(capacity, alpha=ALPHA, beta=BETA, eps=EPS)
            sampler.update_priority(torch.arange(capacity), initial_td_errors(capacity))

            class Filled:
                """All the sampler asks of a storage: its shape and how much of it is written."""

                ndim = 1

                def __len__(self):
                    return capacity

            storage = Filled()
            abs_td = [t.abs() for t in td_errors(batch)]

            # The sampler alone: indices and weights, no gathered transitions, so a
            # lower bound on TorchRL's cost of the same step.
            def cycle(abs_td_error):
                index, _info = sampler.sample(storage, batch)
                sampler.update_priority(index, abs_td_error)

            return _cycled(cycle, abs_td)
        if impl == "TorchRL TensorDictPrioritizedReplayBuffer":
            _, TensorDictPrioritizedReplayBuffer, LazyTensorStorage = _torchrl(impl)
            from tensordict import TensorDict

            buffer = TensorDictPrioritizedReplayBuffer(alpha=ALPHA, beta=BETA, eps=EPS, priority_key="td_error",
                                                       storage=LazyTensorStorage(capacity), batch_size=batch)
            obs, action, reward, next_obs, terminated = columns
            buffer.extend(TensorDict({"obs": obs, "action": action, "reward": reward, "next_obs": next_obs,
                                      "terminated": terminated}, batch_size=[capacity]))
            buffer.update_priority(torch.arange(capacity), initial_td_errors(capacity))
            abs_td = [t.abs() for t in td_errors(batch)]

            def cycle(abs_td_error):
                sampled = buffer.sample()
                sampled.set("td_error", abs_td_error)
                buffer.update_tensordict_priority(sampled)

            return _cycled(cycle, abs_td)
        raise ValueError(f"unknown per_cycle impl {impl!r}")

    return Case("replay", "per_cycle", impl, setup, size=batch, size_label="B",
                params=(("capacity", power_of_two(capacity)),), items=batch, item="transition", devices=devices)


def _population_case(op: str, impl: str, trees: int, leaves: int, batch: int) -> Case:
    """K trees (a population's buffers): one call for all of them ("rltorch"), or one call per tree."""

    def setup(settings: Settings):
        from rltorch.ops.sumtree import SumTree

        device = settings.torch_device
        generator = torch.Generator().manual_seed(3)
        index = [torch.randint(leaves, (trees, batch), generator=generator).to(device) for _ in range(POOL)]
        priority = [(torch.rand(trees, batch, generator=generator, dtype=torch.float64) + 0.01).to(device)
                    for _ in range(POOL)]
        everything = torch.arange(leaves, device=device)
        filled = priorities(leaves).to(device)
        draws = torch.Generator(device=device).manual_seed(0)
        if impl == "rltorch":
            tree = SumTree(leaves, device=device, num_trees=trees)
            tree.update(everything.expand(trees, leaves).contiguous(), filled.expand(trees, leaves).contiguous())
            if op == "update":
                return _cycled(tree.update, index, priority)
            return lambda: tree.sample(batch, BETA, draws)
        separate = [SumTree(leaves, device=device) for _ in range(trees)]
        for tree in separate:
            tree.update(everything, filled)
        if op == "update":
            def update_each(i, p):
                for t, tree in enumerate(separate):
                    tree.update(i[t], p[t])

            return _cycled(update_each, index, priority)
        return lambda: [tree.sample(batch, BETA, draws) for tree in separate]

    return Case("replay", "population_trees", impl, setup, size=trees * batch, size_label="K x B",
                params=(("op", op), ("K", trees), ("leaves", power_of_two(leaves))), items=trees * batch, item=op)


def _population_cycle_case(impl: str, buffers: int, capacity: int, batch: int) -> Case:
    """A population's PER step: K buffers as one [K, capacity] storage ("rltorch"), or K separate buffers."""

    def setup(settings: Settings):
        from rltorch.replay import PrioritizedReplayBuffer

        device = settings.torch_device
        obs, action, reward, next_obs, terminated = (c.to(device) for c in transitions(capacity))
        td = [torch.randn(buffers, batch, generator=torch.Generator().manual_seed(i)).to(device) for i in range(POOL)]
        initial = initial_td_errors(capacity).to(device)
        kwargs = dict(obs_shape=OBS_SHAPE, device=device, alpha=ALPHA, beta=BETA, eps=EPS, seed=0)
        if impl == "rltorch":
            buffer = PrioritizedReplayBuffer(capacity, num_buffers=buffers, **kwargs)
            stack = [t.unsqueeze(0).expand(buffers, *t.shape) for t in (obs, action, reward, next_obs, terminated)]
            buffer.add(*stack)
            buffer.update_priorities(torch.arange(capacity, device=device).expand(buffers, capacity),
                                     initial.expand(buffers, capacity))

            def cycle(td_error):
                buffer.update_priorities(buffer.sample(batch).index, td_error)

            return _cycled(cycle, td)
        separate = [PrioritizedReplayBuffer(capacity, **kwargs) for _ in range(buffers)]
        for buffer in separate:
            buffer.add(obs, action, reward, next_obs, terminated)
            buffer.update_priorities(torch.arange(capacity, device=device), initial)

        def cycle_each(td_error):
            for k, buffer in enumerate(separate):
                buffer.update_priorities(buffer.sample(batch).index, td_error[k])

        return _cycled(cycle_each, td)

    return Case("replay", "population_per_cycle", impl, setup, size=buffers * batch, size_label="K x B",
                params=(("K", buffers), ("capacity", power_of_two(capacity))), items=buffers * batch,
                item="transition")


def cases(settings: Settings) -> list[Case]:
    tree_sizes = settings.pick(tiny=[(1 << 10, 64)], quick=[(1 << 20, 256), (1 << 20, 4096)],
                               full=[(1 << 20, 256), (1 << 20, 4096), (1 << 24, 4096)])
    found = []
    for leaves, batch in tree_sizes:
        for impl in ("rltorch", "torch.searchsorted", "torch cumsum+searchsorted", "TorchRL SumSegmentTree"):
            found.append(_search_case(impl, leaves, batch))
        for impl in ("rltorch", "torch index_put (leaves only)", "TorchRL SumSegmentTree"):
            found.append(_update_case(impl, leaves, batch))
    if settings.mode != "quick":  # tiny, so the test suite sets every fan-out up once
        leaves, batch = settings.pick(tiny=(1 << 10, 64), quick=None, full=(1 << 20, 4096))
        for op in ("search", "update", "sample"):
            for fanout in FANOUTS:
                found.append(_fanout_case(op, fanout, leaves, batch))
    capacity, batch = settings.pick(tiny=(1 << 10, 64), quick=(1 << 20, 256), full=(1 << 20, 256))
    for impl in ("rltorch", "rltorch, column storage", "pure PyTorch", "cpprb", "TorchRL PrioritizedSampler",
                 "TorchRL TensorDictPrioritizedReplayBuffer"):
        cpu_only = impl not in ("rltorch", "rltorch, column storage", "pure PyTorch")
        found.append(_per_cycle_case(impl, capacity, batch, devices=("cpu",) if cpu_only else ("cpu", "cuda")))
    # A population: K trees / buffers in one call against K separate ones.
    trees, leaves, per_tree = settings.pick(tiny=(4, 1 << 10, 32), quick=(16, 1 << 16, 64), full=(16, 1 << 16, 64))
    for op in ("update", "sample"):
        for impl in ("rltorch", "K separate SumTrees"):
            found.append(_population_case(op, impl, trees, leaves, per_tree))
    buffers, population_capacity, population_batch = settings.pick(tiny=(4, 1 << 10, 32), quick=(16, 1 << 16, 64),
                                                                   full=(16, 1 << 16, 64))
    for impl in ("rltorch", "K separate buffers"):
        found.append(_population_cycle_case(impl, buffers, population_capacity, population_batch))
    if settings.mode == "full" and settings.torch_device.type == "cuda":
        # The GPU's own scale: a 2^24-transition buffer and large batches.
        for impl in ("rltorch", "pure PyTorch"):
            found.append(_per_cycle_case(impl, 1 << 24, 4096, devices=("cuda",)))
    return found
