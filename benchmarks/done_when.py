"""Issue 13's "Done when" figures from a ``featteam bench`` results.csv (honest protocol).

Usage: python benchmarks/done_when.py BENCH_OUT/results.csv

Prints: featteam's and OpenFE's mean gain over the original features on the tables where both
have a score; featteam >= OpenFE (a win, or a tie within 0.001) per table; the tables where
featteam is more than 0.005 below the original features (with each gain's standard error over
the test rows, where the results record it); each single mode's mean gain (when the
results hold the mode rows: ``--methods ... teaming ml student teacher``); the median fit times;
and, with several seeds, each method's mean spread (population standard deviation over seeds).
Where the results record the gains' standard errors, it also prints how many of the wins and
losses against OpenFE are beyond two standard errors of their difference, and each loss's z.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from featteam.bench.report import TIE  # the bench report's own tie

BELOW = 0.005
#: |difference| / its standard error beyond which a win or loss is more than one test split's noise.
SURE = 1.96


def _noise_of_the_count(difference: pd.Series, featteam_se: pd.Series, openfe_se: pd.Series) -> None:
    """How many of the wins and losses one test split can tell from noise: each table's
    difference featteam - OpenFE over its standard error, taken as the two gains' errors added in
    quadrature.  Exact where featteam kept the original features (its gain is 0 on every
    resample); elsewhere usually too large, since both gains are paired with the same original
    predictions on the same rows, which tends to move them together."""
    error = np.sqrt(featteam_se.fillna(0) ** 2 + openfe_se.fillna(0) ** 2)
    z = (difference / error.where(error > 0)).dropna()
    decided = z[z.abs() > SURE]
    print(f"  beyond {SURE} standard errors of the difference (the rest one test split cannot tell apart): "
          f"W {(decided > 0).sum()}, L {(decided < 0).sum()} of the {len(z)} tables with one")
    lost = z[difference.loc[z.index] < -TIE].sort_values()
    if len(lost):
        print("  the losses, difference (its z): "
              + ", ".join(f"{t} {difference[t]:+.4f} ({z[t]:+.2f})" for t in lost.index))


def main(path: str) -> None:
    frame = pd.read_csv(path)
    frame = frame[frame.protocol == "honest"]
    ok = frame[frame.status == "ok"]
    # Scores averaged over seeds per table, as the bench's own report does.
    scores = ok.pivot_table(index="dataset", columns="method", values="score", aggfunc="mean")
    original = scores["original"]
    seconds = frame.pivot_table(index=["dataset", "seed"], columns="method", values="fit_seconds")

    def gain(method: str, tables) -> float:
        return float((scores.loc[tables, method] - original.loc[tables]).mean())

    print("configurations:", frame.groupby("method").status.value_counts().to_dict())
    both = scores.dropna(subset=["featteam", "openfe"]).index
    difference = scores.loc[both, "featteam"] - scores.loc[both, "openfe"]
    print(f"tables with both: {len(both)}; mean gain featteam {gain('featteam', both):+.4f}, "
          f"openfe {gain('openfe', both):+.4f}")
    print(f"featteam >= openfe (a win or a tie within {TIE}): {(difference >= -TIE).sum()} of {len(both)} "
          f"(W/T/L {(difference > TIE).sum()}/{(difference.abs() <= TIE).sum()}/{(difference < -TIE).sum()})")
    ours = scores["featteam"].dropna().index
    below = scores.loc[ours, "featteam"] - original.loc[ours]
    print(f"more than {BELOW} below the original features: {below[below < -BELOW].round(4).to_dict()}")
    if "gain_se" in ok and ok["gain_se"].notna().any():
        # The standard error of each gain over the test rows (paired bootstrap; results made since
        # the bench records it): how much one test split of that size can move a gain.
        errors = ok.pivot_table(index="dataset", columns="method", values="gain_se", aggfunc="mean")
        for method in ("featteam", "openfe"):
            if method in errors:
                added = errors[method][errors[method] > 0]  # 0: no feature added, nothing to measure
                print(f"  {method:9s} median standard error of a gain over the test rows "
                      f"{added.median():.4f} (the {len(added)} tables where it added features)")
        breaches = below[below < -BELOW].index
        if len(breaches) and "featteam" in errors:
            print("  featteam below the floor, gain ± its standard error: "
                  + ", ".join(f"{t} {below[t]:+.4f} ± {errors.loc[t, 'featteam']:.4f}" for t in breaches))
        if {"featteam", "openfe"} <= set(errors):
            _noise_of_the_count(difference, errors.loc[both, "featteam"], errors.loc[both, "openfe"])
    for method in ("featteam", "teaming", "ml", "student", "teacher", "openfe"):
        if method in scores:
            tables = scores[method].dropna().index
            print(f"  {method:9s} mean gain {gain(method, tables):+.4f} over {len(tables)} tables")
    if "openfe" in seconds:
        ratio = seconds["featteam"].median() / seconds["openfe"].median()
        print(f"median fit seconds: featteam {seconds['featteam'].median():.1f}, openfe "
              f"{seconds['openfe'].median():.1f} ({ratio:.2f} x; a timeout counts at its limit)")
    if frame.seed.nunique() > 1:
        spread = ok.groupby(["method", "dataset"]).score.std(ddof=0).groupby("method").mean()
        print("mean spread over seeds:", spread.round(4).to_dict())


if __name__ == "__main__":
    main(sys.argv[1])
