"""Fuzzing the parsers: any text gives tokens or an InvalidSequence, never another error."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featteam.expr import (
    MAX_NESTING,
    MAX_TEXT_LENGTH,
    OPERATORS,
    SEP,
    ErrorKind,
    InvalidSequence,
    check_structure,
    feature_index,
    parse,
    parse_infix,
    parse_postfix,
    render,
    split_features,
    to_postfix_text,
)

PARSERS = [parse, parse_postfix, parse_infix]
COLUMNS = ["a", "b", "log", "my col", "f1", "a`b"]
#: Characters the parsers give a meaning to, so that fuzzed text reaches past the lexer.
ALPHABET = "f0123456789()[],`+-*/ sqrtlogab"
#: Whole words of both text forms, for text that is often close to valid.
WORDS = ["f0", "f1", "f2", "f12", "a", "b", "log", "sqrt", "square", "quan_trans", "`my col`", "`a``b`",
         "(", ")", "[", "]", ",", "`", "+", "-", "*", "/", " ", "<sep>"]

texts = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=ALPHABET, max_size=80),
    st.lists(st.sampled_from(WORDS), max_size=30).map(" ".join),
    st.lists(st.sampled_from(WORDS), max_size=30).map("".join),
    # Bracketed postfix words: often a well-formed sequence, so the round trip is exercised.
    st.lists(st.sampled_from(["f0 sqrt", "f0 f1 +", "f1 f2 *", "f1", "log", "*", ","]), max_size=8)
    .map(lambda words: "[" + " ".join(words) + "]"),
)
columns_or_none = st.sampled_from([None, COLUMNS])


def _parse_or_refuse(parser, text: str, columns):
    """What the parser returns (checked to be tokens of the language), or None if it refused."""
    try:
        tokens = parser(text, columns)
    except InvalidSequence as exc:  # any other exception escapes and fails the test
        assert exc.kind in (ErrorKind.UNPARSABLE, ErrorKind.UNKNOWN_TOKEN)
        return None
    assert isinstance(tokens, list) and tokens
    for token in tokens:
        assert isinstance(token, str)
        assert token == SEP or token in OPERATORS or feature_index(token) is not None, token
    return tokens


@settings(max_examples=400, deadline=None)
@given(texts, columns_or_none)
def test_parsers_return_tokens_or_raise_invalid_sequence(text, columns):
    for parser in PARSERS:
        _parse_or_refuse(parser, text, columns)


def _renderable(feature: list[str], n_features: int) -> bool:
    """Whether one feature is well formed (a bare column is: it renders as its name)."""
    try:
        check_structure(feature, n_features, max_feature_length=None, max_length=len(feature) or 1)
    except InvalidSequence as exc:
        return exc.kind == ErrorKind.NO_OPERATOR
    return True


@settings(max_examples=300, deadline=None)
@given(texts, columns_or_none)
def test_whatever_parses_and_is_well_formed_renders_and_parses_back(text, columns):
    tokens = _parse_or_refuse(parse, text, columns)
    if tokens is None:
        return
    n_features = len(COLUMNS) if columns else 1 + max(feature_index(t) or 0 for t in tokens)
    if not all(_renderable(feature, n_features) for feature in split_features(tokens)):
        return
    assert parse(render(tokens, columns), columns) == tokens
    assert parse(to_postfix_text(tokens, columns), columns) == tokens


@st.composite
def infix_formulas(draw, depth=0):
    """Readable infix text of one random expression tree (valid by construction)."""
    if depth >= 6 or draw(st.booleans()):
        return draw(st.sampled_from(["a", "b", "`my col`", "`a``b`", "f1", "log"]))
    if draw(st.booleans()):
        return f"{draw(st.sampled_from(['sqrt', 'log', 'square', 'quan_trans']))}({draw(infix_formulas(depth + 1))})"
    left, right = draw(infix_formulas(depth + 1)), draw(infix_formulas(depth + 1))
    op = draw(st.sampled_from("+-*/"))
    return draw(st.sampled_from([f"({left} {op} {right})", f"{left}{op}{right}", f"( {left} ){op}({right} )"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(infix_formulas(), min_size=1, max_size=4))
def test_valid_infix_roundtrips_through_render(formulas):
    tokens = parse(", ".join(formulas), COLUMNS)
    assert parse(render(tokens, COLUMNS), COLUMNS) == tokens
    assert parse(render(tokens)) == tokens


# -- the limits, deterministically -------------------------------------------------------

@pytest.mark.parametrize("parser", PARSERS)
def test_a_feature_token_with_thousands_of_digits_is_an_unknown_token(parser):
    # int() of a 5000-digit string raises ValueError ("Exceeds the limit (4300 digits)").
    huge = "f" + "1" * 5000
    text = f"[{huge} sqrt]" if parser is parse_postfix else f"sqrt({huge})"
    with pytest.raises(InvalidSequence) as info:
        parser(text)
    assert info.value.kind == ErrorKind.UNKNOWN_TOKEN
    with pytest.raises(InvalidSequence) as info:
        check_structure([huge, "sqrt"], 3)
    assert info.value.kind == ErrorKind.UNKNOWN_TOKEN


def test_feature_indices_have_at_most_nine_digits():
    assert feature_index("f123456789") == 123456789
    assert feature_index("f1234567890") is None
    assert parse("f123456789 + f0") == ["f123456789", "f0", "+"]


@pytest.mark.parametrize("parser", [parse, parse_infix])
@pytest.mark.parametrize("text", ["(" * 500 + "a" + ")" * 500, "sqrt(" * 500 + "a" + ")" * 500,
                                  "(" * 500, "log(" * 2000 + "a"])
def test_deep_nesting_is_refused_not_a_recursion_error(parser, text):
    with pytest.raises(InvalidSequence, match=f"nested more than {MAX_NESTING} deep") as info:
        parser(text, ["a"])
    assert info.value.kind == ErrorKind.UNPARSABLE


def test_nesting_up_to_the_limit_parses():
    assert parse("(" * MAX_NESTING + "a" + ")" * MAX_NESTING, ["a"]) == ["f0"]
    assert parse("sqrt(" * MAX_NESTING + "a" + ")" * MAX_NESTING, ["a"]) == ["f0"] + ["sqrt"] * MAX_NESTING
    with pytest.raises(InvalidSequence, match="nested more than"):
        parse("(" * (MAX_NESTING + 1) + "a" + ")" * (MAX_NESTING + 1), ["a"])


@pytest.mark.parametrize("parser", PARSERS)
def test_text_longer_than_the_limit_is_refused(parser):
    with pytest.raises(InvalidSequence, match="at most") as info:
        parser("a" * (MAX_TEXT_LENGTH + 1), ["a"])
    assert info.value.kind == ErrorKind.UNPARSABLE
    # The limit counts whitespace too; text of exactly the limit is read.
    assert parser("a" + " " * (MAX_TEXT_LENGTH - 1), ["a"]) == ["f0"]
