"""Run-level settings every agent shares (:class:`RunConfig`); the config machinery is :mod:`rltorch.config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from rltorch._checks import Range, is_device_name
from rltorch.config import (  # noqa: F401  (re-exported: this module was their home before rltorch.config)
    Config,
    PositiveInt,
    describe,
    field_docs,
    field_hints,
    literal_or,
    optional_inner,
    parse_field,
    parse_field_item,
)

#: Seeds go to torch and gymnasium generators, which take non-negative 64-bit values.
MAX_SEED = 2**63 - 1
MAX_THREADS = 1024
MAX_AGENTS = 2**20


@dataclass(kw_only=True)
class RunConfig(Config):
    """Run-level settings every algorithm shares; each algorithm's config subclasses this."""

    env_id: str = "CartPole-v1"
    """gymnasium id; CartPole-v1, Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0 and Pendulum-v1 run on
    rltorch's vectorized kernels unless env_backend says otherwise."""
    env_backend: Literal["auto", "rltorch", "gymnasium"] = "auto"
    """'rltorch', 'gymnasium', or 'auto' (rltorch's kernel for the classic-control ids above, gymnasium for
    everything else)."""
    num_envs: PositiveInt = 16
    """Environments stepped in parallel (one vector env)."""
    device: str = "auto"
    """'cpu', 'cuda', 'cuda:1', or 'auto' (cuda when available)."""
    seed: Annotated[int, Range(0, MAX_SEED)] = 0
    """Seeds the networks, the env, the buffer and exploration: the same seed gives the same run."""
    total_steps: PositiveInt = 300_000
    """Upper bound on env steps (summed over envs)."""
    eval_interval: PositiveInt = 5_000
    """Env steps between greedy evaluations."""
    eval_episodes: PositiveInt = 100
    """Episodes per greedy evaluation (one per env of a fresh vector env)."""
    solve_threshold: float | None = None
    """Mean greedy return that counts as solved; None takes the env spec's reward_threshold (475 for CartPole-v1)."""
    stop_when_solved: bool = True
    """Stop training at the first evaluation that reaches solve_threshold."""
    log_interval: PositiveInt = 2_000
    """Env steps between log rows (metrics.csv, progress bar, callback)."""
    compile: bool = False
    """torch.compile the update step (pays compile time up front)."""
    eval_stop_early: bool = False
    """Stop a training-time evaluation once its mean can no longer reach solve_threshold (envs with a known
    best episode return: rltorch's CartPole); its logged eval_return is then a lower bound."""
    threads: Annotated[int, Range(1, MAX_THREADS)] | Literal["auto"] = "auto"
    """torch intra-op threads while training and evaluating: 'auto' is one (an agent's small MLP and env step
    cannot gain from splitting, and lose badly when another process shares the cores); the caller's own
    setting is restored afterwards."""
    num_agents: Annotated[int, Range(1, MAX_AGENTS)] = field(default=1, metadata={"aliases": ("--agents",)})
    """Agents trained at once, in lockstep, each on its own num_envs envs of one vector env and with its own
    seed (seed, seed + 1, ...): a population (PPO). With a sweep, this many seeds per setting."""
    sweep: tuple[str, ...] = field(default=(), metadata={"repeat": True, "metavar": "FIELD=V1,V2,..."})
    """Train the grid of these values (--sweep learning_rate=3e-4,1e-3 --sweep ent_coef=0,0.01), num_agents
    seeds per setting, in one population; only fields that may differ between agents (the algorithm's
    per-agent fields), never those that shape the agents' tensors."""

    #: Fields that may differ between the agents of a population (a sweep's); None: the algorithm trains one
    #: agent at a time.
    per_agent_fields: ClassVar[tuple[str, ...] | None] = None
    #: Fields that set the shape of every agent's tensors (named when a sweep tries one).
    shape_fields: ClassVar[tuple[str, ...]] = ("num_envs",)

    def check(self, values: dict[str, Any]) -> None:
        super().check(values)
        need = self.requirement
        need(values["env_id"] != "", "env_id", "must not be empty")
        need(is_device_name(values["device"]), "device",
             f"must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {values['device']!r}")
        population = values["num_agents"] > 1 or values["sweep"]
        need(not population or self.per_agent_fields is not None, "num_agents" if values["num_agents"] > 1 else "sweep",
             f"must be {'1' if values['num_agents'] > 1 else 'empty'}: {type(self).__name__[:-6] or 'this algorithm'} "
             f"trains one agent at a time")
        if values["sweep"]:
            from rltorch.agents.population.sweep import grid, parse_sweep

            base = {k: v for k, v in values.items() if k not in ("sweep", "num_agents")}
            try:
                sweep = parse_sweep(type(self), values["sweep"], base=base)
            except ValueError as exc:
                raise ValueError(f"{type(self).__name__}: `sweep` {exc}") from None
            agents = len(grid(sweep)) * values["num_agents"]
            need(agents <= MAX_AGENTS, "sweep", f"makes {agents} agents, more than {MAX_AGENTS}")
        need(values["seed"] + values["num_agents"] - 1 <= MAX_SEED, "seed",
             f"must leave room for num_agents={values['num_agents']} seeds below 2**63, got {values['seed']}")
