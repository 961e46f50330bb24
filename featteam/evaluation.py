"""The downstream evaluator: how good a transformation is, under two protocols.

``paper``
    Exactly the literature's protocol (method.md): ``train_test_split(test_size=0.2,
    random_state=0, shuffle=True)``; the score is the mean 5-fold CV score
    (Stratified for classification, shuffle=True, random_state=0) of
    ``RandomForest*(random_state=0)`` on the **test split**, original features
    kept beside the new ones.  Search and report share that split, so the
    numbers are optimistic.
``honest``
    Candidates are scored by 5-fold CV on the **training split** only (the
    transformation's imputation and stateful operators are fitted on each
    fold's training rows); the final score fits the transformation and the
    model on the training split and scores the untouched test split once.

Scores are cached by sequence, computed in parallel with ``n_jobs``, and do
not depend on ``n_jobs`` (every fit uses a fixed ``random_state``).
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Sequence

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from .data import Dataset, Task
from .engine import Engine, LocalEngine
from .errors import FeatteamError
from .expr import ErrorKind, InvalidSequence, check_structure, check_values, evaluate
from .expr.imputation import fill_missing, fit_medians
from .expr.operators import BOUND
from .expr.sequence import DEFAULT_MAX_FEATURE_LENGTH, DEFAULT_MAX_FEATURES, DEFAULT_MAX_LENGTH
from .forest import DEFAULT_TREES, FOREST_KINDS, forest_predict, sklearn_forest
from .records import from_dict

if TYPE_CHECKING:
    from .screen import FeatureScreen

logger = logging.getLogger(__name__)

Protocol = Literal["paper", "honest"]
PROTOCOLS: tuple[str, ...] = ("paper", "honest")


def f1_weighted(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """scikit-learn's ``f1_score(average="weighted")``: each class's F1, ``2 tp / (true + predicted)``
    (0 where it is undefined), weighted by its share of ``y_true``.  Counted with numpy because
    the choice's bootstrap calls it thousands of times and scikit-learn's checks cost
    milliseconds a call."""
    y_true, y_pred = np.ravel(y_true), np.ravel(y_pred)
    classes, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    true, predicted = codes[:len(y_true)], codes[len(y_true):]
    n_classes = len(classes)
    support = np.bincount(true, minlength=n_classes)
    both = support + np.bincount(predicted, minlength=n_classes)
    hits = np.bincount(true[true == predicted], minlength=n_classes)
    f1 = np.divide(2.0 * hits, both, out=np.zeros(n_classes), where=both > 0)
    return float(f1 @ support / len(y_true))


def one_minus_rae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """1 - relative absolute error: 1 - sum|y - yhat| / sum|y - mean(y)|."""
    denominator = np.abs(y_true - np.mean(y_true)).sum()
    if denominator == 0:
        return 0.0
    return float(1.0 - np.abs(y_true - y_pred).sum() / denominator)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "f1_weighted": f1_weighted,
    "one_minus_rae": one_minus_rae,
}
DEFAULT_METRIC: dict[str, str] = {"classification": "f1_weighted", "regression": "one_minus_rae"}


#: Rows each tree of a built-in forest draws (a bootstrap sample) when it is fitted on more rows.
#: A full-depth tree grows about one node per distinct row: on 800,000 rows of a Friedman table a
#: tree took 20 s and grew a million nodes (about 70 MiB) on this project's machine, half an hour
#: and gigabytes per reported score; with this bound, 1.2 s and 97,000 nodes (7 MiB).  Every table
#: of the suite has fewer training rows (higgs: 40,000), so their scores are the literature's forest.
DEFAULT_MAX_TREE_ROWS = 50_000
#: Most validation rows the output is chosen on (a stratified sample of the held-out rows): a
#: gain's standard error on 20,000 rows is already a fraction of a percent, and its bootstrap
#: stays cheap on a million-row table.
MAX_CHOICE_ROWS = 20_000
#: New partitions of the choice rows into folds, each row predicted out of fold once per partition
#: (where the choice is made out of fold: :meth:`Evaluator.choice_predictions`).
CHOICE_REPEATS = 2
#: The choice is made at the deployed model's scale where the training rows outside the validation
#: rows are at least this many times the search's sample (uci_credit_card, amazon_employee and
#: higgs: 10 to 16 times at the ``quick`` preset, 3.8 to 6.4 at ``default``).  A feature that helps a
#: forest of 2,000 rows can add nothing to one of 20,000: on those three tables at five test splits,
#: the choice out of fold at the search's scale lost up to 0.0085 (higgs, split 3), at the deployed
#: model's scale at most 0.0019, with the same total gain (BENCHMARKS.md).  Where the two scales are
#: alike (spam_base and wine_white: 1.5 times) the out-of-fold estimate, averaged over ten fits, is
#: the steadier one (wine_white at split 2: +0.0117 out of fold, -0.0037 at scale).
AT_SCALE_RATIO = 2


def make_model(task: Task, model: str | BaseEstimator = "rf", random_state: int = 0,
               n_trees: int | None = None, tree_rows: int | None = None, n_jobs: int | None = None) -> BaseEstimator:
    """The downstream model: ``"rf"`` (the literature's RandomForest), ``"et"``, or any estimator.

    ``n_trees`` sets the forest's size (None: scikit-learn's default, 100); ``tree_rows`` makes
    each tree draw a bootstrap sample of that many rows (None: as many as it is fitted on; ``"et"``
    then bootstraps too, which it does not by default); an estimator is never bounded;
    ``n_jobs`` fits the trees in parallel (the same forest for any value).  An estimator is used
    as given."""
    if isinstance(model, BaseEstimator):
        return clone(model)
    if model in FOREST_KINDS:
        return sklearn_forest(task, model, n_trees, random_state, max_samples=tree_rows, n_jobs=n_jobs)
    raise FeatteamError(f"unknown downstream model {model!r} (use 'rf', 'et' or a scikit-learn estimator)")


@dataclass
class Scored:
    """A sequence with its score, or the reason it has none."""

    tokens: tuple[str, ...]
    score: float | None
    error: ErrorKind | None = None
    message: str = ""

    @property
    def valid(self) -> bool:
        return self.error is None


#: Fewest validation rows worth choosing on; a table too small for them holds none out.
MIN_VALIDATION_ROWS = 20


#: Bootstrap resamples of the rows behind a gain's standard error (the choice's, the reported gain's).
BOOTSTRAPS = 400


def bootstrap_resamples(n_rows: int, seed: int) -> np.ndarray:
    """:data:`BOOTSTRAPS` resamples of ``n_rows`` rows (indices drawn with replacement), drawn
    with ``seed``: the rows behind every paired bootstrap's standard error."""
    return np.random.default_rng(seed).integers(0, n_rows, size=(BOOTSTRAPS, n_rows))


def paired_bootstrap(y: np.ndarray, predictions: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                     metric: Callable[[np.ndarray, np.ndarray], float],
                     resamples: np.ndarray) -> tuple[float, float]:
    """The gain of ``predictions`` over ``reference`` in ``metric`` on the rows ``y``, and its
    standard error.

    ``predictions`` and ``reference`` hold one array per partition (paired row by row and
    partition by partition); the gain is the mean over partitions of the metric's difference.
    The standard error is the standard deviation of that gain over ``resamples`` (rows of
    indices drawn with replacement): the paired bootstrap, which keeps the rows' pairing and
    works for any metric, not only for a mean over rows."""
    def gain(rows: np.ndarray | slice) -> float:
        return float(np.mean([metric(y[rows], new[rows]) - metric(y[rows], old[rows])
                              for new, old in zip(predictions, reference)]))

    return gain(slice(None)), float(np.std([gain(rows) for rows in resamples], ddof=1))


class Evaluator:
    """Scores transformations of one dataset under one protocol.

    Parameters
    ----------
    dataset : Dataset
    protocol : {"honest", "paper"}
    model : str or estimator
        The downstream model (``"rf"`` by default).
    n_splits : int
        Folds of the cross-validation.
    test_size : float
        Fraction of rows in the test split.
    split_seed : int
        Seed of the train/test split and of the folds (0 in the literature; the paper protocol
        takes no other).
    n_jobs : int
        Candidates scored in parallel (on this machine; see ``engine``).
    max_length, max_features, max_feature_length : int
        Limits a candidate must respect.
    max_search_rows : int, optional
        Score candidates on at most this many rows of the scoring split (a stratified sample,
        drawn with ``split_seed``), for large tables.  The reported score still uses the
        whole split.
    search_trees : int, optional
        Honest protocol: trees of the forest the search's cross-validation fits (fewer: a
        cheaper, noisier search score); the reported score always uses the full model.  The
        paper protocol reports its search score, so it always uses the full model.
    max_tree_rows : int
        A built-in forest fitted on more rows than this draws this many per tree (a bootstrap
        sample): the time and memory of the reported scores stay bounded on large tables, and
        every training row still reaches the model.  0: no bound (the literature's forest).
    validation_size : float
        Honest protocol: the share of the training split held out of the search (a stratified
        sample, drawn with ``split_seed``; at most ``max_search_rows`` of them, or
        :data:`MAX_CHOICE_ROWS` where the choice is made at scale): the screen, the golden set,
        the decoders and their scores never see these rows; the output is chosen on them
        (:meth:`choice_predictions`; where the other training rows are :data:`AT_SCALE_RATIO`
        times the search's sample or more, by a forest fitted on all of them).  0, or too small a
        table for :data:`MIN_VALIDATION_ROWS`: no validation rows.  The paper protocol has none.
    engine : Engine, optional
        Where candidates are scored (:mod:`featteam.engine`): by default ``n_jobs`` processes
        on this machine; a :class:`~featteam.engine.DaskEngine` scores them on a cluster.
        The scores do not depend on it.
    """

    def __init__(self, dataset: Dataset, protocol: Protocol = "honest", model: str | BaseEstimator = "rf",
                 n_splits: int = 5, test_size: float = 0.2, split_seed: int = 0, n_jobs: int = 1,
                 max_length: int = DEFAULT_MAX_LENGTH, max_features: int = DEFAULT_MAX_FEATURES,
                 max_feature_length: int = DEFAULT_MAX_FEATURE_LENGTH, max_search_rows: int | None = None,
                 search_trees: int | None = None, validation_size: float = 0.0,
                 max_tree_rows: int = DEFAULT_MAX_TREE_ROWS, engine: "Engine | None" = None) -> None:
        if protocol not in PROTOCOLS:
            raise FeatteamError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
        if protocol == "paper" and split_seed != 0:
            raise FeatteamError("the paper protocol uses the literature's split (--split-seed 0)")
        self.train_rows, self.test_rows = train_test_split(
            np.arange(len(dataset.y)), test_size=test_size, random_state=split_seed, shuffle=True)
        if protocol == "honest":
            # Nothing fitted may see the test split, the reading of the columns included (numeric
            # or text, which categories, which columns are dropped): the test rows are read as new
            # rows would be after deployment.
            dataset = dataset.read_on(self.train_rows)
        #: the dataset as the protocol reads it (honest: every column decision on the training split)
        self.dataset = dataset
        self.protocol = protocol
        self.task = dataset.task
        self.model = model
        self.metric_name = DEFAULT_METRIC[self.task]
        self.metric = METRICS[self.metric_name]
        from joblib import effective_n_jobs
        self.n_jobs = int(effective_n_jobs(n_jobs))  # -1: all cores
        self.engine: Engine = LocalEngine(self.n_jobs) if engine is None else engine
        self.max_length, self.max_features = max_length, max_features
        self.max_feature_length = max_feature_length
        self.split_seed = split_seed
        self.X = dataset.X.to_numpy(dtype=np.float64, na_value=np.nan)
        self.y = dataset.y
        #: every row of the split the protocol scores on (paper: test split; honest: training split)
        self.protocol_rows = self.test_rows if protocol == "paper" else self.train_rows
        self.max_search_rows = max_search_rows
        self.search_trees = search_trees if protocol == "honest" else None
        self.n_splits = n_splits
        if max_tree_rows < 0:
            raise FeatteamError(f"max_tree_rows must be 0 (no bound) or a number of rows, not {max_tree_rows}")
        self.max_tree_rows = max_tree_rows
        if not 0.0 <= validation_size < 1.0:
            raise FeatteamError(f"validation_size must be in [0, 1), not {validation_size}")
        self.validation_size = validation_size if protocol == "honest" else 0.0
        search_pool, validation = self._hold_out(self.protocol_rows, self.validation_size)
        self.search_rows = self._sample_rows(search_pool, max_search_rows)
        at_scale = len(validation) > 0 and len(search_pool) >= AT_SCALE_RATIO * len(self.search_rows)
        #: rows of the training split no search step sees (at most ``max_search_rows``, or
        #: :data:`MAX_CHOICE_ROWS` where the choice is made at scale); the output is chosen on them
        #: (choice_rows; honest only)
        self.validation_rows = self._sample_rows(validation, MAX_CHOICE_ROWS if at_scale else max_search_rows)
        #: the rows the output is chosen on (:meth:`choice_predictions`): the validation rows, which no
        #: search step saw; without them, the search rows
        self.choice_rows = self.validation_rows if len(self.validation_rows) else self.search_rows
        #: where the search scored a sample of a training split :data:`AT_SCALE_RATIO` times larger or
        #: more: every training row outside the validation rows, which the choice's forest is fitted on
        #: (the deployed model's scale); else None
        self.choice_fit_rows = search_pool if at_scale else None
        self.folds = self._make_folds(self.search_rows)
        self.cache: dict[tuple[str, ...], Scored] = {}
        #: honest protocol: each reported transformation's predictions of the test rows (the
        #: original features' are needed by every gain; fitted once each)
        self._test_predictions: dict[tuple[str, ...], np.ndarray] = {}
        #: :meth:`cv_score`'s scores by transformation: the choice's finalists and its local search
        #: meet the same transformation under several labels (a bank prefix that is also a forest
        #: prefix), and each score is a cross-validated forest
        self._unlimited_scores: dict[tuple[str, ...], float] = {}
        #: the cheap screen candidates pass before they are scored (featteam.screen; set by the run, or None)
        self.screen: "FeatureScreen | None" = None
        self.n_scored = 0
        self.cache_path: Path | None = None
        self._torn_tail = False  # the score log's last line lacks its newline (a killed append)

    def _split_rows(self, rows: np.ndarray, **size: Any) -> tuple[np.ndarray, np.ndarray]:
        """``rows`` in two parts (``train_test_split``'s sizes), stratified by class where the
        classes allow it, drawn with ``split_seed``; each part sorted."""
        stratify = self.y[rows] if self.task == "classification" else None
        try:
            first, second = train_test_split(rows, random_state=self.split_seed, stratify=stratify, **size)
        except ValueError:  # a class too rare to stratify on
            first, second = train_test_split(rows, random_state=self.split_seed, **size)
        return np.sort(first), np.sort(second)

    def _sample_rows(self, rows: np.ndarray, limit: int | None) -> np.ndarray:
        if not limit or len(rows) <= limit:  # None or 0: every row
            return rows
        if limit < 4 * self.n_splits:
            raise FeatteamError(f"max_search_rows={limit} is too small for {self.n_splits}-fold CV")
        return self._split_rows(rows, train_size=limit)[0]

    def _hold_out(self, rows: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
        """``rows`` split into (kept, held out), the held-out part ``share`` of them, stratified."""
        if share == 0.0:
            return rows, rows[:0]
        kept, held = self._split_rows(rows, test_size=share)
        if len(held) < MIN_VALIDATION_ROWS:
            logger.warning("validation_size=%s would hold out only %d rows, too few to choose on: the output is "
                           "chosen on the search rows (new partitions into folds)", share, len(held))
            return rows, rows[:0]
        if self.task == "classification" and len(np.unique(self.y[held])) < 2:  # too rare a class to stratify on
            logger.warning("the %d rows validation_size=%s would hold out are all of one class: the output is "
                           "chosen on the search rows (new partitions into folds)", len(held), share)
            return rows, rows[:0]
        return kept, held

    def _make_folds(self, rows: np.ndarray, seed: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        splitter = (StratifiedKFold if self.task == "classification" else KFold)(
            n_splits=self.n_splits, shuffle=True, random_state=self.split_seed if seed is None else seed)
        y = self.y[rows]
        if self.task == "classification" and len(np.unique(y)) < 2:
            raise FeatteamError("the split used for scoring holds a single class: too few rows to evaluate")
        if len(rows) < self.n_splits * 2:
            raise FeatteamError(f"{len(rows)} rows in the scoring split are too few for {self.n_splits}-fold CV")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a rare class: sklearn warns once per split
            return [(fit, held) for fit, held in splitter.split(np.zeros(len(y)), y)]

    def persist(self, path: str | Path) -> None:
        """Keep scores in a JSON-lines file: load what is there, append every new score.

        A run that is stopped and started again scores nothing twice."""
        self.cache_path = Path(path)
        if self.cache_path.exists():
            text = self.cache_path.read_bytes()
            # A kill mid-append leaves a last line without its newline: the next append must not
            # glue a good line to it.
            self._torn_tail = bool(text) and not text.endswith(b"\n")
            for line in text.splitlines():
                try:
                    scored = _scored_from_json(json.loads(line.decode("utf-8")))
                except (ValueError, KeyError, TypeError, RecursionError):
                    continue  # a line cut short by a kill (or damaged): score it again
                self.cache[scored.tokens] = scored

    def _remember(self, results: list[Scored]) -> None:
        if self.cache_path is None or not results:
            return
        with open(self.cache_path, "a") as handle:
            if self._torn_tail:
                handle.write("\n")
                self._torn_tail = False
            for r in results:
                handle.write(json.dumps({"tokens": list(r.tokens), "score": r.score,
                                         "error": r.error.value if r.error else None, "message": r.message}) + "\n")

    # -- features ------------------------------------------------------------------

    def _features(self, tokens: Sequence[str] | None, rows: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
        """Original (imputed) plus new columns of ``rows``; everything fitted on ``fit_rows``
        (positions within ``rows``)."""
        X = self.X[rows]
        # The imputation a deployed Transformation applies (Transformation.fit / impute).
        X = fill_missing(X, fit_medians(X[fit_rows]))
        if not tokens:
            return X
        new, _ = evaluate(tokens, X, fit_rows=fit_rows)
        check_values(new, X, rows=fit_rows)
        return np.hstack([X, new])

    def _cv_score(self, tokens: Sequence[str] | None, rows: np.ndarray | None = None,
                  folds: list | None = None) -> float:
        return float(np.mean(self._fold_scores(tokens, rows, folds)))

    def _fold_scores(self, tokens: Sequence[str] | None, rows: np.ndarray | None = None,
                     folds: list | None = None) -> list[float]:
        rows = self.search_rows if rows is None else rows
        return self._scores_of(self._fold_features(tokens, rows), rows, self.folds if folds is None else folds)

    def _fold_features(self, tokens: Sequence[str] | None,
                       rows: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """``features_for(fit, held)``: the columns of ``rows`` (``fit`` and ``held`` are positions in
        ``rows`` and cover them), fitted on ``fit`` - or, under the paper protocol, on every row,
        as the literature does."""
        if self.protocol == "paper":
            features = self._features(tokens, rows, np.arange(len(rows)))
            return lambda fit, held: features

        def fold_features(fit: np.ndarray, held: np.ndarray) -> np.ndarray:
            # Fit imputation and stateful operators on this fold's training rows only.
            order = np.concatenate([fit, held])
            computed = self._features(tokens, rows[order], np.arange(len(fit)))
            features = np.empty_like(computed)
            features[order] = computed
            return features

        return fold_features

    def _scores_of(self, features_for: Callable[[np.ndarray, np.ndarray], np.ndarray], rows: np.ndarray,
                   folds: list) -> list[float]:
        """The score on each of ``folds`` of ``rows``; ``features_for(fit, held)`` gives the columns."""
        y = self.y[rows]
        return [self.metric(y[held], predicted) for held, predicted in self._out_of_fold(features_for, rows, folds)]

    def _out_of_fold(self, features_for: Callable[[np.ndarray, np.ndarray], np.ndarray], rows: np.ndarray,
                     folds: list) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(held, predictions)`` for each of ``folds`` of ``rows``: the search's forest fitted on the
        fold's ``fit`` positions; ``features_for(fit, held)`` gives the columns."""
        y = self.y[rows]
        for fit, held in folds:
            features = features_for(fit, held)
            if self._grows_forest:
                yield held, forest_predict(self.task, features[fit], y[fit], features[held],
                                           n_trees=self.search_trees or DEFAULT_TREES,
                                           max_samples=self.tree_rows(len(fit)))
                continue
            model = make_model(self.task, self.model, n_trees=self.search_trees, tree_rows=self.tree_rows(len(fit)))
            model.fit(features[fit], y[fit])
            yield held, model.predict(features[held])

    # -- public API -----------------------------------------------------------------

    def check(self, tokens: Sequence[str]) -> None:
        """Raise InvalidSequence if ``tokens`` is not a valid transformation of this dataset."""
        check_structure(tokens, self.X.shape[1], self.max_length, self.max_features, self.max_feature_length)

    def check_values(self, tokens: Sequence[str]) -> None:
        """Raise InvalidSequence if the new columns are constant, duplicate or non-finite
        on the scoring rows (the cheap part of scoring, without the model)."""
        self.check(tokens)
        self._features(tokens, self.search_rows, np.arange(len(self.search_rows)))

    def score(self, tokens: Sequence[str] | None) -> Scored:
        """The search score of ``tokens`` (None: the original features), cached."""
        key = tuple(tokens or ())
        if key in self.cache:
            return self.cache[key]
        result = _score_one(self, key)
        self.cache[key] = result
        self.n_scored += 1
        self._remember([result])
        return result

    def score_many(self, sequences: Iterable[Sequence[str]], progress: bool = False,
                   desc: str = "scoring") -> list[Scored]:
        """Score many sequences on the engine (``n_jobs`` at a time by default); the same results
        for any ``n_jobs`` and on any engine."""
        sequences = [tuple(s) for s in sequences]
        todo = list(dict.fromkeys(s for s in sequences if s not in self.cache))
        if todo:
            results = self.engine.map(_score_one, self, todo, progress=progress, desc=desc)
            for s, r in zip(todo, results):
                self.cache[s] = r
            self.n_scored += len(todo)
            self._remember(results)
        return [self.cache[s] for s in sequences]

    def score_original(self) -> float:
        return float(self.score(None).score)

    def _check_unlimited(self, tokens: Sequence[str]) -> None:
        check_structure(tokens, self.X.shape[1], max_length=len(tokens), max_features=len(tokens),
                        max_feature_length=self.max_feature_length)

    def check_columns(self, tokens: Sequence[str]) -> None:
        """Like :meth:`check_values`, without the search's limits on length and feature count."""
        self.search_features(tokens)

    def search_features(self, tokens: Sequence[str]) -> np.ndarray:
        """The original (imputed) and new columns of the search rows, everything fitted on them,
        without the search's limits on length and feature count.

        Raises InvalidSequence when a new column is constant, duplicate or non-finite."""
        self._check_unlimited(tokens)
        return self._features(tokens, self.search_rows, np.arange(len(self.search_rows)))

    def cv_score(self, tokens: Sequence[str] | None) -> float:
        """The search score of ``tokens`` without the search's length limits (the assembled
        output may hold more features than one candidate), on the search folds.

        Raises InvalidSequence when a new column is constant, duplicate or non-finite."""
        key = tuple(tokens or ())
        if key not in self._unlimited_scores:
            if tokens:
                self._check_unlimited(tokens)
            self._unlimited_scores[key] = self._cv_score(tokens)
        return self._unlimited_scores[key]

    @property
    def choice_repeats(self) -> int:
        """How many predictions of the choice rows :meth:`choice_predictions` makes per
        transformation (``repeat`` 1 to this): one at the deployed model's scale, else
        :data:`CHOICE_REPEATS` partitions into folds."""
        return 1 if self.choice_fit_rows is not None else CHOICE_REPEATS

    def choice_predictions(self, tokens: Sequence[str] | None, repeat: int) -> np.ndarray:
        """Predictions for every choice row (:attr:`choice_rows`, in their order), each by a forest
        fitted, with the transformation, on rows that do not hold it.

        - Where the search scored a sample of a much larger training split (:attr:`choice_fit_rows`):
          the deployed model (the reported score's forest, not the search's) fitted on every
          training row outside the validation rows, as it is fitted on every training row.  A
          feature that helps a forest of a few thousand rows can add nothing to one of tens of
          thousands, which learns the interaction from the data itself (uci_credit_card: +0.009
          on 2000 validation rows at the search's scale, -0.0015 on the test split; BENCHMARKS.md).
        - Otherwise, out of fold, by the search's forest: the choice rows are partitioned into
          folds with seed ``split_seed + repeat`` (``repeat`` >= 1: never the search's
          partition), and each fold is predicted by the forest fitted on the other folds and -
          where the choice rows are the validation rows - on the search rows too.

        Every transformation predicted with the same ``repeat`` is fitted on the same rows, so
        predictions pair up row by row.

        Raises InvalidSequence when a new column is constant, duplicate or non-finite."""
        if not 1 <= repeat <= self.choice_repeats:
            raise FeatteamError(f"the choice's predictions are repeats 1 to {self.choice_repeats} "
                                f"(repeat 0 is the search's partition), not {repeat}")
        if tokens:
            self._check_unlimited(tokens)
        choice = self.choice_rows
        if self.choice_fit_rows is not None:
            rows = np.concatenate([self.choice_fit_rows, choice])
            n_fit = len(self.choice_fit_rows)
            features = self._features(tokens, rows, np.arange(n_fit))
            # The deployed model itself (the reported score's forest, all its trees), not the search's
            # smaller one: on uci_credit_card at split 0 the search's 50 trees gave a finalist +0.0052
            # ± 0.0031 that lost 0.0051 on the test split; with the deployed forest it gains +0.0022
            # ± 0.0026 and is not kept (BENCHMARKS.md).
            return self._fit_predict(features[:n_fit], self.y[rows[:n_fit]], features[n_fit:])
        context = self.search_rows if len(self.validation_rows) else self.search_rows[:0]
        rows, n_context = np.concatenate([context, choice]), len(context)
        folds = [(np.concatenate([np.arange(n_context), n_context + fit]), n_context + held)
                 for fit, held in self._make_folds(choice, self.split_seed + repeat)]
        held_out, predicted = zip(*self._out_of_fold(self._fold_features(tokens, rows), rows, folds))
        predictions = np.empty(len(choice), dtype=predicted[0].dtype)
        predictions[np.concatenate(held_out) - n_context] = np.concatenate(predicted)
        return predictions

    @property
    def _grows_forest(self) -> bool:
        """Whether the downstream model is the built-in ``rf``: then :func:`~featteam.forest.forest_predict`
        grows make_model's forest (the same trees) without scikit-learn's per-tree overhead."""
        return isinstance(self.model, str) and self.model == "rf"

    def tree_rows(self, n_fit: int) -> int | None:
        """The rows each tree draws when a forest is fitted on ``n_fit`` rows (None: all of them)."""
        return self.max_tree_rows if 0 < self.max_tree_rows < n_fit else None

    def _fit_predict(self, X_fit: np.ndarray, y_fit: np.ndarray, X_apply: np.ndarray) -> np.ndarray:
        """A reported score's downstream model fitted on ``X_fit`` and its predictions of ``X_apply``.
        The trees are grown with ``n_jobs`` threads (the same trees for any number; with one, the
        ``rf`` forest is grown by :func:`~featteam.forest.forest_predict`); they predict in one,
        because threads add the trees' predictions in the order they finish."""
        if self.n_jobs == 1 and self._grows_forest:
            return forest_predict(self.task, X_fit, y_fit, X_apply, max_samples=self.tree_rows(len(y_fit)))
        model = make_model(self.task, self.model, tree_rows=self.tree_rows(len(y_fit)), n_jobs=self.n_jobs)
        model.fit(X_fit, y_fit)
        if "n_jobs" in model.get_params():
            model.set_params(n_jobs=1)
        return model.predict(X_apply)

    def final_score(self, tokens: Sequence[str] | None) -> float:
        """The reported score. paper: the CV score on the test split; honest: fit the
        transformation and the model on the training split, score the test split once.
        Neither applies the search's limits on length and feature count: the chosen output may
        be assembled from several candidates' features (the feature bank).

        Raises InvalidSequence when a new column is constant, duplicate or non-finite."""
        if self.protocol == "paper":
            if tokens:
                self._check_unlimited(tokens)
            if len(self.search_rows) < len(self.protocol_rows):  # searched on a sample: score the whole split
                return self._cv_score(tokens, self.protocol_rows, self._make_folds(self.protocol_rows))
            cached = self.cache.get(tuple(tokens or ()))
            return float(cached.score) if cached is not None and cached.valid else self._cv_score(tokens)
        return self.metric(self.y[self.test_rows], self.test_predictions(tokens))

    def test_predictions(self, tokens: Sequence[str] | None) -> np.ndarray:
        """Honest protocol: the predictions of the test rows behind :meth:`final_score` (the
        transformation and the full model fitted on the training split), computed once per
        transformation."""
        if self.protocol != "honest":
            raise FeatteamError("test predictions are the honest protocol's (the paper protocol reports a CV score)")
        key = tuple(tokens or ())
        if key not in self._test_predictions:
            rows = np.concatenate([self.train_rows, self.test_rows])
            n_fit = len(self.train_rows)
            features = self._features(tokens, rows, np.arange(n_fit))
            self._test_predictions[key] = self._fit_predict(features[:n_fit], self.y[self.train_rows],
                                                            features[n_fit:])
        return self._test_predictions[key]

    def generation_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What another method (a benchmark peer) may learn new columns from: ``(X_fit, y_fit,
        X_apply)``, imputed original columns.  ``X_fit`` are the rows featteam may learn from: the
        whole training split (honest: featteam's search, validation rows and deployed
        transformation together) or the test split (paper, where ``X_apply`` is the same rows)."""
        if self.protocol == "paper":
            rows = self.protocol_rows
            X = self._features(None, rows, np.arange(len(rows)))
            return X, self.y[rows], X
        rows = np.concatenate([self.train_rows, self.test_rows])
        n_train = len(self.train_rows)
        X = self._features(None, rows, np.arange(n_train))
        return X[:n_train], self.y[self.train_rows], X[n_train:]

    def final_score_generated(self, generate: Callable[[np.ndarray, np.ndarray, np.ndarray],
                                                       tuple[np.ndarray, np.ndarray]]) -> float:
        """The reported score of columns made by another method (a benchmark peer).

        ``generate(X_fit, y_fit, X_apply)`` gets ``generation_inputs()`` and returns the new
        columns (only) for ``X_fit`` and ``X_apply``; they are scored beside the original columns
        like a transformation (paper: CV on the test split; honest: fit on the training split,
        score the test split once).  Undefined values are replaced by the fitted rows' medians."""
        return self.final_generated(generate)[0]

    def final_generated(self, generate: Callable[[np.ndarray, np.ndarray, np.ndarray],
                                                 tuple[np.ndarray, np.ndarray]]) -> tuple[float, float | None]:
        """:meth:`final_score_generated`, and the standard error of its gain over the original
        features (:meth:`test_gain_standard_error`; None under the paper protocol)."""
        X_fit, y_fit, X_apply = self.generation_inputs()
        new_fit, new_apply = generate(X_fit, y_fit, X_apply)
        features_fit = np.hstack([X_fit, _finite(new_fit, new_fit)])
        if self.protocol == "paper":
            rows = self.protocol_rows
            return float(np.mean(self._scores_of(lambda fit, held: features_fit, rows, self._make_folds(rows)))), None
        prediction = self._fit_predict(features_fit, y_fit, np.hstack([X_apply, _finite(new_apply, new_fit)]))
        error = self.test_gain_standard_error(prediction) if new_fit.shape[1] else 0.0
        return self.metric(self.y[self.test_rows], prediction), error

    def test_gain_standard_error(self, predictions: np.ndarray) -> float:
        """Honest protocol: the standard error of the gain of ``predictions`` (of the test rows)
        over the original features' (:meth:`test_predictions`), from a paired bootstrap of the
        test rows (:func:`paired_bootstrap`, resamples drawn with ``split_seed``): how much a
        test split of this size can move the reported gain.  Nothing is chosen with it."""
        y = self.y[self.test_rows]
        return paired_bootstrap(y, [predictions], [self.test_predictions(None)], self.metric,
                                bootstrap_resamples(len(y), self.split_seed))[1]

    def grammar(self):
        """The grammar automaton of this dataset's vocabulary and limits."""
        from .expr import Grammar, Vocabulary
        return Grammar(Vocabulary(self.X.shape[1]), self.max_length, self.max_features, self.max_feature_length)

    def __getstate__(self) -> dict[str, Any]:
        """What a worker needs to score candidates, and no more: the search rows of the table
        (renumbered 0..n-1; the folds are positions within them, so every score is the same),
        without the data frame, the other rows, the cache, the screen or the engine.  A copy
        made by pickling scores candidates (:meth:`score`, :meth:`score_many`); the
        final scores, the choice's predictions and generated scores need the original evaluator."""
        state = dict(self.__dict__)
        rows = self.search_rows
        state.update(X=self.X[rows], y=self.y[rows], search_rows=np.arange(len(rows)), dataset=None,
                     train_rows=None, test_rows=None, protocol_rows=None, validation_rows=None, choice_rows=None,
                     choice_fit_rows=None, cache={}, _test_predictions={}, _unlimited_scores={}, screen=None, engine=None,
                     cache_path=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.engine = LocalEngine(1)  # a copy scores in its own process


def _scored_from_json(row: Any) -> Scored:
    """One line of the score log; TypeError, KeyError or ValueError when it is not one (a valid
    line has string tokens, a number or null as its score, and an error kind or null)."""
    if not isinstance(row, dict) or not {"tokens", "score", "error"} <= row.keys():
        raise KeyError("a score line holds tokens, a score and an error")
    scored = from_dict(Scored, row)  # the types, as every run file is read
    if scored.score is not None and not np.isfinite(scored.score):
        raise ValueError("a score must be a finite number or null")
    if (scored.score is None) == (scored.error is None):
        raise TypeError("a score line holds a score or an error")
    return scored


def _score_one(evaluator: Evaluator, tokens: tuple[str, ...]) -> Scored:
    try:
        if tokens:
            evaluator.check(tokens)
        return Scored(tokens, evaluator._cv_score(tokens))
    except InvalidSequence as exc:
        return Scored(tokens, None, exc.kind, str(exc))


def usable_values(values: np.ndarray) -> np.ndarray:
    """Where values are ones the downstream model can take: finite and within the operators'
    bound (``expr.operators.BOUND``), the range featteam's own columns are kept in."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (np.abs(values) < BOUND)


def _finite(columns: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Unusable values replaced by the medians of ``reference`` (the fitted rows), so a peer's
    undefined values cannot crash the downstream model."""
    columns = np.asarray(columns, dtype=np.float64).reshape(len(columns), -1)
    reference = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    medians = fit_medians(np.where(usable_values(reference), reference, np.nan))
    # np.where copies, so fill_missing never writes into the peer's array.
    return fill_missing(np.where(usable_values(columns), columns, np.nan), medians)


def describe_protocol(protocol: Protocol) -> str:
    return {"paper": "5-fold CV on the 20% test split (the literature's protocol; optimistic)",
            "honest": "search on the training split, one score on the untouched test split"}[protocol]


__all__ = ["Evaluator", "METRICS", "PROTOCOLS", "Scored", "f1_weighted", "make_model", "one_minus_rae",
           "describe_protocol"]
