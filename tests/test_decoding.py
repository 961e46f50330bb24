"""The shared beam search: masked decoding is always valid; mixtures of sources."""

import numpy as np
import pytest

from featteam.decoding import MixtureSource, beam_search
from featteam.expr import Grammar, InvalidSequence, Vocabulary, check_structure


class RandomSource:
    """A source with fixed random preferences per row: stands in for a trained decoder."""

    def __init__(self, vocab_size, seed, favour=None):
        self.rng = np.random.default_rng(seed)
        self.vocab_size = vocab_size
        self.favour = favour

    def start(self, n_inputs, beam):
        return np.zeros(n_inputs * beam, dtype=np.int64)

    def step(self, state, last_tokens):
        logits = self.rng.normal(size=(len(state), self.vocab_size)) * 3
        if self.favour is not None:
            logits[:, self.favour] += 10
        return logits - np.log(np.exp(logits).sum(1, keepdims=True)), state + 1

    def reorder(self, state, rows):
        return state[rows]


@pytest.mark.parametrize("seed", range(5))
def test_masked_beams_are_always_valid(seed):
    vocab = Vocabulary(4)
    grammar = Grammar(vocab, max_length=16, max_features=3, max_feature_length=6)
    beams = beam_search(RandomSource(len(vocab), seed), 6, grammar, beam=4, masked=True)
    for per_input in beams:
        assert per_input and per_input[0].finished
        for b in per_input:
            check_structure(vocab.decode(b.token_ids), 4, 16, 3, 6)


def test_unmasked_decoding_makes_errors_a_mask_prevents():
    vocab = Vocabulary(4)
    grammar = Grammar(vocab, max_length=16, max_features=3, max_feature_length=6)
    kinds = set()
    for seed in range(5):
        for per_input in beam_search(RandomSource(len(vocab), seed), 6, grammar, beam=2, masked=False):
            try:
                check_structure(vocab.decode(per_input[0].token_ids), 4, 16, 3, 6)
            except InvalidSequence as exc:
                kinds.add(exc.kind)
    assert kinds, "an untrained random decoder should make structural errors"


def test_a_feature_is_never_repeated_when_masked():
    vocab = Vocabulary(1)
    grammar = Grammar(vocab, max_length=12, max_features=4, max_feature_length=3)
    # Favour the separator: a greedy decoder would write [f0 sqrt , f0 sqrt ...] if allowed.
    beams = beam_search(RandomSource(len(vocab), 0, favour=vocab.sep_id), 3, grammar, beam=3, masked=True)
    for per_input in beams:
        for b in per_input:
            check_structure(vocab.decode(b.token_ids), 1, 12, 4, 3)


def test_mixture_rules():
    vocab = Vocabulary(2)
    a, b = RandomSource(len(vocab), 1), RandomSource(len(vocab), 2)
    mix = MixtureSource([a, b], [0.3, 0.7], rule="linear")
    logp, _ = mix.step(mix.start(1, 2), np.zeros(2, dtype=np.int64))
    a2, b2 = RandomSource(len(vocab), 1), RandomSource(len(vocab), 2)
    pa, _ = a2.step(a2.start(1, 2), None)
    pb, _ = b2.step(b2.start(1, 2), None)
    np.testing.assert_allclose(np.exp(logp), 0.3 * np.exp(pa) + 0.7 * np.exp(pb))
    product = MixtureSource([RandomSource(len(vocab), 1), RandomSource(len(vocab), 2)], [0.5, 0.5], rule="product")
    logq, _ = product.step(product.start(1, 2), None)
    np.testing.assert_allclose(np.exp(logq).sum(1), 1.0)
    only_a = MixtureSource([RandomSource(len(vocab), 1), RandomSource(len(vocab), 2)], [1.0, 0.0])
    logr, _ = only_a.step(only_a.start(1, 2), None)
    np.testing.assert_allclose(logr, pa, atol=1e-12)
