"""A transformation you can fit, apply, save and load - with numpy and pandas alone.

A transformation file is data from anywhere: :meth:`Transformation.load` refuses files over
:data:`MAX_FILE_BYTES` before reading them, and every field is checked when a
:class:`Transformation` is made (types, lengths, finiteness, the state of each stateful
operator), so that a corrupt file is a :class:`TransformationError` naming the field, never a
crash or silently wrong numbers later.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import FeatteamError
from .imputation import fill_missing, fit_medians
from .operators import N_QUANTILES, OPERATORS, clip_finite
from .program import States, evaluate
from .sequence import (
    DEFAULT_MAX_FEATURES,
    DEFAULT_MAX_LENGTH,
    MAX_NESTING,
    check_structure,
    fold_postfix,
    parse,
    render_feature,
    split_features,
    to_postfix_text,
)
from .vocab import SEP, feature_index, feature_token

SCHEMA_VERSION = 1
#: Largest transformation file :meth:`Transformation.load` reads (checked before reading it).
MAX_FILE_BYTES = 10_000_000
#: Most tokens of a transformation (checked before its structure).
MAX_TOKENS = 10_000
#: Most operators on any path from a feature's result to one of its columns: a feature's
#: nesting depth.  The same as infix text's :data:`~featteam.expr.sequence.MAX_NESTING`, so
#: that every formula :attr:`Transformation.formulas` writes can be parsed back.
MAX_DEPTH = MAX_NESTING
#: Longest token text: the longest real token is far shorter (``minmax_scaler``, ``f999999999``).
_MAX_TOKEN_CHARS = 32
#: The fields of the state of each stateful operator (see ``operators.py``).
_STATE_KEYS: dict[str, tuple[str, ...]] = {
    "stand_scaler": ("mean", "std"),
    "minmax_scaler": ("min", "max"),
    "quan_trans": ("quantiles",),
}


class TransformationError(FeatteamError, ValueError):
    """A transformation cannot be applied to the given data (columns, values, file)."""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple = 2, 4, 4, 4
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 40


def _short(value: Any) -> str:
    """A short text of any value for a message (a corrupt field may be megabytes long)."""
    try:
        return _REPR.repr(value)
    except ValueError:  # an int too long for str()
        return f"<{type(value).__name__}>"


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray, pd.Index))


def _number(value: Any, where: str) -> float:
    """``value`` as a finite float; a TransformationError naming ``where`` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TransformationError(f"{where} must be a number, not {_short(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise TransformationError(f"{where} must be a finite number, not {_short(value)}")
    return number


def _check_state(token: str, state: Any, where: str) -> dict[str, Any]:
    """A copy of the fitted state of the stateful operator ``token``, checked for what its
    ``apply`` reads (see ``operators.py``)."""
    keys = _STATE_KEYS.get(token)
    if keys is None:  # a new stateful operator must say here what its state holds
        raise TransformationError(f"{where}: no check is known for the state of {token!r}")
    if not isinstance(state, dict):
        raise TransformationError(f"{where} must be an object, not {_short(state)}")
    if set(state) != set(keys):
        raise TransformationError(f"{where} of {token} must have the keys {list(keys)}, "
                                  f"not {_short(list(state))}")
    if token == "quan_trans":
        quantiles = state["quantiles"]
        if not isinstance(quantiles, list) or not 2 <= len(quantiles) <= N_QUANTILES:
            raise TransformationError(f"{where}.quantiles must be a list of 2 to {N_QUANTILES} numbers")
        values = [_number(v, f"{where}.quantiles[{i}]") for i, v in enumerate(quantiles)]
        if any(b < a for a, b in zip(values, values[1:])):
            raise TransformationError(f"{where}.quantiles must be in increasing order")
        return {"quantiles": values}
    checked = {key: _number(state[key], f"{where}.{key}") for key in keys}
    if token == "stand_scaler" and not checked["std"] > 0:
        raise TransformationError(f"{where}.std must be positive, not {checked['std']!r}")
    if token == "minmax_scaler" and checked["min"] > checked["max"]:
        raise TransformationError(f"{where}: min {checked['min']!r} is above max {checked['max']!r}")
    return checked


_POSITION = re.compile(r"(0|[1-9][0-9]{0,8})")


def _feature_depth(feature: Sequence[str]) -> int:
    """Most operators on a path from the feature's result to a column."""
    return fold_postfix(feature, lambda _p, _t: 0, lambda _p, _op, operands: 1 + max(operands))


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
        """Check every field (in this order: tokens, input_columns, the structure, impute_values,
        states, metadata).

        Raises
        ------
        TransformationError
            A field of the wrong type, length or value; the message names the field.
        InvalidSequence
            Tokens that are no well-formed transformation over the input columns.
        """
        if not _is_list(self.tokens):
            raise TransformationError(f"tokens must be a list of strings, not {type(self.tokens).__name__}")
        if len(self.tokens) > MAX_TOKENS:  # before looking at any token
            raise TransformationError(f"tokens: {len(self.tokens)} tokens, at most {MAX_TOKENS} are read")
        for i, token in enumerate(self.tokens):
            if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
                raise TransformationError(f"tokens[{i}] is not a token: {_short(token)}")
            index = None if token == SEP or token in OPERATORS else feature_index(token)
            if index is not None and feature_token(index) != token:  # "f0\n" passes feature_index's $
                raise TransformationError(f"tokens[{i}] is not a token: {_short(token)}")
        self.tokens = [str(t) for t in self.tokens]
        if not _is_list(self.input_columns):
            raise TransformationError(f"input_columns must be a list of strings, "
                                      f"not {type(self.input_columns).__name__}")
        for i, name in enumerate(self.input_columns):
            if name is None or isinstance(name, (dict, list, set, bytes)):  # else str(): pandas labels
                raise TransformationError(f"input_columns[{i}] must be a string, not {_short(name)}")
        self.input_columns = [str(c) for c in self.input_columns]
        for i, name in enumerate(self.input_columns):
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise TransformationError(f"input_columns[{i}] is not valid Unicode text: {_short(name)}") from None
        if len(set(self.input_columns)) != len(self.input_columns):
            repeated = sorted(c for c, n in Counter(self.input_columns).items() if n > 1)[:5]
            raise TransformationError(f"input_columns must be distinct; repeated: {repeated}")
        # An empty token list is the transformation that adds no feature (the choice where none helps).
        features = [] if not self.tokens else check_structure(self.tokens, len(self.input_columns),
                                   max_length=max(len(self.tokens), DEFAULT_MAX_LENGTH),
                                   max_features=max(len(split_features(self.tokens)), DEFAULT_MAX_FEATURES),
                                   max_feature_length=None)
        for number, feature in enumerate(features, 1):
            depth = _feature_depth(feature)
            if depth > MAX_DEPTH:
                raise TransformationError(f"tokens: feature {number} nests {depth} operators deep, "
                                          f"at most {MAX_DEPTH} are allowed")
        if self.impute_values is not None:
            if not _is_list(self.impute_values) or len(self.impute_values) != len(self.input_columns):
                raise TransformationError(f"impute_values must be a list of {len(self.input_columns)} numbers "
                                          f"(one per input column), not {_short(self.impute_values)}")
            self.impute_values = [_number(v, f"impute_values[{i}]") for i, v in enumerate(self.impute_values)]
        if self.states is not None:
            self.states = self._checked_states(self.states)
        if self.metadata is None:
            self.metadata = {}
        if not isinstance(self.metadata, dict):
            raise TransformationError(f"metadata must be an object, not {type(self.metadata).__name__}")

    def _checked_states(self, states: Any) -> States:
        """The states keyed by int position: one, valid, for each stateful operator, and no other."""
        if not isinstance(states, dict):
            raise TransformationError("states must be an object mapping token positions to operator states, "
                                      f"not {type(states).__name__}")
        stateful = {i for i, t in enumerate(self.tokens) if OPERATORS.get(t) is not None and OPERATORS[t].stateful}
        checked: States = {}
        for key, state in states.items():
            if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
                position = int(key)
            elif isinstance(key, str) and _POSITION.fullmatch(key):
                position = int(key)
            else:
                raise TransformationError(f"states: key {_short(key)} is not a token position")
            if position not in stateful:
                raise TransformationError(f"states[{position}]: token {position} is no stateful operator")
            if position in checked:
                raise TransformationError(f"states: position {position} is given twice")
            checked[position] = _check_state(self.tokens[position], state, f"states[{position}]")
        missing = sorted(stateful - set(checked))
        if missing:
            raise TransformationError(f"states: no state for the stateful operator(s) at position(s) {missing[:10]}")
        return checked

    @classmethod
    def from_text(cls, text: str, input_columns: Sequence[str]) -> "Transformation":
        """Build from postfix (``[a b + , c sqrt]``) or infix (``(a + b), sqrt(c)``) text."""
        return cls(parse(text, list(map(str, input_columns))), list(input_columns))

    # -- what it computes -----------------------------------------------------------

    @property
    def features(self) -> list[list[str]]:
        return split_features(self.tokens) if self.tokens else []

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
            present = set(names)
            missing = [c for c in self.input_columns if c not in present]
            if missing:
                needed = self.input_columns[:20] + (["..."] if len(self.input_columns) > 20 else [])
                raise TransformationError(f"input is missing column(s) {missing[:20]}"
                                          f"{' ...' if len(missing) > 20 else ''}; the transformation needs "
                                          f"{needed}")
            position: dict[str, int] = {}
            repeated = set()
            for i, name in enumerate(names):
                if name in position:
                    repeated.add(name)
                position.setdefault(name, i)
            used = {self.input_columns[i] for i in map(feature_index, self.tokens) if i is not None}
            ambiguous = [c for c in self.input_columns if c in repeated and c in used]
            if ambiguous:
                raise TransformationError(f"input has more than one column named {ambiguous[:20]}: the "
                                          "transformation cannot tell which to use; rename them")
            X = X.iloc[:, [position[c] for c in self.input_columns]]
            # Dates and durations would silently become pandas' integer nanoseconds, not what a
            # fit read (featteam reads dates as seconds through a saved table reading).
            timed = [str(c) for c, dtype in X.dtypes.items() if str(c) in used and (
                pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype))]
            if timed:
                raise TransformationError(f"input column(s) {timed[:20]} hold dates or durations, not numbers: "
                                          "convert them to numbers first (a transformation saved by featteam fit "
                                          "reads dates as seconds itself)")
            complex_columns = [str(c) for c, dtype in X.dtypes.items()
                               if str(c) in used and pd.api.types.is_complex_dtype(dtype)]
            if complex_columns:
                raise TransformationError(f"input column(s) {complex_columns[:20]} hold complex numbers, not real "
                                          "numbers: split each into its real and imaginary parts first")
            try:
                return X.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise TransformationError(f"input columns must be numeric: {exc}") from None
        if np.iscomplexobj(X):
            raise TransformationError("input holds complex numbers, not real numbers: split them into their "
                                      "real and imaginary parts first")
        try:
            matrix = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TransformationError(f"input must be numeric: {exc}") from None
        if matrix.ndim != 2 or matrix.shape[1] != len(self.input_columns):
            raise TransformationError(f"expected {len(self.input_columns)} columns, got shape {matrix.shape}")
        return matrix

    def fit(self, X: pd.DataFrame | np.ndarray) -> "Transformation":
        """A fitted copy: imputation values and operator states from the rows of ``X``."""
        matrix = self._matrix(X)
        if matrix.shape[0] == 0:
            raise TransformationError("cannot fit a transformation on zero rows")
        # Python floats, for the JSON.  Clipped like every value an operator sees (clip_finite):
        # the same numbers come out, and a median of values near the float maximum stays finite.
        impute = clip_finite(fit_medians(matrix)).tolist()
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
    def from_dict(cls, data: Any) -> "Transformation":
        """Read :meth:`to_dict`'s output (the JSON of a transformation file), checking every field.

        Raises
        ------
        TransformationError
            Not a transformation, another schema version, or a malformed field (named).
        """
        if not isinstance(data, dict) or data.get("kind") != "featteam.transformation":
            raise TransformationError("not a featteam transformation file")
        version = data.get("schema_version")
        if type(version) is not int or version != SCHEMA_VERSION:
            raise TransformationError(f"unsupported schema_version {_short(version)} "
                                      f"(this featteam reads {SCHEMA_VERSION})")
        try:
            for name in ("tokens", "input_columns"):
                if name not in data:
                    raise TransformationError(f"the field {name!r} is missing")
                if not isinstance(data[name], list):
                    raise TransformationError(f"{name} must be a list of strings, not {type(data[name]).__name__}")
            for i, name in enumerate(data["input_columns"]):
                if not isinstance(name, str):
                    raise TransformationError(f"input_columns[{i}] must be a string, not {_short(name)}")
            impute_values = data.get("impute_values")
            if impute_values is not None and not isinstance(impute_values, list):
                raise TransformationError(f"impute_values must be a list of numbers or null, "
                                          f"not {type(impute_values).__name__}")
            states = data.get("states")
            if states is not None and not isinstance(states, dict):
                raise TransformationError("states must be an object mapping token positions to operator states "
                                          f"or null, not {type(states).__name__}")
            metadata = data.get("metadata")
            if metadata is not None and not isinstance(metadata, dict):
                raise TransformationError(f"metadata must be an object, not {type(metadata).__name__}")
            return cls(tokens=data["tokens"], input_columns=data["input_columns"], impute_values=impute_values,
                       states=states, metadata=dict(metadata or {}))
        except ValueError as exc:  # TransformationError and InvalidSequence
            raise TransformationError(f"malformed transformation file: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the JSON atomically: a temporary file in the same folder, then renamed."""
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> "Transformation":
        """Read a transformation file (UTF-8 JSON, a BOM allowed) of at most :data:`MAX_FILE_BYTES`.

        Raises
        ------
        TransformationError
            A file that cannot be read, is too large, is no JSON (duplicate keys included), or
            is no valid transformation.
        """
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > MAX_FILE_BYTES:
                    raise TransformationError(f"{path} has {size} bytes; a transformation file has at most "
                                              f"{MAX_FILE_BYTES}")
                raw = handle.read(MAX_FILE_BYTES + 1)  # a file that grows or lies about its size
        except OSError as exc:
            raise TransformationError(f"cannot read {path}: {exc.strerror or exc}") from None
        if len(raw) > MAX_FILE_BYTES:
            raise TransformationError(f"{path} has more than {MAX_FILE_BYTES} bytes; a transformation file has "
                                      f"at most {MAX_FILE_BYTES}")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TransformationError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            raise TransformationError(f"{path} is not valid JSON: {exc}") from None
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, too long integers, deep nesting
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TransformationError(f"{path} is not valid JSON: {message}") from None
        try:  # "\ud800" escapes decode to text that no table, terminal or file can hold
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            raise TransformationError(f"{path} holds text that is not valid Unicode "
                                      "(a lone surrogate escape such as \\ud800)") from None
        return cls.from_dict(data)


def output_names(inputs: Sequence[str], formulas: Sequence[str]) -> list[str]:
    """The names of new features beside the columns ``inputs``: each formula, or where that name
    is taken, ``new: formula`` (then ``new 2: formula``, ...), so that every name is unique.

    Parameters
    ----------
    inputs : sequence of str
        The names of the columns the new features are placed beside.
    formulas : sequence of str
        The new features' readable formulas.

    Returns
    -------
    list of str
    """
    taken = set(inputs)
    names = []
    for formula in formulas:
        name, k = formula, 1
        while name in taken:
            name = f"new: {formula}" if k == 1 else f"new {k}: {formula}"
            k += 1
        taken.add(name)
        names.append(name)
    return names


class _DuplicateKey(ValueError):
    """A JSON object names a key twice (json keeps the last silently)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"the key {_short(key)} appears twice in one object")
        out[key] = value
    return out
