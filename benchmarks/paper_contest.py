"""Issue 15's "Done when" figures from a ``featteam bench`` results.csv (paper protocol).

Usage: python benchmarks/paper_contest.py BENCH_OUT/results.csv

Prints a Markdown table, one row per table of the suite: the original features' score,
featteam's and MOAT's published score, featteam - MOAT, featteam's fit seconds, the candidates
it scored and how many transformations were scored on the test split; then featteam >= MOAT (a
win, or a tie within 0.001) on the tables that have a MOAT score, and both mean gains over the
original features on those tables.  Every number is the paper protocol's: searched and reported
on the test split, so optimistic (README, "Evaluation protocols").
"""

from __future__ import annotations

import sys

import pandas as pd

from featteam.bench.report import TIE  # the bench report's own tie


def main(path: str) -> None:
    frame = pd.read_csv(path)
    frame = frame[(frame.protocol == "paper") & frame.method.isin(["original", "featteam", "moat"])]
    if frame.empty:
        sys.exit(f"{path}: no paper-protocol results of original, featteam or moat")
    if "scored_on_test_split" not in frame:  # a results.csv of an older featteam
        frame = frame.assign(scored_on_test_split=float("nan"))
    scored = frame[frame.status.isin(["ok", "reference"])]
    # Scores averaged over seeds per table, as the bench's own report does (the contest is seed 0).
    scores = scored.pivot_table(index="dataset", columns="method", values="score", aggfunc="mean")
    scores = scores.reindex(columns=["original", "featteam", "moat"])
    ours = frame[frame.method == "featteam"].groupby("dataset").agg(
        status=("status", lambda s: "ok" if (s == "ok").all() else ", ".join(sorted(set(s) - {"ok"}))),
        fit_seconds=("fit_seconds", "mean"), n_candidates=("n_candidates", "mean"),
        scored_on_test_split=("scored_on_test_split", "mean"))
    print("| dataset | original | featteam | MOAT | featteam − MOAT | fit s | candidates | scored on the test split |")
    print("|---|---|---|---|---|---|---|---|")
    for dataset in sorted(set(scores.index) | set(ours.index)):
        row = scores.loc[dataset] if dataset in scores.index else pd.Series(dtype=float)
        mine = ours.loc[dataset] if dataset in ours.index else None

        def cell(method: str) -> str:
            value = row.get(method)
            return "–" if value is None or pd.isna(value) else f"{value:.4f}"

        difference = row.get("featteam", float("nan")) - row.get("moat", float("nan"))
        status = "" if mine is None or mine.status == "ok" else f" ({mine.status})"
        print(f"| {dataset} | {cell('original')} | {cell('featteam')}{status} | {cell('moat')} | "
              f"{'–' if pd.isna(difference) else f'{difference:+.4f}'} | "
              f"{'–' if mine is None else f'{mine.fit_seconds:.0f}'} | "
              f"{'–' if mine is None or pd.isna(mine.n_candidates) else int(mine.n_candidates)} | "
              f"{'–' if mine is None or pd.isna(mine.scored_on_test_split) else int(mine.scored_on_test_split)} |")
    both = scores.dropna(subset=["featteam", "moat", "original"]).index
    difference = scores.loc[both, "featteam"] - scores.loc[both, "moat"]
    with_moat = scores["moat"].dropna().index
    print(f"\ntables with a MOAT score: {len(with_moat)}; featteam scored on {len(both)} of them")
    print(f"featteam >= MOAT (a win or a tie within {TIE}): {(difference >= -TIE).sum()} of {len(with_moat)} "
          f"(W/T/L {(difference > TIE).sum()}/{(difference.abs() <= TIE).sum()}/{(difference < -TIE).sum()})")
    gain = scores.loc[both, ["featteam", "moat"]].sub(scores.loc[both, "original"], axis=0).mean()
    print(f"mean gain over the original features on those {len(both)} tables: featteam {gain['featteam']:+.4f}, "
          f"MOAT {gain['moat']:+.4f}")
    print(f"featteam's fit seconds: total {ours.fit_seconds.sum():.0f}, median {ours.fit_seconds.median():.0f}")


if __name__ == "__main__":
    main(sys.argv[1])
