"""The ``featteam`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from .errors import FeatteamError

logger = logging.getLogger("featteam")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="table: CSV, CSV.gz or Parquet")
    parser.add_argument("--target", required=True, help="name of the target column")
    parser.add_argument("--task", choices=["classification", "regression"], help="override the inferred task")
    parser.add_argument("--nan", choices=["impute", "refuse"], default="impute",
                        help="missing or infinite feature values: impute with training medians (default) or refuse")
    parser.add_argument("--drop-redundant", action="store_true", help="drop constant and duplicate columns")


def _add_evaluation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", choices=["honest", "paper"], default="honest",
                        help="honest: search on train, score test once (default); paper: the literature's protocol")
    parser.add_argument("--model", default="rf", choices=["rf", "et"], help="downstream model (default: rf)")
    parser.add_argument("--n-jobs", type=int, default=1, help="parallel scoring jobs (results do not depend on it)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featteam",
        description="Generative feature transformation by LLM-ML teaming: readable new feature columns "
                    "that make a downstream model score better.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("evaluate", help="score the original features (or a transformation) of a table")
    _add_data_options(p)
    _add_evaluation_options(p)
    p.add_argument("--transformation", help="also score this transformation.json")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("transform", help="apply a saved transformation to a table")
    p.add_argument("transformation", help="transformation.json written by `featteam fit`")
    p.add_argument("data", help="table: CSV, CSV.gz or Parquet")
    p.add_argument("--out", required=True, help="output CSV (or .parquet): the input columns plus the new ones")

    p = sub.add_parser("show", help="print the formulas of a saved transformation")
    p.add_argument("transformation", help="transformation.json")
    p.add_argument("--json", action="store_true", help="print as JSON")

    from . import pipeline_cli  # the fit command lives with the pipeline
    pipeline_cli.add_commands(sub)
    from .bench import cli as bench_cli
    bench_cli.add_commands(sub)
    return parser


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .evaluation import Evaluator, describe_protocol
    from .expr import Transformation

    dataset = load_dataset(args.data, args.target, task=args.task, nan=args.nan, drop_redundant=args.drop_redundant)
    evaluator = Evaluator(dataset, protocol=args.protocol, model=args.model, n_jobs=args.n_jobs)
    result = {"dataset": dataset.name, "rows": dataset.n_rows, "features": dataset.X.shape[1],
              "task": dataset.task, "metric": evaluator.metric_name, "protocol": args.protocol,
              "original_features": round(evaluator.final_score(None), 6)}
    if args.transformation:
        transformation = Transformation.load(args.transformation)
        tokens = _tokens_for(transformation, list(dataset.X.columns))
        result["transformation"] = round(evaluator.final_score(tokens), 6)
        result["formulas"] = transformation.formulas
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{dataset.name}: {dataset.n_rows} rows, {result['features']} features, {dataset.task}")
        print(f"protocol {args.protocol}: {describe_protocol(args.protocol)}")
        print(f"{evaluator.metric_name} of the original features: {result['original_features']:.4f}")
        if "transformation" in result:
            print(f"{evaluator.metric_name} with the transformation:   {result['transformation']:.4f}")
    return 0


def _tokens_for(transformation, columns: list[str]) -> list[str]:
    """The transformation's tokens re-indexed to ``columns`` (matched by name)."""
    from .expr import feature_index, feature_token

    missing = [c for c in transformation.input_columns if c not in columns]
    if missing:
        raise FeatteamError(f"the table lacks the transformation's column(s) {missing}")
    out = []
    for token in transformation.tokens:
        index = feature_index(token)
        out.append(token if index is None else feature_token(columns.index(transformation.input_columns[index])))
    return out


def _cmd_transform(args: argparse.Namespace) -> int:
    from .data import Preprocessor, load_table
    from .expr import Transformation

    transformation = Transformation.load(args.transformation)
    frame = load_table(args.data)
    preprocessing = transformation.metadata.get("preprocessor")
    if preprocessing:
        numeric = Preprocessor.from_dict(preprocessing).transform(frame)
    else:
        numeric = frame
    new = transformation.transform(numeric)
    out = frame.copy()
    for name, column in zip(transformation.formulas, new.T):
        out[name if name not in out.columns else f"new: {name}"] = column
    path = Path(args.out)
    if path.suffix.lower() in (".parquet", ".pq"):
        out.to_parquet(path)
    else:
        out.to_csv(path, index=False)
    print(f"wrote {path}: {len(out)} rows, {frame.shape[1]} input columns + {new.shape[1]} new features")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from .expr import Transformation

    transformation = Transformation.load(args.transformation)
    if args.json:
        print(json.dumps({"formulas": transformation.formulas, "postfix": transformation.postfix,
                          "input_columns": transformation.input_columns,
                          "metadata": transformation.metadata}, indent=2))
        return 0
    print(f"{len(transformation.formulas)} new feature(s) over {len(transformation.input_columns)} input columns:")
    for i, formula in enumerate(transformation.formulas, 1):
        print(f"  {i}. {formula}")
    for key in ("task", "protocol", "metric", "original_score", "score"):
        if key in transformation.metadata:
            print(f"{key}: {transformation.metadata[key]}")
    return 0


COMMANDS = {"evaluate": _cmd_evaluate, "transform": _cmd_transform, "show": _cmd_show}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for reports that quote their command
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.version:
        from . import __version__
        print(f"featteam {__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return 2
    handler = COMMANDS.get(args.command)
    if handler is None:
        from . import pipeline_cli
        from .bench import cli as bench_cli
        handler = {**pipeline_cli.COMMANDS, **bench_cli.COMMANDS}[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("featteam: interrupted", file=sys.stderr)
        return 130
    except (FeatteamError, ValueError, OSError, KeyError, TypeError) as exc:
        if args.verbose >= 2:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"featteam: error: {message}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug of ours: still one line, the traceback with -vv
        if args.verbose >= 2:
            raise
        print(f"featteam: internal error: {type(exc).__name__}: {exc} (run with -vv for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
