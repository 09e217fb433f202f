"""Behaviour cloning: a policy learned as a classifier of an expert's actions.

BC collects ``(observation, expert action)`` pairs by running the expert in
the vector env (rltorch's CartPole steps every env in one kernel call, the
expert acts on the whole batch at once), then trains a
:class:`~rltorch.classifiers.MulticlassClassifier` on them, one epoch per
``learn``, so the frame's cadence evaluates the greedy policy as it trains and
stops once it is solved. ``env_steps`` counts training samples consumed.
Optional DAgger rounds (Ross et al., 2011) let the learner act and the expert
relabel the states it visits, which repairs the states plain cloning never saw.

Example::

    from rltorch.agents import BC, BCConfig
    agent = BC(BCConfig(expert="linear", seed=0))   # or expert="runs/dqn-CartPole-v1-s0-..."
    result = agent.train()
    print(result.solved, agent.evaluate(100))
    agent.export("bc_policy.ts")
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn

from rltorch._checks import Range
from rltorch._io import first_line
from rltorch.agents.base import (
    CHECKPOINT_FILE,
    Agent,
    check_module_state,
    check_optimizer_state,
    eval_mode,
)
from rltorch.agents.config import RunConfig
from rltorch.classifiers import Classifier, MulticlassClassifier, collect_expert_pairs
from rltorch.classifiers.heads import Decision
from rltorch.config import HiddenSizes, LearningRate, NonNegativeInt, PositiveInt, Unit
from rltorch.envs.experts import LinearExpert

#: What the "linear" expert acts on: CartPole's 4 observations and 2 actions.
LINEAR_EXPERT_SPACES = ((4,), 2)
#: A fraction in [0, 1): dropout and label smoothing (1 would leave nothing to learn from).
_Fraction = Annotated[float, Range(0, 1, high_open=True)]


@dataclass(kw_only=True)
class BCConfig(RunConfig):
    """Behaviour cloning of an expert's actions. The defaults clone the linear CartPole expert in seconds."""

    num_envs: PositiveInt = 256
    """Environments stepped in parallel while the expert (or, in DAgger rounds, the learner) collects data."""
    total_steps: PositiveInt = 2_000_000
    """Upper bound on training samples consumed (epochs x dataset size)."""
    eval_interval: PositiveInt = 50_000
    """Training samples between greedy evaluations."""
    log_interval: PositiveInt = 50_000
    """Training samples between log rows."""

    expert: str = "linear"
    """'linear' (the tuned linear CartPole controller) or the run directory (or checkpoint file) of a trained agent."""
    num_samples: PositiveInt = 50_000
    """Expert (observation, action) pairs collected before training."""
    epsilon: Unit = 0.2
    """Probability that the env executes a random action while the expert collects (the label stays the expert's)."""
    dagger_rounds: NonNegativeInt = 0
    """DAgger rounds: the learner acts, the expert labels, the pairs join the dataset."""
    dagger_samples: PositiveInt = 20_000
    """Pairs added per DAgger round."""
    dagger_interval: PositiveInt = 3
    """Epochs between DAgger rounds."""

    hidden_sizes: HiddenSizes = (64, 64)
    """Widths of the policy MLP's hidden layers."""
    activation: Literal["relu", "tanh", "gelu", "silu", "elu", "leaky_relu"] = "relu"
    """Activation of the hidden layers."""
    dropout: _Fraction = 0.0
    """Dropout after each hidden layer."""
    learning_rate: LearningRate = 3e-3
    """Adam's learning rate."""
    weight_decay: Unit = 0.0
    """Adam's weight decay."""
    batch_size: PositiveInt = 256
    """Pairs per gradient step."""
    label_smoothing: _Fraction = 0.0
    """Cross-entropy label smoothing."""

    def check(self, values: dict[str, Any]) -> None:
        super().check(values)
        self.requirement(values["expert"] != "", "expert", "must be 'linear' or a run directory")


def expert_checkpoint(expert: str) -> str | None:
    """The checkpoint file ``expert`` names (None for ``"linear"``); ValueError naming ``expert`` when
    there is none."""
    if expert == "linear":
        return None
    path = os.path.join(expert, CHECKPOINT_FILE) if os.path.isdir(expert) else expert
    if not os.path.isfile(path):
        what = f"holds no {CHECKPOINT_FILE}" if os.path.isdir(expert) else "does not exist"
        raise ValueError(f"`expert` must be 'linear' or a trained agent's run directory or checkpoint; "
                         f"{expert!r} {what}")
    return path


def load_expert(expert: str, device: torch.device | str = "cpu", obs_shape: tuple[int, ...] | None = None,
                num_actions: int | None = None) -> nn.Module:
    """The expert policy named by ``expert``: ``"linear"`` (:class:`LinearExpert`, CartPole's) or a trained
    agent's run directory or checkpoint file (its deterministic policy). With ``obs_shape`` and
    ``num_actions``, an expert for other observations or actions is a ValueError naming ``expert``."""
    path = expert_checkpoint(expert)
    fits = obs_shape is None or num_actions is None
    if path is None:
        if not (fits or (tuple(obs_shape), num_actions) == LINEAR_EXPERT_SPACES):
            raise ValueError(f"`expert` 'linear' is CartPole's controller (observations {LINEAR_EXPERT_SPACES[0]}, "
                             f"{LINEAR_EXPERT_SPACES[1]} actions); this env has observations {tuple(obs_shape)} and "
                             f"{num_actions} actions")
        return LinearExpert().to(device).eval()
    try:
        agent = Agent.load(path, device="cpu")
    except (OSError, ValueError) as exc:
        raise ValueError(f"`expert` {expert!r} is not a trained agent: {first_line(exc)}") from None
    try:
        if not (fits or (agent.env.obs_shape == tuple(obs_shape) and agent.env.num_actions == num_actions)):
            raise ValueError(f"`expert` {expert!r} is a {agent.name} agent for {agent.config.env_id} (observations "
                             f"{agent.env.obs_shape}, actions {agent.env.action_space}); this env has observations "
                             f"{tuple(obs_shape)} and {num_actions} actions")
        return agent.policy().to(device).eval()
    finally:
        agent.close()


class PairDataset:
    """BC's (observation, expert action) pairs: the expert's, then each DAgger round's. A checkpoint holds
    them with ``include_buffer=True``; without them a resumed run collects the expert's pairs again."""

    def __init__(self, obs_dim: int, device: torch.device):
        self.obs = torch.zeros(0, obs_dim, device=device)
        self.actions = torch.zeros(0, dtype=torch.int64, device=device)

    def __len__(self) -> int:
        return len(self.obs)

    def add(self, obs: Tensor, actions: Tensor) -> None:
        self.obs = torch.cat([self.obs, obs.reshape(len(obs), -1)])
        self.actions = torch.cat([self.actions, actions])

    def state_dict(self) -> dict[str, Tensor]:
        return {"obs": self.obs, "actions": self.actions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        obs, actions = (state.get("obs"), state.get("actions")) if isinstance(state, dict) else (None, None)
        width = self.obs.shape[1]
        if not isinstance(obs, Tensor) or obs.dtype != torch.float32 or obs.dim() != 2 or obs.shape[1] != width:
            raise ValueError(f"`data.obs` must be a float32 tensor [pairs, {width}]")
        if not isinstance(actions, Tensor) or actions.dtype != torch.int64 or actions.shape != obs.shape[:1]:
            raise ValueError(f"`data.actions` must be an int64 tensor [{len(obs)}]")
        self.obs, self.actions = obs.to(self.obs.device).clone(), actions.to(self.actions.device).clone()


class BC(Agent):
    """Behaviour cloning on the agent frame (see the module docstring)."""

    name = "bc"
    config_class = BCConfig
    log_columns = ("samples", "epochs", "loss", "dagger_rounds")
    progress_columns = ("loss",)
    checkpoint_attrs = ("epochs", "dagger_done", "last_loss")
    buffer_attrs = ("data",)
    config: BCConfig

    def build(self) -> None:
        cfg = self.config
        if not self.env.discrete:
            raise ValueError(f"BC clones discrete actions; the env's action space is {self.env.action_space}")
        # Loaded now: a missing or unfit expert is a config error before any run directory exists.
        self.expert_policy = load_expert(cfg.expert, self.device, self.env.obs_shape, self.env.num_actions)
        self.classifier = MulticlassClassifier(**self._classifier_params()).build((math.prod(self.env.obs_shape),))
        self._policy = Decision(self.classifier.network_, "labels", True, 0.0, False)
        self.data = PairDataset(math.prod(self.env.obs_shape), self.device)
        self.epochs = 0
        self.dagger_done = 0
        self.last_loss = float("nan")

    # ------------------------------------------------------------------ data

    def expert(self) -> nn.Module:
        """The expert policy."""
        return self.expert_policy

    @property
    def data_obs(self) -> Tensor:
        return self.data.obs

    @property
    def data_actions(self) -> Tensor:
        return self.data.actions

    def _collect_pairs(self, num_samples: int, seed: int, behavior: nn.Module | None, epsilon: float
                       ) -> tuple[Tensor, Tensor]:
        obs, actions = collect_expert_pairs(self.expert_policy, num_samples, env=self.env.env, epsilon=epsilon,
                                            seed=seed, device=self.device, behavior=behavior)
        return obs.reshape(len(obs), -1), actions

    def collect(self) -> None:
        """The expert's pairs before the first epoch; a DAgger round every ``dagger_interval`` epochs."""
        cfg = self.config
        if not len(self.data):
            self.data.add(*self._collect_pairs(cfg.num_samples, cfg.seed, None, cfg.epsilon))
            return
        due = self.epochs >= (self.dagger_done + 1) * cfg.dagger_interval
        if self.dagger_done < cfg.dagger_rounds and due:
            policy = self.policy_module()
            with torch.no_grad(), eval_mode(policy):
                self.data.add(*self._collect_pairs(cfg.dagger_samples, cfg.seed + 1 + self.dagger_done, policy, 0.0))
            self.dagger_done += 1

    def update(self) -> None:
        """One epoch over the dataset; ``env_steps`` advances by the samples consumed."""
        cfg = self.config
        self.classifier.fit(self.data.obs, self.data.actions)  # one epoch, continuing (warm_start)
        self.last_loss = self.classifier.history_[-1]["loss"]
        self.epochs += 1
        self.updates += math.ceil(len(self.data) / cfg.batch_size)
        self.env_steps += len(self.data)

    # ------------------------------------------------------------------ policy and logs

    def policy_module(self) -> nn.Module:
        return self._policy

    def log_metrics(self) -> dict[str, float]:
        return {"samples": len(self.data), "epochs": self.epochs, "loss": self.last_loss,
                "dagger_rounds": self.dagger_done}

    def write_run_files(self, run_dir: str) -> list[str]:
        """``confusion_matrix.png``: the cloned policy's actions against the expert's on fresh expert
        pairs (a seed the training data did not use); nothing without matplotlib."""
        from rltorch.classifiers.plots import plot_confusion_matrix

        obs, actions = self._collect_pairs(10_000, self.config.seed + 100_003, None, self.config.epsilon)
        scores = self.classifier.evaluate(obs, actions)
        path = plot_confusion_matrix(scores["confusion_matrix"], os.path.join(run_dir, "confusion_matrix.png"),
                                     f"BC policy vs expert ({self.config.expert}) on fresh expert states: "
                                     f"agreement {scores['accuracy']:.4f}")
        return [] if path is None else [path]

    # ------------------------------------------------------------------ persistence

    def _classifier_params(self) -> dict[str, Any]:
        """The classifier the config describes: one epoch per ``fit``, each continuing the last (warm start),
        on the run's device, seed and threads."""
        cfg = self.config
        return dict(num_classes=self.env.num_actions, hidden_sizes=cfg.hidden_sizes, activation=cfg.activation,
                    dropout=cfg.dropout, label_smoothing=cfg.label_smoothing, epochs=1, batch_size=cfg.batch_size,
                    lr=cfg.learning_rate, weight_decay=cfg.weight_decay, warm_start=True, threads=cfg.threads,
                    device=self.device, seed=cfg.seed)

    def extra_state(self) -> dict[str, Any]:
        # The classifier's own checkpoint: architecture, weights, optimizer state and random stream.
        return self.classifier.state_dict()

    def load_extra_state(self, state: Any) -> None:
        legacy = isinstance(state, dict) and set(state) == {"classifier", "optimizer"}  # BC's format 1 and 2
        classifier_state = state["classifier"] if legacy else state
        if not isinstance(classifier_state, dict):
            raise ValueError("`extra` must hold the classifier's state dict")
        # The network of this config's architecture, exactly (loading would cast other dtypes silently), and
        # optimizer moments shaped like the live ones (a missing or recast slot would fail only at the next step).
        check_module_state(self.classifier.network_, classifier_state.get("network"), "extra.network")
        saved_optimizer = None if legacy else classifier_state.get("optimizer")
        if saved_optimizer is not None and self.classifier.optimizer_ is not None:
            check_optimizer_state(self.classifier.optimizer_, saved_optimizer, "extra.optimizer")
        classifier = Classifier.from_state_dict(classifier_state, self.device, source="`extra`")
        if saved_optimizer is not None and classifier.optimizer_ is not None:
            check_optimizer_state(classifier.optimizer_, saved_optimizer, "extra.optimizer")
        if not isinstance(classifier, MulticlassClassifier) or classifier.input_shape_ != self.classifier.input_shape_ \
                or list(classifier.classes_) != list(range(self.env.num_actions)):
            raise ValueError("`extra` holds a classifier that does not fit this env's observations and actions")
        classifier.set_params(**self._classifier_params())
        if legacy and state["optimizer"] is not None:
            cfg = self.config
            optimizer = classifier.make_optimizer("adam", cfg.learning_rate, cfg.weight_decay)
            check_optimizer_state(optimizer, state["optimizer"], "extra.optimizer")
            optimizer.load_state_dict(state["optimizer"])
        self.classifier = classifier
        self._policy = Decision(classifier.network_, "labels", True, 0.0, False)

    @classmethod
    def legacy_section(cls, flat: dict[str, Any]) -> dict[str, Any]:
        section = {k: flat[k] for k in cls.checkpoint_attrs if k in flat}
        section["extra"] = {"classifier": flat.get("classifier"), "optimizer": flat.get("optimizer")}
        if "data_obs" in flat or "data_actions" in flat:
            section["data"] = {"obs": flat.get("data_obs"), "actions": flat.get("data_actions")}
        return section
