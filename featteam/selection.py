"""The choice of the output: the best candidate over every mode, scored under the protocol,
and the deployable transformation fitted on the training split."""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Sequence

from .candidates import MODES, Candidate, median
from .data import Dataset
from .errors import FeatteamError
from .evaluation import Evaluator
from .report import ModeResult, SelectionResult

logger = logging.getLogger(__name__)


def versions() -> dict[str, str]:
    """The versions of Python and of the libraries a result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("featteam", "numpy", "pandas", "scikit-learn", "torch", "transformers", "peft", "openai"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def select(candidates: Sequence[Candidate], dataset: Dataset, evaluator: Evaluator, protocol: str,
           out: Path, original_search_score: float | None = None) -> SelectionResult:
    """Pick the best candidate by search score, report it and each mode's best under the
    protocol, and write ``out/transformation.json`` and ``out/scores_by_mode.png``."""
    from .expr import Transformation, render_feature, split_features
    from .plots import scores_by_mode

    candidates = [c for c in candidates if c.scored]
    if not candidates:
        raise FeatteamError("no valid candidate was found")
    # Highest score first; among equals the shorter, then the earlier: deterministic.
    order = sorted(range(len(candidates)), key=lambda i: (-candidates[i].score, len(candidates[i].tokens), i))
    columns = list(dataset.X.columns)
    original = evaluator.final_score(None)
    per_mode: dict[str, ModeResult] = {}
    for mode in MODES:
        mine = [i for i in order if candidates[i].mode == mode]
        if mine:
            best = candidates[mine[0]]
            per_mode[mode.value] = ModeResult(
                n_candidates=len(mine), best_search_score=best.score,
                median_search_score=median([candidates[i].score for i in mine]),
                formulas=[render_feature(f, columns) for f in split_features(best.tokens)],
                final_score=evaluator.final_score(best.tokens))
    chosen = candidates[order[0]]
    final = evaluator.final_score(chosen.tokens)
    train = dataset.X.iloc[evaluator.train_rows]
    transformation = Transformation(chosen.tokens, columns, metadata={
        "task": dataset.task, "target": dataset.target, "protocol": protocol,
        "metric": evaluator.metric_name, "original_score": original, "score": final,
        "search_score": chosen.score, "mode": chosen.mode.value, "dataset": dataset.name,
        "preprocessor": dataset.preprocessor.to_dict(), "fitted_on": "training split", "versions": versions(),
    }).fit(train)
    transformation.save(out / "transformation.json")
    scores_by_mode({m.value: [c.score for c in candidates if c.mode == m] for m in MODES},
                   out / "scores_by_mode.png", reference=original_search_score,
                   title=f"{dataset.name}: candidate search scores by mode")
    return SelectionResult(original_score=original, score=final, gain=final - original, mode=chosen.mode.value,
                           search_score=chosen.score, formulas=transformation.formulas,
                           postfix=transformation.postfix, per_mode=per_mode, n_candidates=len(candidates))
