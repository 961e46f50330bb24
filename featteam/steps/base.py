"""What every step of the method shares: the run context it reads and the result it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..candidates import Candidate, Mode
from ..config import FitConfig
from ..data import Dataset
from ..evaluation import Evaluator


@dataclass(frozen=True)
class RunContext:
    """Everything a step may read: the configuration, the run directory, the data and its
    evaluator, the golden set (empty before step 1 has run) and whether to show progress."""

    config: FitConfig
    out: Path
    dataset: Dataset
    evaluator: Evaluator
    golden: tuple[Candidate, ...] = ()
    progress: bool = True
    #: the screen's best single features, best first (empty without the screen): exploration draws from them
    pool: tuple[tuple[str, ...], ...] = ()
    #: for the openai teacher; never written anywhere
    api_key: str | None = field(default=None, repr=False)
    #: the teacher's response cache file (None: the shared one in ``cache_dir()``)
    response_cache: Path | None = None

    @property
    def columns(self) -> list[str]:
        return list(self.dataset.X.columns)

    @property
    def valid_golden(self) -> list[Candidate]:
        return [c for c in self.golden if c.scored]


@dataclass
class StepResult:
    """What a step made: its report and its candidates (written to the step's candidates file)."""

    report: Any
    candidates: list[Candidate]


class Step(ABC):
    """One step of the method over a run directory.

    A step's results are kept (and not computed again) while the data, the settings
    of this step and of every step before it, and its artefacts are unchanged.
    """

    #: the step's name (``--stop-after``, ``report.json``)
    name: ClassVar[str]
    #: the FitConfig fields its result depends on (a change re-runs it and the steps after it)
    settings: ClassVar[tuple[str, ...]]
    #: files in the run directory the step's result needs (missing: the step runs again)
    artefacts: ClassVar[tuple[str, ...]] = ()
    #: the modes of the candidates it writes
    modes: ClassVar[tuple[Mode, ...]]
    #: where its candidates go in the run directory
    candidates_file: ClassVar[str] = "candidates.jsonl"

    @abstractmethod
    def run(self, context: RunContext) -> StepResult:
        """Compute the step's candidates and report from the context."""

    def complete(self, report: Any) -> bool:
        """Whether ``report`` is a finished result a later run may keep (False: the run records
        it, but runs the step again next time)."""
        return True
