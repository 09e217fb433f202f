"""Ape-X-style distributed DQN on Ray: actors step envs with a lagged copy of the
policy and feed one learner's prioritized replay.

- **Actors** (Ray actors, :class:`ApexActor`) each run a vector env with their own
  epsilon (Ape-X: ``eps_i = eps ** (1 + alpha * i / (N - 1))``), form n-step
  transitions with the replay buffer's n-step writer, compute each transition's
  initial priority ``|Q(s, a) - target|`` on their own copy of the network, and
  return a batch as a dict of tensors. Exploration, priorities, the n-step writer
  and episode statistics are :mod:`rltorch.agents.offpolicy`'s and the frame's,
  the ones DQN uses.
- **The learner** is :class:`Apex`, a :class:`~rltorch.agents.DQN` whose
  ``collect`` inserts actor batches into its ``PrioritizedReplayBuffer`` (with
  their priorities) instead of stepping an env, and whose ``update`` is DQN's own
  at a fixed samples-per-insert ratio (``updates_per_step`` updates per
  inserted transition). Everything else (evaluation, stop when solved, logs,
  checkpoints with network, optimizer and buffer, the CLI) is the agent frame's.
- **Weights** go to the object store every ``publish_interval`` updates; each
  request to an actor carries the newest reference, so actors pick up new
  weights when they start their next batch and the learner never waits on them.
- **Back-pressure**: each actor has at most ``max_inflight`` batches requested
  at a time, and the learner trains in proportion to what it inserts: actors
  cannot run ahead of the learner by more than that queue, and the learner
  cannot replay the same data without bound while actors are slow.
- **Faults**: actors are created with ``max_restarts``; a batch lost to a dead
  actor is counted and requested again from the restarted actor.

Ray is imported when an :class:`Apex` is built, never by ``import rltorch``.
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Annotated, Any, ClassVar

import torch
from torch import Tensor

from rltorch._checks import Range
from rltorch.agents.base import EnvDataError, EpisodeStats
from rltorch.agents.dqn import DQN, DQNConfig
from rltorch.agents.offpolicy import epsilon_greedy, replay_buffer, td_priorities
from rltorch.config import PositiveInt

INSTALL = "pip install 'rltorch[distributed]'"


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"rltorch.distributed needs Ray: {INSTALL}") from exc
    return ray


def actor_epsilon(index: int, num_actors: int, base: float = 0.4, alpha: float = 7.0) -> float:
    """Ape-X's fixed per-actor exploration: from ``base`` for actor 0 down to ``base ** (1 + alpha)``."""
    if num_actors == 1:
        return base
    return base ** (1 + alpha * index / (num_actors - 1))


@dataclass(kw_only=True)
class ApexConfig(DQNConfig):
    """Ape-X DQN on Ray: actors with per-actor epsilon feed the learner's prioritized replay."""

    per_agent_fields: ClassVar[tuple[str, ...] | None] = None  # one learner: no populations

    actors: PositiveInt = 2
    """Ray actors stepping envs (each runs num_envs envs)."""
    num_envs: PositiveInt = 8
    """Envs per actor."""
    actor_steps: PositiveInt = 32
    """Vector steps an actor takes per batch it sends (a batch holds about actor_steps * num_envs transitions)."""
    actor_eps_base: Annotated[float, Range(0, 1, low_open=True)] = 0.4
    """Ape-X's epsilon of actor 0; actor i of N uses actor_eps_base ** (1 + actor_eps_alpha * i / (N - 1))."""
    actor_eps_alpha: Annotated[float, Range(0, 100)] = 7.0
    """Ape-X's exponent spreading the actors' epsilons."""
    publish_interval: PositiveInt = 16
    """Learner updates between weight publications to the actors."""
    max_inflight: PositiveInt = 2
    """Batches requested from each actor at once: the bound on how far actors run ahead."""
    actor_max_restarts: Annotated[int, Range(0, None)] = 10
    """Times Ray restarts an actor that died (then the run stops with an error)."""
    actor_timeout_s: Annotated[float, Range(0, 86_400, low_open=True)] = 120.0
    """Seconds without any actor batch before the learner gives up."""
    actor_num_cpus: Annotated[float, Range(0, 4096)] = 1.0
    """CPUs each actor reserves in Ray's scheduler (fractions allowed: many actors waiting on slow envs)."""
    step_latency_ms: Annotated[float, Range(0, 60_000)] = 0.0
    """Simulated env latency: each env step of an actor also waits this long, its envs one after another
    (rltorch.envs.SimulatedLatency)."""
    address: str | None = None
    """A running Ray cluster to join (e.g. 'auto' or 'head-host:6379'); none starts a local one for the run."""
    object_store_mb: Annotated[int, Range(80, None)] = 256
    """Object store size of a local cluster, in MiB."""
    n_step: PositiveInt = 3
    """n-step returns (Ape-X uses 3)."""
    prioritized: bool = True
    """Prioritized replay (Ape-X requires it)."""
    learning_starts: Annotated[int, Range(0, None)] = 2_000
    """Transitions in the buffer before the first update."""
    updates_per_step: Annotated[float, Range(0, 1000, low_open=True)] = 0.125
    """Learner updates per inserted transition (the samples-per-insert ratio is this times batch_size)."""

    def check(self, values: dict[str, Any]) -> None:
        super().check(values)
        self.requirement(values["prioritized"], "prioritized", "Ape-X needs prioritized replay (prioritized=True)")
        self.requirement(values["train_freq"] == 1, "train_freq",
                         f"must be 1 for Ape-X (its learner updates as the actors' batches arrive), got "
                         f"{values['train_freq']}")


class ApexActor:
    """One actor: a vector env, a copy of the Q-network, and the n-step writer.
    Runs inside a Ray actor process (see :meth:`Apex._start_actors`)."""

    def __init__(self, config: dict, index: int, num_actors: int):
        from rltorch.agents.networks import QNetwork
        from rltorch.envs import SimulatedLatency, VectorEnvAdapter, make_env

        torch.set_num_threads(1)  # many actors share the machine; each is one thread
        cfg = ApexConfig(**config)
        self.cfg = cfg
        self.device = torch.device("cpu")
        env = make_env(cfg.env_id, cfg.num_envs, backend=cfg.env_backend, device=self.device)
        if cfg.step_latency_ms:
            env = SimulatedLatency(env, cfg.step_latency_ms / 1000)
        self.env = VectorEnvAdapter(env, self.device)
        self.q = QNetwork(math.prod(self.env.obs_shape), self.env.num_actions, cfg.hidden_sizes, cfg.dueling)
        self.q.requires_grad_(False)
        self.epsilon = actor_epsilon(index, num_actors, cfg.actor_eps_base, cfg.actor_eps_alpha)
        # A restarted actor must not replay its predecessor's episodes: seed by restart too.
        restarts = int(os.environ.get("RAY_ACTOR_RESTART_COUNT", "0") or 0)
        self.seed = cfg.seed + 1000 * (index + 1) + 100_000 * restarts
        self.generator = torch.Generator().manual_seed(self.seed)
        per_batch = cfg.actor_steps * cfg.num_envs
        # The n-step writer: holds a batch and the window of steps still waiting for their n rewards.
        self.writer = replay_buffer(cfg, self.env.obs_shape, self.device, prioritized=False, seed=self.seed,
                                    capacity=per_batch + cfg.n_step * cfg.num_envs)
        self.obs = self.env.reset(seed=self.seed)
        self.episodes = EpisodeStats(cfg.num_envs, self.device)
        self.weights_version = -1

    def pid(self) -> int:
        return os.getpid()

    @torch.no_grad()
    def collect(self, weights_version: int, weights: dict[str, Tensor] | None) -> dict[str, Any]:
        """``actor_steps`` vector steps with the newest weights; the n-step transitions they completed,
        with initial priorities, and the episodes that finished."""
        cfg = self.cfg
        if weights is not None and weights_version != self.weights_version:
            self.q.load_state_dict(weights)
            self.weights_version = weights_version
        start = self.writer.added
        finished_returns, finished_lengths = [], []
        for _ in range(cfg.actor_steps):
            obs = self.obs
            action = epsilon_greedy(self.q(obs), self.epsilon, self.generator)
            step = self.env.step(action)
            self.writer.add_vector_step(obs, action, step.reward, step.next_obs, step.terminated, step.truncated,
                                        valid=step.valid)
            returns, lengths = self.episodes.record_each(step)
            finished_returns.append(returns)
            finished_lengths.append(lengths)
            self.obs = step.obs
        count = self.writer.added - start
        slots = (start + torch.arange(count)) % self.writer.capacity
        w = self.writer
        batch = {name: getattr(w, name)[slots].clone()
                 for name in ("obs", "action", "reward", "next_obs", "terminated", "discount")}
        # The actor's one network plays both roles of Double DQN.
        batch["priority"] = td_priorities(self.q, SimpleNamespace(**batch), cfg.double_dqn)
        batch["env_steps"] = cfg.actor_steps * cfg.num_envs
        batch["episode_returns"], batch["episode_lengths"] = torch.cat(finished_returns), torch.cat(finished_lengths)
        return batch


class Apex(DQN):
    """The Ape-X learner (see the module docstring); ``train``, ``evaluate``, ``save``/``load`` as for DQN.
    Call :meth:`close` (the CLI does) to stop the actors and a local Ray cluster."""

    name = "apex"
    config_class = ApexConfig
    log_columns = (*DQN.log_columns[:-1], "actor_batches", "actor_restarts", "weights_version")
    progress_columns = ("train_return", "actor_restarts")
    checkpoint_attrs = (*DQN.checkpoint_attrs, "actor_batches", "actor_restarts", "weights_version")
    config: ApexConfig

    def __init__(self, config: ApexConfig | None = None, env=None):
        super().__init__(config, env)
        self._ray = import_ray()
        self._owns_cluster = False
        self.actors: list = []
        self._pending: dict = {}
        self.actor_batches = 0
        self.actor_restarts = 0
        self.weights_version = 0
        self._weights_ref = None
        self._last_published = -1
        try:
            self._start_cluster()
            self._start_actors()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ Ray

    def _start_cluster(self) -> None:
        ray, cfg = self._ray, self.config
        if ray.is_initialized():
            return
        kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if cfg.address:
            ray.init(address=cfg.address, **kwargs)
        else:
            cpus = max(os.cpu_count() or 1, math.ceil(cfg.actors * cfg.actor_num_cpus))
            ray.init(num_cpus=cpus, object_store_memory=cfg.object_store_mb * 2**20, **kwargs)
            self._owns_cluster = True

    def _start_actors(self) -> None:
        ray, cfg = self._ray, self.config
        remote = ray.remote(ApexActor).options(num_cpus=cfg.actor_num_cpus, max_restarts=cfg.actor_max_restarts,
                                               max_task_retries=0)
        config = asdict(cfg)
        self.actors = [remote.remote(config, i, cfg.actors) for i in range(cfg.actors)]

    def _publish(self) -> None:
        if self._weights_ref is None or self.updates - self._last_published >= self.config.publish_interval:
            weights = {k: v.detach().cpu().clone() for k, v in self.q.agent(0).state_dict().items()}
            self._weights_ref = self._ray.put(weights)
            self.weights_version += 1
            self._last_published = self.updates

    def _request(self, index: int) -> None:
        self._publish()
        ref = self.actors[index].collect.remote(self.weights_version, self._weights_ref)
        self._pending[ref] = index

    # ------------------------------------------------------------------ the frame's hooks

    def collect(self) -> None:
        """Waits for the first actor batch to arrive and inserts it with its priorities; asks that actor
        for the next one (so at most ``max_inflight`` per actor are ever outstanding)."""
        ray, cfg = self._ray, self.config
        if not self._pending:
            for index in range(len(self.actors)):
                for _ in range(cfg.max_inflight):
                    self._request(index)
        while True:
            ready, _ = ray.wait(list(self._pending), num_returns=1, timeout=cfg.actor_timeout_s)
            if not ready:
                raise RuntimeError(f"Apex: no actor delivered a batch in {cfg.actor_timeout_s:g} s "
                                   f"(actor_timeout_s); is the cluster overloaded or are the actors stuck?")
            ref = ready[0]
            index = self._pending.pop(ref)
            try:
                batch = ray.get(ref)
            except ray.exceptions.RayActorError:
                # The actor died; Ray restarts it (max_restarts) and the next request goes to the new one.
                self.actor_restarts += 1
                if self.actor_restarts > cfg.actor_max_restarts * max(1, len(self.actors)):
                    raise RuntimeError(f"Apex: actors died {self.actor_restarts} times; giving up") from None
                self._request(index)
                continue
            self._request(index)
            self._insert(batch, index)
            return

    def _insert(self, batch: dict[str, Any], actor: int) -> None:
        # Actors step their envs in other processes, out of the frame's watch: their data is checked here,
        # once per batch, before any of it reaches the buffer.
        for key in ("obs", "reward", "next_obs"):
            values = batch[key]
            if values.is_floating_point() and not bool(torch.isfinite(values).all()):
                raise EnvDataError(f"Apex: actor {actor}'s env {self.config.env_id!r} returned a non-finite "
                                   f"{key.replace('next_', '').replace('obs', 'observation')} (NaN or inf) after env "
                                   f"step {self.env_steps}; the batch was not inserted and Apex stopped training there")
        buffer = self.buffer
        first = buffer.added
        buffer.add(batch["obs"], batch["action"], batch["reward"], batch["next_obs"], batch["terminated"],
                   batch["discount"])
        count = batch["obs"].shape[0]
        if count:
            ids = torch.arange(first, first + count, device=self.device)
            buffer.update_priorities(ids, batch["priority"].to(self.device))
        self.record_finished(batch["episode_returns"], batch["episode_lengths"])
        self.env_steps += int(batch["env_steps"])
        self.schedule.collected(count)
        self.actor_batches += 1

    def epsilon(self, step: int | None = None) -> float:
        return actor_epsilon(0, self.config.actors, self.config.actor_eps_base, self.config.actor_eps_alpha)

    def log_metrics(self) -> dict[str, float]:
        return {**self.episode_metrics(), "actor_batches": self.actor_batches, "actor_restarts": self.actor_restarts,
                "weights_version": self.weights_version}

    def after_load(self) -> None:
        self._weights_ref = None  # the loaded network goes out with the next request

    @classmethod
    def legacy_section(cls, flat: dict[str, Any]) -> dict[str, Any]:
        flat = dict(flat)
        counters = flat.pop("apex", None)
        return {**super().legacy_section(flat), **(counters if isinstance(counters, dict) else {})}

    def train(self, *args, **kwargs):
        # SIGTERM (a job scheduler, `kill`) unwinds like Ctrl-C, so close() stops the actors and the cluster.
        previous = signal.getsignal(signal.SIGTERM)
        installed = False
        try:
            signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
            installed = True
        except ValueError:  # not the main thread: leave signals alone
            pass
        try:
            return super().train(*args, **kwargs)
        finally:
            if installed:
                signal.signal(signal.SIGTERM, previous)

    def close(self) -> None:
        """Stops the actors and, if this learner started it, the local Ray cluster (no processes stay behind)."""
        ray = getattr(self, "_ray", None)
        if ray is not None and ray.is_initialized():
            for actor in getattr(self, "actors", []):
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:
                    pass
            self.actors = []
            self._pending = {}
            if self._owns_cluster:
                ray.shutdown()
                self._owns_cluster = False
        super().close()


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def wait_for(predicate, timeout_s: float, interval_s: float = 0.05) -> bool:
    """Polls ``predicate`` until it is true or ``timeout_s`` passes (tests and benchmarks)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
