"""Step 1: the golden set - the teacher LLM's transformations, then exploration, all scored."""

from __future__ import annotations

import logging
from pathlib import Path

from ..candidates import Mode
from ..config import FitConfig
from ..llm.base import LLMBackend
from ..report import GoldenReport
from .base import RunContext, Step, StepResult

logger = logging.getLogger(__name__)


def make_teacher(config: FitConfig, api_key: str | None = None,
                 response_cache: Path | None = None) -> LLMBackend | None:
    """The teacher's backend for ``config`` (None for ``teacher="none"``); the response cache
    (``response_cache``, by default the shared ``cache_dir()/llm_responses.sqlite``) is opened
    only when there is a teacher to cache."""
    if config.teacher == "none":
        return None
    from ..llm.base import Usage
    from ..llm.cache import CACHE_FILE, ResponseCache
    from ..settings import cache_dir

    usage = Usage(max_calls=config.max_calls, max_tokens=config.max_tokens)
    cache = ResponseCache(response_cache if response_cache is not None else cache_dir() / CACHE_FILE)
    if config.teacher == "local":
        from ..llm.local import LocalLM
        return LocalLM(config.teacher_model, temperature=config.temperature, batch_size=config.answers_per_call,
                       cache=cache, usage=usage)
    from ..llm.openai_backend import OpenAIChat
    return OpenAIChat(model=config.teacher_model, base_url=config.base_url, api_key=api_key,
                      temperature=config.temperature, timeout=config.teacher_timeout,
                      max_retries=config.teacher_retries, cache=cache, usage=usage)


class GoldenStep(Step):
    """The teacher's share first (later rounds see the best examples so far), exploration for
    the rest; every candidate scored and deduplicated (``golden.jsonl``).

    A teacher that fails for good fails the step (a FeatteamError that says where), unless
    ``teacher_fallback="explore"``: then the step returns exploration's golden set and
    :meth:`complete` says False for its report, so the run does not keep it as done (the
    next run asks the teacher again).  ``teacher_timeout``, ``teacher_retries`` and
    ``teacher_fallback`` are not in ``settings``: they decide how long a failure takes and
    what it does, not what a completed step computes.
    """

    name = "golden"
    settings = ("protocol", "teacher", "teacher_model", "base_url", "n_golden", "teacher_share", "answers_per_call",
                "max_teacher_rounds", "max_calls", "max_tokens", "anonymous", "temperature", "downstream_model",
                "max_search_rows", "search_trees", "validation_size", "max_tree_rows", "max_length", "max_features",
                "max_feature_length", "seed", "screen", "screen_pool")
    artefacts = ("golden.jsonl",)
    modes = (Mode.TEACHER, Mode.EXPLORE)
    candidates_file = "golden.jsonl"

    def run(self, context: RunContext) -> StepResult:
        from ..teacher import GoldenSetBuilder

        config = context.config
        teacher = make_teacher(config, context.api_key, context.response_cache)
        builder = GoldenSetBuilder(context.evaluator, teacher, n_golden=config.n_golden,
                                   teacher_share=config.teacher_share, answers_per_call=config.answers_per_call,
                                   max_teacher_rounds=config.max_teacher_rounds, anonymous=config.anonymous,
                                   random_state=config.seed, progress=context.progress,
                                   teacher_fallback=config.teacher_fallback, pool=context.pool)
        examples = builder.build()
        return StepResult(builder.report(), examples)

    def complete(self, report: GoldenReport) -> bool:
        """False when the teacher failed and ``teacher_fallback="explore"`` went on with
        exploration: the run records the report but does not count the step as done, so the
        next run asks the teacher again.  A spent budget is a complete stop."""
        from ..teacher import TEACHER_FAILED

        return not (report.teacher is not None and report.teacher.stopped_because.startswith(TEACHER_FAILED))
