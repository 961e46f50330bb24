"""featteam fit end to end with tiny budgets: all four steps, outputs, resume, the estimator."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from featteam.cli import main
from featteam.config import FitConfig
from featteam.expr import Transformation
from featteam.pipeline import Run
from featteam.report import RunReport

TINY = dict(n_golden=16, teacher="none", search_top_k=2, step_sizes=(1.0, 4.0), beam=2, latent_epochs=30,
            student_epochs=1, student_samples=4)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 4))
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["y"] = X[:, 0] * X[:, 1] + np.abs(X[:, 2]) + 0.1 * rng.normal(size=160)
    path = tmp_path_factory.mktemp("data") / "table.csv"
    frame.to_csv(path, index=False)
    return path, frame


@pytest.mark.slow
def test_fit_runs_all_steps_and_resumes(tmp_path, table, capfd):
    path, frame = table
    config = FitConfig.from_preset("quick", **TINY)
    report = Run(tmp_path / "run", path, "y", config, n_jobs=2, progress=False).execute()
    # Without progress, a fit is quiet: no loading bars, no library deprecation noise.
    noise = capfd.readouterr().err
    for text in ("Loading weights", "is_gradient_checkpointing", "past_key_values", "it/s]"):
        assert text not in noise, noise[-2000:]
    for name in ("transformation.json", "report.json", "candidates.jsonl", "golden.jsonl", "scores_by_mode.png",
                 "student_loss.png", "latent/latent.safetensors", "student/student.json"):
        assert (tmp_path / "run" / name).exists(), name
    result = report.result
    # With this tiny budget a decoder may write only value-level errors (duplicates or constant
    # columns: then it has no scored candidate to report); the golden set and a decoder always do.
    assert "explore" in result.per_mode and set(result.per_mode) & {"ml", "student", "teaming"}
    # The reported gain comes with its standard error over the test rows (0: nothing added).
    assert result.gain_standard_error is not None and result.gain_standard_error >= 0
    assert result.formulas or result.gain_standard_error == 0.0
    # Masked decoding makes no structural error; only value-level ones (a feature equal to
    # another by value, or constant) can remain.
    for step in (report.steps.latent, report.steps.teaming):
        assert set(step.masked.errors) <= {"duplicate_feature", "constant_feature"}
    modes = {json.loads(line)["mode"] for line in (tmp_path / "run" / "candidates.jsonl").read_text().splitlines()}
    assert modes == {"ml", "student", "teaming"}
    # The transformation deploys on raw rows.
    t = Transformation.load(tmp_path / "run" / "transformation.json")
    assert t.transform(frame.drop(columns="y")).shape == (160, len(t.formulas))
    # Started again with the same arguments, nothing is recomputed.
    again = Run(tmp_path / "run", path, "y", config, n_jobs=1, progress=False)
    before = (tmp_path / "run" / "golden.jsonl").stat().st_mtime_ns
    report2 = again.execute()
    assert (tmp_path / "run" / "golden.jsonl").stat().st_mtime_ns == before
    assert report2.result.formulas == result.formulas
    assert report2.result.score == result.score


@pytest.mark.slow
def test_stop_after_golden_then_latent_reuses_golden(tmp_path, table, capsys):
    path, _ = table
    args = ["fit", str(path), "--target", "y", "--out", str(tmp_path / "r"), "--teacher", "none", "--n-golden", "15",
            "--preset", "quick", "--no-progress", "--n-jobs", "1"]
    assert main(args + ["--stop-after", "golden"]) == 0
    assert "golden set: 15 valid examples" in capsys.readouterr().out
    scores = next((tmp_path / "r").glob("scores-*.jsonl"))
    n_scored = len(scores.read_text().splitlines())
    assert main(args + ["--stop-after", "latent"]) == 0
    out = capsys.readouterr().out
    assert "latent model: held-out token accuracy" in out and "ml decoder:" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["steps"]["golden"] and report["steps"]["latent"]
    assert report["steps"]["student"] is None and report["steps"]["teaming"] is None
    # Golden candidates were not scored again: only the decoded ones were added, and no sequence
    # appears twice in the append-only score log.
    logged = [tuple(json.loads(line)["tokens"]) for line in scores.read_text().splitlines()]
    assert len(logged) > n_scored
    assert len(set(logged)) == len(logged)


@pytest.mark.slow
def test_a_changed_setting_reruns_only_its_step_and_the_later_ones(tmp_path, table):
    path, _ = table
    tiny = dict(n_golden=15, teacher="none", search_top_k=2, step_sizes=(1.0,), beam=2, latent_epochs=5)
    out = tmp_path / "r"

    def run(**changes):
        config = FitConfig.from_preset("quick", **{**tiny, **changes})
        Run(out, path, "y", config, n_jobs=1, progress=False).execute(stop_after="latent")
        return {name: (out / name).stat().st_mtime_ns for name in ("golden.jsonl", "latent/latent.json")}

    first = run()
    assert run() == first  # nothing changed: nothing runs
    beam = run(beam=3)  # a step-2 setting: step 2 runs again, step 1 does not
    assert beam["golden.jsonl"] == first["golden.jsonl"] and beam["latent/latent.json"] != first["latent/latent.json"]
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["beam"] == 3 and report["steps"]["latent"] is not None
    seed = run(beam=3, seed=1)  # a step-1 setting: everything runs again
    assert seed["golden.jsonl"] != beam["golden.jsonl"] and seed["latent/latent.json"] != beam["latent/latent.json"]


def test_fit_bad_input_is_one_line(tmp_path, table, capsys):
    path, _ = table
    assert main(["fit", str(path), "--target", "nope", "--out", str(tmp_path / "r")]) == 1
    assert "target column 'nope' not found" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # a fit refused at the table leaves no empty run directory


def test_a_step_killed_while_it_runs_is_not_trusted_afterwards(tmp_path, table, monkeypatch):
    """A step rewrites its artefacts in place: once it starts again, its old key is gone from
    report.json, so a run killed in the middle is not taken for a finished one by the next run,
    whatever settings that run has (here the first run's again)."""
    from featteam.steps.golden import GoldenStep

    path, _ = table
    first = FitConfig.from_preset("quick", n_golden=12, teacher="none")
    out = tmp_path / "r"
    Run(out, path, "y", first, n_jobs=1, progress=False).execute(stop_after="golden")
    assert "golden" in json.loads((out / "report.json").read_text())["step_keys"]

    def killed(self, context):
        raise KeyboardInterrupt  # the process is stopped while the step writes

    with monkeypatch.context() as patch:
        patch.setattr(GoldenStep, "run", killed)
        with pytest.raises(KeyboardInterrupt):
            Run(out, path, "y", FitConfig.from_preset("quick", n_golden=14, teacher="none"), n_jobs=1,
                progress=False).execute(stop_after="golden")
    assert "golden" not in json.loads((out / "report.json").read_text())["step_keys"]
    assert not Run(out, path, "y", first, n_jobs=1, progress=False).done(GoldenStep())


def test_a_run_killed_mid_write_resumes(tmp_path, table):
    """Torn last lines (a kill while appending) and a torn report do not stop a resume, and
    nothing already scored is scored again."""
    path, _ = table
    config = FitConfig.from_preset("quick", n_golden=12, teacher="none")
    out = tmp_path / "r"
    Run(out, path, "y", config, n_jobs=1, progress=False).execute(stop_after="golden")
    golden = (out / "golden.jsonl").read_text()
    scores = next(out.glob("scores-*.jsonl"))
    n_scored = len(scores.read_text().splitlines())
    with open(scores, "a") as handle:
        handle.write('{"tokens": ["f0", "lo')
    with open(out / "golden.jsonl", "a") as handle:
        handle.write('{"mode": "explore", "tok')
    report = (out / "report.json").read_text()
    (out / "report.json").write_text(report[: len(report) // 2])
    resumed = Run(out, path, "y", config, n_jobs=1, progress=False)
    resumed.execute(stop_after="golden")
    assert (out / "golden.jsonl").read_text() == golden  # the same golden set, rewritten whole
    assert resumed.report.steps.golden.n_valid == 12
    lines = scores.read_text().splitlines()
    assert len(lines) == n_scored + 1  # the torn line stays; no candidate was scored again
    assert not list(out.glob("*.tmp"))
    # A score appended after a torn line starts a line of its own, and is read back.
    from featteam.evaluation import Scored
    _, evaluator = resumed.load()
    evaluator._remember([Scored(("f0", "f1", "*"), 0.5)])
    _, again = resumed.load()
    assert again.cache[("f0", "f1", "*")].score == 0.5


@pytest.mark.slow
def test_featteam_estimator_in_a_pipeline(tmp_path, table):
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline

    from featteam.estimator import FeatTeam

    _, frame = table
    X, y = frame.drop(columns="y"), frame["y"].to_numpy()
    # A text column: the search reads it as category codes, and so does transform (every output a number).
    X["colour"] = np.random.default_rng(0).choice(["red", "green", "blue"], size=len(X))
    settings = {k: v for k, v in TINY.items() if k != "teacher"}
    searcher = FeatTeam(preset="quick", teacher="none", run_dir=str(tmp_path), settings=settings, n_jobs=2)
    searcher.set_output(transform="pandas")
    out = searcher.fit(X, y).transform(X)
    assert list(out.columns[:5]) == ["a", "b", "c", "d", "colour"]
    assert sorted(out["colour"].unique()) == [0.0, 1.0, 2.0]
    assert list(out.columns[5:]) == searcher.transformation_.formulas
    assert searcher.report_.result.score is not None
    model = make_pipeline(FeatTeam(preset="quick", teacher="none", run_dir=str(tmp_path), settings=settings),
                          RandomForestRegressor(n_estimators=20, random_state=0))
    assert model.fit(X, y).score(X, y) > 0.8  # the same run directory: resumed, nothing recomputed


@pytest.mark.slow
def test_same_seed_same_result_under_load_and_any_n_jobs(tmp_path, table):
    """Budgets are epochs and steps: a CPU hog beside one fit (and another n_jobs) changes nothing."""
    import subprocess
    import sys

    path, _ = table
    config = FitConfig.from_preset("quick", **TINY)
    Run(tmp_path / "quiet", path, "y", config, n_jobs=2, progress=False).execute()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]  # one per core
    try:
        report = Run(tmp_path / "loaded", path, "y", config, n_jobs=1, progress=False).execute()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert report.reproducible and not report.safety_stops
    for name in ("transformation.json", "golden.jsonl", "candidates.jsonl"):
        assert (tmp_path / "quiet" / name).read_bytes() == (tmp_path / "loaded" / name).read_bytes(), name


@pytest.mark.slow
def test_a_safety_stop_is_reported_as_not_reproducible(tmp_path, table):
    path, _ = table
    config = FitConfig.from_preset("quick", n_golden=15, teacher="none", search_top_k=2, step_sizes=(1.0,), beam=2,
                                   latent_epochs=500, latent_max_seconds=0.01)
    run = Run(tmp_path / "r", path, "y", config, n_jobs=1, progress=False)
    run.execute(stop_after="latent")
    assert run.report.steps.latent.training.stopped_by == "time limit"
    assert run.safety_stops() and "latent model" in run.safety_stops()[0]


def test_a_run_whose_table_reads_otherwise_is_not_resumed(tmp_path, monkeypatch):
    """The keys cover how the columns were read, not only the file: a run directory made by a
    featteam that read a text column otherwise (here: fewer categories allowed) scores it again."""
    import featteam.data as data
    from featteam.steps.golden import GoldenStep

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=160), "b": rng.normal(size=160),
                          "kind": rng.choice(["p", "q", "r"], size=160)})
    frame["y"] = frame["a"] * frame["b"] + (frame["kind"] == "p")
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    config = FitConfig.from_preset("quick", n_golden=12, teacher="none")
    out = tmp_path / "r"
    Run(out, path, "y", config, n_jobs=1, progress=False).execute(stop_after="golden")
    assert Run(out, path, "y", config, n_jobs=1, progress=False).done(GoldenStep())
    monkeypatch.setattr(data, "MAX_CATEGORIES", 2)  # "kind" is now free text, and dropped
    assert not Run(out, path, "y", config, n_jobs=1, progress=False).done(GoldenStep())
    assert len(list(out.glob("scores-*.jsonl"))) == 1  # the first run's; a new one is started when run


def test_a_run_made_with_other_operators_is_not_resumed(tmp_path, table, monkeypatch):
    """The steps' models are written in the operators' vocabulary: a run directory made by a
    featteam with another registry (here one operator fewer) runs its steps again."""
    import featteam.pipeline as pipeline
    from featteam.steps.golden import GoldenStep

    path, _ = table
    config = FitConfig.from_preset("quick", n_golden=12, teacher="none")
    out = tmp_path / "r"
    Run(out, path, "y", config, n_jobs=1, progress=False).execute(stop_after="golden")
    assert Run(out, path, "y", config, n_jobs=1, progress=False).done(GoldenStep())
    older = {token: op for token, op in pipeline.OPERATORS.items() if token != "cube"}
    monkeypatch.setattr(pipeline, "OPERATORS", older)
    assert not Run(out, path, "y", config, n_jobs=1, progress=False).done(GoldenStep())


def test_scores_are_not_reused_across_versions_of_the_scoring_libraries(tmp_path, table, monkeypatch):
    """A resume after an upgrade of scikit-learn (or numpy, pandas, scipy, featteam) starts a new
    score log instead of reusing scores the old code computed."""
    import featteam.pipeline as pipeline

    path, _ = table
    config = FitConfig.from_preset("quick", n_golden=12, teacher="none")
    before = Run(tmp_path / "r", path, "y", config, n_jobs=1, progress=False).load()[1].cache_path
    monkeypatch.setattr(pipeline, "library_versions", lambda: {"scikit-learn": "99.0"})
    after = Run(tmp_path / "r", path, "y", config, n_jobs=1, progress=False).load()[1].cache_path
    assert before != after and before.parent == after.parent


@pytest.mark.slow  # one small fit to the end
def test_a_step_run_again_removes_the_output_chosen_before_it(tmp_path, table):
    """Re-run with other settings and --stop-after golden, a run directory kept the transformation
    chosen from the old golden set, and its summary presented it as just chosen."""
    from featteam.report import summary_text

    path, _ = table
    config = FitConfig.from_preset("quick", n_golden=16, teacher="none", search_top_k=2, step_sizes=(1.0, 4.0),
                                   beam=2, latent_epochs=20, student_epochs=1, student_samples=4)
    out = tmp_path / "r"
    first = Run(out, path, "y", config, n_jobs=1, progress=False).execute()
    assert first.result is not None and (out / "transformation.json").exists()
    # The summary says where the fit's time went, and the report keeps the choice's parts.
    timing = next(line for line in summary_text(first, out).splitlines() if line.startswith("time: "))
    assert all(part in timing for part in ("screen ", "golden ", "student ", "choice ", "compared on the choice rows"))
    assert RunReport.load(out / "report.json").result.seconds == first.result.seconds
    again = Run(out, path, "y", dataclasses.replace(config, n_golden=20), n_jobs=1, progress=False)
    report = again.execute(stop_after="golden")
    assert report.result is None and not (out / "transformation.json").exists()
    assert RunReport.load(out / "report.json").result is None
    text = summary_text(report, out)
    assert "chosen" not in text and "written:" not in text and "results in" in text


def test_the_steps_run_on_the_configured_torch_threads_and_give_them_back(tmp_path, table, monkeypatch):
    """torch_threads (1 by default: the same numbers under any load, no threads waiting on each
    other on busy cores) holds inside every step; torch's own count is put back afterwards."""
    import torch

    from featteam.steps.golden import GoldenStep

    path, _ = table
    assert FitConfig.from_preset("quick").torch_threads == 1
    seen = []

    def recorded(self, context):
        seen.append(torch.get_num_threads())
        raise KeyboardInterrupt  # enough: the step started

    monkeypatch.setattr(GoldenStep, "run", recorded)
    before = torch.get_num_threads()
    for threads in (1, 3):
        with pytest.raises(KeyboardInterrupt):
            Run(tmp_path / f"r{threads}", path, "y", FitConfig.from_preset("quick", teacher="none",
                                                                           torch_threads=threads),
                n_jobs=1, progress=False).execute(stop_after="golden")
        assert torch.get_num_threads() == before
    assert seen == [1, 3]
    with pytest.raises(Exception, match="torch_threads must be at least 1"):
        FitConfig.from_preset("quick", torch_threads=0)


def test_another_split_seed_is_another_test_split_and_keeps_the_literatures_keys(tmp_path, table):
    """--split-seed draws another train/test split (honest protocol only): its test rows differ,
    a run directory made with another split is not resumed, and split 0 keeps the key it always
    had (a data key that never named the split), so stored runs stay valid."""
    from featteam.errors import FeatteamError
    from featteam.steps.golden import GoldenStep

    path, _ = table
    config = FitConfig.from_preset("quick", n_golden=12, teacher="none")
    other = dataclasses.replace(config, split_seed=3)
    out = tmp_path / "r"
    literature = Run(out, path, "y", config, n_jobs=1, progress=False)
    _, evaluator = literature.load()
    _, evaluator3 = Run(tmp_path / "r3", path, "y", other, n_jobs=1, progress=False).load()
    assert len(evaluator.test_rows) == len(evaluator3.test_rows)
    assert set(evaluator.test_rows) != set(evaluator3.test_rows)
    assert not set(evaluator3.test_rows) & set(evaluator3.train_rows)
    literature.execute(stop_after="golden")
    assert Run(out, path, "y", config, n_jobs=1, progress=False).done(GoldenStep())
    assert not Run(out, path, "y", other, n_jobs=1, progress=False).done(GoldenStep())
    # The data key of split 0 is the one computed without the option (the file, the reading).
    import hashlib
    digest = hashlib.sha256(path.read_bytes())
    digest.update(f"y:{literature.task}:{literature.nan}:{literature.drop_redundant}".encode())
    digest.update(literature._reading.encode())
    assert literature._data_key() == digest.hexdigest()[:16]
    with pytest.raises(FeatteamError, match="literature's split"):
        FitConfig.from_preset("quick", protocol="paper", split_seed=1)
    with pytest.raises(FeatteamError, match="split_seed"):
        FitConfig.from_preset("quick", split_seed=-1)
