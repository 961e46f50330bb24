"""Measure the teaming weight lambda on a finished run: unmasked error rate and masked scores.

Usage: python benchmarks/teaming_lambda.py RUN_DIR DATA TARGET [lambda ...]
(FEATTEAM_LAMBDA_RULES=linear limits the rules measured.)
The run directory must hold steps 1-3 (``featteam fit ... --stop-after student``).
"""

from __future__ import annotations

import json
import os
import sys
import time

from featteam.latent import LatentModel
from featteam.pipeline import Run
from featteam.steps_latent import error_summary, score_summary
from featteam.student import Student
from featteam.teacher import load_golden
from featteam.teaming import teaming_records


def main(argv: list[str]) -> None:
    run_dir, data, target = argv[:3]
    lambdas = [float(x) for x in argv[3:]] or [0.0, 0.25, 0.5, 0.75, 1.0]
    rules = tuple(os.environ.get("FEATTEAM_LAMBDA_RULES", "linear,product").split(","))
    report = json.loads(open(f"{run_dir}/report.json").read())
    from featteam.pipeline import FitConfig

    config = FitConfig(**{k: v for k, v in report["config"].items() if k != "extra"})
    run = Run(run_dir, data, target, config, n_jobs=-1, progress=False)
    _, evaluator = run.load()
    golden = [e for e in load_golden(f"{run_dir}/golden.jsonl") if e.valid]
    latent, student = LatentModel.load(f"{run_dir}/latent"), Student.load(f"{run_dir}/student")
    seeds = sorted(golden, key=lambda e: -e.score)[: config.search_top_k]
    points = latent.search([e.tokens for e in seeds], step_sizes=config.step_sizes)
    columns = list(evaluator.dataset.X.columns)
    rows = []
    for lam in lambdas:
        for rule in rules if 0 < lam < 1 else ("linear",):
            start = time.perf_counter()
            unmasked = teaming_records(latent, student, points, evaluator, lam, rule, config.beam, False, columns)
            masked = teaming_records(latent, student, points, evaluator, lam, rule, config.beam, True, columns)
            rows.append({"lambda": lam, "rule": rule, "unmasked": error_summary(unmasked),
                         "masked": {**error_summary(masked), **score_summary(masked)},
                         "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
