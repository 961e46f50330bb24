"""The search's random forest, grown tree for tree as scikit-learn grows it, without its per-tree
Python overhead.

A fit scores thousands of transformations by cross-validation, each fold a forest of 50 trees
on a few hundred rows; there, growing a tree takes well under a millisecond, and scikit-learn's
work around it (cloning the tree's estimator, checking its parameters, its input and its target
again for every tree) took as long again.  :func:`forest_predict` drives scikit-learn's own tree
builder directly, with the forest's own per-tree seeds and bootstrap rows: the trees, and so the
predictions, are bit for bit those of ``RandomForestClassifier`` / ``RandomForestRegressor``
with default settings (``tests/test_forest.py`` checks it).

The builder is scikit-learn's private API, so it is used only with the scikit-learn versions
this was checked against (:data:`CHECKED_SKLEARN`); with any other, and for input scikit-learn
would refuse (values beyond float32, missing values), :func:`forest_predict` fits scikit-learn's
forest itself - the same predictions, or the same error, more slowly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.utils.multiclass import check_classification_targets

#: scikit-learn's ``major.minor`` versions whose forests :func:`forest_predict` was checked to
#: reproduce; with another version it fits scikit-learn's forest.
CHECKED_SKLEARN: tuple[tuple[int, int], ...] = ((1, 9),)

_MAX_SEED = np.iinfo(np.int32).max  # scikit-learn's per-tree seeds are drawn below this

try:
    from sklearn.tree._criterion import MSE, Gini
    from sklearn.tree._splitter import BestSplitter
    from sklearn.tree._tree import DepthFirstTreeBuilder, Tree
    _HAS_BUILDER = True
except ImportError:  # another layout of scikit-learn's private modules
    _HAS_BUILDER = False


def _version(text: str) -> tuple[int, int]:
    major, minor = (text.split(".") + ["0"])[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


#: Whether this scikit-learn's trees can be grown directly (a checked version, its builder present).
LEAN: bool = _HAS_BUILDER and _version(sklearn.__version__) in CHECKED_SKLEARN


#: Trees in a forest whose size is not given (scikit-learn's default).
DEFAULT_TREES = 100

#: The built-in downstream forests (:func:`sklearn_forest`): RandomForest and ExtraTrees.
FOREST_KINDS: tuple[str, ...] = ("rf", "et")


def forest_predict(task: str, X_fit: np.ndarray, y_fit: np.ndarray, X_apply: np.ndarray,
                   n_trees: int = DEFAULT_TREES, random_state: int = 0, max_samples: int | None = None) -> np.ndarray:
    """What ``RandomForest*(n_estimators=n_trees, random_state=random_state, max_samples=max_samples)
    .fit(X_fit, y_fit).predict(X_apply)`` returns (Classifier for ``task == "classification"``,
    else Regressor; every other setting scikit-learn's default).

    Parameters
    ----------
    task : {"classification", "regression"}
    X_fit, y_fit : arrays
        The training rows (numeric, shape (n, p)) and their targets (class labels, or numbers).
    X_apply : array
        The rows to predict, shape (m, p).
    n_trees : int
        Trees in the forest.
    random_state : int
        The forest's seed: each tree's seed is drawn from it in order, as scikit-learn draws them.
    max_samples : int, optional
        Rows each tree's bootstrap sample draws (None: as many as ``X_fit`` has).

    Returns
    -------
    numpy.ndarray
        The predicted class of each row of ``X_apply``, or the predicted value.
    """
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: scikit-learn's forest reports it
        X32 = np.asarray(X_fit, dtype=np.float32)
        apply32 = np.asarray(X_apply, dtype=np.float32)
    y = np.asarray(y_fit)
    if not LEAN or n_trees < 1 or (max_samples is not None and max_samples < 1) \
            or not _grows_like_sklearn(task, X32, apply32, y):
        return sklearn_forest(task, "rf", n_trees, random_state, max_samples).fit(X_fit, y_fit).predict(X_apply)
    n_rows, n_columns = X32.shape
    X32, apply32 = np.ascontiguousarray(X32), np.ascontiguousarray(apply32)
    if task == "classification":
        classes, codes = np.unique(y, return_inverse=True)
        n_classes = len(classes)
        targets = np.ascontiguousarray(codes.reshape(-1, 1), dtype=np.float64)
        outputs = np.array([n_classes], dtype=np.intp)
        max_features = max(1, int(np.sqrt(n_columns)))  # RandomForestClassifier: "sqrt"
        total = np.zeros((len(apply32), n_classes))
    else:
        targets = np.ascontiguousarray(y.reshape(-1, 1), dtype=np.float64)
        outputs = np.array([1], dtype=np.intp)
        max_features = n_columns  # RandomForestRegressor: 1.0
        total = np.zeros(len(apply32))
    draws = n_rows if max_samples is None else max_samples
    # BaseForest.fit: one seed per tree, drawn in order from the forest's RandomState.
    seeds = np.random.RandomState(random_state).randint(_MAX_SEED, size=n_trees)
    # scikit-learn makes two RandomStates per tree from its seed; making one takes about 0.1 ms,
    # as long as growing a small tree's top, so one is re-seeded instead (the same draws).
    tree_random = np.random.RandomState(0)
    for seed in seeds:
        # _parallel_build_trees / _generate_sample_indices: the bootstrap sample as row weights.
        tree_random.seed(seed)
        weights = np.bincount(tree_random.randint(0, n_rows, draws), minlength=n_rows).astype(np.float64)
        # BaseDecisionTree._fit with the defaults: min_samples_split 2, min_samples_leaf 1, no
        # minimum weight, no depth limit, no minimum impurity decrease, no monotonic constraint.
        criterion = Gini(1, outputs) if task == "classification" else MSE(1, n_rows)
        tree_random.seed(seed)  # the splitter's own RandomState(seed), fresh
        splitter = BestSplitter(criterion, max_features, 1, 0.0, tree_random, None)
        tree = Tree(n_columns, outputs, 1)
        DepthFirstTreeBuilder(splitter, 2, 1, 0.0, _MAX_SEED, 0.0).build(tree, X32, targets, weights, None)
        values = tree.predict(apply32)
        # The tree's predict_proba (classes' fractions) or predict, summed in the forest's order.
        total += values[:, :n_classes] if task == "classification" else values[:, 0]
    total /= n_trees
    if task == "classification":
        return classes.take(np.argmax(total, axis=1), axis=0)
    return total


def _grows_like_sklearn(task: str, X32: np.ndarray, apply32: np.ndarray, y: np.ndarray) -> bool:
    """Whether the direct path sees input scikit-learn's forest would accept without a missing-value
    mask: two-dimensional finite float32 columns, one target per row (finite numbers for a
    regression, class labels for a classification).  Anything else goes to scikit-learn's forest,
    which handles it or raises its own error."""
    if X32.ndim != 2 or apply32.ndim != 2 or X32.shape[1] != apply32.shape[1] or y.ndim != 1:
        return False
    if len(y) != len(X32) or len(y) == 0 or len(apply32) == 0 or not np.isfinite(X32).all() or not np.isfinite(apply32).all():
        return False
    if task == "classification":
        try:
            check_classification_targets(y)
        except ValueError:
            return False
        return True
    return np.issubdtype(y.dtype, np.number) and bool(np.isfinite(y).all())


def sklearn_forest(task: str, kind: str = "rf", n_trees: int | None = None, random_state: int = 0,
                   max_samples: int | None = None, n_jobs: int | None = None) -> Any:
    """scikit-learn's forest: ``kind`` ``"rf"`` (RandomForest) or ``"et"`` (ExtraTrees), a
    Classifier for ``task == "classification"``, else a Regressor.  ``n_trees`` None: scikit-learn's
    default; ``max_samples`` makes each tree draw a bootstrap sample of that many rows (ExtraTrees
    then bootstraps too, which it does not by default); ``n_jobs`` grows the trees in threads (the
    same forest for any number)."""
    size: dict[str, Any] = {} if n_trees is None else {"n_estimators": n_trees}
    if max_samples is not None:
        size.update(bootstrap=True, max_samples=max_samples)
    if n_jobs is not None:
        size["n_jobs"] = n_jobs
    if kind == "rf":
        cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    else:
        from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor
        cls = ExtraTreesClassifier if task == "classification" else ExtraTreesRegressor
    return cls(random_state=random_state, **size)


__all__ = ["CHECKED_SKLEARN", "DEFAULT_TREES", "FOREST_KINDS", "LEAN", "forest_predict", "sklearn_forest"]
