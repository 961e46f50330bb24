"""The expression language: registry, parsing, rendering, validation, grammar (with hypothesis)."""

import itertools
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from featteam.decoding import random_sequences
from featteam.errors import FeatteamError
from featteam.expr import (
    BINARY,
    EOS,
    OPERATORS,
    SEP,
    UNARY,
    ErrorKind,
    Grammar,
    InvalidSequence,
    Vocabulary,
    check_structure,
    evaluate,
    next_depth,
    parse,
    parse_infix,
    parse_postfix,
    render,
    split_features,
    stack_depths,
    to_postfix_text,
    token_text,
)
from featteam.expr.sequence import fold_postfix, quote_name, token_arity

COLUMNS = ["age", "income", "my col", "log", "0", "f1"]


def test_registry_has_the_methods_operator_set():
    assert set(UNARY) == {"sqrt", "square", "sin", "cos", "tanh", "stand_scaler", "minmax_scaler",
                          "quan_trans", "sigmoid", "log", "reciprocal", "cube"}
    assert set(BINARY) == {"+", "-", "*", "/"}
    assert {t for t in BINARY if OPERATORS[t].ordered} == {"/"}
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
    # One except catches every error featteam reports, and the error crosses process boundaries.
    assert isinstance(info.value, FeatteamError) and isinstance(info.value, ValueError)
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is InvalidSequence and again.kind == kind and str(again) == str(info.value)


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
    return grammar, random_sequences(grammar, 1, np.random.default_rng(seed), eos_bias=draw(st.floats(0.05, 5.0)))[0]


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


@pytest.mark.parametrize("name", ["A\n", "log\n", "2\n", "a b", "\ta"])
def test_a_name_with_whitespace_is_written_in_backticks_and_read_back(name):
    # Hypothesis found "A\n": a regex's "$" also matches before a final newline, so the name was
    # written bare and read back as "A".
    columns = ["x", name]
    assert parse(render(["f1", "cos"], columns), columns) == ["f1", "cos"]
    assert parse(to_postfix_text(["f1", "cos"], columns), columns) == ["f1", "cos"]


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


# -- one stack-depth rule ----------------------------------------------------------------

def _depth_grid():
    """Every (depth, arity, separator) combination in a small range, as flat int64 arrays."""
    grid = np.meshgrid(np.arange(-2, 7), np.arange(0, 3), np.arange(0, 2), indexing="ij")
    return [g.ravel().astype(np.int64) for g in grid]


def test_next_depth_on_python_ints_and_numpy_arrays():
    depth, arity, separator = _depth_grid()
    expected = [0 if s else d + 1 - a for d, a, s in zip(depth.tolist(), arity.tolist(), separator.tolist())]
    assert [next_depth(d, a, s) for d, a, s in zip(depth.tolist(), arity.tolist(), separator.tolist())] == expected
    out = next_depth(depth, arity, separator)
    assert out.dtype == np.int64 and out.tolist() == expected
    assert next_depth(np.int64(3), 2, True) == 0  # a Python bool is an int


def test_next_depth_on_torch_long_tensors():
    torch = pytest.importorskip("torch")
    depth, arity, separator = _depth_grid()
    out = next_depth(torch.from_numpy(depth), torch.from_numpy(arity), torch.from_numpy(separator))
    assert out.dtype == torch.long
    assert out.tolist() == next_depth(depth, arity, separator).tolist()
    # Mixed: a tensor depth with the vocabulary's numpy-derived arities.
    vocab = Vocabulary(2)
    ids = torch.tensor(vocab.encode(["f0", "sqrt", "f1", "+", SEP]))
    arities = torch.from_numpy(vocab.arity)[ids]
    assert next_depth(torch.ones(5, dtype=torch.long), arities, (ids == vocab.sep_id).long()).tolist() == [
        2, 1, 2, 0, 0]


def test_vocabulary_arity_and_token_arity():
    vocab = Vocabulary(3)
    assert vocab.arity.dtype == np.int64 and vocab.arity.shape == (len(vocab),)
    for token, index in vocab.index.items():
        assert vocab.arity[index] == token_arity(token) == (OPERATORS[token].arity if token in OPERATORS else 0)


def test_token_text_writes_the_llm_postfix_form():
    assert [token_text(t) for t in ["f0", "f12", "+", "sqrt", SEP, EOS]] == [
        " f0", " f12", " +", " sqrt", " ,", " ]"]
    tokens = ["f0", "f1", "+", SEP, "f2", "log"]
    assert parse("[" + "".join(token_text(t) for t in [*tokens, EOS])) == tokens


def _structurally_fine(feature: list[str]) -> bool:
    """check_structure's verdict on one feature, up to the checks that are not about depth."""
    try:
        check_structure(feature, 2, max_length=10**6, max_features=10**6, max_feature_length=None)
    except InvalidSequence as exc:
        assert exc.kind in (ErrorKind.EMPTY_FEATURE, ErrorKind.ARITY, ErrorKind.LEFTOVER_OPERANDS,
                            ErrorKind.NO_OPERATOR)
        return exc.kind == ErrorKind.NO_OPERATOR
    return True


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["f0", "f1", "sqrt", "log", "+", "*", SEP]), max_size=14))
def test_stack_depths_agree_with_check_structure(tokens):
    depths = stack_depths(tokens)
    assert len(depths) == len(tokens)
    assert all(d == 0 for t, d in zip(tokens, depths) if t == SEP)  # the separator resets
    # By depths: a feature is well formed iff no token leaves the stack below one value and
    # the feature ends on exactly one (an empty feature ends on 0).
    start = 0
    for feature in split_features(tokens):
        feature_depths = depths[start:start + len(feature)]
        by_depths = bool(feature) and min(feature_depths) >= 1 and feature_depths[-1] == 1
        assert by_depths == _structurally_fine(feature), feature
        start += len(feature) + 1
    try:
        check_structure(tokens, 2, max_length=10**6, max_features=10**6, max_feature_length=None)
    except InvalidSequence:
        return
    assert tokens and all(d >= 1 for t, d in zip(tokens, depths) if t != SEP)


@settings(max_examples=200, deadline=None)
@given(grammar_samples())
def test_the_grammar_tracks_the_same_depths(sample):
    grammar, tokens = sample
    state, depths = grammar.initial_state(), []
    for token_id in grammar.vocab.encode(tokens):
        state = grammar.step(state, token_id)
        depths.append(state.depth)
        assert type(state.depth) is int  # states are hashed and cached: plain ints
    assert depths == stack_depths(tokens)


def test_fold_postfix_passes_positions_in_the_whole_sequence():
    seen = []

    def leaf(position, token):
        seen.append((position, token))
        return token

    def apply(position, op, operands):
        seen.append((position, op.token))
        return (op.token, *operands)

    assert fold_postfix(["f0", "f1", "+", "sqrt"], leaf, apply, start=5) == ("sqrt", ("+", "f0", "f1"))
    assert seen == [(5, "f0"), (6, "f1"), (7, "+"), (8, "sqrt")]
    with pytest.raises(InvalidSequence, match="feature 2: '[+]' needs 2 operand"):
        fold_postfix(["f0", "+"], leaf, apply, name="feature 2")
    with pytest.raises(InvalidSequence) as info:
        fold_postfix(["f0", "f1"], leaf, apply)
    assert info.value.kind == ErrorKind.LEFTOVER_OPERANDS


def _check_values_pair_by_pair(new: np.ndarray, original: np.ndarray) -> str | None:
    """check_values as it was before it screened pairs on a few rows: every pair compared whole
    with np.allclose, in order; the message of the first failure (None: the columns pass)."""
    from featteam.expr.program import DUPLICATE_ATOL, DUPLICATE_RTOL

    if not np.all(np.isfinite(new)):
        return "a new feature has non-finite values"
    for j in range(new.shape[1]):
        if not np.ptp(new[:, j]) > 1e-12 * max(1.0, float(np.abs(new[:, j]).max())):
            return f"new feature {j + 1} is constant"
    for j in range(new.shape[1]):
        for k in range(j):
            if np.allclose(new[:, j], new[:, k], rtol=DUPLICATE_RTOL, atol=DUPLICATE_ATOL):
                return f"new feature {j + 1} equals new feature {k + 1}"
        for k in range(original.shape[1]):
            if np.allclose(new[:, j], original[:, k], rtol=DUPLICATE_RTOL, atol=DUPLICATE_ATOL):
                return f"new feature {j + 1} equals an original column"
    return None


@st.composite
def _columns_with_near_copies(draw):
    """A table and new columns, some of them copies of other columns that differ only after the
    rows check_values screens on, or by less than its tolerance, or not at all."""
    n_rows = draw(st.integers(1, 40))
    values = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    original = draw(arrays(np.float64, (n_rows, draw(st.integers(0, 4))), elements=values))
    new = draw(arrays(np.float64, (n_rows, draw(st.integers(1, 5))), elements=values))
    pool = np.hstack([original, new])
    for j in range(new.shape[1]):
        how = draw(st.sampled_from(["own", "copy", "copy, changed late", "copy, within tolerance"]))
        if how == "own" or not j + original.shape[1]:
            continue
        source = pool[:, draw(st.integers(0, j + original.shape[1] - 1))].copy()
        if how == "copy, changed late":
            source[draw(st.integers(0, n_rows - 1))] += draw(st.sampled_from([1.0, 1e-6, -3.5]))
        elif how == "copy, within tolerance":
            source = source * (1 + 1e-12)
        new[:, j] = source
        pool[:, original.shape[1] + j] = source
    if draw(st.booleans()) and original.size:  # the original columns are not checked for finiteness
        original[draw(st.integers(0, n_rows - 1)), 0] = draw(st.sampled_from([np.inf, -np.inf, np.nan]))
    return new, original


@settings(max_examples=300, deadline=None)
@given(_columns_with_near_copies())
def test_check_values_reports_what_comparing_every_pair_whole_reports(columns):
    """Screening the pairs on a few rows first changes nothing: the same columns pass, and a
    rejected transformation is rejected with the same message (the first duplicate in order)."""
    from featteam.expr import check_values

    new, original = columns
    expected = _check_values_pair_by_pair(new, original)
    try:
        check_values(new, original)
    except InvalidSequence as exc:
        assert exc.detail == expected
    else:
        assert expected is None
