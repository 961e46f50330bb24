"""The choice of the output, and the deployable transformation fitted on the training split.

The finalists are each mode's best candidate (by search score), the features of the best
two and of the best three candidates together, the transformations assembled from the
**feature bank** - every distinct feature of every mode's scored candidates and of the
screen's own search - in three orders, each cut after 2, 4, 8, 12, ... features and at the most
a transformation may hold: the screen's greedy order (``bank:k``; each feature the one that
explains most of what the ones before it leave), the order of the features' importances in
one forest fitted on the search rows with the original columns and the bank's features together
(``forest:k``; OpenFE's second stage), and that order of the bank together with every binary
operator on each pair of the :data:`PAIR_COLUMNS` original columns most important beside it
(``pairs:k``, :func:`with_column_pairs`), the original features alone, and (``refine_candidates``
above 0) the best of a local search around the best of them (:func:`refine`, ``refined``).
All are scored by cross-validation on the search rows.  The best three, at most one of each
kind (one ``pairs:k``, one ``bank:k``, one mode's best, ...), and the original features are then
compared on the **choice rows**: under the honest protocol the **validation
rows** - a share of the training split (``validation_size``) that the screen, the golden set and
the decoders never saw.  Each validation row is predicted out of fold (``n_splits`` folds, on two
new partitions) by the search's forest fitted on the search rows and the other folds, so no
prediction comes from a model that saw its row, and no row the features were picked on is
scored.  Where the search scored a sample of half the rows outside the validation rows or fewer
(``AT_SCALE_RATIO``), each validation row is instead predicted by the deployed model (the reported
score's forest) fitted on every training row outside the validation rows, at its own scale: a feature
that helps a forest of a few thousand rows can add nothing to one of tens of thousands.  Each
finalist's gain over the original features is its metric minus theirs on the same rows
(averaged over the partitions, if any); its standard error comes from a paired bootstrap of
the rows.  The finalist with the largest gain wins if that gain is above ``choice_margin``
standard errors (1.5 by default); otherwise the original features are kept and nothing is
added.  Why these rows: a gain measured on rows the search picked the features on is
optimistic (on airfoil and housing_boston such gains, more than a standard error over the
original features, were losses on the test split).  Why a margin: on a test split other than
the suite's usual one (``split_seed`` 1), the rule without one added features that lost 0.01-0.14
on five small tables, each chosen on a validation gain below one standard error (lymphography:
+0.05 ± 0.07 on 24 rows); 1.5 standard errors kept the original features there, lost no table
by more than 0.005 on either split, and gained more on average on the new split
(BENCHMARKS.md, "The choice with a margin, decided on another test split").  Without validation rows (a
table too small for them, or ``validation_size`` 0) the choice rows are the search rows, each predicted by a forest
fitted on the other folds.  None of this sees the test split: it is scored once, after the
choice.

The paper protocol searches and reports on the test split, and the literature reports the best
transformation found: there the finalist with the best search score (its cross-validation score
on the test split, the score the protocol reports) is kept if it beats the original features.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Sequence

import numpy as np

from .candidates import MODES, Candidate, Mode, median, top_k
from .config import FitConfig
from .data import Dataset
from .errors import FeatteamError
from .evaluation import BOOTSTRAPS, Evaluator, bootstrap_resamples, make_model, paired_bootstrap
from .expr import BINARY, OPERATORS, InvalidSequence, join_features, render_feature, split_features, to_postfix_text
from .expr.program import first_duplicate
from .expr.vocab import feature_token
from .report import ChosenFeature, Finalist, ModeResult, SelectionResult
from .steps import STEPS
from .versions import versions

logger = logging.getLogger(__name__)

#: Bank prefixes compared (cut at ``max_selected_features``).
PREFIX_SIZES = (2, 4, 8, 12, 16, 24, 32)


def prefix_sizes(n_features: int) -> list[int]:
    """The sizes an ordered list of ``n_features`` features is cut at: each of
    :data:`PREFIX_SIZES` below it, and all of it."""
    return sorted({s for s in PREFIX_SIZES if s < n_features} | {n_features} - {0})


#: The feature bank holds this many times the most features a chosen transformation may have.
BANK_BREADTH = 4
#: The original columns (the most important to the search's forest beside the bank) whose pairs,
#: under every binary operator, join the bank in the forest's order (``pairs:k``).
PAIR_COLUMNS = 6
#: Finalists compared on the choice rows (besides the original features).
RESCORED = 3
#: The label of the local search's result among the finalists (:func:`refine`).
REFINED = "refined"
#: The step each mode belongs to (from the steps' own lists).
STEP_OF_MODE = {mode: step.name for step in STEPS for mode in step.modes}
CHOICE_METHOD = ("{how} on the {n} {rows}, "
                 "{m} finalists each paired row by row with the original features; the largest gain{rule}; "
                 "standard errors from {b} bootstrap resamples of those rows; the test split is not used")
OUT_OF_FOLD = "out-of-fold predictions of the search's forest ({k} folds, {r} new partitions)"
AT_SCALE = ("predictions of the deployed model's forest fitted on the {n_fit} training rows outside them "
            "(the search scored a sample of {n_search}; the deployed model is fitted on every training row)")
MARGIN = ", kept only when it exceeds {margin:g} standard error(s), else the original features"
NO_MARGIN = ", kept when above zero, else the original features"
PAPER_CHOICE_METHOD = ("the paper protocol: the best search score ({k}-fold cross-validation on {n} rows of the test "
                       "split) of {m} finalists, kept if above the original features' (the literature reports the "
                       "best found); optimistic: the test split chose it")
REFINEMENT = "; a local search around the best finalist scored {n} more transformations (its best is \"refined\")"


@dataclass
class _Option:
    label: str
    tokens: list[str]
    scores: list[float]
    features: list[ChosenFeature]
    #: gain over the original features (honest: on the choice rows, with its standard error;
    #: paper: of the search score)
    gain: float | None = None
    standard_error: float | None = None

    @property
    def estimate(self) -> float:
        """The score on the choice rows where it was compared there, else the search CV score."""
        return float(self.scores[-1])


def _modes_of_features(candidates: Sequence[Candidate]) -> dict[tuple[str, ...], set[Mode]]:
    """Each feature of the scored candidates, with the modes whose candidates hold it."""
    modes_of: dict[tuple[str, ...], set[Mode]] = {}
    for candidate in candidates:
        if candidate.scored:
            for feature in split_features(candidate.tokens):
                modes_of.setdefault(tuple(feature), set()).add(candidate.mode)
    return modes_of


def _described(feature: Sequence[str], modes: set[Mode], columns: list[str],
               screen_gain: float | None = None, source: str = "screen") -> ChosenFeature:
    """``source``: where a feature no mode proposed comes from (the screen's search, or ``"pairs"``)."""
    ordered = [m for m in MODES if m in modes]
    return ChosenFeature(formula=render_feature(list(feature), columns), postfix=to_postfix_text(list(feature)),
                         modes=[m.value for m in ordered] or [source],
                         steps=list(dict.fromkeys(STEP_OF_MODE[m] for m in ordered)) or [source],
                         screen_gain=None if screen_gain is None else round(screen_gain, 6))


def feature_bank(candidates: Sequence[Candidate], evaluator: Evaluator, max_features: int,
                 pool: Sequence[Sequence[str]] = ()) -> list[tuple[list[str], ChosenFeature]]:
    """The feature bank.

    Parameters
    ----------
    candidates : sequence of Candidate
        Every mode's candidates (the scored ones are read).
    evaluator : Evaluator
        Its ``screen`` orders the bank; without one the bank is empty.
    max_features : int
        Most features in the bank.
    pool : sequence of features
        The screen's own best features (they join the bank with the mode ``"screen"``).

    Returns
    -------
    list of (tokens, ChosenFeature)
        The features in the screen's greedy order, each with the modes that proposed it; a
        feature that is constant or repeats another column on the search rows is left out.
    """
    screen = evaluator.screen
    modes_of = _modes_of_features(candidates)
    for feature in pool:
        modes_of.setdefault(tuple(feature), set())
    if screen is None or not modes_of:
        return []
    columns = list(evaluator.dataset.X.columns)
    bank: list[tuple[list[str], ChosenFeature]] = []
    for screened in screen.select(list(modes_of), max_features=max_features, min_gain=0.0):
        if len(bank) == max_features:
            break
        feature = list(screened.tokens)
        try:
            evaluator.check_columns(join_features([f for f, _ in bank] + [feature]))
        except InvalidSequence:
            continue
        bank.append((feature, _described(feature, modes_of[screened.tokens], columns, screened.gain)))
    return bank


def ranked_by_importance(bank: Sequence[tuple[list[str], ChosenFeature]],
                         evaluator: Evaluator,
                         importances: np.ndarray | None = None) -> list[tuple[list[str], ChosenFeature]]:
    """The bank's features in the order of their importance to the search's forest fitted on the
    search rows with the original columns and every bank feature at once (OpenFE's second stage,
    with the downstream model's own importances): the screen judges each feature by what it
    explains alone, the forest by what it adds beside the others and the original columns - on
    the Friedman-type tables the forest's order is the better one (BENCHMARKS.md).  Empty where
    the downstream model has no ``feature_importances_``.  ``importances``: that forest's, where
    the caller has fitted it (:func:`_importances`; else it is fitted here)."""
    if len(bank) < 2:
        return []
    if importances is None:
        importances = _importances([feature for feature, _ in bank], evaluator)
    if importances is None:
        return []
    new = importances[len(importances) - len(bank):]
    return [bank[i] for i in np.argsort(-new, kind="stable")]


def _importances(features: Sequence[Sequence[str]], evaluator: Evaluator) -> np.ndarray | None:
    """The importances of the original columns and then ``features`` to the search's forest fitted
    on the search rows with all of them; None where the downstream model has no
    ``feature_importances_``."""
    rows = evaluator.search_rows
    X = evaluator.search_features(join_features([list(f) for f in features])) if features else \
        evaluator._features(None, rows, np.arange(len(rows)))
    model = make_model(evaluator.task, evaluator.model, n_trees=evaluator.search_trees,
                       tree_rows=evaluator.tree_rows(len(rows)), n_jobs=evaluator.n_jobs)
    model.fit(X, evaluator.y[rows])
    importances = getattr(model, "feature_importances_", None)
    return None if importances is None else np.asarray(importances)


def with_column_pairs(bank: Sequence[tuple[list[str], ChosenFeature]], evaluator: Evaluator,
                      n_columns: int = PAIR_COLUMNS,
                      importances: np.ndarray | None = None) -> list[tuple[list[str], ChosenFeature]]:
    """The bank and every binary operator on each pair of the ``n_columns`` original columns most
    important to the search's forest beside the bank (each in both orders where a model can tell
    them apart), in the order of their importances to one forest fitted with all of them.

    Why: a forest splits on one column at a time, so a sum or difference of two informative
    columns gives it a direction it can only approximate by many splits.  The screen ranks such a
    feature low - what a binned mean of it explains of the residual is small - and the bank, built
    in the screen's order, leaves it out; on openml_586 the bank held only variants of one
    interaction, and these pairs beside it scored higher on the search folds (BENCHMARKS.md,
    "The bank with the pairs of the most important columns").  Features that are constant or
    repeat a column on the search rows are left out.  Empty where the downstream model has no
    ``feature_importances_``.  ``importances``: the bank's forest's, where the caller has fitted it
    (:func:`_importances`; else it is fitted here)."""
    if importances is None:
        importances = _importances([feature for feature, _ in bank], evaluator)
    if importances is None:
        return []
    n_original = evaluator.X.shape[1]
    top = [int(i) for i in np.argsort(-importances[:n_original], kind="stable")[:n_columns]]
    columns = list(evaluator.dataset.X.columns)
    combined = list(bank)
    known = {tuple(feature) for feature, _ in bank}
    # The new columns so far, to leave out a pair that repeats one (check_values' own test, one
    # column at a time: checking the whole list again for each pair would cost its square).
    values = (evaluator.search_features(join_features([f for f, _ in bank]))[:, n_original:] if bank
              else np.empty((len(evaluator.search_rows), 0)))
    for i, a in enumerate(top):
        for b in top[i + 1:]:
            for op in BINARY:
                for first, second in ((a, b), (b, a)) if OPERATORS[op].ordered else ((a, b),):
                    feature = [feature_token(first), feature_token(second), op]
                    if tuple(feature) in known:
                        continue
                    try:  # constant, non-finite or an original column again
                        column = evaluator.search_features(feature)[:, -1]
                    except InvalidSequence:
                        continue
                    if first_duplicate(column, values) is not None:
                        continue
                    known.add(tuple(feature))
                    values = np.column_stack([values, column])
                    combined.append((feature, _described(feature, set(), columns, source="pairs")))
    return ranked_by_importance(combined, evaluator)


def best_of_each_mode(candidates: Sequence[Candidate]) -> dict[Mode, Candidate]:
    """Each mode's best scored candidate, in the order of :data:`MODES`: the highest search score;
    among equals the shorter, then the earlier (deterministic)."""
    best: dict[Mode, Candidate] = {}
    for candidate in sorted((c for c in candidates if c.scored), key=lambda c: (-c.score, len(c.tokens))):
        best.setdefault(candidate.mode, candidate)
    return {mode: best[mode] for mode in MODES if mode in best}


def _options(candidates: Sequence[Candidate], best_of_mode: dict[Mode, Candidate], evaluator: Evaluator,
             max_selected_features: int, pool: Sequence[Sequence[str]],
             columns: list[str]) -> tuple[list[_Option], list[tuple[list[str], ChosenFeature]]]:
    """The finalists with their score on the search folds, and the bank's features in the forest's
    order, or the screen's where there is none (what :func:`refine` adds from)."""
    modes_of = _modes_of_features(candidates)
    options = [_Option("original", [], [evaluator.score_original()], [])]
    for mode, best in best_of_mode.items():
        if len(split_features(best.tokens)) <= max_selected_features:
            options.append(_Option(mode.value, list(best.tokens), [best.score],
                                   [_described(f, modes_of[tuple(f)], columns) for f in split_features(best.tokens)]))
    # The best candidates' features together (the best two, then three): good features of
    # different candidates, often of different modes, add up.
    ranked = top_k(candidates, len(candidates))
    for n_best in (2, 3):
        features = list(dict.fromkeys(tuple(f) for c in ranked[:n_best] for f in split_features(c.tokens)))
        features = features[:max_selected_features]
        if len(ranked) >= n_best and len(features) > len(split_features(ranked[0].tokens)):
            tokens = join_features([list(f) for f in features])
            try:
                options.append(_Option(f"best:{n_best}", tokens, [evaluator.cv_score(tokens)],
                                       [_described(f, modes_of[f], columns) for f in features]))
            except InvalidSequence as exc:
                logger.info("the best %d candidates together left out: %s", n_best, exc)
    # The bank holds more features than a transformation may (BANK_BREADTH x): the forest's order
    # picks its best from them; the screen's order is cut at the same sizes.
    bank = feature_bank(candidates, evaluator, BANK_BREADTH * max_selected_features, pool)
    # One forest's importances order the bank and pick the columns whose pairs join it.
    importances = _importances([feature for feature, _ in bank], evaluator) if bank else None
    by_importance = ranked_by_importance(bank, evaluator, importances)
    paired = with_column_pairs(bank, evaluator, importances=importances) if importances is not None else []
    for label, ordered in (("bank", bank), ("forest", by_importance), ("pairs", paired)):
        ordered = ordered[:max_selected_features]
        for size in prefix_sizes(len(ordered)):
            tokens = join_features([feature for feature, _ in ordered[:size]])
            try:
                options.append(_Option(f"{label}:{size}", tokens, [evaluator.cv_score(tokens)],
                                       [described for _, described in ordered[:size]]))
            except InvalidSequence as exc:
                logger.info("%s prefix of %d features left out: %s", label, size, exc)
    return options, by_importance or bank  # the forest's order is all of the bank, or nothing


def refine(options: Sequence[_Option], bank: Sequence[tuple[list[str], ChosenFeature]], evaluator: Evaluator,
           max_features: int, budget: int) -> tuple[_Option | None, list[tuple[str, ...]]]:
    """A local search from the finalist with the best search score (the original features left
    aside): drop one of its features or add one of ``bank``'s (in its order), keep the change when
    the search score rises, and go on from the next change, until ``budget`` transformations
    were scored or none of the changes of the current one helps.  Drops and additions alternate
    (the last feature dropped first), so both are tried within a small budget.  Deterministic: one
    transformation at a time, in a fixed order.

    Returns the best transformation found (None when none beat its start) and the
    transformations scored.  Under the paper protocol these are scored on the test split,
    like every candidate there: a search for the best score on those rows, what the literature
    reports (MOAT takes the best of its decoded candidates)."""
    contenders = [o for o in options if o.tokens]
    if budget < 1 or not contenders:
        return None, []
    start = min(contenders, key=lambda o: (-o.scores[0], len(o.features)))
    described = {tuple(f): d for o in contenders for f, d in zip(split_features(o.tokens), o.features)}
    described.update((tuple(f), d) for f, d in bank)
    additions = list(dict.fromkeys([tuple(f) for f, _ in bank] + list(described)))
    current = [tuple(f) for f in split_features(start.tokens)]
    best_score = start.scores[0]
    tried = {tuple(start.tokens)}
    scored: list[tuple[str, ...]] = []
    position = unhelpful = 0
    while len(scored) < budget:
        drops = [current[:i] + current[i + 1:] for i in reversed(range(len(current)))] if len(current) > 1 else []
        adds = [current + [f] for f in additions if f not in current] if len(current) < max_features else []
        moves = [m for pair in zip_longest(drops, adds) for m in pair if m is not None]
        if not moves or unhelpful >= len(moves):
            break
        move = moves[position % len(moves)]
        position += 1
        tokens = tuple(join_features([list(f) for f in move]))
        if tokens in tried:
            unhelpful += 1
            continue
        tried.add(tokens)
        try:
            score = evaluator.cv_score(tokens)
        except InvalidSequence:  # a duplicate or constant column beside the others
            unhelpful += 1
            continue
        scored.append(tokens)
        if score > best_score:
            current, best_score, unhelpful = move, score, 0
        else:
            unhelpful += 1
    logger.info("refinement: %d transformations scored, best search score %.4f from %.4f (%s)",
                len(scored), best_score, start.scores[0], start.label)
    if best_score == start.scores[0]:  # only a higher score replaces the start
        return None, scored
    tokens = join_features([list(f) for f in current])
    return _Option(REFINED, tokens, [best_score], [described[f] for f in current]), scored


def compare_on_choice_rows(options: list[_Option], indices: Sequence[int], evaluator: Evaluator) -> list[int]:
    """Predict ``options[i]`` for each of ``indices`` (which must hold 0, the original features) on
    the choice rows (:meth:`Evaluator.choice_predictions`, ``evaluator.choice_repeats`` times: new
    partitions into folds, or once at the deployed model's scale); append its metric there
    to its ``scores`` and set its ``gain`` over the original features and ``standard_error``
    (:func:`paired_bootstrap`).  Returns the indices compared: a finalist whose columns cannot be
    computed on a fold is left out."""
    y = evaluator.y[evaluator.choice_rows]
    predictions: dict[int, list[np.ndarray]] = {}
    for i in indices:
        try:
            predictions[i] = [evaluator.choice_predictions(options[i].tokens, repeat)
                              for repeat in range(1, evaluator.choice_repeats + 1)]
        except InvalidSequence as exc:  # a sparse column can be constant on one of the folds
            logger.info("finalist %s left out: %s", options[i].label, exc)
    resamples = bootstrap_resamples(len(y), evaluator.split_seed)
    for i, predicted in predictions.items():
        options[i].scores.append(float(np.mean([evaluator.metric(y, p) for p in predicted])))
        options[i].gain, options[i].standard_error = (
            paired_bootstrap(y, predicted, predictions[0], evaluator.metric, resamples) if i else (0.0, 0.0))
    return list(predictions)


def finalist_kind(label: str) -> str:
    """The kind of a finalist: its label before the size (``"pairs"`` for ``pairs:12``); a mode's
    best, ``"refined"`` and ``"original"`` are each a kind of their own."""
    return label.split(":", 1)[0]


def choose(options: list[_Option], evaluator: Evaluator, margin: float) -> _Option:
    """The chosen finalist (module docstring).  Honest protocol: the :data:`RESCORED` best on
    the search folds, at most one of each kind (:func:`finalist_kind`), and the original features
    (``options[0]``) are predicted on the choice rows (:func:`compare_on_choice_rows`); each
    finalist's gain over the original features and its standard error come from
    :func:`paired_bootstrap`.  The largest gain wins (ties: fewer features, then the earlier) if it
    exceeds ``margin`` standard errors (``margin`` 0: if it is above zero); otherwise the original.
    Paper protocol: the best search score, the score the protocol reports, if it is above the
    original features' (the literature reports the best found).  The finalists compared are
    distinct transformations."""
    first = sorted(range(len(options)), key=lambda i: (-options[i].scores[0], len(options[i].features), i))
    if evaluator.protocol == "paper":
        for option in options:
            option.gain = option.scores[0] - options[0].scores[0]
        return options[first[0]] if options[first[0]].gain > 0 else options[0]
    # The RESCORED best distinct finalists: a decoder that writes a golden example back, or a bank
    # prefix that equals a mode's best, is the same transformation under another label, and would
    # take the slot of another finalist (the first label, in the order above, keeps it).  At most
    # one of each kind (finalist_kind): the prefixes of one order share their first features, so
    # three of them hedge the search folds' ranking less than three kinds do.
    finalists: list[int] = []
    seen: set[tuple[str, ...]] = {()}  # the original features' (compared anyway)
    kinds: set[str] = set()
    for i in first:
        kind = finalist_kind(options[i].label)
        if len(finalists) < RESCORED and tuple(options[i].tokens) not in seen and kind not in kinds:
            seen.add(tuple(options[i].tokens))
            kinds.add(kind)
            finalists.append(i)
    compared = compare_on_choice_rows(options, sorted(set(finalists) | {0}), evaluator)
    contenders = [i for i in compared if i != 0]
    if not contenders:
        return options[0]
    best = options[min(contenders, key=lambda i: (-options[i].gain, len(options[i].features), i))]
    needed = margin * best.standard_error if margin > 0 else 0.0  # no margin: any gain, whatever its error
    return best if best.gain > needed else options[0]


def _estimate_method(evaluator: Evaluator, options: list[_Option], margin: float, refined: int) -> str:
    local = REFINEMENT.format(n=refined) if refined else ""
    if evaluator.protocol == "paper":
        return PAPER_CHOICE_METHOD.format(m=len(options) - 1, k=evaluator.n_splits, n=len(evaluator.search_rows)) + local
    if evaluator.choice_fit_rows is not None:
        how = AT_SCALE.format(n_fit=len(evaluator.choice_fit_rows), n_search=len(evaluator.search_rows))
        rows = "validation rows no search step saw"
    else:
        how = OUT_OF_FOLD.format(k=evaluator.n_splits, r=evaluator.choice_repeats)
        rows = ("validation rows no search step saw, each predicted by a forest fitted on the search rows and the "
                "other folds" if len(evaluator.validation_rows) else "search rows")
    return CHOICE_METHOD.format(how=how, n=len(evaluator.choice_rows), rows=rows,
                                m=sum(o.gain is not None for o in options[1:]), b=BOOTSTRAPS,
                                rule=MARGIN.format(margin=margin) if margin > 0 else NO_MARGIN) + local


def select(candidates: Sequence[Candidate], dataset: Dataset, evaluator: Evaluator, protocol: str,
           out: Path, original_search_score: float | None = None,
           max_selected_features: int = FitConfig.max_selected_features,
           pool: Sequence[Sequence[str]] = (), choice_margin: float = FitConfig.choice_margin,
           refine_budget: int = FitConfig.refine_candidates) -> SelectionResult:
    """Choose the output among each mode's best, the feature bank's prefixes, the local search's
    result (``refine_budget`` transformations, :func:`refine`; none when 0) and the original
    features (module docstring); report it and each mode's best under the protocol, and write
    ``out/transformation.json`` and ``out/scores_by_mode.png``."""
    from .expr import Transformation
    from .plots import scores_by_mode

    candidates = [c for c in candidates if c.scored]
    if not candidates:
        raise FeatteamError("no valid candidate was found")
    columns = list(dataset.X.columns)
    clock = _Stopwatch()
    original = evaluator.final_score(None)
    per_mode: dict[str, ModeResult] = {}
    best_of_mode = best_of_each_mode(candidates)
    for mode, best in best_of_mode.items():
        scores = [c.score for c in candidates if c.mode == mode]
        per_mode[mode.value] = ModeResult(
            n_candidates=len(scores), best_search_score=best.score, median_search_score=median(scores),
            formulas=[render_feature(f, columns) for f in split_features(best.tokens)],
            final_score=evaluator.final_score(best.tokens))
    clock.lap("per_mode")
    options, bank = _options(candidates, best_of_mode, evaluator, max_selected_features, pool, columns)
    refined, refinement = refine(options, bank, evaluator, max_selected_features, refine_budget)
    if refined is not None:
        options.append(refined)
    clock.lap("finalists")
    chosen = choose(options, evaluator, choice_margin)
    clock.lap("compared")
    final = original if not chosen.tokens else evaluator.final_score(chosen.tokens)
    gain_error = _test_gain_standard_error(evaluator, chosen.tokens)
    # A mode's best or the original features keep their label; every assembly (best:k, bank:k,
    # forest:k) is the bank's.
    mode = chosen.label if chosen.label in {"original", *(m.value for m in MODES)} else "bank"
    train = dataset.X.iloc[evaluator.train_rows]
    transformation = Transformation(chosen.tokens, columns, metadata={
        "task": dataset.task, "target": dataset.target, "protocol": protocol,
        "metric": evaluator.metric_name, "original_score": original, "score": final,
        "search_score": chosen.scores[0], "estimate": chosen.estimate, "mode": mode, "dataset": dataset.name,
        "preprocessor": dataset.preprocessor.to_dict(), "fitted_on": "training split", "versions": versions(),
    }).fit(train)
    transformation.save(out / "transformation.json")
    scores_by_mode({m.value: [c.score for c in candidates if c.mode == m] for m in MODES},
                   out / "scores_by_mode.png", reference=original_search_score,
                   title=f"{dataset.name}: candidate search scores by mode")
    if not chosen.tokens:
        logger.info("no transformation beat the original features where the output is chosen: none is added")
    clock.lap("output")
    return SelectionResult(
        original_score=original, score=final, gain=final - original, mode=mode, search_score=chosen.scores[0],
        formulas=transformation.formulas, postfix=transformation.postfix, per_mode=per_mode,
        n_candidates=len(candidates), features=chosen.features, estimate=round(chosen.estimate, 6),
        estimate_method=_estimate_method(evaluator, options, choice_margin, len(refinement)), chosen=chosen.label,
        scored_on_test_split=_scored_on_test_split(evaluator, candidates, options, best_of_mode, chosen, refinement),
        refinement_scored=len(refinement),
        finalists=[Finalist(label=o.label, n_features=len(o.features), cv_scores=[round(s, 6) for s in o.scores],
                            estimate=round(o.estimate, 6), gain=_rounded(o.gain),
                            standard_error=_rounded(o.standard_error),
                            formulas=[feature.formula for feature in o.features]) for o in options],
        gain_standard_error=_rounded(gain_error), seconds=clock.laps)


class _Stopwatch:
    """Seconds between calls of :meth:`lap`, each under its name (the report's
    ``SelectionResult.seconds``)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now


def _test_gain_standard_error(evaluator: Evaluator, tokens: Sequence[str]) -> float | None:
    """Honest protocol: the standard error of the reported gain, from a paired bootstrap of the
    test rows (:func:`paired_bootstrap`, the choice's own estimator, after the choice: it
    changes nothing, it says how much one test split of this size can tell).  0 when nothing is
    added; None under the paper protocol."""
    if evaluator.protocol != "honest":
        return None
    return evaluator.test_gain_standard_error(evaluator.test_predictions(tokens)) if tokens else 0.0


def _scored_on_test_split(evaluator: Evaluator, candidates: Sequence[Candidate], options: list[_Option],
                          best_of_mode: dict[Mode, Candidate], chosen: _Option,
                          refinement: Sequence[tuple[str, ...]] = ()) -> int:
    """How many distinct transformations of this run were scored on rows of the test split (the
    report's ``scored_on_test_split``): the reported ones, and under the paper protocol every
    scored candidate and finalist, and every transformation the local search scored, too.  The screen's gains are also measured there under the
    paper protocol (the report's ``screen`` says how many single features it looked at)."""
    reported = {(), tuple(chosen.tokens)} | {tuple(c.tokens) for c in best_of_mode.values()}
    if evaluator.protocol == "honest":
        return len(reported)
    return len(reported | {tuple(c.tokens) for c in candidates} | {tuple(o.tokens) for o in options}
               | set(refinement))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
