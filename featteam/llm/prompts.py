"""The teacher's prompt (method.md, step 1), written from the operator registry."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..expr import OPERATORS, to_postfix_text

SYSTEM = ("You are an expert data scientist who designs new features for tabular machine learning. "
          "You answer only with transformations in the exact format asked for.")

#: A one-shot example over three hypothetical columns.
EXAMPLE_COLUMNS = ["age", "income", "debt"]
EXAMPLE = ["f2", "f1", "/", "<sep>", "f0", "log", "<sep>", "f1", "f0", "*", "sqrt"]


def describe_columns(X: np.ndarray, names: Sequence[str], anonymous: bool = False,
                     compact: bool = False) -> list[str]:
    """One line per column: token, name and short statistics (of the rows given: training rows).

    ``compact`` gives the range only: small local models pay for every prompt token."""
    lines = []
    with np.errstate(all="ignore"):
        for j in range(X.shape[1]):
            column = X[:, j][np.isfinite(X[:, j])]
            label = f"f{j}" if anonymous else f"f{j} ({names[j]})"
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
                   good_examples: Sequence[str] = (), compact: bool = False) -> list[dict[str, str]]:
    """The chat messages asking for ``n_answers`` diverse transformations."""
    target_text = "the target" if anonymous else f"the target {target!r}"
    lines = [
        f"Task: {task}. We predict {target_text} from {X.shape[1]} numeric columns:",
        *describe_columns(X, names, anonymous, compact),
        "",
        "Operators:",
        *operator_lines(),
        "",
        "Rules:",
        "- Write each transformation in postfix notation inside square brackets, using the tokens f0, f1, ... "
        "for the columns: operands first, then the operator.",
        f"- One transformation is 1 to {max_features} new features separated by commas, "
        f"at most {max_length} tokens in all.",
        "- Every new feature uses at least one operator; do not repeat a feature.",
        f"Example over columns {', '.join(f'f{i} ({n})' for i, n in enumerate(EXAMPLE_COLUMNS))}: "
        f"{to_postfix_text(EXAMPLE)} means debt / income, log(age), sqrt(income * age).",
    ]
    if good_examples:
        lines += ["", "Transformations that scored well so far:", *(f"- {e}" for e in good_examples)]
    lines += ["", f"Write {n_answers} diverse transformations that would help a model predict "
                  f"{target_text}, one per line, nothing else."]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]
