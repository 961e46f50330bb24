"""One ``featteam fit`` over a run directory: the steps in order, resume, the choice.

Each step writes its candidates into the run directory and records its report and key
(over the data and the settings it depends on) in ``report.json``; a step whose key
matches and whose artefacts are there is not run again, so a stopped run continues where
it was.  Every score is also appended to ``scores-*.jsonl`` as it is computed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

from .candidates import Candidate, read_candidates
from .config import PRESETS, FitConfig
from .data import Dataset, load_dataset
from .errors import FeatteamError
from .engine import Engine, library_versions, make_engine
from .evaluation import Evaluator
from .expr import OPERATORS
from .llm.base import redact_url
from .llm.torch_utils import torch_threads
from .records import write_jsonl
from .report import DataSummary, RunReport, ScreenSummary
from .selection import select
from .steps import STEP_NAMES, STEPS, RunContext, Step
from .versions import versions

logger = logging.getLogger(__name__)

__all__ = ["FitConfig", "PRESETS", "Run", "STEP_NAMES"]


class Run:
    """One ``featteam fit`` over a run directory.

    Parameters
    ----------
    out : path
        The run directory (created when the run starts).
    data : path
        The table.
    target : str
    config : FitConfig
    n_jobs : int
        Parallel scoring jobs; results do not depend on it.
    api_key : str, optional
        For the openai teacher; never written anywhere.
    progress : bool
    task, nan, drop_redundant
        How the table is read (:func:`featteam.data.load_dataset`).
    scheduler : str, optional
        A Dask scheduler's address (``tcp://HOST:PORT``): candidates are scored and screened on
        its workers (:class:`featteam.engine.DaskEngine`) instead of ``n_jobs`` local processes.
        Results do not depend on it.
    response_cache : path, optional
        The SQLite file of the teacher's response cache (:class:`featteam.llm.cache.ResponseCache`).
        None: the one every run on this machine shares, ``cache_dir()/llm_responses.sqlite``, so
        a repeated fit makes no LLM calls.  The benchmark gives each configuration its own, in
        its run directory, so that its fit time is a first fit's, whatever ran before it.
    """

    def __init__(self, out: str | Path, data: str | Path, target: str, config: FitConfig, n_jobs: int = -1,
                 api_key: str | None = None, progress: bool = True, task: str | None = None,
                 nan: str = "impute", drop_redundant: bool = False, scheduler: str | None = None,
                 response_cache: str | Path | None = None) -> None:
        self.out = Path(out)
        self.data_path = Path(data)
        self.target = target
        self.config = config
        self.n_jobs = n_jobs
        self.scheduler = scheduler
        self.response_cache = None if response_cache is None else Path(response_cache)
        self._api_key = api_key
        self.progress = progress
        self.task, self.nan, self.drop_redundant = task, nan, drop_redundant
        self.report_path = self.out / "report.json"
        self.report = RunReport.load(self.report_path)
        self._data_key_cache: str | None = None
        self._reading: str | None = None  # the columns' reading under the protocol (set by load)
        self._n_features: int | None = None  # the table's columns as read (set with _reading)

    # -- keys and records ------------------------------------------------------------

    def _data_key(self) -> str:
        """A key over the table's content and how it is read (not its path or time stamp): the
        file, the reading options, and the columns' reading as the protocol made it, so that
        scores of a table read another way (another featteam's decisions) are never reused."""
        self._ensure_read()
        if self._data_key_cache is None:
            digest = hashlib.sha256()
            with open(self.data_path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            digest.update(f"{self.target}:{self.task}:{self.nan}:{self.drop_redundant}".encode())
            digest.update(self._reading.encode())
            if self.config.split_seed:
                # Another test split is other data to every step (the literature's, 0, keeps the
                # keys it always had, so existing run directories stay valid).
                digest.update(f":split_seed={self.config.split_seed}".encode())
            self._data_key_cache = digest.hexdigest()[:16]
        return self._data_key_cache

    def step_key(self, step: Step) -> str:
        """The key of ``step``'s result: the data, the settings of this step and every step before
        it, and the operators (the vocabulary its models and candidates are written in)."""
        index = STEP_NAMES.index(step.name)
        settings = tuple(s for earlier in STEPS[: index + 1] for s in earlier.settings)
        language = hashlib.sha256(" ".join(OPERATORS).encode()).hexdigest()[:8]
        return f"{self._data_key()}:{self.config.key(*settings)}:{language}"

    def done(self, step: Step) -> bool:
        return (getattr(self.report.steps, step.name) is not None
                and self.report.step_keys.get(step.name) == self.step_key(step)
                and all((self.out / artefact).exists() for artefact in step.artefacts))

    def record(self, step: Step, report: object) -> None:
        """Keep ``step``'s report, and its key when the step is complete (an incomplete step runs
        again next time); the reports of the steps after it are stale."""
        setattr(self.report.steps, step.name, report)
        if step.complete(report):
            self.report.step_keys[step.name] = self.step_key(step)
        else:
            self.report.step_keys.pop(step.name, None)
            logger.warning("the %s step is incomplete: the next run with this directory runs it again", step.name)
        for later in STEP_NAMES[STEP_NAMES.index(step.name) + 1:]:
            setattr(self.report.steps, later, None)
            self.report.step_keys.pop(later, None)
        # The output chosen from the steps as they were is stale too: a run that stops before the
        # choice (--stop-after) must not present the old one as its own.
        if self.report.result is not None:
            self.report.result = None
            stale = self.out / "transformation.json"
            if stale.exists():
                stale.unlink()
                logger.warning("the %s step ran again: the transformation chosen before it was removed "
                               "(run to the last step to choose one again)", step.name)
        self.save_report()

    def save_report(self) -> None:
        self.report.save(self.report_path)

    # -- candidates ------------------------------------------------------------------

    def write_candidates(self, step: Step, candidates: list[Candidate]) -> None:
        """Replace ``step``'s candidates in its file, keeping the other steps' (atomically)."""
        path = self.out / step.candidates_file
        kept = [c for c in self.read_candidates(step.candidates_file) if c.mode not in step.modes]
        write_jsonl(path, kept + list(candidates))

    def read_candidates(self, name: str = "candidates.jsonl") -> list[Candidate]:
        """The usable candidates of the run file ``name`` (none if it is missing): a line that
        cannot be read, a score that is not a finite number or a valid candidate that is no
        transformation of this table's columns is skipped with a warning
        (:func:`featteam.candidates.read_candidates`), not left to fail a later step."""
        path = self.out / name
        if not path.exists():
            return []
        self._ensure_read()
        return read_candidates(path, self._n_features)

    # -- the run ---------------------------------------------------------------------

    def _evaluator(self, engine: Engine | None) -> Evaluator:
        """The table read, and its evaluator under this run's protocol and settings."""
        dataset = load_dataset(self.data_path, self.target, task=self.task, nan=self.nan,
                               drop_redundant=self.drop_redundant)
        return Evaluator(dataset, protocol=self.config.protocol, model=self.config.downstream_model,
                         engine=engine, split_seed=self.config.split_seed,
                         n_jobs=self.n_jobs, max_length=self.config.max_length,
                         max_features=self.config.max_features,
                         max_feature_length=self.config.max_feature_length,
                         max_search_rows=self.config.max_search_rows, search_trees=self.config.search_trees,
                         validation_size=self.config.validation_size, max_tree_rows=self.config.max_tree_rows)

    def _read_with(self, evaluator: Evaluator) -> None:
        """Key this run's data by the reading of its columns that ``evaluator`` made."""
        self._reading = json.dumps(evaluator.dataset.preprocessor.to_dict(), sort_keys=True)
        self._n_features = evaluator.dataset.X.shape[1]
        self._data_key_cache = None

    def _ensure_read(self) -> None:
        """Read the table if this run has not yet (asked whether a step is done, or for its
        candidates, before :meth:`load`)."""
        if self._reading is None:
            self._read_with(self._evaluator(None))

    def load(self, engine: Engine | None = None) -> tuple[Dataset, Evaluator]:
        evaluator = self._evaluator(engine)
        self._read_with(evaluator)
        # Scores depend on the data and on how they are computed, not on the search settings.
        scoring = self.config.key("protocol", "downstream_model", "max_length", "max_features",
                                  "max_feature_length", "max_search_rows", "search_trees", "validation_size",
                                  "max_tree_rows")
        # ... and on the libraries that compute them (a resume after an upgrade scores afresh, as a
        # Dask worker with other versions is refused).
        libraries = hashlib.sha256(json.dumps(library_versions(), sort_keys=True).encode()).hexdigest()[:8]
        evaluator.persist(self.out / f"scores-{self._data_key()}-{scoring}-{libraries}.jsonl")
        return evaluator.dataset, evaluator  # as the protocol reads it (honest: its columns read on the training split)

    def execute(self, stop_after: str = STEP_NAMES[-1]) -> RunReport:
        """Run the steps up to ``stop_after`` (and, after the last, choose the output); returns the report."""
        if stop_after not in STEP_NAMES:
            raise FeatteamError(f"--stop-after must be one of {', '.join(STEP_NAMES)}")
        start = time.perf_counter()
        engine = make_engine(self.n_jobs, self.scheduler)
        try:
            return self._execute(stop_after, start, engine)
        finally:
            engine.close()

    def _execute(self, stop_after: str, start: float, engine: Engine) -> RunReport:
        dataset, evaluator = self.load(engine)  # a bad table fails before the run directory is made
        self.out.mkdir(parents=True, exist_ok=True)
        report = self.report
        report.data = DataSummary(path=str(self.data_path), name=dataset.name, rows=dataset.n_rows,
                                  features=dataset.X.shape[1], task=dataset.task, target=self.target,
                                  notes=list(dataset.notes))
        # No credentials in a file: the endpoint is recorded without its user, password or key.
        report.config = dataclasses.replace(self.config, base_url=redact_url(self.config.base_url))
        report.n_jobs, report.versions = self.n_jobs, versions()
        report.engine = engine.describe()
        report.protocol, report.metric = self.config.protocol, evaluator.metric_name
        # Always from this run's evaluator (cached in the score log): a resumed run whose scoring
        # settings changed must not keep the old one.
        report.original_search_score = evaluator.score_original()
        pool = self.screen(evaluator)
        context = RunContext(config=self.config, out=self.out, dataset=dataset, evaluator=evaluator,
                             progress=self.progress, api_key=self._api_key, pool=pool,
                             response_cache=self.response_cache)
        for step in STEPS[: STEP_NAMES.index(stop_after) + 1]:
            if self.done(step):
                logger.info("%s step already done", step.name)
            else:
                # The step rewrites its artefacts (model folders) in place: until it is recorded
                # again, no key may say that what is on disk is its result (a run killed in the
                # middle would otherwise leave half-written weights that a later run trusts).
                if self.report.step_keys.pop(step.name, None) is not None:
                    self.save_report()
                with torch_threads(self.config.torch_threads):
                    result = step.run(context)
                self.write_candidates(step, result.candidates)
                self.record(step, result.report)
            if step.candidates_file == "golden.jsonl":
                context = dataclasses.replace(context, golden=tuple(self.read_candidates("golden.jsonl")))
        if stop_after == STEP_NAMES[-1]:
            report.result = select(list(context.golden) + self.read_candidates(), dataset, evaluator,
                                   self.config.protocol, self.out, report.original_search_score,
                                   max_selected_features=self.config.max_selected_features, pool=pool,
                                   choice_margin=self.config.choice_margin,
                                   refine_budget=self.config.refine_candidates)
        report.step_seconds = {name: getattr(report.steps, name).seconds for name in STEP_NAMES
                               if getattr(report.steps, name) is not None}
        report.safety_stops = self.safety_stops()
        report.reproducible = not report.safety_stops
        report.seconds = round(time.perf_counter() - start, 2)
        self.save_report()
        return report

    def screen(self, evaluator: Evaluator) -> tuple[tuple[str, ...], ...]:
        """With ``config.screen``: give the evaluator its feature screen and return the best
        single features of the screen's own search (for exploration and the feature bank); the
        report's ``screen`` says what it looked at.  Deterministic and cheap: run again on resume."""
        if not self.config.screen:
            return ()
        from .expr import render_feature
        from .screen import FeatureScreen

        start = time.perf_counter()
        screen = evaluator.screen = FeatureScreen(evaluator, random_state=self.config.seed, n_jobs=evaluator.n_jobs,
                                                   engine=evaluator.engine)
        found = screen.search(self.config.max_feature_length, top=self.config.screen_pool)
        columns = list(evaluator.dataset.X.columns)
        self.report.screen = ScreenSummary(
            rows=len(screen.rows), order1=screen.searched[0], order2=screen.searched[1], pool=len(found),
            best_gain=round(found[0].gain, 6) if found else None,
            best_formulas=[render_feature(list(s.tokens), columns) for s in found[:5]],
            seconds=round(time.perf_counter() - start, 2))
        return tuple(s.tokens for s in found)

    def safety_stops(self) -> list[str]:
        """The trainings a wall-clock safety stop ended (budgets are epochs and steps: a run with
        none is reproducible), and a teacher that failed (a timeout, an outage) where the golden
        set went on with exploration: the golden set then depends on the endpoint's behaviour."""
        from .teacher import TEACHER_FAILED

        steps, stops = self.report.steps, []
        teacher = steps.golden.teacher if steps.golden is not None else None
        if teacher is not None and teacher.stopped_because.startswith(TEACHER_FAILED):
            stops.append(f"the teacher failed and the golden set went on with exploration "
                         f"({teacher.stopped_because[:200]})")
        if steps.latent is not None and steps.latent.training.time_limited:
            stops.append("a wall-clock safety stop ended the latent model's training after "
                         f"{steps.latent.training.epochs} epochs "
                         f"(latent_max_seconds={self.config.latent_max_seconds:g})")
        if steps.student is not None and steps.student.finetune.time_limited:
            stops.append("a wall-clock safety stop ended the student's fine-tuning after "
                         f"{steps.student.finetune.steps} steps "
                         f"(student_max_seconds={self.config.student_max_seconds:g})")
        return stops
