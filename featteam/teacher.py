"""Step 1 of the method: golden examples from a teacher LLM, plus exploration.

Every candidate is scored by the downstream evaluator (training rows only under
the honest protocol) and duplicates are removed; the golden set records each
example's sequence, readable formula, score, source and validity.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from .candidates import Candidate, median, mode_of_source, top_k
from .evaluation import Evaluator
from .expr import ErrorKind, InvalidSequence, canonical_key, check_structure, parse_postfix, render, to_postfix_text
from .explore import Explorer
from .llm.base import BudgetExhausted, LLMBackend, LLMError
from .llm.prompts import build_messages
from .records import read_jsonl, write_jsonl, to_json_value
from .report import GoldenReport, SourceSummary, TeacherSummary

logger = logging.getLogger(__name__)

_BRACKETED = re.compile(r"\[[^\[\]]*\]")


def extract_transformations(text: str, columns: Sequence[str], n_features: int, max_length: int,
                            max_features: int, max_feature_length: int | None = None,
                            ) -> list[tuple[list[str] | None, ErrorKind | None, str, str]]:
    """Every transformation in a free-form answer: (tokens or None, error kind or None, message, snippet).

    The answer is data: bracketed groups are tokenised and checked, nothing is executed.
    """
    snippets = _BRACKETED.findall(text or "")
    if not snippets:
        return [(None, ErrorKind.UNPARSABLE, "no [...] transformation in the answer", (text or "")[:200])]
    out = []
    for snippet in snippets:
        try:
            tokens = parse_postfix(snippet, columns)
            check_structure(tokens, n_features, max_length, max_features, max_feature_length)
            out.append((tokens, None, "", snippet))
        except InvalidSequence as exc:
            out.append((None, exc.kind, str(exc), snippet[:200]))
    return out


def save_golden(examples: Iterable[Candidate], path: str | Path) -> None:
    write_jsonl(path, examples)


def load_golden(path: str | Path) -> list[Candidate]:
    return read_jsonl(path, Candidate)


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
        Show the teacher f0..fn instead of the column names.
    random_state : int
    progress : bool
        Show a progress bar.
    """

    def __init__(self, evaluator: Evaluator, teacher: LLMBackend | None, n_golden: int = 100,
                 teacher_share: float = 0.3, answers_per_call: int = 8, max_teacher_rounds: int = 10,
                 anonymous: bool = False, random_state: int = 0, progress: bool = True) -> None:
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
        self._seen: set = set()
        self.raw_errors: Counter = Counter()
        self.raw_outputs = 0
        self.teacher_stop = ""

    # -- bookkeeping -------------------------------------------------------------------

    @property
    def valid(self) -> list[Candidate]:
        return [e for e in self.examples if e.scored]

    def _add_scored(self, candidates: list[tuple[list[str], str, str | None]], bar=None) -> int:
        """Score new distinct candidates (tokens, source, raw); returns how many were valid."""
        fresh = []
        for tokens, source, raw in candidates:
            key = canonical_key(tokens)
            if key in self._seen:
                continue
            self._seen.add(key)
            fresh.append((tokens, source, raw))
        results = self.evaluator.score_many([t for t, _, _ in fresh])
        n_valid = 0
        for (tokens, source, raw), result in zip(fresh, results):
            example = Candidate(mode=mode_of_source(source), tokens=list(tokens), source=source, score=result.score,
                                error=result.error, message=result.message, formula=render(tokens, self.columns),
                                raw=raw)
            self.examples.append(example)
            if example.scored:
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
        examples = [f"{to_postfix_text(e.tokens)} (score {e.score:.4f})" for e in self._best(3)]
        local = self.teacher.name == "local"
        messages = build_messages(evaluator.task, evaluator.dataset.target, X, self.columns,
                                  n_answers=1 if local else self.answers_per_call,
                                  max_features=self.grammar.max_features, max_length=self.grammar.max_length,
                                  anonymous=self.anonymous, good_examples=examples, compact=local)
        n_calls = self.answers_per_call if local else 1
        texts = self.teacher.propose(messages, n=n_calls, seed=self.random_state * 1000 + round_index * 64,
                                     grammar=self.grammar)
        candidates = []
        source = f"teacher:{self.teacher.name}"
        for text in texts:
            for tokens, error, message, snippet in extract_transformations(
                    text, self.columns, self.n_features, self.grammar.max_length, self.grammar.max_features,
                    self.grammar.max_feature_length):
                self.raw_outputs += 1
                if tokens is None:
                    self.raw_errors[error.value] += 1
                    self.examples.append(Candidate(mode=mode_of_source(source), tokens=None, source=source,
                                                   error=error, message=message, raw=snippet))
                else:
                    candidates.append((tokens, source, snippet))
        return self._add_scored(candidates, bar)

    def _explore(self, bar) -> None:
        explorer = Explorer(self.n_features, self.grammar.max_length, self.grammar.max_features,
                            self.grammar.max_feature_length, random_state=self.random_state)
        batch = max(8, 4 * max(1, self.evaluator.n_jobs))
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
                        self.teacher_stop = str(exc)
                        logger.warning("teacher failed, continuing with exploration: %s", exc)
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
                base_url=described.get("base_url"), usage=to_json_value(self.teacher.usage),
                raw_transformations=self.raw_outputs, raw_error_classes=dict(self.raw_errors),
                stopped_because=self.teacher_stop)
        return GoldenReport(n_valid=len(valid_scores), n_records=len(self.examples), by_source=by_source,
                            best_score=max(valid_scores) if valid_scores else None,
                            median_score=median(valid_scores), seconds=round(getattr(self, "seconds", 0.0), 2),
                            teacher=teacher)
