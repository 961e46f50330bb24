"""OpenFE's own columns through featteam's choice: would the validation rows have taken them?

An analysis, not part of a fit.  For each finished honest featteam run given (a bench
configuration's run directory), the run is resumed - nothing is searched again - and OpenFE's
columns for the same table, read from the same bench run's ``results.csv``, are translated into
featteam's language where it can write them (arithmetic and the unary operators it shares;
``max``, ``residual``, ``GroupByThen...`` and ``freq`` it cannot).  Then, beside the three
finalists the fit compared on its validation rows, two more transformations are compared there
exactly as the choice compares a finalist (:func:`featteam.selection.compare_on_choice_rows`:
out of fold, paired with the original features, a bootstrap standard error):

- ``ofe_writable(n)``: OpenFE's ``n`` writable columns;
- ``ofe_first``: the first of them.

Each is also scored on the test split, which a fit never does for what it did not choose.  The
question it answers: where featteam keeps the original features and OpenFE's columns gain on the
test split, is the gap one of search (featteam did not find such features) or of evidence (the
rows a fit may use cannot tell them from noise)?

    python benchmarks/peer_columns_lab.py bench_out/RUN COPY_OF_RUN_DIR [COPY ...] --out lab.jsonl

Run it on copies of the run directories: resuming appends to their score logs.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from finished_runs import gain_on_test_split, replay_into, resumed


def peer_formulas(bench_dir: Path, method: str = "openfe") -> dict[str, list[str]]:
    """Each table's formulas of ``method`` in ``bench_dir/results.csv`` (its scored runs only)."""
    with (bench_dir / "results.csv").open() as handle:
        return {row["dataset"]: row["formulas"].split("; ") for row in csv.DictReader(handle)
                if row["method"] == method and row["status"] == "ok" and row["formulas"]}


def writable(formulas: list[str], n_columns: int) -> list[list[str]]:
    """The formulas featteam's language can write, parsed over the names the peers gave the
    table's ``n_columns`` columns (:func:`featteam.bench.peers.peer_column_names`)."""
    from featteam.bench.peers import peer_column_names
    from featteam.expr import InvalidSequence
    from featteam.expr.sequence import parse_infix

    names = peer_column_names(range(n_columns))
    features = []
    for text in formulas:
        try:
            features.append(parse_infix(text, names))
        except InvalidSequence:  # an operator featteam has not (max, residual, ...) or a column the table has not
            pass
    return features


def compared_with_peer(run_dir: Path, formulas: dict[str, list[str]]) -> list[dict]:
    from featteam.expr import join_features
    from featteam.report import RunReport
    from featteam.selection import _Option, compare_on_choice_rows

    with resumed(run_dir, "honest") as finished:
        dataset, evaluator = finished.dataset, finished.evaluator
        options, _ = finished.finalists()
        result = RunReport.load(run_dir / "report.json").result
        compared = {f.label for f in result.finalists if f.gain is not None and f.label != "original"}
        peer = writable(formulas.get(dataset.name, []), dataset.X.shape[1])
        extra = [_Option(f"ofe_writable({len(peer)})", join_features(peer), [0.0], []),
                 _Option("ofe_first", join_features(peer[:1]), [0.0], [])] if peer else []
        lined_up = [options[0]] + [o for o in options if o.label in compared] + extra
        done = compare_on_choice_rows(lined_up, range(len(lined_up)), evaluator)
        original_test = evaluator.final_score(None)
        rows = []
        for i in done[1:]:
            option = lined_up[i]
            rows.append({"run": run_dir.name, "dataset": dataset.name, "label": option.label,
                         "choice_rows": len(evaluator.choice_rows), "gain": option.gain, "se": option.standard_error,
                         "z": option.gain / option.standard_error if option.standard_error else None,
                         "test_gain": gain_on_test_split(evaluator, option.tokens, original_test)})
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path, help="the bench output directory the runs come from (its results.csv)")
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    formulas = peer_formulas(args.bench)
    for run_dir, rows in replay_into(args.out, args.runs, lambda run: compared_with_peer(run, formulas)):
        print(run_dir.name, ", ".join(f"{r['label']} {r['gain']:+.4f} ± {r['se']:.4f} -> {r['test_gain']:+.4f}"
                                      for r in rows), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
