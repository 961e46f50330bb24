"""The cheap feature screen: thousands of single new features ranked by what they add to a
model of the original features, before the expensive downstream score is paid.

The idea is OpenFE's (a candidate is judged by what it adds to the original features'
prediction, not by a model of its own); the way is cheaper than its one LightGBM per
candidate, so a fit can screen every order-1 and many order-2 features of a table:

1. the downstream model of the original columns gives **out-of-fold** predictions on
   the rows the search may use (honest protocol: the training split; paper: the test split);
2. the **residual** is what a new feature must explain: regression, the target minus the
   prediction (scaled by the target's spread); classification, the one-hot label minus the
   predicted probabilities;
3. a candidate's values are cut into quantile bins; the bins' (shrunk) mean residual is
   learnt on one half of the rows and predicts the other half, both ways, over several random
   halvings (cross-fitted); the
   candidate's **gain** is the share of the residual's squared error it removes on the rows
   it did not learn from - noise gains about nothing, and a column the base model already
   uses gains nothing;
4. **greedy selection**: the best feature's cross-fitted prediction is taken off the residual
   and the others are screened again, so a feature that repeats a chosen one gains nothing.

Everything is computed on a fixed sample of at most ``max_rows`` rows, in blocks of
``chunk`` candidates (bounded memory), and depends only on the data and ``random_state``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from .engine import Engine, LocalEngine
from .expr import BINARY, OPERATORS, UNARY, InvalidSequence, evaluate, split_features
from .expr.vocab import feature_token

if TYPE_CHECKING:
    from .evaluation import Evaluator

logger = logging.getLogger(__name__)

Feature = tuple[str, ...]


@dataclass(frozen=True)
class ScreenedFeature:
    """One new feature (postfix tokens over ``f0..``) and its screen gain: the share of the
    base model's residual it explains on rows it did not learn from."""

    tokens: Feature
    gain: float


class FeatureScreen:
    """Ranks single features by what they add to a model of the original columns.

    Parameters
    ----------
    evaluator : Evaluator
        Gives the table, the task and the rows the search may use (``search_rows``).
    random_state : int
        Seed of the row sample, the halves and the base model.
    n_bins : int
        Quantile bins per candidate.
    shrinkage : float
        Rows' worth of zero added to every bin's mean (small bins say little).
    max_rows : int
        Screen on a fixed sample of at most this many rows.
    chunk : int
        Candidates computed at once (memory: ``chunk x max_rows`` floats).
    n_repeats : int
        Random halvings of the rows the gains are averaged over.
    n_jobs : int
        Blocks of candidates (and folds of the base model) computed in parallel; the results
        do not depend on it.
    engine : Engine, optional
        Where the blocks are computed (default: ``n_jobs`` processes on this machine; a
        :class:`~featteam.engine.DaskEngine` computes them on a cluster).  The gains do not
        depend on it.
    """

    def __init__(self, evaluator: "Evaluator", random_state: int = 0, n_bins: int = 10, shrinkage: float = 20.0,
                 max_rows: int = 5000, chunk: int = 512, n_repeats: int = 4, n_jobs: int = 1,
                 engine: "Engine | None" = None) -> None:
        rng = np.random.default_rng(random_state)
        rows = np.asarray(evaluator.search_rows)
        if len(rows) > max_rows:
            rows = np.sort(rng.choice(rows, size=max_rows, replace=False))
        self.rows = rows
        self.n_features = evaluator.X.shape[1]
        self.task = evaluator.task
        self.random_state = random_state
        self.n_bins, self.shrinkage, self.chunk = n_bins, shrinkage, chunk
        # The imputed original columns, as the evaluator and a deployed transformation see them.
        self.X = evaluator._features(None, rows, np.arange(len(rows)))
        self.model = evaluator.model
        self.n_jobs = n_jobs
        self.engine: Engine = LocalEngine(n_jobs) if engine is None else engine
        self.residual = self._base_residual(self.X, evaluator.y[rows])
        #: the halves the bins are learnt on, one per repetition (more repetitions, less noise)
        self.halves = [rng.permutation(len(rows)) < len(rows) // 2 for _ in range(n_repeats)]
        self._quantiles = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
        self._gains: dict[Feature, float] = {}
        self.searched = (0, 0)

    # -- the base model ------------------------------------------------------------------

    def _base_residual(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """What the downstream model of the original columns leaves unexplained, out of fold:
        shape (rows, outputs).  The downstream model itself, so the screen favours what *it*
        misses (a RandomForest misses smooth sums and products that a linear model would not)."""
        from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

        from .evaluation import make_model

        model = make_model(self.task, self.model, random_state=self.random_state)
        if self.task == "classification":
            classes, codes = np.unique(y, return_inverse=True)
            folds = (StratifiedKFold(5, shuffle=True, random_state=self.random_state)
                     if np.bincount(codes).min() >= 5 else KFold(5, shuffle=True, random_state=self.random_state))
            proba = cross_val_predict(model, X, codes, cv=folds, method="predict_proba", n_jobs=self.n_jobs)
            return np.eye(len(classes))[codes] - proba
        prediction = cross_val_predict(model, X, y, cv=KFold(5, shuffle=True, random_state=self.random_state),
                                       n_jobs=self.n_jobs)
        spread = float(np.std(y)) or 1.0
        return ((y - prediction) / spread).reshape(-1, 1)

    # -- values and gains -----------------------------------------------------------------

    def values(self, features: Sequence[Feature]) -> np.ndarray:
        """The candidates' values on the screen's rows, shape (rows, candidates); a candidate
        that cannot be computed is all NaN (it gains nothing)."""
        out = np.full((len(self.rows), len(features)), np.nan)
        for j, feature in enumerate(features):
            try:
                out[:, j] = evaluate(list(feature), self.X)[0][:, 0]
            except (InvalidSequence, ValueError, FloatingPointError):
                continue
        return out

    def _fit_predict(self, values: np.ndarray, residual: np.ndarray) -> np.ndarray | None:
        """The cross-fitted binned prediction of ``residual`` from one candidate (None: constant
        or undefined values)."""
        if not np.all(np.isfinite(values)):
            return None
        bins = self._bins(values)
        if bins.min() == bins.max():
            return None
        size = int(bins.max()) + 1
        prediction = np.zeros_like(residual)
        for half in self.halves:
            for learn in (half, ~half):
                counts = np.bincount(bins[learn], minlength=size) + self.shrinkage
                held = ~learn
                for k in range(residual.shape[1]):
                    means = np.bincount(bins[learn], weights=residual[learn, k], minlength=size) / counts
                    prediction[held, k] += means[bins[held]]
        return prediction / len(self.halves)

    def _explained(self, values: np.ndarray, residual: np.ndarray) -> np.ndarray:
        """What a chosen feature explains of ``residual``, learnt on all rows (its bins' means):
        taken off the residual, the same feature or one with the same bins has nothing left to gain."""
        bins = self._bins(values)
        size = int(bins.max()) + 1
        counts = np.bincount(bins, minlength=size) + 1.0
        return np.column_stack([(np.bincount(bins, weights=residual[:, k], minlength=size) / counts)[bins]
                                for k in range(residual.shape[1])])

    def _bins(self, values: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.unique(np.quantile(values, self._quantiles)), values, side="right")

    def _gains_of(self, values: np.ndarray, residual: np.ndarray) -> np.ndarray:
        total = float((residual ** 2).sum())
        gains = np.full(values.shape[1], -np.inf)
        if total == 0.0:  # nothing left to explain (a perfect out-of-fold prediction): no feature gains
            return np.where(np.all(np.isfinite(values), axis=0), 0.0, -np.inf)
        for j in range(values.shape[1]):
            prediction = self._fit_predict(values[:, j], residual)
            if prediction is not None:
                gains[j] = 1.0 - float(((residual - prediction) ** 2).sum()) / total
        return gains

    def gains(self, features: Iterable[Sequence[str]]) -> np.ndarray:
        """Each feature's gain alone.

        Parameters
        ----------
        features : iterable of token sequences
            Single features (postfix, no separator) over ``f0..``.

        Returns
        -------
        ndarray of float
            The share of the base model's residual each explains on rows its bins were not
            learnt on (cached; ``-inf`` for one that cannot be computed or is constant).
        """
        features = [tuple(f) for f in features]
        todo = list(dict.fromkeys(f for f in features if f not in self._gains))
        blocks = [todo[start:start + self.chunk] for start in range(0, len(todo), self.chunk)]
        # Each block's gains depend on the block alone: the same numbers for any n_jobs or engine.
        results = self.engine.map(_block_gains, self, blocks, desc="screening")
        for block, gains in zip(blocks, results):
            self._gains.update(zip(block, map(float, gains)))
        return np.array([self._gains[f] for f in features], dtype=np.float64)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_gains"] = {}  # workers compute blocks; the cache stays here
        state["engine"] = None  # and where they run stays here
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.engine = LocalEngine(1)  # a copy computes in its own process

    def transformation_gain(self, tokens: Sequence[str]) -> float:
        """What a transformation's features add, by the screen: the sum of their positive gains."""
        gains = self.gains(split_features(tokens))
        return float(np.sum(gains[gains > 0]))

    def rank(self, features: Iterable[Sequence[str]], top: int | None = None) -> list[ScreenedFeature]:
        """Distinct features that can be computed, best first (ties: the shorter, then the earlier).

        A gain may be negative: on a small or noisy table no single feature explains much of
        the residual, and the order still says which are most promising (the choice of the
        output measures whether any of them helps)."""
        features = list(dict.fromkeys(tuple(f) for f in features))
        gains = self.gains(features)
        order = sorted(range(len(features)), key=lambda i: (-gains[i], len(features[i]), i))
        ranked: list[ScreenedFeature] = []
        for i in order:
            # Exactly equal gains mean the same bins: the same feature to a tree (a + b and b + a,
            # or a monotone function of another); keep the first (OpenFE's delete_same).
            if np.isfinite(gains[i]) and not (ranked and abs(ranked[-1].gain - gains[i]) < 1e-12):
                ranked.append(ScreenedFeature(features[i], float(gains[i])))
        return ranked[:top] if top is not None else ranked

    def select(self, features: Iterable[Sequence[str]], max_features: int, min_gain: float = 0.002,
               pool: int = 200) -> list[ScreenedFeature]:
        """Features in the order to add them.

        Greedy forward selection (each the one that explains most of what the features chosen
        before it leave) among the ``pool`` best alone while the best adds at least
        ``min_gain``, then the others in the order of their gain alone.

        Parameters
        ----------
        features : iterable of token sequences
        max_features : int
            Most features returned.
        min_gain : float
            The greedy part stops when no feature adds this much.
        pool : int
            Features (best alone) the selection looks at.

        Returns
        -------
        list of ScreenedFeature
            Each with its gain given the greedy features before it.
        """
        candidates = [s.tokens for s in self.rank(features, top=pool)]
        if not candidates:
            return []
        values = self.values(candidates)
        residual = self.residual.copy()
        chosen: list[ScreenedFeature] = []
        remaining = list(range(len(candidates)))
        marginal: dict[int, float] = {}
        while remaining and len(chosen) < max_features:
            gains = self._gains_of(values[:, remaining], residual)
            marginal = dict(zip(remaining, map(float, gains)))
            best = int(np.argmax(gains))
            if not gains[best] >= min_gain:
                break
            index = remaining.pop(best)
            chosen.append(ScreenedFeature(candidates[index], float(gains[best])))
            residual = residual - self._explained(values[:, index], residual)
        # Then the rest by their gain alone, each with what it adds to the greedy features.
        for index in remaining[: max_features - len(chosen)]:
            chosen.append(ScreenedFeature(candidates[index], marginal[index]))
        return chosen

    # -- candidates -----------------------------------------------------------------------

    def order1(self, max_feature_length: int = 3) -> list[Feature]:
        """Every unary operator on every column and every binary operator on every pair (one
        order of an operator whose operand order does not matter to a model, such as ``+`` and
        ``-``: :attr:`~featteam.expr.operators.Operator.ordered`); only features of at most
        ``max_feature_length`` tokens."""
        columns = [feature_token(i) for i in range(self.n_features)]
        out: list[Feature] = [(c, u) for c in columns for u in UNARY]
        for i, a in enumerate(columns):
            for b in columns[i + 1:]:
                for op in BINARY:
                    out.append((a, b, op))
                    if OPERATORS[op].ordered:
                        out.append((b, a, op))
        return [f for f in out if len(f) <= max_feature_length]

    def order2(self, seeds: Sequence[Feature], max_feature_length: int) -> list[Feature]:
        """Features one step beyond ``seeds``: a unary operator on a seed, a seed with a column,
        two seeds together."""
        columns = [(feature_token(i),) for i in range(self.n_features)]
        out: list[Feature] = []
        for i, s in enumerate(seeds):
            out += [s + (u,) for u in UNARY]
            for other in columns:
                out += [s + other + (op,) for op in BINARY]
            for j, other in enumerate(seeds):
                if j != i:
                    out += [s + other + (op,) for op in BINARY if j > i or OPERATORS[op].ordered]
        return [f for f in dict.fromkeys(out) if len(f) <= max_feature_length]

    def search(self, max_feature_length: int, max_candidates: int = 6000, n_seeds: int = 12,
               top: int = 60) -> list[ScreenedFeature]:
        """The best single features of order 1 and 2: every order-1 feature (a fixed sample of
        ``max_candidates`` on a wide table), then order 2 from the ``n_seeds`` best; returns the
        ``top`` best by gain alone.  Each call screens what earlier calls did not (gains are cached)."""
        rng = np.random.default_rng(self.random_state)
        first = self.order1(max_feature_length)
        if len(first) > max_candidates:
            keep = np.sort(rng.choice(len(first), size=max_candidates, replace=False))
            first = [first[i] for i in keep]
        seeds = [s.tokens for s in self.rank(first, top=n_seeds)]
        second = self.order2(seeds, max_feature_length)
        if len(second) > max_candidates:
            keep = np.sort(rng.choice(len(second), size=max_candidates, replace=False))
            second = [second[i] for i in keep]
        #: how many order-1 and order-2 candidates the last search screened
        self.searched = (len(first), len(second))
        ranked = self.rank(first + second, top=top)
        logger.info("screen: %d order-1 and %d order-2 candidates, the best %d kept (best gain %.4f)",
                    len(first), len(second), len(ranked), ranked[0].gain if ranked else float("nan"))
        return ranked


__all__ = ["FeatureScreen", "ScreenedFeature"]


def _block_gains(screen: FeatureScreen, block: Sequence[Feature]) -> np.ndarray:
    """One block's gains (a module-level function: an engine sends it to its workers by name)."""
    return screen._gains_of(screen.values(block), screen.residual)
