"""Step 2 inside a run: train the latent model on the golden set, search, decode, score."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import numpy as np

from .decoding import beam_search
from .evaluation import Evaluator
from .expr import ErrorKind, InvalidSequence, canonical_key, render, to_postfix_text

logger = logging.getLogger(__name__)


def check_and_score(records: list[dict[str, Any]], evaluator: Evaluator, columns: list[str],
                    score: bool = True) -> list[dict[str, Any]]:
    """Fill each candidate record's validity, error class, formula and score.

    A record holds ``tokens`` and ``finished`` (False: no end token within the
    limits).  With ``score`` False the valid ones are only checked (structure, then
    values), not scored: unmasked decodes exist to count errors."""
    to_score = []
    for record in records:
        try:
            if not record.get("finished", True):
                raise InvalidSequence(ErrorKind.TOO_LONG, "no end token within the length limit")
            evaluator.check(record["tokens"])
            record["formula"] = render(record["tokens"], columns)
            if not score:
                evaluator.check_values(record["tokens"])
                record.update(valid=True, error=None, message="", score=None)
            else:
                to_score.append(record)
        except InvalidSequence as exc:
            record.update(valid=False, error=exc.kind.value, message=str(exc), score=None)
    for record, result in zip(to_score, evaluator.score_many([r["tokens"] for r in to_score])):
        record.update(valid=result.valid, error=result.error.value if result.error else None,
                      message=result.message, score=result.score)
    return records


def decoded_records(mode: str, points: list[dict[str, Any]], beams, evaluator: Evaluator, masked: bool,
                    columns: list[str], score_unmasked: bool = True) -> list[dict[str, Any]]:
    """One record per decoded point: the best finished beam, its validity and (if valid) its score."""
    vocab = evaluator.grammar().vocab
    records = []
    for point, point_beams in zip(points, beams):
        best = point_beams[0] if point_beams else None
        tokens = vocab.decode(best.token_ids) if best else []
        records.append({"mode": mode, "masked": masked,
                        "seed": to_postfix_text(point["seed"]) if point.get("seed") else None,
                        "step_size": point.get("step_size"), "predicted": point.get("predicted"),
                        "sequence": to_postfix_text(tokens) if tokens else None, "tokens": tokens,
                        "finished": bool(best and best.finished)})
    return check_and_score(records, evaluator, columns, score=masked or score_unmasked)


def error_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    errors = Counter(r["error"] for r in records if not r["valid"])
    n = len(records)
    return {"n": n, "valid": n - sum(errors.values()), "error_rate": (sum(errors.values()) / n) if n else None,
            "errors": dict(errors)}


def score_summary(records: list[dict[str, Any]], golden_keys: set | None = None) -> dict[str, Any]:
    """Best and median scores of the valid records, and how many are distinct and new."""
    valid = [r for r in records if r["valid"] and r.get("score") is not None]
    scores = [r["score"] for r in valid]
    keys = {canonical_key(r["tokens"]) for r in valid}
    summary = {"best_score": max(scores) if scores else None,
               "median_score": float(np.median(scores)) if scores else None, "n_scored": len(scores),
               "distinct": len(keys)}
    if golden_keys is not None:
        summary["new_vs_golden"] = len(keys - golden_keys)
    return summary


def run_latent_step(run, evaluator: Evaluator, golden: list) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from .latent import LatentConfig, LatentDecoderSource, LatentModel

    config = run.config
    start = time.perf_counter()
    valid = [e for e in golden if e.valid]
    grammar = evaluator.grammar()
    model = LatentModel(grammar.vocab, LatentConfig(seed=config.seed, max_seconds=config.latent_max_seconds))
    model.fit([e.tokens for e in valid], [e.score for e in valid], progress=run.progress)
    train_seconds = time.perf_counter() - start
    model.save(run.out / "latent")
    seeds = sorted(valid, key=lambda e: -e.score)[: config.search_top_k]
    points = model.search([e.tokens for e in seeds], step_sizes=config.step_sizes)
    z = np.stack([p["z"] for p in points])
    columns = list(evaluator.dataset.X.columns)
    records = []
    for masked in (True, False):
        source = LatentDecoderSource(model, z, [p["seed"] for p in points])
        beams = beam_search(source, len(points), grammar, beam=config.beam, masked=masked)
        records += decoded_records("ml", points, beams, evaluator, masked, columns, score_unmasked=False)
    golden_scores = [e.score for e in valid]
    golden_keys = {canonical_key(e.tokens) for e in valid}
    masked_records = [r for r in records if r["masked"]]
    gains = [p["predicted"] - p["predicted_seed"] for p in points]
    entry = {
        **model.metrics, "fit_and_save_seconds": round(train_seconds, 2),
        "search": {"seeds": len(seeds), "points": len(points), "step_sizes": list(config.step_sizes),
                   "mean_predicted_gain": float(np.mean(gains)), "share_points_predicted_better": float(np.mean(
                       [g > 0 for g in gains]))},
        "masked": {**error_summary(masked_records), **score_summary(masked_records, golden_keys)},
        "unmasked": {**error_summary([r for r in records if not r["masked"]]),
                     **score_summary([r for r in records if not r["masked"]], golden_keys)},
        "golden_best_score": max(golden_scores), "golden_median_score": float(np.median(golden_scores)),
        "seconds": round(time.perf_counter() - start, 2),
    }
    best = entry["masked"]["best_score"]
    entry["best_ml_beats_golden_median"] = bool(best is not None and best > entry["golden_median_score"])
    return entry, records
