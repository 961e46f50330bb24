"""The ``fit`` subcommand: the method's steps over a run directory."""

from __future__ import annotations

import argparse

from .pipeline import PRESETS, STEPS, FitConfig, Run


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the pipeline's subcommands on the ``featteam`` parser."""
    p = sub.add_parser("fit", help="search new features for a table (the four steps of the method)")
    p.add_argument("data", help="table: CSV, CSV.gz or Parquet")
    p.add_argument("--target", required=True, help="name of the target column")
    p.add_argument("--out", required=True, help="run directory (a stopped run resumes from it)")
    p.add_argument("--task", choices=["classification", "regression"], help="override the inferred task")
    p.add_argument("--nan", choices=["impute", "refuse"], default="impute")
    p.add_argument("--drop-redundant", action="store_true", help="drop constant and duplicate columns")
    p.add_argument("--preset", choices=list(PRESETS), default="default", help="sizes of the search (default: default)")
    p.add_argument("--protocol", choices=["honest", "paper"], default="honest")
    p.add_argument("--stop-after", choices=list(STEPS), default="teaming", help="run the steps up to this one")
    p.add_argument("--teacher", choices=["local", "openai", "none"], help="teacher LLM (default: local)")
    p.add_argument("--model", dest="teacher_model",
                   help="teacher model: a local model directory or GGUF file, or the endpoint's model name")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (default: FEATTEAM_BASE_URL, OPENAI_BASE_URL)")
    p.add_argument("--api-key", help="API key (default: FEATTEAM_API_KEY, OPENAI_API_KEY); never written to disk")
    p.add_argument("--max-calls", type=int, help="budget: most teacher calls")
    p.add_argument("--max-tokens", type=int, help="budget: most teacher tokens")
    p.add_argument("--anonymous", action="store_true", help="show the teacher f0..fn instead of column names")
    p.add_argument("--n-golden", type=int, help="distinct valid golden examples wanted")
    p.add_argument("--model-downstream", dest="downstream_model", choices=["rf", "et"], help="downstream model")
    p.add_argument("--max-search-rows", type=int,
                   help="score candidates on a stratified sample of this many rows (large tables); "
                        "the reported score uses every row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-jobs", type=int, default=-1,
                   help="parallel scoring jobs, -1 for all cores (default; results do not depend on it)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _cmd_fit(args: argparse.Namespace) -> int:
    overrides = {name: getattr(args, name) for name in (
        "protocol", "teacher", "teacher_model", "base_url", "max_calls", "max_tokens", "n_golden",
        "downstream_model", "max_search_rows", "seed")}
    if args.anonymous:
        overrides["anonymous"] = True
    config = FitConfig.from_preset(args.preset, **overrides)
    run = Run(args.out, args.data, args.target, config, n_jobs=args.n_jobs, api_key=args.api_key,
              progress=not args.no_progress, task=args.task, nan=args.nan, drop_redundant=args.drop_redundant)
    report = run.execute(stop_after=args.stop_after)
    print_summary(report, args.out)
    return 0


def print_summary(report: dict, out: str) -> None:
    data = report["data"]
    print(f"\n{data['name']}: {data['rows']} rows, {data['features']} features, {data['task']}; "
          f"protocol {report['protocol']}, metric {report['metric']}")
    print(f"search score of the original features: {report['original_search_score']:.4f}")
    golden = report.get("steps", {}).get("golden")
    if golden:
        print(f"golden set: {golden['n_valid']} valid examples "
              f"(best {golden['best_score']:.4f}, median {golden['median_score']:.4f}) in {golden['seconds']:.0f} s")
        for source, info in golden["by_source"].items():
            errors = ", ".join(f"{k} {v}" for k, v in info["errors"].items()) or "none"
            print(f"  {source:20s} {info['valid']:4d} valid of {info['proposed']:4d}; errors: {errors}")
        teacher = golden.get("teacher")
        if teacher:
            usage = teacher["usage"]
            print(f"  teacher {teacher['backend']} ({teacher.get('model')}): {usage['calls']} calls, "
                  f"{usage['cache_hits']} cache hits, {usage['prompt_tokens'] + usage['completion_tokens']} tokens; "
                  f"stopped: {teacher['stopped_because']}")
    steps = report.get("steps", {})
    latent = steps.get("latent")
    if latent:
        print(f"latent model: held-out token accuracy {latent['validation_token_accuracy']:.3f}, evaluator "
              f"Spearman {_fmt(latent['validation_evaluator_spearman'])}, trained in {latent['train_seconds']:.0f} s")
    for step, label in (("latent", "ml"), ("teaming", "teaming")):
        entry = steps.get(step)
        if entry:
            print(f"{label:8s} decoder: unmasked error rate {_fmt(entry['unmasked']['error_rate'])} "
                  f"{entry['unmasked']['errors'] or ''}; masked best {_fmt(entry['masked']['best_score'])}")
    student = steps.get("student")
    if student:
        before, after = student["unmasked_before_finetuning"], student["unmasked_after_finetuning"]
        print(f"student: unmasked validity {before['valid']}/{before['n']} before fine-tuning, "
              f"{after['valid']}/{after['n']} after; fine-tuned in {student['finetune']['seconds']:.0f} s")
    result = report.get("result")
    if result:
        print(f"\nchosen ({result['mode']}): {', '.join(result['formulas'])}")
        print(f"{report['metric']} under the {report['protocol']} protocol: original {result['original_score']:.4f} "
              f"-> with the new features {result['score']:.4f} ({result['gain']:+.4f})")
        print(f"written: {out}/transformation.json (apply with `featteam transform`), report.json, "
              "candidates.jsonl, scores_by_mode.png")
    else:
        print(f"results in {out}/ (report.json, golden.jsonl, candidates.jsonl)")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


COMMANDS = {"fit": _cmd_fit}
