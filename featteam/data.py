"""Loading tables, input checks, task inference and the preprocessing of raw columns.

Raw tables arrive with missing values, infinities, text and categorical
columns, constant or duplicate columns and odd names.  :func:`prepare`
turns one into a :class:`Dataset` - numeric features, an encoded target, the
task - and says (through ``logging`` and ``Dataset.notes``) everything it
did.  What it learned is kept in a :class:`Preprocessor` so that new raw
rows are treated the same way.  Missing values are *not* filled here: that
is fitted on training rows only, by :class:`~featteam.expr.Transformation`.

Finite values beyond the operators' bound (``featteam.expr.operators.BOUND``,
+-1e15) are clipped to it, here and in :meth:`Preprocessor.transform`, so that
the rows a model is scored on and the rows it is later applied to agree (and a
value such as 1e300 never reaches scikit-learn's float32 trees).  Dates become
seconds since 1970-01-01 UTC, well inside that bound.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import logging
import lzma
import os
import re
import tarfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .errors import DataError
from .expr.operators import BOUND

logger = logging.getLogger(__name__)

Task = Literal["classification", "regression"]
#: Fewest rows featteam accepts (5-fold cross-validation on a 20% split needs a few dozen).
MIN_ROWS = 30
#: Most distinct values a text column may have to be encoded as a category.
MAX_CATEGORIES = 50
#: Most distinct target values (integers) for a numeric target to be read as classes.
MAX_CLASSES = 30
#: Least share of a column's non-missing values that must read as numbers for it to be numeric
#: (the others become missing values, with a warning); below it the column is text.
NUMERIC_SHARE = 0.8
#: File name endings :func:`write_table` writes (and ``featteam transform --out`` accepts).
OUTPUT_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
#: Key of ``DataFrame.attrs`` where :func:`load_table` records the header's repeated names.
HEADER_ATTR = "featteam.duplicate_headers"


def _read_errors() -> tuple[type[BaseException], ...]:
    """What pandas' readers raise on a file that is not a readable table (not on our bugs)."""
    errors: list[type[BaseException]] = [OSError, ValueError, ImportError, EOFError, zlib.error, lzma.LZMAError,
                                         zipfile.BadZipFile, tarfile.TarError, pd.errors.ParserError,
                                         pd.errors.EmptyDataError]
    try:
        import pyarrow
        errors.append(pyarrow.ArrowException)
    except ImportError:
        pass
    return tuple(errors)


def _describe(exc: BaseException) -> str:
    """One line that says what is wrong with a file that could not be read."""
    if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, zipfile.BadZipFile,
                        tarfile.TarError)):
        return f"the compressed file is corrupt or truncated ({exc})"
    if isinstance(exc, UnicodeDecodeError):
        return f"the text is not UTF-8 ({exc.reason} at byte {exc.start})"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _duplicate_headers(path: Path, sep: str, columns: pd.Index) -> dict[str, str]:
    """``{pandas' name: the header's name}`` for every column whose name the header repeats.

    pandas renames the second ``label`` of a header to ``label.1`` (or further, to avoid a
    name the header already has): only the raw header row tells such a copy from a column
    really named ``label.1``.
    """
    header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False,
                         na_filter=False)
    raw = header.iloc[0].tolist() if len(header) else []
    if len(raw) != len(columns):  # pandas made a column an index (short header): no positions to compare
        return {}
    seen: set[str] = set()
    copies: dict[str, str] = {}
    for name, label in zip(raw, columns):
        if name in seen and name != "":
            copies[str(label)] = name
        seen.add(name)
    return copies


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (optionally compressed: ``.csv.gz``) or Parquet file into a DataFrame.

    Columns whose name the CSV header repeats are listed in ``frame.attrs[HEADER_ATTR]``
    (``{pandas' name: the header's name}``): :func:`prepare` refuses a repeated target.

    Raises
    ------
    DataError
        When the file is missing, corrupt (a truncated ``.gz`` included) or no table.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a table")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".parquet" in suffixes or ".pq" in suffixes:
            frame = pd.read_parquet(path)
            frame.attrs[HEADER_ATTR] = {}  # Parquet keeps its own names: pandas renames nothing
            return frame
        sep = "\t" if ".tsv" in suffixes else ","
        with warnings.catch_warnings():
            # index_col=False: a row with one more (empty) field than the header, as a trailing
            # separator makes, is read as the header says; by default pandas would make the first
            # column the index and shift every name by one (the target named over another column).
            # Fields beyond the header that hold values would be lost: refused (the warning).
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, sep=sep, index_col=False)
        frame.attrs[HEADER_ATTR] = _duplicate_headers(path, sep, frame.columns)
        return frame
    except pd.errors.ParserWarning:
        raise DataError(f"cannot read {path}: some rows have more values than the header has names "
                        "(the extra values would be lost); fix the header or those rows") from None
    except _read_errors() as exc:
        raise DataError(f"cannot read {path}: {_describe(exc)}") from None


def check_output_path(path: str | Path) -> Path:
    """The path of a table to write, checked before any work: a known suffix, an existing folder.

    Raises
    ------
    DataError
        For a suffix other than :data:`OUTPUT_SUFFIXES`, a missing folder, or a folder as the path.
    """
    path = Path(path)
    if not path.name.lower().endswith(OUTPUT_SUFFIXES):
        raise DataError(f"cannot write {path}: the output must end in " + ", ".join(OUTPUT_SUFFIXES))
    if path.is_dir():
        raise DataError(f"cannot write {path}: it is a folder")
    if not path.parent.is_dir():
        raise DataError(f"cannot write {path}: no such folder {path.parent}")
    return path


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as CSV (``.csv``, gzipped for ``.csv.gz``) or Parquet (``.parquet``, ``.pq``),
    atomically: into a temporary file of the same folder, then renamed, so that a killed write
    never leaves half a table under ``path``.

    Raises
    ------
    DataError
        For a path :func:`check_output_path` refuses, or a frame the format cannot hold.
    """
    path = check_output_path(path)
    name = path.name.lower()
    if frame.attrs:  # featteam's notes about how the input was read are not part of the output
        frame = frame.copy(deep=False)
        frame.attrs = {}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if name.endswith((".parquet", ".pq")):
            frame.to_parquet(tmp)
        else:
            frame.to_csv(tmp, index=False, compression="gzip" if name.endswith(".gz") else None)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, _read_errors()):
            raise DataError(f"cannot write {path}: {_describe(exc)}") from None
        raise
    return path


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
    """What :func:`prepare` learned about the raw feature columns, re-applicable to new rows.

    ``datetime_unit`` says how dates become numbers: ``"s"`` (seconds since 1970-01-01 UTC,
    what :func:`prepare` does) or ``"native"`` (the integer of pandas' own unit, as files
    written before this field existed were made).  ``dates`` names the columns that were dates:
    new rows may bring them as text (a CSV file), which is then read as dates.
    """

    columns: list[str]                                   # kept feature columns, in order
    categories: dict[str, list[str]] = field(default_factory=dict)  # text column -> its categories
    source_names: dict[str, Any] = field(default_factory=dict)      # clean name -> raw column label
    datetime_unit: Literal["s", "native"] = "s"
    dates: list[str] = field(default_factory=list)       # columns read as dates (seconds)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numeric feature frame: NaN for missing values, unknown categories, text in a numeric
        column and non-finite values; finite values clipped to +-BOUND, as :func:`prepare` does.
        A value present in ``frame`` that becomes missing here (text that is no number or date,
        a category the fit did not see) is said in a warning, per column: it is imputed later."""
        out = {}
        for name in self.columns:
            raw = self.source_names.get(name, name)
            if raw not in frame.columns:
                if name in frame.columns:
                    raw = name
                else:
                    raise DataError(f"column {name!r} is missing from the input")
            column = frame[raw]
            if isinstance(column, pd.DataFrame):
                raise DataError(f"the input has more than one column named {raw!r}")
            if pd.api.types.is_complex_dtype(column):
                refuse_complex(frame[[raw]])
            if name in self.categories:
                lookup = {c: float(i) for i, c in enumerate(self.categories[name])}
                out[name] = column.astype("string").map(lookup).astype(float)
            elif name in self.dates and not (pd.api.types.is_numeric_dtype(column) or _is_dates(column)):
                out[name] = _to_float(_text_dates(column))
            else:
                out[name] = _to_float(column, self.datetime_unit)
            _warn_unread(name, column, out[name], name in self.categories)
        result = pd.DataFrame(out, index=frame.index, columns=self.columns)
        return _bounded(result.replace([np.inf, -np.inf], np.nan))[0]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "categories": self.categories,
                "source_names": {k: str(v) for k, v in self.source_names.items()},
                "datetime_unit": self.datetime_unit, "dates": self.dates}

    @classmethod
    def saved_in(cls, metadata: dict[str, Any]) -> "Preprocessor | None":
        """The reading of the table that ``featteam fit`` saved in a transformation's ``metadata``
        (checked by :meth:`from_dict`); None for a transformation without one (formula text)."""
        data = metadata.get("preprocessor")
        return None if data is None else cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> "Preprocessor":
        """Read :meth:`to_dict`'s output, checking every field.

        Raises
        ------
        DataError
            Naming the field that is malformed.
        """
        def fail(message: str) -> DataError:
            return DataError(f"malformed preprocessor (metadata.preprocessor of the transformation): {message}")

        if not isinstance(data, dict):
            raise fail(f"expected an object, not {type(data).__name__}")
        columns = data.get("columns")
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise fail("columns must be a list of strings")
        if len(set(columns)) != len(columns):
            raise fail("columns must be distinct")
        categories = {} if data.get("categories") is None else data["categories"]
        if not isinstance(categories, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(c, str) for c in v)
                for k, v in categories.items()):
            raise fail("categories must map column names to lists of strings")
        source_names = {} if data.get("source_names") is None else data["source_names"]
        if not isinstance(source_names, dict) or not all(isinstance(v, str) for v in source_names.values()):
            raise fail("source_names must map column names to strings")
        unit = data.get("datetime_unit", "native")  # absent: written before dates were seconds
        if unit not in ("s", "native"):
            raise fail(f"datetime_unit must be 's' or 'native', not {unit!r}")
        dates = [] if data.get("dates") is None else data["dates"]  # absent: written before it was kept
        if not isinstance(dates, list) or not all(isinstance(c, str) and c in columns for c in dates):
            raise fail("dates must be a list of the columns' names")
        return cls(list(columns), {k: list(v) for k, v in categories.items()}, dict(source_names), unit,
                   list(dates))


@dataclass(frozen=True)
class RawFeatures:
    """The feature columns of a table as :func:`prepare` received them, kept so that the reading
    can be decided again on a subset of the rows (:meth:`Dataset.read_on`).

    ``frame`` holds them only when at least one column is not already numbers (text, mixed
    values), the only case where a reading needs the raw values; a table of numeric, boolean and
    date columns is read again from its numbers, with no second copy."""

    names: list[str]                  # every feature column's clean name, in the table's order
    source_names: dict[str, Any]      # clean name -> raw column label
    frame: pd.DataFrame | None        # the raw columns by position (None: every column numeric)
    drop_redundant: bool
    nan: Literal["impute", "refuse"]


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
    raw: RawFeatures | None = field(default=None, repr=False, compare=False)
    #: the task was inferred from the target (not given): read_on infers it again on its rows
    task_inferred: bool = field(default=False, repr=False, compare=False)

    @property
    def n_rows(self) -> int:
        return len(self.X)

    def read_on(self, rows: np.ndarray) -> "Dataset":
        """This dataset as it reads when every decision about its columns is made on ``rows`` only.

        :func:`prepare` decides on every row whether a column is numeric or text, which categories
        a text column has, whether it is free text, and (without usable values, or constant or
        duplicate with ``drop_redundant``) whether it is dropped.  Here those decisions see ``rows``
        (the honest protocol's training split) and nothing else; the other rows are read the way
        new rows are after deployment (:meth:`Preprocessor.transform`): a category only they hold
        is a missing value.  Where the task was inferred, not given, it is inferred on ``rows``
        too (the metric and the model follow it).  A decision that comes out differently is
        logged and added to ``notes``."""
        if self.raw is None:
            return self
        rows = np.asarray(rows)
        notes: list[str] = []
        task, y, classes = self._target_read_on(rows, notes)
        if self.raw.frame is None:  # numbers only: only the drops can differ
            X, preprocessor = self.X, self.preprocessor
        else:
            X, preprocessor, _ = _read_features(self.raw, rows, notes)
        X, preprocessor = _drop_unusable(X, preprocessor, rows, self.raw.drop_redundant, notes)
        if self.raw.nan == "refuse":
            _refuse_missing(X.iloc[rows])
        changed = [f"on the training rows only: {note}" for note in notes if note not in self.notes]
        if (list(X.columns) == self.preprocessor.columns and preprocessor == self.preprocessor and not changed
                and task == self.task):
            return self
        for note in changed:
            logger.warning(note)
        return replace(self, X=X.reset_index(drop=True), preprocessor=preprocessor, notes=self.notes + changed,
                       task=task, y=y, classes=classes)

    def _target_read_on(self, rows: np.ndarray, notes: list[str]) -> tuple[Task, np.ndarray, list[Any] | None]:
        """The task inferred from the target's values on ``rows`` (where it was inferred, not
        given), and the target coded for it: classes or numbers."""
        if not self.task_inferred:
            return self.task, self.y, self.classes
        values = pd.Series(self.classes).to_numpy()[self.y] if self.task == "classification" else self.y
        task = infer_task(pd.Series(values[rows]))
        if task == self.task:
            return self.task, self.y, self.classes
        notes.append(f"the target {self.target!r} reads as {task} (on every row: {self.task})")
        if task == "regression":
            return task, values.astype(float), None
        codes, uniques = pd.factorize(pd.Series(values), sort=True)
        if len(np.unique(codes[rows])) < 2:
            raise DataError(f"the target {self.target!r} has one value on the training rows: nothing to learn")
        return task, codes.astype(np.int64), [u.item() if hasattr(u, "item") else u for u in uniques]


def _warn_unread(name: str, raw: pd.Series, read: pd.Series, categorical: bool) -> None:
    """Warn when values present in ``raw`` are missing once ``read`` (a new row's column)."""
    lost = raw.notna().to_numpy() & read.isna().to_numpy()
    if not lost.any():
        return
    example = str(raw[lost].iloc[0])[:40]
    what = ("categories the fit did not see" if categorical else
            "not numbers (or dates) as the fit read this column")
    logger.warning("column %r: %d of %d values are %s (e.g. %r): they are treated as missing",
                   name, int(lost.sum()), int(raw.notna().sum()), what, example)


def _is_dates(column: pd.Series) -> bool:
    """Whether ``column`` holds dates: a datetime dtype, or Python dates (a Parquet ``date32``
    column reads as objects of ``datetime.date``)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return True
    if not pd.api.types.is_object_dtype(column):
        return False
    present = column.dropna()
    return len(present) > 0 and all(isinstance(v, datetime.date) for v in present)


#: How a date written as text starts: ISO 8601's extended form, year-month(-day).
TEXT_DATE = r"\s*\d{4}-\d{2}(?:-\d{2})?(?:[T ]|\s*$)"


def _text_dates(column: pd.Series) -> pd.Series:
    """``column``'s values read as ISO 8601 dates in the extended form (``2021-03-04``,
    ``2021-03-04T10:00+01:00``, ``2021-03``; UTC, without the zone); NaT where a value is none.
    Nothing else: "March" or "03/04/2021" would be guesses (this year? day or month first?), and
    "20210304" is a number to a CSV reader - a date read one way when fitted must read the same
    way on new rows."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column) or _is_dates(column):
        return pd.Series(pd.NaT, index=column.index, dtype="datetime64[ns]")
    text = column.astype("string")
    text = text.where(text.str.match(TEXT_DATE).fillna(False).astype(bool))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns of values it cannot parse: they are NaT
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    return parsed.dt.tz_convert(None)


def _to_float(column: pd.Series, datetime_unit: str = "s") -> pd.Series:
    if pd.api.types.is_bool_dtype(column):
        return column.astype(float)
    if pd.api.types.is_object_dtype(column) and _is_dates(column):
        column = pd.to_datetime(column, utc=True).dt.tz_convert(None)  # a date: midnight UTC
    if pd.api.types.is_datetime64_any_dtype(column):
        if datetime_unit == "native":
            return column.astype("int64").astype(float).where(column.notna())
        if getattr(column.dt, "tz", None) is not None:
            column = column.dt.tz_convert(None)  # UTC, without the zone
        # The epoch in the column's own unit: in nanoseconds a date before 1677 or after 2262
        # (9999-12-31, a common "no end date") would overflow.
        epoch = pd.Timestamp(0).as_unit(column.dt.unit)
        return ((column - epoch) / pd.Timedelta(seconds=1)).astype(float)
    numbers = pd.to_numeric(column, errors="coerce")
    if pd.api.types.is_complex_dtype(numbers):  # Python complex values in an object column
        refuse_complex(numbers.to_frame())
    return numbers.astype(float)


def _bounded(X: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """``X`` with finite values beyond +-BOUND clipped to it, and how many were, per column."""
    with np.errstate(invalid="ignore"):
        over = (X.abs() > BOUND).sum()
    over = {str(c): int(n) for c, n in over.items() if n}
    return (X.clip(lower=-BOUND, upper=BOUND) if over else X), over


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


def duplicate_columns(X: pd.DataFrame) -> np.ndarray:
    """Which columns of ``X`` (float columns, as :func:`prepare` makes them) repeat an earlier
    column, value for value (missing values equal each other): what ``X.T.duplicated()`` says,
    in time linear in the rows.  The transpose factorises every row as a column of its own, which
    took minutes on 200,000 rows; here each column is hashed once and only columns with the same
    hash are compared (read again, so no copy of the table is kept)."""
    def values(i: int) -> np.ndarray:
        return X.iloc[:, i].to_numpy(dtype=np.float64, na_value=np.nan) + 0.0  # -0.0 equals 0.0

    duplicated = np.zeros(X.shape[1], dtype=bool)
    earlier: dict[bytes, list[int]] = {}
    for i in range(X.shape[1]):
        column = values(i)
        missing = np.isnan(column)
        key = hashlib.blake2b(np.where(missing, 0.0, column).tobytes() + np.packbits(missing).tobytes()).digest()
        same = earlier.setdefault(key, [])
        duplicated[i] = any(np.array_equal(column, values(j), equal_nan=True) for j in same)
        if not duplicated[i]:
            same.append(i)
    return duplicated


def refuse_complex(frame: pd.DataFrame) -> None:
    """Raise a DataError naming the columns of ``frame`` that hold complex numbers: numpy would
    drop their imaginary parts, with a warning at most."""
    labels = [str(c) for c, dtype in zip(frame.columns, frame.dtypes) if pd.api.types.is_complex_dtype(dtype)]
    if labels:
        raise DataError(f"column(s) {labels[:20]} hold complex numbers: featteam reads real numbers; split "
                        "each into its real and imaginary parts (two columns) first")


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
        raise DataError(f"more than one column is named {target!r}: featteam cannot tell which is the "
                        "target, and a copy kept as a feature would leak it; rename or remove the copies")
    notes: list[str] = []
    header_copies = frame.attrs.get(HEADER_ATTR)
    if isinstance(header_copies, dict):  # read by load_table: the raw header is known
        copies = [label for label, raw in header_copies.items() if raw == str(target)]
        if copies or str(target) in header_copies:
            renamed = copies or [str(target)]
            raise DataError(f"the header names the target {header_copies.get(str(target), str(target))!r} "
                            f"more than once (pandas renamed the copies to {renamed}): featteam cannot "
                            "tell which is the target, and a copy kept as a feature would leak it; "
                            "rename or remove the duplicate column(s)")
        for label, raw in header_copies.items():
            notes.append(f"column {label!r}: the header repeats the name {raw!r} (pandas renamed this copy)")
    else:  # a DataFrame read elsewhere: pandas' renaming can only be guessed
        pattern = re.compile(re.escape(str(target)) + r"\.[0-9]+")
        for label in labels:
            if pattern.fullmatch(label):
                notes.append(f"column {label!r} may be a copy of the target {target!r} that pandas renamed "
                             "(a header naming the target twice); if so remove it, it would leak the "
                             "target (featteam.load_table checks the header for you)")
    refuse_complex(frame)
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

    inferred = task is None
    task = task or infer_task(y_raw)
    classes = None
    if task == "classification":
        codes, uniques = pd.factorize(y_raw.astype("string") if not pd.api.types.is_numeric_dtype(y_raw) else y_raw,
                                      sort=True)
        if len(uniques) < 2:
            raise DataError(f"the target {target!r} has only one class ({uniques[0]!r}): nothing to learn")
        counts = np.bincount(codes)
        if len(uniques) > max(MAX_CLASSES, len(codes) // 2):
            # Most rows a class of their own: numbers read as classes (--task classification on a
            # continuous target), which no cross-validation can stratify.
            raise DataError(f"the target {target!r} has {len(uniques)} classes in {len(codes)} rows: it looks "
                            "continuous; use --task regression (task='regression')")
        if counts.min() < 2:
            rare = [str(uniques[i]) for i in np.flatnonzero(counts < 2)]
            shown = ", ".join(rare[:10]) + (f" and {len(rare) - 10} more" if len(rare) > 10 else "")
            notes.append(f"class(es) {shown} of {target!r} have a single row: cross-validation "
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
    if str(target) in names:  # its raw label differs (a copy of the target would have been refused)
        raw_label = features.columns[names.index(str(target))]
        raise DataError(f"the column {str(raw_label)!r} is named {str(target)!r}, the target's name, once its "
                        "spaces are removed: featteam cannot tell the two apart, and a copy of the target kept "
                        "as a feature would leak it; rename or remove that column")
    source_names = dict(zip(names, features.columns))
    as_numbers = all(pd.api.types.is_numeric_dtype(features.iloc[:, i]) or
                     _is_dates(features.iloc[:, i]) for i in range(features.shape[1]))
    raw = RawFeatures(names, source_names, None if as_numbers else features.reset_index(drop=True),
                      drop_redundant, nan)
    X, preprocessor, n_inf = _read_features(replace(raw, frame=features), None, notes)
    X, preprocessor = _drop_unusable(X, preprocessor, None, drop_redundant, notes)

    if nan == "refuse":
        _refuse_missing(X)
    detail = _missing_detail(X)
    if detail:
        notes.append(f"missing or infinite values ({n_inf} infinite) will be imputed with training medians: {detail}")
    for note in notes:
        logger.warning(note)
    X = X.reset_index(drop=True)
    return Dataset(X=X, y=y, task=task, target=str(target), preprocessor=preprocessor,
                   classes=classes, notes=notes, name=name, raw=raw, task_inferred=inferred)


def _missing_detail(X: pd.DataFrame) -> str:
    """``'column': count`` of every column of ``X`` with missing values ("" when none has)."""
    missing = X.isna().sum()
    return ", ".join(f"{c!r}: {n}" for c, n in missing[missing > 0].items())


def _refuse_missing(X: pd.DataFrame) -> None:
    """Raise the error of ``nan='refuse'`` when ``X`` holds a missing value."""
    detail = _missing_detail(X)
    if detail:
        raise DataError(f"missing or infinite values in {detail} (use nan='impute' / --nan impute "
                        "to fill them with training medians)")


def _read_features(raw: RawFeatures, rows: np.ndarray | None,
                   notes: list[str]) -> tuple[pd.DataFrame, Preprocessor, int]:
    """Every feature column as numbers, each decision made on ``rows`` only (None: every row).

    A column is numeric when at least :data:`NUMERIC_SHARE` of its values there read as numbers;
    otherwise it is text, coded by its sorted categories there (a value they do not hold is a
    missing value), or dropped as free text when it has too many.  Returns the features of every
    row, the reading as a :class:`Preprocessor` and how many values were infinite."""
    frame = raw.frame
    columns: dict[str, pd.Series] = {}
    categories: dict[str, list[str]] = {}
    text_dates: list[str] = []
    for position, clean in enumerate(raw.names):
        column = frame.iloc[:, position]
        seen = column if rows is None else column.iloc[rows]
        numeric = _to_float(column)
        seen_numeric = numeric if rows is None else numeric.iloc[rows]
        non_missing = seen.notna().sum()
        if non_missing and seen_numeric.notna().sum() >= NUMERIC_SHARE * non_missing:
            lost = int(non_missing - seen_numeric.notna().sum())
            if lost:
                notes.append(f"column {clean!r}: numeric, but {lost} of its {int(non_missing)} values are "
                             "not numbers: those non-numeric value(s) are treated as missing")
            columns[clean] = numeric
            continue
        dates = _text_dates(column)
        seen_dates = dates if rows is None else dates.iloc[rows]
        if non_missing and seen_dates.notna().sum() >= NUMERIC_SHARE * non_missing:
            lost = int(non_missing - seen_dates.notna().sum())
            notes.append(f"column {clean!r}: dates written as text (ISO 8601), read as seconds since 1970"
                         + (f"; {lost} of its {int(non_missing)} values are not dates: treated as missing"
                            if lost else ""))
            columns[clean] = _to_float(dates)
            text_dates.append(clean)
            continue
        text = column.astype("string")
        uniques = sorted((text if rows is None else text.iloc[rows]).dropna().unique().tolist())
        if len(uniques) <= MAX_CATEGORIES and len(uniques) <= max(2, 0.5 * len(seen)):
            categories[clean] = uniques
            columns[clean] = text.map({c: float(i) for i, c in enumerate(uniques)}).astype(float)
            notes.append(f"column {clean!r}: text with {len(uniques)} categories, encoded as ordinal codes")
        else:
            notes.append(f"column {clean!r}: dropped, text with {len(uniques)} distinct values "
                         "(an identifier or free text) is not a feature featteam can use")
    X = pd.DataFrame(columns, index=frame.index)
    n_inf = int(np.isinf(X.to_numpy()).sum())
    X = X.replace([np.inf, -np.inf], np.nan)
    X, clipped = _bounded(X)
    for col, n in clipped.items():
        notes.append(f"column {col!r}: {n} value(s) beyond +-{BOUND:g} clipped to +-{BOUND:g} (the bound of "
                     "featteam's operators; new rows are clipped the same way)")
    dates = [c for position, c in enumerate(raw.names)
             if c in X.columns and (c in text_dates or _is_dates(frame.iloc[:, position]))]
    preprocessor = Preprocessor(list(X.columns), categories, {c: raw.source_names[c] for c in X.columns},
                                dates=dates)
    return X, preprocessor, n_inf


def _drop_unusable(X: pd.DataFrame, preprocessor: Preprocessor, rows: np.ndarray | None, drop_redundant: bool,
                   notes: list[str]) -> tuple[pd.DataFrame, Preprocessor]:
    """``X`` without the columns that have no usable value on ``rows`` (None: every row) and, with
    ``drop_redundant``, without those constant or duplicate there; the others are said in
    ``notes``.  The preprocessor loses the same columns."""
    seen = X if rows is None else X.iloc[rows]
    empty = [c for c in X.columns if seen[c].notna().sum() == 0]
    for col in empty:
        notes.append(f"column {col!r}: dropped, no usable value")
    X, seen = X.drop(columns=empty), seen.drop(columns=empty)
    redundant = [c for c in seen.columns if seen[c].nunique(dropna=True) <= 1 and not seen[c].isna().any()]
    for col in redundant:
        notes.append(f"column {col!r}: constant" + (", dropped" if drop_redundant else
                     ", kept (it carries no information; --drop-redundant removes it)"))
    duplicated = duplicate_columns(seen)
    for col in seen.columns[duplicated]:
        notes.append(f"column {col!r}: duplicate of an earlier column" + (", dropped" if drop_redundant else
                     ", kept (--drop-redundant removes it)"))
    if drop_redundant:
        X = X.loc[:, ~duplicated & ~X.columns.isin(redundant)]
    if X.shape[1] == 0:
        raise DataError("no usable feature column is left (all were empty, free text, or dropped as redundant)")
    kept = list(X.columns)
    return X, replace(preprocessor, columns=kept,
                      categories={c: v for c, v in preprocessor.categories.items() if c in kept},
                      dates=[c for c in preprocessor.dates if c in kept],
                      source_names={c: n for c, n in preprocessor.source_names.items() if c in kept})


def load_dataset(path: str | Path, target: str, task: Task | None = None,
                 nan: Literal["impute", "refuse"] = "impute", drop_redundant: bool = False) -> Dataset:
    """:func:`load_table` then :func:`prepare`, named after the file."""
    name = Path(path).name.split(".")[0]
    return prepare(load_table(path), target, task=task, nan=nan, name=name, drop_redundant=drop_redundant)
