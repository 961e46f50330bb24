"""Tokens and the vocabulary of expression sequences for a table with d features."""

from __future__ import annotations

import re

import numpy as np

from .operators import BINARY, OPERATORS, UNARY

PAD, SOS, EOS, SEP = "<pad>", "<sos>", "<eos>", "<sep>"
SPECIALS: tuple[str, ...] = (PAD, SOS, EOS, SEP)
#: How the separator is written in the LLM text form ``[f0 f1 + , f2 sqrt]``.
SEP_TEXT = ","
#: Most digits of a feature index: ``int()`` of longer digit strings is slow or refused
#: (Python's 4300-digit limit), and no table has a billion columns.
MAX_INDEX_DIGITS = 9
_FEATURE_RE = re.compile(rf"^f(0|[1-9][0-9]{{0,{MAX_INDEX_DIGITS - 1}}})$")


def feature_token(index: int) -> str:
    """The token of original feature ``index``: ``f{index}``."""
    return f"f{index}"


def feature_index(token: str) -> int | None:
    """The index of a feature token, or None if ``token`` is not one.

    An index longer than :data:`MAX_INDEX_DIGITS` digits is no feature token.
    """
    match = _FEATURE_RE.match(token)
    return int(match.group(1)) if match else None


def token_text(token: str) -> str:
    """The text of an expression token as an LLM writes it inside ``[...]``.

    ``" ]"`` for the end token (it closes the bracket), ``" ,"`` for the
    separator and ``" " + token`` otherwise, so that the texts of a sequence
    concatenate to the postfix form ``[f0 f1 + , f2 sqrt ]`` after ``"["``.
    """
    if token == EOS:
        return " ]"
    if token == SEP:
        return " " + SEP_TEXT
    return " " + token


class Vocabulary:
    """Token <-> id mapping: specials, then operators (registry order), then f0..f{d-1}.

    Parameters
    ----------
    n_features : int
        Number of original features of the table.
    """

    def __init__(self, n_features: int) -> None:
        if n_features < 1:
            raise ValueError("a vocabulary needs at least one feature")
        self.n_features = int(n_features)
        self.tokens: list[str] = [*SPECIALS, *OPERATORS, *(feature_token(i) for i in range(n_features))]
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.sos_id, self.eos_id, self.sep_id = (self.index[t] for t in SPECIALS)
        self.unary_ids = np.array([self.index[t] for t in UNARY])
        self.binary_ids = np.array([self.index[t] for t in BINARY])
        self.feature_ids = np.arange(len(SPECIALS) + len(OPERATORS), len(self.tokens))
        #: Operator arity by token id, 0 for everything else (features and specials):
        #: the ``arity`` argument of :func:`~featteam.expr.sequence.next_depth`.
        self.arity = np.zeros(len(self.tokens), dtype=np.int64)
        for token, op in OPERATORS.items():
            self.arity[self.index[token]] = op.arity

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other.n_features == self.n_features

    def __hash__(self) -> int:
        return hash(("Vocabulary", self.n_features))

    def encode(self, tokens: list[str]) -> list[int]:
        """Ids of ``tokens``; raises KeyError on an unknown token."""
        return [self.index[t] for t in tokens]

    def decode(self, ids) -> list[str]:
        """Tokens of ``ids``, stopping at the end token and skipping padding and start."""
        out = []
        for i in ids:
            token = self.tokens[int(i)]
            if token == EOS:
                break
            if token not in (PAD, SOS):
                out.append(token)
        return out
