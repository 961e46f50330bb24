"""Damaged or hostile run files (``candidates.jsonl``, the score log, ``report.json``): a line that
is not what it should be is skipped (and scored again), never taken in with the wrong type, and
never stops the run with a traceback."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from featteam.candidates import Candidate, Mode
from featteam.data import prepare
from featteam.evaluation import Evaluator
from featteam.records import read_jsonl, write_jsonl
from featteam.report import RunReport


def test_candidate_lines_of_the_wrong_types_are_skipped(tmp_path, caplog):
    path = tmp_path / "candidates.jsonl"
    good = Candidate(Mode.EXPLORE, ["f0", "f1", "+"], source="explore", score=0.5)
    write_jsonl(path, [good])
    lines = [
        {"mode": "explore", "tokens": "f0 f1 +", "score": 0.9},          # a string is not a token list
        {"mode": "explore", "tokens": ["f0", "f1", "+"], "score": "0.9"},  # a string is not a score
        {"mode": "explore", "tokens": ["f0", 1, "+"], "score": 0.9},      # a token that is no string
        {"mode": "explore", "tokens": ["f0"], "score": True},             # a boolean is not a score
        {"mode": "oracle", "tokens": ["f0"], "score": 0.9},               # no such mode
        {"mode": None, "tokens": ["f0"], "score": 0.9},                   # null where a mode must be
        {"mode": "explore", "tokens": ["f0"], "finished": None},          # null where true or false must be
        {"mode": "explore", "tokens": [None], "score": 0.9},              # a null token
    ]
    with open(path, "ab") as handle:
        for line in lines:
            handle.write((json.dumps(line) + "\n").encode())
        handle.write(b'{"mode": "explore", "tokens": ["f0"], "source": "\xff\xfe"}\n')  # not UTF-8
        handle.write(b"[" * 100_000 + b"\n")  # nested past Python's recursion limit
    read = read_jsonl(path, Candidate)
    assert read == [good]
    assert caplog.text.count("skipped") == len(lines) + 2


def _evaluator() -> Evaluator:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    frame["y"] = frame["a"] * frame["b"]
    return Evaluator(prepare(frame, "y"), n_jobs=1)


def test_score_log_lines_of_the_wrong_types_are_scored_again(tmp_path):
    path = tmp_path / "scores.jsonl"
    rows = [
        {"tokens": [], "score": None, "error": None},                  # neither a score nor an error
        {"tokens": "f0 f1 *", "score": 0.5, "error": None},            # tokens as one string
        {"tokens": ["f0", "f1", "*"], "score": "0.5", "error": None},  # a score as a string
        {"tokens": ["f0", "sqrt"], "score": float("nan"), "error": None},
        {"tokens": ["f0", "cube"], "score": 0.5, "error": "no_such_error"},
    ]
    path.write_bytes(b"".join((json.dumps(r) + "\n").encode() for r in rows) + b"\xff\n" + b"[" * 100_000)
    evaluator = _evaluator()
    evaluator.persist(path)
    assert evaluator.cache == {}
    original = evaluator.score_original()  # computed, not read as None from the bad first line
    assert isinstance(original, float) and np.isfinite(original)
    assert evaluator.cache[()].score == original
    again = _evaluator()
    again.persist(path)  # the good line appended after the torn tail is read back
    assert again.cache[()].score == original


def test_a_report_that_cannot_be_decoded_starts_afresh(tmp_path):
    path = tmp_path / "report.json"
    for content in (b"\xff\xfe{}", b"[" * 100_000, b'{"schema_version": "x"'):
        path.write_bytes(content)
        assert RunReport.load(path) == RunReport()
