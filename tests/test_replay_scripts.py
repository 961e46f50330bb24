"""The analysis scripts that replay the choice on finished runs (benchmarks/choice_lab.py,
refine_lab.py, choice_brier.py, rescore_lab.py, choice_rows_lab.py, nested_lab.py,
peer_columns_lab.py): they read featteam's selection internals, so a change there must not
break them unseen."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featteam import evaluation
from featteam.config import FitConfig
from featteam.pipeline import Run
from featteam.selection import finalist_kind

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = dict(n_golden=16, teacher="none", search_top_k=2, step_sizes=(1.0, 4.0), beam=2, latent_epochs=30,
            student_epochs=1, student_samples=4)


def _script(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import finished_runs beside them
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(240, 4))
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    signal = X[:, 0] * X[:, 1] + np.abs(X[:, 2]) + 0.3 * rng.normal(size=240)
    frame["y"] = np.where(signal > np.median(signal), "yes", "no")  # a classification: choice_brier reads it
    root = tmp_path_factory.mktemp("replay")
    frame.to_csv(root / "table.csv", index=False)
    report = Run(root / "run", root / "table.csv", "y", FitConfig.from_preset("quick", **TINY), n_jobs=1,
                 progress=False).execute()
    return root / "run", report


@pytest.mark.slow
def test_the_replay_scripts_give_back_the_fits_choice(finished_run, tmp_path):
    run_dir, report = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)  # the scripts resume the run, which appends to its score logs

    _script("choice_lab").main([str(copy), "--out", str(tmp_path / "choice.jsonl")])
    rows = [json.loads(line) for line in (tmp_path / "choice.jsonl").read_text().splitlines()]
    assert {row["label"] for row in rows} == {f.label for f in report.result.finalists}
    chosen = next(row for row in rows if row["label"] == report.result.chosen)
    assert chosen["test_gain"] == pytest.approx(report.result.gain, abs=1e-12)

    _script("refine_lab").main([str(copy), "--budgets", "0", "4", "--out", str(tmp_path / "refine.jsonl")])
    rows = [json.loads(line) for line in (tmp_path / "refine.jsonl").read_text().splitlines()]
    assert [row["budget"] for row in rows] == [0, 4]
    # Budget 0 is the fit as it ran; a budget scores at most that many transformations.
    assert rows[0]["chosen"] == report.result.chosen and rows[0]["scored"] == 0
    assert rows[0]["test_gain"] == pytest.approx(report.result.gain, abs=1e-12)
    assert 0 < rows[1]["scored"] <= 4
    # Resumed: a run already in the output is not replayed again.
    _script("refine_lab").main([str(copy), "--out", str(tmp_path / "refine.jsonl")])
    assert len((tmp_path / "refine.jsonl").read_text().splitlines()) == 2

    _script("choice_brier").main([str(copy), "--out", str(tmp_path / "brier.jsonl")])
    rows = [json.loads(line) for line in (tmp_path / "brier.jsonl").read_text().splitlines()]
    compared = {f.label for f in report.result.finalists if f.gain is not None}
    assert {row["label"] for row in rows} == compared
    assert [row["label"] for row in rows if row["chosen_now"]] == [report.result.chosen]
    assert sum(row["chosen_brier"] for row in rows) == 1
    # Its copy of the choice's predictions gives the choice's classes, row for row.
    assert all(row["class_agreement"] == 1.0 for row in rows)

    _script("rescore_lab").main([str(copy), "--partitions", "1", "2", "--out", str(tmp_path / "rescore.jsonl")])
    rows = [json.loads(line) for line in (tmp_path / "rescore.jsonl").read_text().splitlines()]
    assert [row["partitions"] for row in rows] == [1, 2]
    # One partition is the fit's own ranking: its choice and gain.
    assert rows[0]["chosen"] == report.result.chosen
    assert rows[0]["test_gain"] == pytest.approx(report.result.gain, abs=1e-12)
    # The fit's number of the choice's partitions, asked for, is the fit again; another number is
    # used for the replay only, and the fit's is given back after it.
    for repeats in (2, 1):
        _script("rescore_lab").main([str(copy), "--partitions", "1", "--choice-repeats", str(repeats),
                                     "--out", str(tmp_path / f"repeats{repeats}.jsonl")])
        assert evaluation.CHOICE_REPEATS == 2
    again = json.loads((tmp_path / "repeats2.jsonl").read_text())
    assert again["choice_repeats"] == 2 and again["chosen"] == report.result.chosen
    assert again["test_gain"] == pytest.approx(report.result.gain, abs=1e-12)
    assert json.loads((tmp_path / "repeats1.jsonl").read_text())["choice_repeats"] == 1
    # A run made before a new default cap replays with it: no finalist compared holds more.
    _script("rescore_lab").main([str(copy), "--partitions", "1", "--max-features", "2",
                                 "--out", str(tmp_path / "cap2.jsonl")])
    capped = json.loads((tmp_path / "cap2.jsonl").read_text())
    assert capped["n_features"] <= 2
    assert all(int(label.split(":")[1]) <= 2 for label in capped["compared"]
               if finalist_kind(label) in {"bank", "forest", "pairs"})

    _script("choice_rows_lab").main([str(copy), "--out", str(tmp_path / "rows.jsonl")])
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    # A table this small compares every validation row already: the first two ways are the fit's
    # choice; the third predicts the same rows once, by a forest fitted on the search rows.
    assert [row["rows"] for row in rows] == ["sample", "every", "scale"]
    assert rows[0]["choice_rows"] == rows[1]["choice_rows"] == rows[2]["choice_rows"]
    assert all(row["chosen"] == report.result.chosen for row in rows[:2])
    assert all(row["test_gain"] == pytest.approx(report.result.gain, abs=1e-12) for row in rows[:2])
    assert rows[2]["pool"] == rows[2]["search_rows"] and rows[2]["compared"]


@pytest.mark.slow
def test_the_nested_lab_picks_each_folds_features_on_the_other_folds_alone(finished_run, tmp_path):
    run_dir, report = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    lab = _script("nested_lab")
    lab.main([str(copy), "--out", str(tmp_path / "nested.jsonl")])
    [row] = [json.loads(line) for line in (tmp_path / "nested.jsonl").read_text().splitlines()]
    assert len(row["fold_features"]) == 5 and np.isfinite(row["nested_gain"]) and row["nested_se"] > 0
    assert row["fit_chosen"] == report.result.chosen and row["fit_test_gain"] == report.result.gain

    # The procedure reads the targets of the rows it is given and of no other row: with every other
    # row's target shuffled, it picks the same features.
    finished_runs = sys.modules["finished_runs"]
    with finished_runs.resumed(copy, "honest") as finished:
        evaluator, config = finished.evaluator, finished.config
        rows = np.asarray(evaluator.train_rows)[::2]
        picked = lab.screen_procedure(evaluator, rows, config)
        assert picked  # this table's interaction is found, so the check below has something to compare
        others = np.setdiff1d(np.arange(len(evaluator.y)), rows)
        evaluator.y = evaluator.y.copy()
        evaluator.y[others] = np.random.default_rng(0).permutation(evaluator.y[others])
        assert lab.screen_procedure(evaluator, rows, config) == picked


def test_the_peer_lab_writes_the_peers_columns_it_can_and_leaves_out_the_rest():
    lab = _script("peer_columns_lab")
    # OpenFE names the i-th column xi; max and residual are OpenFE's alone; x10 names no column
    # of a three-column table.
    written = lab.writable(["(x0*x1)", "max(x1,x2)", "log(x2)", "residual(x0)", "(x10+x1)"], 3)
    assert written == [["f0", "f1", "*"], ["f2", "log"]]


@pytest.mark.slow
def test_the_peer_lab_compares_the_peers_columns_as_the_choice_compares_its_finalists(finished_run, tmp_path):
    run_dir, report = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    bench = tmp_path / "bench"
    bench.mkdir()
    pd.DataFrame([{"dataset": report.data.name, "method": "openfe", "status": "ok",
                   "formulas": "(x0*x1); max(x2,x3); log(x2)"},
                  {"dataset": report.data.name, "method": "featteam", "status": "ok", "formulas": "(x3-x2)"}]
                 ).to_csv(bench / "results.csv", index=False)
    _script("peer_columns_lab").main([str(bench), str(copy), "--out", str(tmp_path / "peer.jsonl")])
    rows = {row["label"]: row for row in map(json.loads, (tmp_path / "peer.jsonl").read_text().splitlines())}
    compared = {f.label: f for f in report.result.finalists if f.gain is not None and f.label != "original"}
    assert set(rows) == set(compared) | {"ofe_writable(2)", "ofe_first"}
    for label, finalist in compared.items():  # the fit's own comparison, reproduced
        assert rows[label]["gain"] == pytest.approx(finalist.gain, abs=1e-6)
        assert rows[label]["se"] == pytest.approx(finalist.standard_error, abs=1e-6)
    for label in ("ofe_writable(2)", "ofe_first"):
        assert np.isfinite(rows[label]["gain"]) and rows[label]["se"] > 0 and np.isfinite(rows[label]["test_gain"])
