"""Exploration without an LLM: random transformations, and mutation and crossover of
good ones.  It adds diversity to the golden set (and carries it when the
teacher is weak)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .expr import BINARY, UNARY, InvalidSequence, canonical_key, check_structure, join_features, split_features
from .expr.vocab import feature_token

#: Unary operators drawn more often: the ones that change a feature's shape most usefully.
_UNARY_WEIGHTS = {"log": 2.0, "sqrt": 2.0, "square": 1.5, "reciprocal": 1.5, "quan_trans": 1.0,
                  "sigmoid": 1.0, "tanh": 1.0, "cube": 1.0, "sin": 0.5, "cos": 0.5,
                  "stand_scaler": 0.5, "minmax_scaler": 0.5}


class Explorer:
    """Proposes transformations by random generation, mutation and crossover.

    Parameters
    ----------
    n_features : int
        Original features of the table.
    max_length, max_features, max_feature_length : int
        Limits every proposal respects.
    random_state : int
    pool : sequence of features, optional
        Good single features (the screen's best, best first): proposals draw most of their
        features from it, the better ones more often.
    """

    #: Share of new features drawn from the pool (when there is one) rather than made at random.
    POOL_SHARE = 0.75

    def __init__(self, n_features: int, max_length: int, max_features: int, max_feature_length: int = 9,
                 random_state: int = 0, pool: Sequence[Sequence[str]] = ()) -> None:
        self.n_features = n_features
        self.max_length = max_length
        self.max_features = max_features
        self.max_feature_length = max_feature_length
        self.rng = np.random.default_rng(random_state)
        weights = np.array([_UNARY_WEIGHTS.get(u, 1.0) for u in UNARY])
        self._unary_p = weights / weights.sum()
        self.pool = [list(f) for f in pool if len(f) <= max_feature_length]
        rank_weights = 1.0 / np.sqrt(np.arange(1, len(self.pool) + 1))
        self._pool_p = rank_weights / rank_weights.sum() if self.pool else None

    # -- building blocks -------------------------------------------------------------

    def _leaf(self) -> list[str]:
        return [feature_token(int(self.rng.integers(self.n_features)))]

    def _unary(self) -> str:
        return str(self.rng.choice(UNARY, p=self._unary_p))

    def random_feature(self, depth: int | None = None) -> list[str]:
        """A random feature: an expression tree of depth 1-3 with at least one operator."""
        depth = int(self.rng.integers(1, 4)) if depth is None else depth
        if depth <= 0:
            return self._leaf()
        if self.rng.random() < 0.4:
            child = self.random_feature(depth - 1)
            return child + [self._unary()]
        left = self.random_feature(int(self.rng.integers(0, depth)))
        right = self.random_feature(int(self.rng.integers(0, depth)))
        return left + right + [str(self.rng.choice(BINARY))]

    def extended(self, feature: Sequence[str]) -> list[str]:
        """``feature`` going on: wrapped in a unary operator, or combined with a new small feature
        (even odds)."""
        if self.rng.random() < 0.5:
            return list(feature) + [self._unary()]
        return list(feature) + self.random_feature(1) + [str(self.rng.choice(BINARY))]

    def check(self, tokens: Sequence[str]) -> None:
        """Raise InvalidSequence unless ``tokens`` is well-formed within this explorer's limits."""
        check_structure(tokens, self.n_features, self.max_length, self.max_features, self.max_feature_length)

    def new_feature(self) -> list[str]:
        """A feature for a proposal: from the pool (mostly, the better ones more often) or at random."""
        if self.pool and self.rng.random() < self.POOL_SHARE:
            return list(self.pool[int(self.rng.choice(len(self.pool), p=self._pool_p))])
        return self.random_feature()

    def _finish(self, features: Sequence[Sequence[str]]) -> list[str] | None:
        """Deduplicate features, respect the limits; None when nothing valid is left."""
        unique: list[list[str]] = []
        for f in features:
            if list(f) not in unique and 2 <= len(f) <= self.max_feature_length:
                unique.append(list(f))
        unique = unique[: self.max_features]
        while unique and len(join_features(unique)) > self.max_length:
            unique.pop()
        if not unique:
            return None
        tokens = join_features(unique)
        try:
            self.check(tokens)
        except InvalidSequence:
            return None
        return tokens

    # -- proposals ------------------------------------------------------------------

    def random(self) -> list[str]:
        """A random transformation of 1 to max_features features."""
        while True:
            k = int(self.rng.integers(1, min(self.max_features, 4) + 1))
            tokens = self._finish([self.new_feature() for _ in range(k)])
            if tokens is not None:
                return tokens

    def mutate(self, tokens: Sequence[str]) -> list[str]:
        """A small change: swap a column or an operator, wrap, replace, drop or add a feature."""
        for _ in range(20):
            features = [list(f) for f in split_features(tokens)]
            i = int(self.rng.integers(len(features)))
            feature = features[i]
            kind = self.rng.integers(7 if self.pool else 6)
            if kind == 0:  # another column
                spots = [j for j, t in enumerate(feature) if t.startswith("f") and t[1:].isdigit()]
                feature[int(self.rng.choice(spots))] = self._leaf()[0]
            elif kind == 1:  # another operator of the same arity
                spots = [j for j, t in enumerate(feature) if t in UNARY or t in BINARY]
                j = int(self.rng.choice(spots))
                feature[j] = self._unary() if feature[j] in UNARY else str(self.rng.choice(BINARY))
            elif kind == 2:  # wrap in a unary operator
                feature.append(self._unary())
            elif kind == 3:  # combine with a new small feature
                feature += self.random_feature(1) + [str(self.rng.choice(BINARY))]
            elif kind == 4 and len(features) > 1:  # drop a feature
                features.pop(i)
            elif kind == 5 and self.pool:  # replace a feature
                features[i] = self.new_feature()
            else:  # add a feature
                features.append(self.new_feature())
            result = self._finish(features)
            if result is not None and result != list(tokens):
                return result
        return self.random()

    def crossover(self, first: Sequence[str], second: Sequence[str]) -> list[str]:
        """Features drawn from both parents."""
        pool = split_features(first) + split_features(second)
        parents = {canonical_key(first), canonical_key(second)}
        for _ in range(20):
            k = int(self.rng.integers(1, min(self.max_features, len(pool)) + 1))
            picks = self.rng.choice(len(pool), size=k, replace=False)
            result = self._finish([pool[int(p)] for p in sorted(picks)])
            if result is not None and canonical_key(result) not in parents:
                return result
        return self.mutate(first)
