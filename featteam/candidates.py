"""Candidate transformations as typed records, and the helpers every step uses on them.

A :class:`Candidate` is one proposal of one mode of the method - the teacher's or the
explorer's golden examples (step 1), the ML decoder's (step 2), the student's (step 3)
and the teaming decoder's (step 4) - with its validity, error class and search score.
:data:`MODES` is the one list of modes, in the order reports show them; the pipeline,
the report and the benchmark all read it.
"""

from __future__ import annotations

import logging
import math
import sys
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from .expr import ErrorKind, InvalidSequence, canonical_key, check_structure, render, to_postfix_text

if TYPE_CHECKING:
    from .evaluation import Evaluator

logger = logging.getLogger(__name__)


class Mode(str, Enum):
    """Where a candidate comes from."""

    TEACHER = "teacher"  # step 1: the teacher LLM's golden examples
    EXPLORE = "explore"  # step 1: random generation, mutation and crossover
    ML = "ml"            # step 2: the ML decoder from searched embeddings
    STUDENT = "student"  # step 3: the student LLM alone
    TEAMING = "teaming"  # step 4: the ML decoder and the student combined

    def __str__(self) -> str:
        return self.value


#: Every mode, in the order reports show them.
MODES: tuple[Mode, ...] = tuple(Mode)
#: The modes that are ablations of the method (``explore`` is the golden set's filler, not one).
METHOD_MODES: tuple[Mode, ...] = (Mode.TEAMING, Mode.ML, Mode.STUDENT, Mode.TEACHER)


def mode_of_source(source: str) -> Mode:
    """The mode of a golden example's source (``teacher:local``, ``explore:mutation``, ...)."""
    return Mode.TEACHER if source.startswith("teacher") else Mode.EXPLORE if source.startswith("explore") \
        else Mode(source.split(":")[0])


@dataclass
class Candidate:
    """One proposed transformation and what became of it.

    ``valid`` means the sequence passed every check; ``score`` is its search score
    (None when it was checked but not scored, as unmasked decodes are: they exist to
    count errors).
    """

    mode: Mode
    tokens: list[str] | None
    source: str = ""
    score: float | None = None
    error: ErrorKind | None = None
    message: str = ""
    formula: str | None = None
    #: the text the candidate was read from (the teacher's answer snippet)
    raw: str | None = None
    #: False: no end token within the limits
    finished: bool = True
    masked: bool | None = None
    #: the student's sample before or after fine-tuning
    stage: str | None = None
    #: the golden example a searched point started from (postfix text), its step size and
    #: the evaluator's prediction there
    seed: str | None = None
    step_size: float | None = None
    predicted: float | None = None
    teaming_lambda: float | None = None
    teaming_rule: str | None = None
    #: what the cheap screen says the candidate's features add to the original columns
    #: (the sum of their positive gains; None: not screened)
    screen_gain: float | None = None

    @property
    def valid(self) -> bool:
        return self.tokens is not None and self.error is None

    @property
    def scored(self) -> bool:
        return self.valid and self.score is not None

    @property
    def sequence(self) -> str | None:
        return to_postfix_text(self.tokens) if self.tokens else None

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON line, with its validity and postfix text for a person reading it."""
        from .records import to_json_value

        return {**to_json_value(self), "valid": self.valid, "sequence": self.sequence}

    def reject(self, error: ErrorKind, message: str) -> "Candidate":
        self.error, self.message, self.score = error, message, None
        return self


def unusable_because(candidate: Candidate, n_features: int | None = None) -> str | None:
    """Why a candidate read back from a run file cannot be taken in; None when it can.

    A record's types are checked as it is read (:func:`featteam.records.read_jsonl`), not its
    values: a score that is not a finite number (NaN sorts first in :func:`top_k`), or a
    candidate marked valid whose tokens are no transformation (of ``n_features`` columns) -
    hand-edited or damaged lines - would make a later step fail on it.  Rejected candidates
    (an error, or no tokens) keep whatever tokens they were rejected for.

    Parameters
    ----------
    candidate : Candidate
    n_features : int, optional
        The table's number of columns; None: any column index is taken.

    Returns
    -------
    str or None
        The reason, in words (the same words for the same reason, so that they can be counted).
    """
    if candidate.score is not None and not math.isfinite(candidate.score):
        return "a score that is not a finite number"
    if candidate.valid:
        tokens = candidate.tokens
        try:
            # The structure alone: the search's limits on length and feature count are the run's
            # settings, and a file written under other settings is no damaged one.
            check_structure(tokens, sys.maxsize if n_features is None else n_features, max_length=len(tokens),
                            max_features=len(tokens), max_feature_length=None)
        except InvalidSequence:
            return ("tokens that are no transformation" if n_features is None
                    else f"tokens that are no transformation of the table's {n_features} columns")
    return None


def read_candidates(path: str | Path, n_features: int | None = None) -> list[Candidate]:
    """The candidates of a run file (``golden.jsonl``, ``candidates.jsonl``) that can be used.

    Lines that cannot be read as candidates are skipped by :func:`featteam.records.read_jsonl`
    (each with a warning); candidates whose values cannot be used (:func:`unusable_because`)
    are skipped here, with one warning that says how many and why.

    Parameters
    ----------
    path : str or Path
    n_features : int, optional
        The table's number of columns: a valid candidate must use no other.  None: not checked.

    Returns
    -------
    list of Candidate
        In the file's order.
    """
    from .records import read_jsonl

    kept: list[Candidate] = []
    skipped: Counter[str] = Counter()
    for candidate in read_jsonl(path, Candidate):
        reason = unusable_because(candidate, n_features)
        if reason is None:
            kept.append(candidate)
        else:
            skipped[reason] += 1
    if skipped:
        reasons = ", ".join(f"{count} with {reason}" for reason, count in skipped.items())
        logger.warning("%s: %d candidate lines skipped (%s): the run goes on without them (remove the run "
                       "directory to compute them afresh)", path, sum(skipped.values()), reasons)
    return kept


def check_and_score(candidates: list[Candidate], evaluator: "Evaluator", columns: Sequence[str],
                    score: bool = True) -> list[Candidate]:
    """Fill each candidate's validity, error class, formula and score (in place; returned).

    With ``score`` False the valid ones are only checked (structure, then values), not
    scored."""
    to_score = []
    for candidate in candidates:
        try:
            if not candidate.finished:
                raise InvalidSequence(ErrorKind.TOO_LONG, "no end token within the length limit")
            evaluator.check(candidate.tokens)
            candidate.formula = render(candidate.tokens, columns)
            if score:
                to_score.append(candidate)
            else:
                evaluator.check_values(candidate.tokens)
                candidate.error, candidate.message, candidate.score = None, "", None
        except InvalidSequence as exc:
            candidate.reject(exc.kind, str(exc))
    to_score = _screened(to_score, evaluator)
    for candidate, result in zip(to_score, evaluator.score_many([c.tokens for c in to_score])):
        candidate.error, candidate.message = result.error, result.message
        candidate.score = result.score
    return candidates

#: Candidates of one batch scored whatever the screen says (so every mode has a best to report).
ALWAYS_SCORED = 3
#: The message of a valid candidate the screen kept from the downstream score.
SCREENED_OUT = "screened out: its features add less to the original columns than its batch's better half (not scored)"


def _screened(candidates: list[Candidate], evaluator: "Evaluator") -> list[Candidate]:
    """The candidates worth the downstream score: with the evaluator's screen, the better half
    of the batch by screen gain among those with a feature the screen finds useful, and never
    fewer than the :data:`ALWAYS_SCORED` best; each candidate's ``screen_gain`` is filled.
    Without a screen, all of them."""
    screen = evaluator.screen
    if screen is None or not candidates:
        return candidates
    for candidate in candidates:
        candidate.screen_gain = screen.transformation_gain(candidate.tokens)
    order = sorted(range(len(candidates)), key=lambda i: (-candidates[i].screen_gain, i))
    useful = [i for i in order if candidates[i].screen_gain > 0][: (len(candidates) + 1) // 2]
    keep = set(useful) | set(order[:ALWAYS_SCORED])
    kept = []
    for i, candidate in enumerate(candidates):
        if i in keep:
            kept.append(candidate)
            continue
        try:  # not scored, but checked like a scored one: its validity counts the same
            evaluator.check_values(candidate.tokens)
            candidate.error, candidate.message, candidate.score = None, SCREENED_OUT, None
        except InvalidSequence as exc:
            candidate.reject(exc.kind, str(exc))
    return kept


def decoded_candidates(mode: Mode, points: Sequence[Any], beams: Sequence[Sequence[Any]], evaluator: "Evaluator",
                       masked: bool, columns: Sequence[str], score: bool = True) -> list[Candidate]:
    """One candidate per decoded search point (a ``SearchPoint`` of the latent model): its best
    beam (:class:`featteam.decoding.Beam`), checked, and scored if ``score``."""
    vocab = evaluator.grammar().vocab
    candidates, to_check = [], []
    for point, point_beams in zip(points, beams):
        best = point_beams[0] if point_beams else None
        candidate = Candidate(
            mode=mode, tokens=vocab.decode(best.token_ids) if best else [], source=mode.value, masked=masked,
            finished=bool(best and best.finished), seed=to_postfix_text(point.seed) if point.seed else None,
            step_size=point.step_size, predicted=point.predicted)
        if masked and best is None:
            # The grammar mask is exact up to duplicate features: a masked beam dies only where every
            # way to close its feature repeats an earlier one, and this point lost all its beams so.
            candidate.reject(ErrorKind.DUPLICATE_FEATURE, "every masked beam came to a feature that could only "
                                                          "repeat an earlier one")
        else:
            to_check.append(candidate)
        candidates.append(candidate)
    check_and_score(to_check, evaluator, columns, score=score)
    return candidates


def top_k(candidates: Iterable[Candidate], k: int) -> list[Candidate]:
    """The ``k`` best scored candidates, best first; among equal scores the earlier first."""
    return sorted((c for c in candidates if c.scored), key=lambda c: -c.score)[:k]


def median(values: Sequence[float]) -> float | None:
    """The median of ``values`` (the mean of the middle two for an even count); None if empty."""
    return float(np.median(values)) if len(values) else None


@dataclass
class DecodeSummary:
    """What a batch of candidates of one mode came to: validity, error classes, scores."""

    n: int
    valid: int
    error_rate: float | None
    errors: dict[str, int]
    best_score: float | None = None
    median_score: float | None = None
    n_scored: int = 0
    distinct: int = 0
    #: distinct valid candidates that are not in the golden set
    new_vs_golden: int | None = None


def summarise(candidates: Sequence[Candidate], golden: Sequence[Candidate] | None = None) -> DecodeSummary:
    """Validity and error classes of ``candidates``, and the best and median scores of the
    scored ones, with how many are distinct and (given the golden set) new."""
    errors = Counter(c.error.value for c in candidates if not c.valid and c.error is not None)
    n = len(candidates)
    n_invalid = sum(1 for c in candidates if not c.valid)
    scores = [c.score for c in candidates if c.scored]
    keys = {canonical_key(c.tokens) for c in candidates if c.scored}
    new = None
    if golden is not None:
        new = len(keys - {canonical_key(g.tokens) for g in golden if g.valid})
    return DecodeSummary(n=n, valid=n - n_invalid, error_rate=(n_invalid / n) if n else None, errors=dict(errors),
                         best_score=max(scores) if scores else None, median_score=median(scores),
                         n_scored=len(scores), distinct=len(keys), new_vs_golden=new)
