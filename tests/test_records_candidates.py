"""Candidate lines of a run file whose values cannot be used (a score that is not a finite number,
a valid candidate whose tokens are no transformation of the table's columns) are skipped by the
run's readers with one warning, not left to fail a later step or to sort first."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from featteam.candidates import Candidate, Mode, read_candidates, top_k
from featteam.config import FitConfig
from featteam.expr import ErrorKind
from featteam.pipeline import Run
from featteam.records import write_jsonl
from featteam.teacher import load_golden

GOOD = [
    Candidate(Mode.EXPLORE, ["f0", "f1", "+"], source="explore:random", score=0.5),
    Candidate(Mode.TEACHER, ["f2", "sqrt"], source="teacher:openai", score=0.3),
    # valid and not scored (screened out): no score is not a bad score
    Candidate(Mode.ML, ["f0", "f2", "*"], source="ml", score=None, message="screened out"),
    # rejected: a rejection keeps the tokens it was rejected for, whatever they are
    Candidate(Mode.TEACHER, ["f9", "sqrt"], source="teacher:openai", error=ErrorKind.UNKNOWN_TOKEN,
              message="unknown token 'f9'"),
    Candidate(Mode.TEACHER, None, source="teacher:openai", error=ErrorKind.UNPARSABLE, message="no [...]"),
]
BAD = [
    '{"mode": "explore", "tokens": ["f0", "f1", "*"], "score": NaN}',
    '{"mode": "explore", "tokens": ["f0", "log"], "score": Infinity}',
    '{"mode": "explore", "tokens": ["f1", "log"], "score": -Infinity}',
    '{"mode": "ml", "tokens": ["f1", "cube"], "score": 1e400}',             # read as infinity
    '{"mode": "ml", "tokens": ["f9", "sqrt"], "score": 0.9}',               # no column f9 of 3
    '{"mode": "teacher", "tokens": ["f7", "tanh"], "score": 0.95}',
    '{"mode": "explore", "tokens": ["__import__", "zzz"], "score": 0.5}',  # no tokens at all
    '{"mode": "explore", "tokens": ["f0", "+"], "score": 0.5}',            # an operator without operands
    '{"mode": "explore", "tokens": ["f0"], "score": 0.5}',                 # a bare copy
    '{"mode": "explore", "tokens": [], "score": 0.5}',                     # empty
]


def _file(path):
    write_jsonl(path, GOOD)
    with open(path, "a") as handle:
        handle.write("\n".join(BAD) + "\n")
    return path


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "featteam.candidates"]


def test_lines_with_unusable_values_are_skipped_with_one_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = _file(tmp_path / "candidates.jsonl")
    read = read_candidates(path, n_features=3)
    assert read == GOOD
    assert [c.tokens for c in top_k(read, 3)] == [["f0", "f1", "+"], ["f2", "sqrt"]]  # no NaN sorted first
    (warning,) = _warnings(caplog)
    assert warning.startswith(f"{path}: 10 candidate lines skipped (4 with a score that is not a finite number, "
                              "6 with tokens that are no transformation of the table's 3 columns)")


def test_without_the_number_of_columns_only_the_structure_is_checked(tmp_path):
    read = read_candidates(_file(tmp_path / "candidates.jsonl"))
    assert [c.tokens for c in read] == [c.tokens for c in GOOD] + [["f9", "sqrt"], ["f7", "tanh"]]


def test_load_golden_checks_the_same(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    assert load_golden(_file(tmp_path / "golden.jsonl"), n_features=3) == GOOD
    assert len(_warnings(caplog)) == 1


def test_the_runs_readers_check_against_the_tables_columns(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    frame["y"] = frame["a"] * frame["b"]
    frame.to_csv(tmp_path / "table.csv", index=False)
    run = Run(tmp_path / "run", tmp_path / "table.csv", "y", FitConfig.from_preset("quick", teacher="none"),
              n_jobs=1, progress=False)
    (tmp_path / "run").mkdir()
    for name in ("golden.jsonl", "candidates.jsonl"):
        _file(tmp_path / "run" / name)
        assert run.read_candidates(name) == GOOD
    assert len(_warnings(caplog)) == 2
    assert all("of the table's 3 columns" in w for w in _warnings(caplog))
    # A step's rewrite of its file keeps the other modes' usable lines only.
    from featteam.steps.latent import LatentStep

    run.write_candidates(LatentStep(), [])
    lines = [json.loads(line) for line in (tmp_path / "run" / "candidates.jsonl").read_text().splitlines()]
    assert [line["tokens"] for line in lines] == [c.tokens for c in GOOD if c.mode is not Mode.ML]
