"""DQN and its known improvements, on rltorch's fast ops.

Every trick is a switch in :class:`DQNConfig`: Double DQN, prioritized replay
(alpha, annealed beta), n-step returns, dueling heads, hard or soft target
updates, linear epsilon-greedy, Huber or MSE loss, gradient-norm clipping,
Adam, gradient updates per env step. Targets come from ``rltorch.ops.td_target``,
transitions live in ``rltorch.replay`` buffers, and rltorch's CartPole steps
thousands of envs per call. When env, buffer and network share a device the
training iteration never waits on the host: exploration, targets, sampling
and priority updates stay tensor ops; logging reads back only every
``log_interval`` steps.

Example::

    from rltorch.agents import DQN, DQNConfig
    agent = DQN(DQNConfig(env_id="CartPole-v1", seed=1))
    result = agent.train()            # stops once greedy evaluation reaches 475
    print(result.solved, result.wall_time_s, agent.evaluate(100))
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rltorch import ops
from rltorch.agents.envs import VectorEnvAdapter
from rltorch.agents.networks import GreedyPolicy, QNetwork

RLTORCH_ENV_IDS = ("CartPole-v1", "rltorch/CartPole-v1")
CHECKPOINT_FORMAT = 1


@dataclass
class DQNConfig:
    """Hyperparameters. The defaults solve CartPole-v1 in seconds on two CPU cores."""

    env_id: str = "CartPole-v1"
    """gymnasium id; CartPole-v1 runs on rltorch's vectorized CartPole unless env_backend says otherwise."""
    env_backend: str = "auto"
    """'rltorch', 'gymnasium', or 'auto' (rltorch for CartPole-v1, gymnasium for everything else)."""
    num_envs: int = 16
    device: str = "auto"
    """'cpu', 'cuda', 'cuda:1', or 'auto' (cuda when available)."""
    seed: int = 0
    total_steps: int = 300_000
    """Upper bound on env steps (summed over envs)."""

    hidden_sizes: tuple = (128, 128)
    dueling: bool = False

    learning_rate: float = 2.5e-3
    batch_size: int = 128
    gamma: float = 0.99
    loss: str = "huber"
    """'huber' (smooth L1) or 'mse'."""
    max_grad_norm: float | None = 10.0
    updates_per_step: float = 0.125
    """Gradient updates per env step (summed over envs)."""

    buffer_size: int = 50_000
    learning_starts: int = 1_000
    n_step: int = 1
    prioritized: bool = False
    alpha: float = 0.6
    beta_start: float = 0.4
    beta_end: float = 1.0
    priority_eps: float = 1e-6

    double_dqn: bool = True
    target_update: str = "soft"
    """'soft' (Polyak, every update) or 'hard' (copy every target_update_interval updates)."""
    tau: float = 0.02
    target_update_interval: int = 250

    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_steps: int = 6_000

    eval_interval: int = 5_000
    """Env steps between greedy evaluations."""
    eval_episodes: int = 100
    solve_threshold: float | None = None
    """Mean greedy return that counts as solved; None takes the env spec's reward_threshold (475 for CartPole-v1)."""
    stop_when_solved: bool = True
    log_interval: int = 2_000
    compile: bool = False
    """torch.compile the update step (pays compile time up front)."""

    def validate(self) -> "DQNConfig":
        def need(cond: bool, message: str) -> None:
            if not cond:
                raise ValueError(f"DQNConfig: {message}")

        need(self.env_backend in ("auto", "rltorch", "gymnasium"), f"env_backend must be auto|rltorch|gymnasium, got {self.env_backend!r}")
        need(self.num_envs >= 1, f"num_envs must be >= 1, got {self.num_envs}")
        need(self.total_steps >= 1, f"total_steps must be >= 1, got {self.total_steps}")
        need(0.0 <= self.gamma <= 1.0, f"gamma must lie in [0, 1], got {self.gamma}")
        need(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.loss in ("huber", "mse"), f"loss must be 'huber' or 'mse', got {self.loss!r}")
        need(self.max_grad_norm is None or self.max_grad_norm > 0, f"max_grad_norm must be > 0 or None, got {self.max_grad_norm}")
        need(self.updates_per_step > 0, f"updates_per_step must be > 0, got {self.updates_per_step}")
        need(self.buffer_size >= self.batch_size, f"buffer_size ({self.buffer_size}) must be >= batch_size ({self.batch_size})")
        need(self.learning_starts >= self.batch_size, f"learning_starts ({self.learning_starts}) must be >= batch_size ({self.batch_size})")
        need(self.n_step >= 1, f"n_step must be >= 1, got {self.n_step}")
        need(self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}")
        need(0 <= self.beta_start <= 1 and 0 <= self.beta_end <= 1, "beta_start and beta_end must lie in [0, 1]")
        need(self.target_update in ("soft", "hard"), f"target_update must be 'soft' or 'hard', got {self.target_update!r}")
        need(0 < self.tau <= 1, f"tau must lie in (0, 1], got {self.tau}")
        need(self.target_update_interval >= 1, "target_update_interval must be >= 1")
        need(0 <= self.eps_end <= self.eps_start <= 1, "need 0 <= eps_end <= eps_start <= 1")
        need(self.eps_decay_steps >= 1, "eps_decay_steps must be >= 1")
        need(self.eval_interval >= 1 and self.eval_episodes >= 1, "eval_interval and eval_episodes must be >= 1")
        need(len(self.hidden_sizes) >= 1 and all(int(h) >= 1 for h in self.hidden_sizes), "hidden_sizes must be positive")
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        return self

    @classmethod
    def from_dict(cls, values: dict) -> "DQNConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"DQNConfig: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values).validate()

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was requested but CUDA is not available (torch.cuda.is_available() is False)")
    return device


def make_env(config: DQNConfig, num_envs: int, seed_offset: int = 0, device: torch.device | None = None):
    """The vector env of ``config``: rltorch's CartPole or a gymnasium env."""
    device = device or resolve_device(config.device)
    backend = config.env_backend
    if backend == "auto":
        backend = "rltorch" if config.env_id in RLTORCH_ENV_IDS else "gymnasium"
    if backend == "rltorch":
        if config.env_id not in RLTORCH_ENV_IDS:
            raise ValueError(f"rltorch implements {', '.join(RLTORCH_ENV_IDS)}; use env_backend='gymnasium' for {config.env_id!r}")
        from rltorch.envs import CartPoleVecEnv

        return CartPoleVecEnv(num_envs, device=device, autoreset_mode="same_step")
    try:
        return gym.make_vec(config.env_id, num_envs=num_envs)
    except gym.error.Error as exc:
        raise ValueError(f"unknown or unusable env id {config.env_id!r}: {exc}") from exc


def solve_threshold(config: DQNConfig) -> float:
    if config.solve_threshold is not None:
        return float(config.solve_threshold)
    env_id = "CartPole-v1" if config.env_id in RLTORCH_ENV_IDS else config.env_id
    try:
        threshold = gym.spec(env_id).reward_threshold
    except gym.error.Error:
        threshold = None
    if threshold is None:
        return math.inf
    return float(threshold)


class DQN:
    """A DQN agent (see the module docstring); ``train``, ``evaluate``, ``act``, ``save``/``load``, ``export``."""

    def __init__(self, config: DQNConfig | None = None, env: gym.vector.VectorEnv | None = None):
        from rltorch.replay import PrioritizedReplayBuffer, ReplayBuffer

        self.config = (config or DQNConfig()).validate()
        cfg = self.config
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.env = VectorEnvAdapter(env if env is not None else make_env(cfg, cfg.num_envs, device=self.device), self.device)
        self.q = QNetwork(math.prod(self.env.obs_shape), self.env.num_actions, cfg.hidden_sizes, cfg.dueling).to(self.device)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=cfg.learning_rate, fused=fused)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        buffer_kwargs = dict(capacity=cfg.buffer_size, obs_shape=self.env.obs_shape, obs_dtype=torch.float32,
                             action_shape=(), action_dtype=torch.int64, device=self.device, seed=cfg.seed + 1,
                             n_step=cfg.n_step, gamma=cfg.gamma)
        if cfg.prioritized:
            # The priority check costs a host sync per update on CUDA; the agent's own TD errors
            # only go non-finite if training diverged, which the evaluation shows anyway.
            self.buffer = PrioritizedReplayBuffer(alpha=cfg.alpha, beta=cfg.beta_start, eps=cfg.priority_eps,
                                                  validate=self.device.type == "cpu", **buffer_kwargs)
        else:
            self.buffer = ReplayBuffer(**buffer_kwargs)
        self.threshold = solve_threshold(cfg)
        self.env_steps = 0
        self.updates = 0
        self._update_debt = 0.0
        self._obs: Tensor | None = None
        self._episode_return = torch.zeros(self.env.num_envs, device=self.device)
        self._episode_length = torch.zeros(self.env.num_envs, dtype=torch.long, device=self.device)
        self._finished = torch.zeros(3, dtype=torch.float64, device=self.device)  # count, return sum, length sum
        self._update_fn = self._update
        if cfg.compile:
            self._update_fn = torch.compile(self._update)

    # ------------------------------------------------------------------ acting

    def epsilon(self, step: int | None = None) -> float:
        cfg = self.config
        step = self.env_steps if step is None else step
        frac = min(1.0, step / cfg.eps_decay_steps)
        return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)

    @torch.no_grad()
    def act(self, obs, deterministic: bool = True) -> Tensor:
        """Actions for a batch of observations: greedy, or epsilon-greedy at the current epsilon."""
        obs_t = torch.as_tensor(obs, device=self.device, dtype=torch.float32)
        single = obs_t.dim() == len(self.env.obs_shape)
        if single:
            obs_t = obs_t.unsqueeze(0)
        greedy = self.q(obs_t).argmax(dim=1)
        if not deterministic:
            explore = torch.rand(greedy.shape, generator=self.generator, device=self.device) < self.epsilon()
            random_actions = torch.randint(0, self.env.num_actions, greedy.shape, generator=self.generator, device=self.device)
            greedy = torch.where(explore, random_actions, greedy)
        return greedy[0] if single else greedy

    # ------------------------------------------------------------------ learning

    def _update(self, batch) -> Tensor:
        cfg = self.config
        with torch.no_grad():
            next_q = self.target(batch.next_obs)
            online = self.q(batch.next_obs) if cfg.double_dqn else None
            target = ops.td_target(batch.reward, batch.terminated, next_q, batch.discount, next_q_online=online)
        q_taken = self.q(batch.obs).gather(1, batch.action.long().unsqueeze(1)).squeeze(1)
        td_error = q_taken - target
        if cfg.loss == "huber":
            elementwise = F.smooth_l1_loss(q_taken, target, reduction="none")
        else:
            elementwise = td_error.square()
        loss = (elementwise * batch.weight).mean() if cfg.prioritized else elementwise.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.q.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        return td_error.detach()

    def _update_target(self) -> None:
        cfg = self.config
        if cfg.target_update == "soft":
            with torch.no_grad():
                torch._foreach_lerp_(list(self.target.parameters()), list(self.q.parameters()), cfg.tau)
        elif self.updates % cfg.target_update_interval == 0:
            self.target.load_state_dict(self.q.state_dict())

    def learn(self, num_updates: int) -> None:
        cfg = self.config
        if cfg.prioritized:
            progress = min(1.0, self.env_steps / cfg.total_steps)
            self.buffer.beta = cfg.beta_start + progress * (cfg.beta_end - cfg.beta_start)
        for _ in range(num_updates):
            batch = self.buffer.sample(cfg.batch_size)
            td_error = self._update_fn(batch)
            if cfg.prioritized:
                self.buffer.update_priorities(batch.index, td_error)
            self.updates += 1
            self._update_target()

    def collect(self) -> None:
        """One vector step: act epsilon-greedily, store the transitions, count finished episodes."""
        if self._obs is None:
            self._obs = self.env.reset(seed=self.config.seed)
        obs = self._obs
        action = self.act(obs, deterministic=False)
        step = self.env.step(action)
        self._store(obs, action, step)
        done = step.terminated | step.truncated
        live = step.valid  # None: every row is a real step
        self._episode_return += step.reward if live is None else step.reward * live
        self._episode_length += 1 if live is None else live.long()
        finished = torch.stack([done.sum(), torch.where(done, self._episode_return, 0).sum(),
                                torch.where(done, self._episode_length, 0).sum()]).to(torch.float64)
        self._finished += finished
        self._episode_return.masked_fill_(done, 0.0)
        self._episode_length.masked_fill_(done, 0)
        self._obs = step.obs
        self.env_steps += self.env.num_envs

    def _store(self, obs: Tensor, action: Tensor, step) -> None:
        self.buffer.add_vector_step(obs, action, step.reward, step.next_obs, step.terminated, step.truncated,
                                    valid=step.valid)

    def train(self, progress: bool = False, callback: Callable[[dict], None] | None = None,
              stop_at: int | None = None) -> TrainResult:
        """Collect and learn until solved (greedy evaluation >= threshold) or ``total_steps``.

        ``stop_at`` pauses earlier (at that many env steps) without changing the
        schedules, which follow ``total_steps``: save, load and call ``train``
        again to continue exactly as if never interrupted.
        """
        cfg = self.config
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
        window_start, window_steps = time.perf_counter(), self.env_steps
        try:
            while self.env_steps < limit:
                self.collect()
                if len(self.buffer) >= cfg.learning_starts:
                    self._update_debt += self.env.num_envs * cfg.updates_per_step
                    owed = int(self._update_debt)
                    self._update_debt -= owed
                    self.learn(owed)
                if self.env_steps >= next_log or self.env_steps >= next_eval:
                    next_log = (self.env_steps // cfg.log_interval + 1) * cfg.log_interval
                    count, ret_sum, len_sum = self._finished.tolist()
                    self._finished.zero_()
                    now = time.perf_counter()
                    row = {
                        "env_steps": self.env_steps, "updates": self.updates, "wall_time_s": now - start,
                        "steps_per_s": (self.env_steps - window_steps) / max(now - window_start, 1e-9),
                        "episodes": int(count), "train_return": ret_sum / count if count else float("nan"),
                        "train_length": len_sum / count if count else float("nan"), "epsilon": self.epsilon(),
                        "eval_return": float("nan"),
                    }
                    window_start, window_steps = now, self.env_steps
                    if self.env_steps >= next_eval:
                        next_eval = (self.env_steps // cfg.eval_interval + 1) * cfg.eval_interval
                        last_eval = self.evaluate(cfg.eval_episodes)
                        row["eval_return"] = last_eval
                        row["wall_time_s"] = time.perf_counter() - start
                        if last_eval >= self.threshold and solved_at is None:
                            solved_at = (row["wall_time_s"], self.env_steps)
                    history.append(row)
                    if bar is not None:
                        bar.update(self.env_steps - bar.n)
                        bar.set_postfix(ret=f"{row['train_return']:.1f}", eval=f"{last_eval:.1f}" if last_eval is not None else "-",
                                        eps=f"{row['epsilon']:.2f}", sps=f"{row['steps_per_s']:.0f}")
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

    def evaluate(self, episodes: int = 100, seed: int | None = None) -> float:
        """Mean greedy return over ``episodes`` episodes, one per env of a fresh vector env."""
        return float(self.evaluate_returns(episodes, seed).mean())

    @torch.no_grad()
    def evaluate_returns(self, episodes: int = 100, seed: int | None = None) -> Tensor:
        """Greedy returns of ``episodes`` episodes (float64 tensor), one per env of a fresh vector env."""
        cfg = self.config
        seed = cfg.seed + 10_000 + self.env_steps if seed is None else seed
        env = VectorEnvAdapter(make_env(cfg, episodes, device=self.device), self.device)
        try:
            obs = env.reset(seed=seed)
            returns = torch.zeros(episodes, dtype=torch.float64, device=self.device)
            finished = torch.zeros(episodes, dtype=torch.bool, device=self.device)
            check_every = 16
            steps = 0
            while True:
                step = env.step(self.q(obs).argmax(dim=1))
                returns += step.reward.double() * ~finished
                finished |= step.terminated | step.truncated
                obs = step.obs
                steps += 1
                if steps % check_every == 0 and bool(finished.all()):
                    break
            return returns.cpu()
        finally:
            env.close()

    # ------------------------------------------------------------------ persistence

    def state_dict(self, include_buffer: bool = False) -> dict:
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "q": self.q.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "env_steps": self.env_steps,
            "updates": self.updates,
            "update_debt": self._update_debt,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "obs": self._obs,
            "episode_return": self._episode_return,
            "episode_length": self._episode_length,
            "finished": self._finished,
            "env_prev_done": self.env._prev_done,
        }
        env = self.env.env
        if hasattr(env, "state_dict"):
            state["env"] = env.state_dict()
        if include_buffer:
            state["buffer"] = self.buffer.state_dict()
        return state

    def save(self, path: str | os.PathLike, include_buffer: bool = False) -> None:
        """Write a checkpoint atomically (a crash mid-write never leaves a truncated file behind)."""
        tmp = f"{os.fspath(path)}.tmp"
        torch.save(self.state_dict(include_buffer), tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None, env: gym.vector.VectorEnv | None = None) -> "DQN":
        """Rebuild an agent from a checkpoint; training resumes exactly where it stopped."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no checkpoint at {path!r}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # truncated or not a torch file
            raise ValueError(f"{path!r} is not a readable rltorch checkpoint: {type(exc).__name__}: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "config" not in state:
            raise ValueError(f"{path!r} is not an rltorch DQN checkpoint (format {CHECKPOINT_FORMAT})")
        config = DQNConfig.from_dict(state["config"])
        if device is not None:
            config.device = device
        agent = cls(config, env=env)
        agent.load_state_dict(state)
        return agent

    def load_state_dict(self, state: dict) -> None:
        dev = self.device
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.env_steps = int(state["env_steps"])
        self.updates = int(state["updates"])
        self._update_debt = float(state["update_debt"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self._obs = state["obs"].to(dev) if state["obs"] is not None else None
        self._episode_return = state["episode_return"].to(dev)
        self._episode_length = state["episode_length"].to(dev)
        self._finished = state["finished"].to(dev)
        self.env._prev_done = state["env_prev_done"].to(dev)
        if "env" in state and hasattr(self.env.env, "load_state_dict"):
            self.env.env.load_state_dict(state["env"])
            self.env.native_torch = True
        elif self._obs is not None:
            # An env without state_dict (gymnasium's) cannot continue its episodes: start fresh ones.
            self._obs = None
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])

    # ------------------------------------------------------------------ deployment

    def policy(self) -> GreedyPolicy:
        return GreedyPolicy(copy.deepcopy(self.q).cpu().eval())

    def export(self, path: str | os.PathLike, format: str = "torchscript") -> str:
        """Save the greedy policy so it loads without rltorch: 'torchscript' (torch.jit.load)
        or 'export' (torch.export.load; .pt2)."""
        policy = self.policy()
        example = torch.zeros(1, *self.env.obs_shape)
        path = os.fspath(path)
        if format == "torchscript":
            import warnings

            with warnings.catch_warnings():  # torch >= 2.10 flags TorchScript as deprecated; users still ask for it
                warnings.simplefilter("ignore", FutureWarning)
                torch.jit.save(torch.jit.trace(policy, example), path)
        elif format == "export":
            batch = torch.export.Dim("batch", min=1)
            program = torch.export.export(policy, (torch.zeros(2, *self.env.obs_shape),), dynamic_shapes=({0: batch},))
            torch.export.save(program, path)
        else:
            raise ValueError(f"export format must be 'torchscript' or 'export', got {format!r}")
        return path

    def close(self) -> None:
        self.env.close()
