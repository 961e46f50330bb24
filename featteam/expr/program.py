"""The stack machine that computes the new columns of a postfix sequence.

Normal postfix (the predecessors' bottom-of-stack quirk is not copied): an
operand token pushes a column, an operator pops its operands from the top
and pushes its protected result.  Stateful operators are fitted on the
given rows the first time and re-applied from their state afterwards.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .operators import Operator, apply_stateless, clip_finite, fit_apply_stateful
from .sequence import ErrorKind, InvalidSequence, fold_postfix, split_features
from .vocab import feature_index

#: Fitted states of the stateful operators, keyed by token position in the sequence.
States = dict[int, dict[str, Any]]


def evaluate(tokens: Sequence[str], X: np.ndarray, states: States | None = None,
             fit_rows: np.ndarray | None = None) -> tuple[np.ndarray, States]:
    """Compute the new features of ``tokens`` on the finite matrix ``X``.

    Parameters
    ----------
    tokens : sequence of str
        A structurally valid postfix sequence over ``f0..f{d-1}``.
    X : ndarray of shape (n_rows, d)
        Finite input values (impute first).
    states : dict, optional
        Fitted states by token position; missing ones are fitted now.
    fit_rows : ndarray, optional
        Rows (mask or indices) that missing states are fitted on; all rows by default.

    Returns
    -------
    columns : ndarray of shape (n_rows, n_new_features)
        Always finite.
    states : dict
        The states used, including those fitted by this call.
    """
    states = dict(states or {})

    def leaf(_: int, token: str) -> np.ndarray:
        index = feature_index(token)
        if index is None or index >= X.shape[1]:
            raise InvalidSequence(ErrorKind.UNKNOWN_TOKEN, f"unknown token {token!r}")
        return clip_finite(X[:, index])

    def apply(position: int, op: Operator, operands: list[np.ndarray]) -> np.ndarray:
        if op.stateful:
            result, states[position] = fit_apply_stateful(op, operands[0], states.get(position), fit_rows)
            return result
        return apply_stateless(op, *operands)

    if not tokens:  # the transformation that adds nothing (chosen when no feature helps)
        return np.empty((X.shape[0], 0)), states
    columns: list[np.ndarray] = []
    start = 0  # position of the feature's first token: stateful states are keyed by it
    for feature in split_features(tokens):
        columns.append(fold_postfix(feature, leaf, apply, start=start))
        start += len(feature) + 1  # and the separator
    return np.column_stack(columns), states


#: np.allclose's tolerances for "duplicates another column" (check_values).
DUPLICATE_RTOL, DUPLICATE_ATOL = 1e-9, 1e-12

#: Rows on which every pair of columns is compared at once before any pair is compared whole.
_SCREEN_ROWS = 16


def _possibly_equal(new: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Whether each pair ``(new[:, j], others[:, k])`` is ``np.isclose`` on the first rows (at most
    :data:`_SCREEN_ROWS`), shape ``(n_new, n_others)``: the test ``np.allclose`` makes, on a few
    rows and for all pairs at once, so a pair that fails it cannot be ``np.allclose`` over every
    row."""
    head = min(len(new), _SCREEN_ROWS)
    x = new[:head, :, None]
    y = others[:head, None, :]
    y = y.astype(np.result_type(y, 1.0), copy=False)  # what np.isclose does to its second argument
    with np.errstate(invalid="ignore", over="ignore"):
        close = (np.abs(x - y) <= DUPLICATE_ATOL + DUPLICATE_RTOL * np.abs(y)) & np.isfinite(y) | (x == y)
    return close.all(axis=0)


def first_duplicate(column: np.ndarray, others: np.ndarray) -> int | None:
    """The index of the first column of ``others`` (shape ``(n_rows, k)``) that ``column`` duplicates
    (``np.allclose`` with :data:`DUPLICATE_RTOL` and :data:`DUPLICATE_ATOL`); None if none.

    Every column is first compared on the first rows at once (:func:`_possibly_equal`), and only
    those that agree there are compared whole: comparing each one whole cost a 24-feature
    transformation some 800 ``np.allclose`` calls per fold, and almost every pair differs within
    the first rows."""
    column = np.asarray(column).reshape(-1, 1)
    for k in np.flatnonzero(_possibly_equal(column, others)[0]):
        if np.allclose(column[:, 0], others[:, k], rtol=DUPLICATE_RTOL, atol=DUPLICATE_ATOL):
            return int(k)
    return None


def check_values(new: np.ndarray, original: np.ndarray | None = None, rows: np.ndarray | None = None) -> None:
    """Reject new columns that are non-finite, constant, or duplicate another column.

    ``rows`` restricts the check to some rows (the training rows).  A column duplicates another
    as :func:`first_duplicate` tells; the first duplicate in the order (each new column against
    the new columns before it, then against the original columns) is the one reported.
    """
    if rows is not None:
        new = new[rows]
        original = original[rows] if original is not None else None
    if not np.all(np.isfinite(new)):
        raise InvalidSequence(ErrorKind.NON_FINITE, "a new feature has non-finite values")
    spans = new.max(axis=0) - new.min(axis=0)
    for j, span in enumerate(spans):
        if not span > 1e-12 * max(1.0, float(np.abs(new[:, j]).max())):
            raise InvalidSequence(ErrorKind.CONSTANT_FEATURE, f"new feature {j + 1} is constant")
    for j in range(new.shape[1]):
        k = first_duplicate(new[:, j], new[:, :j])
        if k is not None:
            raise InvalidSequence(ErrorKind.DUPLICATE_FEATURE, f"new feature {j + 1} equals new feature {k + 1}")
        if original is not None and first_duplicate(new[:, j], original) is not None:
            raise InvalidSequence(ErrorKind.DUPLICATE_FEATURE, f"new feature {j + 1} equals an original column")
