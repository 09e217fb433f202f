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
from typing import Any, Literal

import gymnasium as gym
import torch
from torch import Tensor, nn

from rltorch.agents.base import Agent, eval_mode
from rltorch.agents.config import RunConfig
from rltorch.classifiers.env_data import LinearExpert, collect_expert_pairs
from rltorch.classifiers.models import Classifier, Decision, MulticlassClassifier


@dataclass(kw_only=True)
class BCConfig(RunConfig):
    """Behaviour cloning of an expert's actions. The defaults clone the linear CartPole expert in seconds."""

    num_envs: int = 256
    """Environments stepped in parallel while the expert (or, in DAgger rounds, the learner) collects data."""
    total_steps: int = 2_000_000
    """Upper bound on training samples consumed (epochs x dataset size)."""
    eval_interval: int = 50_000
    """Training samples between greedy evaluations."""
    log_interval: int = 50_000
    """Training samples between log rows."""

    expert: str = "linear"
    """'linear' (the tuned linear CartPole controller) or the run directory (or checkpoint file) of a trained agent."""
    num_samples: int = 50_000
    """Expert (observation, action) pairs collected before training."""
    epsilon: float = 0.2
    """Probability that the env executes a random action while the expert collects (the label stays the expert's)."""
    dagger_rounds: int = 0
    """DAgger rounds: the learner acts, the expert labels, the pairs join the dataset."""
    dagger_samples: int = 20_000
    """Pairs added per DAgger round."""
    dagger_interval: int = 3
    """Epochs between DAgger rounds."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Widths of the policy MLP's hidden layers."""
    activation: Literal["relu", "tanh", "gelu", "silu", "elu", "leaky_relu"] = "relu"
    """Activation of the hidden layers."""
    dropout: float = 0.0
    """Dropout after each hidden layer."""
    learning_rate: float = 3e-3
    """Adam's learning rate."""
    weight_decay: float = 0.0
    """Adam's weight decay."""
    batch_size: int = 256
    """Pairs per gradient step."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing."""

    def check(self, values: dict[str, Any]) -> None:
        super().check(values)
        need = self.requirement
        need(values["expert"] != "", "expert", "must be 'linear' or a run directory")
        for name in ("num_samples", "dagger_samples", "dagger_interval", "batch_size"):
            need(values[name] >= 1, name, f"must be >= 1, got {values[name]}")
        need(values["dagger_rounds"] >= 0, "dagger_rounds", f"must be >= 0, got {values['dagger_rounds']}")
        need(0 <= values["epsilon"] <= 1, "epsilon", f"must lie in [0, 1], got {values['epsilon']}")
        need(0 <= values["dropout"] < 1, "dropout", f"must lie in [0, 1), got {values['dropout']}")
        need(values["learning_rate"] > 0, "learning_rate", f"must be > 0, got {values['learning_rate']}")
        need(values["weight_decay"] >= 0, "weight_decay", f"must be >= 0, got {values['weight_decay']}")
        need(0 <= values["label_smoothing"] < 1, "label_smoothing",
             f"must lie in [0, 1), got {values['label_smoothing']}")
        need(len(values["hidden_sizes"]) >= 1 and all(h >= 1 for h in values["hidden_sizes"]), "hidden_sizes",
             f"must be one or more integers >= 1, got {list(values['hidden_sizes'])}")


def expert_checkpoint(expert: str) -> str | None:
    """The checkpoint file ``expert`` names (None for ``"linear"``); ValueError naming ``expert`` when
    there is none."""
    if expert == "linear":
        return None
    from rltorch import runs

    path = os.path.join(expert, runs.CHECKPOINT_FILE) if os.path.isdir(expert) else expert
    if not os.path.isfile(path):
        what = f"holds no {runs.CHECKPOINT_FILE}" if os.path.isdir(expert) else "does not exist"
        raise ValueError(f"`expert` must be 'linear' or a trained agent's run directory or checkpoint; "
                         f"{expert!r} {what}")
    return path


def load_expert(expert: str, device: torch.device | str = "cpu") -> nn.Module:
    """The expert policy named by ``expert``: ``"linear"`` (:class:`LinearExpert`) or a trained
    agent's run directory or checkpoint file (its deterministic policy)."""
    path = expert_checkpoint(expert)
    if path is None:
        return LinearExpert().to(device).eval()
    agent = Agent.load(path, device="cpu")
    try:
        return agent.policy().to(device).eval()
    finally:
        agent.close()


class BC(Agent):
    """Behaviour cloning on the agent frame (see the module docstring)."""

    name = "bc"
    config_class = BCConfig
    log_columns = ("samples", "epochs", "loss", "dagger_rounds")
    progress_columns = ("loss",)
    config: BCConfig

    def __init__(self, config: BCConfig | None = None, env: gym.vector.VectorEnv | None = None):
        super().__init__(config, env)
        cfg = self.config
        if not self.env.discrete:
            raise ValueError(f"BC clones discrete actions; the env's action space is {self.env.action_space}")
        expert_checkpoint(cfg.expert)  # a missing expert is a config error now, not after the run dir exists
        self.classifier = MulticlassClassifier(
            self.env.num_actions, hidden_sizes=cfg.hidden_sizes, activation=cfg.activation, dropout=cfg.dropout,
            label_smoothing=cfg.label_smoothing, device=self.device, seed=cfg.seed,
        ).build((math.prod(self.env.obs_shape),))
        self._policy = Decision(self.classifier.network, "labels", True, 0.0, False)
        self._expert: nn.Module | None = None
        self.data_obs: Tensor | None = None
        self.data_actions: Tensor | None = None
        self.epochs = 0
        self.dagger_done = 0
        self._last_loss = float("nan")

    # ------------------------------------------------------------------ data

    def expert(self) -> nn.Module:
        """The expert policy (loaded on first use)."""
        if self._expert is None:
            self._expert = load_expert(self.config.expert, self.device)
        return self._expert

    def _collect_pairs(self, num_samples: int, seed: int, behavior: nn.Module | None, epsilon: float
                       ) -> tuple[Tensor, Tensor]:
        obs, actions = collect_expert_pairs(self.expert(), num_samples, env=self.env.env, epsilon=epsilon,
                                            seed=seed, device=self.device, behavior=behavior)
        return obs.reshape(len(obs), -1), actions

    def collect(self) -> None:
        """The expert's pairs before the first epoch; a DAgger round every ``dagger_interval`` epochs."""
        cfg = self.config
        if self.data_obs is None:
            self.data_obs, self.data_actions = self._collect_pairs(cfg.num_samples, cfg.seed, None, cfg.epsilon)
            return
        due = self.epochs >= (self.dagger_done + 1) * cfg.dagger_interval
        if self.dagger_done < cfg.dagger_rounds and due:
            policy = self.policy_module()
            with torch.no_grad(), eval_mode(policy):
                obs, actions = self._collect_pairs(cfg.dagger_samples, cfg.seed + 1 + self.dagger_done, policy, 0.0)
            self.data_obs = torch.cat([self.data_obs, obs])
            self.data_actions = torch.cat([self.data_actions, actions])
            self.dagger_done += 1

    def learn(self) -> None:
        """One epoch over the dataset; ``env_steps`` advances by the samples consumed."""
        cfg = self.config
        self.classifier.fit(self.data_obs, self.data_actions, epochs=1, batch_size=cfg.batch_size,
                            lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self._last_loss = self.classifier.history[-1]["loss"]
        self.epochs += 1
        self.updates += math.ceil(len(self.data_obs) / cfg.batch_size)
        self.env_steps += len(self.data_obs)

    # ------------------------------------------------------------------ policy and logs

    def policy_module(self) -> nn.Module:
        return self._policy

    def log_metrics(self) -> dict[str, float]:
        return {"samples": 0 if self.data_obs is None else len(self.data_obs), "epochs": self.epochs,
                "loss": self._last_loss, "dagger_rounds": self.dagger_done}

    def write_run_files(self, run_dir: str) -> str | None:
        """``confusion_matrix.png``: the cloned policy's actions against the expert's on fresh expert
        pairs (a seed the training data did not use). Returns its path (None without matplotlib)."""
        from rltorch.classifiers.plots import plot_confusion_matrix

        obs, actions = self._collect_pairs(10_000, self.config.seed + 100_003, None, self.config.epsilon)
        scores = self.classifier.evaluate(obs, actions)
        return plot_confusion_matrix(scores["confusion_matrix"], os.path.join(run_dir, "confusion_matrix.png"),
                                     f"BC policy vs expert ({self.config.expert}) on fresh expert states: "
                                     f"agreement {scores['accuracy']:.4f}")

    # ------------------------------------------------------------------ persistence

    def algorithm_state(self, include_buffer: bool) -> dict[str, Any]:
        optimizer = self.classifier.optimizer
        state = {
            "classifier": self.classifier.state_dict(),
            "optimizer": None if optimizer is None else optimizer.state_dict(),
            "epochs": self.epochs,
            "dagger_done": self.dagger_done,
            "last_loss": self._last_loss,
        }
        if include_buffer and self.data_obs is not None:
            state["data_obs"] = self.data_obs
            state["data_actions"] = self.data_actions
        return state

    def load_algorithm_state(self, state: dict[str, Any], continue_episodes: bool) -> None:
        for key in ("classifier", "optimizer", "epochs", "dagger_done", "last_loss"):
            if key not in state:
                raise ValueError(f"BC checkpoint lacks {key!r}")
        classifier = Classifier.from_state_dict(state["classifier"], self.device)
        if not isinstance(classifier, MulticlassClassifier) or classifier.input_shape != self.classifier.input_shape \
                or classifier.num_classes != self.classifier.num_classes:
            raise ValueError("BC checkpoint's classifier does not fit this env's observations and actions")
        if state["optimizer"] is not None:
            cfg = self.config
            classifier.make_optimizer("adam", cfg.learning_rate, cfg.weight_decay).load_state_dict(state["optimizer"])
        data = state.get("data_obs"), state.get("data_actions")
        if (data[0] is None) != (data[1] is None):
            raise ValueError("BC checkpoint holds only half of the dataset")
        self.classifier = classifier
        self._policy = Decision(classifier.network, "labels", True, 0.0, False)
        self.epochs = int(state["epochs"])
        self.dagger_done = int(state["dagger_done"])
        self._last_loss = float(state["last_loss"])
        # Without the saved dataset the next collect() gathers the expert's pairs again.
        self.data_obs = None if data[0] is None else data[0].to(self.device)
        self.data_actions = None if data[1] is None else data[1].to(self.device)

