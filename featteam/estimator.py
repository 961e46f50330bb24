"""The scikit-learn estimator that searches new features: ``FeatTeam().fit(X, y).transform(X)``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .errors import DataError


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
        Where the run is written (a temporary directory by default); a run started
        again in the same directory resumes.
    keep_original : bool
        ``transform`` returns the original columns before the new ones.
    random_state : int
    n_jobs : int
        Parallel scoring jobs; results do not depend on it.
    progress : bool
    settings : dict, optional
        Overrides of the preset's settings (any field of ``featteam.pipeline.FitConfig``).

    Attributes
    ----------
    transformation_ : Transformation
        The chosen transformation, fitted on the training split.
    report_ : dict
        The run's report (scores, per-mode results, timings).
    feature_names_in_ : ndarray
    n_features_in_ : int
    """

    def __init__(self, preset: str = "quick", protocol: str = "honest", teacher: str = "local", task: str | None = None,
                 run_dir: str | None = None, keep_original: bool = True, random_state: int = 0, n_jobs: int = -1,
                 progress: bool = False, settings: dict | None = None) -> None:
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

    def fit(self, X, y) -> "FeatTeam":
        from .pipeline import FitConfig, Run

        frame = X.copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X),
                                                                           columns=[f"x{i}" for i in range(np.shape(X)[1])])
        frame.columns = [str(c) for c in frame.columns]
        target = "__featteam_target__"
        if target in frame.columns:
            raise DataError(f"a column is named {target!r}; rename it")
        y = np.asarray(y)
        if len(y) != len(frame):
            raise DataError(f"X has {len(frame)} rows but y has {len(y)}")
        frame[target] = y
        directory = Path(self.run_dir) if self.run_dir else Path(tempfile.mkdtemp(prefix="featteam-"))
        directory.mkdir(parents=True, exist_ok=True)
        data_path = directory / "training_data.csv"
        frame.to_csv(data_path, index=False)
        config = FitConfig.from_preset(self.preset, **{**(self.settings or {}), "protocol": self.protocol,
                                                       "teacher": self.teacher, "seed": self.random_state})
        run = Run(directory / "run", data_path, target, config, n_jobs=self.n_jobs, progress=self.progress,
                  task=self.task)
        self.report_ = run.execute()
        from .expr import Transformation

        self.transformation_ = Transformation.load(directory / "run" / "transformation.json")
        self.feature_names_in_ = np.asarray([c for c in frame.columns if c != target], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X):
        check_is_fitted(self, "transformation_")
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X), columns=self.feature_names_in_)
        frame = frame.rename(columns=str)
        from .data import Preprocessor

        numeric = Preprocessor.from_dict(self.transformation_.metadata["preprocessor"]).transform(frame)
        new = self.transformation_.transform(numeric)
        if not self.keep_original:
            return new
        return np.hstack([frame[list(self.feature_names_in_)].to_numpy(dtype=float, na_value=np.nan), new])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "transformation_")
        originals = list(self.feature_names_in_) if self.keep_original else []
        return np.asarray(originals + self.transformation_.formulas, dtype=object)
