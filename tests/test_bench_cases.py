"""The benchmark cases of rltorch.bench (ops, env, replay) in tiny mode: every
case sets up and runs or says why it cannot, keys are unique, CPU-only peers
stay out of CUDA runs, and the peers compute what rltorch computes on the
inputs the benchmarks time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rltorch.bench.cases import collect, env, replay
from rltorch.bench.core import MODES, Settings, Unavailable

TIMED_CAPABILITIES = ("ops", "env", "replay")
TINY = Settings.for_mode("tiny")


def _tiny_cases():
    return [pytest.param(case, id=case.key) for case in collect(TIMED_CAPABILITIES, TINY)]


@pytest.mark.parametrize("case", _tiny_cases())
def test_every_tiny_case_runs_or_names_what_is_missing(case):
    try:
        call = case.setup(TINY)
    except Unavailable as exc:
        assert exc.reason.strip() and exc.install and "pip install" in exc.install
        return
    assert callable(call)
    call()
    call()  # a second call: the first must not have consumed or broken the inputs


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_case_keys_are_unique_and_sizes_counted(mode, device):
    cases = collect(TIMED_CAPABILITIES, Settings.for_mode(mode, device=device))
    keys = [case.key for case in cases]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    for case in cases:
        if case.capability in ("env", "replay"):
            assert case.items == case.size and case.kind == "timed"


def test_cuda_runs_keep_cpu_peers_out_and_rltorch_in():
    cuda = collect(["env", "replay"], Settings.for_mode("quick", device="cuda"))
    impls = {case.impl for case in cuda}
    assert {"rltorch", "rltorch op", "pure PyTorch", "torch.searchsorted"} <= impls
    cpu_peers = ("gymnasium", "EnvPool", "TorchRL", "cpprb")
    assert not [case.key for case in cuda if case.impl.startswith(cpu_peers)]
    cpu = collect(["env", "replay"], Settings.for_mode("quick"))
    assert {"gymnasium CartPoleVectorEnv", "EnvPool", "cpprb", "TorchRL SumSegmentTree"} <= {c.impl for c in cpu}


def test_every_subject_has_an_anchor_at_every_size():
    for mode in MODES:
        cases = collect(["env", "replay"], Settings.for_mode(mode))
        by_where = {}
        for case in cases:
            by_where.setdefault((case.where, case.size), set()).add(case.impl)
        for (where, size), impls in by_where.items():
            assert "rltorch" in impls, (mode, where, size)
            if not where.startswith("sumtree_fanout"):  # variants of ours only, by design
                assert any(not impl.startswith("rltorch") for impl in impls), (mode, where, size)


@pytest.mark.parametrize("case", [c for c in env.cases(TINY) if c.group == "cartpole_step"], ids=lambda c: c.impl)
def test_every_cartpole_impl_steps_n_envs(case):
    try:
        call = case.setup(TINY)
    except Unavailable as exc:
        pytest.skip(exc.reason)
    obs, reward, terminated, truncated = call()[:4]  # the raw op returns more than the env's 5
    assert tuple(obs.shape) == (case.size, 4) and len(reward) == len(terminated) == len(truncated) == case.size
    assert np.asarray(reward).min() >= 0  # rewards 1 (0 on an autoreset step): valid actions everywhere


def _tiny_tree_inputs():
    (leaves, batch), = {(c.params, c.size) for c in replay.cases(TINY) if c.group == "sumtree_search"}
    return int(2 ** int(leaves[0][1].split("^")[1])), batch


def test_search_peers_find_the_leaves_rltorch_finds():
    leaves, batch = _tiny_tree_inputs()
    tree = replay.filled_tree(leaves, torch.device("cpu"))
    cumsum = replay.priorities(leaves).cumsum(0)
    for mass in replay.batches(leaves, batch)[2]:
        expected = tree.find(mass)
        assert torch.equal(torch.searchsorted(cumsum, mass, right=True), expected)
        assert expected.min() >= 0 and expected.max() < leaves


def test_torchrl_segment_tree_agrees_with_rltorch():
    leaves, batch = _tiny_tree_inputs()
    try:
        theirs = replay.torchrl_segment_tree(leaves)
    except Unavailable as exc:
        pytest.skip(exc.reason)
    ours = replay.filled_tree(leaves, torch.device("cpu"))
    index, priority, mass = replay.batches(leaves, batch)
    assert torch.equal(theirs.scan_lower_bound(mass[0]), ours.find(mass[0]))
    for i, p in zip(index, priority):
        theirs.update(i, p)
        ours.update(i, p)
    assert theirs.query(0, leaves) == pytest.approx(float(ours.total()), rel=1e-12)
    assert torch.equal(theirs.scan_lower_bound(mass[1]), ours.find(mass[1]))


def test_update_floor_writes_the_leaves_rltorch_writes():
    leaves, batch = _tiny_tree_inputs()
    tree = replay.filled_tree(leaves, torch.device("cpu"))
    leaf_values = replay.priorities(leaves).clone()
    for i, p in zip(*replay.batches(leaves, batch)[:2]):
        tree.update(i, p)
        leaf_values.index_put_((i,), p)
    assert torch.equal(tree.priorities(), leaf_values)
    assert float(tree.total()) == pytest.approx(float(leaf_values.sum()), rel=1e-12)


def _filled_rltorch_buffer(capacity):
    from rltorch.replay import PrioritizedReplayBuffer

    buffer = PrioritizedReplayBuffer(capacity, obs_shape=replay.OBS_SHAPE, alpha=replay.ALPHA, beta=replay.BETA,
                                     eps=replay.EPS, seed=0)
    buffer.add(*replay.transitions(capacity))
    buffer.update_priorities(torch.arange(capacity), replay.initial_td_errors(capacity))
    return buffer


def _tiny_per_capacity():
    (capacity,), = {tuple(int(2 ** int(v.split("^")[1])) for _, v in c.params)
                    for c in replay.cases(TINY) if c.group == "per_cycle"}
    return capacity


def test_pure_pytorch_per_holds_rltorchs_priorities_and_weights():
    capacity = _tiny_per_capacity()
    ours = _filled_rltorch_buffer(capacity)
    baseline = replay.TorchPER(capacity, torch.device("cpu"))
    baseline.add(*replay.transitions(capacity))
    baseline.update_priorities(torch.arange(capacity), replay.initial_td_errors(capacity))
    torch.testing.assert_close(ours.tree.priorities(), baseline.priority, rtol=1e-12, atol=0)
    sampled = ours.sample(64)
    expected = (baseline.priority[sampled.index] / baseline.priority.min()).pow(-replay.BETA).float()
    torch.testing.assert_close(sampled.weight, expected, rtol=1e-5, atol=0)
    obs, _, _, _, _, index, weight = baseline.sample(64)
    assert torch.equal(obs, baseline.obs[index]) and 0 < weight.min() and weight.max() <= 1


def test_cpprb_and_torchrl_weight_samples_as_rltorch_does():
    """The anchors are given the same priorities, so they must return the same importance weights."""
    capacity = _tiny_per_capacity()
    priority = _filled_rltorch_buffer(capacity).tree.priorities()
    ran = []
    for impl in ("cpprb", "TorchRL PrioritizedSampler"):
        try:
            replay._per_cycle_case(impl, capacity, 64).setup(TINY)  # importable here?
        except Unavailable:
            continue
        if impl == "cpprb":
            import cpprb

            buffer = cpprb.PrioritizedReplayBuffer(capacity, {"obs": {}}, alpha=replay.ALPHA, eps=replay.EPS)
            buffer.add(obs=np.zeros(capacity))
            buffer.update_priorities(np.arange(capacity), replay.initial_td_errors(capacity).numpy())
            sampled = buffer.sample(64, beta=replay.BETA)
            index, weight = torch.as_tensor(sampled["indexes"].astype(np.int64)), torch.as_tensor(sampled["weights"])
        else:
            from torchrl.data.replay_buffers.samplers import PrioritizedSampler

            sampler = PrioritizedSampler(capacity, alpha=replay.ALPHA, beta=replay.BETA, eps=replay.EPS)
            sampler.update_priority(torch.arange(capacity), replay.initial_td_errors(capacity))

            class Filled:
                ndim = 1

                def __len__(self):
                    return capacity

            index, info = sampler.sample(Filled(), 64)
            weight = info["priority_weight"]
        expected = (priority[index] / priority.min()).pow(-replay.BETA)
        torch.testing.assert_close(weight.double(), expected, rtol=1e-4, atol=0, msg=impl)
        ran.append(impl)
    if not ran:
        pytest.skip("neither cpprb nor TorchRL is importable here")
