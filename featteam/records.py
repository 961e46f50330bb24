"""Typed records to and from JSON: the one way dataclasses cross a file boundary.

Run files (``report.json``, ``golden.jsonl``, ``candidates.jsonl``) are written from
dataclasses and read back into them, so code reads fields, not dict keys.  A record
read from a file is rebuilt from its type hints: nested dataclasses, enums, optional
values, lists, tuples and string-keyed dicts; null only where the type hint allows None.
Keys a record does not know are ignored (a newer writer may add fields), missing ones take
their defaults.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import logging
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)


def to_json_value(value: Any) -> Any:
    """A JSON-ready copy of ``value``: dataclasses as dicts, enums as their values, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def _shown(value: Any) -> str:
    """A value read from a file, short enough for an error message (a hostile one can be huge)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(hint: Any, value: Any) -> Any:
    """``value`` (read from JSON) as the type ``hint`` says; TypeError or ValueError when it is
    not of that type (a hostile or damaged file: ``"tokens": "f0 f1 +"`` must not become a list of
    characters, nor ``"score": "0.9"`` a string where a number is compared)."""
    origin = typing.get_origin(hint)
    if value is None:
        if hint is Any or hint is type(None) or (
                origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)):
            return None
        # A field that cannot be None (a score, a list of tokens) read as null would fail later,
        # far from the file, or be taken as "not done" by a step's check.
        raise TypeError(f"expected {getattr(hint, '__name__', hint)}, not null")
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        for option in options:
            try:
                return _convert(option, value)
            except (TypeError, ValueError, KeyError):
                continue
        raise TypeError(f"{_shown(value)} is none of {hint}")
    if hint is Any:
        return value
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ValueError(f"{_shown(value)} is not one of {typing.get_args(hint)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise TypeError(f"expected a list, not {type(value).__name__}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [_convert(item, v) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, not {type(value).__name__}")
        _, item = typing.get_args(hint) or (str, Any)
        return {k: _convert(item, v) for k, v in value.items()}
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            return from_dict(hint, value)
        if issubclass(hint, enum.Enum):
            return hint(value)
        if hint is bool:
            if not isinstance(value, bool):
                raise TypeError(f"expected true or false, not {_shown(value)}")
            return value
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"expected a number, not {_shown(value)}")
            return float(value)
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"expected an integer, not {_shown(value)}")
            return value
        if hint is str:
            if not isinstance(value, str):
                raise TypeError(f"expected a string, not {_shown(value)}")
            return value
    return value


@functools.cache
def _field_hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a record's fields (resolving them is most of the cost of a read)."""
    return typing.get_type_hints(cls)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild the dataclass ``cls`` (and the records nested in it) from a JSON dict."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} needs a JSON object, not {type(data).__name__}")
    hints = _field_hints(cls)
    values = {f.name: _convert(hints[f.name], data[f.name]) for f in dataclasses.fields(cls)
              if f.init and f.name in data}
    return cls(**values)


def _write_atomically(path: str | Path, lines: typing.Iterable[str]) -> None:
    """Write ``lines`` into a temporary file beside ``path``, then rename it to ``path``: a killed
    write never leaves half a file under the name.  The temporary file is the process's own, so
    two processes writing the same file (two fits back-filling a cached record) do not collide."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as handle:
            handle.writelines(lines)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | Path, record: Any) -> None:
    """Write a record as indented JSON, atomically."""
    _write_atomically(path, [json.dumps(to_json_value(record), indent=2) + "\n"])


def write_jsonl(path: str | Path, records: typing.Iterable[Any]) -> None:
    """Write records one per line, atomically."""
    _write_atomically(path, (json.dumps(record.to_json() if hasattr(record, "to_json") else to_json_value(record))
                             + "\n" for record in records))


def read_jsonl(path: str | Path, cls: type[T]) -> list[T]:
    """Read the records of a JSON-lines file; a line that cannot be read (torn by a killed
    writer) is skipped with a warning."""
    out = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:  # decoded line by line: one damaged byte costs its line, not the file
                out.append(from_dict(cls, json.loads(raw.decode("utf-8"))))
            except (ValueError, TypeError, KeyError, RecursionError) as exc:
                logger.warning("%s line %d skipped: %s", path, number, exc)
    return out
