"""Step 4 of the method: the LLM-ML teaming decoder, and the choice of the output.

At each decoding step the ML decoder's next-token distribution (conditioned on
a searched embedding) and the student's (conditioned on its prompt and the
prefix) are combined over the shared expression vocabulary by
:class:`~featteam.decoding.MixtureSource` - ``lambda * p_ML + (1 - lambda) * p_student``
by default, the log-linear product as an option - and decoded by the shared
batched beam search, grammar-masked by default.  ``ml`` is lambda = 1; the
``student`` mode samples the student alone (with lambda = 0 a beam search would
give every searched point the same beams, since the student does not see z).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from .decoding import MixtureSource, beam_search
from .evaluation import Evaluator
from .steps_latent import decoded_records, error_summary, score_summary

logger = logging.getLogger(__name__)

#: The modes of the ablation, in the order reports show them.
MODES: tuple[str, ...] = ("teacher", "explore", "ml", "student", "teaming")


def teaming_records(latent, student, points: list[dict[str, Any]], evaluator: Evaluator, lam: float, rule: str,
                    beam: int, masked: bool, columns: list[str]) -> list[dict[str, Any]]:
    """Decode the searched points with the mixture of the two models; check and score."""
    from .latent import LatentDecoderSource

    z = np.stack([p["z"] for p in points])
    source = MixtureSource([LatentDecoderSource(latent, z, [p["seed"] for p in points]), student.source()],
                           [lam, 1.0 - lam], rule=rule)
    beams = beam_search(source, len(points), evaluator.grammar(), beam=beam, masked=masked)
    records = decoded_records("teaming", points, beams, evaluator, masked, columns, score_unmasked=False)
    for r in records:
        r.update(teaming_lambda=lam, teaming_rule=rule)
    return records


def run_teaming_step(run, evaluator: Evaluator, golden: list) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from .expr import canonical_key
    from .latent import LatentModel
    from .student import Student

    config = run.config
    start = time.perf_counter()
    valid = [e for e in golden if e.valid]
    latent = LatentModel.load(run.out / "latent")
    student = Student.load(run.out / "student")
    seeds = sorted(valid, key=lambda e: -e.score)[: config.search_top_k]
    points = latent.search([e.tokens for e in seeds], step_sizes=config.step_sizes)
    columns = list(evaluator.dataset.X.columns)
    golden_keys = {canonical_key(e.tokens) for e in valid}
    records: list[dict[str, Any]] = []
    entry: dict[str, Any] = {"lambda": config.teaming_lambda, "rule": config.teaming_rule, "points": len(points)}
    for masked in (True, False):
        part = teaming_records(latent, student, points, evaluator, config.teaming_lambda, config.teaming_rule,
                               config.beam, masked, columns)
        records += part
        entry["masked" if masked else "unmasked"] = {**error_summary(part), **score_summary(part, golden_keys)}
    entry["seconds"] = round(time.perf_counter() - start, 2)
    return entry, records
