"""Classifiers and behaviour cloning: rltorch against the standard PyTorch and gymnasium ways.

- ``classifier_fit``: one epoch of ``MulticlassClassifier.fit`` (index batches on
  the device, one ``randperm`` per epoch) against the ``TensorDataset`` +
  ``DataLoader(shuffle=True)`` loop training the same model (MLP 4-64-64-2, Adam,
  cross entropy, batch 1024) on the same samples.
- ``expert_collection``: (observation, expert action) pairs from the linear
  CartPole expert, collected by ``collect_expert_pairs`` on rltorch's
  ``CartPoleVecEnv`` against the same function on gymnasium's
  ``CartPoleVectorEnv`` (NumPy-vectorized) and ``SyncVectorEnv`` (a loop over
  scalar envs). Each call builds its env, as a user's collection does.
- ``bc_time_to_solve``: from nothing to a solved policy (expert collection, fit
  epochs, greedy 100-episode evaluations until the mean return reaches 475),
  ``BC(BCConfig()).train()`` in this process.
"""

from __future__ import annotations

import torch

from rltorch.bench.core import Case, Settings, SolveRun

HIDDEN = (64, 64)
BATCH = 1024
FEATURES = 4
EPSILON = 0.2  # random actions executed while the expert labels: states off its own path

def fit_data(samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(samples, FEATURES, generator=g)
    y = ((X[:, 0] * X[:, 1] > 0) ^ (X[:, 2] > 0.5)).long()  # a nonlinear two-class rule
    return X, y

def _fit_case(impl: str, samples: int) -> Case:
    def setup(settings: Settings):
        X, y = fit_data(samples)
        # Every timed epoch starts from the same fresh model. Epoch after epoch on one model,
        # this MLP's weights and Adam's moments drift into denormal floats, which slow CPU
        # arithmetic (here 0.8 s -> 1.3 s per epoch by the 8th) for both implementations
        # alike; the first epoch is what the two loops, not the floats, decide.
        if impl == "rltorch":
            from rltorch.classifiers import MulticlassClassifier

            def fit_epoch():
                # The anchor's threads (the process's), not the classifier's one-thread default: same work.
                clf = MulticlassClassifier(2, hidden_sizes=HIDDEN, standardize=False, epochs=1, batch_size=BATCH,
                                           threads=torch.get_num_threads(), seed=0)
                clf.fit(X, y)

            return fit_epoch

        import torch.nn.functional as F
        from torch.utils.data import DataLoader, TensorDataset

        from rltorch.nn import mlp

        loader = DataLoader(TensorDataset(X, y), batch_size=BATCH, shuffle=True)

        def epoch():
            torch.manual_seed(0)
            net = mlp(FEATURES, HIDDEN, 2)
            optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
            net.train()
            for xb, yb in loader:
                loss = F.cross_entropy(net(xb), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        return epoch

    return Case("classifiers", "classifier_fit", impl, setup, size=samples, size_label="samples",
                params=(("features", FEATURES), ("MLP", "64x64"), ("batch", BATCH)), items=samples, item="sample",
                devices=("cpu",))

def _collection_case(impl: str, num_envs: int, samples: int) -> Case:
    def setup(settings: Settings):
        from rltorch.classifiers import LinearExpert, collect_expert_pairs

        expert = LinearExpert()
        if impl == "rltorch":
            make_env = lambda: None  # noqa: E731  (collect_expert_pairs' default: CartPoleVecEnv(num_envs))
        else:
            import gymnasium as gym

            mode = "vector_entry_point" if impl == "gymnasium CartPoleVectorEnv" else "sync"
            make_env = lambda: gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode=mode)  # noqa: E731
        return lambda: collect_expert_pairs(expert, samples, env=make_env(), num_envs=num_envs, epsilon=EPSILON,
                                            seed=0)

    return Case("classifiers", "expert_collection", impl, setup, size=num_envs, size_label="N",
                params=(("pairs", samples),), items=samples, item="pair", devices=("cpu",))

def _bc_case(tiny: bool) -> Case:
    def setup(settings: Settings):
        from rltorch.agents import BC, BCConfig

        def run_seed(seed: int) -> SolveRun:
            config = BCConfig(device="cpu", seed=seed)
            if tiny:  # the test suite's run: a tenth of the data, one evaluation, unsolved is fine
                config = BCConfig(device="cpu", seed=seed, num_samples=5_000, total_steps=5_000, eval_interval=5_000)
            agent = BC(config)
            try:
                result = agent.train()
            finally:
                agent.close()
            seconds = result.time_to_solve_s if result.solved else result.wall_time_s
            steps = result.steps_to_solve if result.solved else result.env_steps
            return SolveRun(seconds=seconds, env_steps=steps, solved=result.solved,
                            extra={"clock": "in this process", "threads": torch.get_num_threads(),
                                   "last_eval_return": result.last_eval_return, "updates": result.updates})

        return run_seed

    return Case("classifiers", "bc_time_to_solve", "rltorch", setup, kind="solve", item="sample", devices=("cpu",))

def cases(settings: Settings) -> list[Case]:
    fit_samples = settings.pick(tiny=8_192, quick=200_000, full=1_000_000)
    collections = settings.pick(tiny={256: 10_000}, quick={256: 100_000}, full={256: 100_000, 4096: 1_000_000})
    found = [_fit_case(impl, fit_samples) for impl in ("rltorch", "DataLoader loop")]
    for num_envs, samples in collections.items():
        impls = ["rltorch", "gymnasium CartPoleVectorEnv"]
        if num_envs <= 256:  # SyncVectorEnv steps its envs one by one in Python: seconds per call beyond that
            impls.append("gymnasium SyncVectorEnv")
        found.extend(_collection_case(impl, num_envs, samples) for impl in impls)
    found.append(_bc_case(tiny=settings.mode == "tiny"))
    return found
