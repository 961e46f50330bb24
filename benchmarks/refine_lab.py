"""The local search around the best finalist (``refine_candidates``) replayed on finished honest
runs: what it would change under the honest protocol, and what it costs, without searching again.

For each run directory given (a finished ``featteam fit`` or bench configuration under the
honest protocol), the run is resumed - every step is already done - and the choice is made
again as a fit makes it, once for each budget: the finalists, the local search with that
budget (:func:`featteam.selection.refine`), then the rule (``--margin`` standard errors on the
validation rows).  The chosen transformation is scored on the test split, as a fit scores its
own choice; budget 0 is the fit as it ran and gives back its recorded score.  The budgets run in
increasing order on one evaluator whose search scores are remembered, so a larger budget goes
on from where the smaller one stopped (the search is deterministic, its first steps are the same)
and each row's ``seconds`` (the local search and the choice) is what that budget cost beyond the
one before.

    python benchmarks/refine_lab.py RUN_DIR [RUN_DIR ...] --budgets 0 16 32 64 --out lab.jsonl

Run it on a copy of the run directories: resuming appends to their score logs.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

from finished_runs import gain_on_test_split, remembered, replay_arguments, replay_into, resumed


def replay(run_dir: Path, budgets: list[int], margin: float) -> list[dict]:
    from featteam.selection import choose, refine

    with resumed(run_dir, "honest") as finished:
        dataset, evaluator = finished.dataset, finished.evaluator
        for name in ("cv_score", "choice_predictions", "final_score"):
            setattr(evaluator, name, remembered(getattr(evaluator, name)))
        original = evaluator.final_score(None)
        finalists, bank = finished.finalists()
        rows = []
        for budget in sorted(budgets):
            started = time.perf_counter()
            options = copy.deepcopy(finalists)  # the choice writes its scores into them
            refined, scored = refine(options, bank, evaluator, finished.config.max_selected_features, budget)
            if refined is not None:
                options.append(refined)
            chosen = choose(options, evaluator, margin)
            seconds = time.perf_counter() - started
            rows.append({"run": run_dir.name, "dataset": dataset.name, "budget": budget, "scored": len(scored),
                         "refined_search_gain": None if refined is None else refined.scores[0] - options[0].scores[0],
                         "refined_gain": None if refined is None else refined.gain,
                         "refined_se": None if refined is None else refined.standard_error,
                         "chosen": chosen.label, "n_features": len(chosen.features),
                         "test_gain": gain_on_test_split(evaluator, chosen.tokens, original),
                         "seconds": round(seconds, 2)})
    return rows


def main(argv: list[str]) -> None:
    parser = replay_arguments(__doc__.splitlines()[0])
    parser.add_argument("--budgets", nargs="+", type=int, default=[0, 16, 32, 64])
    args = parser.parse_args(argv)
    for run_dir, rows in replay_into(args.out, args.runs, lambda run_dir: replay(run_dir, args.budgets, args.margin)):
        print(run_dir.name, *(f"{r['budget']}: {r['chosen']} {r['test_gain']:+.4f} ({r['seconds']} s)" for r in rows),
              sep="  ", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
