"""The frame every rltorch agent shares; each algorithm file keeps only its update.

:class:`Agent` owns what is not the algorithm: the vector env and device,
seeding, the training loop (log and evaluation cadence, stop when solved,
progress bar, callback, :class:`TrainResult`), greedy evaluation on a fresh
vector env, atomic checkpoints tagged with the algorithm and a format version
(read with ``torch.load(weights_only=True)``: a checkpoint never runs code),
and export of the deterministic policy (TorchScript and ``torch.export``).

An algorithm subclasses :class:`Agent`, sets ``name`` and ``config_class``
(a :class:`RunConfig` subclass) and fills in the hooks:

- ``collect()``: gather experience and advance ``self.env_steps`` (DQN: one
  vector step into the replay buffer; PPO: a rollout of ``num_steps`` vector
  steps; an offline learner may collect nothing);
- ``learn()``: update on what was collected (DQN: the gradient steps owed;
  PPO: the minibatch epochs; an offline learner: one pass, advancing
  ``env_steps`` by the samples it consumed). ``train`` calls ``collect`` then
  ``learn`` until ``total_steps``, logging every ``log_interval`` and
  evaluating every ``eval_interval`` env steps;
- ``policy_module()``: the live ``nn.Module`` from a batch of observations to
  deterministic actions (used by ``evaluate``, ``act`` and ``export``);
- ``explore(obs)``: the actions the agent takes while collecting (``act(obs,
  deterministic=False)``);
- ``log_metrics()`` and ``log_columns``: the algorithm's own metric columns;
- ``algorithm_state(include_buffer)`` / ``load_algorithm_state(state,
  continue_episodes)``: its tensors in checkpoints (plain types only).

Online algorithms use the helpers :meth:`Agent.current_obs` (resets the env on
first use) and :meth:`Agent.record_episodes` (training-episode returns for
the log).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import pickle
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import gymnasium as gym
import torch
from torch import Tensor, nn

from rltorch._checks import resolve_device
from rltorch._threads import agent_threads, torch_threads
from rltorch.agents.config import RunConfig
from rltorch.ops.device_errors import check_device_errors
from rltorch.envs.vector import Step, VectorEnvAdapter, make_env, max_episode_return, solve_threshold

#: Version of the checkpoint layout. 1: DQN-only files (no ``algorithm`` key); 2: tagged with the algorithm.
CHECKPOINT_FORMAT = 2
READABLE_FORMATS = (1, 2)
EXPORT_FORMATS = ("torchscript", "export")

#: The frame's own checkpoint entries; an algorithm's ``algorithm_state`` may not reuse these names.
_FRAME_KEYS = ("format", "algorithm", "config", "env_steps", "updates", "torch_rng", "obs", "episode_return",
               "episode_length", "finished", "env_prev_done", "env")


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


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The dict in an rltorch checkpoint, loaded with ``weights_only=True``; ValueError (one line) otherwise."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint path {path!r} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise ValueError(f"{path!r} is not an rltorch checkpoint: it holds Python objects other than tensors and "
                             f"plain values, and rltorch never runs code from a file") from None
        raise ValueError(f"{path!r} is not a readable rltorch checkpoint: not a torch file, or damaged") from None
    except Exception as exc:  # truncated, or not a torch file at all
        raise ValueError(f"{path!r} is not a readable rltorch checkpoint: {type(exc).__name__}: {_first_line(exc)}") from None
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS or not isinstance(state.get("config"), dict):
        raise ValueError(f"{path!r} is not an rltorch agent checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def checkpoint_algorithm(state: dict) -> str:
    """The algorithm a checkpoint dict was written by (format 1 files are DQN's)."""
    return str(state.get("algorithm", "dqn"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def check_module_state(module: nn.Module, state: Any, name: str) -> None:
    """Raises ValueError unless ``state`` has exactly ``module``'s state_dict keys, shapes and dtypes."""
    if not isinstance(state, dict):
        raise ValueError(f"`{name}` must be a state dict, got {type(state).__name__}")
    own = module.state_dict()
    if set(state) != set(own):
        raise ValueError(f"`{name}` has keys {sorted(state)}, the network has {sorted(own)}")
    for key, tensor in own.items():
        value = state[key]
        if not isinstance(value, Tensor) or value.shape != tensor.shape or value.dtype != tensor.dtype:
            raise ValueError(f"`{name}.{key}` must be a {tensor.dtype} tensor of shape {list(tensor.shape)}, "
                             f"got {getattr(value, 'dtype', type(value).__name__)} {list(getattr(value, 'shape', []))}")


class EpisodeStats:
    """Returns and lengths of the training episodes, summed on the device; read back once per log row."""

    def __init__(self, num_envs: int, device: torch.device):
        self.episode_return = torch.zeros(num_envs, device=device)
        self.episode_length = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.finished = torch.zeros(3, dtype=torch.float64, device=device)  # count, return sum, length sum

    def record(self, step: Step) -> None:
        done = step.terminated | step.truncated
        live = step.valid  # None: every row is a real step
        self.episode_return += step.reward if live is None else step.reward * live
        self.episode_length += 1 if live is None else live.long()
        finished = torch.stack([done.sum(), torch.where(done, self.episode_return, 0).sum(),
                                torch.where(done, self.episode_length, 0).sum()]).to(torch.float64)
        self.finished += finished
        self.episode_return.masked_fill_(done, 0.0)
        self.episode_length.masked_fill_(done, 0)

    def read(self) -> dict[str, float]:
        """Episodes finished since the last read, with their mean return and length (NaN when none)."""
        count, ret_sum, len_sum = self.finished.tolist()
        self.finished.zero_()
        return {"episodes": int(count), "train_return": ret_sum / count if count else float("nan"),
                "train_length": len_sum / count if count else float("nan")}

    def restart(self) -> None:
        """The env started fresh episodes: what the interrupted ones had collected no longer counts."""
        self.episode_return.zero_()
        self.episode_length.zero_()


class Agent:
    """The shared frame (see the module docstring). Subclasses set ``name`` and ``config_class``."""

    #: Registry key, run-directory prefix and the checkpoint's ``algorithm`` tag.
    name: ClassVar[str] = ""
    #: The RunConfig subclass this algorithm reads.
    config_class: ClassVar[type[RunConfig]] = RunConfig
    #: The algorithm's log columns: between the frame's (env_steps, updates, wall_time_s, steps_per_s)
    #: and eval_return. ``log_metrics`` returns these keys.
    log_columns: ClassVar[tuple[str, ...]] = ("episodes", "train_return", "train_length")
    #: Log columns also shown on the progress bar.
    progress_columns: ClassVar[tuple[str, ...]] = ("train_return",)

    def __init__(self, config: RunConfig | None = None, env: gym.vector.VectorEnv | None = None):
        if config is None:
            config = self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__}: `config` must be a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config.validate()
        cfg = self.config
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        if env is None:
            env = make_env(cfg.env_id, cfg.num_envs, backend=cfg.env_backend, device=self.device)
        elif not hasattr(env, "single_observation_space") or not hasattr(env, "num_envs"):
            raise ValueError(f"{type(self).__name__}: `env` must be a gymnasium VectorEnv, got {type(env).__name__}")
        self.env = VectorEnvAdapter(env, self.device)
        self.threshold = solve_threshold(cfg.env_id, cfg.solve_threshold)
        self.env_steps = 0
        self.updates = 0
        self._obs: Tensor | None = None
        self._episodes = EpisodeStats(self.env.num_envs, self.device)

    # ------------------------------------------------------------------ hooks

    def collect(self) -> None:
        """Gather experience; advances ``self.env_steps``."""
        raise NotImplementedError

    def learn(self) -> None:
        """Update on what ``collect`` gathered."""
        raise NotImplementedError

    def policy_module(self) -> nn.Module:
        """The live module mapping a batch of observations to deterministic actions."""
        raise NotImplementedError

    def explore(self, obs: Tensor) -> Tensor:
        """Actions for a (validated) batch of observations while collecting; default: deterministic."""
        return self.policy_module()(obs)

    def log_metrics(self) -> dict[str, float]:
        """Values of ``log_columns`` for one log row (may read back from the device)."""
        return self._episodes.read()

    def algorithm_state(self, include_buffer: bool) -> dict[str, Any]:
        """The algorithm's own checkpoint entries (tensors, dicts, lists, numbers, strings, None)."""
        raise NotImplementedError

    def load_algorithm_state(self, state: dict[str, Any], continue_episodes: bool) -> None:
        """Restores ``algorithm_state``'s entries from ``state``. ``continue_episodes`` is False when the env
        could not be restored and starts fresh episodes (drop anything that links to the old ones)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers for online algorithms

    def current_obs(self) -> Tensor:
        """The observation to act on; the first call resets the env with the run's seed."""
        if self._obs is None:
            self._obs = self.env.reset(seed=self.config.seed)
        return self._obs

    def record_episodes(self, step: Step) -> None:
        """Counts the step's rewards into the training-episode statistics of the log."""
        self._episodes.record(step)

    # ------------------------------------------------------------------ acting

    def _check_obs(self, obs) -> tuple[Tensor, bool]:
        try:
            obs_t = torch.as_tensor(obs, device=self.device, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{type(self).__name__}.act: `obs` must be a numeric array or tensor, got "
                             f"{type(obs).__name__} ({_first_line(exc)})") from None
        shape = self.env.obs_shape
        single = obs_t.dim() == len(shape)
        if tuple(obs_t.shape[-len(shape):] if shape else ()) != shape or obs_t.dim() not in (len(shape), len(shape) + 1):
            raise ValueError(f"{type(self).__name__}.act: `obs` must have shape [batch, {', '.join(map(str, shape))}] "
                             f"or [{', '.join(map(str, shape))}], got {list(obs_t.shape)}")
        return (obs_t.unsqueeze(0) if single else obs_t), single

    @torch.no_grad()
    def act(self, obs, deterministic: bool = True) -> Tensor:
        """Actions for one observation or a batch (an empty batch gives no actions): the deterministic policy,
        or the exploring one (``deterministic=False``)."""
        obs_t, single = self._check_obs(obs)
        if deterministic:
            policy = self.policy_module()
            with eval_mode(policy):
                actions = policy(obs_t)
        else:
            actions = self.explore(obs_t)
        return actions[0] if single else actions

    # ------------------------------------------------------------------ training

    def _metric_row(self, start: float, window: tuple[float, int]) -> dict:
        if self.device.type == "cuda":
            # CUDA kernels record bad input (a bad action, a skipped NaN TD error) on
            # the device instead of raising; a log row syncs anyway, so surface it here.
            check_device_errors(self.device)
        now = time.perf_counter()
        return {"env_steps": self.env_steps, "updates": self.updates, "wall_time_s": now - start,
                "steps_per_s": (self.env_steps - window[1]) / max(now - window[0], 1e-9),
                **self.log_metrics(), "eval_return": float("nan")}

    @classmethod
    def metric_columns(cls) -> list[str]:
        """Every column of a log row, in order (metrics.csv's header)."""
        return ["env_steps", "updates", "wall_time_s", "steps_per_s", *cls.log_columns, "eval_return"]

    @_on_run_threads
    def train(self, progress: bool = False, callback: Callable[[dict], None] | None = None,
              stop_at: int | None = None) -> TrainResult:
        """Collect and learn until solved (greedy evaluation >= threshold) or ``total_steps``.

        ``stop_at`` pauses earlier (at that many env steps) without changing the
        schedules, which follow ``total_steps``: save, load and call ``train``
        again to continue exactly as if never interrupted.
        """
        cfg = self.config
        if stop_at is not None and (isinstance(stop_at, bool) or not isinstance(stop_at, int) or stop_at < 0):
            raise ValueError(f"{type(self).__name__}.train: `stop_at` must be an integer >= 0 or None, got {stop_at!r}")
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
        solved_at: tuple[float, int] | None = None
        last_eval = None
        window = (time.perf_counter(), self.env_steps)
        try:
            while self.env_steps < limit:
                before = self.env_steps
                self.collect()
                self.learn()
                if self.env_steps <= before:
                    raise RuntimeError(f"{type(self).__name__}: collect() and learn() must advance env_steps")
                if self.env_steps >= next_log or self.env_steps >= next_eval:
                    next_log = (self.env_steps // cfg.log_interval + 1) * cfg.log_interval
                    row = self._metric_row(start, window)
                    window = (time.perf_counter(), self.env_steps)
                    if self.env_steps >= next_eval:
                        next_eval = (self.env_steps // cfg.eval_interval + 1) * cfg.eval_interval
                        last_eval = self.evaluate(cfg.eval_episodes,
                                                  stop_below=self.threshold if cfg.eval_stop_early else None)
                        row["eval_return"] = last_eval
                        row["wall_time_s"] = time.perf_counter() - start
                        if last_eval >= self.threshold and solved_at is None:
                            solved_at = (row["wall_time_s"], self.env_steps)
                    history.append(row)
                    if bar is not None:
                        bar.update(self.env_steps - bar.n)
                        postfix = {name: f"{row[name]:.3g}" for name in self.progress_columns}
                        bar.set_postfix(**postfix, eval=f"{last_eval:.1f}" if last_eval is not None else "-",
                                        sps=f"{row['steps_per_s']:.0f}")
                    if callback is not None:
                        callback(row)
                    if solved_at is not None and cfg.stop_when_solved:
                        break
        finally:
            if bar is not None:
                bar.close()
        return TrainResult(
            solved=solved_at is not None, env_steps=self.env_steps, updates=self.updates,
            wall_time_s=time.perf_counter() - start,
            time_to_solve_s=solved_at[0] if solved_at else None, steps_to_solve=solved_at[1] if solved_at else None,
            last_eval_return=last_eval, history=history,
        )

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, episodes: int = 100, seed: int | None = None, stop_below: float | None = None) -> float:
        """Mean deterministic-policy return over ``episodes`` episodes, one per env of a fresh vector env
        (``stop_below``: see :meth:`evaluate_returns`)."""
        return float(self.evaluate_returns(episodes, seed, stop_below).mean())

    @_on_run_threads
    @torch.no_grad()
    def evaluate_returns(self, episodes: int = 100, seed: int | None = None,
                         stop_below: float | None = None) -> Tensor:
        """Deterministic-policy returns of ``episodes`` episodes (float64 CPU tensor), one per env of a fresh
        vector env; ``seed`` defaults to one derived from the run's seed and progress.

        With ``stop_below``, on an env that bounds an episode's return (rltorch's CartPole: 500), the
        evaluation stops as soon as the mean can no longer reach ``stop_below``; the returns of unfinished
        episodes are then partial, so their mean is a lower bound, and below ``stop_below``."""
        name = f"{type(self).__name__}.evaluate"
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"{name}: `episodes` must be an integer >= 1, got {episodes!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
            raise ValueError(f"{name}: `seed` must be an integer in [0, 2**63) or None, got {seed!r}")
        cfg = self.config
        seed = cfg.seed + 10_000 + self.env_steps if seed is None else seed
        env = VectorEnvAdapter(make_env(cfg.env_id, episodes, backend=cfg.env_backend, device=self.device), self.device)
        best = max_episode_return(env.env) if stop_below is not None else None
        policy = self.policy_module()
        try:
            with eval_mode(policy):
                obs = env.reset(seed=seed)
                returns = torch.zeros(episodes, dtype=torch.float64, device=self.device)
                finished = torch.zeros(episodes, dtype=torch.bool, device=self.device)
                check_every = 16  # one host read per 16 steps
                steps = 0
                while True:
                    step = env.step(policy(obs))
                    returns += step.reward.double() * ~finished
                    finished |= step.terminated | step.truncated
                    obs = step.obs
                    steps += 1
                    if steps % check_every == 0:
                        if best is None:
                            if bool(finished.all()):
                                break
                            continue
                        # Finished episodes fell short of the best return by this much in all: past
                        # episodes * (best - stop_below), no ending of the others reaches stop_below.
                        shortfall = torch.where(finished, best - returns, 0.0).sum()
                        all_finished, short = torch.stack([finished.all().double(), shortfall]).tolist()
                        if all_finished or short > episodes * (best - stop_below):
                            break
            return returns.cpu()
        finally:
            env.close()

    # ------------------------------------------------------------------ persistence

    def state_dict(self, include_buffer: bool = False) -> dict:
        """Everything needed to continue training exactly (the replay buffer only with ``include_buffer``)."""
        adapter = self.env.state_dict()
        state = {
            "format": CHECKPOINT_FORMAT,
            "algorithm": self.name,
            "config": self.config.to_dict(),
            "env_steps": self.env_steps,
            "updates": self.updates,
            "torch_rng": torch.get_rng_state(),
            "obs": self._obs,
            "episode_return": self._episodes.episode_return,
            "episode_length": self._episodes.episode_length,
            "finished": self._episodes.finished,
            "env_prev_done": adapter["prev_done"],
        }
        if "env" in adapter:
            state["env"] = adapter["env"]
        own = self.algorithm_state(include_buffer)
        clash = sorted(set(own) & set(_FRAME_KEYS))
        if clash:
            raise RuntimeError(f"{type(self).__name__}.algorithm_state reuses the frame's keys {clash}")
        state.update(own)
        return state

    def _check_state(self, state) -> None:
        name = type(self).__name__
        if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
            raise ValueError(f"{name}.load_state_dict: `state` is not an rltorch agent checkpoint "
                             f"(format {CHECKPOINT_FORMAT})")
        if checkpoint_algorithm(state) != self.name:
            raise ValueError(f"{name}.load_state_dict: `state` is a {checkpoint_algorithm(state)!r} checkpoint, "
                             f"not {self.name!r}")
        missing = [k for k in ("env_steps", "updates", "torch_rng", "obs", "episode_return", "episode_length",
                               "finished", "env_prev_done") if k not in state]
        if missing:
            raise ValueError(f"{name}.load_state_dict: `state` lacks {', '.join(missing)}")
        for key in ("env_steps", "updates"):
            value = state[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}.load_state_dict: `{key}` must be an integer >= 0, got {value!r}")
        for key, like in (("episode_return", self._episodes.episode_return),
                          ("episode_length", self._episodes.episode_length),
                          ("finished", self._episodes.finished), ("torch_rng", torch.get_rng_state())):
            value = state[key]
            if not isinstance(value, Tensor) or value.shape != like.shape or value.dtype != like.dtype:
                raise ValueError(f"{name}.load_state_dict: `{key}` must be a {like.dtype} tensor of shape "
                                 f"{list(like.shape)}, got {value!r}"[:300])
        obs = state["obs"]
        if obs is not None and (not isinstance(obs, Tensor) or tuple(obs.shape) != (self.env.num_envs, *self.env.obs_shape)):
            raise ValueError(f"{name}.load_state_dict: `obs` must be None or a tensor of shape "
                             f"{[self.env.num_envs, *self.env.obs_shape]}")

    def load_state_dict(self, state: dict) -> None:
        """Restores :meth:`state_dict`. Validated first; a state that still fails midway is rolled back, so a
        rejected call leaves the agent as it was. When the env cannot be restored (gymnasium's envs have no
        state), training continues on fresh episodes."""
        self._check_state(state)
        continue_episodes = "env" in state and self.env.restorable
        backup = copy.deepcopy(self.state_dict(include_buffer=True))
        try:
            self._restore(state, continue_episodes)
        except Exception as exc:
            self._restore(backup, continue_episodes=True)
            raise ValueError(f"{type(self).__name__}.load_state_dict: `state` does not fit this agent "
                             f"(nothing was changed): {type(exc).__name__}: {_first_line(exc)}") from exc

    def _restore(self, state: dict, continue_episodes: bool) -> None:
        dev = self.device
        adapter_state = {"prev_done": state["env_prev_done"]}
        if continue_episodes and "env" in state:
            adapter_state["env"] = state["env"]
        self.load_algorithm_state(state, continue_episodes)
        self.env.load_state_dict(adapter_state)
        self.env_steps = int(state["env_steps"])
        self.updates = int(state["updates"])
        torch.set_rng_state(state["torch_rng"])
        self._episodes.finished = state["finished"].to(dev).clone()
        self._episodes.episode_return = state["episode_return"].to(dev).clone()
        self._episodes.episode_length = state["episode_length"].to(dev).clone()
        if continue_episodes:
            self._obs = state["obs"].to(dev).clone() if state["obs"] is not None else None
        else:
            # The env cannot continue the saved episodes: start fresh ones.
            self._obs = None
            self._episodes.restart()

    def save(self, path: str | os.PathLike, include_buffer: bool = False) -> None:
        """Write a checkpoint atomically (a crash mid-write never leaves a truncated file behind)."""
        path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise ValueError(f"{type(self).__name__}.save: `path` {path!r} is not in an existing directory")
        tmp = f"{path}.tmp"
        try:
            torch.save(self.state_dict(include_buffer), tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None,
             env: gym.vector.VectorEnv | None = None) -> "Agent":
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
            raise ValueError(f"{os.fspath(path)!r} holds an invalid config: {_first_line(exc)}") from None
        agent = klass(config, env=env)
        try:
            agent.load_state_dict(state)
        except Exception:
            agent.close()
            raise
        return agent

    # ------------------------------------------------------------------ deployment

    def policy(self) -> nn.Module:
        """A CPU copy of the deterministic policy in eval mode, independent of the agent."""
        return copy.deepcopy(self.policy_module()).cpu().eval()

    def export(self, path: str | os.PathLike, format: str = "torchscript") -> str:
        """Save the deterministic policy so it loads without rltorch: 'torchscript' (torch.jit.load)
        or 'export' (torch.export.load; .pt2). Input: float32 [batch, *obs_shape]."""
        name = f"{type(self).__name__}.export"
        if format not in EXPORT_FORMATS:
            raise ValueError(f"{name}: `format` must be 'torchscript' or 'export', got {format!r}")
        path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent) or os.path.isdir(path):
            raise ValueError(f"{name}: `path` {path!r} must name a file in an existing directory")
        policy = self.policy()
        tmp = f"{path}.tmp"
        try:
            if format == "torchscript":
                with warnings.catch_warnings():  # torch >= 2.10 flags TorchScript as deprecated; users still ask for it
                    warnings.simplefilter("ignore", FutureWarning)
                    torch.jit.save(torch.jit.trace(policy, torch.zeros(1, *self.env.obs_shape)), tmp)
            else:
                batch = torch.export.Dim("batch", min=1)
                program = torch.export.export(policy, (torch.zeros(2, *self.env.obs_shape),), dynamic_shapes=({0: batch},))
                torch.export.save(program, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    def close(self) -> None:
        self.env.close()
