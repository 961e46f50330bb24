"""Step 4: the LLM-ML teaming decoder.

At each decoding step the ML decoder's next-token distribution (conditioned on a searched
embedding) and the student's (conditioned on its prompt and the prefix) are combined over the
shared expression vocabulary by :class:`~featteam.decoding.MixtureSource` with the
configuration's rule and weight (by default the log-linear product at lambda 0.3,
:data:`featteam.config.DEFAULT_TEAMING_RULE`), and decoded by the shared batched beam search,
grammar-masked and unmasked.  ``ml`` is lambda = 1; the ``student`` mode samples the student
alone (with lambda = 0 a beam search would give every searched point the same beams, since the
student does not see z).
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

from ..candidates import Candidate, Mode, decoded_candidates, summarise, top_k
from ..config import TeamingRule
from ..evaluation import Evaluator
from ..report import TeamingReport
from .base import RunContext, Step, StepResult

logger = logging.getLogger(__name__)


def teaming_candidates(latent, student, points: Sequence, evaluator: Evaluator, lam: float, rule: TeamingRule,
                       beam: int, masked: bool, columns: list[str]) -> list[Candidate]:
    """Decode the searched points with the two models combined; check (and, masked, score)."""
    from ..decoding import MixtureSource, beam_search

    source = MixtureSource([latent.source(points), student.source()], [lam, 1.0 - lam], rule=rule)
    beams = beam_search(source, len(points), evaluator.grammar(), beam=beam, masked=masked)
    candidates = decoded_candidates(Mode.TEAMING, points, beams, evaluator, masked, columns, score=masked)
    for candidate in candidates:
        candidate.teaming_lambda, candidate.teaming_rule = lam, rule
    return candidates


class TeamingStep(Step):
    """The teaming decoder's candidates (mode ``teaming``), from the models steps 2 and 3 saved."""

    name = "teaming"
    settings = ("teaming_lambda", "teaming_rule")
    artefacts = ()
    modes = (Mode.TEAMING,)

    def run(self, context: RunContext) -> StepResult:
        from ..models.latent import LatentModel
        from ..models.student import Student

        config, evaluator = context.config, context.evaluator
        start = time.perf_counter()
        valid = context.valid_golden
        latent = LatentModel.load(context.out / "latent")
        student = Student.load(context.out / "student")
        seeds = top_k(valid, config.search_top_k)
        points = latent.search([e.tokens for e in seeds], step_sizes=config.step_sizes)
        parts = {masked: teaming_candidates(latent, student, points, evaluator, config.teaming_lambda,
                                            config.teaming_rule, config.beam, masked, context.columns)
                 for masked in (True, False)}
        report = TeamingReport(teaming_lambda=config.teaming_lambda, rule=config.teaming_rule, points=len(points),
                               masked=summarise(parts[True], valid), unmasked=summarise(parts[False], valid),
                               seconds=round(time.perf_counter() - start, 2))
        return StepResult(report, parts[True] + parts[False])
