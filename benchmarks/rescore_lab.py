"""The finalists ranked by cross-validation repeated on new partitions of the search rows,
replayed on finished honest runs: an analysis of the choice, not part of a fit.

A fit ranks its finalists by their search score - 5-fold cross-validation on one partition of
the search rows - and compares the best three on the validation rows.  On a small table the
best of many candidates on one partition is partly that partition's luck (german_credit at
split 0: the best finalist's search gain is +0.049, its gain on the validation rows -0.001).
This script ranks the finalists by the mean over that partition and ``--partitions`` - 1 new
ones (seeds ``split_seed + 100 + k``: never the choice's own partitions), then applies the
fit's rule unchanged (the best three on the validation rows, ``--margin`` standard errors) and
scores the chosen transformation on the test split.  ``partitions`` 1 is the fit as it ran and
gives back its recorded score.  ``--choice-repeats N`` compares the best three on the validation
rows with N new partitions of them into folds instead of the fit's
:data:`~featteam.evaluation.CHOICE_REPEATS` (2): less of the partitions' luck in each gain, N/2
times the choice's cost (a large table's choice, made once at the deployed model's scale, has no
partitions: ``AT_SCALE_RATIO``).

    python benchmarks/rescore_lab.py RUN_DIR [RUN_DIR ...] --partitions 1 2 3 --out lab.jsonl
    python benchmarks/rescore_lab.py RUN_DIR [RUN_DIR ...] --partitions 1 --choice-repeats 6 --out lab.jsonl
    python benchmarks/rescore_lab.py RUN_DIR [RUN_DIR ...] --partitions 1 --max-features 24 --out lab.jsonl

``--max-features`` replays a run made before a new default cap (``max_selected_features``) with it:
``--partitions 1`` is then what a fit of today's code chooses, where the search did not change.

Run it on a copy of the run directories: resuming appends to their score logs.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np
from finished_runs import gain_on_test_split, remembered, replay_arguments, replay_into, resumed

#: The new partitions' seeds start here (beyond ``split_seed``; the choice's are ``split_seed + 1, 2``).
PARTITION_SEED = 100


def replay(run_dir: Path, partitions: list[int], margin: float, max_features: int | None = None) -> list[dict]:
    from featteam.expr import InvalidSequence
    from featteam.selection import choose

    with resumed(run_dir, "honest") as finished:
        dataset, evaluator = finished.dataset, finished.evaluator
        for name in ("choice_predictions", "final_score"):
            setattr(evaluator, name, remembered(getattr(evaluator, name)))
        original = evaluator.final_score(None)
        finalists, _ = finished.finalists(max_features)
        search_rows = evaluator.search_rows
        extra: list[list[float]] = [[] for _ in finalists]  # each finalist's score on each new partition
        rows = []
        for n_partitions in sorted(partitions):
            started = time.perf_counter()
            for k in range(len(extra[0]), n_partitions - 1):
                folds = evaluator._make_folds(search_rows, evaluator.split_seed + PARTITION_SEED + k)
                for i, option in enumerate(finalists):
                    try:
                        extra[i].append(evaluator._cv_score(option.tokens or None, search_rows, folds))
                    except InvalidSequence:  # a column constant on a fold of this partition
                        extra[i].append(float("-inf"))
            options = copy.deepcopy(finalists)  # the choice writes its scores into them
            for option, scores in zip(options, extra):
                option.scores[0] = float(np.mean([option.scores[0], *scores[:n_partitions - 1]]))
            chosen = choose(options, evaluator, margin)
            rows.append({"run": run_dir.name, "dataset": dataset.name, "partitions": n_partitions,
                         "choice_repeats": evaluator.choice_repeats,
                         "chosen": chosen.label, "n_features": len(chosen.features),
                         "search_gain": chosen.scores[0] - options[0].scores[0],
                         "gain": chosen.gain, "se": chosen.standard_error,
                         "compared": [o.label for o in options if o.gain is not None],
                         "test_gain": gain_on_test_split(evaluator, chosen.tokens, original),
                         "seconds": round(time.perf_counter() - started, 2)})
    return rows


def main(argv: list[str]) -> None:
    parser = replay_arguments(__doc__.splitlines()[0])
    parser.add_argument("--partitions", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--choice-repeats", type=int, default=None,
                        help="new partitions of the validation rows the best three are compared on "
                             "(default: the fit's, 2)")
    parser.add_argument("--max-features", type=int, default=None,
                        help="most new features of a finalist (default: the run's own max_selected_features; "
                             "a run made before a new default replays with it by this)")
    args = parser.parse_args(argv)
    if min(args.partitions) < 1:
        parser.error("--partitions: at least 1 (the search's own partition)")
    if args.choice_repeats is not None and args.choice_repeats < 1:
        parser.error("--choice-repeats: at least 1")
    from featteam import evaluation
    fits_repeats = evaluation.CHOICE_REPEATS
    evaluation.CHOICE_REPEATS = args.choice_repeats or fits_repeats  # given back below: a caller's fits keep theirs
    try:
        for run_dir, rows in replay_into(args.out, args.runs,
                                         lambda run_dir: replay(run_dir, args.partitions, args.margin,
                                                                      args.max_features)):
            print(run_dir.name, *(f"{r['partitions']}: {r['chosen']} {r['test_gain']:+.4f} ({r['seconds']} s)"
                                  for r in rows), sep="  ", flush=True)
    finally:
        evaluation.CHOICE_REPEATS = fits_repeats


if __name__ == "__main__":
    main(sys.argv[1:])
