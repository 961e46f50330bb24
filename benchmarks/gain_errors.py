"""Standard errors over the test rows of a finished benchmark's gains, for results made before
the bench recorded them (``gain_se``): featteam's chosen transformation and OpenFE's saved
columns, each against the original features, by the paired bootstrap the bench now uses
(``Evaluator.test_gain_standard_error``).  Each score is recomputed and printed beside the
recorded one, so a run whose score this featteam does not reproduce shows itself.

    python benchmarks/gain_errors.py BENCH_OUT --out errors.csv [--split-seed K]

Honest protocol, the ``quick`` preset's downstream forest.  It reads the test split, as the
bench's own report does; nothing is chosen with it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from featteam.bench.methods import load_manifest
from featteam.config import FitConfig
from featteam.data import load_dataset
from featteam.evaluation import Evaluator
from featteam.expr.sequence import parse_postfix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_out", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--split-seed", type=int, default=0, help="the benchmark's --split-seed")
    args = parser.parse_args()
    manifest = load_manifest(args.data_dir)
    results = pd.read_csv(args.bench_out / "results.csv")
    results = results[(results.protocol == "honest") & (results.status == "ok")]
    rows = []
    for dataset in sorted(results.dataset.unique()):
        entry = manifest["datasets"][dataset]
        table = load_dataset(args.data_dir / entry["file"], entry.get("target", "label"))
        for method in ("featteam", "openfe"):
            recorded = results[(results.dataset == dataset) & (results.method == method)]
            for _, row in recorded.iterrows():
                run = args.bench_out / "runs" / f"{dataset}__honest__{method}__s{int(row.seed)}"
                tree_rows = FitConfig.from_preset("quick").max_tree_rows
                if method == "featteam":
                    report = json.loads((run / "report.json").read_text())
                    tree_rows = report["config"]["max_tree_rows"]
                evaluator = Evaluator(table, "honest", max_tree_rows=tree_rows, split_seed=args.split_seed)
                if method == "featteam":
                    result = report["result"]
                    tokens = parse_postfix(result["postfix"]) if result["formulas"] else []
                    score = evaluator.final_score(tokens or None)
                    error = evaluator.test_gain_standard_error(evaluator.test_predictions(tokens)) if tokens else 0.0
                else:
                    with np.load(run / "generated.npz") as saved:
                        new_fit, new_apply = saved["fit"], saved["apply"]
                    score, error = evaluator.final_generated(lambda X_fit, y_fit, X_apply: (new_fit, new_apply))
                rows.append({"dataset": dataset, "method": method, "seed": int(row.seed), "score": score,
                             "recorded": row.score, "gain": row.score - row.original_score, "gain_se": error,
                             "test_rows": len(evaluator.test_rows)})
                print(rows[-1], flush=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
