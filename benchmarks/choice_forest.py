"""The choice of finished honest runs replayed with another forest on the choice rows: an
analysis of the choice, not part of a fit.

The choice (``featteam.selection.choose``) predicts each finalist on the validation rows with the
*search's* forest (50 trees for the ``quick`` preset) fitted on the search rows (at most
``max_search_rows``) and the other validation folds.  The reported score fits the full model
(100 trees) on the whole training split.  This script replays the same rule with the choice's
forest changed in two ways, to measure whether the mismatch misleads the choice:

- ``TREES-search``: ``TREES`` trees (``now``: the run's own setting), fitted as now;
- ``TREES-all``: ``TREES`` trees fitted on every training row outside the validation rows instead
  of the search rows (differs from ``-search`` only where the search rows are a sample: the
  suite's five tables of more than 3,125 rows at the ``quick`` preset).

For each variant it prints the chosen finalist, its gain on the choice rows, the seconds the
choice took, and its gain on the test split (which a fit never reads to choose).

    python benchmarks/choice_forest.py RUN_DIR [RUN_DIR ...] --out lab.jsonl \\
        --variants now-search 100-search 100-all

Run it on copies of the run directories, with the featteam that made them on ``PYTHONPATH``:
resuming appends to their score logs, and a run made by another featteam is refused.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from finished_runs import gain_on_test_split, replay_into, resumed


def _predictions_fitted_on_all_rows(evaluator, tokens, repeat: int) -> np.ndarray:
    """``Evaluator.choice_predictions`` with every training row outside the choice rows as the
    context (instead of the search rows).  A copy of its body, not an option of it: this script
    runs with the featteam that made the runs (``suite35``'s is 013b816), which has no such option."""
    if tokens:
        evaluator.check_columns(tokens)
    choice = evaluator.choice_rows
    context = np.setdiff1d(evaluator.protocol_rows, choice)
    rows, n_context = np.concatenate([context, choice]), len(context)
    folds = [(np.concatenate([np.arange(n_context), n_context + fit]), n_context + held)
             for fit, held in evaluator._make_folds(choice, evaluator.split_seed + repeat)]
    held_out, predicted = zip(*evaluator._out_of_fold(evaluator._fold_features(tokens, rows), rows, folds))
    predictions = np.empty(len(choice), dtype=predicted[0].dtype)
    predictions[np.concatenate(held_out) - n_context] = np.concatenate(predicted)
    return predictions


def replayed(variants: list[str]):
    def replay(run_dir: Path) -> list[dict]:
        from featteam.selection import choose

        with resumed(run_dir, "honest") as finished:
            evaluator = finished.evaluator
            own_predictions, own_trees = evaluator.choice_predictions, evaluator.search_trees
            options, _ = finished.finalists()
            original = evaluator.final_score(None)
            sampled = len(np.setdiff1d(evaluator.protocol_rows, evaluator.choice_rows)) > len(evaluator.search_rows)
            row: dict = {"run": run_dir.name, "dataset": finished.dataset.name, "search_rows_sampled": sampled}
            for variant in variants:
                trees, context = variant.split("-")
                if context == "all" and not sampled:
                    continue  # the same rows as "-search"
                evaluator.search_trees = own_trees if trees == "now" else int(trees)
                evaluator.choice_predictions = own_predictions if context == "search" else (
                    lambda tokens, repeat: _predictions_fitted_on_all_rows(evaluator, tokens, repeat))
                for option in options:
                    option.gain = option.standard_error = None
                    del option.scores[1:]
                started = time.perf_counter()
                chosen = choose(options, evaluator, finished.config.choice_margin)
                seconds = time.perf_counter() - started
                row[variant] = {"chosen": chosen.label, "gain": chosen.gain, "standard_error": chosen.standard_error,
                                "seconds": round(seconds, 1),
                                "test_gain": gain_on_test_split(evaluator, chosen.tokens, original)}
            evaluator.search_trees, evaluator.choice_predictions = own_trees, own_predictions
        return [row]

    return replay


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", nargs="+", default=["now-search", "100-search", "100-all"],
                        help="TREES-CONTEXT: TREES a number or 'now'; CONTEXT 'search' or 'all'")
    args = parser.parse_args(argv)
    for variant in args.variants:
        trees, _, context = variant.partition("-")
        if context not in ("search", "all") or not (trees == "now" or trees.isdigit()):
            parser.error(f"a variant is TREES-CONTEXT (e.g. 100-all), not {variant!r}")
    for run_dir, rows in replay_into(args.out, args.runs, replayed(args.variants)):
        print(run_dir.name, {v: (rows[0][v]["chosen"], round(rows[0][v]["test_gain"], 4))
                             for v in args.variants if v in rows[0]}, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
