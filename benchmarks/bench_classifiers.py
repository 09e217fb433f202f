"""Classifier and behaviour-cloning speed: rltorch against the standard PyTorch and gymnasium ways.

Groups (each case's ``extra_info`` holds samples/s; compare ratios within one run):

- ``classifier fit``: one epoch of ``MulticlassClassifier.fit`` (index batches on the device, one
  ``randperm`` per epoch) against the standard ``TensorDataset`` + ``DataLoader(shuffle=True)`` loop
  training the same model (MLP 4-64-64-2, Adam, cross entropy, batch 1024) on the same 1M x 4 samples.
- ``expert collection N=...``: (observation, expert action) pairs from the linear CartPole expert,
  collected by ``collect_expert_pairs`` on rltorch's ``CartPoleVecEnv`` against the same function on
  gymnasium's ``CartPoleVectorEnv`` (NumPy-vectorized) and ``SyncVectorEnv`` (a loop over scalar envs).
- ``bc time to solve``: from nothing to a solved policy: expert collection, fit epochs and greedy
  100-episode evaluations until the mean return reaches 475 (``BC(BCConfig()).train()``).

Sizes: ``RLTORCH_BENCH_FIT_SAMPLES`` (default 1_000_000) and ``RLTORCH_BENCH_THREADS`` (torch threads;
default: torch's own). The default run takes about a minute on two idle cores.

    python -m pytest benchmarks/bench_classifiers.py --benchmark-only --benchmark-json=classifiers.json
    python benchmarks/report.py classifiers.json --anchor dataloader --anchor gymnasium_sync
"""

from __future__ import annotations

import os

import gymnasium as gym
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from rltorch.agents import BC, BCConfig
from rltorch.classifiers import LinearExpert, MulticlassClassifier, collect_expert_pairs
from rltorch.nn import mlp

FIT_SAMPLES = int(os.environ.get("RLTORCH_BENCH_FIT_SAMPLES", 1_000_000))
HIDDEN = (64, 64)
BATCH = 1024


@pytest.fixture(autouse=True, scope="module")
def threads():
    wanted = os.environ.get("RLTORCH_BENCH_THREADS")
    before = torch.get_num_threads()
    if wanted:
        torch.set_num_threads(int(wanted))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fit_data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(FIT_SAMPLES, 4, generator=g)
    y = ((X[:, 0] * X[:, 1] > 0) ^ (X[:, 2] > 0.5)).long()  # a nonlinear two-class rule
    return X, y


def _samples_per_s(benchmark, samples: int) -> None:
    benchmark.extra_info["samples"] = samples
    benchmark.extra_info["samples_per_s"] = samples / benchmark.stats.stats.median
    benchmark.extra_info["threads"] = torch.get_num_threads()


@pytest.mark.parametrize("impl", ["rltorch", "dataloader"])
def test_fit_epoch(benchmark, fit_data, impl):
    benchmark.group = f"classifier fit {FIT_SAMPLES}x4 MLP 64x64 batch {BATCH}"
    X, y = fit_data
    if impl == "rltorch":
        clf = MulticlassClassifier(2, hidden_sizes=HIDDEN, standardize=False, seed=0)
        clf.fit(X[:4096], y[:4096], epochs=1, batch_size=BATCH)  # build and warm up

        def epoch():
            clf.fit(X, y, epochs=1, batch_size=BATCH)

        benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=0)
    else:
        torch.manual_seed(0)
        net = mlp(4, HIDDEN, 2)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        loader = DataLoader(TensorDataset(X, y), batch_size=BATCH, shuffle=True)

        def epoch():
            net.train()
            for xb, yb in loader:
                loss = F.cross_entropy(net(xb), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        benchmark.pedantic(epoch, rounds=1, iterations=1, warmup_rounds=0)
    _samples_per_s(benchmark, FIT_SAMPLES)


COLLECT = {256: 100_000, 4096: 1_000_000}


@pytest.mark.parametrize("n", sorted(COLLECT))
@pytest.mark.parametrize("impl", ["rltorch", "gymnasium_vector", "gymnasium_sync"])
def test_expert_collection(benchmark, n, impl):
    benchmark.group = f"expert collection N={n}"
    samples = COLLECT[n]
    if impl == "gymnasium_sync" and n > 256:
        pytest.skip("SyncVectorEnv steps envs one by one in Python: only N=256")
    expert = LinearExpert()

    def make_env():
        if impl == "rltorch":
            return None  # collect_expert_pairs' default: CartPoleVecEnv(n)
        mode = "vector_entry_point" if impl == "gymnasium_vector" else "sync"
        return gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode=mode)

    def collect():
        collect_expert_pairs(expert, samples, env=make_env(), num_envs=n, epsilon=0.2, seed=0)

    slow = impl == "gymnasium_sync"  # seconds per round: one is enough for a ratio
    benchmark.pedantic(collect, rounds=1 if slow else 3, iterations=1, warmup_rounds=0 if slow else 1)
    _samples_per_s(benchmark, samples)


def test_bc_time_to_solve(benchmark):
    benchmark.group = "bc time to solve"
    results = []

    def solve():
        agent = BC(BCConfig(device="cpu", seed=len(results)))
        results.append(agent.train())
        agent.close()

    benchmark.pedantic(solve, rounds=3, iterations=1, warmup_rounds=0)
    assert all(r.solved for r in results)
    benchmark.extra_info["time_to_solve_s"] = [round(r.time_to_solve_s, 3) for r in results]
    benchmark.extra_info["samples_to_solve"] = [r.steps_to_solve for r in results]
    benchmark.extra_info["threads"] = torch.get_num_threads()
