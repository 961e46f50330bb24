"""The peers featteam is measured against: OpenFE and autofeat, behind one small interface.

Each peer is a ``generate(X_fit, y_fit, X_apply, task, seed, n_jobs)`` that learns new columns on
``X_fit`` and returns them (new columns only) for ``X_fit`` and ``X_apply``, their formulas and a note;
``Evaluator.final_score_generated`` scores them on the same split and with the same downstream
model as featteam's candidates.  The peers are imported here only, from the ``bench`` extra.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Callable, Iterable

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: OpenFE ranks thousands of candidates; its authors' examples keep the top ones.
OPENFE_TOP_K = 10


def peer_column_names(columns: Iterable[int]) -> list[str]:
    """The names the peers see for the table's columns ``columns``, and write into their formulas:
    plain ``x<index in the table>`` (autofeat parses column names with sympy)."""
    return [f"x{i}" for i in columns]


def _frame(X: np.ndarray, columns: np.ndarray | None = None) -> pd.DataFrame:
    columns = np.arange(X.shape[1]) if columns is None else columns
    return pd.DataFrame(X[:, columns], columns=peer_column_names(columns))


def _openfe_compatible() -> None:
    """OpenFE 0.0.12 calls ``mean_squared_error(..., squared=False)`` on regression tasks, a keyword
    scikit-learn 1.6 removed (``root_mean_squared_error`` replaces it); translate it where OpenFE
    calls it."""
    import openfe.FeatureSelector
    import openfe.openfe
    from sklearn.metrics import mean_squared_error, root_mean_squared_error

    def mean_squared_error_compat(*args, squared: bool = True, **kwargs):
        return (mean_squared_error if squared else root_mean_squared_error)(*args, **kwargs)

    for module in (openfe.openfe, openfe.FeatureSelector):
        if hasattr(module, "mean_squared_error"):
            module.mean_squared_error = mean_squared_error_compat


def openfe_generate(X_fit: np.ndarray, y_fit: np.ndarray, X_apply: np.ndarray, task: str, seed: int,
                    n_jobs: int) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """OpenFE (Zhang et al., ICML 2023) with its defaults; the top ``OPENFE_TOP_K`` features.

    OpenFE splits the rows into 8 data blocks; on a multi-class table a rare class can be
    missing from a block, and OpenFE then calls ``exit()``.  It is then run once more with one
    block (``n_data_blocks=1``), and the note says so."""
    from openfe import OpenFE, transform, tree_to_formula

    _openfe_compatible()
    fit_frame, apply_frame = _frame(X_fit), _frame(X_apply)
    note = ""
    with tempfile.TemporaryDirectory() as tmp:
        settings = dict(data=fit_frame, label=pd.DataFrame({"y": y_fit}), task=task, n_jobs=n_jobs, seed=seed,
                        verbose=False, tmp_save_path=os.path.join(tmp, "openfe_tmp.feather"))
        try:
            features = OpenFE().fit(**settings)
        except SystemExit:
            note = "OpenFE exited with its 8 data blocks (a class missing from a block); run with n_data_blocks=1"
            logger.warning(note)
            features = OpenFE().fit(**settings, n_data_blocks=1)
        chosen = features[:OPENFE_TOP_K]
        if not chosen:
            return np.empty((len(X_fit), 0)), np.empty((len(X_apply), 0)), [], note
        fit_new, apply_new = transform(fit_frame, apply_frame, chosen, n_jobs=n_jobs)
    names = [c for c in fit_new.columns if c not in fit_frame.columns]
    formulas = [tree_to_formula(f) for f in chosen]
    return (fit_new[names].to_numpy(dtype=np.float64), apply_new[names].to_numpy(dtype=np.float64), formulas, note)


def _autofeat_compatible() -> None:
    """autofeat 2.1.3 still passes ``force_all_finite`` to scikit-learn's ``check_array``, a keyword
    scikit-learn 1.8 removed (renamed ``ensure_all_finite``); translate it where autofeat calls it."""
    import autofeat.autofeat
    import autofeat.featsel
    from sklearn.utils.validation import check_array

    def check_array_compat(*args, **kwargs):
        if "force_all_finite" in kwargs:
            kwargs["ensure_all_finite"] = kwargs.pop("force_all_finite")
        return check_array(*args, **kwargs)

    for module in (autofeat.autofeat, autofeat.featsel):
        module.check_array = check_array_compat


def autofeat_generate(X_fit: np.ndarray, y_fit: np.ndarray, X_apply: np.ndarray, task: str, seed: int,
                      n_jobs: int) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """autofeat (Horn et al., 2019) with its defaults (two feature-engineering steps), memory capped.

    It runs on one core whatever ``n_jobs`` says, because its result depends on how it is spread:
    its feature selection run in worker processes kept other features (8 against 3 on a 300-row
    table: its last noise filtering draws from a global generator whose state then differs), and
    so did its linear models with two BLAS threads instead of one (12 features against 11).  The
    bench gives each configuration one thread by default anyway.  Its runs also iterate over a set
    of column names, whose order the bench fixes with ``PYTHONHASHSEED``."""
    from autofeat import AutoFeatClassifier, AutoFeatRegressor
    from threadpoolctl import threadpool_limits

    _autofeat_compatible()
    np.random.seed(seed)  # autofeat draws from the global generator in its feature selection
    cls = AutoFeatClassifier if task == "classification" else AutoFeatRegressor
    model = cls(n_jobs=1, max_gb=4, verbose=0)
    # autofeat's feature selection standardises every column, so a column constant on the rows it
    # learns from turns into NaN and stops it (ionosphere's second column): leave such columns out,
    # as a user would.
    varying = np.nanmax(X_fit, axis=0) > np.nanmin(X_fit, axis=0)
    if not varying.any():
        return np.empty((len(X_fit), 0)), np.empty((len(X_apply), 0)), [], "every column is constant"
    columns = np.flatnonzero(varying)
    fit_frame, apply_frame = _frame(X_fit, columns), _frame(X_apply, columns)
    with threadpool_limits(limits=1):
        fitted = model.fit_transform(fit_frame, y_fit)
        applied = model.transform(apply_frame)
    names = list(model.new_feat_cols_)
    return (fitted[names].to_numpy(dtype=np.float64), applied[names].to_numpy(dtype=np.float64), names, "")


PEERS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray, list[str], str]]] = {
    "openfe": openfe_generate,
    "autofeat": autofeat_generate,
}
