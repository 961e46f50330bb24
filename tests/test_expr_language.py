"""The expression language: registry, parsing, rendering, validation, grammar (with hypothesis)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from featteam.expr import (
    BINARY, OPERATORS, SEP, UNARY, ErrorKind, Grammar, InvalidSequence, Vocabulary, check_structure, evaluate,
    parse, parse_infix, parse_postfix, render, to_postfix_text,
)
from featteam.expr.sequence import quote_name

COLUMNS = ["age", "income", "my col", "log", "0", "f1"]


def test_registry_has_the_methods_operator_set():
    assert set(UNARY) == {"sqrt", "square", "sin", "cos", "tanh", "stand_scaler", "minmax_scaler",
                          "quan_trans", "sigmoid", "log", "reciprocal", "cube"}
    assert set(BINARY) == {"+", "-", "*", "/"}
    assert {t for t, op in OPERATORS.items() if op.stateful} == {"stand_scaler", "minmax_scaler", "quan_trans"}


def test_vocabulary_layout_and_roundtrip():
    vocab = Vocabulary(3)
    assert vocab.tokens[:4] == ["<pad>", "<sos>", "<eos>", "<sep>"]
    assert vocab.tokens[-3:] == ["f0", "f1", "f2"]
    ids = vocab.encode(["f0", "f1", "+", SEP, "f2", "log"])
    assert vocab.decode(ids + [vocab.eos_id, vocab.index["f0"]]) == ["f0", "f1", "+", SEP, "f2", "log"]


def test_parse_postfix_with_names_and_indices():
    tokens = parse_postfix("[age income * , `my col` sqrt , `log` f0 / , `0` `f1` -]", COLUMNS)
    assert tokens == ["f0", "f1", "*", SEP, "f2", "sqrt", SEP, "f3", "f0", "/", SEP, "f4", "f5", "-"]


def test_render_is_readable_and_parses_back():
    tokens = ["f0", "f1", "*", SEP, "f2", "sqrt", SEP, "f3", "f4", "-", "f5", "/"]
    text = render(tokens, COLUMNS)
    assert text == "(age * income), sqrt(`my col`), ((`log` - `0`) / f1)"
    assert parse(text, COLUMNS) == tokens
    assert parse(to_postfix_text(tokens, COLUMNS), COLUMNS) == tokens


def test_infix_precedence_and_associativity():
    assert parse_infix("a + b * c - d", ["a", "b", "c", "d"]) == ["f0", "f1", "f2", "*", "+", "f3", "-"]
    assert parse_infix("log(a / (b - c))", ["a", "b", "c"]) == ["f0", "f1", "f2", "-", "/", "log"]


def test_quote_name_escapes_backticks():
    assert quote_name("a`b") == "`a``b`"
    assert parse("sqrt(`a``b`)", ["a`b"]) == ["f0", "sqrt"]


@pytest.mark.parametrize("text, kind", [
    ("[f0 f9 +]", ErrorKind.UNKNOWN_TOKEN),
    ("[f0 banana +]", ErrorKind.UNKNOWN_TOKEN),
    ("[f0 +]", ErrorKind.ARITY),
    ("[f0 f1]", ErrorKind.LEFTOVER_OPERANDS),
    ("[f0 sqrt , , f1 log]", ErrorKind.EMPTY_FEATURE),
    ("[f0 sqrt ,]", ErrorKind.EMPTY_FEATURE),
    ("[f0 , f1 log]", ErrorKind.NO_OPERATOR),
    ("[f0 sqrt , f0 sqrt]", ErrorKind.DUPLICATE_FEATURE),
    ("[" + " ".join(["f0"] * 30 + ["+"] * 29) + "]", ErrorKind.TOO_LONG),
    ("[f0 f1 + f2 + f0 + f1 + sqrt]", ErrorKind.TOO_LONG),
    ("[" + " , ".join(f"f{i % 3} {u}" for i, u in enumerate(UNARY[:8])) + "]", ErrorKind.TOO_MANY_FEATURES),
])
def test_error_taxonomy(text, kind):
    with pytest.raises(InvalidSequence) as info:
        check_structure(parse_postfix(text), n_features=3)
    assert info.value.kind == kind


@pytest.mark.parametrize("text", ["[f0 f1 +", "[f0 ( f1 +]", "sqrt(f0", "f0 + ", "((", "", "[]"])
def test_unparsable_text(text):
    with pytest.raises(InvalidSequence) as info:
        parse(text, ["f0", "f1"])
    assert info.value.kind in (ErrorKind.UNPARSABLE, ErrorKind.UNKNOWN_TOKEN)


def test_hostile_text_is_only_data():
    for text in ["__import__('os').system('rm -rf /')", "[f0 __class__ +]", "exec(open('x').read())"]:
        with pytest.raises(InvalidSequence):
            check_structure(parse(text, ["f0", "f1"]), 2)


# -- the grammar automaton is exact ----------------------------------------------------

def _reachable_valid(alphabet, n_features, max_length, max_features, max_feature_length):
    """All structurally valid sequences over the alphabet (duplicates allowed), by brute force."""
    valid = set()
    for length in range(1, max_length + 1):
        for seq in itertools.product(alphabet, repeat=length):
            try:
                check_structure(list(seq), n_features, max_length, max_features, max_feature_length)
            except InvalidSequence as exc:
                if exc.kind != ErrorKind.DUPLICATE_FEATURE:
                    continue
            valid.add(seq)
    return valid


def test_grammar_is_exact_by_brute_force():
    # Every unary operator behaves alike in the grammar, so do binaries and features:
    # one of each kind (two features) enumerates every shape.
    alphabet = ["f0", "f1", "sqrt", "+", SEP]
    max_length, max_features, max_feature_length = 7, 2, 4
    vocab = Vocabulary(2)
    grammar = Grammar(vocab, max_length, max_features, max_feature_length)
    valid = _reachable_valid(alphabet, 2, max_length, max_features, max_feature_length)
    prefixes = {seq[:k] for seq in valid for k in range(len(seq) + 1)}
    for prefix in prefixes:
        mask = grammar.allowed(grammar.state_of(vocab.encode(list(prefix))))
        expected = {t for t in alphabet if prefix + (t,) in prefixes}
        got = {t for t in alphabet if mask[vocab.index[t]]}
        assert got == expected, prefix
        assert mask[vocab.eos_id] == (prefix in valid), prefix


@st.composite
def grammar_samples(draw):
    n_features = draw(st.integers(1, 6))
    max_length = draw(st.integers(2, 30))
    max_features = draw(st.integers(1, 5))
    max_feature_length = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    grammar = Grammar(Vocabulary(n_features), max_length, max_features, max_feature_length)
    return grammar, grammar.sample(np.random.default_rng(seed), eos_bias=draw(st.floats(0.05, 5.0)))


@settings(max_examples=300, deadline=None)
@given(grammar_samples())
def test_every_sequence_sampled_under_the_automaton_is_valid(sample):
    grammar, tokens = sample
    try:
        check_structure(tokens, grammar.vocab.n_features, grammar.max_length, grammar.max_features,
                        grammar.max_feature_length)
    except InvalidSequence as exc:  # the automaton cannot see duplicates (whole-feature equality)
        assert exc.kind == ErrorKind.DUPLICATE_FEATURE


@settings(max_examples=300, deadline=None)
@given(grammar_samples(), st.lists(st.text(min_size=1, max_size=8), min_size=6, max_size=6, unique=True))
def test_parse_render_roundtrip(sample, names):
    _, tokens = sample
    columns = names[:6]
    assert parse(render(tokens, columns), columns) == tokens
    assert parse(render(tokens)) == tokens
    assert parse(to_postfix_text(tokens, columns), columns) == tokens


@settings(max_examples=200, deadline=None)
@given(grammar_samples(), st.data())
def test_valid_sequences_give_finite_output_on_any_finite_input(sample, data):
    grammar, tokens = sample
    n_rows = data.draw(st.integers(1, 20))
    X = data.draw(arrays(np.float64, (n_rows, grammar.vocab.n_features),
                         elements=st.floats(allow_nan=False, allow_infinity=False)))
    new, states = evaluate(tokens, X)
    assert np.all(np.isfinite(new))
    # Re-applying the fitted states to other finite rows stays finite too.
    other = data.draw(arrays(np.float64, (3, grammar.vocab.n_features),
                             elements=st.floats(allow_nan=False, allow_infinity=False)))
    again, _ = evaluate(tokens, other, states)
    assert np.all(np.isfinite(again))


def test_stateful_operators_fit_on_training_rows_only():
    train = np.array([[0.0], [2.0], [4.0]])
    new_rows = np.array([[100.0]])
    _, states = evaluate(["f0", "stand_scaler"], train)
    out, _ = evaluate(["f0", "stand_scaler"], new_rows, states)
    assert out[0, 0] == pytest.approx((100 - 2) / np.std([0, 2, 4]))
    _, states = evaluate(["f0", "minmax_scaler", "<sep>", "f0", "quan_trans"], train)
    out, _ = evaluate(["f0", "minmax_scaler", "<sep>", "f0", "quan_trans"], np.array([[2.0], [4.0]]), states)
    assert out[:, 0].tolist() == [0.0, 1.0]
    assert out[:, 1].tolist() == [0.5, 1.0]


def test_protected_operators_on_hard_values():
    X = np.array([[0.0, 0.0], [-1.0, 1e-300], [1e308, -1e308]])
    for token in UNARY:
        out, _ = evaluate(["f0", token], X)
        assert np.all(np.isfinite(out)), token
    for token in BINARY:
        out, _ = evaluate(["f0", "f1", token], X)
        assert np.all(np.isfinite(out)), token
