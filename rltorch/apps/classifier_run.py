"""``rltorch train classifier``: one classifier run, with the agents' run-directory layout.

:func:`prepare` does everything that can fail on a user's input (the config, the expert, the data, the
classifier's parameters), so that the command line finds every bad input before the run directory exists;
:func:`run_classifier` then trains, tests and writes. It lives above the agents because ``--expert`` may
name a trained agent's run.

A run directory holds ``config.json`` (``algorithm: "classifier"`` and the
:class:`ClassifierConfig`), ``metrics.csv`` (one row per epoch),
``checkpoint.pt`` (:meth:`Classifier.save`; load with ``load_classifier``),
``result.json`` (test metrics), ``learning_curve.png`` and either
``decision_boundary.png`` (2-D data) or ``confusion_matrix.png``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch

from rltorch._checks import Range, resolve_device
from rltorch._io import first_line
from rltorch.classifiers import datasets as synthetic
from rltorch.classifiers.data import held_out_count
from rltorch.classifiers.env_data import collect_expert_pairs, collect_failure_pairs
from rltorch.classifiers.estimators import Classifier
from rltorch.classifiers.kinds import BinaryClassifier, MulticlassClassifier, MultilabelClassifier
from rltorch.config import Config, HiddenSizes, Positive, PositiveInt, Unit

__all__ = ["ClassifierConfig", "PreparedRun", "prepare", "make_dataset", "make_classifier", "run_classifier",
           "ALGORITHM", "DATASETS"]

ALGORITHM = "classifier"
DATASETS = ("circles", "moons", "blobs", "spirals", "multilabel", "cartpole-bc", "cartpole-fail")
BOUNDARY_FILE = "decision_boundary.png"
CONFUSION_FILE = "confusion_matrix.png"


@dataclass(kw_only=True)
class ClassifierConfig(Config):
    """A classifier trained on synthetic 2-D data or on data collected from rltorch's CartPole."""

    dataset: Literal["circles", "moons", "blobs", "spirals", "multilabel", "cartpole-bc", "cartpole-fail"] = "circles"
    """circles|moons|blobs|spirals|multilabel (made in torch) or cartpole-bc (observation -> expert action) or
    cartpole-fail (observation -> falls within `horizon` steps)."""
    kind: Literal["auto", "binary", "multiclass", "multilabel"] = "auto"
    """Classifier kind; auto: multilabel for the multilabel set, binary for two-class sets, multiclass otherwise."""
    num_samples: Annotated[int, Range(20, None)] = 4000
    """Samples generated or collected (train + validation + test)."""
    num_classes: Annotated[int, Range(2, None)] = 4
    """Classes of the blobs and spirals sets (labels of the multilabel set)."""
    noise: Annotated[float, Range(0, None)] | None = None
    """Gaussian noise of the synthetic sets; none keeps each generator's default."""
    test_fraction: Annotated[float, Range(0, 1, low_open=True, high_open=True)] = 0.25
    """Share of the samples held out for the final test metrics."""
    validation_split: Annotated[float, Range(0, 1, high_open=True)] = 0.1
    """Share of the training samples held out for per-epoch validation (0 for none)."""
    expert: str = "linear"
    """cartpole-*: the policy that acts, 'linear' or a trained agent's run directory."""
    epsilon: Unit | None = None
    """cartpole-*: probability of a random action while collecting; none: 0.2 for cartpole-bc, 0.75 for
    cartpole-fail."""
    horizon: PositiveInt = 10
    """cartpole-fail: label 1 when the pole falls within this many steps."""

    hidden_sizes: HiddenSizes = (64, 64)
    """Widths of the MLP's hidden layers."""
    activation: Literal["relu", "tanh", "gelu", "silu", "elu", "leaky_relu"] = "relu"
    """Activation of the hidden layers."""
    dropout: Annotated[float, Range(0, 1, high_open=True)] = 0.0
    """Dropout after each hidden layer."""
    batch_norm: bool = False
    """BatchNorm1d after each hidden linear layer."""
    label_smoothing: Annotated[float, Range(0, 1, high_open=True)] = 0.0
    """Cross-entropy label smoothing (multiclass)."""

    epochs: PositiveInt = 40
    """Passes over the training data (fewer with early_stopping)."""
    batch_size: PositiveInt = 128
    """Samples per gradient step."""
    learning_rate: Positive = 3e-3
    """Optimizer learning rate."""
    optimizer: Literal["adam", "sgd"] = "adam"
    """adam or sgd (momentum 0.9)."""
    weight_decay: Annotated[float, Range(0, None)] = 0.0
    """L2 weight decay."""
    early_stopping: PositiveInt | None = None
    """Stop after this many epochs without a better `monitor` (restoring the best weights); none trains all epochs."""
    monitor: Literal["loss", "val_loss", "val_accuracy", "val_f1_macro"] = "val_loss"
    """Metric early stopping watches (val_* need validation_split > 0)."""

    device: str = "auto"
    """'cpu', 'cuda', 'cuda:1', or 'auto' (cuda when available)."""
    seed: int = 0
    """Seeds the data, the split, the initial weights and the shuffling."""

    def check(self, values: dict[str, Any]) -> None:
        need = self.requirement
        # The splits are made after the data, long after the run directory would exist: size them now.
        total = values["num_samples"]
        test = held_out_count(total, values["test_fraction"])
        need(1 <= test < total, "test_fraction",
             f"{values['test_fraction']} of {total} samples leaves an empty split (train {total - test}, test {test})")
        train = total - test
        held = held_out_count(train, values["validation_split"])
        need(values["validation_split"] == 0 or 1 <= held < train, "validation_split",
             f"{values['validation_split']} of the {train} training samples leaves an empty split "
             f"(validation {held}); give more samples or a larger split")
        need(not (values["monitor"].startswith("val_") and values["early_stopping"] is not None
                  and values["validation_split"] == 0), "monitor",
             f"{values['monitor']!r} needs validation_split > 0")
        kind = values["kind"]
        dataset = values["dataset"]
        need(kind in ("auto", "multilabel") or dataset != "multilabel", "kind",
             f"must be auto or multilabel for the multilabel dataset, got {kind!r}")
        need(kind != "multilabel" or dataset == "multilabel", "kind",
             f"multilabel needs the multilabel dataset, got {dataset!r}")
        need(kind != "binary" or _num_classes(dataset, values["num_classes"]) == 2, "kind",
             f"binary needs a two-class dataset; {dataset!r} has {_num_classes(dataset, values['num_classes'])}")
        need(not (dataset.startswith("cartpole") and values["expert"] == ""), "expert", "must not be empty")


def _num_classes(dataset: str, num_classes: int) -> int:
    return num_classes if dataset in ("blobs", "spirals", "multilabel") else 2


def make_dataset(config: ClassifierConfig, device: torch.device | str = "cpu", expert: torch.nn.Module | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, y)`` of the config's dataset, on ``device``; ``expert``: the policy of the cartpole-* sets (loaded
    from ``config.expert`` when not given)."""
    n, seed, name = config.num_samples, config.seed, config.dataset
    noise = {} if config.noise is None else {"noise": config.noise}
    try:
        if name in ("circles", "moons"):
            return synthetic.SYNTHETIC_DATASETS[name](n, seed=seed, device=device, **noise)
        if name == "blobs":
            std = {} if config.noise is None else {"cluster_std": config.noise}
            return synthetic.make_blobs(n, num_classes=config.num_classes, seed=seed, device=device, **std)
        if name == "spirals":
            return synthetic.make_spirals(n, num_classes=config.num_classes, seed=seed, device=device, **noise)
        if name == "multilabel":
            return synthetic.make_multilabel(n, num_labels=config.num_classes, seed=seed, device=device)
    except ValueError as exc:
        raise ValueError(f"{type(config).__name__}: `noise` {config.noise!r} is too large for the {name} data "
                         f"({first_line(exc)})") from None
    policy = load_expert_policy(config.expert, device) if expert is None else expert
    try:
        if name == "cartpole-bc":
            epsilon = 0.2 if config.epsilon is None else config.epsilon
            return collect_expert_pairs(policy, n, epsilon=epsilon, seed=seed, device=device)
        epsilon = 0.75 if config.epsilon is None else config.epsilon
        return collect_failure_pairs(policy, n, horizon=config.horizon, epsilon=epsilon, seed=seed, device=device)
    except RuntimeError as exc:  # an agent for another env: its network does not take CartPole's observations
        raise ValueError(f"--expert {config.expert!r} cannot act in CartPole: {first_line(exc)}") from None


def load_expert_policy(expert: str, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The policy ``--expert`` names ('linear' or a trained agent's run directory or checkpoint); ValueError naming
    it when it is neither."""
    from rltorch.agents.bc import load_expert

    try:
        return load_expert(expert, device)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ValueError(f"--expert {expert!r}: {first_line(exc)}") from None


def make_classifier(config: ClassifierConfig, device: torch.device | str = "cpu") -> Classifier:
    """The (unfitted) classifier the config describes."""
    common = dict(hidden_sizes=config.hidden_sizes, activation=config.activation, dropout=config.dropout,
                  batch_norm=config.batch_norm, epochs=config.epochs, batch_size=config.batch_size,
                  lr=config.learning_rate, solver=config.optimizer, weight_decay=config.weight_decay,
                  validation_split=config.validation_split, early_stopping=config.early_stopping,
                  monitor=config.monitor if config.early_stopping is not None else None, device=device,
                  seed=config.seed)
    kind = config.kind
    if kind == "auto":
        kind = ("multilabel" if config.dataset == "multilabel" else
                "binary" if _num_classes(config.dataset, config.num_classes) == 2 else "multiclass")
    if kind == "multilabel":
        return MultilabelClassifier(config.num_classes, **common)
    if kind == "binary":
        return BinaryClassifier(**common)
    return MulticlassClassifier(_num_classes(config.dataset, config.num_classes),
                                label_smoothing=config.label_smoothing, **common)


@dataclass
class PreparedRun:
    """A classifier run with every input checked: its data made and split, its classifier's parameters valid."""

    config: ClassifierConfig
    classifier: Classifier
    X_train: torch.Tensor
    X_test: torch.Tensor
    y_train: torch.Tensor
    y_test: torch.Tensor
    data_time_s: float


def prepare(config: ClassifierConfig) -> PreparedRun:
    """Loads the expert, makes and splits the data and checks the classifier's parameters: everything that can
    reject the run, before anything is written. ValueError naming the field or flag."""
    from rltorch.classifiers.datasets import train_test_split

    config.validate()
    device = resolve_device(config.device)
    classifier = make_classifier(config, device)
    classifier._settings()  # its parameters, checked now rather than in fit
    began = time.perf_counter()
    X, y = make_dataset(config, device)
    data_time = time.perf_counter() - began
    X_train, X_test, y_train, y_test = train_test_split(X, y, config.test_fraction, seed=config.seed)
    return PreparedRun(config, classifier, X_train, X_test, y_train, y_test, data_time)


def run_classifier(run: PreparedRun | ClassifierConfig, run_dir: str, progress: bool = False) -> dict:
    """Trains, tests and writes the run directory (``run_dir`` must exist) for a :class:`PreparedRun` (or a
    config, prepared here). Returns the test metrics (also in result.json)."""
    from rltorch import runs
    from rltorch.classifiers import plots

    if isinstance(run, ClassifierConfig):
        run = prepare(run)
    config, classifier = run.config, run.classifier
    runs.write_config(run_dir, ALGORITHM, config)
    columns = ["epoch", "loss", "samples", "wall_time_s", "samples_per_s"]
    if config.validation_split > 0:
        columns += ["val_loss", "val_accuracy", "val_f1_macro"]
    metrics = runs.MetricsWriter(run_dir, columns)
    try:
        fit_began = time.perf_counter()
        classifier.set_params(progress=progress)
        classifier.fit(run.X_train, run.y_train, callback=lambda row: metrics({**row, "env_steps": row["epoch"]}))
        fit_time = time.perf_counter() - fit_began
    finally:
        metrics.close()
    scores = classifier.evaluate(run.X_test, run.y_test)
    classifier.save(os.path.join(run_dir, runs.CHECKPOINT_FILE))
    result = {"dataset": config.dataset, "classifier": type(classifier).__name__, "train_samples": len(run.X_train),
              "test_samples": len(run.X_test), "epochs": len(classifier.history_), "data_time_s": run.data_time_s,
              "fit_time_s": fit_time, "test": scores}
    runs.write_json(os.path.join(run_dir, runs.RESULT_FILE), result)
    plots.plot_training_curves(classifier.history_, os.path.join(run_dir, runs.CURVE_FILE),
                               f"{config.dataset}: {type(classifier).__name__}")
    if run.X_test.dim() == 2 and run.X_test.shape[1] == 2:
        plots.plot_decision_boundary(classifier, run.X_test, run.y_test, os.path.join(run_dir, BOUNDARY_FILE),
                                     f"{config.dataset}: test accuracy {scores['accuracy']:.4f}")
    else:
        plots.plot_confusion_matrix(scores["confusion_matrix"], os.path.join(run_dir, CONFUSION_FILE),
                                    f"{config.dataset}: test accuracy {scores['accuracy']:.4f} "
                                    f"(rows: true class)")
    return result
