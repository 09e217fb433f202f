"""Supervised learning on rltorch: classifiers, metrics and the data to train them on.

``BinaryClassifier``, ``MulticlassClassifier`` and ``MultilabelClassifier`` are
scikit-learn estimators (``fit``, ``predict``, ``predict_proba``, ``score``,
``get_params``/``set_params``; scikit-learn itself is optional and never
imported here) with ``evaluate``, ``save``/``load`` and ``export`` on top, over
the shared MLP or a small CNN.
Data comes from torch generators (``make_circles`` ...) or from rltorch's
vectorized CartPole (``collect_expert_pairs``, ``collect_failure_pairs``).
"""

from rltorch.classifiers.datasets import (
    SYNTHETIC_DATASETS,
    make_blobs,
    make_circles,
    make_moons,
    make_multilabel,
    make_spirals,
    train_test_split,
)
from rltorch.classifiers.env_data import ENV_DATASETS, LinearExpert, collect_expert_pairs, collect_failure_pairs
from rltorch.classifiers.estimators import Classifier, NotFittedError
from rltorch.classifiers.kinds import BinaryClassifier, MulticlassClassifier, MultilabelClassifier
from rltorch.classifiers.labels import DataConversionWarning
from rltorch.classifiers.metrics import (
    classification_metrics,
    confusion_matrix,
    multilabel_confusion_matrix,
    multilabel_metrics,
)
from rltorch.classifiers.persistence import load_classifier

__all__ = [
    "Classifier", "BinaryClassifier", "MulticlassClassifier", "MultilabelClassifier", "NotFittedError",
    "DataConversionWarning", "load_classifier",
    "make_circles", "make_moons", "make_blobs", "make_spirals", "make_multilabel", "train_test_split",
    "SYNTHETIC_DATASETS",
    "LinearExpert", "collect_expert_pairs", "collect_failure_pairs", "ENV_DATASETS",
    "confusion_matrix", "classification_metrics", "multilabel_confusion_matrix", "multilabel_metrics",
]
