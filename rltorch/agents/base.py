"""The frame every rltorch agent shares; each algorithm file keeps only its update.

:class:`Agent` owns what is not the algorithm: the vector env and device,
seeding, the training loop (log and evaluation cadence, stop when solved,
progress bar, callback, :class:`TrainResult`), greedy evaluation on a fresh
vector env, a watch on the env's data (NaN or inf rewards and observations
stop training with an error naming the env and the step), checkpoints, and
export of the deterministic policy (TorchScript and ``torch.export``).

An algorithm subclasses :class:`Agent`, sets ``name`` and ``config_class``
(a :class:`RunConfig` subclass), declares what its checkpoints hold and fills
in the hooks:

- ``build()``: create the networks, optimizers and buffers. The frame runs it
  with torch's global RNG seeded from ``config.seed`` and restores the caller's
  RNG afterwards: the same seed gives the same initial weights, and building
  an agent never changes anyone else's random stream;
- ``collect()``: gather experience. An online algorithm steps ``self.env``
  on :meth:`Agent.current_obs` and hands each step to :meth:`Agent.advance`,
  which counts the env steps and the training episodes, checks the data and
  moves the current observation on (DQN: one vector step into the replay
  buffer; PPO: a rollout of ``num_steps`` vector steps). An offline learner
  may collect nothing; experience gathered elsewhere (Ape-X's actors) goes in
  through :meth:`Agent.record_finished`;
- ``update()``: learn from what was collected (DQN: the gradient steps owed;
  PPO: the minibatch epochs; an offline learner: one pass, advancing
  ``env_steps`` by the samples it consumed). ``train`` calls ``collect`` then
  ``update`` until ``total_steps``, logging every ``log_interval`` and
  evaluating every ``eval_interval`` env steps;
- ``policy_module()``: the live ``nn.Module`` from a batch of observations to
  deterministic actions (used by ``evaluate``, ``act`` and ``export``);
- ``explore(obs)``: the actions the agent takes while collecting (``act(obs,
  deterministic=False)``);
- ``log_metrics()`` and ``log_columns``: the algorithm's own metric columns;
- ``write_run_files(run_dir)``: figures of its own for ``rltorch train``'s run
  directory (BC: a confusion matrix); none by default.

**Checkpoints are declared, not written.** ``checkpoint_attrs`` names the
attributes a checkpoint holds (``("q", "target", "optimizer", "schedule")``)
and ``buffer_attrs`` those it holds only with ``include_buffer=True``. The
frame saves each by its type (``nn.Module`` and optimizers by their state
dicts, tensors, numbers, and any object with ``state_dict()`` /
``load_state_dict()``), checks every one against the live agent before it
writes anything (names, shapes, dtypes), restores them, and rolls everything
back if a restore still fails midway, naming the key. A checkpoint (format 4)
is ``{"format", "algorithm", "config", "frame": {...}, <name>: {...}}``: the
frame's counters, episode statistics, env state and exploration generator,
and the algorithm's attributes under its own name. State that is not an
attribute goes through ``extra_state()`` / ``load_extra_state(state)``.
Formats 1 and 2 (one flat dict) still load; an algorithm whose attributes were
renamed since maps its old keys in ``legacy_section``, and one whose networks
changed shape since format 3 converts them in ``upgraded_section``. Files are written and
read through :mod:`rltorch._io`: atomically, with a checksum, and with
``torch.load(weights_only=True)``, so a checkpoint never runs code and a
damaged one is refused naming the file.

**Names.** ``train()`` is the loop (stable-baselines3 calls it ``learn``) and
``update()`` one round of learning (SB3's ``train``). ``learn()`` was the name
of ``update()`` before and still works, with a DeprecationWarning.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import gymnasium as gym
import torch
from torch import Tensor, nn

from rltorch._checks import integer, resolve_device
from rltorch._io import EXPORT_FORMATS, export_module, first_line, load_checked, save_checked
from rltorch._threads import agent_threads, torch_threads
from rltorch.agents.config import MAX_SEED, RunConfig
from rltorch.agents.population.evaluation import evaluate_agents, narrow_env
from rltorch.agents.population.sweep import members, parse_sweep
from rltorch.envs.cartpole import CartPoleVecEnv
from rltorch.envs.vector import Step, VectorEnvAdapter, make_env, max_episode_return, solve_threshold
from rltorch.ops.device_errors import check_device_errors

#: Version of the checkpoint layout. 1: DQN's flat dict (no ``algorithm`` key); 2: a flat dict tagged with the
#: algorithm; 3: the frame's entries and the algorithm's, each in its own section; 4: the same sections, with
#: each agent a row of stacked networks and optimisers (population training; ``upgraded_section`` reads the
#: lone networks of formats 1 to 3).
CHECKPOINT_FORMAT = 4
READABLE_FORMATS = (1, 2, 3, 4)
FRAME_SECTION = "frame"
#: The checkpoint's file name in a run directory (``rltorch train`` writes it; BC reads experts from it).
CHECKPOINT_FILE = "checkpoint.pt"
EXTRA_KEY = "extra"
#: The frame's entry of a population's checkpoint: which agents still train, each agent's outcome so far.
POPULATION_KEY = "population"
#: The frame's entries of a format 1 or 2 checkpoint (a flat dict); ``torch_rng`` is read and ignored.
_LEGACY_FRAME_KEYS = ("env_steps", "updates", "obs", "episode_return", "episode_length", "finished", "env_prev_done",
                      "env", "generator")
_LEGACY_DROPPED = ("format", "algorithm", "config", "torch_rng")


@dataclass
class TrainResult:
    solved: bool
    env_steps: int
    updates: int
    wall_time_s: float
    time_to_solve_s: float | None
    steps_to_solve: int | None
    last_eval_return: float | None
    history: list = field(default_factory=list)
    #: Each agent's outcome (one entry for a lone agent): agent, seed, its swept values, solved,
    #: steps_to_solve, time_to_solve_s, last_eval_return and env_steps (when it stopped training).
    #: For a population the fields above summarise them: solved when every agent solved, time and steps
    #: to solve those of the last agent to solve, the mean of the last evaluations.
    agents: list = field(default_factory=list)


class EnvDataError(ValueError):
    """The env returned a NaN or infinite reward or observation; training stopped before learning from it
    further (the last checkpoint written before it is intact)."""


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The dict in an rltorch agent checkpoint (checksum verified, ``weights_only=True``); a one-line
    ValueError naming the file otherwise (FileNotFoundError when there is none)."""
    state = load_checked(path, "checkpoint")
    if state.get("format") not in READABLE_FORMATS or not isinstance(state.get("config"), dict):
        raise ValueError(f"{os.fspath(path)!r} is not an rltorch agent checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def checkpoint_algorithm(state: dict) -> str:
    """The algorithm a checkpoint dict was written by (format 1 files are DQN's)."""
    return str(state.get("algorithm", "dqn"))


def _on_run_threads(method):
    """Runs an agent method on the config's intra-op thread count (``RunConfig.threads``), restoring the
    caller's afterwards."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with torch_threads(agent_threads(self.config.threads)):
            return method(self, *args, **kwargs)

    return wrapper


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """``module.eval()`` inside the block (dropout off, batch-norm running stats), the previous mode after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device):
    """torch's global RNG (and ``device``'s, for CUDA) seeded with ``seed`` inside the block and the caller's
    state restored after it, as ``torch.random.fork_rng`` does."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


# ------------------------------------------------------------------ checking state before it is loaded


def _mismatch(name: str, expected: str, value: Any) -> ValueError:
    got = f"{value.dtype} tensor of shape {list(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
    return ValueError(f"`{name}` must be {expected}, got {got}")


def check_tensor_like(like: Tensor, value: Any, name: str) -> None:
    """Raises ValueError naming ``name`` unless ``value`` is a tensor of ``like``'s dtype and shape."""
    if not isinstance(value, Tensor) or value.dtype != like.dtype or value.shape != like.shape:
        raise _mismatch(name, f"a {like.dtype} tensor of shape {list(like.shape)}", value)


def check_module_state(module: nn.Module, state: Any, name: str) -> None:
    """Raises ValueError unless ``state`` has exactly ``module``'s state_dict keys, shapes and dtypes."""
    if not isinstance(state, dict):
        raise ValueError(f"`{name}` must be a state dict, got {type(state).__name__}")
    own = module.state_dict()
    if set(state) != set(own):
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        raise ValueError(f"`{name}` does not fit the network: missing keys {missing}, unexpected keys {unexpected}")
    for key, tensor in own.items():
        check_tensor_like(tensor, state[key], f"{name}.{key}")


def check_optimizer_state(optimizer: torch.optim.Optimizer, state: Any, name: str) -> None:
    """Raises ValueError unless ``state`` is an optimizer state dict for ``optimizer``'s parameters (groups,
    parameter counts, and per-parameter tensors shaped like their parameters)."""
    groups = state.get("param_groups") if isinstance(state, dict) else None
    if not isinstance(groups, list) or not isinstance(state.get("state"), dict):
        raise ValueError(f"`{name}` must be an optimizer state dict (param_groups and state)")
    own = optimizer.param_groups
    if len(groups) != len(own) or any(not isinstance(g, dict) or not isinstance(g.get("params"), list)
                                       or len(g["params"]) != len(o["params"]) for g, o in zip(groups, own)):
        raise ValueError(f"`{name}` is for {len(groups)} parameter group(s) of other sizes; the optimizer has "
                         f"{[len(o['params']) for o in own]} parameters per group")
    params = dict(zip((i for g in groups for i in g["params"]), (p for o in own for p in o["params"])))
    # Every parameter's state has the same slots (Adam: step, exp_avg, exp_avg_sq), the live optimizer's if it
    # has stepped: a missing slot would only fail at the next step.
    slots = {frozenset(s) for s in (*optimizer.state.values(), *state["state"].values()) if isinstance(s, dict)}
    if len(slots) > 1:
        raise ValueError(f"`{name}.state` holds per-parameter entries {sorted(map(sorted, slots))}, not one set")
    # Each slot is a scalar of one dtype for every parameter (Adam's step) or shaped like its parameter.
    slot_kinds: dict[str, set] = {}
    for per_param in (*optimizer.state.values(), *state["state"].values()):
        for slot, value in per_param.items() if isinstance(per_param, dict) else ():
            scalar = not isinstance(value, Tensor) or value.dim() == 0
            slot_kinds.setdefault(slot, set()).add((scalar, getattr(value, "dtype", type(value)) if scalar else None))
    mixed = sorted(slot for slot, kinds in slot_kinds.items() if len(kinds) > 1)
    if mixed:
        raise ValueError(f"`{name}.state` holds {mixed} in different kinds for different parameters")
    for key, per_param in state["state"].items():
        if key not in params or not isinstance(per_param, dict):
            raise ValueError(f"`{name}.state` holds an entry {key!r} for no parameter of the optimizer")
        for slot, value in per_param.items():
            param = params[key]
            if not isinstance(value, (Tensor, int, float)) or isinstance(value, bool):
                raise _mismatch(f"{name}.state.{key}.{slot}", "a tensor or a number", value)
            shaped = isinstance(value, Tensor) and value.dim() > 0
            if shaped and (value.shape != param.shape or value.dtype != param.dtype):
                raise _mismatch(f"{name}.state.{key}.{slot}", f"a {param.dtype} tensor of shape {list(param.shape)}",
                                value)


def _is_stateful(value: Any) -> bool:
    return callable(getattr(value, "state_dict", None)) and callable(getattr(value, "load_state_dict", None))


def _saved(value: Any, name: str) -> Any:
    """What a checkpoint holds for an attribute holding ``value``."""
    if isinstance(value, (nn.Module, torch.optim.Optimizer)):
        return value.state_dict()
    if isinstance(value, torch.Generator):
        return value.get_state()
    if value is None or isinstance(value, (Tensor, bool, int, float, str)):
        return value
    if _is_stateful(value):
        return value.state_dict()
    raise TypeError(f"checkpoint attribute `{name}` holds a {type(value).__name__}, which rltorch cannot save: "
                    "declare modules, optimizers, generators, tensors, numbers, strings or objects with "
                    "state_dict()/load_state_dict()")


def _check_saved(current: Any, value: Any, name: str) -> None:
    """Raises ValueError naming ``name`` unless ``value`` can restore an attribute holding ``current``.
    Objects with their own ``load_state_dict`` check themselves when loaded (before they change)."""
    if isinstance(current, nn.Module):
        check_module_state(current, value, name)
    elif isinstance(current, torch.optim.Optimizer):
        check_optimizer_state(current, value, name)
    elif isinstance(current, torch.Generator):
        check_tensor_like(current.get_state(), value, name)
    elif isinstance(current, Tensor):
        check_tensor_like(current, value, name)
    elif isinstance(current, bool) or current is None or isinstance(current, str):
        if type(value) is not type(current):
            raise _mismatch(name, type(current).__name__, value)
    elif isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`{name}` must be an integer >= 0, got {value!r:.60}")
    elif isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _mismatch(name, "a number", value)


def _restored(current: Any, value: Any) -> Any:
    """Loads ``value`` into ``current`` in place, or returns the new value for the attribute."""
    if isinstance(current, torch.Generator):
        current.set_state(value)
        return current
    if isinstance(current, Tensor):
        return value.to(current.device).clone()
    if isinstance(current, float):
        return float(value)
    if isinstance(current, (nn.Module, torch.optim.Optimizer)) or _is_stateful(current):
        current.load_state_dict(value)
        return current
    return value


# ------------------------------------------------------------------ episode statistics and the env-data watch


class EpisodeStats:
    """Returns and lengths of the training episodes, summed on the device per agent (the env's rows are
    ``num_agents`` equal blocks, one per agent); read back once per log row."""

    def __init__(self, num_envs: int, device: torch.device, num_agents: int = 1):
        self.num_agents = num_agents
        self.episode_return = torch.zeros(num_envs, device=device)
        self.episode_length = torch.zeros(num_envs, dtype=torch.long, device=device)
        # count, return sum, length sum (one row per agent in a population)
        self.finished = torch.zeros((3,) if num_agents == 1 else (num_agents, 3), dtype=torch.float64, device=device)

    def _accumulate(self, step: Step) -> Tensor:
        live = step.valid  # None: every row is a real step
        self.episode_return += step.reward if live is None else step.reward * live
        self.episode_length += 1 if live is None else live.long()
        return step.terminated | step.truncated

    def record(self, step: Step) -> None:
        """Adds one vector step; episodes that ended in it join the statistics (no host sync)."""
        done = self._accumulate(step)
        if self.num_agents == 1:
            finished = torch.stack([done.sum(), torch.where(done, self.episode_return, 0).sum(),
                                    torch.where(done, self.episode_length, 0).sum()]).to(torch.float64)
        else:
            per_agent = (self.num_agents, -1)
            finished = torch.stack([done.view(per_agent).sum(1),
                                    torch.where(done, self.episode_return, 0).view(per_agent).sum(1),
                                    torch.where(done, self.episode_length, 0).view(per_agent).sum(1)], dim=1)
            finished = finished.to(torch.float64)
        self.finished += finished
        self.episode_return.masked_fill_(done, 0.0)
        self.episode_length.masked_fill_(done, 0)

    def record_each(self, step: Step) -> tuple[Tensor, Tensor]:
        """Adds one vector step and returns the returns and lengths of the episodes that ended in it, one by one
        (reads the done flags back: for CPU processes such as Ape-X's actors, which send them on)."""
        done = self._accumulate(step)
        returns, lengths = self.episode_return[done].clone(), self.episode_length[done].clone()
        self.episode_return.masked_fill_(done, 0.0)
        self.episode_length.masked_fill_(done, 0)
        return returns, lengths

    def add_finished(self, returns: Tensor, lengths: Tensor) -> None:
        """Counts episodes that finished elsewhere (their returns and lengths)."""
        if returns.numel():
            finished = torch.stack([torch.tensor(float(returns.numel()), device=returns.device),
                                    returns.double().sum(), lengths.double().sum()])
            self.finished += finished.to(self.finished.device)

    def read(self) -> dict[str, Any]:
        """Episodes finished since the last read, with their mean return and length (NaN when none): numbers,
        or in a population one list per column, indexed by agent."""
        counts = self.finished.tolist()
        self.finished.zero_()

        def columns(count: float, ret_sum: float, len_sum: float) -> tuple[int, float, float]:
            return (int(count), ret_sum / count if count else float("nan"), len_sum / count if count else float("nan"))

        if self.num_agents == 1:
            per_agent = [columns(*counts)]
        else:
            per_agent = [columns(*row) for row in counts]
        episodes, returns, lengths = (list(c) for c in zip(*per_agent))
        if self.num_agents == 1:
            return {"episodes": episodes[0], "train_return": returns[0], "train_length": lengths[0]}
        return {"episodes": episodes, "train_return": returns, "train_length": lengths}

    def restart(self) -> None:
        """The env started fresh episodes: what the interrupted ones had collected no longer counts."""
        self.episode_return.zero_()
        self.episode_length.zero_()


class EnvDataWatch:
    """Catches NaN and inf in the rewards and observations an env returns, without a host sync per step.

    rltorch's own CartPole needs no watch (its values are bounded by construction: every episode ends before
    the cart or the pole leaves its range); every other env, wrappers of it included, is watched. Each
    vector step adds the float64 sum of its rewards and observations to a running total (float32 data
    cannot overflow a float64 sum, so a non-finite total means a non-finite value) and counts the steps while
    the total was still finite: that count is the position of the first bad step. :meth:`first_bad` reads
    both once, at a log row.
    """

    def __init__(self, device: torch.device):
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.finite_steps = torch.zeros((), dtype=torch.float64, device=device)
        self.steps = 0  # vector steps recorded since the last read (a host count)

    def record(self, step: Step) -> None:
        self.total += step.reward.sum(dtype=torch.float64) + step.obs.sum(dtype=torch.float64)
        self.finite_steps += torch.isfinite(self.total)
        self.steps += 1

    def first_bad(self) -> int | None:
        """How many vector steps since the last read came before the first non-finite one (None if there
        was none); starts a new window."""
        if not self.steps:
            return None
        total, finite_steps = torch.stack([self.total, self.finite_steps]).tolist()
        self.total.zero_()
        self.finite_steps.zero_()
        self.steps = 0
        return None if math.isfinite(total) else int(finite_steps)


# ------------------------------------------------------------------ the frame


class Agent:
    """The shared frame (see the module docstring). Subclasses set ``name`` and ``config_class``."""

    #: Registry key, run-directory prefix, the checkpoint's ``algorithm`` tag and its section's key.
    name: ClassVar[str] = ""
    #: The RunConfig subclass this algorithm reads.
    config_class: ClassVar[type[RunConfig]] = RunConfig
    #: The algorithm's log columns: between the frame's (env_steps, updates, wall_time_s, steps_per_s)
    #: and eval_return. ``log_metrics`` returns these keys.
    log_columns: ClassVar[tuple[str, ...]] = ("episodes", "train_return", "train_length")
    #: Log columns also shown on the progress bar.
    progress_columns: ClassVar[tuple[str, ...]] = ("train_return",)
    #: Attributes every checkpoint holds (see the module docstring).
    checkpoint_attrs: ClassVar[tuple[str, ...]] = ()
    #: Attributes a checkpoint holds only with ``include_buffer=True`` (replay buffers, datasets).
    buffer_attrs: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        declared = (*cls.checkpoint_attrs, *cls.buffer_attrs)
        clash = sorted({n for n in declared if declared.count(n) > 1} | ({EXTRA_KEY} & set(declared)))
        if clash:
            raise RuntimeError(f"{cls.__name__} declares checkpoint attributes twice or reuses the frame's keys: "
                               f"{clash}")

    def __init__(self, config: RunConfig | None = None, env: gym.vector.VectorEnv | None = None):
        if config is None:
            config = self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__}: `config` must be a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config.validate()
        cfg = self.config
        self.device = resolve_device(cfg.device)
        #: The swept values ({field: (value, ...)}) and the population: one member per agent (its index, seed,
        #: sweep setting and swept values); one member for a lone agent.
        self.sweep = parse_sweep(type(cfg), cfg.sweep, base=cfg.to_dict()) if cfg.sweep else {}
        self.members = members(cfg.seed, cfg.num_agents, self.sweep)
        self.num_agents = len(self.members)
        envs = self.num_agents * cfg.num_envs
        if env is None:
            env = make_env(cfg.env_id, envs, backend=cfg.env_backend, device=self.device)
        elif not hasattr(env, "single_observation_space") or not hasattr(env, "num_envs"):
            raise ValueError(f"{type(self).__name__}: `env` must be a gymnasium VectorEnv, got {type(env).__name__}")
        elif env.num_envs != envs:
            # The config is what a checkpoint rebuilds the env from, so it must say what ran.
            agents = f" x {self.num_agents} agents = {envs}" if self.num_agents > 1 else ""
            raise ValueError(f"{type(self).__name__}: config `num_envs` is {cfg.num_envs}{agents} but the env given "
                             f"steps {env.num_envs} envs; set num_envs={env.num_envs // self.num_agents}"
                             + (f" (with {self.num_agents} agents)" if self.num_agents > 1 else ""))
        self.env = VectorEnvAdapter(env, self.device)
        self.threshold = solve_threshold(cfg.env_id, cfg.solve_threshold)
        self.env_steps = 0  # per agent: every agent steps its own num_envs envs in lockstep
        self.updates = 0
        #: Each agent's exploration stream (actions sampled while collecting, minibatch orders), seeded with its
        #: own seed and saved in checkpoints; ``generator`` is the first agent's (a lone agent's).
        self.generators = [torch.Generator(device=self.device).manual_seed(m.seed) for m in self.members]
        self.generator = self.generators[0]
        #: The agents still training (a population's agents stop once solved), in order.
        self.active = torch.arange(self.num_agents)
        #: Per agent: solved, steps_to_solve, time_to_solve_s, last_eval_return, env_steps when it stopped.
        self.outcomes = [{"solved": False, "steps_to_solve": None, "time_to_solve_s": None, "last_eval_return": None,
                          "env_steps": None} for _ in self.members]
        self._obs: Tensor | None = None
        self._episodes = EpisodeStats(self.env.num_envs, self.device, self.num_agents)
        # Six small tensor ops per vector step (about 28 us on a CPU, half of what the episode statistics cost,
        # some 6% of a 16-env DQN collect step; measured on a shared 2-core machine): only for envs that need it.
        self._watch_env_data = not isinstance(env, CartPoleVecEnv)
        self._env_watch = EnvDataWatch(self.device)
        self._watch_from = 0  # env steps when the env-data watch's window opened
        try:
            # On the run's threads too: a population's orthogonal inits are hundreds of small QRs, which took
            # 3-5 s on 2 threads beside another busy process against 36 ms on one (64 PPO agents).
            with seeded_rng(cfg.seed, self.device), torch_threads(agent_threads(cfg.threads)):
                self.build()
        except BaseException:
            self.env.close()
            raise

    # ------------------------------------------------------------------ hooks

    def build(self) -> None:
        """Creates the algorithm's networks, optimizers and buffers (under a seeded, forked global RNG)."""

    def collect(self) -> None:
        """Gather experience; advances ``self.env_steps``."""
        raise NotImplementedError

    def update(self) -> None:
        """Learn from what ``collect`` gathered."""
        if type(self).learn is not Agent.learn:  # an algorithm written when this hook was called learn()
            warnings.warn(f"{type(self).__name__}.learn() as the per-update hook is deprecated: rename it update()",
                          DeprecationWarning, stacklevel=2)
            return type(self).learn(self)
        raise NotImplementedError

    def learn(self) -> None:
        """Deprecated name of :meth:`update` (``train()`` is the loop, as SB3's ``learn(total_timesteps)``)."""
        warnings.warn("Agent.learn() is deprecated: call update() (one round of learning) or train() (the loop)",
                      DeprecationWarning, stacklevel=2)
        self.update()

    def policy_module(self) -> nn.Module:
        """The live module mapping a batch of observations to deterministic actions."""
        raise NotImplementedError

    def explore(self, obs: Tensor) -> Tensor:
        """Actions for a (validated) batch of observations while collecting; default: deterministic."""
        return self.policy_module()(obs)

    def log_metrics(self) -> dict[str, float]:
        """Values of ``log_columns`` for one log row (may read back from the device)."""
        return self.episode_metrics()

    def write_run_files(self, run_dir: str) -> list[str]:
        """Writes the algorithm's own figures into ``rltorch train``'s run directory; returns their paths."""
        return []

    def extra_state(self) -> Any:
        """Checkpoint state that is no attribute (tensors and plain values); None: there is none."""
        return None

    def load_extra_state(self, state: Any) -> None:
        """Restores :meth:`extra_state`'s value; raises ValueError before changing anything when it does not fit."""

    def fresh_episodes(self, section: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint section to load when the env cannot continue the saved episodes (a gymnasium env):
        drop what links to them. Default: all of it is kept."""
        return section

    def after_load(self) -> None:
        """Called after a checkpoint was loaded (e.g. to republish weights)."""

    def per_agent(self, name: str) -> Tensor:
        """Each agent's value of config field ``name`` (its sweep value, else the config's) as a float64 CPU
        tensor ``[num_agents]``; ``None`` (no bound) is ``inf``."""
        default = getattr(self.config, name)
        values = [member.values.get(name, default) for member in self.members]
        return torch.tensor([math.inf if v is None else float(v) for v in values], dtype=torch.float64)

    def retire(self, agents: Tensor) -> None:
        """The agents ``agents`` (indices) stopped training (a population's solved agents; ``self.active`` no
        longer holds them): an algorithm that trains populations leaves them out of its computation from
        now on, keeping their networks as they are. Default: nothing (a lone agent's run ends)."""

    def population_policy(self, agents: Tensor) -> Callable[[Tensor], Tensor]:
        """Greedy actions of the agents ``agents`` (indices) as a function from observations ``[A, M,
        *obs_shape]`` to actions ``[A, M, ...]`` (evaluation). Default: the lone agent's policy_module."""
        policy = self.policy_module()

        def act(rows: Tensor) -> Tensor:
            actions = policy(rows.flatten(0, 1))
            return actions.view(rows.shape[0], rows.shape[1], *actions.shape[1:])

        return act

    def agent_policy(self, agent: int) -> nn.Module:
        """A copy of agent ``agent``'s deterministic policy as a plain module from observations ``[batch,
        *obs_shape]`` to actions (export, act). Default: the lone agent's policy_module."""
        return copy.deepcopy(self.policy_module())

    @classmethod
    def legacy_section(cls, flat: dict[str, Any]) -> dict[str, Any]:
        """The algorithm's section of a format 1 or 2 checkpoint, from its flat entries (the frame's removed)."""
        return flat

    def upgraded_section(self, section: dict[str, Any]) -> dict[str, Any]:
        """The algorithm's section of a format 1 to 3 checkpoint in today's layout (after ``legacy_section``);
        a ValueError naming the entry when it cannot be. Reads ``self`` only for shapes and names."""
        return section

    # ------------------------------------------------------------------ helpers for online algorithms

    def current_obs(self) -> Tensor:
        """The observation to act on; the first call resets the env with the run's seed."""
        if self._obs is None:
            self._obs = self.env.reset(seed=self.config.seed)
        return self._obs

    def advance(self, step: Step) -> None:
        """The env took one vector step: count its env steps and training episodes, watch its data, and act
        next on its observation."""
        self._episodes.record(step)
        if self._watch_env_data:
            self._env_watch.record(step)
        self._obs = step.obs
        self.env_steps += self.env.num_envs // self.num_agents

    def record_episodes(self, step: Step) -> None:
        """Counts the step's rewards into the training-episode statistics of the log (part of :meth:`advance`)."""
        self._episodes.record(step)

    def record_finished(self, returns: Tensor, lengths: Tensor) -> None:
        """Counts training episodes that finished outside this process (their returns and lengths)."""
        self._episodes.add_finished(returns, lengths)

    def episode_metrics(self) -> dict[str, float]:
        """The frame's log columns: training episodes finished since the last row, their mean return and length."""
        return self._episodes.read()

    def check_env_data(self) -> None:
        """Raises :class:`EnvDataError` naming the env and the step if the env returned a NaN or infinite reward
        or observation since the last check (one host read)."""
        watched_from = self._watch_from
        self._watch_from = self.env_steps
        bad = self._env_watch.first_bad()
        if bad is not None:
            step = watched_from + bad * (self.env.num_envs // self.num_agents)
            raise EnvDataError(f"env {self.config.env_id!r} returned a non-finite reward or observation (NaN or inf) "
                               f"in the vector step after env step {step}; {type(self).__name__} stopped training "
                               "there")

    # ------------------------------------------------------------------ acting

    def _check_obs(self, obs) -> tuple[Tensor, bool]:
        try:
            obs_t = torch.as_tensor(obs, device=self.device, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{type(self).__name__}.act: `obs` must be a numeric array or tensor, got "
                             f"{type(obs).__name__} ({first_line(exc)})") from None
        shape = self.env.obs_shape
        single = obs_t.dim() == len(shape)
        trailing = tuple(obs_t.shape[-len(shape):] if shape else ())
        if trailing != shape or obs_t.dim() not in (len(shape), len(shape) + 1):
            raise ValueError(f"{type(self).__name__}.act: `obs` must have shape [batch, {', '.join(map(str, shape))}] "
                             f"or [{', '.join(map(str, shape))}], got {list(obs_t.shape)}")
        return (obs_t.unsqueeze(0) if single else obs_t), single

    def _agent_index(self, name: str, agent: int | None) -> int:
        """``agent`` checked: an index into the population, which a population must name (a lone agent is 0)."""
        if agent is None:
            if self.num_agents > 1:
                raise ValueError(f"{type(self).__name__}.{name}: a population of {self.num_agents} agents: pass "
                                 f"`agent` (an index in [0, {self.num_agents}))")
            return 0
        return integer(f"{type(self).__name__}.{name}", "agent", agent, 0, self.num_agents - 1)

    @torch.no_grad()
    def act(self, obs, deterministic: bool = True, agent: int | None = None) -> Tensor:
        """Actions for one observation or a batch (an empty batch gives no actions): the deterministic policy,
        or the exploring one (``deterministic=False``). In a population, of agent ``agent`` (deterministic
        only)."""
        if not isinstance(deterministic, bool):
            raise ValueError(f"{type(self).__name__}.act: `deterministic` must be True or False, got {deterministic!r}")
        index = self._agent_index("act", agent)
        if self.num_agents > 1 and not deterministic:
            raise ValueError(f"{type(self).__name__}.act: exploring actions are a lone agent's; a population's "
                             f"agents explore only while training (deterministic=True, or agent_policy(k))")
        obs_t, single = self._check_obs(obs)
        if deterministic:
            policy = self.policy_module() if self.num_agents == 1 else self.agent_policy(index)
            with eval_mode(policy):
                actions = policy(obs_t)
        else:
            actions = self.explore(obs_t)
        return actions[0] if single else actions

    # ------------------------------------------------------------------ training

    def _metric_rows(self, start: float, window: tuple[float, int]) -> list[dict]:
        """One log row per training agent (a lone agent's without an ``agent`` column)."""
        if self.device.type == "cuda":
            # CUDA kernels record bad input (a bad action, a skipped NaN TD error) on
            # the device instead of raising; a log row syncs anyway, so surface it here.
            check_device_errors(self.device)
        self.check_env_data()
        now = time.perf_counter()
        frame = {"env_steps": self.env_steps, "updates": self.updates, "wall_time_s": now - start,
                 "steps_per_s": (self.env_steps - window[1]) / max(now - window[0], 1e-9)}
        metrics = self.log_metrics()
        if self.num_agents == 1:
            return [{**frame, **metrics, "eval_return": float("nan")}]
        # A population's metrics are one value per agent (or one for all).
        return [{"agent": k, **frame, **{name: value[k] if isinstance(value, (list, tuple)) else value
                                         for name, value in metrics.items()}, "eval_return": float("nan")}
                for k in self.active.tolist()]

    @classmethod
    def metric_columns(cls) -> list[str]:
        """Every column of a log row, in order (metrics.csv's header); a population's rows also hold ``agent``."""
        return ["env_steps", "updates", "wall_time_s", "steps_per_s", *cls.log_columns, "eval_return"]

    @_on_run_threads
    def train(self, progress: bool = False, callback: Callable[[dict], None] | None = None,
              stop_at: int | None = None) -> TrainResult:
        """Collect and update until solved (greedy evaluation >= threshold) or ``total_steps``.

        A population trains until every agent solved: each agent is evaluated on its own envs at every
        evaluation and stops training once it solved (with ``stop_when_solved``); its time and steps to
        solve are recorded apart. ``callback`` receives every log row (a population's carry ``agent``).

        ``stop_at`` pauses earlier (at that many env steps) without changing the
        schedules, which follow ``total_steps``: save, load and call ``train``
        again to continue exactly as if never interrupted. A NaN or infinite
        reward or observation from the env raises :class:`EnvDataError` at the
        next log row (or when ``train`` returns), before a callback could save it.
        """
        cfg = self.config
        if stop_at is not None:
            stop_at = integer(f"{type(self).__name__}.train", "stop_at", stop_at, minimum=0)
        if callback is not None and not callable(callback):
            raise ValueError(f"{type(self).__name__}.train: `callback` must be callable or None, got {callback!r}")
        limit = cfg.total_steps if stop_at is None else min(stop_at, cfg.total_steps)
        start = time.perf_counter()
        history: list[dict] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.total_steps, initial=self.env_steps, unit="step", dynamic_ncols=True)
        next_eval = (self.env_steps // cfg.eval_interval + 1) * cfg.eval_interval
        next_log = (self.env_steps // cfg.log_interval + 1) * cfg.log_interval
        last_eval = None  # this call's last evaluation (a population: the mean over the agents evaluated)
        if self.num_agents == 1:  # a lone agent's outcome is this call's (a population's agents stay solved)
            self.outcomes[0] = {**self.outcomes[0], "solved": False, "steps_to_solve": None, "time_to_solve_s": None}
        window = (time.perf_counter(), self.env_steps)
        try:
            while self.env_steps < limit and self.active.numel():
                before = self.env_steps
                try:
                    self.collect()
                    self.update()
                except Exception:
                    self.check_env_data()  # a failure that bad env data caused is reported as such
                    raise
                if self.env_steps <= before:
                    raise RuntimeError(f"{type(self).__name__}: collect() and update() must advance env_steps")
                if self.env_steps >= next_log or self.env_steps >= next_eval:
                    next_log = (self.env_steps // cfg.log_interval + 1) * cfg.log_interval
                    rows = self._metric_rows(start, window)
                    window = (time.perf_counter(), self.env_steps)
                    solved_now: list[int] = []
                    if self.env_steps >= next_eval:
                        next_eval = (self.env_steps // cfg.eval_interval + 1) * cfg.eval_interval
                        solved_now, last_eval = self._evaluate_training(rows, start)
                    history.extend(rows)
                    if bar is not None:
                        self._show_progress(bar, rows, last_eval)
                    if callback is not None:
                        for row in rows:
                            callback(row)
                    if solved_now and cfg.stop_when_solved:
                        if self.num_agents == 1:
                            break
                        self._retire(solved_now)
            self.check_env_data()
        finally:
            if bar is not None:
                bar.close()
        return self._train_result(time.perf_counter() - start, last_eval, history)

    def _evaluate_training(self, rows: list[dict], start: float) -> tuple[list[int], float]:
        """Evaluates the training agents, writes their evaluations into ``rows`` and records the agents that
        solved for the first time; returns those and the mean evaluation."""
        cfg = self.config
        training = self.active.tolist()
        returns = self.evaluate_returns(cfg.eval_episodes, stop_below=self.threshold if cfg.eval_stop_early else None,
                                        agents=self.active if self.num_agents > 1 else None)
        means = returns.view(len(training), -1).mean(dim=1).tolist()
        now = time.perf_counter() - start
        solved_now = []
        for row, k, mean in zip(rows, training, means):
            row["eval_return"], row["wall_time_s"] = mean, now
            outcome = self.outcomes[k]
            outcome["last_eval_return"] = mean
            if mean >= self.threshold and not outcome["solved"]:
                outcome.update(solved=True, steps_to_solve=self.env_steps, time_to_solve_s=now)
                solved_now.append(k)
        return solved_now, sum(means) / len(means)

    def _retire(self, agents: list[int]) -> None:
        for k in agents:
            self.outcomes[k]["env_steps"] = self.env_steps
        keep = ~torch.isin(self.active, torch.tensor(agents, dtype=torch.long))
        self.active = self.active[keep]
        self.retire(torch.tensor(agents, dtype=torch.long))

    def _show_progress(self, bar, rows: list[dict], last_eval: float | None) -> None:
        bar.update(self.env_steps - bar.n)
        row = rows[0]
        if self.num_agents == 1:
            postfix = {name: f"{row[name]:.3g}" for name in self.progress_columns}
            bar.set_postfix(**postfix, eval=f"{last_eval:.1f}" if last_eval is not None else "-",
                            sps=f"{row['steps_per_s']:.0f}")
            return
        solved = sum(o["solved"] for o in self.outcomes)
        bar.set_postfix(solved=f"{solved}/{self.num_agents}", training=len(rows),
                        eval=f"{last_eval:.1f}" if last_eval is not None else "-",
                        sps=f"{row['steps_per_s'] * len(rows):.0f}")

    def _train_result(self, wall_time_s: float, last_eval: float | None, history: list[dict]) -> TrainResult:
        agents = [{"agent": m.index, "seed": m.seed, **m.values, **o,
                   "env_steps": o["env_steps"] if o["env_steps"] is not None else self.env_steps}
                  for m, o in zip(self.members, self.outcomes)]
        if self.num_agents == 1:
            one = self.outcomes[0]
            return TrainResult(solved=one["solved"], env_steps=self.env_steps, updates=self.updates,
                               wall_time_s=wall_time_s, time_to_solve_s=one["time_to_solve_s"],
                               steps_to_solve=one["steps_to_solve"], last_eval_return=last_eval, history=history,
                               agents=agents)
        solved = all(o["solved"] for o in self.outcomes)
        return TrainResult(
            solved=solved, env_steps=self.env_steps, updates=self.updates, wall_time_s=wall_time_s,
            time_to_solve_s=max(o["time_to_solve_s"] for o in self.outcomes) if solved else None,
            steps_to_solve=max(o["steps_to_solve"] for o in self.outcomes) if solved else None,
            last_eval_return=last_eval, history=history, agents=agents)

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, episodes: int = 100, seed: int | None = None, stop_below: float | None = None):
        """Mean deterministic-policy return over ``episodes`` episodes, one per env of a fresh vector env
        (``stop_below``: see :meth:`evaluate_returns`): a float, or for a population a float64 tensor
        ``[num_agents]``, one mean per agent."""
        returns = self.evaluate_returns(episodes, seed, stop_below)
        return float(returns.mean()) if self.num_agents == 1 else returns.mean(dim=1)

    @_on_run_threads
    @torch.no_grad()
    def evaluate_returns(self, episodes: int = 100, seed: int | None = None,
                         stop_below: float | None = None, agents: Tensor | None = None) -> Tensor:
        """Deterministic-policy returns of ``episodes`` episodes (float64 CPU tensor), one per env of a fresh
        vector env; ``seed`` defaults to one derived from the run's seed and progress. A population's are
        ``[A, episodes]``, for the agents ``agents`` (increasing indices; default all), agent k on rows
        ``k * episodes ...`` of one env of ``num_agents * episodes`` envs, whichever agents are evaluated.

        With ``stop_below``, on an env that bounds an episode's return (rltorch's CartPole: 500), an agent's
        evaluation stops as soon as its mean can no longer reach ``stop_below``; the returns of its unfinished
        episodes are then partial, so its mean is a lower bound, and below ``stop_below``."""
        name = f"{type(self).__name__}.evaluate"
        episodes = integer(name, "episodes", episodes, minimum=1)
        if seed is not None:
            seed = integer(name, "seed", seed, 0, MAX_SEED)
        if agents is None:
            agents = torch.arange(self.num_agents)
        elif (not isinstance(agents, Tensor) or agents.dim() != 1 or agents.dtype != torch.long or not agents.numel()
              or bool((agents < 0).any() | (agents >= self.num_agents).any() | (agents.diff() <= 0).any())):
            raise ValueError(f"{name}: `agents` must be a non-empty 1-D int64 tensor of increasing agent indices "
                             f"in [0, {self.num_agents}), got {agents!r}"[:300])
        cfg = self.config
        seed = cfg.seed + 10_000 + self.env_steps if seed is None else seed
        # Every agent's rows, whichever are evaluated: agent k plays the same episodes whoever plays beside it
        # (rltorch's CartPole then steps only the rows evaluated).
        env = VectorEnvAdapter(make_env(cfg.env_id, self.num_agents * episodes, backend=cfg.env_backend,
                                        device=self.device), self.device)
        best = max_episode_return(env.env) if stop_below is not None else None

        def policy_for(chosen: Tensor) -> Callable[[Tensor], Tensor]:
            return self.population_policy(chosen.cpu())

        try:
            with eval_mode(self.policy_module()) if self.num_agents == 1 else contextlib.nullcontext():
                returns = evaluate_agents(env, seed, self.num_agents, episodes, policy_for,
                                          agents=agents, stop_below=stop_below, best=best,
                                          narrow=narrow_env)
            return returns[0] if self.num_agents == 1 else returns
        finally:
            env.close()

    # ------------------------------------------------------------------ persistence

    def _frame_state(self) -> dict[str, Any]:
        adapter = self.env.state_dict()
        generators = [g.get_state() for g in self.generators]
        state = {
            "env_steps": self.env_steps,
            "updates": self.updates,
            "generator": generators[0] if self.num_agents == 1 else torch.stack(generators),
            "obs": self._obs,
            "episode_return": self._episodes.episode_return,
            "episode_length": self._episodes.episode_length,
            "finished": self._episodes.finished,
            "env_prev_done": adapter["prev_done"],
        }
        if "env" in adapter:
            state["env"] = adapter["env"]
        if self.num_agents > 1:
            state[POPULATION_KEY] = self._population_state()
        return state

    def _population_state(self) -> dict[str, Tensor]:
        """Which agents still train and each agent's outcome so far, as tensors (a checkpoint's frame)."""
        def column(key: str, dtype: torch.dtype, missing) -> Tensor:
            return torch.tensor([missing if o[key] is None else o[key] for o in self.outcomes], dtype=dtype)

        active = torch.zeros(self.num_agents, dtype=torch.bool)
        active[self.active] = True
        return {"active": active, "solved": column("solved", torch.bool, False),
                "steps_to_solve": column("steps_to_solve", torch.int64, -1),
                "time_to_solve_s": column("time_to_solve_s", torch.float64, math.nan),
                "last_eval_return": column("last_eval_return", torch.float64, math.nan),
                "stopped_at": column("env_steps", torch.int64, -1)}

    def _load_population_state(self, state: dict[str, Tensor]) -> None:
        def value(tensor: Tensor, k: int, missing):
            item = tensor[k].item()
            return None if item == missing or (isinstance(item, float) and math.isnan(item)) else item

        self.active = state["active"].nonzero().flatten().cpu()
        self.outcomes = [{"solved": bool(state["solved"][k]), "steps_to_solve": value(state["steps_to_solve"], k, -1),
                          "time_to_solve_s": value(state["time_to_solve_s"], k, None),
                          "last_eval_return": value(state["last_eval_return"], k, None),
                          "env_steps": value(state["stopped_at"], k, -1)} for k in range(self.num_agents)]

    def state_dict(self, include_buffer: bool = False) -> dict:
        """Everything needed to continue training exactly (the buffers only with ``include_buffer``): the
        frame's section and the algorithm's (see the module docstring). The process-wide RNG is not part of
        it: the agent draws only from its own generators."""
        names = (*self.checkpoint_attrs, *(self.buffer_attrs if include_buffer else ()))
        section = {name: _saved(getattr(self, name), name) for name in names}
        extra = self.extra_state()
        if extra is not None:
            section[EXTRA_KEY] = extra
        return {"format": CHECKPOINT_FORMAT, "algorithm": self.name, "config": self.config.to_dict(),
                FRAME_SECTION: self._frame_state(), self.name: section}

    def _upgraded(self, state: dict) -> dict:
        """A format 1 or 2 checkpoint (one flat dict) in format 3's sections."""
        if state.get("format") >= 3:
            return state
        flat = {k: v for k, v in state.items() if k not in _LEGACY_DROPPED}
        frame = {k: flat.pop(k) for k in _LEGACY_FRAME_KEYS if k in flat}
        return {**{k: state[k] for k in ("format", "config") if k in state}, "algorithm": self.name,
                FRAME_SECTION: frame, self.name: type(self).legacy_section(flat)}

    def _check_state(self, state: Any) -> tuple[dict, dict]:
        """(frame section, algorithm section) of a checkpoint dict, checked against this agent."""
        name = type(self).__name__
        if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
            raise ValueError(f"`state` is not an rltorch agent checkpoint (format {CHECKPOINT_FORMAT})")
        if state["format"] != 1 and not isinstance(state.get("algorithm"), str):
            raise ValueError(f"`state` lacks the algorithm tag of a format {state['format']} checkpoint")
        if checkpoint_algorithm(state) != self.name:
            raise ValueError(f"`state` is a {checkpoint_algorithm(state)!r} checkpoint, not {self.name!r}")
        state = self._upgraded(state)
        frame, section = state.get(FRAME_SECTION), state.get(self.name)
        for key, value in ((FRAME_SECTION, frame), (self.name, section)):
            if not isinstance(value, dict):
                raise ValueError(f"`state` lacks its {key!r} section")
        if state["format"] < 4:
            section = self.upgraded_section(section)
        own = self._frame_state()
        optional = {"env"} | ({"generator"} if state["format"] < 3 else set())  # BC's had none
        if self.num_agents > 1:
            population = frame.get(POPULATION_KEY)
            if not isinstance(population, dict) or set(population) != set(own[POPULATION_KEY]):
                raise ValueError(f"`state` lacks the population's `{POPULATION_KEY}` entries "
                                 f"({', '.join(own[POPULATION_KEY])}): not a checkpoint of this population")
            for key, like in own[POPULATION_KEY].items():
                check_tensor_like(like, population[key], f"{POPULATION_KEY}.{key}")
        elif POPULATION_KEY in frame:
            raise ValueError(f"`state` is a population's checkpoint; this is a lone {name}")
        missing = [k for k in own if k not in frame and k not in optional]
        if missing:
            raise ValueError(f"`state` lacks {', '.join(f'`{k}`' for k in missing)}")
        unknown = sorted(set(frame) - set(own) - optional)
        if unknown:
            raise ValueError(f"`state` holds unknown frame entries {', '.join(f'`{k}`' for k in unknown)}")
        for key in ("env_steps", "updates", "generator", "episode_return", "episode_length", "finished",
                    "env_prev_done"):
            if key in frame:
                _check_saved(own[key], frame[key], key)
        if frame["obs"] is not None:
            check_tensor_like(torch.empty(self.env.num_envs, *self.env.obs_shape), frame["obs"], "obs")
        declared = (*self.checkpoint_attrs, *self.buffer_attrs)
        missing = [k for k in self.checkpoint_attrs if k not in section]
        if type(self).extra_state is not Agent.extra_state and EXTRA_KEY not in section:
            missing.append(EXTRA_KEY)
        if missing:
            raise ValueError(f"`state` lacks {', '.join(f'`{k}`' for k in missing)} (the {name} section)")
        unknown = sorted(set(section) - set(declared) - {EXTRA_KEY})
        if unknown:
            raise ValueError(f"`state` holds unknown {name} entries {', '.join(f'`{k}`' for k in unknown)}")
        for key in declared:
            if key in section:
                _check_saved(getattr(self, key), section[key], key)
        return frame, section

    def load_state_dict(self, state: dict) -> None:
        """Restores :meth:`state_dict` (formats 1 to 4). Checked first, naming the bad key; a state that still
        fails midway is rolled back, so a rejected call leaves the agent as it was. When the env cannot be
        restored (gymnasium's envs have no state), training continues on fresh episodes."""
        try:
            frame, section = self._check_state(state)
        except ValueError as exc:
            raise ValueError(f"{type(self).__name__}.load_state_dict: {first_line(exc)}") from None
        continue_episodes = "env" in frame and self.env.restorable
        if not continue_episodes:
            section = self.fresh_episodes(section)
        backup = copy.deepcopy(self.state_dict(include_buffer=True))
        progress = ["state"]
        try:
            self._restore(frame, section, continue_episodes, progress)
        except Exception as exc:
            self._restore(backup[FRAME_SECTION], backup[self.name], True, [])
            raise ValueError(f"{type(self).__name__}.load_state_dict: `{progress[-1]}` does not fit this agent "
                             f"(nothing was changed): {type(exc).__name__}: {first_line(exc)}") from exc
        self.after_load()

    def _restore(self, frame: dict, section: dict, continue_episodes: bool, progress: list[str]) -> None:
        """Writes checked sections into the agent; ``progress`` ends with the key being written."""
        dev = self.device
        if POPULATION_KEY in frame:  # first: the algorithm's state is that of the agents still training
            progress.append(POPULATION_KEY)
            self._load_population_state(frame[POPULATION_KEY])
        for key in (*self.checkpoint_attrs, *self.buffer_attrs):
            if key in section:
                progress.append(key)
                setattr(self, key, _restored(getattr(self, key), section[key]))
        if EXTRA_KEY in section:
            progress.append(EXTRA_KEY)
            self.load_extra_state(section[EXTRA_KEY])
        progress.append("env")
        adapter_state = {"prev_done": frame["env_prev_done"]}
        if continue_episodes:
            adapter_state["env"] = frame["env"]
        self.env.load_state_dict(adapter_state)
        progress.append("frame")
        self.env_steps = int(frame["env_steps"])
        self.updates = int(frame["updates"])
        if "generator" in frame:
            states = frame["generator"] if self.num_agents > 1 else frame["generator"].unsqueeze(0)
            for generator, generator_state in zip(self.generators, states):
                generator.set_state(generator_state.clone())
        self._episodes.finished = frame["finished"].to(dev).clone()
        self._episodes.episode_return = frame["episode_return"].to(dev).clone()
        self._episodes.episode_length = frame["episode_length"].to(dev).clone()
        self._env_watch = EnvDataWatch(dev)
        self._watch_from = self.env_steps
        if continue_episodes:
            self._obs = frame["obs"].to(dev).clone() if frame["obs"] is not None else None
        else:
            # The env cannot continue the saved episodes: start fresh ones.
            self._obs = None
            self._episodes.restart()

    def save(self, path: str | os.PathLike, include_buffer: bool = False) -> str:
        """Writes a checkpoint atomically with a checksum (a crash mid-write never leaves a truncated file, a
        later change to the file is caught on load). Returns the path."""
        return save_checked(self.state_dict(include_buffer), path, f"{type(self).__name__}.save `path`")

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None,
             env: gym.vector.VectorEnv | None = None) -> Agent:
        """Rebuild an agent from a checkpoint; training resumes exactly where it stopped. Called on
        ``Agent`` itself, the class comes from the checkpoint's algorithm tag."""
        state = read_checkpoint(path)
        algorithm = checkpoint_algorithm(state)
        klass = cls
        if not cls.name:
            from rltorch.agents import algorithm_class

            klass = algorithm_class(algorithm)
        elif algorithm != cls.name:
            raise ValueError(f"{os.fspath(path)!r} is a {algorithm!r} checkpoint, not {cls.name!r}")
        values = dict(state["config"])
        if device is not None:
            values["device"] = device
        try:
            config = klass.config_class.from_dict(values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{os.fspath(path)!r} holds an invalid config: {first_line(exc)}") from None
        agent = klass(config, env=env)
        try:
            agent.load_state_dict(state)
        except Exception:
            agent.close()
            raise
        return agent

    # ------------------------------------------------------------------ deployment

    def best_agent(self) -> int:
        """The population's best agent: solved ones first, then the best last evaluation, then the fewest env
        steps to solve, then the lowest index."""
        def key(k: int):
            o = self.outcomes[k]
            last = o["last_eval_return"] if o["last_eval_return"] is not None else -math.inf
            steps = o["steps_to_solve"] if o["steps_to_solve"] is not None else math.inf
            return (not o["solved"], -last, steps, k)

        return min(range(self.num_agents), key=key)

    def policy(self, agent: int | None = None) -> nn.Module:
        """A CPU copy of the deterministic policy in eval mode, independent of the agent (a population's
        agent ``agent``)."""
        return self.agent_policy(self._agent_index("policy", agent)).cpu().eval()

    def export(self, path: str | os.PathLike, format: str = "torchscript", agent: int | None = None) -> str:
        """Save the deterministic policy (a population's agent ``agent``) so it loads without rltorch:
        'torchscript' (torch.jit.load) or 'export' (torch.export.load; .pt2). Input: float32 [batch,
        *obs_shape]. Written atomically."""
        name = f"{type(self).__name__}.export"
        if format not in EXPORT_FORMATS:
            raise ValueError(f"{name}: `format` must be 'torchscript' or 'export', got {format!r}")
        return export_module(self.policy(agent), torch.zeros(2, *self.env.obs_shape), path, format, f"{name} `path`")

    def close(self) -> None:
        self.env.close()
