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

from featteam.candidates import summarise, top_k
from featteam.models.latent import LatentModel
from featteam.models.student import Student
from featteam.pipeline import Run
from featteam.records import to_json_value
from featteam.report import RunReport
from featteam.steps.teaming import teaming_candidates


def main(argv: list[str]) -> None:
    run_dir, data, target = argv[:3]
    lambdas = [float(x) for x in argv[3:]] or [0.0, 0.25, 0.5, 0.75, 1.0]
    rules = tuple(os.environ.get("FEATTEAM_LAMBDA_RULES", "linear,product").split(","))
    config = RunReport.load(f"{run_dir}/report.json").config
    if config is None:
        raise SystemExit(f"{run_dir}/report.json holds no configuration of this featteam version")
    run = Run(run_dir, data, target, config, n_jobs=-1, progress=False)
    _, evaluator = run.load()
    golden = [c for c in run.read_candidates("golden.jsonl") if c.scored]
    latent, student = LatentModel.load(f"{run_dir}/latent"), Student.load(f"{run_dir}/student")
    points = latent.search([e.tokens for e in top_k(golden, config.search_top_k)], step_sizes=config.step_sizes)
    columns = list(evaluator.dataset.X.columns)
    for lam in lambdas:
        for rule in rules if 0 < lam < 1 else ("linear",):
            start = time.perf_counter()
            unmasked = teaming_candidates(latent, student, points, evaluator, lam, rule, config.beam, False, columns)
            masked = teaming_candidates(latent, student, points, evaluator, lam, rule, config.beam, True, columns)
            row = {"lambda": lam, "rule": rule, "unmasked": summarise(unmasked), "masked": summarise(masked),
                   "seconds": round(time.perf_counter() - start, 1)}
            print(json.dumps(to_json_value(row)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
