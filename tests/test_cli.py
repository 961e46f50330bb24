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
    # The tree-row bound, as in `featteam fit`: 160 training rows, 100 per tree, a different forest.
    assert main(["evaluate", str(path), "--target", "target", "--max-tree-rows", "100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["original_features"] != result["original_features"]
    assert main(["evaluate", str(path), "--target", "target", "--max-tree-rows", "-1"]) == 1
    assert "max_tree_rows must be 0" in capsys.readouterr().err


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


def test_evaluate_and_transform_read_the_table_as_the_fit_did(tmp_path, capsys):
    """A transformation over a text column, found on a table without "berlin": evaluate scored the
    formula over its own codes (berlin first), transform over the fit's; now both use the fit's.
    Applied again to its own output, transform names every new column uniquely."""
    import numpy as np
    import pandas as pd

    from featteam.data import prepare
    from featteam.evaluation import Evaluator

    rng = np.random.default_rng(0)
    fit = pd.DataFrame({"age": rng.normal(size=120), "city": rng.choice(["oslo", "paris", "rome"], size=120)})
    fit["y"] = fit["age"] * (fit["city"] == "oslo") + 0.1 * rng.normal(size=120)
    dataset = prepare(fit, "y")
    saved = Transformation.from_text("(city * age)", list(dataset.X.columns))
    saved.metadata["preprocessor"] = dataset.preprocessor.to_dict()
    saved.fit(dataset.X).save(tmp_path / "t.json")
    new = fit.copy()
    new.loc[:9, "city"] = "berlin"
    new.to_csv(tmp_path / "new.csv", index=False)
    assert main(["transform", str(tmp_path / "t.json"), str(tmp_path / "new.csv"), "--out", str(tmp_path / "o.csv")]) == 0
    applied = pd.read_csv(tmp_path / "o.csv")["(city * age)"].to_numpy()
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "new.csv"), "--target", "y", "--transformation",
                 str(tmp_path / "t.json"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    as_fit = Evaluator(prepare(dataset.preprocessor.transform(new).assign(y=new["y"]), "y"))
    as_own = Evaluator(prepare(new, "y"))
    tokens = ["f1", "f0", "*"]  # (city * age) in both readings' column order
    assert list(as_fit.dataset.X.columns) == list(as_own.dataset.X.columns) == ["age", "city"]
    assert result["transformation"] == round(as_fit.final_score(tokens), 6) != round(as_own.final_score(tokens), 6)
    oslo = (new["city"] == "oslo").to_numpy()
    assert np.allclose(applied[oslo], 0.0)  # oslo is code 0 in the fit's reading, 1 in the table's own
    # Applied to its own output (twice), every new column keeps a name of its own.
    for source, target in (("o.csv", "o2.csv"), ("o2.csv", "o3.csv")):
        assert main(["transform", str(tmp_path / "t.json"), str(tmp_path / source), "--out",
                     str(tmp_path / target)]) == 0
    columns = list(pd.read_csv(tmp_path / "o3.csv").columns)
    assert columns[-3:] == ["(city * age)", "new: (city * age)", "new 2: (city * age)"]


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


def test_internal_errors_are_not_user_errors(monkeypatch, capsys):
    from featteam import cli

    def broken(args):
        raise KeyError("a bug of ours")

    monkeypatch.setitem(cli.COMMANDS, "show", broken)
    assert main(["show", "t.json"]) == 1
    err = capsys.readouterr().err
    assert "internal error: KeyError" in err and "please report" in err and "-vv" in err
    assert "featteam: error:" not in err
    with pytest.raises(KeyError):  # -vv: the traceback, for us
        main(["-vv", "show", "t.json"])


def test_old_option_spellings_still_work_with_a_warning(tmp_path, small_regression, capsys):
    path = tmp_path / "d.csv"
    small_regression.to_csv(path, index=False)
    assert main(["evaluate", str(path), "--target", "target", "--model", "et", "--json"]) == 0
    captured = capsys.readouterr()
    assert "--model is deprecated here; use --downstream-model" in captured.err
    old = json.loads(captured.out)
    assert main(["evaluate", str(path), "--target", "target", "--downstream-model", "et", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == old


def test_fit_options_come_from_the_configuration():
    import dataclasses

    from featteam.cli import build_parser
    from featteam.config import FitConfig

    parser = build_parser()
    args = parser.parse_args(["fit", "d.csv", "--target", "y", "--out", "o", "--teacher-model", "m",
                              "--downstream-model", "et", "--n-golden", "12", "--anonymous"])
    cli_fields = [f.name for f in dataclasses.fields(FitConfig) if f.metadata.get("cli")]
    assert args.config_fields == cli_fields
    config = FitConfig.from_preset(args.preset, **{name: getattr(args, name) for name in args.config_fields})
    assert (config.teacher_model, config.downstream_model, config.n_golden, config.anonymous) == ("m", "et", 12, True)
    assert config.beam == FitConfig.from_preset("default").beam  # unset options keep the preset's value
    with pytest.raises(SystemExit):
        parser.parse_args(["fit", "d.csv", "--target", "y", "--out", "o", "--teacher", "gpt"])


@pytest.mark.parametrize("setting", [
    {"teaming_rule": "mixture"}, {"protocol": "optimistic"}, {"teacher": "gpt"}, {"student_weighting": "score"},
    {"teaming_lambda": 1.5}, {"beam": 0}, {"step_sizes": ()}, {"n_golden": "many"}, {"anonymous": "yes"},
    {"no_such_setting": 1}, {"choice_margin": -1.0}, {"refine_candidates": -1}, {"refine_candidates": 2.5},
])
def test_a_bad_setting_is_refused_before_any_step(tmp_path, small_regression, setting, capsys):
    from featteam.config import FitConfig
    from featteam.errors import FeatteamError

    with pytest.raises(FeatteamError):
        FitConfig.from_preset("quick", **setting)
    path = tmp_path / "d.csv"
    small_regression.to_csv(path, index=False)
    # Through the estimator too: refused before the run directory is even made.
    from featteam.estimator import FeatTeam

    # (protocol and teacher are the estimator's own parameters, which override its settings)
    own = {k: v for k, v in setting.items() if k in ("protocol", "teacher")}
    others = {k: v for k, v in setting.items() if k not in own}
    with pytest.raises(FeatteamError):
        FeatTeam(**{"teacher": "none", **own}, run_dir=str(tmp_path / "run"), settings=others).fit(
            small_regression.drop(columns="target"), small_regression["target"])
    assert not (tmp_path / "run" / "run").exists()


@pytest.mark.parametrize("setting", [{"seed": 3}, {"protocol": "paper"}, {"teacher": "none"}, {"preset": "paper"}])
def test_the_estimators_own_parameters_are_refused_in_its_settings(tmp_path, small_regression, setting):
    """A FitConfig field that a FeatTeam parameter sets is refused in ``settings`` (it would be
    overridden without a word), before the run directory is made."""
    from featteam.errors import FeatteamError
    from featteam.estimator import FeatTeam

    (field,) = setting
    parameter = {"seed": "random_state"}.get(field, field)
    with pytest.raises(FeatteamError, match=parameter):
        FeatTeam(teacher="none", run_dir=str(tmp_path / "run"), settings=setting).fit(
            small_regression.drop(columns="target"), small_regression["target"])
    assert not (tmp_path / "run").exists()


def test_bad_numbers_are_refused_before_anything_runs(tmp_path, small_regression, capsys):
    path = tmp_path / "d.csv"
    small_regression.to_csv(path, index=False)
    with pytest.raises(SystemExit) as exit_:
        main(["fit", str(path), "--target", "target", "--out", str(tmp_path / "r"), "--n-jobs", "0"])
    assert exit_.value.code == 2 and "0 jobs cannot score anything" in capsys.readouterr().err
    # A negative seed reached numpy (its message), after the run directory was made.
    assert main(["fit", str(path), "--target", "target", "--out", str(tmp_path / "r"), "--seed", "-1",
                 "--teacher", "none", "--stop-after", "golden"]) == 1
    assert "seed must be an integer from 0 to 2**32 - 1, not -1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_estimator_refuses_complex_numbers_before_anything_runs(tmp_path, small_regression):
    from featteam.errors import DataError
    from featteam.estimator import FeatTeam

    X, y = small_regression.drop(columns="target"), small_regression["target"]
    for X_bad, y_bad, named in ((X.assign(c=X["c"] + 1j), y, r"\['c'\]"), (X, y + 1j, "y holds"),
                                (X.to_numpy() * 1j, y.to_numpy(), r"\['x0', 'x1', 'x2', 'x3'\]")):
        with pytest.raises(DataError, match=named):  # not pyarrow's "Unsupported numpy type 15"
            FeatTeam(teacher="none", run_dir=str(tmp_path / "run")).fit(X_bad, y_bad)
    assert not (tmp_path / "run").exists()
