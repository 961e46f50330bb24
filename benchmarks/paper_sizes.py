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
import sys
from pathlib import Path

from finished_runs import replay_into, resumed


def replay(run_dir: Path, sizes: list[int]) -> list[dict]:
    from featteam.selection import choose

    with resumed(run_dir, "paper") as finished:
        dataset, evaluator = finished.dataset, finished.evaluator
        rows = []
        for size in sizes:
            options, _ = finished.finalists(size)
            chosen = choose(options, evaluator, margin=0.0)  # the paper protocol's: the best search score
            rows.append({"run": run_dir.name, "dataset": dataset.name, "max_selected_features": size,
                         "chosen": chosen.label, "n_features": len(chosen.features),
                         "score": evaluator.final_score(chosen.tokens or None),
                         "finalists": {o.label: round(o.scores[0], 6) for o in options}})
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--sizes", nargs="+", type=int, default=[12, 24, 48])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for run_dir, rows in replay_into(args.out, args.runs, lambda run_dir: replay(run_dir, args.sizes)):
        print(run_dir.name, *(f"{r['max_selected_features']}: {r['chosen']} {r['score']:.4f}" for r in rows),
              sep="  ", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
