"""featteam.forest grows scikit-learn's forest tree for tree: the same predictions, bit for bit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from featteam import forest
from featteam.forest import forest_predict

pytestmark = pytest.mark.skipif(not forest._HAS_BUILDER, reason="this scikit-learn has no tree builder to drive")


@pytest.fixture
def direct(monkeypatch):
    """The direct path, whatever the installed version, and a failure if scikit-learn's forest is
    fitted instead."""
    monkeypatch.setattr(forest, "LEAN", True)

    def refuse(*args, **kwargs):
        raise AssertionError("scikit-learn's forest was fitted: the direct path was not taken")

    monkeypatch.setattr(forest, "sklearn_forest", refuse)


def _sklearn(task, X, y, X_apply, n_trees, seed, max_samples=None):
    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    size = {} if max_samples is None else {"max_samples": max_samples}
    return cls(n_estimators=n_trees, random_state=seed, **size).fit(X, y).predict(X_apply)


def _table(rows, columns, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, columns))
    X[:, -1] = np.round(X[:, -1])  # ties, as integer-coded columns have
    return X


@pytest.mark.parametrize("labels", [np.array([0, 1]), np.array([3, 7, 9]), np.array(["no", "yes", "maybe"])])
def test_a_classifier_forest_predicts_as_scikit_learns(direct, labels):
    X = _table(300, 7, 0)
    y = labels[(X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1) * (len(labels) - 2)]
    fit, held = slice(0, 240), slice(240, None)
    for seed in (0, 1, 12):
        expected = _sklearn("classification", X[fit], y[fit], X[held], 30, seed)
        assert np.array_equal(forest_predict("classification", X[fit], y[fit], X[held], 30, seed), expected)


def test_a_regression_forest_predicts_as_scikit_learns(direct):
    X = _table(250, 5, 1)
    y = X[:, 0] * X[:, 1] + np.sin(X[:, 2])
    for seed in (0, 4):
        expected = _sklearn("regression", X[:200], y[:200], X[200:], 20, seed)
        # Bit for bit: the same trees summed in the same order.
        assert np.array_equal(forest_predict("regression", X[:200], y[:200], X[200:], 20, seed), expected)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_bootstrap_samples_of_a_set_size_are_drawn_as_scikit_learn_draws_them(direct, task):
    X = _table(400, 6, 2)
    y = (X[:, 0] > 0).astype(int) if task == "classification" else X[:, 0] + X[:, 3] ** 2
    expected = _sklearn(task, X[:300], y[:300], X[300:], 25, 3, max_samples=120)
    assert np.array_equal(forest_predict(task, X[:300], y[:300], X[300:], 25, 3, max_samples=120), expected)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_searchs_scores_are_those_of_scikit_learns_forest(direct, task, small_classification, small_regression):
    """The evaluator grows its search forests directly; given scikit-learn's forest itself as the
    downstream model, it scores every transformation the same."""
    from featteam.data import prepare
    from featteam.evaluation import Evaluator

    frame = small_classification if task == "classification" else small_regression
    dataset = prepare(frame, "target")
    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    grown = Evaluator(dataset, "honest", search_trees=20, validation_size=0.2)
    fitted = Evaluator(dataset, "honest", search_trees=20, validation_size=0.2,
                       model=cls(n_estimators=20, random_state=0))
    reported = Evaluator(dataset, "honest", validation_size=0.2, model=cls(random_state=0))
    for tokens in (None, ["f0", "f1", "*"], ["f2", "log"]):
        assert grown._fold_scores(tokens) == fitted._fold_scores(tokens)
        assert np.array_equal(grown.choice_predictions(tokens, 1), fitted.choice_predictions(tokens, 1))
        assert grown.final_score(tokens) == reported.final_score(tokens)


def test_input_scikit_learn_would_refuse_or_treat_otherwise_goes_to_its_forest(monkeypatch):
    monkeypatch.setattr(forest, "LEAN", True)
    X = _table(120, 3, 6)
    y = (X[:, 0] > 0).astype(int)
    with_missing = X.copy()
    with_missing[::7, 1] = np.nan  # scikit-learn's trees send missing values down a learnt side
    expected = _sklearn("classification", with_missing[:100], y[:100], with_missing[100:], 10, 0)
    assert np.array_equal(forest_predict("classification", with_missing[:100], y[:100], with_missing[100:], 10, 0),
                          expected)
    too_large = X.copy()
    too_large[3, 0] = 1e300  # beyond float32: scikit-learn's own error
    with pytest.raises(ValueError, match="infinity or a value too large"):
        forest_predict("classification", too_large[:100], y[:100], too_large[100:], 10, 0)
    with pytest.raises(ValueError, match="Unknown label type"):
        forest_predict("classification", X[:100], X[:100, 0], X[100:], 10, 0)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(2, 60), columns=st.integers(1, 6), n_classes=st.integers(1, 4),
       n_trees=st.integers(1, 8), seed=st.integers(0, 2**31 - 2), data_seed=st.integers(0, 1000),
       regression=st.booleans())
def test_any_small_forest_predicts_as_scikit_learns(rows, columns, n_classes, n_trees, seed, data_seed, regression):
    rng = np.random.default_rng(data_seed)
    X = np.round(rng.normal(size=(rows + 5, columns)), 1)
    y = rng.normal(size=rows + 5) if regression else rng.integers(0, n_classes, size=rows + 5)
    task = "regression" if regression else "classification"
    saved = forest.LEAN
    forest.LEAN = True
    try:
        got = forest_predict(task, X[:rows], y[:rows], X[rows:], n_trees, seed)
    finally:
        forest.LEAN = saved
    assert np.array_equal(got, _sklearn(task, X[:rows], y[:rows], X[rows:], n_trees, seed))
