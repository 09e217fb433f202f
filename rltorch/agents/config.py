"""Run-level settings every agent shares (:class:`RunConfig`); the config machinery is :mod:`rltorch.config`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

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


@dataclass(kw_only=True)
class RunConfig(Config):
    """Run-level settings every algorithm shares; each algorithm's config subclasses this."""

    env_id: str = "CartPole-v1"
    """gymnasium id; CartPole-v1 runs on rltorch's vectorized CartPole unless env_backend says otherwise."""
    env_backend: Literal["auto", "rltorch", "gymnasium"] = "auto"
    """'rltorch', 'gymnasium', or 'auto' (rltorch for CartPole-v1, gymnasium for everything else)."""
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

    def check(self, values: dict[str, Any]) -> None:
        super().check(values)
        need = self.requirement
        need(values["env_id"] != "", "env_id", "must not be empty")
        need(is_device_name(values["device"]), "device",
             f"must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {values['device']!r}")
