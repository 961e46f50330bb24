"""One benchmark configuration (dataset x method group x seed x protocol), run in its own process.

``python -m featteam.bench.worker SPEC.json RESULT.json``: reads the configuration, runs it, and
writes a list of result rows.  A configuration that fails writes rows with ``status`` "error" and
the message; one that runs out of time is killed by the runner, which writes "timeout" rows.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..candidates import Mode, mode_of_source
from ..versions import package_version
from .methods import FEATTEAM_MODES, GROUP_METHODS

if TYPE_CHECKING:
    from ..report import RunReport

logger = logging.getLogger(__name__)


def peak_memory_mb() -> float:
    """Peak resident memory of this process and its waited-for children, in MiB (Linux: KiB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024.0, 1)


def _evaluator(spec: dict[str, Any]):
    from ..config import FitConfig
    from ..data import load_dataset
    from ..evaluation import Evaluator

    dataset = load_dataset(spec["data"], spec["target"])
    # The peers' reported scores use the same downstream forest as featteam's.
    max_tree_rows = FitConfig.from_preset(spec["preset"], **_settings(spec)).max_tree_rows
    evaluator = Evaluator(dataset, protocol=spec["protocol"], n_jobs=spec["n_jobs"],
                          max_search_rows=spec.get("max_search_rows"), max_tree_rows=max_tree_rows,
                          split_seed=spec.get("split_seed", 0))
    return evaluator.dataset, evaluator


def _settings(spec: dict[str, Any]) -> dict[str, Any]:
    """The FitConfig overrides of a bench configuration (JSON lists back to tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in spec.get("settings", {}).items()}


def run_original(spec: dict[str, Any]) -> list[dict[str, Any]]:
    _, evaluator = _evaluator(spec)
    score = evaluator.final_score(None)
    return [{"method": "original", "score": score, "original_score": score, "n_new_features": 0}]


def run_peer(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Learn a peer's columns (in the peers' interpreter) and save them for scoring.

    The runner scores them in featteam's own interpreter (``score_generated``): the peers need
    numpy < 2, and the downstream model's results differ slightly between numpy versions, so
    every score of a benchmark comes from one environment."""
    import numpy as np

    from ..evaluation import usable_values
    from .peers import PEERS

    name = spec["group"]
    dataset, evaluator = _evaluator(spec)
    X_fit, y_fit, X_apply = evaluator.generation_inputs()
    new_fit, new_apply, formulas, note = PEERS[name](X_fit, y_fit, X_apply, dataset.task, spec["seed"],
                                                     spec["n_jobs"])
    path = Path(spec["run_dir"]) / "generated.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, fit=new_fit, apply=new_apply)
    # Columns with values the downstream model cannot take are counted as invalid (then imputed).
    invalid = int((~usable_values(new_fit)).any(axis=0).sum())
    n_new = int(new_fit.shape[1])
    return [{"method": name, "generated": str(path), "n_new_features": n_new, "n_proposed": n_new,
             "n_valid": n_new - invalid, "errors": {"non_finite": invalid} if invalid else {},
             "formulas": "; ".join(map(str, formulas))[:2000], "message": note,
             "versions": {name: package_version(name)}}]


def score_generated(spec: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """Score a peer's saved columns beside the original ones, as featteam's are scored."""
    import numpy as np

    _, evaluator = _evaluator(spec)
    with np.load(row["generated"]) as saved:
        new_fit, new_apply = saved["fit"], saved["apply"]
    score, error = evaluator.final_generated(lambda X_fit, y_fit, X_apply: (new_fit, new_apply))
    return {**row, "score": score, "original_score": evaluator.final_score(None), "gain_se": error}


def _validity(report: "RunReport", mode: str) -> dict[str, Any]:
    """How many of a mode's proposals were valid, unmasked (the teacher: its raw answers)."""
    steps = report.steps
    if mode == Mode.TEACHER:
        teacher = [info for source, info in (steps.golden.by_source.items() if steps.golden else ())
                   if mode_of_source(source) == Mode.TEACHER]
        errors: dict[str, int] = {}
        for info in teacher:
            for kind, count in info.errors.items():
                errors[kind] = errors.get(kind, 0) + count
        return {"n_proposed": sum(i.proposed for i in teacher), "n_valid": sum(i.valid for i in teacher),
                "errors": errors}
    entry = {Mode.ML: steps.latent and steps.latent.unmasked,
             Mode.TEAMING: steps.teaming and steps.teaming.unmasked,
             Mode.STUDENT: steps.student and steps.student.unmasked_after_finetuning}.get(Mode(mode))
    if not entry:
        return {}
    return {"n_proposed": entry.n, "n_valid": entry.valid, "errors": entry.errors}


def run_featteam(spec: dict[str, Any]) -> list[dict[str, Any]]:
    from ..config import FitConfig
    from ..llm.cache import CACHE_FILE
    from ..pipeline import Run

    config = FitConfig.from_preset(spec["preset"], **{**_settings(spec), "protocol": spec["protocol"], "seed": spec["seed"],
                                                      "max_search_rows": spec.get("max_search_rows") or 0})
    # The configuration's own response cache: its fit time is a first fit's, whatever this machine
    # ran before (the shared cache made it depend on that), and a resumed configuration reuses it.
    run = Run(spec["run_dir"], spec["data"], spec["target"], config, n_jobs=spec["n_jobs"], progress=False,
              response_cache=Path(spec["run_dir"]) / CACHE_FILE, scheduler=spec.get("scheduler"))
    report = run.execute()
    result = report.result
    rows = []
    chosen = {"method": "featteam", "score": result.score, "original_score": result.original_score,
              "n_new_features": len(result.formulas), "formulas": "; ".join(result.formulas),
              "chosen_mode": result.mode, "gain_se": result.gain_standard_error}
    rows.append(chosen)
    for mode in FEATTEAM_MODES:
        best = result.per_mode.get(mode)
        row = {"method": mode, "original_score": result.original_score, **_validity(report, mode)}
        if best is None:
            row.update(status="no_candidate", score=None)
        else:
            row.update(score=best.final_score, n_new_features=len(best.formulas), formulas=", ".join(best.formulas))
        rows.append(row)
    for row in rows:
        row["versions"] = report.versions
        row["n_candidates"] = result.n_candidates
        row["scored_on_test_split"] = result.scored_on_test_split
    return rows


RUNNERS = {"original": run_original, "featteam": run_featteam, "openfe": run_peer, "autofeat": run_peer}


def run_spec(spec: dict[str, Any]) -> list[dict[str, Any]]:
    start = time.perf_counter()
    try:
        rows = RUNNERS[spec["group"]](spec)
        status, message = "ok", ""
    except (Exception, SystemExit) as exc:  # recorded, not raised: one failing configuration must not stop
        # a benchmark (a peer may even call exit())
        logger.error("%s failed: %s", spec["group"], exc)
        rows = [{"method": m} for m in GROUP_METHODS[spec["group"]]]
        status, message = "error", f"{type(exc).__name__}: {exc}"
        if isinstance(exc, SystemExit):
            message = "the method called exit(); what it printed before is in the configuration's log"
        logger.debug(traceback.format_exc())
    seconds = round(time.perf_counter() - start, 2)
    peak = peak_memory_mb()
    for row in rows:
        row.setdefault("status", status)
        row.setdefault("message", message)
        row.update(fit_seconds=seconds, peak_memory_mb=peak)
    return rows


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    spec = json.loads(Path(argv[0]).read_text())
    rows = run_spec(spec)
    Path(argv[1]).write_text(json.dumps(rows, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
