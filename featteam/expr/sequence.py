"""Transformations as token sequences: structure checks, parsing and rendering.

A transformation is one postfix sequence of one or more new features,
separated by :data:`~featteam.expr.vocab.SEP`:
``["f0", "f3", "*", "<sep>", "f2", "log"]``.  Two text forms exist:

* the LLM (postfix) form ``[f0 f3 * , f2 log]`` - column names may stand for
  ``f{i}``;
* the readable infix form ``(a * b), log(c)`` that :func:`render` writes and
  :func:`parse_infix` reads back.

Model output is data: it is tokenised and checked here, never executed.

Columns in text (both forms, one rule, whatever the column names are)
----------------------------------------------------------------------
Without ``columns`` (the reader was shown ``f0..fn`` only: ``--anonymous``, or a backend
that writes indices), the only column words are ``f{i}``: column index i.  Names are
never looked up.

With ``columns``, a word is read in this order:

1. an operator's name is the operator (a column named ``log`` is written `` `log` ``);
2. `` `text` `` in backticks is the column named exactly ``text`` - never an index, an
   operator or a number - or an unknown token;
3. a bare number (``2``, ``0.5``, ``1e3``) is never a column, even when a column is named
   so (the language has no constants): such a column is written `` `2` ``;
4. a bare word that is exactly a column's name is that column;
5. a bare ``f{i}`` that is no column's name is column index i;
6. anything else is an unknown token.

So a column literally named ``f0`` at index 2 makes the word ``f0`` mean column 2 (rule 4
before rule 5): a writer that means index 0 writes column 0's name.  :func:`render` and
:func:`to_postfix_text` write names (in backticks where rule 1, 3 or the lexer needs
them), so their text reads back as the same tokens; the teacher's prompts never show a
token ``f{i}`` that a column's name shadows (:mod:`featteam.llm.prompts`).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Callable, Sequence, TypeVar

from ..errors import FeatteamError
from .operators import OPERATORS, Operator
from .vocab import SEP, SEP_TEXT, feature_index, feature_token

T = TypeVar("T")

#: Default limits of a transformation.
DEFAULT_MAX_LENGTH = 48
DEFAULT_MAX_FEATURES = 6
#: Most tokens in one new feature: a formula a person can still read.
DEFAULT_MAX_FEATURE_LENGTH = 9
#: Longest text :func:`parse` (and both text forms) reads, whitespace included: longer
#: text is refused as UNPARSABLE before any work, so hostile input stays cheap.
MAX_TEXT_LENGTH = 100_000
#: Deepest nesting of parentheses and function calls in infix text: deeper text is
#: refused as UNPARSABLE instead of exhausting Python's recursion limit.
MAX_NESTING = 64


class ErrorKind(str, Enum):
    """Why a sequence is not a valid transformation (one class per kind of error case)."""

    UNPARSABLE = "unparsable"              # no transformation could be read from the text
    UNKNOWN_TOKEN = "unknown_token"        # a token that is no feature, operator or separator
    ARITY = "arity"                        # an operator without enough operands
    LEFTOVER_OPERANDS = "leftover_operands"  # a feature leaves more than one value on the stack
    EMPTY_FEATURE = "empty_feature"        # two separators in a row, or a trailing one
    NO_OPERATOR = "no_operator"            # a bare copy of an original column
    TOO_LONG = "too_long"
    TOO_MANY_FEATURES = "too_many_features"
    DUPLICATE_FEATURE = "duplicate_feature"  # equal to another new feature or an original column
    CONSTANT_FEATURE = "constant_feature"
    NON_FINITE = "non_finite"


class InvalidSequence(FeatteamError, ValueError):
    """A sequence that is not a valid transformation; ``kind`` says why."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(f"{kind.value}: {message}")
        self.kind = kind
        self.detail = message

    def __reduce__(self):  # the error crosses process boundaries (joblib, Dask) with its kind
        return type(self), (self.kind, self.detail)


# The stack-depth rule ------------------------------------------------------------------

def token_arity(token: str) -> int:
    """The arity of an operator token (1 or 2); 0 for any other token."""
    op = OPERATORS.get(token)
    return 0 if op is None else op.arity


def next_depth(depth, arity, separator):
    """The stack depth after one token: the single statement of the postfix stack rule.

    A column token (``arity`` 0) pushes one value, an operator pops ``arity``
    values and pushes one, the separator (``separator`` 1) closes the feature
    and resets the depth to 0.  Written with arithmetic only (no branch, no
    ``np.where``) so that it works unchanged, element-wise, on Python ints,
    numpy integer arrays and torch long tensors.

    Parameters
    ----------
    depth : int or integer array or long tensor
        Values on the stack before the token.
    arity : int or integer array or long tensor
        The token's operator arity, 0 for a column token (see
        :attr:`~featteam.expr.vocab.Vocabulary.arity`).
    separator : int or integer array or long tensor
        1 where the token is the separator, else 0 (integers, not booleans:
        numpy and torch refuse ``1 - bool``).

    Returns
    -------
    Same type as the inputs
        ``(depth + 1 - arity) * (1 - separator)``.  Tokens that are neither
        columns, operators nor the separator (the end, start and padding
        tokens) have no depth of their own: callers handle them first.
    """
    return (depth + 1 - arity) * (1 - separator)


def stack_depths(tokens: Sequence[str]) -> list[int]:
    """The stack depth after each token (the separator resets it to 0), by :func:`next_depth`.

    No check is made: an operator without enough operands gives a depth below 1.
    """
    depths: list[int] = []
    depth = 0
    for token in tokens:
        depth = next_depth(depth, token_arity(token), int(token == SEP))
        depths.append(depth)
    return depths


def fold_postfix(feature: Sequence[str], leaf: Callable[[int, str], T],
                 apply: Callable[[int, Operator, list[T]], T], start: int = 0,
                 name: str = "a feature") -> T:
    """Reduce one postfix feature to one value: the one stack machine of the package.

    Parameters
    ----------
    feature : sequence of str
        The tokens of one feature (no separator).
    leaf : callable
        ``leaf(position, token) -> value`` for every token that is no operator.
    apply : callable
        ``apply(position, operator, operands) -> value``; ``operands`` are in
        stack order (the first operand deepest).
    start : int
        Position of the feature's first token in its whole sequence: positions
        passed to ``leaf`` and ``apply`` are ``start + i`` (stateful operators
        keep their fitted state under that position).
    name : str
        How error messages name the feature.

    Returns
    -------
    The single value the feature reduces to.

    Raises
    ------
    InvalidSequence
        ARITY when an operator lacks operands, LEFTOVER_OPERANDS when the
        feature does not reduce to exactly one value (an empty one included).
    """
    stack: list[T] = []
    for position, token in enumerate(feature, start):
        op = OPERATORS.get(token)
        if op is None:
            stack.append(leaf(position, token))
            continue
        if len(stack) < op.arity:
            raise InvalidSequence(ErrorKind.ARITY,
                                  f"{name}: {token!r} needs {op.arity} operand(s), has {len(stack)}")
        operands = stack[len(stack) - op.arity:]
        del stack[len(stack) - op.arity:]
        stack.append(apply(position, op, operands))
    if len(stack) != 1:
        raise InvalidSequence(ErrorKind.LEFTOVER_OPERANDS, f"{name} leaves {len(stack)} values, not one")
    return stack[0]


def _no_value(*_: object) -> None:
    """A fold step that computes nothing: the fold then only checks the structure."""
    return None


def split_features(tokens: Sequence[str]) -> list[list[str]]:
    """Split a sequence at separators (empty features are kept, as empty lists)."""
    features: list[list[str]] = [[]]
    for token in tokens:
        if token == SEP:
            features.append([])
        else:
            features[-1].append(token)
    return features


def join_features(features: Sequence[Sequence[str]]) -> list[str]:
    """The inverse of :func:`split_features`."""
    out: list[str] = []
    for i, feature in enumerate(features):
        if i:
            out.append(SEP)
        out.extend(feature)
    return out


def canonical_key(tokens: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """A key equal for two sequences that differ only in the order of their features."""
    return tuple(sorted(tuple(f) for f in split_features(tokens)))


def check_structure(tokens: Sequence[str], n_features: int, max_length: int = DEFAULT_MAX_LENGTH,
                    max_features: int = DEFAULT_MAX_FEATURES,
                    max_feature_length: int | None = DEFAULT_MAX_FEATURE_LENGTH) -> list[list[str]]:
    """Check that ``tokens`` is a well-formed transformation; return its features.

    Raises
    ------
    InvalidSequence
        With the first error found, in the order: unknown token, length,
        feature count, empty feature, arity, leftover operands, no operator,
        duplicate feature.
    """
    if not tokens:
        raise InvalidSequence(ErrorKind.EMPTY_FEATURE, "the sequence is empty")
    for token in tokens:
        if token == SEP or token in OPERATORS:
            continue
        index = feature_index(token)
        if index is None or index >= n_features:
            raise InvalidSequence(ErrorKind.UNKNOWN_TOKEN, f"unknown token {token!r}")
    if len(tokens) > max_length:
        raise InvalidSequence(ErrorKind.TOO_LONG, f"{len(tokens)} tokens, at most {max_length} allowed")
    features = split_features(tokens)
    if len(features) > max_features:
        raise InvalidSequence(ErrorKind.TOO_MANY_FEATURES,
                              f"{len(features)} features, at most {max_features} allowed")
    seen: set[tuple[str, ...]] = set()
    for number, feature in enumerate(features, 1):
        if not feature:
            raise InvalidSequence(ErrorKind.EMPTY_FEATURE, f"feature {number} is empty")
        if max_feature_length is not None and len(feature) > max_feature_length:
            raise InvalidSequence(ErrorKind.TOO_LONG, f"feature {number} has {len(feature)} tokens, "
                                                      f"at most {max_feature_length} allowed")
        fold_postfix(feature, _no_value, _no_value, name=f"feature {number}")
        if len(feature) == 1:
            raise InvalidSequence(ErrorKind.NO_OPERATOR, f"feature {number} is a bare copy of {feature[0]}")
        if tuple(feature) in seen:
            raise InvalidSequence(ErrorKind.DUPLICATE_FEATURE, f"feature {number} repeats an earlier one")
        seen.add(tuple(feature))
    return features


# Names -------------------------------------------------------------------------------

#: A name written bare (matched whole: ``$`` would also accept a name that ends in a newline,
#: which the lexer does not read back as one word).
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def quote_name(name: str) -> str:
    """A column name as written in formulas: bare when unambiguous, else in backticks."""
    if _IDENTIFIER.fullmatch(name) and name not in OPERATORS:
        return name
    return "`" + name.replace("`", "``") + "`"


#: A bare word that is a number: never a column (rule 3 of the module's docstring).
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE]\d+)?")


def _column_lookup(columns: Sequence[str] | None) -> dict[str, int] | None:
    """Column name -> index (the first of equal names), or None: names are not read."""
    if columns is None:
        return None
    lookup: dict[str, int] = {}
    for index, name in enumerate(columns):
        lookup.setdefault(str(name), index)
    return lookup


def _short(text: str, limit: int = 40) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _resolve_name(name: str, lookup: dict[str, int] | None, quoted: bool) -> str:
    """Map a column word to a feature token, by the rule of the module's docstring."""
    if quoted:
        if lookup is not None and name in lookup:
            return feature_token(lookup[name])
        raise InvalidSequence(ErrorKind.UNKNOWN_TOKEN, f"unknown column {_short(name)}")
    if _NUMBER.fullmatch(name):
        raise InvalidSequence(ErrorKind.UNKNOWN_TOKEN, f"{_short(name)} is a number, not a column (write a column "
                                                       f"named like a number in backticks)")
    if lookup is not None and name in lookup:
        return feature_token(lookup[name])
    if feature_index(name) is not None:
        return name
    raise InvalidSequence(ErrorKind.UNKNOWN_TOKEN, f"unknown column or token {_short(name)}")


# Lexer shared by both text forms: backtick names, punctuation, bare words.
_LEX = re.compile(r"\s*(?:`((?:[^`]|``)*)`|([(),\[\]])|([+\-*/])|([^\s(),\[\]`+\-*/]+))")


def _check_length(text: str) -> None:
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidSequence(ErrorKind.UNPARSABLE,
                              f"{len(text)} characters, at most {MAX_TEXT_LENGTH} are read")


def _lex(text: str) -> list[tuple[str, str]]:
    """Split text into (kind, value) pairs: kind is 'name', 'qname', 'punct' or 'op'."""
    _check_length(text)
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _LEX.match(text, pos)
        if match is None or match.end() == pos:
            raise InvalidSequence(ErrorKind.UNPARSABLE, f"cannot read {text[pos:pos + 20]!r}")
        quoted, punct, op, word = match.groups()
        if quoted is not None:
            out.append(("qname", quoted.replace("``", "`")))
        elif punct is not None:
            out.append(("punct", punct))
        elif op is not None:
            out.append(("op", op))
        else:
            out.append(("name", word))
        pos = match.end()
    return out


def parse_postfix(text: str, columns: Sequence[str] | None = None) -> list[str]:
    """Parse the LLM postfix form ``[f0 f1 + , f2 sqrt]`` (brackets optional).

    Column names may stand for ``f{i}`` (in backticks when they contain spaces,
    clash with an operator or are numbers), by the rule of the module's docstring;
    ``columns=None`` reads ``f{i}`` only.  Only the tokenisation is done here; call
    :func:`check_structure` to validate.

    Raises
    ------
    InvalidSequence
        UNPARSABLE or UNKNOWN_TOKEN; text longer than :data:`MAX_TEXT_LENGTH` is UNPARSABLE.
    """
    lexemes = _lex(text)
    if lexemes and lexemes[0] == ("punct", "["):
        if lexemes[-1] != ("punct", "]"):
            raise InvalidSequence(ErrorKind.UNPARSABLE, "missing closing ']'")
        lexemes = lexemes[1:-1]
    lookup = _column_lookup(columns)
    tokens: list[str] = []
    for kind, value in lexemes:
        if kind == "punct":
            if value != SEP_TEXT:
                raise InvalidSequence(ErrorKind.UNPARSABLE, f"unexpected {value!r} in postfix text")
            tokens.append(SEP)
        elif kind == "op" or (kind == "name" and value in OPERATORS):
            tokens.append(value)
        else:
            tokens.append(_resolve_name(value, lookup, quoted=kind == "qname"))
    if not tokens:
        raise InvalidSequence(ErrorKind.UNPARSABLE, "no tokens")
    return tokens


def to_postfix_text(tokens: Sequence[str], columns: Sequence[str] | None = None) -> str:
    """Write a sequence in the LLM postfix form, with column names if given."""
    words = []
    for token in tokens:
        index = feature_index(token)
        if token == SEP:
            words.append(SEP_TEXT)
        elif index is not None and columns is not None:
            words.append(quote_name(str(columns[index])))
        else:
            words.append(token)
    return "[" + " ".join(words) + "]"


def render_feature(feature: Sequence[str], columns: Sequence[str] | None = None) -> str:
    """Render one postfix feature as infix (binary operations fully parenthesised)."""
    def leaf(_: int, token: str) -> str:
        return quote_name(str(columns[feature_index(token)])) if columns is not None else token

    return fold_postfix(feature, leaf, lambda _, op, operands: op.render(*operands))


def render(tokens: Sequence[str], columns: Sequence[str] | None = None) -> str:
    """Readable infix text of a whole transformation: features joined by ', '."""
    return ", ".join(render_feature(f, columns) for f in split_features(tokens))


class _InfixParser:
    """Recursive descent over ``expr := term (+|- term)*``, ``term := factor (*|/ factor)*``.

    Each parenthesis or function call recurses a few Python frames deep, so
    nesting is limited to :data:`MAX_NESTING` (an InvalidSequence, not a RecursionError).
    """

    def __init__(self, lexemes: list[tuple[str, str]], columns: Sequence[str] | None) -> None:
        self.lexemes = lexemes
        self.pos = 0
        self.lookup = _column_lookup(columns)
        self.nesting = 0

    def peek(self) -> tuple[str, str] | None:
        return self.lexemes[self.pos] if self.pos < len(self.lexemes) else None

    def take(self) -> tuple[str, str]:
        lexeme = self.peek()
        if lexeme is None:
            raise InvalidSequence(ErrorKind.UNPARSABLE, "unexpected end of formula")
        self.pos += 1
        return lexeme

    def expect(self, value: str) -> None:
        lexeme = self.take()
        if lexeme != ("punct", value):
            raise InvalidSequence(ErrorKind.UNPARSABLE, f"expected {value!r}, found {lexeme[1]!r}")

    def transformation(self) -> list[str]:
        features = [self.expr()]
        while self.peek() == ("punct", SEP_TEXT):
            self.take()
            features.append(self.expr())
        if self.peek() is not None:
            raise InvalidSequence(ErrorKind.UNPARSABLE, f"unexpected {self.peek()[1]!r}")
        return join_features(features)

    def _binary_chain(self, operand, operators: tuple[str, ...]) -> list[str]:
        out = operand()
        while (lexeme := self.peek()) is not None and lexeme[0] == "op" and lexeme[1] in operators:
            self.take()
            # In place: rebuilding the list per operand is quadratic on a long chain a + b + c + ...
            out.extend(operand())
            out.append(lexeme[1])
        return out

    def expr(self) -> list[str]:
        return self._binary_chain(self.term, ("+", "-"))

    def term(self) -> list[str]:
        return self._binary_chain(self.factor, ("*", "/"))

    def nested(self) -> list[str]:
        """The expression inside a parenthesis just taken, up to and including its ')'."""
        if self.nesting >= MAX_NESTING:
            raise InvalidSequence(ErrorKind.UNPARSABLE, f"formula nested more than {MAX_NESTING} deep")
        self.nesting += 1
        inner = self.expr()
        self.expect(")")
        self.nesting -= 1
        return inner

    def factor(self) -> list[str]:
        kind, value = self.take()
        if (kind, value) == ("punct", "("):
            return self.nested()
        if kind == "name" and self.peek() == ("punct", "("):
            op = OPERATORS.get(value)
            if op is None or op.arity != 1:
                raise InvalidSequence(ErrorKind.UNKNOWN_TOKEN, f"unknown function {value!r}")
            self.take()
            return self.nested() + [value]
        if kind in ("name", "qname"):
            return [_resolve_name(value, self.lookup, quoted=kind == "qname")]
        raise InvalidSequence(ErrorKind.UNPARSABLE, f"unexpected {value!r}")


def parse_infix(text: str, columns: Sequence[str] | None = None) -> list[str]:
    """Parse readable infix text (what :func:`render` writes) into a postfix sequence.

    Raises
    ------
    InvalidSequence
        UNPARSABLE or UNKNOWN_TOKEN; text longer than :data:`MAX_TEXT_LENGTH` or nested
        more than :data:`MAX_NESTING` deep is UNPARSABLE.
    """
    lexemes = _lex(text)
    if not lexemes:
        raise InvalidSequence(ErrorKind.UNPARSABLE, "empty formula")
    return _InfixParser(lexemes, columns).transformation()


def parse(text: str, columns: Sequence[str] | None = None) -> list[str]:
    """Parse either text form: ``[...]`` is postfix, anything else infix.

    Raises
    ------
    InvalidSequence
        The only error for any text: UNPARSABLE or UNKNOWN_TOKEN.  Text longer than
        :data:`MAX_TEXT_LENGTH` characters (whitespace included) is refused before
        it is read; infix text nested more than :data:`MAX_NESTING` deep is refused.
    """
    _check_length(text)  # before strip(): refuse huge text without copying it
    stripped = text.strip()
    if stripped.startswith("["):
        return parse_postfix(stripped, columns)
    return parse_infix(stripped, columns)
