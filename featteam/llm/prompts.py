"""The teacher's prompt (method.md, step 1), written from the operator registry.

Every column is shown by a word the answer's parser reads back as that column (the rule
of :mod:`featteam.expr.sequence`): its token ``f{i}``, with its name in parentheses - in
backticks when the name is no plain identifier, an operator, a number or looks like a
token ``f{j}`` - or, when another column is literally named ``f{i}`` (the token is
shadowed), its name alone.  Answers are read with the names (``teacher.py``) unless the
teacher was shown tokens only (``anonymous``) or writes tokens only (``indices_only``: the
local backend's grammar), where ``f{i}`` is always column i.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..expr import OPERATORS, SEP, feature_index, feature_token, to_postfix_text
from ..expr.sequence import quote_name
from ..expr.vocab import SEP_TEXT

SYSTEM = ("You are an expert data scientist who designs new features for tabular machine learning. "
          "You answer only with transformations in the exact format asked for.")

#: A one-shot example over three hypothetical columns.
EXAMPLE_COLUMNS = ["age", "income", "debt"]
EXAMPLE = ["f2", "f1", "/", "<sep>", "f0", "log", "<sep>", "f1", "f0", "*", "sqrt"]


def shown_name(name: object) -> str:
    """A column's name as a prompt shows it: bare only when an answer may write it bare."""
    name = str(name)
    quoted = quote_name(name)
    if quoted == name and feature_index(name) is not None:  # looks like a token: always in backticks
        return "`" + name + "`"
    return quoted


def shadowed(names: Sequence[object]) -> set[int]:
    """The indices i whose token ``f{i}`` is another column's name (the parser reads it as that column)."""
    text = [str(n) for n in names]
    taken = set(text)
    return {j for j in range(len(text)) if feature_token(j) in taken and text[j] != feature_token(j)}


def column_words(names: Sequence[object], anonymous: bool = False, indices_only: bool = False) -> list[str]:
    """The word that stands for each column in the prompt's transformations (its examples)."""
    hidden = set() if anonymous or indices_only else shadowed(names)
    return [shown_name(names[j]) if j in hidden else feature_token(j) for j in range(len(names))]


def example_text(tokens: Sequence[str], words: Sequence[str]) -> str:
    """A sequence in the postfix form, each column written as ``words`` (from :func:`column_words`) says."""
    out = []
    for token in tokens:
        index = feature_index(token)
        out.append(SEP_TEXT if token == SEP else words[index] if index is not None and index < len(words) else token)
    return "[" + " ".join(out) + "]"


def describe_columns(X: np.ndarray, names: Sequence[str], anonymous: bool = False,
                     compact: bool = False, indices_only: bool = False) -> list[str]:
    """One line per column: token, name and short statistics (of the rows given: training rows).

    ``compact`` gives the range only: small local models pay for every prompt token.  A
    shadowed token (:func:`shadowed`) is not shown: the column is shown by its name alone."""
    lines = []
    hidden = set() if anonymous or indices_only else shadowed(names)
    with np.errstate(all="ignore"):
        for j in range(X.shape[1]):
            column = X[:, j][np.isfinite(X[:, j])]
            if anonymous:
                label = f"f{j}"
            elif j in hidden:
                label = shown_name(names[j])
            else:
                label = f"f{j} ({shown_name(names[j])})"
            if column.size == 0:
                lines.append(f"- {label}: no values")
                continue
            if compact:
                lines.append(f"- {label}: {np.min(column):.2g} to {np.max(column):.2g}")
                continue
            lines.append(f"- {label}: mean {np.mean(column):.4g}, std {np.std(column):.4g}, "
                         f"min {np.min(column):.4g}, max {np.max(column):.4g}, "
                         f"{len(np.unique(column))} distinct")
    return lines


def operator_lines() -> list[str]:
    unary = ", ".join(t for t, op in OPERATORS.items() if op.arity == 1)
    binary = " ".join(t for t, op in OPERATORS.items() if op.arity == 2)
    return [f"- unary (one operand): {unary}", f"- binary (two operands): {binary}"]


def build_messages(task: str, target: str, X: np.ndarray, names: Sequence[str], n_answers: int,
                   max_features: int, max_length: int, anonymous: bool = False,
                   good_examples: Sequence[str] = (), compact: bool = False,
                   indices_only: bool = False) -> list[dict[str, str]]:
    """The chat messages asking for ``n_answers`` diverse transformations.

    ``good_examples`` are written with :func:`example_text` and :func:`column_words` (same
    ``anonymous`` and ``indices_only``), so that they read back as the same tokens."""
    target_text = "the target" if anonymous else f"the target {target!r}"
    if anonymous or indices_only or not shadowed(names):
        columns_rule = ("- Write each transformation in postfix notation inside square brackets, using the tokens "
                        "f0, f1, ... for the columns: operands first, then the operator.")
        example = (f"Example over columns {', '.join(f'f{i} ({n})' for i, n in enumerate(EXAMPLE_COLUMNS))}: "
                   f"{to_postfix_text(EXAMPLE)}")
    else:  # some f{i} is another column's name: columns are written as shown, the example by name
        columns_rule = ("- Write each transformation in postfix notation inside square brackets, writing each "
                        "column as it is shown above (its token f<i>, or its name where no token is shown, with "
                        "its backticks): operands first, then the operator.")
        example = (f"Example over columns {', '.join(EXAMPLE_COLUMNS)}: "
                   f"{to_postfix_text(EXAMPLE, EXAMPLE_COLUMNS)}")
    lines = [
        f"Task: {task}. We predict {target_text} from {X.shape[1]} numeric columns:",
        *describe_columns(X, names, anonymous, compact, indices_only),
        "",
        "Operators:",
        *operator_lines(),
        "",
        "Rules:",
        columns_rule,
        f"- One transformation is 1 to {max_features} new features separated by commas, "
        f"at most {max_length} tokens in all.",
        "- Every new feature uses at least one operator; do not repeat a feature.",
        f"{example} means debt / income, log(age), sqrt(income * age).",
    ]
    if good_examples:
        lines += ["", "Transformations that scored well so far:", *(f"- {e}" for e in good_examples)]
    lines += ["", f"Write {n_answers} diverse transformations that would help a model predict "
                  f"{target_text}, one per line, nothing else."]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]
