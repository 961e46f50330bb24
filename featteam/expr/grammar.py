"""The grammar automaton: which next tokens keep a prefix completable.

Every decoder (the ML decoder, the student LLM, their teaming) masks its
next-token distribution with :meth:`Grammar.allowed`, so it is exact - a
token is allowed if and only if some completion within the limits is a
structurally valid transformation (:func:`~featteam.expr.sequence.check_structure`
passes, up to duplicate features, which need the whole sequence) - and fast:
the state is five small integers and masks are cached per state.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple, Sequence

import numpy as np

from .sequence import DEFAULT_MAX_FEATURE_LENGTH, DEFAULT_MAX_FEATURES, DEFAULT_MAX_LENGTH, next_depth
from .vocab import EOS, SEP, Vocabulary


class GrammarState(NamedTuple):
    """Where a prefix stands: everything the automaton needs to know about it."""

    depth: int          # values on the stack of the current feature
    has_operator: bool  # the current feature applies at least one operator
    length: int         # tokens so far, separators included
    n_done: int         # features already closed by a separator
    finished: bool      # the end token was emitted
    feature_length: int = 0  # tokens of the current feature


def _tokens_to_close(depth: int, has_operator: bool) -> int:
    """Fewest tokens that turn the current feature into a valid one."""
    if depth == 0:
        return 2  # a feature token and a unary operator
    return max(depth - 1, 0 if has_operator else 1)


class Grammar:
    """Exact next-token constraints for sequences over ``vocab``.

    Parameters
    ----------
    vocab : Vocabulary
    max_length : int
        Most tokens in a sequence, separators included, the end token not.
    max_features : int
        Most new features in one transformation.
    max_feature_length : int
        Most tokens in one new feature (keeps formulas readable).
    """

    def __init__(self, vocab: Vocabulary, max_length: int = DEFAULT_MAX_LENGTH,
                 max_features: int = DEFAULT_MAX_FEATURES,
                 max_feature_length: int = DEFAULT_MAX_FEATURE_LENGTH) -> None:
        if max_length < 2 or max_feature_length < 2:
            raise ValueError("max_length and max_feature_length must be at least 2 (a feature and an operator)")
        self.max_feature_length = int(max_feature_length)
        if max_features < 1:
            raise ValueError("max_features must be at least 1")
        self.vocab = vocab
        self.max_length = int(max_length)
        self.max_features = int(max_features)
        self._mask = lru_cache(maxsize=None)(self._compute_mask)

    def initial_state(self) -> GrammarState:
        return GrammarState(0, False, 0, 0, False, 0)

    def step(self, state: GrammarState, token_id: int) -> GrammarState:
        """The state after emitting ``token_id`` (which must be allowed)."""
        vocab = self.vocab
        if token_id == vocab.eos_id:
            return state._replace(finished=True)
        separator = int(token_id == vocab.sep_id)
        arity = int(vocab.arity[token_id])
        depth = next_depth(state.depth, arity, separator)
        if separator:
            return GrammarState(depth, False, state.length + 1, state.n_done + 1, False, 0)
        return state._replace(depth=depth, has_operator=state.has_operator or arity > 0, length=state.length + 1,
                              feature_length=state.feature_length + 1)

    def state_of(self, token_ids: Sequence[int]) -> GrammarState:
        state = self.initial_state()
        for token_id in token_ids:
            state = self.step(state, int(token_id))
        return state

    def allowed(self, state: GrammarState) -> np.ndarray:
        """Boolean mask over the vocabulary of the tokens allowed next (read-only)."""
        return self._mask(state)

    def _compute_mask(self, state: GrammarState) -> np.ndarray:
        vocab = self.vocab
        mask = np.zeros(len(vocab), dtype=bool)
        if state.finished:
            return mask
        # A token must leave room to close the feature within both limits.
        remaining = min(self.max_length - state.length, self.max_feature_length - state.feature_length)
        depth, has_op = state.depth, state.has_operator
        if 1 + _tokens_to_close(depth + 1, has_op) <= remaining:
            mask[vocab.feature_ids] = True
        if depth >= 1 and 1 + _tokens_to_close(depth, True) <= remaining:
            mask[vocab.unary_ids] = True
        if depth >= 2 and 1 + _tokens_to_close(depth - 1, True) <= remaining:
            mask[vocab.binary_ids] = True
        closable = depth == 1 and has_op
        if closable and state.n_done + 1 < self.max_features and 1 + 2 <= self.max_length - state.length:
            mask[vocab.sep_id] = True
        if closable:
            mask[vocab.eos_id] = True
        mask.setflags(write=False)
        return mask

    def __repr__(self) -> str:
        return (f"Grammar(n_features={self.vocab.n_features}, max_length={self.max_length}, "
                f"max_features={self.max_features}, max_feature_length={self.max_feature_length})")


__all__ = ["Grammar", "GrammarState", "EOS", "SEP"]
