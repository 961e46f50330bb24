"""The ``featteam`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from .errors import FeatteamError

logger = logging.getLogger("featteam")

#: Errors that mean "the input or the environment is wrong", reported as one line.  ValueError
#: covers what pandas' and the standard library's parsers raise on a bad file (featteam's own,
#: DataError, InvalidSequence and TransformationError, are FeatteamErrors and ValueErrors); KeyError
#: and TypeError are bugs of ours and are reported as internal errors.
USER_ERRORS: tuple[type[BaseException], ...] = (FeatteamError, ValueError, OSError)


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option: works, and says what to write instead."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"featteam: warning: {option_string} is deprecated here; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="table: CSV, CSV.gz or Parquet")
    parser.add_argument("--target", required=True, help="name of the target column")
    parser.add_argument("--task", choices=["classification", "regression"], help="override the inferred task")
    parser.add_argument("--nan", choices=["impute", "refuse"], default="impute",
                        help="missing or infinite feature values: impute with training medians (default) or refuse")
    parser.add_argument("--drop-redundant", action="store_true", help="drop constant and duplicate columns")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_config_options(parser: argparse.ArgumentParser) -> list[str]:
    """One option per FitConfig field marked ``cli`` (type, choices and help from the field);
    returns the field names.  Unset options keep the preset's value."""
    import dataclasses
    import typing

    from .config import FitConfig

    hints = typing.get_type_hints(FitConfig)
    names = []
    for f in dataclasses.fields(FitConfig):
        if not f.metadata.get("cli"):
            continue
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        kwargs: dict = {"dest": f.name, "default": None, "help": f.metadata["help"]}
        if typing.get_origin(hint) is typing.Literal:
            kwargs["choices"] = list(typing.get_args(hint))
        elif hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction  # --screen / --no-screen
        else:
            base = hint if isinstance(hint, type) else (args[0] if args else str)
            kwargs["type"] = base
            if typing.get_origin(base) is typing.Literal:
                kwargs.pop("type")
                kwargs["choices"] = list(typing.get_args(base))
        parser.add_argument(_option(f.name), **kwargs)
        for alias in f.metadata.get("aliases", ()):
            alias_kwargs = {k: v for k, v in kwargs.items() if k not in ("action", "help")}
            parser.add_argument(alias, action=DeprecatedAlias, new=_option(f.name), help=argparse.SUPPRESS,
                                **alias_kwargs)
        names.append(f.name)
    return names


def _add_evaluation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", choices=["honest", "paper"], default="honest",
                        help="honest: search on train, score test once (default); paper: the literature's protocol")
    parser.add_argument("--downstream-model", default="rf", choices=["rf", "et"],
                        help="downstream model (default: rf)")
    parser.add_argument("--model", dest="downstream_model", choices=["rf", "et"], action=DeprecatedAlias,
                        new="--downstream-model", help=argparse.SUPPRESS)
    parser.add_argument("--n-jobs", type=_n_jobs, default=1, help="parallel scoring jobs (results do not depend on it)")
    from .config import FitConfig
    parser.add_argument("--max-tree-rows", type=int, default=FitConfig.max_tree_rows,
                        help="rows each tree of the downstream forest draws when it is fitted on more (as "
                             "`featteam fit --max-tree-rows`; 0: no bound)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="honest protocol: seed of the train/test split (as `featteam fit --split-seed`; "
                             "default 0, the literature's)")


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

    p = sub.add_parser("fit", help="search new features for a table (the four steps of the method)")
    _add_data_options(p)
    p.add_argument("--out", required=True, help="run directory (a stopped run resumes from it)")
    from .config import PRESETS
    from .steps import STEP_NAMES
    p.add_argument("--preset", choices=list(PRESETS), default="default", help="sizes of the search (default: default)")
    p.add_argument("--stop-after", choices=list(STEP_NAMES), default=STEP_NAMES[-1],
                   help="run the steps up to this one")
    p.set_defaults(config_fields=_add_config_options(p))
    p.add_argument("--api-key", help="API key (default: FEATTEAM_API_KEY, OPENAI_API_KEY); never written to disk")
    p.add_argument("--n-jobs", type=_n_jobs, default=-1,
                   help="parallel scoring jobs, -1 for all cores (default; results do not depend on it)")
    from .engine import SCHEDULER_ENV
    p.add_argument("--scheduler", default=os.environ.get(SCHEDULER_ENV) or None, metavar="tcp://HOST:PORT",
                   help=f"score and screen candidates on this Dask cluster's workers instead of --n-jobs local "
                        f"processes (default: ${SCHEDULER_ENV}; needs featteam[cluster]; results do not depend on it)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")

    p = sub.add_parser("transform", help="apply a saved transformation to a table")
    p.add_argument("transformation", help="transformation.json written by `featteam fit`")
    p.add_argument("data", help="table: CSV, CSV.gz or Parquet")
    p.add_argument("--out", required=True, help="output CSV (or .parquet): the input columns plus the new ones")

    p = sub.add_parser("prepare", help="do the one-time work ahead of the first fit: convert the local model and "
                                       "find the student's pre-training on the expression language (shipped for "
                                       "the embedded model; for another, trained once and cached)")
    p.add_argument("--student-model", default=None,
                   help="the student's base model: a model directory or GGUF file (default: the embedded SmolLM2-135M)")
    p.add_argument("--no-shipped", action="store_true",
                   help="train the pre-training here (or read it from the cache) even where featteam ships it "
                        "for this model: how the shipped state is made, and how to check it")
    p.add_argument("--ship", action="store_true",
                   help="for featteam's maintainers: train it afresh here (never from the cache) and copy it into "
                        "the package's shipped states (in a source checkout featteam/models/pretrained/), "
                        "replacing the one shipped for this model")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")

    p = sub.add_parser("show", help="print the formulas of a saved transformation")
    p.add_argument("transformation", help="transformation.json")
    p.add_argument("--json", action="store_true", help="print as JSON")

    from .bench import cli as bench_cli
    bench_cli.add_commands(sub)
    return parser


def _cmd_fit(args: argparse.Namespace) -> int:
    from .config import FitConfig
    from .pipeline import Run
    from .report import summary_text

    config = FitConfig.from_preset(args.preset, **{name: getattr(args, name) for name in args.config_fields})
    run = Run(args.out, args.data, args.target, config, n_jobs=args.n_jobs, api_key=args.api_key,
              progress=not args.no_progress, task=args.task, nan=args.nan, drop_redundant=args.drop_redundant,
              scheduler=args.scheduler)
    report = run.execute(stop_after=args.stop_after)
    print(summary_text(report, args.out))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import Preprocessor, load_table, prepare
    from .evaluation import Evaluator, describe_protocol
    from .expr import Transformation

    transformation = Transformation.load(args.transformation) if args.transformation else None
    saved = None if transformation is None else Preprocessor.saved_in(transformation.metadata)
    table = load_table(args.data)
    if saved is not None and args.target in table.columns:
        # The table read as the transformation's fit read it (its categories' codes, dates as
        # seconds, its columns), as `featteam transform` applies it: the formulas are scored on
        # the numbers they were found on.
        table = saved.transform(table).assign(**{args.target: table[args.target].to_numpy()})
    dataset = prepare(table, args.target, task=args.task, nan=args.nan, name=Path(args.data).name.split(".")[0],
                      drop_redundant=args.drop_redundant)
    evaluator = Evaluator(dataset, protocol=args.protocol, model=args.downstream_model, n_jobs=args.n_jobs,
                          max_tree_rows=args.max_tree_rows, split_seed=args.split_seed)
    dataset = evaluator.dataset  # as the protocol reads it (honest: its columns read on the training split)
    result = {"dataset": dataset.name, "rows": dataset.n_rows, "features": dataset.X.shape[1],
              "task": dataset.task, "metric": evaluator.metric_name, "protocol": args.protocol,
              "original_features": round(evaluator.final_score(None), 6)}
    if transformation is not None:
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


def _n_jobs(text: str) -> int:
    """``--n-jobs``: a number of processes, or -1 (-2, ...) for all cores (but one, ...), as joblib reads it."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("0 jobs cannot score anything: give a number of processes, or -1 for all "
                                         "cores")
    return value


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
    from .data import Preprocessor, check_output_path, load_table, write_table
    from .expr import Transformation, output_names

    path = check_output_path(args.out)  # a suffix we cannot write is refused before any work
    transformation = Transformation.load(args.transformation)
    frame = load_table(args.data)
    preprocessor = Preprocessor.saved_in(transformation.metadata)
    numeric = frame if preprocessor is None else preprocessor.transform(frame)
    new = transformation.transform(numeric)
    out = frame.copy()
    for name, column in zip(output_names([str(c) for c in out.columns], transformation.formulas), new.T):
        out[name] = column
    write_table(out, path)  # atomically: a killed transform leaves no half file
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


def _cmd_prepare(args: argparse.Namespace) -> int:
    from .models.pretrain import PretrainConfig, ensure_pretrained
    from .models.student import StudentConfig

    # The pre-training a fit with this base model starts from.
    config = PretrainConfig.for_student(StudentConfig())
    if args.ship:
        from .models.pretrain import train_and_ship

        metrics, _ = train_and_ship(args.student_model, config, progress=not args.no_progress)
        how = "trained now"
    else:
        metrics = ensure_pretrained(args.student_model, config, progress=not args.no_progress,
                                    use_shipped=not args.no_shipped)
        how = metrics.origin
    print(f"student pre-trained on the expression language ({how}): {metrics.steps} steps, "
          f"{metrics.seconds:.0f} s once, {metrics.disk_bytes / 2**20:.1f} MiB in {metrics.directory}")
    return 0


COMMANDS = {"evaluate": _cmd_evaluate, "fit": _cmd_fit, "transform": _cmd_transform, "show": _cmd_show,
            "prepare": _cmd_prepare}


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
        from .bench import cli as bench_cli
        handler = bench_cli.COMMANDS[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("featteam: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:  # the input or the environment: the message says what to change
        if args.verbose >= 2:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"featteam: error: {message}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug of ours: one line for the user, the traceback with -vv for us
        if args.verbose >= 2:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"featteam: internal error: {type(exc).__name__}: {message}\n"
              "featteam: this is a bug in featteam, please report it with the output of the same command "
              "run with -vv (it shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
