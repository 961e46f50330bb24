"""The scikit-learn transformer that applies a transformation (numpy, pandas, scikit-learn only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .data import Preprocessor
from .expr import Transformation, TransformationError, output_names


class FeatureTransformer(TransformerMixin, BaseEstimator):
    """Add the new features of a transformation to a table.

    ``fit`` fits the transformation's imputation values and stateful
    operators on the training rows; ``transform`` applies them to new rows.

    A transformation saved by ``featteam fit`` (``transformation.json``) also holds how the
    fit read the table's columns (text categories as codes, dates as seconds): a DataFrame
    given to ``fit`` and ``transform`` is read the same way first, as ``featteam transform``
    reads a table, so the raw table the fit was given works here too.

    Parameters
    ----------
    transformation : Transformation, str or path
        A :class:`~featteam.expr.Transformation`, the path of a saved one
        (``transformation.json``), or formula text - postfix ``[f0 f1 * , f2 log]``
        or infix ``(age * income), log(fare)`` - over the columns of ``X``.
    keep_original : bool, default=True
        Output the original columns before the new ones (as numbers: after the saved
        reading of the columns, where there is one).
    refit : bool, default=True
        ``fit`` fits the imputation values and stateful operators on ``X`` (a Pipeline refits
        them on its own training rows). False keeps those a saved transformation holds (fitted
        on the fit's training split, what ``featteam transform`` applies); ``fit`` then only
        matches the columns.

    Attributes
    ----------
    transformation_ : Transformation
        The fitted transformation.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` has string column names (after the saved reading of the columns).

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 7.0]})
    >>> FeatureTransformer("(a * b), log(b)").set_output(transform="pandas").fit_transform(X).columns.tolist()
    ['a', 'b', '(a * b)', 'log(b)']
    """

    def __init__(self, transformation: Transformation | str | Path | None = None, keep_original: bool = True,
                 refit: bool = True) -> None:
        self.transformation = transformation
        self.keep_original = keep_original
        self.refit = refit

    def _input_names(self) -> list[str]:
        if hasattr(self, "feature_names_in_"):
            return [str(c) for c in self.feature_names_in_]
        return [f"x{i}" for i in range(self.n_features_in_)]

    def _saved(self) -> Transformation | None:
        """The transformation object or file; None for formula text (read once the columns are known)."""
        spec = self.transformation
        if spec is None:
            raise ValueError("FeatureTransformer needs a transformation (a Transformation, a JSON path or formula text)")
        if isinstance(spec, Transformation):
            return spec
        if isinstance(spec, Path) or (isinstance(spec, str) and spec.strip().endswith(".json")):
            return Transformation.load(spec)
        if isinstance(spec, str):
            return None
        raise TypeError(f"transformation must be a Transformation, a path or text, not {type(spec).__name__}")

    def _read(self, X):
        """``X`` as numbers: a DataFrame as the fit read its table where the transformation holds
        how, its columns named by strings (so ``0`` is a name, not a position); infinite values
        missing (imputed, as :class:`~featteam.expr.Transformation` does)."""
        if not isinstance(X, pd.DataFrame):
            if isinstance(X, np.ndarray) and np.issubdtype(X.dtype, np.floating):
                return np.where(np.isinf(X), np.nan, X)
            return X
        X = X.rename(columns=str)
        if self.preprocessor_ is not None:
            return self.preprocessor_.transform(X)
        text = [c for c in X.columns if not _numeric(X[c])]
        if text:
            raise TransformationError(
                f"column(s) {text[:20]} are not numbers: a transformation written as formula text needs numeric "
                "columns (encode them first; a transformation saved by featteam fit reads text and dates itself)")
        return X.apply(pd.to_numeric).replace([np.inf, -np.inf], np.nan)

    def fit(self, X, y=None) -> "FeatureTransformer":
        """Fit the transformation on the rows of ``X`` (with ``refit=False``: match its columns only)."""
        saved = self._saved()
        self.preprocessor_ = None if saved is None else Preprocessor.saved_in(saved.metadata)
        X = validate_data(self, self._read(X), reset=True, ensure_all_finite="allow-nan", dtype=np.float64)
        transformation = Transformation.from_text(self.transformation, self._input_names()) if saved is None else saved
        names = self._input_names()
        if hasattr(self, "feature_names_in_"):
            missing = [c for c in transformation.input_columns if c not in names]
            if missing:
                raise TransformationError(f"X lacks the transformation's column(s) {missing}")
            columns = [names.index(c) for c in transformation.input_columns]
        elif len(transformation.input_columns) == X.shape[1]:
            columns = list(range(X.shape[1]))  # X has no column names: matched by position
        else:
            raise TransformationError(f"the transformation needs {len(transformation.input_columns)} columns "
                                      f"{transformation.input_columns}; X has {X.shape[1]} and no column names")
        self.columns_ = columns
        if self.refit:
            self.transformation_ = transformation.fit(X[:, columns])
        elif transformation.is_fitted:
            self.transformation_ = transformation
        else:
            raise TransformationError("refit=False needs a fitted transformation (a saved transformation.json "
                                      "is one); formula text must be fitted on X")
        return self

    def transform(self, X):
        """Original columns (if kept) followed by the new features."""
        check_is_fitted(self, "transformation_")
        X = validate_data(self, self._read(X), reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        new = self.transformation_.transform(X[:, self.columns_])
        return np.hstack([X, new]) if self.keep_original else new

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Original names (if kept) and the readable formula of each new feature (``new: formula``
        where an original column already has that name, so that every name is unique)."""
        check_is_fitted(self, "transformation_")
        originals = checked_input_features(self, input_features, self._input_names())
        kept = originals if self.keep_original else []
        return np.asarray(kept + output_names(kept, self.transformation_.formulas), dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def _numeric(column: pd.Series) -> bool:
    """Whether ``column`` holds numbers (booleans included; text that reads as numbers too)."""
    if pd.api.types.is_bool_dtype(column) or (pd.api.types.is_numeric_dtype(column)
                                              and not isinstance(column.dtype, pd.CategoricalDtype)):
        return True
    if not pd.api.types.is_object_dtype(column) and not pd.api.types.is_string_dtype(column):
        return False  # dates, durations, categories
    try:
        pd.to_numeric(column)
    except (TypeError, ValueError):
        return False
    return True


def checked_input_features(estimator: BaseEstimator, input_features, fitted: list[str]) -> list[str]:
    """The input names for ``get_feature_names_out``: ``fitted`` when ``input_features`` is None;
    else ``input_features``, which must agree with what the fit saw (scikit-learn's rule).

    Raises
    ------
    ValueError
        When ``input_features`` has another length than the fit's columns, or other names than
        the fit's named columns.
    """
    if input_features is None:
        return list(fitted)
    names = [str(c) for c in input_features]
    if len(names) != estimator.n_features_in_:
        raise ValueError(f"input_features has {len(names)} names; the fit saw {estimator.n_features_in_} columns")
    if hasattr(estimator, "feature_names_in_") and names != [str(c) for c in estimator.feature_names_in_]:
        raise ValueError(f"input_features {names[:20]} are not the fit's columns "
                         f"{[str(c) for c in estimator.feature_names_in_][:20]}")
    return names
