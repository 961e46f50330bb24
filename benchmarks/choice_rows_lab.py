"""The choice made on every validation row rather than a sample of them, replayed on finished
honest runs: an analysis of the choice, not part of a fit.

A fit compares its finalists on at most ``max_search_rows`` validation rows (a stratified sample
where the training split's validation share is larger: uci_credit_card, amazon_employee and
higgs at the ``quick`` preset).  This script makes the same choice - the same finalists, the
same rule, out of fold with the search rows as context - on every validation row, then scores
the chosen transformation on the test split.  No other table changes: their validation rows are
all compared already.

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
        _, every_validation_row = evaluator._hold_out(evaluator.protocol_rows, evaluator.validation_size)
        rows = []
        for label, choice_rows in (("sample", evaluator.validation_rows), ("every", every_validation_row)):
            started = time.perf_counter()
            evaluator.validation_rows = evaluator.choice_rows = choice_rows
            options = copy.deepcopy(finalists)
            chosen = choose(options, evaluator, margin)
            compared = {o.label: (round(o.gain, 4), round(o.standard_error, 4)) for o in options[1:]
                        if o.gain is not None}
            rows.append({"run": run_dir.name, "dataset": dataset.name, "rows": label,
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
