"""Three ways of making a large table's choice, replayed on finished honest runs: an analysis of
the choice, not part of a fit.

On uci_credit_card, amazon_employee and higgs at the ``quick`` preset the search scores a sample
of 2,000 rows (``max_search_rows``) and holds out more validation rows than that.  For each run
this script makes the choice - the same finalists, the same rule - three ways, and scores each
chosen transformation on the test split:

- ``sample``: out of fold, with the search rows as context, on a stratified sample of
  ``max_search_rows`` validation rows (what a fit did before ``AT_SCALE_RATIO``; what it still
  does where its search's sample is more than half the rows outside the validation rows);
- ``every``: the same on every validation row;
- ``scale``: every validation row predicted by one forest fitted on every training row outside
  the validation rows, the scale of the deployed model (what a fit does where its search's
  sample is half of those rows or less: ``featteam.evaluation.AT_SCALE_RATIO``).

    python benchmarks/choice_rows_lab.py RUN_DIR [RUN_DIR ...] --out lab.jsonl

Run it on a copy of the run directories: resuming appends to their score logs.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

from finished_runs import gain_on_test_split, replay_arguments, replay_into, resumed


def replay(run_dir: Path, margin: float) -> list[dict]:
    from featteam.selection import choose

    with resumed(run_dir, "honest") as finished:
        dataset, evaluator = finished.dataset, finished.evaluator
        original = evaluator.final_score(None)
        finalists, _ = finished.finalists()
        search_pool, every_validation_row = evaluator._hold_out(evaluator.protocol_rows, evaluator.validation_size)
        sample = evaluator._sample_rows(every_validation_row, evaluator.max_search_rows)
        rows = []
        for label, choice_rows, fit_rows in (("sample", sample, None), ("every", every_validation_row, None),
                                             ("scale", every_validation_row, search_pool)):
            started = time.perf_counter()
            evaluator.validation_rows = evaluator.choice_rows = choice_rows
            evaluator.choice_fit_rows = fit_rows
            options = copy.deepcopy(finalists)
            chosen = choose(options, evaluator, margin)
            compared = {o.label: (round(o.gain, 4), round(o.standard_error, 4)) for o in options[1:]
                        if o.gain is not None}
            rows.append({"run": run_dir.name, "dataset": dataset.name, "split_seed": evaluator.split_seed,
                         "rows": label, "search_rows": len(evaluator.search_rows), "pool": len(search_pool),
                         "choice_rows": len(choice_rows), "chosen": chosen.label, "compared": compared,
                         "test_gain": gain_on_test_split(evaluator, chosen.tokens, original),
                         "seconds": round(time.perf_counter() - started, 2)})
    return rows


def main(argv: list[str]) -> None:
    parser = replay_arguments(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    for run_dir, rows in replay_into(args.out, args.runs, lambda run_dir: replay(run_dir, args.margin)):
        print(run_dir.name, *(f"{r['rows']} ({r['choice_rows']}): {r['chosen']} {r['test_gain']:+.4f} "
                              f"{r['compared']} ({r['seconds']} s)" for r in rows), sep="\n  ", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
