"""How much one test split's luck weighs: a finished run's chosen transformation scored on other
train/test splits.  An analysis of the benchmark's fixed split, not part of a fit.

For a run directory (a finished ``featteam fit`` or bench configuration), the transformation it
chose (``RUN/transformation.json``, its formulas) is scored the way the honest protocol scores
it - the transformation and the downstream forest fitted on the training split, the test split
scored once - on the splits ``random_state`` 0, 1, ..., N-1, and its gain over the original
features on each is printed with their mean and standard error.

The formulas were searched on split 0's training rows, some of which are test rows of the other
splits, so the other splits' gains are optimistic; what this measures is how much a gain varies
from one test split to another, not what a fit on those splits would gain.

    python benchmarks/split_rotation.py RUN_DIR [--splits 12]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def split_gains(run_dir: Path, n_splits: int) -> tuple[list[str], list[float]]:
    from featteam.data import load_dataset
    from featteam.evaluation import Evaluator
    from featteam.expr import Transformation
    from featteam.report import RunReport

    report = RunReport.load(run_dir / "report.json")
    dataset = load_dataset(report.data.path, report.data.target, task=report.data.task)
    chosen = Transformation.load(run_dir / "transformation.json")
    gains = []
    for split in range(n_splits):
        evaluator = Evaluator(dataset, "honest", split_seed=split)
        gains.append(evaluator.final_score(chosen.tokens) - evaluator.final_score(None))
    return chosen.formulas, gains


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--splits", type=int, default=12)
    args = parser.parse_args(argv)
    formulas, gains = split_gains(args.run, args.splits)
    if not formulas:
        raise SystemExit(f"{args.run}: the run kept the original features; there is nothing to rotate")
    print("formulas:", "; ".join(formulas))
    print("gain by split:", " / ".join(f"{g:+.4f}" for g in gains))
    print(f"mean {np.mean(gains):+.4f} ± {np.std(gains, ddof=1) / np.sqrt(len(gains)):.4f} (standard error), "
          f"sd {np.std(gains, ddof=1):.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
