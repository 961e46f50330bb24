"""Every finalist of finished honest runs, on the choice rows and on the test split: an analysis
of the choice, not part of a fit.

For each run directory given (a finished ``featteam fit`` or bench configuration under the
honest protocol), the run is resumed - every step is already done, so nothing is searched
again - and every finalist the choice could take (each mode's best, ``best:k``, ``bank:k``,
``forest:k``) is scored the way the choice scores its best three: out-of-fold on the validation
rows, paired with the original features, with a bootstrap standard error.  Then each is also
scored on the test split, which a fit never does for a finalist it did not choose.  That is what
this script is for: to see whether the choice rows' gains say anything about the test split's,
and how a choice rule would have done.  Because it reads the test split for every finalist, a
rule picked from its output is fitted to these tables; check it on other seeds or tables.

    python benchmarks/choice_lab.py RUN_DIR [RUN_DIR ...] --out lab.jsonl

Run it on a copy of the run directories: resuming appends to their score logs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from finished_runs import gain_on_test_split, replay_into, resumed


def finalists(run_dir: Path) -> list[dict]:
    from featteam.selection import compare_on_choice_rows

    with resumed(run_dir, "honest") as finished:
        dataset, evaluator = finished.dataset, finished.evaluator
        options, _ = finished.finalists()
        compared = set(compare_on_choice_rows(options, range(len(options)), evaluator))
        original_test = evaluator.final_score(None)
        rows = []
        for i, option in enumerate(options):
            row = {"run": run_dir.name, "dataset": dataset.name, "label": option.label,
                   "n_features": len(option.features), "search": option.scores[0],
                   "search_gain": option.scores[0] - options[0].scores[0],
                   "choice_rows": len(evaluator.choice_rows)}
            if i in compared:
                row["gain"], row["se"] = option.gain, option.standard_error
                row["test_gain"] = gain_on_test_split(evaluator, option.tokens, original_test)
            else:
                row["error"] = "its columns cannot be computed on a fold of the choice rows"
            rows.append(row)
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for run_dir, rows in replay_into(args.out, args.runs, finalists):
        print(run_dir.name, len(rows), "finalists", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
