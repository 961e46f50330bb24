"""Step 2: train the encoder-evaluator-decoder on the golden set, search its latent space
along the evaluator's gradient, decode the points with the ML decoder, score."""

from __future__ import annotations

import logging
import time

import numpy as np

from ..candidates import Candidate, Mode, decoded_candidates, summarise, top_k
from ..report import LatentReport, SearchSummary
from .base import RunContext, Step, StepResult

logger = logging.getLogger(__name__)


class LatentStep(Step):
    """The ML decoder's candidates (mode ``ml``), masked and unmasked; the model in ``RUN/latent/``."""

    name = "latent"
    settings = ("search_top_k", "step_sizes", "beam", "latent_epochs", "latent_max_seconds")
    artefacts = ("latent/latent.json",)
    modes = (Mode.ML,)

    def run(self, context: RunContext) -> StepResult:
        from ..decoding import beam_search
        from ..models.latent import LatentConfig, LatentModel

        config, evaluator = context.config, context.evaluator
        start = time.perf_counter()
        valid = context.valid_golden
        grammar = evaluator.grammar()
        model = LatentModel(grammar.vocab, LatentConfig(seed=config.seed, max_epochs=config.latent_epochs,
                                                        max_seconds=config.latent_max_seconds))
        model.fit([e.tokens for e in valid], [e.score for e in valid], progress=context.progress)
        train_seconds = time.perf_counter() - start
        model.save(context.out / "latent")
        seeds = top_k(valid, config.search_top_k)
        points = model.search([e.tokens for e in seeds], step_sizes=config.step_sizes)
        candidates: list[Candidate] = []
        for masked in (True, False):
            beams = beam_search(model.source(points), len(points), grammar, beam=config.beam, masked=masked)
            # Unmasked decodes are only checked: they exist to count the decoder's errors.
            candidates += decoded_candidates(Mode.ML, points, beams, evaluator, masked, context.columns,
                                             score=masked)
        golden = summarise(valid)
        masked_part = [c for c in candidates if c.masked]
        gains = [p.predicted - p.predicted_seed for p in points]
        report = LatentReport(
            training=model.metrics, fit_and_save_seconds=round(train_seconds, 2),
            search=SearchSummary(seeds=len(seeds), points=len(points), step_sizes=list(config.step_sizes),
                                 mean_predicted_gain=float(np.mean(gains)),
                                 share_points_predicted_better=float(np.mean([g > 0 for g in gains]))),
            masked=summarise(masked_part, valid), unmasked=summarise([c for c in candidates if not c.masked], valid),
            golden_best_score=golden.best_score, golden_median_score=golden.median_score,
            best_ml_beats_golden_median=False, seconds=round(time.perf_counter() - start, 2))
        best = report.masked.best_score
        report.best_ml_beats_golden_median = bool(best is not None and best > report.golden_median_score)
        return StepResult(report, candidates)
