"""MOAT's published scores against its own released transformations: an analysis of the paper
protocol's contest (issue 15), not part of a fit.

MOAT's repository (coco11563/MOAT_Differentiable_Feature_Transformation) releases, for each table
of the suite, the test split it reported: the original columns, the new ones (named by their
postfix formulas over column indices) and the label, as ``Test/<table>.hdf``.  MANIFEST.json's
``moat`` reference is the paper protocol's score of those columns.  For each table this script

1. aligns the released rows with the protocol's test split (by their original columns) and scores
   the released columns with featteam's own paper-protocol evaluator: this must give the
   published score (the ``released`` column);
2. recomputes the new columns from their formulas with MOAT's own stack machine
   (``NIPS_Code/utils/datacollection/Operation.py``: a binary operator takes the two *bottom*
   entries of the stack, a failed guard passes its operand through, a scaler is fitted on the
   whole split, numpy's arithmetic on each column's stored dtype) and reports the largest
   difference from the released values;
3. scores the same formulas in featteam's expression language (normal postfix, protected
   operators, stateful operators fitted on each fold's rows; a column that is constant or repeats
   another is left out, as in a fit): a different reading of the same formulas;
4. scores the released columns, and featteam's output of a finished paper-protocol bench run
   (``--featteam-runs``), with forests of other seeds (``--forest-seeds``): the same split, folds
   and transformations, only the forest's own randomness drawn again.

Why 3 and 4: under the paper protocol the search keeps the transformation with the best score
on the test split among a few hundred, so the reported maximum holds some of that forest's luck;
a transformation that really helps keeps its score when the forest is drawn again, luck does not.
And step 3 shows how much of a score rests on MOAT's reading of its formulas, which featteam's
language (normal postfix, method.md) does not share.

Reading the HDF files needs ``h5py`` (the ``analysis`` extra; ``make install`` installs it).

    python benchmarks/moat_released.py MOAT_CHECKOUT/Test --data-dir ../shared/datasets \\
        --featteam-runs bench_out/paper34 [--forest-seeds 1 2 3 4 5] [--out moat.jsonl]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import warnings
from pathlib import Path

import numpy as np

#: MOAT's operators (Operation.py: O1, O2, O3).
MOAT_UNARY = ("sqrt", "square", "sin", "cos", "tanh", "stand_scaler", "minmax_scaler", "quan_trans", "sigmoid",
              "log", "reciprocal", "cube")
MOAT_BINARY = ("+", "-", "*", "/")
#: What :func:`featteam_row` adds to a table's row.
FEATTEAM_FIELDS = ("featteam", "featteam_new_columns", "featteam_reseeded")


def read_released(path: Path) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """A released test split (pandas' HDF "fixed" format, read with h5py): the names of the
    columns other than the label, each column with its stored dtype (MOAT computed on integer
    columns as integers: ``np.reciprocal`` of an integer 2 is 0), and the label."""
    try:
        import h5py
    except ImportError:
        raise SystemExit("reading MOAT's HDF files needs h5py: pip install h5py") from None
    with h5py.File(path, "r") as handle:
        data = handle["data"]
        names = [name.decode() for name in data["axis0"][:]]
        columns: dict[str, np.ndarray] = {}
        block = 0
        while f"block{block}_items" in data:
            items = [item.decode() for item in data[f"block{block}_items"][:]]
            values = np.asarray(data[f"block{block}_values"][:])
            columns.update((item, values[:, j]) for j, item in enumerate(items))
            block += 1
    features = [name for name in names if name != "label"]
    return features, [columns[name] for name in features], columns["label"].astype(np.float64)


def moat_column(columns: list[np.ndarray], formula: str) -> np.ndarray:
    """One new column as MOAT's ``op_post_seq`` computes it from the original ``columns`` (see the
    module docstring; numpy's arithmetic on each column's own dtype, as pandas gave it)."""
    from scipy.special import expit
    from sklearn.preprocessing import MinMaxScaler, QuantileTransformer, StandardScaler

    stateful = {"stand_scaler": StandardScaler, "minmax_scaler": lambda: MinMaxScaler(feature_range=(-1, 1)),
                "quan_trans": lambda: QuantileTransformer(random_state=0)}
    plain = {"sqrt": np.sqrt, "square": np.square, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
             "reciprocal": np.reciprocal, "cube": lambda x: x ** 3, "sigmoid": expit, "log": np.log}
    passes_through = {"sqrt": lambda x: (x < 0).any(), "reciprocal": lambda x: (x == 0).any(),
                      "log": lambda x: (x <= 0).any()}
    binary = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
    stack: list[np.ndarray] = []
    # MOAT's QuantileTransformer keeps its default 1000 quantiles, which scikit-learn lowers to the
    # number of rows of a small split, with a warning per column: expected here, not news.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="n_quantiles .* is greater than the total number of samples")
        for token in formula.split():
            if token.isdigit():
                stack.append(columns[int(token)])
            elif token in MOAT_UNARY:
                operand = stack.pop(-1)
                if token in passes_through and passes_through[token](operand):
                    stack.append(operand)
                elif token in stateful:
                    stack.append(stateful[token]().fit_transform(operand.reshape(-1, 1)).ravel())
                else:
                    stack.append(plain[token](operand))
            elif token in MOAT_BINARY:
                first, second = stack.pop(0), stack.pop(0)  # the bottom two, MOAT's order
                stack.append(first if token == "/" and (second == 0).any() else binary[token](first, second))
            else:
                raise ValueError(f"unknown token {token!r} in {formula!r}")
    return stack[0]


def featteam_tokens(formula: str) -> list[str]:
    """A MOAT formula in featteam's language (the same operator names; column i is f<i>)."""
    from featteam.expr.vocab import feature_token

    return [feature_token(int(t)) if t.isdigit() else t for t in formula.split()]


def usable_features(evaluator, formulas: list[str]) -> list[list[str]]:
    """The formulas featteam can compute beside each other: a feature that is constant, repeats
    another column or cannot be parsed is left out, as a fit leaves it out."""
    from featteam.expr import InvalidSequence, join_features

    kept: list[list[str]] = []
    for formula in formulas:
        feature = featteam_tokens(formula)
        try:
            evaluator.check_columns(join_features(kept + [feature]))
        except (InvalidSequence, ValueError):
            continue
        kept.append(feature)
    return kept


def _evaluators(name: str, data_dir: Path, manifest: dict):
    """The table and its paper-protocol evaluators, one per forest seed (0: the protocol's own
    forest), each made once and scored as the bench scores the paper protocol."""
    from featteam.config import FitConfig
    from featteam.data import load_dataset
    from featteam.evaluation import Evaluator, make_model

    dataset = load_dataset(data_dir / manifest["datasets"][name]["file"], "label")
    tree_rows = FitConfig.from_preset("paper").max_tree_rows

    @functools.cache
    def evaluator(seed: int) -> Evaluator:
        model = "rf" if seed == 0 else make_model(dataset.task, "rf", random_state=seed)
        # MOAT's formulas run far past the 9 tokens of featteam's search; a reported score does
        # not apply the search's limits anyway, only usable_features' check does.
        return Evaluator(dataset, "paper", model=model, max_tree_rows=tree_rows, max_feature_length=64)

    return dataset, evaluator


def moat_row(name: str, moat_dir: Path, entry: dict, dataset, evaluator, forest_seeds: list[int]) -> dict:
    """Steps 1-3 and the released columns of step 4 (module docstring) for one table (``entry``:
    its MANIFEST.json entry; ``dataset`` and ``evaluator`` from :func:`_evaluators`)."""
    from featteam.expr import join_features

    base = evaluator(0)
    names, columns, _ = read_released(moat_dir / f"{name}.hdf")
    values = np.column_stack(columns).astype(np.float64)
    n_original = dataset.X.shape[1]
    formulas = names[n_original:]
    # The released rows are the protocol's test split: find each one's position by its original
    # columns (rows with equal columns take their positions in turn).
    positions: dict[tuple, list[int]] = {}
    for i, row in enumerate(base.protocol_rows):
        positions.setdefault(tuple(np.round(base.X[row], 6)), []).append(i)
    order = [(positions.get(tuple(np.round(values[r, :n_original], 6))) or [-1]).pop(0) for r in range(len(values))]
    if sorted(order) != list(range(len(base.protocol_rows))):
        raise SystemExit(f"{name}: the released rows are not the protocol's test split")
    new = np.empty((len(order), len(formulas)))
    new[order] = values[:, n_original:]

    def released_score(seed: int) -> float:
        return evaluator(seed).final_score_generated(lambda X_fit, y_fit, X_apply: (new, new))

    moat_values = np.column_stack([moat_column(columns[:n_original], f) for f in formulas]).astype(np.float64)
    kept = usable_features(base, formulas)
    return {"dataset": name, "published": entry["paper_protocol_reference"].get("moat"),
            "original": entry["paper_protocol_reference"]["original_features"],
            "moat_new_columns": len(formulas), "released": released_score(0),
            "moat_machine_difference": float(np.nanmax(np.abs(moat_values - values[:, n_original:]))),
            "featteam_language_features": len(kept),
            "featteam_language": base.final_score(join_features(kept)) if kept else None,
            "forest_seeds": forest_seeds,
            "released_reseeded": float(np.mean([released_score(s) for s in forest_seeds])) if forest_seeds else None,
            "original_reseeded": (float(np.mean([evaluator(s).final_score(None) for s in forest_seeds]))
                                  if forest_seeds else None)}


def featteam_row(name: str, evaluator, runs: Path, forest_seeds: list[int]) -> dict:
    """featteam's output of a finished paper-protocol bench run, by the protocol's forest and by
    forests of ``forest_seeds`` (empty where the run has no output)."""
    from featteam.expr import Transformation

    path = runs / "runs" / f"{name}__paper__featteam__s0" / "transformation.json"
    if not path.exists():
        return {}
    transformation = Transformation.load(path)
    tokens = transformation.tokens or None
    row = {"featteam": evaluator(0).final_score(tokens), "featteam_new_columns": len(transformation.formulas)}
    if forest_seeds:
        row["featteam_reseeded"] = float(np.mean([evaluator(s).final_score(tokens) for s in forest_seeds]))
    return row


def _cell(value) -> str:
    return "–" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("moat_test_dir", type=Path, help="the Test/ folder of a MOAT checkout")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--featteam-runs", type=Path, help="a paper-protocol bench output (its runs/ folder)")
    parser.add_argument("--forest-seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5])
    parser.add_argument("--datasets", nargs="*", help="default: every table with a released split")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON lines")
    parser.add_argument("--moat-rows", type=Path,
                        help="JSON lines of an earlier --out: their MOAT columns are reused (same forest seeds)")
    args = parser.parse_args(argv)
    manifest = json.loads((args.data_dir / "MANIFEST.json").read_text())
    names = args.datasets or sorted(n for n in manifest["datasets"] if (args.moat_test_dir / f"{n}.hdf").exists())
    previous = {}
    if args.moat_rows:
        for line in args.moat_rows.read_text().splitlines():
            row = json.loads(line)
            if row.get("forest_seeds") == args.forest_seeds:
                previous[row["dataset"]] = {k: v for k, v in row.items() if k not in FEATTEAM_FIELDS}
    rows = []
    header = ("dataset", "MOAT new columns", "published", "released (featteam's evaluator)",
              "MOAT's machine: largest difference from the released values", "formulas in featteam's language (columns kept)",
              "released, forests re-seeded", "featteam", "featteam, forests re-seeded")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in names:
        row = previous.get(name)
        if row is None or args.featteam_runs:
            dataset, evaluator = _evaluators(name, args.data_dir, manifest)  # once per table, for both rows
        if row is None:
            row = moat_row(name, args.moat_test_dir, manifest["datasets"][name], dataset, evaluator, args.forest_seeds)
        if args.featteam_runs:
            row.update(featteam_row(name, evaluator, args.featteam_runs, args.forest_seeds))
        rows.append(row)
        print(f"| {name} | {row['moat_new_columns']} | {_cell(row['published'])} | {_cell(row['released'])} | "
              f"{row['moat_machine_difference']:.1g} | {_cell(row['featteam_language'])} "
              f"({row['featteam_language_features']}) | {_cell(row['released_reseeded'])} | "
              f"{_cell(row.get('featteam'))} | {_cell(row.get('featteam_reseeded'))} |", flush=True)
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(json.dumps(row) + "\n")
    both = [r for r in rows if r.get("featteam") is not None and r["published"] is not None]
    if both:
        from featteam.bench.report import TIE

        def wins(ours: str, theirs: str) -> int:
            return sum(r[ours] >= r[theirs] - TIE for r in both if r.get(ours) is not None)
        print(f"\nfeatteam >= MOAT (a tie within {TIE}): {wins('featteam', 'released')} of {len(both)} as published; "
              f"{wins('featteam_reseeded', 'released_reseeded')} of {len(both)} with the forests re-seeded")
        for key in ("released", "released_reseeded", "featteam", "featteam_reseeded", "featteam_language"):
            reference = "original_reseeded" if key.endswith("reseeded") else "original"
            gains = [r[key] - r[reference] for r in both if r.get(key) is not None]
            if gains:
                print(f"mean gain over the original features, {key}: {np.mean(gains):+.4f} ({len(gains)} tables)")


if __name__ == "__main__":
    main(sys.argv[1:])
