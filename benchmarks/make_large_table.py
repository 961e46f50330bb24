"""A large synthetic regression table (Friedman #1, as scikit-learn's ``make_friedman1``) for the
scaling checks: ``featteam fit --preset quick`` on a million rows.

Usage: python benchmarks/make_large_table.py OUT.csv.gz [--rows 1000000] [--features 10] [--seed 0]

The target is ``10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 10 x3 + 5 x4 + noise``; the other columns
are noise.  A product and a sine of two columns carry the target: new features can help.
Written in blocks, so memory stays at one block's worth beyond pandas' writer.
"""

from __future__ import annotations

import argparse
import gzip

import numpy as np
import pandas as pd
from sklearn.datasets import make_friedman1

BLOCK = 100_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the table to write (.csv or .csv.gz)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=10, help="columns (at least 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    opener = gzip.open if args.out.endswith(".gz") else open
    with opener(args.out, "wt", newline="") as handle:
        for number, start in enumerate(range(0, args.rows, BLOCK)):
            rows = min(BLOCK, args.rows - start)
            X, y = make_friedman1(n_samples=rows, n_features=args.features, noise=1.0,
                                  random_state=args.seed * 100_003 + number)
            frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(args.features)])
            frame["label"] = y
            frame.to_csv(handle, index=False, header=start == 0, float_format="%.6g")


if __name__ == "__main__":
    main()
