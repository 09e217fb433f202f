"""The classifiers' former single module, kept so that ``from rltorch.classifiers.models import ...`` still works.

The code now lives by concern: :mod:`~rltorch.classifiers.estimators` (the shared estimator),
:mod:`~rltorch.classifiers.kinds` (the three classifiers), :mod:`~rltorch.classifiers.labels` (class labels),
:mod:`~rltorch.classifiers.heads` (standardization and the decision head), :mod:`~rltorch.classifiers.data`
(batch sources), :mod:`~rltorch.classifiers.training` (the epoch loop) and
:mod:`~rltorch.classifiers.persistence` (files).
"""

from rltorch.classifiers.estimators import Classifier, NotFittedError
from rltorch.classifiers.heads import Decision, Standardize
from rltorch.classifiers.kinds import BinaryClassifier, MulticlassClassifier, MultilabelClassifier
from rltorch.classifiers.persistence import CHECKPOINT_FORMAT, CHECKPOINT_KIND, load_classifier
from rltorch.classifiers.training import SOLVERS as OPTIMIZERS

__all__ = ["Classifier", "BinaryClassifier", "MulticlassClassifier", "MultilabelClassifier", "NotFittedError",
           "load_classifier", "CHECKPOINT_FORMAT", "CHECKPOINT_KIND", "Decision", "Standardize", "OPTIMIZERS"]
