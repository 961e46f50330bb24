"""The command line: summaries on success, one-line errors and non-zero exits on bad input."""

import json
import subprocess
import sys

import pytest

from featteam.cli import main
from featteam.expr import Transformation


def test_evaluate_paper_protocol(shared_datasets, capsys):
    assert main(["evaluate", str(shared_datasets / "airfoil.csv.gz"), "--target", "label",
                 "--protocol", "paper"]) == 0
    out = capsys.readouterr().out
    assert "one_minus_rae of the original features: 0.5194" in out


def test_evaluate_json_with_transformation(tmp_path, small_regression, capsys):
    path = tmp_path / "d.csv"
    small_regression.to_csv(path, index=False)
    Transformation.from_text("(a * b)", ["a", "b", "c", "d"]).save(tmp_path / "t.json")
    assert main(["evaluate", str(path), "--target", "target", "--transformation", str(tmp_path / "t.json"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["transformation"] > result["original_features"]


def test_transform_and_show(tmp_path, small_regression, capsys):
    path = tmp_path / "d.csv"
    small_regression.to_csv(path, index=False)
    Transformation.from_text("(a * b), log(c)", ["a", "b", "c", "d"]).fit(small_regression).save(tmp_path / "t.json")
    assert main(["transform", str(tmp_path / "t.json"), str(path), "--out", str(tmp_path / "o.csv")]) == 0
    import pandas as pd
    out = pd.read_csv(tmp_path / "o.csv")
    assert list(out.columns) == ["a", "b", "c", "d", "target", "(a * b)", "log(c)"]
    assert main(["show", str(tmp_path / "t.json")]) == 0
    assert "1. (a * b)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "missing.csv", "--target", "y"], "no such file"),
    (["show", "missing.json"], "cannot read"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("featteam: error:") and message in err and err.count("\n") == 1


def test_bad_target_in_a_subprocess_has_no_traceback(tmp_path, small_regression):
    path = tmp_path / "d.csv"
    small_regression.to_csv(path, index=False)
    result = subprocess.run([sys.executable, "-m", "featteam", "evaluate", str(path), "--target", "nope"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "target column 'nope' not found" in result.stderr
