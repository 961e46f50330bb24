"""Step 3: distil the student LLM from the golden set; sample it before and after, score."""

from __future__ import annotations

import dataclasses
import logging
import time

from ..candidates import Candidate, Mode, check_and_score, summarise
from ..evaluation import Evaluator
from ..llm.local import DEFAULT_MODEL
from ..report import StudentReport
from .base import RunContext, Step, StepResult

logger = logging.getLogger(__name__)


def sampled_candidates(student, grammar, evaluator: Evaluator, n: int, masked: bool, seed: int,
                       columns: list[str], stage: str) -> list[Candidate]:
    """``n`` sequences sampled from the student, checked and (the valid ones) scored."""
    candidates = []
    for row in student.sample(n, grammar, masked=masked, seed=seed):
        tokens = grammar.vocab.decode(row.tokens)
        candidates.append(Candidate(mode=Mode.STUDENT, tokens=tokens, source=Mode.STUDENT.value, stage=stage,
                                    masked=masked, finished=row.finished))
    return check_and_score(candidates, evaluator, columns)


class StudentStep(Step):
    """The student's samples (mode ``student``) before fine-tuning (unmasked) and after (unmasked
    and masked); the adapter and expression-token tables in ``RUN/student/``."""

    name = "student"
    settings = ("student_model", "student_lora", "student_pretraining", "student_epochs", "student_max_steps",
                "student_max_seconds", "student_weighting", "student_samples")
    artefacts = ("student/student.json",)
    modes = (Mode.STUDENT,)

    def run(self, context: RunContext) -> StepResult:
        from ..models.pretrain import PretrainConfig, ensure_pretrained
        from ..models.student import PRETRAINED_FINETUNE_LR, Student, StudentConfig, student_prompt
        from ..plots import loss_curve

        config, evaluator = context.config, context.evaluator
        start = time.perf_counter()
        valid = context.valid_golden
        grammar = evaluator.grammar()
        columns = context.columns
        student_config = StudentConfig(base_model=config.student_model or DEFAULT_MODEL, lora=config.student_lora,
                                       max_epochs=config.student_epochs, max_steps=config.student_max_steps,
                                       max_seconds=config.student_max_seconds, weighting=config.student_weighting,
                                       seed=config.seed)
        pretraining = None
        if config.student_pretraining:
            pretraining = ensure_pretrained(config.student_model, PretrainConfig.for_student(student_config),
                                            progress=context.progress)
            student_config = dataclasses.replace(student_config, lr=PRETRAINED_FINETUNE_LR)
        student = Student(grammar.vocab, student_prompt(evaluator.task, evaluator.dataset.target, len(columns)),
                          student_config)
        if pretraining is not None:
            student.start_from(pretraining.directory)
        n = config.student_samples
        before = sampled_candidates(student, grammar, evaluator, n, False, config.seed, columns, "before")
        student.finetune([e.tokens for e in valid], [e.score for e in valid], progress=context.progress)
        student.save(context.out / "student")
        loss_curve(student.loss_curve, context.out / "student_loss.png")
        after_unmasked = sampled_candidates(student, grammar, evaluator, n, False, config.seed + 1, columns, "after")
        after_masked = sampled_candidates(student, grammar, evaluator, n, True, config.seed + 2, columns, "after")
        golden = summarise(valid)
        report = StudentReport(
            pretraining=pretraining,
            finetune=student.metrics,
            unmasked_before_finetuning=summarise(before, valid),
            unmasked_after_finetuning=summarise(after_unmasked, valid),
            masked_after_finetuning=summarise(after_masked, valid),
            golden_best_score=golden.best_score, golden_median_score=golden.median_score,
            loss_curve_png="student_loss.png", seconds=round(time.perf_counter() - start, 2))
        return StepResult(report, before + after_unmasked + after_masked)
