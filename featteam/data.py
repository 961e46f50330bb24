"""Loading tables, input checks, task inference and the preprocessing of raw columns.

Raw tables arrive with missing values, infinities, text and categorical
columns, constant or duplicate columns and odd names.  :func:`prepare`
turns one into a :class:`Dataset` - numeric features, an encoded target, the
task - and says (through ``logging`` and ``Dataset.notes``) everything it
did.  What it learned is kept in a :class:`Preprocessor` so that new raw
rows are treated the same way.  Missing values are *not* filled here: that
is fitted on training rows only, by :class:`~featteam.expr.Transformation`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .errors import DataError

logger = logging.getLogger(__name__)

Task = Literal["classification", "regression"]
#: Fewest rows featteam accepts (5-fold cross-validation on a 20% split needs a few dozen).
MIN_ROWS = 30
#: Most distinct values a text column may have to be encoded as a category.
MAX_CATEGORIES = 50
#: Most distinct target values (integers) for a numeric target to be read as classes.
MAX_CLASSES = 30


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (optionally gzipped) or Parquet file into a DataFrame."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file: {path}")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".parquet" in suffixes or ".pq" in suffixes:
            return pd.read_parquet(path)
        sep = "\t" if ".tsv" in suffixes else ","
        return pd.read_csv(path, sep=sep)
    except (OSError, ValueError, UnicodeDecodeError, ImportError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def infer_task(y: pd.Series) -> Task:
    """Classification for non-numeric targets and integer targets with few values; else regression."""
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = y.to_numpy(dtype=float)
    n_unique = len(np.unique(values))
    if np.all(np.mod(values, 1) == 0) and n_unique <= min(MAX_CLASSES, max(2, len(values) // 5)):
        return "classification"
    return "regression"


@dataclass
class Preprocessor:
    """What :func:`prepare` learned about the raw feature columns, re-applicable to new rows."""

    columns: list[str]                                   # kept feature columns, in order
    categories: dict[str, list[str]] = field(default_factory=dict)  # text column -> its categories
    source_names: dict[str, Any] = field(default_factory=dict)      # clean name -> raw column label

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numeric feature frame (NaN for missing, unknown categories and non-finite values)."""
        out = {}
        for name in self.columns:
            raw = self.source_names.get(name, name)
            if raw not in frame.columns:
                if name in frame.columns:
                    raw = name
                else:
                    raise DataError(f"column {name!r} is missing from the input")
            column = frame[raw]
            if name in self.categories:
                lookup = {c: float(i) for i, c in enumerate(self.categories[name])}
                out[name] = column.astype("string").map(lookup).astype(float)
            else:
                out[name] = _to_float(column)
        result = pd.DataFrame(out, index=frame.index)
        return result.replace([np.inf, -np.inf], np.nan)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "categories": self.categories,
                "source_names": {k: str(v) for k, v in self.source_names.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessor":
        return cls(list(data["columns"]), dict(data.get("categories") or {}), dict(data.get("source_names") or {}))


@dataclass
class Dataset:
    """A prepared table: numeric features (NaN allowed), encoded target and task."""

    X: pd.DataFrame
    y: np.ndarray
    task: Task
    target: str
    preprocessor: Preprocessor
    classes: list[Any] | None = None
    notes: list[str] = field(default_factory=list)
    name: str = "data"

    @property
    def n_rows(self) -> int:
        return len(self.X)


def _to_float(column: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(column):
        return column.astype(float)
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.astype("int64").astype(float).where(column.notna())
    return pd.to_numeric(column, errors="coerce").astype(float)


def _clean_names(columns: list[Any], notes: list[str]) -> list[str]:
    """Column labels as unique, non-empty strings (renaming is reported)."""
    out: list[str] = []
    seen: set[str] = set()
    for i, label in enumerate(columns):
        name = str(label).strip() or f"column_{i}"
        base, k = name, 1
        while name in seen:
            name = f"{base}.{k}"
            k += 1
        if name != str(label):
            notes.append(f"renamed column {str(label)!r} to {name!r}")
        seen.add(name)
        out.append(name)
    return out


def prepare(frame: pd.DataFrame, target: str, task: Task | None = None,
            nan: Literal["impute", "refuse"] = "impute", name: str = "data",
            drop_redundant: bool = False) -> Dataset:
    """Check and encode a raw table for featteam.

    Parameters
    ----------
    frame : DataFrame
        The raw table, target column included.
    target : str
        Name of the target column.
    task : {"classification", "regression"}, optional
        Overrides the inferred task.
    nan : {"impute", "refuse"}
        What to do with missing or infinite feature values: impute them (with
        training-row medians, later) or refuse the table.
    drop_redundant : bool
        Drop constant and duplicate columns.  Off by default: they are kept
        (with a warning) so that scores match the literature's, which keeps them.

    Raises
    ------
    DataError
        With a message that says what is wrong and how to fix it.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError("expected a pandas DataFrame")
    if nan not in ("impute", "refuse"):
        raise DataError(f"nan must be 'impute' or 'refuse', not {nan!r}")
    if task not in (None, "classification", "regression"):
        raise DataError(f"task must be 'classification' or 'regression', not {task!r}")
    labels = [str(c) for c in frame.columns]
    if str(target) not in labels:
        shown = ", ".join(labels[:20]) + (" ..." if len(labels) > 20 else "")
        raise DataError(f"target column {target!r} not found; columns are: {shown}")
    if labels.count(str(target)) > 1:
        raise DataError(f"more than one column is named {target!r}")
    notes: list[str] = []
    y_raw = frame.iloc[:, labels.index(str(target))]
    features = frame.drop(columns=frame.columns[labels.index(str(target))])

    missing_target = y_raw.isna().to_numpy().copy()
    if pd.api.types.is_numeric_dtype(y_raw) and not pd.api.types.is_bool_dtype(y_raw):
        missing_target |= ~np.isfinite(y_raw.to_numpy(dtype=float, na_value=np.nan))
    if missing_target.any():
        notes.append(f"dropped {int(missing_target.sum())} row(s) whose target is missing or infinite")
        y_raw, features = y_raw[~missing_target], features[~missing_target]
    if len(y_raw) < MIN_ROWS:
        raise DataError(f"too few rows: {len(y_raw)} with a target, featteam needs at least {MIN_ROWS}")

    task = task or infer_task(y_raw)
    classes = None
    if task == "classification":
        codes, uniques = pd.factorize(y_raw.astype("string") if not pd.api.types.is_numeric_dtype(y_raw) else y_raw,
                                      sort=True)
        if len(uniques) < 2:
            raise DataError(f"the target {target!r} has only one class ({uniques[0]!r}): nothing to learn")
        counts = np.bincount(codes)
        if counts.min() < 2:
            rare = [str(uniques[i]) for i in np.flatnonzero(counts < 2)]
            notes.append(f"class(es) {rare} of {target!r} have a single row: cross-validation "
                         "cannot stratify them (consider merging them with another class)")
        y = codes.astype(np.int64)
        classes = [u.item() if hasattr(u, "item") else u for u in uniques]
    else:
        y = pd.to_numeric(y_raw, errors="coerce").to_numpy(dtype=float)
        if np.isnan(y).any():
            raise DataError(f"the target {target!r} is not numeric; use --task classification")
        if np.ptp(y) == 0:
            raise DataError(f"the target {target!r} is constant: nothing to learn")

    names = _clean_names(list(features.columns), notes)
    source_names = dict(zip(names, features.columns))
    columns: dict[str, pd.Series] = {}
    categories: dict[str, list[str]] = {}
    for clean, raw in source_names.items():
        column = features[raw]
        if isinstance(column, pd.DataFrame):  # duplicate raw labels: take by position
            column = features.iloc[:, names.index(clean)]
        numeric = _to_float(column)
        non_missing = column.notna().sum()
        if non_missing and numeric.notna().sum() >= 0.95 * non_missing:
            lost = int(non_missing - numeric.notna().sum())
            if lost:
                notes.append(f"column {clean!r}: {lost} non-numeric value(s) treated as missing")
            columns[clean] = numeric
            continue
        text = column.astype("string")
        uniques = sorted(text.dropna().unique().tolist())
        if len(uniques) <= MAX_CATEGORIES and len(uniques) <= max(2, 0.5 * len(text)):
            categories[clean] = uniques
            columns[clean] = text.map({c: float(i) for i, c in enumerate(uniques)}).astype(float)
            notes.append(f"column {clean!r}: text with {len(uniques)} categories, encoded as ordinal codes")
        else:
            notes.append(f"column {clean!r}: dropped, text with {len(uniques)} distinct values "
                         "(an identifier or free text) is not a feature featteam can use")
    X = pd.DataFrame(columns, index=features.index)
    n_inf = int(np.isinf(X.to_numpy()).sum())
    X = X.replace([np.inf, -np.inf], np.nan)

    for col in list(X.columns):
        if X[col].notna().sum() == 0:
            notes.append(f"column {col!r}: dropped, no usable value")
            X = X.drop(columns=col)
    redundant = [c for c in X.columns if X[c].nunique(dropna=True) <= 1 and not X[c].isna().any()]
    for col in redundant:
        notes.append(f"column {col!r}: constant" + (", dropped" if drop_redundant else
                     ", kept (it carries no information; --drop-redundant removes it)"))
    duplicated = X.T.duplicated().to_numpy() if X.shape[1] else np.array([], bool)
    for col in X.columns[duplicated]:
        notes.append(f"column {col!r}: duplicate of an earlier column" + (", dropped" if drop_redundant else
                     ", kept (--drop-redundant removes it)"))
    if drop_redundant:
        X = X.loc[:, ~duplicated & ~X.columns.isin(redundant)]
    if X.shape[1] == 0:
        raise DataError("no usable feature column is left (all were empty, free text, or dropped as redundant)")

    missing = X.isna().sum()
    missing = missing[missing > 0]
    if len(missing):
        detail = ", ".join(f"{c!r}: {n}" for c, n in missing.items())
        if nan == "refuse":
            raise DataError(f"missing or infinite values in {detail} (use nan='impute' / --nan impute "
                            "to fill them with training medians)")
        notes.append(f"missing or infinite values ({n_inf} infinite) will be imputed with training medians: {detail}")
    for note in notes:
        logger.warning(note)
    categories = {c: v for c, v in categories.items() if c in X.columns}
    preprocessor = Preprocessor(list(X.columns), categories, {c: source_names[c] for c in X.columns})
    X = X.reset_index(drop=True)
    return Dataset(X=X, y=y, task=task, target=str(target), preprocessor=preprocessor,
                   classes=classes, notes=notes, name=name)


def load_dataset(path: str | Path, target: str, task: Task | None = None,
                 nan: Literal["impute", "refuse"] = "impute", drop_redundant: bool = False) -> Dataset:
    """:func:`load_table` then :func:`prepare`, named after the file."""
    name = Path(path).name.split(".")[0]
    return prepare(load_table(path), target, task=task, nan=nan, name=name, drop_redundant=drop_redundant)
