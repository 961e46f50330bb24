"""Hostile transformation files: whatever a file holds, loading and applying it ends in one of
featteam's own errors or in a finite matrix of the right shape - never a crash, a hang or
silently wrong numbers.

A seeded generator mutates valid files (every field given wrong types, odd numbers, wrong
lengths; tokens, nesting and sizes pushed past the limits; the JSON text truncated, re-encoded,
given a BOM, duplicate keys or garbage bytes) and each file goes through what ``featteam show``
and ``featteam transform`` do with it.
"""

from __future__ import annotations

import copy
import json
import random
import time

import numpy as np
import pandas as pd
import pytest

from featteam.data import Preprocessor
from featteam.errors import FeatteamError
from featteam.expr import InvalidSequence, Transformation, TransformationError
from featteam.expr.operators import OPERATORS
from featteam.expr.transformation import MAX_DEPTH, MAX_FILE_BYTES, MAX_TOKENS

N_CASES = 5_000
SEED = 20240611
#: The errors a hostile file may end in (DataError is a FeatteamError: a bad preprocessor).
PROJECT_ERRORS = (TransformationError, InvalidSequence, FeatteamError)
COLUMNS = ["a", "b", "c"]


def _frame(columns, n=12, seed=0) -> pd.DataFrame:
    """Rows with NaN, +-inf, huge and tiny values in every column."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, len(columns))) * 10
    values[0, :] = np.nan
    values[1, :] = np.inf
    values[2, :] = -np.inf
    values[3, :] = 1e300
    values[4, :] = -1e-300
    return pd.DataFrame(values, columns=columns)


def _valid_files() -> list[dict]:
    """Valid files to mutate: fitted with every operator, unfitted, with a preprocessor."""
    frame = _frame(COLUMNS).fillna(0.5).replace([np.inf, -np.inf], 3.0)
    every = Transformation.from_text(
        "stand_scaler(a), minmax_scaler((b - c)), quan_trans((a * c)), sqrt(square(b)), "
        "(sin(a) + cos(b)), (tanh(c) / sigmoid(a)), log(reciprocal(cube(b)))", COLUMNS)
    fitted = every.fit(frame)
    with_pre = Transformation.from_text("(a * b), quan_trans(c)", COLUMNS).fit(frame)
    with_pre.metadata = {"task": "regression", "score": 0.5,
                         "preprocessor": Preprocessor(list(COLUMNS), {}, {c: c for c in COLUMNS}).to_dict()}
    return [fitted.to_dict(), every.to_dict(), with_pre.to_dict()]


# -- hostile values and mutations ---------------------------------------------------------

_HOSTILE = [
    None, True, False, 0, -1, 1, 2 ** 31, -(2 ** 63), 10 ** 400, 1e308, -1e308, 5e-324, float("nan"),
    float("inf"), float("-inf"), "", "x" * 5000, "f0", "f1", "f999999999", "f01", "<sep>", "sqrt",
    "stand_scaler", "NaN", "1", "\u0000", "\ud800", "\U0001F600", [], {}, [None], [[[]]], [1.0] * 3,
    ["f0", "sqrt"], {"0": {"mean": 0, "std": 1}}, {"a": {"b": {"c": {}}}}, list(range(2000)),
    [float("nan")] * 3, ["a", "b", "c"], {"columns": ["a"]}, {"mean": 0.0, "std": 1.0},
    {"quantiles": [0.0, 1.0]}, {"min": 0.0, "max": 1.0},
]
_TOKENS = [*OPERATORS, "<sep>", "f0", "f1", "f2", "f3", "f-1", "F0", "f01", "f0 ", "f0\n", "<pad>", "<eos>",
           "__import__", "", "x", "1", "f999999999", "f9999999999"]


def _hostile(rng: random.Random, more: list | None = None):
    """A fresh copy of a hostile value (a shared one mutated later would make the cases drift)."""
    return copy.deepcopy(rng.choice(_HOSTILE + (more or [])))


def _paths(value, prefix=()):
    """Every path (tuple of keys) into a JSON value, the root excluded."""
    out = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value[:50]))
    else:
        return out
    for key, child in items:
        out.append(prefix + (key,))
        out.extend(_paths(child, prefix + (key,)))
    return out


def _get(data, path):
    for key in path:
        data = data[key]
    return data


def _deep(depth: int):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def _mutate_tokens(rng: random.Random, tokens: list) -> list:
    tokens = list(tokens)
    kind = rng.randrange(10)
    if kind == 0 and tokens:
        tokens[rng.randrange(len(tokens))] = rng.choice(_TOKENS)
    elif kind == 1:
        tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(_TOKENS))
    elif kind == 2 and tokens:
        del tokens[rng.randrange(len(tokens))]
    elif kind == 3:  # deep nesting around the limit and far past it
        depth = rng.choice([MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 500, MAX_TOKENS - 1])
        tokens = ["f0"] + [rng.choice(["sqrt", "sin", "stand_scaler"]) for _ in range(depth)]
    elif kind == 4:  # a long left-deep chain
        n = rng.choice([MAX_DEPTH, MAX_DEPTH + 1, 3000])
        tokens = ["f0", "f1", "+"] + ["f2", "*"] * (n - 1)
    elif kind == 5:  # many tokens, around and past the limit
        n = rng.choice([MAX_TOKENS - 1, MAX_TOKENS, MAX_TOKENS + 1, 60_000])
        tokens = [rng.choice(_TOKENS[:30]) for _ in range(n)]
    elif kind == 6:
        tokens = tokens * rng.choice([2, 50])
    elif kind == 7:
        rng.shuffle(tokens)
    elif kind == 8:
        tokens = [rng.choice(_TOKENS) for _ in range(rng.randrange(1, 12))]
    else:
        tokens = tokens[: rng.randrange(len(tokens) + 1)]
    return tokens


def _mutate_states(rng: random.Random, states):
    if not isinstance(states, dict) or not states:
        return copy.deepcopy(rng.choice([[], [1], {"1": {}}, "x", {"x": 1}]))
    states = json.loads(json.dumps(states))
    key = rng.choice(list(states))
    kind = rng.randrange(8)
    if kind == 0:  # another position
        states[rng.choice(["-1", "1.0", " 1", "1e0", "01", "999999999999", "\u0661", key + "1", ""])] = \
            states.pop(key)
    elif kind == 1:
        del states[key]
    elif kind == 2:  # a field of the state
        state = states[key]
        if isinstance(state, dict) and state:
            state[rng.choice(list(state))] = _hostile(rng)
    elif kind == 3:
        states[key] = _hostile(rng)
    elif kind == 4 and isinstance(states[key], dict) and isinstance(states[key].get("quantiles"), list):
        q = states[key]["quantiles"]
        states[key]["quantiles"] = rng.choice([q[::-1], q[:1], [], q * 3, q + [float("nan")], [0.0] * len(q)])
    elif kind == 5:
        state = states[key]
        if isinstance(state, dict):
            state[rng.choice(["extra", "mean", "std", "min", "max", "quantiles"])] = _hostile(rng)
    elif kind == 6:
        state = states[key]
        if isinstance(state, dict) and "std" in state:
            state["std"] = rng.choice([0.0, -1.0, 1e-300, 1e300, 5e-324])
        elif isinstance(state, dict) and "min" in state:
            state["min"], state["max"] = rng.choice([(1.0, 0.0), (-1e308, 1e308), (0.0, 0.0), (5.0, 5.0)])
    else:
        states = list(states.values())
    return states


def _mutate(rng: random.Random, data: dict) -> dict:
    data = json.loads(json.dumps(data))
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        field = rng.choice(["tokens", "tokens", "input_columns", "impute_values", "states", "states",
                            "metadata", "kind", "schema_version", "any", "any", "delete", "add"])
        if field == "tokens" and isinstance(data.get("tokens"), list):
            data["tokens"] = _mutate_tokens(rng, data["tokens"])
        elif field == "input_columns" and isinstance(data.get("input_columns"), list):
            columns = list(data["input_columns"])
            choice = rng.randrange(6)
            if choice == 0 and columns:
                columns[rng.randrange(len(columns))] = _hostile(rng)
            elif choice == 1:
                columns.append(rng.choice(columns + ["d", "", "a b", "\ud800"]) if columns else "a")
            elif choice == 2 and columns:
                columns.pop(rng.randrange(len(columns)))
            elif choice == 3:
                n = rng.choice([1, 3, 50, 200_000])
                columns = [f"c{i}" for i in range(n)] if rng.random() < 0.7 else ["c"] * n
            elif choice == 4:
                rng.shuffle(columns)
            else:
                columns = _hostile(rng)
            data["input_columns"] = columns
        elif field == "impute_values":
            values = data.get("impute_values")
            if isinstance(values, list) and values and rng.random() < 0.6:
                values = list(values)
                values[rng.randrange(len(values))] = _hostile(rng)
                data["impute_values"] = values[: rng.choice([len(values), len(values), 1, 0])]
            else:
                data["impute_values"] = _hostile(rng)
        elif field == "states":
            data["states"] = _mutate_states(rng, data.get("states"))
        elif field == "metadata":
            metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
            choice = rng.randrange(4)
            if choice == 0:
                data["metadata"] = _hostile(rng)
            elif choice == 1:
                metadata["preprocessor"] = _hostile(rng)
                data["metadata"] = metadata
            elif choice == 2 and isinstance(metadata.get("preprocessor"), dict):
                pre = metadata["preprocessor"]
                pre[rng.choice(["columns", "categories", "source_names", "datetime_unit"])] = _hostile(
                    rng, [{"a": ["x", 1]}, {"a": 1}, ["a", "a"], ["zz"], "ms"])
            else:
                metadata["nested"] = _deep(rng.choice([10, 500]))
                data["metadata"] = metadata
        elif field in ("kind", "schema_version"):
            data[field] = _hostile(rng, ["featteam.transformation", 1, 2])
        elif field == "any":
            paths = _paths(data)
            if paths:
                path = rng.choice(paths)
                parent = _get(data, path[:-1])
                parent[path[-1]] = _hostile(rng)
        elif field == "delete" and data:
            del data[rng.choice(list(data))]
        else:
            data[rng.choice(["extra", "postfix", "formulas", "tokens", "states"])] = _hostile(rng)
    return data


def _text_mutation(rng: random.Random, text: str) -> bytes:
    """Hostile bytes from the JSON text of a file."""
    raw = text.encode("utf-8", "surrogatepass")
    kind = rng.randrange(14)
    if kind == 0:
        return raw[: rng.randrange(len(raw) + 1)]  # truncated
    if kind == 1:
        return b"\xef\xbb\xbf" + raw  # a BOM (accepted)
    if kind == 2:
        return b"\xef\xbb\xbf\xef\xbb\xbf" + raw  # two BOMs
    if kind == 3:
        flipped = bytearray(raw)
        for _ in range(rng.randrange(1, 8)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        return bytes(flipped)
    if kind == 4:
        return text.encode("utf-16")
    if kind == 5:  # a duplicate key
        key = rng.choice(["tokens", "states", "kind", "impute_values"])
        return raw[:1] + f'"{key}": null, '.encode() + raw[1:]
    if kind == 6:
        return raw.replace(b"0.", b"NaN", 1).replace(b"1.", b"Infinity", 1)
    if kind == 7:
        return b"[" * rng.choice([1000, 100_000]) + raw
    if kind == 8:
        return rng.choice([b"", b"   ", b"null", b"[]", b'"string"', b"42", b"{}", b"\x00" * 100,
                           b'{"kind": "featteam.transformation", "schema_version": 1, "tokens": 1' + b"0" * 5000 + b"}"])
    if kind == 9:
        return raw + rng.choice([b"garbage", b"}", b"\x00", b"\n{}"])
    if kind == 10:
        return raw.replace(b'"', b"'")
    if kind == 11:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if kind == 12:  # a number with too many digits
        return raw.replace(b"0.", b"1" * 5000 + b".", 1)
    return raw.replace(b'"f0"', b'"f\\u0030"')  # an escaped token: the same text once decoded


def _cases(n: int, seed: int):
    """(name, bytes) of ``n`` hostile files, the same for a given seed."""
    rng = random.Random(seed)
    bases = _valid_files()
    big = json.dumps({**bases[0], "metadata": {"padding": "x" * (MAX_FILE_BYTES + 1)}})
    for i in range(n):
        base = rng.choice(bases)
        roll = rng.random()
        if i < 3:  # the valid files themselves
            yield f"valid {i}", json.dumps(bases[i]).encode()
        elif roll < 0.001:
            yield "over the size limit", big.encode()
        elif roll < 0.75:
            yield "fields", json.dumps(_mutate(rng, base)).encode("utf-8", "surrogatepass")
        else:
            text = json.dumps(_mutate(rng, base) if rng.random() < 0.5 else base)
            yield "bytes", _text_mutation(rng, text)


def _apply(path) -> str:
    """What ``featteam show`` and ``featteam transform`` do with a file; the outcome's name."""
    transformation = Transformation.load(path)
    # show (an empty token list is the transformation that adds nothing: no formula)
    assert transformation.postfix and (transformation.formulas or not transformation.tokens)
    again = Transformation.from_dict(transformation.to_dict())  # what it saves loads back
    assert again.tokens == transformation.tokens
    columns = transformation.input_columns
    frame = _frame(columns if len(columns) <= 100 else COLUMNS, seed=len(columns))
    preprocessor = transformation.metadata.get("preprocessor")
    if preprocessor is not None:  # as `featteam transform` does
        frame = Preprocessor.from_dict(preprocessor).transform(frame)
    fitted = transformation if transformation.is_fitted else transformation.fit(frame)
    out = fitted.transform(frame)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    assert out.shape == (len(frame), len(transformation.features)), out.shape
    assert np.all(np.isfinite(out))
    return "applied"


@pytest.mark.slow  # 5,000 files, about 20 s: in make test, not in the fast lane
def test_hostile_transformation_files(tmp_path):
    path = tmp_path / "transformation.json"
    outcomes: dict[str, int] = {}
    slowest = (0.0, "")
    start = time.perf_counter()
    for number, (name, content) in enumerate(_cases(N_CASES, SEED)):
        path.unlink(missing_ok=True)  # a new file: rewriting one in place is slow on some file systems
        path.write_bytes(content)
        case_start = time.perf_counter()
        try:
            outcome = _apply(path)
        except PROJECT_ERRORS as exc:
            outcome = type(exc).__name__
            assert "\n" not in str(exc).strip() or isinstance(exc, InvalidSequence), (number, name, str(exc)[:200])
            assert len(str(exc)) < 2_000, (number, name, str(exc)[:200])  # messages stay short
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"case {number} ({name}): {type(exc).__name__}: {str(exc)[:300]}\n"
                        f"file starts {content[:300]!r}")
        elapsed = time.perf_counter() - case_start
        slowest = max(slowest, (elapsed, f"case {number} ({name})"))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    total = time.perf_counter() - start
    print(f"\n{N_CASES} hostile files in {total:.1f} s; slowest {slowest[1]}: {slowest[0] * 1000:.0f} ms; "
          f"outcomes {outcomes}")
    assert sum(outcomes.values()) == N_CASES
    assert outcomes.get("applied", 0) >= 200  # the mutations leave many files valid: those are applied
    assert outcomes.get("TransformationError", 0) >= 2_000
    # Not a timing target (those live in the benchmarks): a file that made the reader hang or
    # blow up (a huge allocation, a deep recursion) would take far longer than this on any machine.
    assert slowest[0] < 30.0, slowest


def test_the_cases_are_the_same_for_a_seed():
    import hashlib

    def digest(n, seed):
        return hashlib.sha256(b"".join(hashlib.sha256(c).digest() for _, c in _cases(n, seed))).hexdigest()

    first = digest(1_000, SEED)
    assert digest(1_000, SEED) == first  # nothing generated earlier changes what comes later
    assert digest(1_000, SEED + 1) != first
