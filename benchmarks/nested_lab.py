"""The screen's own procedure judged on every training row by nested cross-validation, replayed
on finished honest runs: an analysis of the choice, not part of a fit.

On a small table the choice sees 43-199 validation rows, too few to tell a gain of 0.02 from
noise (BENCHMARKS.md).  This script asks whether every training row can: it judges a
*procedure* rather than one transformation, so that no row judges features that were picked on
it.  The procedure is the cheap part of a fit, without the LLMs and the latent model: the
feature screen's search on the given rows, the feature bank built from the screen's best, the
bank in the order of a forest's importances, and the prefix (2, 4, 8, 12, ... features) with the
best cross-validation score on those rows - or nothing, where none beats the original features.

For each run, the training split is cut into ``n_splits`` folds.  For each fold the procedure
runs on the other folds alone, and the reported model (the downstream forest), fitted there
with and without its features, predicts the fold.  The paired gain over every training row and
its bootstrap standard error are the nested estimate.  The procedure is then run once on every
training row, and its features are scored on the test split, beside the fit's own chosen
transformation (from its report).

    python benchmarks/nested_lab.py RUN_DIR [RUN_DIR ...] --out lab.jsonl

Run it on a copy of the run directories: resuming appends to their score logs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from finished_runs import gain_on_test_split, replay_into, resumed


def on_rows(evaluator: Any, rows: np.ndarray) -> Any:
    """A copy of ``evaluator`` whose search rows (and folds) are ``rows``; everything else shared.
    (Not ``copy.copy``: an evaluator's pickled state is what a worker needs, not all of it.)"""
    proxy = object.__new__(type(evaluator))
    proxy.__dict__.update(evaluator.__dict__)
    proxy.search_rows = np.asarray(rows)
    proxy.folds = proxy._make_folds(proxy.search_rows)
    proxy.screen = None
    proxy._unlimited_scores = {}  # cv_score's scores were made on the evaluator's own rows
    return proxy


def screen_procedure(evaluator: Any, rows: np.ndarray, config: Any) -> list[str]:
    """The features the cheap procedure picks on ``rows`` alone (postfix tokens; empty: none)."""
    from featteam.expr import InvalidSequence, join_features
    from featteam.screen import FeatureScreen
    from featteam.selection import BANK_BREADTH, feature_bank, prefix_sizes, ranked_by_importance

    proxy = on_rows(evaluator, rows)
    screen = proxy.screen = FeatureScreen(proxy, random_state=config.seed, n_jobs=1)
    pool = [found.tokens for found in screen.search(config.max_feature_length, top=config.screen_pool)]
    bank = feature_bank([], proxy, BANK_BREADTH * config.max_selected_features, pool)
    ordered = (ranked_by_importance(bank, proxy) or bank)[:config.max_selected_features]
    best, best_score = [], proxy._cv_score(None)
    for size in prefix_sizes(len(ordered)):
        tokens = join_features([feature for feature, _ in ordered[:size]])
        try:
            score = proxy.cv_score(tokens)
        except InvalidSequence:
            continue
        if score > best_score:
            best, best_score = tokens, score
    return best


def n_features(tokens: Sequence[str]) -> int:
    from featteam.expr import split_features

    return len(split_features(tokens)) if tokens else 0


def nested_predictions(evaluator: Any, config: Any) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Out-of-fold predictions of every training row with the procedure's features (picked on the
    other folds) and without; and the number of features picked for each fold."""
    train = np.asarray(evaluator.train_rows)
    y = evaluator.y[train]
    with_features = np.empty(len(train), dtype=float if evaluator.task == "regression" else y.dtype)
    original = with_features.copy()
    sizes = []
    for fit, held in evaluator._make_folds(train):
        tokens = screen_procedure(evaluator, train[fit], config)
        sizes.append(n_features(tokens))
        rows = train[np.concatenate([fit, held])]
        fitted = np.arange(len(fit))  # imputation and stateful operators fitted on the fold's fit rows
        for out, chosen in ((original, None), (with_features, tokens or None)):
            X = evaluator._features(chosen, rows, fitted)
            out[held] = evaluator._fit_predict(X[:len(fit)], evaluator.y[rows[:len(fit)]], X[len(fit):])
    return with_features, original, sizes


def replay(run_dir: Path) -> list[dict]:
    from featteam.evaluation import bootstrap_resamples, paired_bootstrap

    with resumed(run_dir, "honest") as finished:
        evaluator, config = finished.evaluator, finished.config
        started = time.perf_counter()
        with_features, original, sizes = nested_predictions(evaluator, config)
        y = evaluator.y[evaluator.train_rows]
        gain, error = paired_bootstrap(y, [with_features], [original], evaluator.metric,
                                       bootstrap_resamples(len(y), evaluator.split_seed))
        everything = screen_procedure(evaluator, np.asarray(evaluator.train_rows), config)
        test_gain = gain_on_test_split(evaluator, everything, evaluator.final_score(None))
        result = json.loads((run_dir / "report.json").read_text())["result"]
        return [{"run": run_dir.name, "dataset": finished.dataset.name, "split_seed": evaluator.split_seed,
                 "training_rows": len(y), "nested_gain": gain, "nested_se": error, "fold_features": sizes,
                 "procedure_features": n_features(everything), "procedure_test_gain": test_gain,
                 "fit_test_gain": result["gain"], "fit_chosen": result["chosen"],
                 "seconds": round(time.perf_counter() - started, 1)}]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for run_dir, [row] in replay_into(args.out, args.runs, replay):
        print(f"{run_dir.name}: nested {row['nested_gain']:+.4f} ± {row['nested_se']:.4f} "
              f"(features per fold {row['fold_features']}); on every training row "
              f"{row['procedure_features']} features, test {row['procedure_test_gain']:+.4f}; the fit "
              f"{row['fit_chosen']} {row['fit_test_gain']:+.4f} ({row['seconds']} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
