"""Finished paper-protocol runs replayed with other caps on the output's size: an analysis of
the choice, not part of a fit.

For each run directory given (a finished ``featteam fit`` or bench configuration under the
paper protocol), the run is resumed - every step is already done, so nothing is searched again -
and the finalists are assembled once for each ``--sizes`` value of ``max_selected_features``
(each mode's best, ``best:k``, and the feature bank of 4 x that many features in the screen's
and the forest's orders, cut at 2, 4, 8, ... features).  The paper protocol's choice is applied
to each set (the best search score) and the chosen finalist's reported score is printed: the
score that cap would have given the run.

    python benchmarks/paper_sizes.py RUN_DIR [RUN_DIR ...] --sizes 12 24 48 --out sizes.jsonl

Run it on a copy of the run directories (resuming appends to their score logs), with the
featteam that made them: a run made by another version is not "done" for this one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def replay(run_dir: Path, sizes: list[int]) -> list[dict]:
    from featteam.engine import make_engine
    from featteam.pipeline import Run
    from featteam.report import RunReport
    from featteam.selection import _options, best_of_each_mode
    from featteam.steps import STEPS

    report = RunReport.load(run_dir / "report.json")
    run = Run(run_dir, report.data.path, report.data.target, report.config, n_jobs=1, progress=False)
    engine = make_engine(1, None)
    dataset, evaluator = run.load(engine)
    if evaluator.protocol != "paper":
        raise SystemExit(f"{run_dir}: not a paper-protocol run")
    for step in STEPS:
        if not run.done(step):
            raise SystemExit(f"{run_dir}: the {step.name} step is not done; this script never runs a step")
    pool = run.screen(evaluator)
    candidates = [c for c in run.read_candidates("golden.jsonl") + run.read_candidates() if c.scored]
    rows = []
    for size in sizes:
        options = _options(candidates, best_of_each_mode(candidates), evaluator, size, pool,
                           list(dataset.X.columns))
        best = min(options, key=lambda o: (-o.scores[0], len(o.features)))  # the paper protocol's choice
        chosen = best if best.scores[0] > options[0].scores[0] else options[0]
        rows.append({"run": run_dir.name, "dataset": dataset.name, "max_selected_features": size,
                     "chosen": chosen.label, "n_features": len(chosen.features),
                     "score": evaluator.final_score(chosen.tokens or None),
                     "finalists": {o.label: round(o.scores[0], 6) for o in options}})
    engine.close()
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--sizes", nargs="+", type=int, default=[12, 24, 48])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    done = set()
    if args.out.exists():
        done = {json.loads(line)["run"] for line in args.out.read_text().splitlines() if line.strip()}
    for run_dir in args.runs:
        if run_dir.name in done:
            continue
        rows = replay(run_dir, args.sizes)
        with args.out.open("a") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
        print(run_dir.name, *(f"{r['max_selected_features']}: {r['chosen']} {r['score']:.4f}" for r in rows),
              sep="  ", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
