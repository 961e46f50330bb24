"""The choice of finished honest classification runs replayed with the forest's class
probabilities: an analysis of the choice, not part of a fit.

The choice compares the best three finalists with the original features on the validation rows
by the task's metric (f1_weighted) of the forest's predicted classes.  A class flips only where
a row's vote crosses the threshold, so a paired gain in F1 on a few hundred rows is coarse and
its standard error large.  This script compares the same finalists, predicted by the same trees
on the same folds, by the Brier score of their class probabilities (a proper scoring rule, which
every row's probabilities move), with the same paired bootstrap and the same margin, and scores
the finalist that rule keeps on the test split (which a fit never reads to choose).

    python benchmarks/choice_brier.py RUN_DIR [RUN_DIR ...] --out lab.jsonl

Run it on copies of the run directories: resuming appends to their score logs.  Regression runs
are skipped (their metric is already continuous).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from finished_runs import gain_on_test_split, replay_arguments, replay_into, resumed


def _probabilities(evaluator, tokens, repeat: int, classes: np.ndarray) -> np.ndarray:
    """``Evaluator.choice_predictions`` with the forest's class probabilities instead of its
    classes: the same folds, features and trees (scikit-learn's forest, which ``forest_predict``
    reproduces).  A copy of its body, as a lab script may hold one."""
    from sklearn.ensemble import RandomForestClassifier

    choice = evaluator.choice_rows
    context = evaluator.search_rows if len(evaluator.validation_rows) else evaluator.search_rows[:0]
    rows, n_context = np.concatenate([context, choice]), len(context)
    folds = [(np.concatenate([np.arange(n_context), n_context + fit]), n_context + held)
             for fit, held in evaluator._make_folds(choice, evaluator.split_seed + repeat)]
    features_for = evaluator._fold_features(tokens, rows)
    y = evaluator.y[rows]
    probabilities = np.zeros((len(choice), len(classes)))
    for fit, held in folds:
        X = features_for(fit, held)
        model = RandomForestClassifier(n_estimators=evaluator.search_trees or 100, random_state=0,
                                       max_samples=evaluator.tree_rows(len(fit)))
        model.fit(X[fit], y[fit])
        block = np.zeros((len(held), len(classes)))
        block[:, np.searchsorted(classes, model.classes_)] = model.predict_proba(X[held])
        probabilities[held - n_context] = block
    return probabilities


def replay(run_dir: Path, margin: float) -> list[dict]:
    from featteam.evaluation import bootstrap_resamples, paired_bootstrap
    from featteam.selection import choose

    with resumed(run_dir, "honest") as finished:
        dataset, evaluator = finished.dataset, finished.evaluator
        if evaluator.task != "classification":
            return [{"run": run_dir.name, "dataset": dataset.name, "skipped": "regression"}]
        options, _ = finished.finalists()
        chosen_now = choose(options, evaluator, finished.config.choice_margin)  # sets the compared ones' gains
        compared = [i for i, option in enumerate(options) if option.gain is not None]
        y = evaluator.y[evaluator.choice_rows]
        classes = np.unique(evaluator.y[evaluator.protocol_rows])
        onehot = (y[:, None] == classes[None, :]).astype(float)

        def negative_brier(rows_y: np.ndarray, probabilities: np.ndarray) -> float:
            # rows_y holds row positions (the bootstrap indexes both arrays alike)
            return -float(np.mean(np.sum((probabilities - onehot[rows_y]) ** 2, axis=1)))

        positions = np.arange(len(y))
        probabilities = {i: [_probabilities(evaluator, options[i].tokens, r, classes) for r in (1, 2)]
                         for i in compared}
        agreement = float(np.mean(classes[np.argmax(probabilities[0][0], axis=1)]
                                  == evaluator.choice_predictions(None, 1)))
        resamples = bootstrap_resamples(len(y), evaluator.split_seed)
        original = evaluator.final_score(None)
        contenders = [i for i in compared if i]
        brier = {i: paired_bootstrap(positions, probabilities[i], probabilities[0], negative_brier, resamples)
                 for i in contenders}
        brier[0] = (0.0, 0.0)  # the original features against themselves
        best = min(contenders, key=lambda i: (-brier[i][0], len(options[i].features), i)) if contenders else 0
        keep = best if best and brier[best][0] > margin * brier[best][1] else 0
        rows = []
        for i in compared:
            option = options[i]
            rows.append({"run": run_dir.name, "dataset": dataset.name, "label": option.label,
                         "f1_gain": option.gain, "f1_se": option.standard_error,
                         "brier_gain": brier[i][0], "brier_se": brier[i][1],
                         "test_gain": gain_on_test_split(evaluator, option.tokens, original),
                         "chosen_now": option is chosen_now, "chosen_brier": i == keep,
                         "class_agreement": agreement, "choice_rows": len(y)})
    return rows


def main(argv: list[str]) -> None:
    parser = replay_arguments(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    for run_dir, rows in replay_into(args.out, args.runs, lambda run_dir: replay(run_dir, args.margin)):
        now = next((r for r in rows if r.get("chosen_now")), None)
        brier = next((r for r in rows if r.get("chosen_brier")), None)
        print(run_dir.name, "skipped" if now is None else
              f"now {now['label']} {now['test_gain']:+.4f}  brier {brier['label']} {brier['test_gain']:+.4f}  "
              f"(classes agree {now['class_agreement']:.3f})", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
