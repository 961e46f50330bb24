"""Step 1 of the method: golden examples from a teacher LLM, plus exploration.

Every candidate is scored by the downstream evaluator (training rows only under
the honest protocol) and duplicates are removed; the golden set records each
example's sequence, readable formula, score, source and validity.

The teacher's answers are data, and a hostile or broken teacher never aborts or poisons a
run: anything that goes wrong while one answer is read, checked or scored rejects that
answer (counted in the teacher's error classes) and the build goes on.  A teacher that
fails for good (:class:`LLMError`, after its retries) fails the build with a message that
says where, unless ``teacher_fallback="explore"``: then exploration fills the golden set and
the report's ``stopped_because`` starts with :data:`TEACHER_FAILED` (the step is incomplete:
``steps.golden.GoldenStep.complete``).  A spent budget is a normal stop.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Literal, Sequence

from .candidates import Candidate, median, mode_of_source, read_candidates, top_k
from .errors import FeatteamError
from .evaluation import Evaluator, Scored
from .explore import Explorer
from .expr import ErrorKind, InvalidSequence, canonical_key, check_structure, parse_postfix, render, to_postfix_text
from .llm.base import BudgetExhausted, LLMBackend, LLMError, redact_url
from .llm.prompts import build_messages, column_words, example_text
from .records import to_json_value, write_jsonl
from .report import GoldenReport, SourceSummary, TeacherSummary

logger = logging.getLogger(__name__)

_BRACKETED = re.compile(r"\[[^\[\]]*\]")
#: Most transformations read from one answer; the rest are counted as one unparsable record.
MAX_TRANSFORMATIONS_PER_ANSWER = 64
#: Characters of an answer's text kept in a rejected record (``raw``) and of an error message.
RAW_CHARS = 200
MESSAGE_CHARS = 300
#: Characters of a valid transformation's text kept (``raw``).
VALID_RAW_CHARS = 1000
#: Exploration proposals scored at a time (the explorer sees the best so far between batches).
EXPLORE_BATCH = 8
#: How ``stopped_because`` starts when the teacher failed and exploration took over.
TEACHER_FAILED = "teacher failed"

Extracted = tuple[list[str] | None, ErrorKind | None, str, str]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _failure(what: str, exc: BaseException) -> str:
    """An error message for an exception that rejected an answer (never the whole answer)."""
    return _clip(f"{what}: {type(exc).__name__}: {exc}", MESSAGE_CHARS)


def extract_transformations(text: str, columns: Sequence[str] | None, n_features: int, max_length: int,
                            max_features: int, max_feature_length: int | None = None,
                            ) -> list[Extracted]:
    """Every transformation in a free-form answer: (tokens or None, error kind or None, message, snippet).

    The answer is data: bracketed groups are tokenised and checked, nothing is executed.
    ``columns=None`` reads the tokens ``f{i}`` only (the teacher was shown no names).  Never
    raises: whatever goes wrong with a group rejects it (UNPARSABLE with the exception's message),
    and at most :data:`MAX_TRANSFORMATIONS_PER_ANSWER` groups are read.
    """
    if not isinstance(text, str):
        return [(None, ErrorKind.UNPARSABLE, f"the answer is no text but {type(text).__name__}",
                 _clip(repr(text), RAW_CHARS))]
    snippets = _BRACKETED.findall(text)
    if not snippets:
        return [(None, ErrorKind.UNPARSABLE, "no [...] transformation in the answer", text[:RAW_CHARS])]
    out: list[Extracted] = []
    for snippet in snippets[:MAX_TRANSFORMATIONS_PER_ANSWER]:
        try:
            tokens = parse_postfix(snippet, columns)
            check_structure(tokens, n_features, max_length, max_features, max_feature_length)
            out.append((tokens, None, "", _clip(snippet, VALID_RAW_CHARS)))
        except InvalidSequence as exc:
            out.append((None, exc.kind, _clip(str(exc), MESSAGE_CHARS), snippet[:RAW_CHARS]))
        except Exception as exc:  # noqa: BLE001 - a bug of ours must cost one answer, not the run
            out.append((None, ErrorKind.UNPARSABLE, _failure("could not read", exc), snippet[:RAW_CHARS]))
    if len(snippets) > MAX_TRANSFORMATIONS_PER_ANSWER:
        rest = len(snippets) - MAX_TRANSFORMATIONS_PER_ANSWER
        out.append((None, ErrorKind.UNPARSABLE, f"{rest} more [...] groups in the answer not read (at most "
                                                f"{MAX_TRANSFORMATIONS_PER_ANSWER} per answer)",
                    snippets[MAX_TRANSFORMATIONS_PER_ANSWER][:RAW_CHARS]))
    return out


def save_golden(examples: Iterable[Candidate], path: str | Path) -> None:
    write_jsonl(path, examples)


def load_golden(path: str | Path, n_features: int | None = None) -> list[Candidate]:
    """The golden set saved at ``path``, without the lines that cannot be used (a score that is
    not a finite number; a valid example whose tokens are no transformation of ``n_features``
    columns): :func:`featteam.candidates.read_candidates`."""
    return read_candidates(path, n_features)


class GoldenSetBuilder:
    """Builds the golden set: the teacher's share first, then exploration.

    Parameters
    ----------
    evaluator : Evaluator
    teacher : LLMBackend or None
        None: exploration only.
    n_golden : int
        Distinct valid scored examples wanted.
    teacher_share : float
        Fraction of ``n_golden`` asked of the teacher (the explorer fills the rest,
        and whatever the teacher could not deliver).
    answers_per_call : int
        Transformations asked for per call (per sample for the local backend).
    max_teacher_rounds : int
        Most rounds of teacher calls.
    anonymous : bool
        Show the teacher f0..fn instead of the column names (its answers are then read
        with ``f{i}`` only).
    random_state : int
    progress : bool
        Show a progress bar.
    teacher_fallback : {"fail", "explore"}
        When the teacher fails for good (LLMError): raise a FeatteamError that says where
        (default), or go on with exploration and say so in ``stopped_because``
        (starting with :data:`TEACHER_FAILED`).
    pool : sequence of features, optional
        Good single features (the screen's best, best first) exploration draws from.
    """

    def __init__(self, evaluator: Evaluator, teacher: LLMBackend | None, n_golden: int = 100,
                 teacher_share: float = 0.3, answers_per_call: int = 8, max_teacher_rounds: int = 10,
                 anonymous: bool = False, random_state: int = 0, progress: bool = True,
                 teacher_fallback: Literal["fail", "explore"] = "fail",
                 pool: Sequence[Sequence[str]] = ()) -> None:
        if teacher_fallback not in ("fail", "explore"):
            raise FeatteamError(f"teacher_fallback must be 'fail' or 'explore', not {teacher_fallback!r}")
        self.evaluator = evaluator
        self.teacher = teacher
        self.n_golden = int(n_golden)
        self.teacher_share = float(teacher_share)
        self.answers_per_call = int(answers_per_call)
        self.max_teacher_rounds = int(max_teacher_rounds)
        self.anonymous = anonymous
        self.random_state = int(random_state)
        self.progress = progress
        self.columns = list(evaluator.dataset.X.columns)
        self.n_features = len(self.columns)
        self.grammar = evaluator.grammar()
        self.examples: list[Candidate] = []
        self._valid: list[Candidate] = []
        self._seen: set = set()
        self.raw_errors: Counter = Counter()
        self.raw_outputs = 0
        #: teacher transformations equal to one already in the golden set (neither new nor an error)
        self.raw_repeats = 0
        self.teacher_stop = ""
        self.teacher_fallback = teacher_fallback
        self.pool = [list(f) for f in pool]
        #: the teacher's failure when it failed for good (with teacher_fallback="explore")
        self.teacher_error: LLMError | None = None

    # -- bookkeeping -------------------------------------------------------------------

    @property
    def valid(self) -> list[Candidate]:
        """The scored examples (kept as they come: a hostile teacher's many rejected records cost nothing here)."""
        return list(self._valid)

    def _score_alone(self, tokens: Sequence[str]) -> Scored:
        """One candidate's score; an exception while scoring rejects it (UNPARSABLE, with the message)."""
        try:
            return self.evaluator.score(tokens)
        except OSError:  # the run directory (the score log), not the candidate
            raise
        except Exception as exc:  # noqa: BLE001 - one candidate must not abort the build
            logger.warning("scoring %s failed (%s: %s); the candidate is rejected", to_postfix_text(tokens),
                           type(exc).__name__, _clip(str(exc), MESSAGE_CHARS))
            return Scored(tuple(tokens), None, ErrorKind.UNPARSABLE, _failure("scoring failed", exc))

    def _score(self, sequences: list[list[str]]) -> list[Scored]:
        """Scores of ``sequences``, in one batch; if the batch raises, one by one (:meth:`_score_alone`)."""
        if not sequences:
            return []
        try:
            return self.evaluator.score_many(sequences)
        except OSError:
            raise
        except Exception:  # noqa: BLE001 - find the candidate that raised; the others keep their scores
            return [self._score_alone(tokens) for tokens in sequences]

    def _add_scored(self, candidates: list[tuple[list[str], str, str | None]], bar=None) -> int:
        """Score new distinct candidates (tokens, source, raw); returns how many were valid."""
        fresh = []
        for tokens, source, raw in candidates:
            key = canonical_key(tokens)
            if key in self._seen:
                if source.startswith("teacher"):
                    self.raw_repeats += 1
                continue
            self._seen.add(key)
            fresh.append((tokens, source, raw))
        results = self._score([list(t) for t, _, _ in fresh])
        n_valid = 0
        for (tokens, source, raw), result in zip(fresh, results):
            try:
                formula = render(tokens, self.columns)
            except Exception as exc:  # noqa: BLE001 - checked tokens render; if not, the candidate is rejected
                formula = None
                result = Scored(tuple(tokens), None, ErrorKind.UNPARSABLE, _failure("could not render", exc))
            example = Candidate(mode=mode_of_source(source), tokens=list(tokens), source=source, score=result.score,
                                error=result.error, message=result.message, formula=formula, raw=raw)
            if example.scored and self.evaluator.screen is not None:
                example.screen_gain = self.evaluator.screen.transformation_gain(tokens)
            self.examples.append(example)
            if example.scored:
                self._valid.append(example)
                n_valid += 1
            elif source.startswith("teacher"):
                self.raw_errors[example.error.value] += 1
        if bar is not None:
            bar.update(min(n_valid, max(0, bar.total - bar.n)))
        return n_valid

    def _best(self, k: int) -> list[Candidate]:
        return top_k(self.valid, k)

    # -- the two sources ------------------------------------------------------------------

    def _teacher_round(self, round_index: int, bar) -> int:
        evaluator = self.evaluator
        X = evaluator.X[evaluator.search_rows]
        local = self.teacher.name == "local"
        # The local backend writes f{i} only (its grammar); anonymous: the teacher saw f{i} only.
        indices_only = local
        names = None if self.anonymous or indices_only else self.columns
        words = column_words(self.columns, anonymous=self.anonymous, indices_only=indices_only)
        examples = [f"{example_text(e.tokens, words)} (score {e.score:.4f})" for e in self._best(3)]
        messages = build_messages(evaluator.task, evaluator.dataset.target, X, self.columns,
                                  n_answers=1 if local else self.answers_per_call,
                                  max_features=self.grammar.max_features, max_length=self.grammar.max_length,
                                  anonymous=self.anonymous, good_examples=examples, compact=local,
                                  indices_only=indices_only)
        n_calls = self.answers_per_call if local else 1
        texts = self.teacher.propose(messages, n=n_calls, seed=self.random_state * 1000 + round_index * 64,
                                     grammar=self.grammar)
        candidates = []
        source = f"teacher:{self.teacher.name}"
        for text in texts if isinstance(texts, (list, tuple)) else [texts]:
            for tokens, error, message, snippet in self._read_answer(text, names):
                self.raw_outputs += 1
                if tokens is None:
                    self.raw_errors[error.value] += 1
                    self.examples.append(Candidate(mode=mode_of_source(source), tokens=None, source=source,
                                                   error=error, message=message, raw=snippet))
                else:
                    candidates.append((tokens, source, snippet))
        return self._add_scored(candidates, bar)

    def _read_answer(self, text: object, names: Sequence[str] | None) -> list[Extracted]:
        """The transformations of one answer; an exception rejects the whole answer (UNPARSABLE)."""
        try:
            return extract_transformations(text, names, self.n_features, self.grammar.max_length,
                                           self.grammar.max_features, self.grammar.max_feature_length)
        except Exception as exc:  # noqa: BLE001 - one answer must not abort the build
            logger.warning("a teacher answer could not be read (%s); it is rejected", type(exc).__name__)
            try:
                raw = str(text)[:RAW_CHARS]
            except Exception:  # noqa: BLE001
                raw = ""
            return [(None, ErrorKind.UNPARSABLE, _failure("could not read the answer", exc), raw)]

    def _explore(self, bar) -> None:
        explorer = Explorer(self.n_features, self.grammar.max_length, self.grammar.max_features,
                            self.grammar.max_feature_length, random_state=self.random_state, pool=self.pool)
        batch = EXPLORE_BATCH  # not from n_jobs: the golden set must not depend on it
        attempts, max_attempts = 0, 30 * self.n_golden + 100
        while len(self.valid) < self.n_golden and attempts < max_attempts:
            need = self.n_golden - len(self.valid)
            parents = self._best(max(4, len(self.valid) // 4))
            candidates = []
            for _ in range(min(batch, need)):
                draw = explorer.rng.random()
                n_random = sum(e.source == "explore:random" for e in self.examples)
                if len(parents) < 4 or draw < 0.25 or n_random < 0.2 * self.n_golden:
                    candidates.append((explorer.random(), "explore:random", None))
                elif draw < 0.75:
                    parent = parents[int(explorer.rng.integers(len(parents)))]
                    candidates.append((explorer.mutate(parent.tokens), "explore:mutation", None))
                else:
                    a, b = explorer.rng.choice(len(parents), size=2, replace=False)
                    candidates.append((explorer.crossover(parents[int(a)].tokens, parents[int(b)].tokens),
                                       "explore:crossover", None))
            attempts += len(candidates)
            self._add_scored(candidates, bar)
        if len(self.valid) < self.n_golden:
            logger.warning("exploration found %d of %d distinct valid examples (the table allows few distinct "
                           "transformations)", len(self.valid), self.n_golden)

    def build(self) -> list[Candidate]:
        """Run the teacher's share, then exploration, until ``n_golden`` valid examples."""
        from tqdm.auto import tqdm

        start = time.perf_counter()
        with tqdm(total=self.n_golden, desc="golden examples", disable=not self.progress, unit="ex") as bar:
            if self.teacher is not None:
                want = math.ceil(self.n_golden * self.teacher_share)
                dry = 0
                for round_index in range(self.max_teacher_rounds):
                    if len(self.valid) >= want:
                        self.teacher_stop = "teacher share reached"
                        break
                    try:
                        new = self._teacher_round(round_index, bar)
                    except BudgetExhausted as exc:
                        self.teacher_stop = str(exc)
                        logger.warning("teacher stopped: %s", exc)
                        break
                    except LLMError as exc:
                        self._teacher_failed(exc)
                        break
                    dry = dry + 1 if new == 0 else 0
                    if dry >= 3:
                        self.teacher_stop = "three rounds without a new valid example"
                        break
                else:
                    self.teacher_stop = f"{self.max_teacher_rounds} rounds"
            self._explore(bar)
        self.seconds = time.perf_counter() - start
        return self.examples

    def _where(self) -> str:
        """Where the teacher is, for messages: its endpoint (no credentials) or its model."""
        try:
            described = self.teacher.describe()
        except Exception:  # noqa: BLE001
            described = {}
        url = getattr(self.teacher, "endpoint", None) or described.get("base_url")
        return str(redact_url(str(url)) if url else described.get("model") or self.teacher.name)

    def _teacher_failed(self, exc: LLMError) -> None:
        """Raise a FeatteamError that says where and what; or, with the fallback, record it and go on."""
        where = getattr(exc, "endpoint", None) or self._where()
        detail = getattr(exc, "detail", None) or str(exc)
        if self.teacher_fallback == "fail":
            raise FeatteamError(f"the teacher at {where} failed: {detail}; fix it or pass "
                                f"--teacher-fallback explore") from None
        self.teacher_error = exc
        self.teacher_stop = (f"{TEACHER_FAILED} at {where}: {detail} (--teacher-fallback explore: went on with "
                             f"exploration; the next run asks the teacher again)")
        logger.warning("the teacher at %s failed, going on with exploration (--teacher-fallback explore): %s",
                       where, detail)

    def report(self) -> GoldenReport:
        """Where the examples came from and what the teacher got wrong."""
        by_source: dict[str, SourceSummary] = {}
        for source in sorted({e.source for e in self.examples}):
            mine = [e for e in self.examples if e.source == source]
            scores = [e.score for e in mine if e.scored]
            by_source[source] = SourceSummary(
                proposed=len(mine), valid=len(scores),
                errors=dict(Counter(e.error.value for e in mine if not e.scored and e.error is not None)),
                best_score=max(scores) if scores else None, median_score=median(scores))
        valid_scores = [e.score for e in self.valid]
        teacher = None
        if self.teacher is not None:
            described = self.teacher.describe()
            teacher = TeacherSummary(
                backend=described["backend"], model=described.get("model"), temperature=described.get("temperature"),
                base_url=redact_url(described.get("base_url")), usage=to_json_value(self.teacher.usage),
                raw_transformations=self.raw_outputs, raw_error_classes=dict(self.raw_errors),
                stopped_because=self.teacher_stop)
        return GoldenReport(n_valid=len(valid_scores), n_records=len(self.examples), by_source=by_source,
                            best_score=max(valid_scores) if valid_scores else None,
                            median_score=median(valid_scores), seconds=round(getattr(self, "seconds", 0.0), 2),
                            teacher=teacher)
