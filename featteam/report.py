"""What a run records: typed reports of each step and of the whole run (``report.json``).

The steps fill these records, :class:`RunReport` is written to ``RUN/report.json`` (with
its schema version) and read back into the same types by the CLI summary and by
``featteam bench``.  No torch here: reading a report needs the standard library and numpy.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .candidates import DecodeSummary
from .config import FitConfig
from .llm.base import Usage
from .records import from_dict, write_json

logger = logging.getLogger(__name__)

#: Version of report.json's layout; a report of another version is not resumed from.
REPORT_SCHEMA_VERSION = 2


# -- step 1 ----------------------------------------------------------------------------


@dataclass
class SourceSummary:
    """The golden examples of one source (``teacher:local``, ``explore:mutation``, ...)."""

    proposed: int
    valid: int
    errors: dict[str, int]
    best_score: float | None
    median_score: float | None


@dataclass
class TeacherSummary:
    """The teacher's backend, its usage and what it got wrong.

    ``usage`` holds the fields of :class:`featteam.llm.base.Usage` (calls, tokens, cache hits,
    ...), checked as that record is when the summary is made or read back: a count that is not
    an integer (or is null) is a TypeError (a damaged ``report.json``, which
    :meth:`RunReport.load` starts afresh), one that is missing reads as its default, 0.
    """

    backend: str
    model: str | None
    temperature: float | None
    usage: dict[str, Any]
    raw_transformations: int
    raw_error_classes: dict[str, int]
    stopped_because: str
    base_url: str | None = None

    def __post_init__(self) -> None:
        # A dict, not a Usage, in the record (its readers index it); checked here so that what
        # reads it (summary_text) can count on every field being there with its type.  Keys that
        # are not Usage's (a newer writer's) are kept.
        usage = from_dict(Usage, self.usage)
        self.usage = {**self.usage, **usage.to_dict()}


@dataclass
class GoldenReport:
    """Step 1: the golden set."""

    n_valid: int
    n_records: int
    by_source: dict[str, SourceSummary]
    best_score: float | None
    median_score: float | None
    seconds: float
    teacher: TeacherSummary | None = None


# -- step 2 ----------------------------------------------------------------------------


@dataclass
class LatentMetrics:
    """How the latent model's training went (on its held-out golden examples)."""

    train_examples: int
    validation_examples: int
    training_sequences: int
    epochs: int
    train_seconds: float
    validation_token_accuracy: float
    validation_exact_reconstruction: float
    validation_evaluator_spearman: float | None
    best_validation_loss: float
    #: "early stopping", "epochs" (the budget) or "time limit" (the safety stop: not reproducible)
    stopped_by: str = "epochs"
    time_limited: bool = False


@dataclass
class SearchSummary:
    """The gradient search: how many points, and what the evaluator predicted there."""

    seeds: int
    points: int
    step_sizes: list[float]
    mean_predicted_gain: float
    share_points_predicted_better: float


@dataclass
class LatentReport:
    """Step 2: the latent model, its search, and the ML decoder's candidates."""

    training: LatentMetrics
    fit_and_save_seconds: float
    search: SearchSummary
    masked: DecodeSummary
    unmasked: DecodeSummary
    golden_best_score: float | None
    golden_median_score: float | None
    best_ml_beats_golden_median: bool
    seconds: float


# -- step 3 ----------------------------------------------------------------------------


@dataclass
class FinetuneMetrics:
    """How the student's fine-tuning went."""

    steps: int
    epochs_run: float
    examples: int
    seconds: float
    seconds_per_step: float
    training_tokens_per_second: float
    first_loss: float | None
    last_loss: float | None
    #: the safety stop ended it (the run is then not reproducible)
    time_limited: bool
    weighting: str
    lora: bool


@dataclass
class PretrainMetrics:
    """The student's one-time pre-training on the expression language (:mod:`featteam.models.pretrain`)."""

    #: the pre-trained state's folder (in the cache, or in the package when shipped)
    directory: str
    #: read from the cache (trained by an earlier run or ``featteam prepare``) or shipped, rather than trained now
    loaded_from_cache: bool
    steps: int
    #: seconds the one-time pre-training took when it ran
    seconds: float
    disk_bytes: int
    first_loss: float | None
    last_loss: float | None
    #: shipped with featteam (trained by the project with ``featteam prepare --ship``, the same computation)
    shipped: bool = False

    @property
    def origin(self) -> str:
        """Where this run's state came from, in words: shipped with featteam, cached, or trained now."""
        return "shipped with featteam" if self.shipped else "cached" if self.loaded_from_cache else "trained now"


@dataclass
class StudentReport:
    """Step 3: the student's fine-tuning and its samples before and after."""

    finetune: FinetuneMetrics
    unmasked_before_finetuning: DecodeSummary
    unmasked_after_finetuning: DecodeSummary
    masked_after_finetuning: DecodeSummary
    golden_best_score: float | None
    golden_median_score: float | None
    loss_curve_png: str
    seconds: float
    #: the one-time pre-training it started from (None: it started from the base model)
    pretraining: PretrainMetrics | None = None


# -- step 4 ----------------------------------------------------------------------------


@dataclass
class TeamingReport:
    """Step 4: the teaming decoder's candidates, masked and unmasked."""

    teaming_lambda: float
    rule: str
    points: int
    masked: DecodeSummary
    unmasked: DecodeSummary
    seconds: float


@dataclass
class StepReports:
    """Each step's report once it has run."""

    golden: GoldenReport | None = None
    latent: LatentReport | None = None
    student: StudentReport | None = None
    teaming: TeamingReport | None = None


# -- the choice ------------------------------------------------------------------------


@dataclass
class ModeResult:
    """The best candidate of one mode, scored under the protocol."""

    n_candidates: int
    best_search_score: float
    median_search_score: float
    #: one readable formula per new feature
    formulas: list[str]
    final_score: float


@dataclass
class ScreenSummary:
    """What the cheap feature screen looked at before step 1 (featteam.screen)."""

    rows: int
    order1: int
    order2: int
    #: the best features kept for exploration and the feature bank, and the best gain
    pool: int
    best_gain: float | None
    best_formulas: list[str]
    seconds: float


@dataclass
class ChosenFeature:
    """One feature of the chosen transformation and where it came from."""

    formula: str
    postfix: str
    #: the modes whose candidates hold this feature (MODES order); "screen" when only the
    #: screen's own search found it (it feeds step 1's exploration); "pairs" for a pair of the
    #: original columns most important to the forest beside the bank (``pairs:k``)
    modes: list[str]
    #: the steps those modes belong to ("screen": the screen before step 1; "pairs": the choice's own)
    steps: list[str]
    #: its gain by the screen, given the features before it (greedy order); None: not screened
    screen_gain: float | None = None


@dataclass
class Finalist:
    """One transformation the choice compared: a mode's best, a prefix of the feature bank (in the
    screen's order, ``bank:k``, or the forest's, ``forest:k``; with the pairs of the most important
    columns, ``pairs:k``), or the original features alone."""

    label: str
    n_features: int
    #: mean CV score over the search folds, then (honest protocol), for the best few and the original
    #: features, the score of out-of-fold predictions on the choice rows (selection: the validation rows,
    #: new partitions)
    cv_scores: list[float]
    estimate: float
    #: honest: for those compared on the choice rows, the gain over the original features there (paired
    #: row by row) and its standard error (paired bootstrap of the rows); paper: every finalist's gain
    #: in search score, without a standard error
    gain: float | None = None
    standard_error: float | None = None
    #: its new features as formulas over the table's columns (none for the original features): what
    #: :class:`~featteam.FeatureTransformer` takes, so a finalist the choice did not keep can be tried
    #: on rows of one's own
    formulas: list[str] = field(default_factory=list)


@dataclass
class SelectionResult:
    """The chosen transformation, how it was chosen, and each mode's best."""

    original_score: float
    score: float
    gain: float
    #: what the chosen transformation is: "bank" (assembled from the best features of every
    #: mode: ``finalists`` says which assembly), a mode's name (that mode's best candidate) or
    #: "original" (no feature helped)
    mode: str
    search_score: float
    formulas: list[str]
    postfix: str
    per_mode: dict[str, ModeResult]
    n_candidates: int
    features: list[ChosenFeature] = field(default_factory=list)
    #: the chosen transformation's estimated score before the test split (honest: its out-of-fold
    #: score on the choice rows; paper: its search score, on the test split), and how it was made
    estimate: float | None = None
    estimate_method: str = ""
    finalists: list[Finalist] = field(default_factory=list)
    #: the label of the finalist chosen ("bank:8", "forest:12", "best:2", "ml", "original", ...)
    chosen: str = ""
    #: distinct transformations (the original features included) whose score used rows of the
    #: test split: under the paper protocol every one the search and the choice scored (they are
    #: scored there), under the honest protocol only the reported scores
    scored_on_test_split: int = 0
    #: honest protocol: the standard error of ``gain`` from a paired bootstrap of the test rows
    #: (each resample scores both predictions on the same rows): how far one test split of this
    #: size can move the gain; None under the paper protocol
    gain_standard_error: float | None = None
    #: transformations the local search around the best finalist scored (``refine_candidates``;
    #: its result, when it beat its start, is the finalist "refined")
    refinement_scored: int = 0
    #: where the choice's time went, in seconds: ``per_mode`` (each mode's best scored under the
    #: protocol, for the report), ``finalists`` (assembled and scored on the search folds, the
    #: local search's included), ``compared`` (the best of them on the choice rows), ``output``
    #: (the chosen transformation scored, fitted on the training split and saved)
    seconds: dict[str, float] = field(default_factory=dict)


# -- the run ---------------------------------------------------------------------------


@dataclass
class DataSummary:
    """The table a run was fitted on."""

    path: str | None
    name: str
    rows: int
    features: int
    task: str
    target: str
    notes: list[str] = field(default_factory=list)


@dataclass
class RunReport:
    """``RUN/report.json``: the configuration, each step's report, the result."""

    schema_version: int = REPORT_SCHEMA_VERSION
    data: DataSummary | None = None
    config: FitConfig | None = None
    n_jobs: int | None = None
    #: where candidates were scored (this machine, or a Dask cluster's address and worker threads)
    engine: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    protocol: str | None = None
    metric: str | None = None
    original_search_score: float | None = None
    screen: ScreenSummary | None = None
    steps: StepReports = field(default_factory=StepReports)
    #: the key (data and settings) each step's results were computed for
    step_keys: dict[str, str] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None
    #: the wall-clock safety stops that ended a training, and a teacher failure the golden set went
    #: on without (each makes the run not reproducible)
    safety_stops: list[str] = field(default_factory=list)
    reproducible: bool = True
    result: SelectionResult | None = None

    def save(self, path: str | Path) -> None:
        write_json(path, self)

    @classmethod
    def load(cls, path: str | Path) -> "RunReport":
        """The report at ``path``; an empty one when it is missing, unreadable or of another
        schema version (the steps then run again)."""
        path = Path(path)
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, ValueError, RecursionError):  # JSON and UTF-8 errors are ValueErrors
            logger.warning("%s is unreadable; starting the report afresh", path)
            return cls()
        if not isinstance(data, dict) or data.get("schema_version") != REPORT_SCHEMA_VERSION:
            logger.warning("%s was written by another version of featteam; starting the report afresh", path)
            return cls()
        try:
            return from_dict(cls, data)
        except Exception as exc:  # a damaged report must not stop a run: it is recomputed
            logger.warning("%s cannot be read (%s); starting the report afresh", path, exc)
            return cls()


def _validity(summary: DecodeSummary) -> str:
    """'k of n valid unmasked (error rate r: kind count, ...)'."""
    errors = ", ".join(f"{kind} {count}" for kind, count in summary.errors.items())
    return (f"{summary.valid} of {summary.n} valid unmasked (error rate {_fmt(summary.error_rate)}"
            + (f": {errors})" if errors else ")"))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _gain_text(finalist: Finalist) -> str:
    """A finalist's gain, with its standard error where it has one (the honest protocol's choice)."""
    error = "" if finalist.standard_error is None else f" ± {finalist.standard_error:.4f}"
    return f"{finalist.gain:+.4f}{error}"


#: The choice's parts (``SelectionResult.seconds``) as the summary names them.
PART_NAMES = {"per_mode": "each mode's best scored", "finalists": "finalists on the search folds",
              "compared": "compared on the choice rows", "output": "the output fitted and saved"}


def _time_text(report: RunReport) -> str:
    """Where a finished run's seconds went: the screen, each step run (a step already done when
    the run resumed took none), the choice and its parts."""
    parts = []
    if report.screen:
        parts.append(f"screen {report.screen.seconds:.0f}")
    parts += [f"{name} {seconds:.0f}" for name, seconds in report.step_seconds.items()]
    choice = report.result.seconds if report.result else {}
    if choice:
        inside = ", ".join(f"{PART_NAMES.get(name, name)} {seconds:.0f}" for name, seconds in choice.items())
        parts.append(f"choice {sum(choice.values()):.0f} ({inside})")
    return f"time: {report.seconds:.0f} s in all" + (f"; {', '.join(parts)}" if parts else "")


def summary_text(report: RunReport, out: str | Path) -> str:
    """The run's summary as a person reads it (what ``featteam fit`` prints)."""
    lines: list[str] = []
    data = report.data
    lines.append(f"\n{data.name}: {data.rows} rows, {data.features} features, {data.task}; "
                 f"protocol {report.protocol}, metric {report.metric}")
    lines.append(f"search score of the original features: {report.original_search_score:.4f}")
    if report.screen:
        screen = report.screen
        lines.append(f"screen: {screen.order1} order-1 and {screen.order2} order-2 features on {screen.rows} rows in "
                     f"{screen.seconds:.0f} s; best: {', '.join(screen.best_formulas[:3]) or 'none'}")
    steps = report.steps
    golden = steps.golden
    if golden:
        lines.append(f"golden set: {golden.n_valid} valid examples (best {_fmt(golden.best_score)}, "
                     f"median {_fmt(golden.median_score)}) in {golden.seconds:.0f} s")
        for source, info in golden.by_source.items():
            errors = ", ".join(f"{k} {v}" for k, v in info.errors.items()) or "none"
            lines.append(f"  {source:20s} {info.valid:4d} valid of {info.proposed:4d}; errors: {errors}")
        teacher = golden.teacher
        if teacher:
            usage = teacher.usage
            lines.append(f"  teacher {teacher.backend} ({teacher.model}): {usage['calls']} calls, "
                         f"{usage['cache_hits']} cache hits, {usage['prompt_tokens'] + usage['completion_tokens']} "
                         f"tokens; stopped: {teacher.stopped_because}")
    if steps.latent:
        training = steps.latent.training
        lines.append(f"latent model: held-out token accuracy {training.validation_token_accuracy:.3f}, evaluator "
                     f"Spearman {_fmt(training.validation_evaluator_spearman)}, trained in "
                     f"{training.train_seconds:.0f} s")
    if steps.latent or steps.teaming or steps.student:
        lines.append("validity below is 'unmasked': each model writes on its own, without the grammar mask, so its "
                     "errors are its own (the candidates themselves are decoded masked: always well-formed)")
    for label, entry in (("ml", steps.latent), ("teaming", steps.teaming)):
        if entry:
            line = f"{label + ' decoder:':17s}{_validity(entry.unmasked)}; masked best {_fmt(entry.masked.best_score)}"
            if (label == "teaming" and steps.latent and steps.latent.unmasked.error_rate
                    and entry.unmasked.error_rate is not None):
                ratio = entry.unmasked.error_rate / steps.latent.unmasked.error_rate
                line += f"; {ratio:.2f} x the ML decoder's errors"
            lines.append(line)
    if steps.student:
        student = steps.student
        before, after = student.unmasked_before_finetuning, student.unmasked_after_finetuning
        start = "the base model"
        if student.pretraining:
            start = (f"its pre-training on the expression language ({student.pretraining.seconds:.0f} s once, "
                     f"{student.pretraining.origin})")
        lines.append(f"{'student:':17s}{before.valid} of {before.n} valid unmasked from {start}; {after.valid} of "
                     f"{after.n} after fine-tuning on the golden set ({student.finetune.seconds:.0f} s)")
    if report.safety_stops:
        lines.append("NOT REPRODUCIBLE: " + "; ".join(report.safety_stops))
    result = report.result
    if result:
        if result.formulas:
            lines.append(f"\nchosen ({result.mode}): {', '.join(result.formulas)}")
        else:
            compared = [f for f in result.finalists if f.gain is not None and f.label != "original"]
            best = max(compared, key=lambda f: f.gain, default=None)
            margin = report.config.choice_margin if report.config is not None else 0.0
            bar = (f"; a gain is kept when it exceeds {margin:g} standard errors there, --choice-margin"
                   if margin > 0 and report.protocol == "honest" else "")
            why = (f"the best finalist, {best.label}, gained {_gain_text(best)} over the "
                   f"original features where the output is chosen: not enough to keep{bar}" if best else
                   "nothing beat the original features on the rows it was chosen on")
            lines.append(f"\nchosen: no new feature ({why})")
            if best and best.gain > 0 and best.formulas:  # a gain too small to keep: worth a try elsewhere
                lines.append(f"to try {best.label} on rows of your own: "
                             f"featteam.FeatureTransformer({', '.join(best.formulas)!r}) (every finalist's formulas "
                             "are in report.json)")
        if result.estimate is not None:
            chosen = [f for f in result.finalists if f.label == result.chosen and f.gain is not None]
            margin = (f" ({_gain_text(chosen[0])} over the original features)"
                      if chosen and result.chosen != "original" else "")
            lines.append(f"estimate {result.estimate:.4f}{margin}: {result.estimate_method}")
        error = ("" if result.gain_standard_error is None or not result.formulas else
                 f" ± {result.gain_standard_error:.4f}, the standard error over the test rows")
        lines.append(f"{report.metric} under the {report.protocol} protocol: original {result.original_score:.4f} "
                     f"-> with the new features {result.score:.4f} ({result.gain:+.4f}{error})")
        if report.protocol == "paper":
            lines.append(f"the paper protocol searched and reported on the test split: {result.scored_on_test_split} "
                         "transformations were scored there, and the best reported (optimistic; the honest protocol "
                         "is the estimate to trust)")
        if report.seconds is not None:
            lines.append(_time_text(report))
        lines.append(f"written: {out}/transformation.json (apply with `featteam transform`), report.json, "
                     "candidates.jsonl, scores_by_mode.png")
    else:
        made = [name for name in ("report.json", "golden.jsonl", "candidates.jsonl") if (Path(out) / name).exists()]
        lines.append(f"results in {out}/ ({', '.join(made)})")
    return "\n".join(lines)
