"""The scikit-learn estimator that searches new features: ``FeatTeam().fit(X, y).transform(X)``."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .errors import DataError, FeatteamError


#: FitConfig fields that FeatTeam's own parameters set (field -> parameter).
_OWN_SETTINGS = {"preset": "preset", "protocol": "protocol", "teacher": "teacher", "seed": "random_state"}


class FeatTeam(TransformerMixin, BaseEstimator):
    """Search a transformation with the four steps of the method, then apply it.

    Parameters
    ----------
    preset : {"quick", "default", "paper", "demo"}
    protocol : {"honest", "paper"}
    teacher : {"local", "openai", "none"}
    task : {"classification", "regression"} or None
        Inferred from ``y`` when None.
    run_dir : str or None
        Where the run is written. None (the default): the whole fit happens in a temporary
        directory that is removed when ``fit`` returns; the fitted estimator keeps what it needs
        in memory (``transformation_``, ``report_``) and no path into that directory.
        A directory: the training data is written there as ``training_data.parquet`` and the run
        under ``run/``, and both are kept: a fit started again in the same directory with the
        same data resumes where the last one stopped.
    keep_original : bool
        ``transform`` returns the original columns before the new ones, as numbers the way the
        fit read them (text categories as codes; a free-text column the fit dropped left out).
    random_state : int
    n_jobs : int
        Parallel scoring jobs; results do not depend on it.
    scheduler : str, optional
        A Dask scheduler's address (``tcp://HOST:PORT``): score and screen candidates on its
        workers instead of ``n_jobs`` local processes (needs ``featteam[cluster]``); results do
        not depend on it.
    progress : bool
    settings : dict, optional
        Overrides of the preset's settings: any field of ``featteam.config.FitConfig`` but
        ``preset``, ``protocol``, ``teacher`` and ``seed``, which this estimator's own parameters
        set (``fit`` refuses them here rather than ignore them).

    Attributes
    ----------
    transformation_ : Transformation
        The chosen transformation, fitted on the training split.
    report_ : featteam.report.RunReport
        The run's report (scores, per-mode results, timings). With ``run_dir=None`` the paths
        it recorded into the removed temporary directory (the training table's) are None.
    feature_names_in_ : ndarray
    n_features_in_ : int
    """

    def __init__(self, preset: str = "quick", protocol: str = "honest", teacher: str = "local", task: str | None = None,
                 run_dir: str | None = None, keep_original: bool = True, random_state: int = 0, n_jobs: int = -1,
                 progress: bool = False, settings: dict | None = None, scheduler: str | None = None) -> None:
        self.preset = preset
        self.protocol = protocol
        self.teacher = teacher
        self.task = task
        self.run_dir = run_dir
        self.keep_original = keep_original
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.progress = progress
        self.settings = settings
        self.scheduler = scheduler

    def fit(self, X, y) -> "FeatTeam":
        """Search a transformation for ``X`` and ``y``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        FeatTeam
            This estimator, fitted.

        Notes
        -----
        The run reads its table from a Parquet file, which keeps the columns' types (dates, text,
        booleans), so the search reads ``X`` as :func:`featteam.prepare` reads it and as
        ``transform`` does; with ``run_dir=None`` that file and the run live in a
        ``tempfile.TemporaryDirectory`` removed before ``fit`` returns.
        """
        owned = sorted(set(self.settings or {}) & set(_OWN_SETTINGS))
        if owned:
            raise FeatteamError(f"settings may not set {', '.join(owned)}: use the estimator's parameter(s) "
                                f"{', '.join(_OWN_SETTINGS[k] for k in owned)}")
        if not isinstance(self.random_state, (int, np.integer)) or isinstance(self.random_state, bool):
            raise FeatteamError(f"random_state must be an integer seed, not {self.random_state!r}: featteam's "
                                "result is reproducible, the same seed and data give the same features")
        if y is None:
            raise DataError("y is required: FeatTeam searches features that predict it")
        if isinstance(X, pd.DataFrame):
            frame = X.copy()
        else:
            matrix = np.asarray(X)
            if matrix.ndim != 2:
                raise DataError(f"X must be a table (rows x columns), not an array of shape {matrix.shape}")
            frame = pd.DataFrame(matrix, columns=[f"x{i}" for i in range(matrix.shape[1])])
        frame.columns = [str(c) for c in frame.columns]
        repeated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
        if repeated:
            raise DataError(f"X has more than one column named {repeated[:20]}; rename them")
        target = "__featteam_target__"
        if target in frame.columns:
            raise DataError(f"a column is named {target!r}; rename it")
        from .data import refuse_complex

        refuse_complex(frame)
        y = np.asarray(y)
        if np.iscomplexobj(y):
            raise DataError("y holds complex numbers: featteam learns real or class targets")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"y must be one column of targets, not an array of shape {y.shape}")
        if len(y) != len(frame):
            raise DataError(f"X has {len(frame)} rows but y has {len(y)}")
        frame[target] = y
        if self.run_dir:
            self._fit_in(Path(self.run_dir), frame, target)
        else:
            with tempfile.TemporaryDirectory(prefix="featteam-") as tmp:
                self._fit_in(Path(tmp), frame, target)
                # The directory goes away on leaving this block: keep no path that points into it.
                self.report_ = _forget_paths_under(self.report_, Path(tmp))
                self.transformation_.metadata = _forget_paths_under(self.transformation_.metadata, Path(tmp))
        self._columns_in = [c for c in frame.columns if c != target]  # as the run's table names them
        self.n_features_in_ = len(self._columns_in)
        # scikit-learn's convention: only a DataFrame with string column names has feature names.
        if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
            self.feature_names_in_ = np.asarray(self._columns_in, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def _fit_in(self, directory: Path, frame: pd.DataFrame, target: str) -> None:
        """Write ``frame`` into ``directory``, run the method there and load its results into memory.

        Parameters
        ----------
        directory : Path
            Created if missing; receives ``training_data.parquet`` and the run in ``run/``.
        frame : DataFrame
            The features and the target column.
        target : str
            The target column's name.
        """
        from .config import FitConfig
        from .expr import Transformation
        from .pipeline import Run

        directory.mkdir(parents=True, exist_ok=True)
        data_path = directory / "training_data.parquet"
        _write_parquet(frame, data_path)
        settings = self.settings or {}
        config = FitConfig.from_preset(self.preset, **{**settings, "protocol": self.protocol,
                                                       "teacher": self.teacher, "seed": int(self.random_state)})
        # from_preset skips None (an option the CLI was not given); here None is a value asked for
        # (search_trees=None: the downstream model's trees), set over the preset and validated.
        config = dataclasses.replace(config, **{k: v for k, v in settings.items() if v is None})
        run = Run(directory / "run", data_path, target, config, n_jobs=self.n_jobs, progress=self.progress,
                  task=self.task, scheduler=self.scheduler)
        self.report_ = run.execute()
        self.transformation_ = Transformation.load(directory / "run" / "transformation.json")

    def _fitted_columns(self) -> list[str]:
        """The fit's columns as the run's table named them (an estimator pickled by an older
        featteam has only ``feature_names_in_``)."""
        return getattr(self, "_columns_in", None) or [str(c) for c in self.feature_names_in_]

    def _preprocessor(self):
        from .data import Preprocessor

        preprocessor = Preprocessor.saved_in(self.transformation_.metadata)
        if preprocessor is None:  # every fit saves one: only a transformation_ set by hand lacks it
            raise DataError("transformation_ has no saved reading of the table (metadata.preprocessor)")
        return preprocessor

    def transform(self, X):
        """The original columns (with ``keep_original``) and the new features of ``X``'s rows.

        The columns are read as the fit read them: text categories become the codes the search
        used, dates seconds, values beyond featteam's bound are clipped, and a column the fit
        dropped (free text, an identifier) is left out; so every output column is a number."""
        check_is_fitted(self, "transformation_")
        if isinstance(X, pd.DataFrame):
            frame = X
        else:
            matrix = np.asarray(X)
            if matrix.ndim != 2 or matrix.shape[1] != self.n_features_in_:
                raise DataError(f"X has shape {matrix.shape}; the fit saw {self.n_features_in_} columns")
            frame = pd.DataFrame(matrix, columns=self._fitted_columns())
        numeric = self._preprocessor().transform(frame.rename(columns=str))
        new = self.transformation_.transform(numeric)
        if not self.keep_original:
            return new
        return np.hstack([numeric.to_numpy(dtype=float), new])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The original columns the fit kept (with ``keep_original``) and each new feature's formula
        (``new: formula`` where a column already has that name, so that every name is unique).
        ``input_features``, if given, must be the fit's columns: the output names the columns as
        the fit read them (a column it dropped is not output)."""
        from .expr import output_names
        from .transformer import checked_input_features

        check_is_fitted(self, "transformation_")
        checked_input_features(self, input_features, self._fitted_columns())
        originals = list(self._preprocessor().columns) if self.keep_original else []
        return np.asarray(originals + output_names(originals, self.transformation_.formulas), dtype=object)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write the training table as Parquet, which keeps its columns' types.  An object column that
    Parquet cannot hold as it is (numbers mixed with text) is written as text: the table's reading
    turns text back into the same numbers (:func:`featteam.prepare`)."""
    import pyarrow

    try:
        frame.to_parquet(path, index=False)
    except (pyarrow.ArrowException, TypeError, ValueError):
        mixed = frame.columns[[pd.api.types.is_object_dtype(dtype) for dtype in frame.dtypes]]
        frame.astype({c: "string" for c in mixed}).to_parquet(path, index=False)


def _forget_paths_under(value: Any, root: Path) -> Any:
    """A copy of ``value`` (nested dicts, lists and strings) where every path under ``root`` is None.

    Parameters
    ----------
    value : Any
        A JSON-like structure, such as a run's report.
    root : Path
        A directory about to be removed.

    Returns
    -------
    Any
    """
    # Both spellings: the temporary directory may sit behind a symbolic link (/tmp, /var on macOS).
    roots = {str(root), str(root.resolve())}

    def forget(item: Any) -> Any:
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return dataclasses.replace(item, **{f.name: forget(getattr(item, f.name))
                                                for f in dataclasses.fields(item) if f.init})
        if isinstance(item, dict):
            return {key: forget(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return type(item)(forget(inner) for inner in item)
        if isinstance(item, (str, Path)) and any(str(item) == r or str(item).startswith(r + os.sep) for r in roots):
            return None
        return item

    return forget(value)
