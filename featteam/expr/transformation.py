"""A transformation you can fit, apply, save and load - with numpy and pandas alone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .imputation import fill_missing, fit_medians
from .program import States, evaluate
from .sequence import (
    DEFAULT_MAX_FEATURES, DEFAULT_MAX_LENGTH, check_structure, parse, render_feature,
    split_features, to_postfix_text,
)

SCHEMA_VERSION = 1


class TransformationError(ValueError):
    """A transformation cannot be applied to the given data (columns, values, file)."""


@dataclass
class Transformation:
    """New features as one postfix sequence over named input columns.

    Parameters
    ----------
    tokens : list of str
        The postfix sequence over ``f0..f{d-1}``.
    input_columns : list of str
        Names of the d input columns, in the order ``f{i}`` refers to.
    impute_values : list of float, optional
        Fitted: the value that replaces a missing or non-finite input, per column
        (the training median).
    states : dict, optional
        Fitted: the states of stateful operators by token position.
    metadata : dict
        Free information kept in the JSON (task, scores, provenance).
    """

    tokens: list[str]
    input_columns: list[str]
    impute_values: list[float] | None = None
    states: States | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tokens = list(self.tokens)
        self.input_columns = [str(c) for c in self.input_columns]
        check_structure(self.tokens, len(self.input_columns), max_length=max(len(self.tokens), DEFAULT_MAX_LENGTH),
                        max_features=max(len(split_features(self.tokens)), DEFAULT_MAX_FEATURES),
                        max_feature_length=None)

    @classmethod
    def from_text(cls, text: str, input_columns: Sequence[str]) -> "Transformation":
        """Build from postfix (``[a b + , c sqrt]``) or infix (``(a + b), sqrt(c)``) text."""
        return cls(parse(text, list(map(str, input_columns))), list(input_columns))

    # -- what it computes -----------------------------------------------------------

    @property
    def features(self) -> list[list[str]]:
        return split_features(self.tokens)

    @property
    def formulas(self) -> list[str]:
        """Readable infix formula of each new feature, with the column names."""
        return [render_feature(f, self.input_columns) for f in self.features]

    @property
    def postfix(self) -> str:
        return to_postfix_text(self.tokens)

    @property
    def is_fitted(self) -> bool:
        return self.impute_values is not None and self.states is not None

    def _matrix(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The input columns of ``X`` as a float matrix, checked by name or count."""
        if isinstance(X, pd.DataFrame):
            names = [str(c) for c in X.columns]
            missing = [c for c in self.input_columns if c not in names]
            if missing:
                raise TransformationError(f"input is missing column(s) {missing}; "
                                          f"the transformation needs {self.input_columns}")
            X = X.loc[:, [X.columns[names.index(c)] for c in self.input_columns]]
            try:
                return X.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise TransformationError(f"input columns must be numeric: {exc}") from None
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.input_columns):
            raise TransformationError(f"expected {len(self.input_columns)} columns, got shape {matrix.shape}")
        return matrix

    def fit(self, X: pd.DataFrame | np.ndarray) -> "Transformation":
        """A fitted copy: imputation values and operator states from the rows of ``X``."""
        matrix = self._matrix(X)
        if matrix.shape[0] == 0:
            raise TransformationError("cannot fit a transformation on zero rows")
        impute = fit_medians(matrix).tolist()  # Python floats: the JSON keeps them
        filled = fill_missing(matrix, impute)
        _, states = evaluate(self.tokens, filled)
        return Transformation(self.tokens, self.input_columns, impute, states, dict(self.metadata))

    def impute(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The input columns with missing or non-finite values replaced by the fitted values."""
        self._require_fitted()
        return fill_missing(self._matrix(X), self.impute_values)

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The new features for the rows of ``X``, shape (n_rows, n_new_features)."""
        self._require_fitted()
        new, _ = evaluate(self.tokens, self.impute(X), self.states)
        return new

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise TransformationError("the transformation is not fitted: call fit(X) first")

    # -- persistence ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "featteam.transformation",
            "input_columns": self.input_columns,
            "postfix": to_postfix_text(self.tokens),
            "formulas": self.formulas,
            "tokens": self.tokens,
            "impute_values": self.impute_values,
            "states": None if self.states is None else {str(k): v for k, v in self.states.items()},
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Transformation":
        if not isinstance(data, dict) or data.get("kind") != "featteam.transformation":
            raise TransformationError("not a featteam transformation file")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise TransformationError(f"unsupported schema_version {version!r} (this featteam reads {SCHEMA_VERSION})")
        try:
            states = data.get("states")
            return cls(
                tokens=list(data["tokens"]),
                input_columns=list(data["input_columns"]),
                impute_values=data.get("impute_values"),
                states=None if states is None else {int(k): v for k, v in states.items()},
                metadata=dict(data.get("metadata") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TransformationError(f"malformed transformation file: {exc}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Transformation":
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise TransformationError(f"cannot read {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise TransformationError(f"{path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)
