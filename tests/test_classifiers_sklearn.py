"""rltorch's classifiers as scikit-learn estimators: every one of scikit-learn's own estimator checks, and its
tools (clone, Pipeline, GridSearchCV, cross_val_score) around them. scikit-learn is an optional extra
(``rltorch[sklearn]``, part of ``rltorch[test]``); rltorch never imports it (tests/test_classifiers.py).

scikit-learn skips its array-API check (``check_array_api_input``) unless ``SCIPY_ARRAY_API=1`` is set before
SciPy is first imported; the three classifiers pass it then (``SCIPY_ARRAY_API=1 pytest
tests/test_classifiers_sklearn.py``)."""

import warnings

import numpy as np
import pytest
import torch

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone, is_classifier  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import estimator_checks_generator  # noqa: E402

from rltorch.classifiers import (  # noqa: E402
    BinaryClassifier,
    MulticlassClassifier,
    MultilabelClassifier,
    make_blobs,
    make_multilabel,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# Small networks that learn scikit-learn's check data (300 blobs) in a few hundredths of a second.
SMALL = dict(hidden_sizes=(16,), epochs=10, lr=3e-2, batch_size=64)
ESTIMATORS = [BinaryClassifier(**SMALL), MulticlassClassifier(**SMALL), MultilabelClassifier(**SMALL)]

_ONE_D = ("scikit-learn's common checks train on 1-D class labels (or on a column of them with more than two "
          "values); a MultilabelClassifier takes [samples, labels] indicators of 0 and 1 only, and its own "
          "multilabel checks (check_classifiers_multilabel_*) run and pass")
#: The checks that cannot apply, with the reason; each must still fail (so the list cannot go stale).
EXPECTED_FAILURES = {
    "MultilabelClassifier": {
        **{name: _ONE_D for name in (
            "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
            "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
            "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object",
            "check_f_contiguous_array_estimator", "check_classifiers_one_label", "check_classifiers_classes",
            "check_classifiers_regression_target", "check_decision_proba_consistency",
            "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_fit2d_1feature",
            "check_dict_unchanged", "check_fit2d_predict1d", "check_classifier_data_not_an_array")},
        "check_classifiers_train": "asserts 1-D predictions for its 1-D target; a MultilabelClassifier predicts "
                                   "[samples, labels] (and its 1-D targets are not indicators either)",
    },
}


def _name(check) -> str:
    func = getattr(check, "func", check)
    keywords = {k: v for k, v in getattr(check, "keywords", {}).items()}
    return func.__name__ + "".join(f"[{k}={v}]" for k, v in sorted(keywords.items()))


def _checks():
    with warnings.catch_warnings():
        # "does not inherit from sklearn.base.BaseEstimator": by design, rltorch implements the protocol
        # itself so that it never imports scikit-learn.
        warnings.filterwarnings("ignore", message="Estimator .* does not inherit from", category=UserWarning)
        for estimator in ESTIMATORS:
            for instance, check in estimator_checks_generator(estimator, legacy=True, mark=None):
                yield pytest.param(instance, check, id=f"{type(estimator).__name__}-{_name(check)}")


@pytest.mark.filterwarnings("ignore:Estimator .* does not inherit from:UserWarning")
@pytest.mark.parametrize("estimator, check", list(_checks()))
def test_scikit_learn_estimator_check(estimator, check):
    name = getattr(check, "func", check).__name__
    reason = EXPECTED_FAILURES.get(type(estimator).__name__, {}).get(name)
    if reason is None:
        check(estimator)
    else:
        with pytest.raises(Exception):  # noqa: B017  (any failure: the check does not apply, see the reason)
            check(estimator)


def test_clone_gives_an_unfitted_copy_with_the_same_parameters():
    clf = MulticlassClassifier(4, hidden_sizes=(8, 8), lr=3e-3, class_weights=[1.0, 2.0, 1.0, 1.0], seed=5)
    X, y = make_blobs(200, num_classes=4, seed=0)
    copy = clone(clf.set_params(epochs=2).fit(X, y))
    assert copy.get_params() == clf.get_params() and not hasattr(copy, "network_") and is_classifier(copy)
    assert copy.get_params()["class_weights"] == [1.0, 2.0, 1.0, 1.0]  # as given, not normalised


def test_pipeline_grid_search_and_cross_validation():
    X, y = make_blobs(300, num_classes=3, cluster_std=2.0, seed=0)
    X, y = X.numpy() * 100 + 7, np.array(["ant", "bee", "cow"])[y.numpy()]  # raw scale, string labels
    pipe = make_pipeline(StandardScaler(), MulticlassClassifier(standardize=False, seed=0, **SMALL))
    search = GridSearchCV(pipe, {"multiclassclassifier__hidden_sizes": [(4,), (16,)],
                                 "multiclassclassifier__lr": [1e-3, 1e-2]}, cv=3)
    search.fit(X, y)
    assert set(search.best_params_) == {"multiclassclassifier__hidden_sizes", "multiclassclassifier__lr"}
    assert search.best_score_ >= 0.9 and search.score(X, y) >= 0.9
    assert set(search.predict(X[:5])) <= {"ant", "bee", "cow"}
    scores = cross_val_score(BinaryClassifier(seed=0, **SMALL), X[y != "cow"], y[y != "cow"], cv=3)
    assert scores.shape == (3,) and scores.min() >= 0.9


def test_multilabel_in_a_pipeline():
    X, y = make_multilabel(400, num_labels=3, seed=0)
    pipe = make_pipeline(StandardScaler(), MultilabelClassifier(seed=0, **SMALL)).fit(X.numpy(), y.numpy())
    assert pipe.predict(X.numpy()).shape == (400, 3) and pipe.score(X.numpy(), y.numpy()) >= 0.7


def test_set_params_reaches_through_a_pipeline_and_rejects_unknown_names():
    pipe = make_pipeline(BinaryClassifier())
    pipe.set_params(binaryclassifier__threshold=0.3, binaryclassifier__epochs=3)
    clf = pipe.steps[0][1]
    assert clf.threshold == 0.3 and clf.epochs == 3
    assert pipe.get_params(deep=True)["binaryclassifier__threshold"] == 0.3
    with pytest.raises(ValueError, match="Invalid parameter 'epoch'"):
        clf.set_params(epoch=3)


def test_not_fitted_and_column_vector_warnings_are_scikit_learns_too():
    with pytest.raises(sklearn.exceptions.NotFittedError):
        BinaryClassifier().predict(np.zeros((2, 2)))
    X, y = make_blobs(60, num_classes=2, seed=0)
    with pytest.warns(sklearn.exceptions.DataConversionWarning):
        BinaryClassifier(epochs=1).fit(X, y[:, None])
    assert torch.get_num_threads() == 1  # the one_thread fixture's setting survived the fits
