"""Benchmark results as a table, a Markdown report and plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..candidates import MODES
from .methods import FEATTEAM_MODES

COLUMNS = ["dataset", "task", "metric", "protocol", "method", "seed", "status", "score", "original_score", "gain",
           "gain_se", "fit_seconds", "peak_memory_mb", "n_new_features", "n_proposed", "n_valid", "errors", "n_candidates",
           "scored_on_test_split", "chosen_mode", "formulas", "message"]
#: featteam's modes in the order of the method's steps (the one list: featteam.candidates.MODES).
VALIDITY_ORDER: tuple[str, ...] = tuple(m.value for m in MODES if m.value in FEATTEAM_MODES)
#: Scores closer than this count as a tie in wins/ties/losses.
TIE = 0.001


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    frame["original_score"] = pd.to_numeric(frame["original_score"], errors="coerce")
    frame["gain"] = frame["score"] - frame["original_score"]
    frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").astype("Int64")
    frame["errors"] = frame["errors"].map(lambda e: "" if not isinstance(e, dict) else
                                          ", ".join(f"{k} {v}" for k, v in sorted(e.items())))
    return frame[COLUMNS]


def write_results(frame: pd.DataFrame, out: Path, method_order: list[str], header: str = "") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "results.csv", index=False)
    text = header + markdown(frame, method_order)
    (out / "results.md").write_text(text)
    plot_all(frame, out, method_order)
    return out / "results.md"


def _fmt(value: float, digits: int = 4) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _cell(scores: pd.Series) -> str:
    scores = scores.dropna()
    if scores.empty:
        return "–"
    if len(scores) == 1:
        return _fmt(scores.iloc[0])
    return f"{scores.mean():.4f} ± {scores.std(ddof=0):.4f}"


def markdown(frame: pd.DataFrame, method_order: list[str]) -> str:
    lines: list[str] = []
    for protocol in [p for p in ("honest", "paper") if p in set(frame["protocol"])]:
        part = frame[frame["protocol"] == protocol]
        methods = [m for m in method_order if m in set(part["method"])]
        seeds = sorted({int(s) for s in part["seed"].dropna()})
        lines += [f"## {protocol} protocol", "",
                  f"Score per dataset (mean ± standard deviation over seeds {seeds} where a method ran with "
                  "several; – : no result, see the failures below).", ""]
        lines.append("| dataset | task | " + " | ".join(methods) + " |")
        lines.append("|---|---|" + "---|" * len(methods))
        for dataset in dict.fromkeys(part["dataset"]):
            rows = part[part["dataset"] == dataset]
            cells = [_cell(rows[(rows["method"] == m) & (rows["status"].isin(["ok", "reference"]))]["score"])
                     for m in methods]
            lines.append(f"| {dataset} | {rows['task'].iloc[0][:5]} | " + " | ".join(cells) + " |")
        lines += ["", *_summary(part, methods), ""]
    failures = frame[~frame["status"].isin(["ok", "reference"])]
    if not failures.empty:
        lines += ["## Runs without a score", "", "| protocol | dataset | method | seed | status | message |",
                  "|---|---|---|---|---|---|"]
        for _, r in failures.iterrows():
            seed = "" if pd.isna(r["seed"]) else int(r["seed"])
            lines.append(f"| {r['protocol']} | {r['dataset']} | {r['method']} | {seed} | {r['status']} | "
                         f"{str(r['message'])[:160].replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def _per_dataset(part: pd.DataFrame, method: str) -> pd.Series:
    ok = part[(part["method"] == method) & part["status"].isin(["ok", "reference"])]
    return ok.groupby("dataset")["score"].mean()


def _summary(part: pd.DataFrame, methods: list[str]) -> list[str]:
    lines = ["| method | datasets | mean gain over original | mean fit s | mean peak MiB | mean new features | "
             "validity (unmasked) | spread over seeds |", "|---|---|---|---|---|---|---|---|"]
    for method in methods:
        rows = part[(part["method"] == method) & part["status"].isin(["ok", "reference"])]
        scores = _per_dataset(part, method)
        base = rows.groupby("dataset")["original_score"].mean()
        gain = (scores - base).dropna()
        proposed = pd.to_numeric(rows["n_proposed"], errors="coerce").sum()
        valid = pd.to_numeric(rows["n_valid"], errors="coerce").sum()
        validity = f"{valid / proposed:.3f} ({int(valid)}/{int(proposed)})" if proposed > 0 else ""
        spreads = rows.groupby("dataset")["score"].agg(lambda s: s.std(ddof=0) if len(s) > 1 else np.nan).dropna()
        spread = f"{spreads.mean():.4f} ({len(spreads)} datasets)" if len(spreads) else ""
        lines.append(f"| {method} | {len(scores)} | {_fmt(gain.mean()) if len(gain) else ''} | "
                     f"{_fmt(pd.to_numeric(rows['fit_seconds'], errors='coerce').mean(), 1)} | "
                     f"{_fmt(pd.to_numeric(rows['peak_memory_mb'], errors='coerce').mean(), 0)} | "
                     f"{_fmt(pd.to_numeric(rows['n_new_features'], errors='coerce').mean(), 1)} | {validity} | {spread} |")
    peers = [m for m in ("openfe", "autofeat", "moat", "original") if m in methods]
    ours = [m for m in ("featteam", *FEATTEAM_MODES) if m in methods]
    if peers and ours:
        lines += ["", f"Wins / ties / losses per dataset (mean over seeds; tie: |difference| < {TIE}):", "",
                  "| featteam method | " + " | ".join(f"vs {p}" for p in peers) + " |", "|---|" + "---|" * len(peers)]
        for method in ours:
            mine = _per_dataset(part, method)
            cells = []
            for peer in peers:
                theirs = _per_dataset(part, peer)
                both = mine.index.intersection(theirs.index)
                diff = mine[both] - theirs[both]
                cells.append(f"{int((diff >= TIE).sum())} / {int((diff.abs() < TIE).sum())} / {int((diff <= -TIE).sum())}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def plot_all(frame: pd.DataFrame, out: Path, method_order: list[str]) -> list[Path]:
    from ..plots import new_figure, save_figure

    paths = []
    ok = frame[frame["status"].isin(["ok", "reference"])]
    for protocol in sorted(set(ok["protocol"])):
        part = ok[(ok["protocol"] == protocol) & (ok["method"] != "original")]
        methods = [m for m in method_order if m in set(part["method"])]
        datasets = list(dict.fromkeys(part["dataset"]))
        if not methods or not datasets:
            continue
        gains = part.groupby(["dataset", "method"])["gain"].mean()
        fig, ax = new_figure((max(8, 0.6 * len(datasets) * max(1, len(methods)) / 3), 4.5))
        width = 0.8 / len(methods)
        for i, method in enumerate(methods):
            values = [gains.get((d, method), np.nan) for d in datasets]
            ax.bar(np.arange(len(datasets)) + i * width, values, width, label=method)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(np.arange(len(datasets)) + 0.4 - width / 2, datasets, rotation=45, ha="right")
        ax.set_ylabel("score gain over the original features")
        ax.set_title(f"Gain per dataset ({protocol} protocol)")
        ax.legend(ncol=min(4, len(methods)), fontsize=8)
        paths.append(save_figure(fig, out / f"gain_{protocol}.png", dpi=110))
    validity = frame[frame["method"].isin(VALIDITY_ORDER) & (frame["status"] == "ok")]
    if not validity.empty:
        totals = validity.assign(n_proposed=pd.to_numeric(validity["n_proposed"], errors="coerce"),
                                 n_valid=pd.to_numeric(validity["n_valid"], errors="coerce"))
        sums = totals.groupby("method")[["n_valid", "n_proposed"]].sum()
        order = [m for m in VALIDITY_ORDER if m in sums.index]
        fig, ax = new_figure((5, 3.5))
        ax.bar(order, [sums.loc[m, "n_valid"] / max(1, sums.loc[m, "n_proposed"]) for m in order], color="tab:green")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("valid share of unmasked proposals")
        ax.set_title("Validity by mode (all runs)")
        paths.append(save_figure(fig, out / "validity_by_mode.png", dpi=110))
    timed = frame[frame["status"] == "ok"].drop_duplicates(["dataset", "protocol", "seed", "fit_seconds", "method"])
    groups = timed.assign(fit_seconds=pd.to_numeric(timed["fit_seconds"], errors="coerce"))
    groups = groups[groups["method"].isin(["original", "featteam", "openfe", "autofeat"])]
    if not groups.empty:
        order = [m for m in ("original", "featteam", "openfe", "autofeat") if m in set(groups["method"])]
        fig, ax = new_figure((5, 3.5))
        ax.boxplot([groups[groups["method"] == m]["fit_seconds"].dropna() for m in order], tick_labels=order)
        ax.set_yscale("log")
        ax.set_ylabel("fit time per configuration (s)")
        ax.set_title("Time per method")
        paths.append(save_figure(fig, out / "time_by_method.png", dpi=110))
    return paths
