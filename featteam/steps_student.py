"""Step 3 inside a run: fine-tune the student, sample it before and after, score, report."""

from __future__ import annotations

import logging
import time
from typing import Any

from .evaluation import Evaluator
from .steps_latent import check_and_score, error_summary, score_summary
from .student import UNFINISHED

logger = logging.getLogger(__name__)


def sample_records(student, grammar, evaluator: Evaluator, n: int, masked: bool, seed: int,
                   columns: list[str], label: str) -> list[dict[str, Any]]:
    """Sample ``n`` sequences, check them, score the valid ones."""
    from .expr import to_postfix_text

    records = []
    for tokens in student.sample(n, grammar, masked=masked, seed=seed):
        finished = UNFINISHED not in tokens
        tokens = [t for t in tokens if t != UNFINISHED]
        records.append({"mode": "student", "stage": label, "masked": masked, "tokens": tokens,
                        "sequence": to_postfix_text(tokens) if tokens else None, "finished": finished})
    return check_and_score(records, evaluator, columns)


def run_student_step(run, evaluator: Evaluator, golden: list) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from .expr import canonical_key
    from .plots import loss_curve
    from .student import Student, StudentConfig, student_prompt

    config = run.config
    start = time.perf_counter()
    valid = [e for e in golden if e.valid]
    grammar = evaluator.grammar()
    columns = list(evaluator.dataset.X.columns)
    student = Student(grammar.vocab, student_prompt(evaluator.task, evaluator.dataset.target, len(columns)),
                      StudentConfig(base_model=config.student_model or "smollm2-135m-instruct", lora=config.student_lora,
                                    max_epochs=config.student_epochs, max_seconds=config.student_max_seconds,
                                    weighting=config.student_weighting, seed=config.seed))
    n = config.student_samples
    before = sample_records(student, grammar, evaluator, n, False, config.seed, columns, "before")
    student.finetune([e.tokens for e in valid], [e.score for e in valid], progress=run.progress)
    student.save(run.out / "student")
    loss_curve(student.loss_curve, run.out / "student_loss.png")
    after_unmasked = sample_records(student, grammar, evaluator, n, False, config.seed + 1, columns, "after")
    after_masked = sample_records(student, grammar, evaluator, n, True, config.seed + 2, columns, "after")
    golden_keys = {canonical_key(e.tokens) for e in valid}
    entry = {
        "finetune": student.metrics,
        "unmasked_before_finetuning": {**error_summary(before), **score_summary(before, golden_keys)},
        "unmasked_after_finetuning": {**error_summary(after_unmasked), **score_summary(after_unmasked, golden_keys)},
        "masked_after_finetuning": {**error_summary(after_masked), **score_summary(after_masked, golden_keys)},
        "golden_best_score": max(e.score for e in valid),
        "golden_median_score": float(sorted(e.score for e in valid)[len(valid) // 2]),
        "loss_curve_png": "student_loss.png",
        "seconds": round(time.perf_counter() - start, 2),
    }
    return entry, before + after_unmasked + after_masked
