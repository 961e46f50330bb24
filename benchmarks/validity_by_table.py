"""Issue 14's figures per table from a ``featteam bench`` output folder: the student's unmasked
validity before and after fine-tuning, the ML and teaming decoders' unmasked error rates and
their ratio, and the student and teaming steps' seconds, read from each featteam run's
``report.json`` (honest protocol, seed 0 unless ``--seed``).

    python benchmarks/validity_by_table.py BENCH_OUT [--seed 0] [--tables a,b,...]

Prints a Markdown table, its mean row, and how many tables have teaming's unmasked error at most
half the ML decoder's.  "Unmasked": decoded without the grammar mask, so the model alone decides
whether a sequence is well-formed; a table whose ML decoder made no error counts as meeting the
ratio only when teaming made none either.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from featteam.report import RunReport


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tables", default="", help="comma-separated table names (default: every one)")
    args = parser.parse_args()
    wanted = set(filter(None, args.tables.split(",")))
    with open(args.out / "results.csv") as handle:
        results = {r["dataset"]: r for r in csv.DictReader(handle)
                   if r["method"] == "featteam" and r["seed"] == str(args.seed) and r["protocol"] == "honest"}
    rows = []
    for path in sorted(args.out.glob(f"runs/*__honest__featteam__s{args.seed}/report.json")):
        table = path.parent.name.split("__")[0]
        if wanted and table not in wanted:
            continue
        report = RunReport.load(path)
        steps = report.steps
        if not (steps.student and steps.latent and steps.teaming):
            continue
        before, after = steps.student.unmasked_before_finetuning, steps.student.unmasked_after_finetuning
        ml, teaming = steps.latent.unmasked.error_rate, steps.teaming.unmasked.error_rate
        result = results.get(table, {})
        rows.append((table, before.valid / before.n, after.valid / after.n, ml, teaming,
                     float(result.get("gain") or "nan"), float(result.get("fit_seconds") or "nan"),
                     report.step_seconds.get("student", float("nan")), report.step_seconds.get("teaming", float("nan"))))
    print("| table | student valid before FT | after FT | ML unmasked error | teaming unmasked error | teaming / ML "
          "| featteam gain | fit s | student step s | teaming step s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for table, before, after, ml, teaming, gain, fit, student, team in rows:
        ratio = teaming / ml if ml else float("nan")
        print(f"| {table} | {before:.2f} | {after:.2f} | {ml:.2f} | {teaming:.2f} | {ratio:.2f} | {gain:+.4f} | "
              f"{fit:.0f} | {student:.0f} | {team:.0f} |")
    if not rows:
        print("no featteam run with all four steps")
        return
    values = np.array([row[1:] for row in rows], dtype=np.float64)
    mean = np.nanmean(values, axis=0)
    print(f"| mean | {mean[0]:.2f} | {mean[1]:.2f} | {mean[2]:.2f} | {mean[3]:.2f} | {mean[3] / mean[2]:.2f} | "
          f"{mean[4]:+.4f} | {mean[5]:.0f} | {mean[6]:.0f} | {mean[7]:.0f} |")
    met = sum(teaming <= 0.5 * ml for _, _, _, ml, teaming, *_ in rows)
    print(f"tables with teaming's unmasked error <= 0.5 x the ML decoder's: {met} of {len(rows)}")


if __name__ == "__main__":
    main()
