"""Missing-value imputation: the one rule the evaluator and a deployed transformation share.

A value is missing when it is not finite (NaN or +-inf); it is replaced by its
column's median over the fitted rows' finite values.  The evaluator scores a
candidate with exactly the imputation that :class:`~featteam.expr.Transformation`
later applies, so both call these two functions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def fit_medians(X: np.ndarray) -> np.ndarray:
    """The median of each column's finite values; 0.0 for a column without any.

    Parameters
    ----------
    X : ndarray of shape (n_rows, d)
        Values, NaN and +-inf included.

    Returns
    -------
    ndarray of shape (d,), float64
        Always finite unless the two middle values' mean overflows (finite values near
        the float64 maximum).
    """
    X = np.asarray(X, dtype=np.float64)
    medians = np.zeros(X.shape[1], dtype=np.float64)
    for j in range(X.shape[1]):
        # Column by column with np.median of the finite values: no all-NaN slice, so no
        # RuntimeWarning, and the same numbers as np.nanmedian of the NaN-masked column.
        finite = X[np.isfinite(X[:, j]), j]
        if finite.size:
            medians[j] = np.median(finite)
    return medians


def fill_missing(X: np.ndarray, values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``X`` with each non-finite entry replaced by its column's value.

    Parameters
    ----------
    X : ndarray of shape (n_rows, d)
    values : sequence of float of length d
        The replacement of each column (:func:`fit_medians` of the fitted rows).

    Returns
    -------
    ndarray of shape (n_rows, d)
        A filled copy, or ``X`` itself when every entry is finite (nothing is copied then).
    """
    bad = ~np.isfinite(X)
    if not bad.any():
        return X
    filled = X.copy()
    filled[bad] = np.take(np.asarray(values, dtype=np.float64), np.nonzero(bad)[1])
    return filled


__all__ = ["fill_missing", "fit_medians"]
