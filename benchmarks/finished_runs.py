"""Finished runs resumed for analysis: the part the replay scripts (``choice_lab.py``,
``paper_sizes.py``, ``refine_lab.py``, ``rescore_lab.py``, ``choice_rows_lab.py``, ``nested_lab.py``, ...) share.
Nothing is searched again: a run whose steps are not all done with this featteam is refused."""

from __future__ import annotations

import argparse
import functools
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence


@dataclass
class FinishedRun:
    """A finished run, loaded: what the choice reads."""

    config: Any
    dataset: Any
    evaluator: Any
    #: the screen's own best features (the bank's pool)
    pool: list
    #: every scored candidate of every mode, the golden set's included
    candidates: list

    def finalists(self, max_features: int | None = None) -> tuple[list, list]:
        """The choice's finalists and the feature bank, built as the fit built them (at most
        ``max_features`` new features each: by default the fit's ``max_selected_features``)."""
        from featteam.selection import _options, best_of_each_mode

        return _options(self.candidates, best_of_each_mode(self.candidates), self.evaluator,
                        self.config.max_selected_features if max_features is None else max_features,
                        self.pool, list(self.dataset.X.columns))


@contextmanager
def resumed(run_dir: Path, protocol: str) -> Iterator[FinishedRun]:
    """The finished run in ``run_dir`` under ``protocol``, with a one-process engine closed on exit.

    Raises SystemExit when the run is of another protocol or a step is not done."""
    from featteam.engine import make_engine
    from featteam.pipeline import Run
    from featteam.report import RunReport
    from featteam.steps import STEPS

    report = RunReport.load(run_dir / "report.json")
    run = Run(run_dir, report.data.path, report.data.target, report.config, n_jobs=1, progress=False)
    engine = make_engine(1, None)
    try:
        dataset, evaluator = run.load(engine)
        if evaluator.protocol != protocol:
            raise SystemExit(f"{run_dir}: not a run under the {protocol} protocol")
        for step in STEPS:
            if not run.done(step):
                raise SystemExit(f"{run_dir}: the {step.name} step is not done; this script never runs a step")
        candidates = [c for c in run.read_candidates("golden.jsonl") + run.read_candidates() if c.scored]
        yield FinishedRun(report.config, dataset, evaluator, run.screen(evaluator), candidates)
    finally:
        engine.close()


def replay_into(out: Path, runs: Sequence[Path],
                replay: Callable[[Path], list[dict]]) -> Iterator[tuple[Path, list[dict]]]:
    """``replay`` each of ``runs`` not yet in ``out`` (JSON lines, each with its ``run``'s name)
    and append its rows there: a stopped analysis resumes.  Yields each run replayed, with its rows."""
    done = set()
    if out.exists():
        done = {json.loads(line)["run"] for line in out.read_text().splitlines() if line.strip()}
    for run_dir in runs:
        if run_dir.name in done:
            continue
        rows = replay(run_dir)
        with out.open("a") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
        yield run_dir, rows


def replay_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments every choice replay takes: run directories, the choice's margin, the output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--margin", type=float, default=1.5, help="the choice's margin (default: the fit's, 1.5)")
    parser.add_argument("--out", type=Path, required=True)
    return parser


def gain_on_test_split(evaluator: Any, tokens: Sequence[str], original: float) -> float:
    """A replayed choice's gain on the test split, scored as a fit scores its own (0 when nothing is added)."""
    return (evaluator.final_score(tokens) - original) if tokens else 0.0


def remembered(method: Callable) -> Callable:
    """``method`` (of one evaluator) with its results kept by its arguments (token sequences as tuples)."""
    memory: dict = {}

    @functools.wraps(method)
    def remembering(tokens, *args):
        key = (tuple(tokens or ()), *args)
        if key not in memory:
            memory[key] = method(tokens, *args)
        return memory[key]
    return remembering
