"""Ape-X scale-out: env steps per second against the number of Ray actors, on
CartPole whose every env step also waits 1 ms (rltorch.envs.SimulatedLatency),
beside one process stepping the same envs.

A call is ``chunk`` more env steps of a running system. ``rltorch`` is Ape-X
with the learner only inserting (``updates_per_step`` near zero): what the
actors deliver. ``rltorch + learning`` keeps DQN's ratio of one update per 8
inserted transitions, where on 2 cores the learner's updates set the pace.
``one process`` is DQN itself with one actor's worth of the same envs (8),
collecting with the same near-zero learning; it is measured at every size so
each row has its anchor from the same minute.
"""

from __future__ import annotations

from rltorch.bench.core import Case, Settings, Unavailable

LATENCY_MS = 1.0
ENVS_PER_ACTOR = 8
INSTALL_RAY = "pip install 'rltorch[distributed]'  (or: pip install ray)"
COLLECT_ONLY = 1e-3  # updates per inserted transition: the learner barely trains


class _Stepping:
    """The timed call (``chunk`` more env steps) with the agent it drives; ``close`` stops it."""

    def __init__(self, agent, chunk: int):
        self.agent, self.chunk = agent, chunk

    def __call__(self):
        self.agent.train(stop_at=self.agent.env_steps + self.chunk)

    def close(self):
        self.agent.close()


def _config_values(actors: int, updates_per_step: float) -> dict:
    return dict(num_envs=ENVS_PER_ACTOR, step_latency_ms=LATENCY_MS, updates_per_step=updates_per_step,
                total_steps=10**12, eval_interval=10**12, log_interval=10**12, learning_starts=1_000,
                stop_when_solved=False, actors=actors, actor_num_cpus=0.25, object_store_mb=128, seed=0)


def _apex_case(impl: str, actors: int, updates_per_step: float) -> Case:
    def setup(settings: Settings):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise Unavailable("Ray is not installed", INSTALL_RAY) from None
        from rltorch.distributed import Apex, ApexConfig

        agent = Apex(ApexConfig(**_config_values(actors, updates_per_step)))
        stepping = _Stepping(agent, chunk=ENVS_PER_ACTOR * 32 * actors)
        try:
            stepping.agent.train(stop_at=2_000)  # actors started, buffer past learning_starts
        except BaseException:
            stepping.close()
            raise
        return stepping

    return Case("distributed", "apex_env_steps", impl, setup, size=actors, size_label="actors",
                params=(("latency", f"{LATENCY_MS:g}ms/env-step"), ("envs", ENVS_PER_ACTOR)),
                items=ENVS_PER_ACTOR * 32 * actors, item="env step", devices=("cpu",))


def _single_process_case(actors: int) -> Case:
    def setup(settings: Settings):
        from rltorch.agents import DQN, DQNConfig
        from rltorch.envs import CartPoleVecEnv, SimulatedLatency

        values = _config_values(1, COLLECT_ONLY)
        for key in ("actors", "actor_num_cpus", "object_store_mb", "step_latency_ms"):
            values.pop(key)
        env = SimulatedLatency(CartPoleVecEnv(ENVS_PER_ACTOR, autoreset_mode="same_step"), LATENCY_MS / 1000)
        agent = DQN(DQNConfig(prioritized=True, n_step=3, **values), env=env)
        agent.train(stop_at=2_000)
        return _Stepping(agent, chunk=ENVS_PER_ACTOR * 32)

    return Case("distributed", "apex_env_steps", "one process", setup, size=actors, size_label="actors",
                params=(("latency", f"{LATENCY_MS:g}ms/env-step"), ("envs", ENVS_PER_ACTOR)),
                items=ENVS_PER_ACTOR * 32, item="env step", devices=("cpu",))


def cases(settings: Settings) -> list[Case]:
    # Each size starts a Ray cluster and its actors (5-10 s here): --quick measures one.
    sizes = settings.pick(tiny=[1], quick=[4], full=[1, 2, 4, 8])
    found = []
    for actors in sizes:
        found.append(_apex_case("rltorch", actors, COLLECT_ONLY))
        found.append(_apex_case("rltorch + learning", actors, 0.125))
        found.append(_single_process_case(actors))
    return found
