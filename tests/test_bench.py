"""`featteam bench`: planning, each configuration in its own process with a time limit, the peers,
results that survive failures, and the report."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featteam.bench.methods import GROUP_METHODS, QUICK_DATASETS
from featteam.bench.report import markdown, results_frame, write_results
from featteam.bench.runner import TIME_LIMITS, BenchConfig, plan, run_bench, search_rows, time_limit
from featteam.cli import main
from featteam.errors import FeatteamError

REPO = Path(__file__).resolve().parents[1]
# Budgets in epochs, not seconds (the time limits are set far above what they need), so a loaded
# machine trains as much as an idle one.
TINY = dict(n_golden=16, teacher="none", search_top_k=2, step_sizes=[1.0, 4.0], beam=2, latent_epochs=30,
            student_epochs=1, student_samples=4)


def peer_python() -> str | None:
    """The interpreter with the bench extra (`make install-bench`), if this checkout has one."""
    candidate = os.environ.get("FEATTEAM_PEER_PYTHON") or str(REPO / ".venv-bench" / "bin" / "python")
    return candidate if Path(candidate).exists() else None


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """A two-table suite laid out like ../shared/datasets."""
    folder = tmp_path_factory.mktemp("suite")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 4))
    tables = {"tiny_cls": ("classification", "f1_weighted", (X[:, 0] * X[:, 1] > 0).astype(int)),
              "tiny_reg": ("regression", "one_minus_rae", X[:, 0] * X[:, 1] + 0.1 * rng.normal(size=160))}
    manifest = {"datasets": {}}
    for name, (task, metric, y) in tables.items():
        # "e" is constant, as a column of ionosphere is: every method must cope with it
        frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(e=1.0, label=y)
        frame.to_csv(folder / f"{name}.csv.gz", index=False)
        manifest["datasets"][name] = {"file": f"{name}.csv.gz", "task": task, "target": "label", "metric": metric,
                                      "rows": 160, "features": 5,
                                      "paper_protocol_reference": {"original_features": 0.5, "moat": 0.6}}
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    return folder


def test_plan_runs_the_original_once_and_every_group_per_seed(suite, tmp_path):
    manifest = json.loads((suite / "MANIFEST.json").read_text())
    config = BenchConfig(out=tmp_path, data_dir=suite, methods=["original", "teaming", "ml", "openfe"],
                         seeds=[0, 1], protocols=["honest", "paper"])
    jobs = plan(config, manifest)
    names = [j.name for j in jobs]
    assert len(names) == len(set(names)) == 2 * 2 * (1 + 2 + 2)  # protocols x datasets x (original + 2 groups x 2 seeds)
    assert {j.group for j in jobs} == {"original", "featteam", "openfe"}  # teaming and ml: one featteam run
    with pytest.raises(FeatteamError, match="unknown method"):
        plan(BenchConfig(out=tmp_path, data_dir=suite, methods=["magic"]), manifest)
    with pytest.raises(FeatteamError, match="unknown dataset"):
        plan(BenchConfig(out=tmp_path, data_dir=suite, datasets=["nope"]), manifest)
    with pytest.raises(FeatteamError, match="MANIFEST.json"):
        run_bench(BenchConfig(out=tmp_path, data_dir=tmp_path / "missing"), progress=False)


def test_search_rows_are_the_presets_unless_set(tmp_path):
    # --preset paper must search the whole test split as the literature does (the bench once
    # scored it on 2000 rows whatever the preset said); a number given, 0 included, wins.
    def rows(preset, given=None):
        return search_rows(BenchConfig(out=tmp_path, data_dir=tmp_path, preset=preset, max_search_rows=given))

    assert (rows("quick"), rows("default"), rows("paper")) == (2000, 5000, 0)
    assert (rows("paper", 2000), rows("quick", 0), rows("default", 300)) == (2000, 0, 300)


def test_time_limit_is_the_presets_unless_set(tmp_path):
    from featteam.config import PRESETS

    assert set(TIME_LIMITS) == set(PRESETS)  # every preset has one
    limit = {p: time_limit(BenchConfig(out=tmp_path, data_dir=tmp_path, preset=p)) for p in ("quick", "paper")}
    assert limit == {"quick": 1200.0, "paper": 7200.0}  # paper's higgs fit takes about 2600 s
    assert time_limit(BenchConfig(out=tmp_path, data_dir=tmp_path, preset="paper", time_limit=30.0)) == 30.0


def test_quick_subset_is_in_the_suite_and_covers_both_tasks(shared_datasets):
    manifest = json.loads((shared_datasets / "MANIFEST.json").read_text())["datasets"]
    assert len(QUICK_DATASETS) >= 6
    assert {manifest[name]["task"] for name in QUICK_DATASETS} == {"classification", "regression"}


@pytest.mark.slow
def test_bench_cli_writes_results_and_survives_failures_and_timeouts(suite, tmp_path, capsys):
    out = tmp_path / "bench"
    no_peers = sys.executable  # this environment lacks the bench extra on purpose: the peer must fail cleanly
    code = main(["bench", "--out", str(out), "--data-dir", str(suite), "--methods", "original", "featteam",
                 "openfe", "moat", "--protocol", "honest", "paper", "--time-limit", "10", "--peer-python", no_peers,
                 "--no-progress"])
    assert code == 0
    frame = pd.read_csv(out / "results.csv")
    original = frame[frame["method"] == "original"]
    assert len(original) == 4 and (original["status"] == "ok").all() and (original["score"] <= 1).all()
    featteam = frame[frame["method"] == "featteam"]
    assert (featteam["status"] == "timeout").all()  # the pipeline cannot finish in 10 s
    assert (featteam["fit_seconds"] >= 10).all()
    openfe = frame[frame["method"] == "openfe"]
    if importlib.util.find_spec("openfe") is None:
        assert (openfe["status"] == "error").all()
        assert openfe["message"].str.contains("openfe").all()
    moat = frame[frame["method"] == "moat"]
    assert len(moat) == 2 and (moat["protocol"] == "paper").all() and (moat["score"] == 0.6).all()
    text = (out / "results.md").read_text()
    assert "## honest protocol" in text and "## paper protocol" in text and "Runs without a score" in text
    assert (out / "gain_paper.png").exists()
    assert "results" in capsys.readouterr().out
    # Resumed: nothing is run again, the same table comes back.
    assert main(["bench", "--out", str(out), "--data-dir", str(suite), "--methods", "original", "--protocol",
                 "honest", "paper", "--no-progress"]) == 0
    again = pd.read_csv(out / "results.csv")
    pd.testing.assert_series_equal(again["score"].reset_index(drop=True), original["score"].reset_index(drop=True))
    # --report-only runs nothing, even what is missing (seed 1), and says where its table comes from.
    assert main(["bench", "--out", str(out), "--data-dir", str(suite), "--methods", "original", "featteam",
                 "--seeds", "0", "1", "--report-only", "--no-progress"]) == 0
    assert not list((out / "configs").glob("*__s1.json"))
    text = (out / "results.md").read_text()
    assert "report rebuilt from the finished configurations" in text and "--report-only" in text


@pytest.mark.slow
def test_featteam_modes_come_from_one_real_run(suite, tmp_path):
    config = BenchConfig(out=tmp_path, data_dir=suite, datasets=["tiny_reg"], methods=list(GROUP_METHODS["featteam"]),
                         protocols=["honest"], time_limit=600, featteam_settings=TINY)
    rows = {r["method"]: r for r in run_bench(config, progress=False)}
    assert set(rows) == {"featteam", "teaming", "ml", "student", "teacher"}
    assert rows["featteam"]["status"] == "ok" and rows["featteam"]["chosen_mode"]
    decoded = 0
    for mode in ("teaming", "ml", "student"):
        # With this tiny budget a mode may decode only value-level duplicates (e.g. (a/d)/((c/d)/c) = a,
        # which no grammar can rule out): then it has no candidate to report, and says so.
        assert rows[mode]["status"] in ("ok", "no_candidate"), rows[mode]
        if rows[mode]["status"] == "ok":
            decoded += 1
            assert np.isfinite(rows[mode]["score"]) and rows[mode]["n_new_features"] >= 1
        assert 0 <= rows[mode]["n_valid"] <= rows[mode]["n_proposed"] > 0  # unmasked validity, always counted
    assert decoded >= 2
    assert rows["teacher"]["status"] == "no_candidate"  # teacher "none": no teacher examples to report
    assert rows["featteam"]["peak_memory_mb"] > 100 and rows["featteam"]["fit_seconds"] > 0


@pytest.mark.slow
def test_peers_run_for_real_in_their_environment(suite, tmp_path):
    python = peer_python()
    if python is None:
        pytest.skip("no bench environment: run `make install-bench`")
    config = BenchConfig(out=tmp_path, data_dir=suite, methods=["original", "openfe", "autofeat"],
                         protocols=["honest"], time_limit=600, peer_python=python)
    rows = {(r["dataset"], r["method"]): r for r in run_bench(config, progress=False)}
    for dataset in ("tiny_cls", "tiny_reg"):  # both tasks: each peer has its own code path per task
        for peer in ("openfe", "autofeat"):
            row = rows[dataset, peer]
            assert row["status"] == "ok", row
            assert row["score"] <= 1 and row["n_new_features"] >= 0
            assert row["original_score"] == rows[dataset, "original"]["score"]  # the same split and model
    assert not (Path.cwd() / "openfe_tmp_data.feather").exists()  # each configuration works in its own folder


@pytest.mark.slow
def test_autofeat_gives_the_same_features_whatever_the_threads(tmp_path):
    """autofeat's feature selection, run in worker processes, kept other features than in its own
    process (and its runs iterate over a set of strings, ordered by each process's hash seed): the
    bench runs it so that the threads and the process do not change its result."""
    python = peer_python()
    if python is None:
        pytest.skip("no bench environment: run `make install-bench`")
    folder = tmp_path / "suite"
    folder.mkdir()
    rng = np.random.default_rng(3)  # a table on which the features differed with 1 and 2 threads
    X = rng.normal(size=(300, 6))
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(6)])
    frame["label"] = X[:, 0] * X[:, 1] + np.sin(X[:, 2]) + 0.5 * rng.normal(size=300)
    frame.to_csv(folder / "t.csv.gz", index=False)
    (folder / "MANIFEST.json").write_text(json.dumps({"datasets": {"t": {
        "file": "t.csv.gz", "task": "regression", "target": "label", "metric": "one_minus_rae",
        "rows": 300, "features": 6}}}))
    rows = []
    for threads in (1, 2):
        config = BenchConfig(out=tmp_path / f"t{threads}", data_dir=folder, methods=["autofeat"],
                             protocols=["honest"], threads=threads, time_limit=600, peer_python=python)
        [row] = [r for r in run_bench(config, progress=False) if r["method"] == "autofeat"]
        assert row["status"] == "ok", row
        rows.append(row)
    assert rows[0]["formulas"] == rows[1]["formulas"] and rows[0]["score"] == rows[1]["score"]


def test_report_counts_wins_and_spread():
    rows = []
    for dataset, (ours, peer, original) in {"a": ((0.80, 0.82), 0.79, 0.75), "b": ((0.60, 0.60), 0.65, 0.55),
                                            "c": ((0.70, 0.70), 0.7004, 0.70)}.items():
        rows.append({"dataset": dataset, "task": "classification", "protocol": "honest", "method": "original",
                     "seed": 0, "status": "ok", "score": original, "original_score": original})
        for seed, score in enumerate(ours):
            rows.append({"dataset": dataset, "task": "classification", "protocol": "honest", "method": "teaming",
                         "seed": seed, "status": "ok", "score": score, "original_score": original,
                         "n_proposed": 10, "n_valid": 9, "errors": {"arity": 1}})
        rows.append({"dataset": dataset, "task": "classification", "protocol": "honest", "method": "openfe",
                     "seed": 0, "status": "ok", "score": peer, "original_score": original})
    frame = results_frame(rows)
    assert frame["gain"].notna().all() and frame.loc[frame["method"] == "teaming", "errors"].iloc[0] == "arity 1"
    text = markdown(frame, ["original", "teaming", "openfe"])
    assert "| teaming | 1 / 1 / 1 | 2 / 1 / 0 |" in text  # vs openfe: a win, a loss, a tie; vs original: 2 wins, a tie
    assert "0.8100 ± 0.0100" in text  # two seeds on dataset a
    assert "0.900 (54/60)" in text  # validity over all runs
    assert "0.0033 (3 datasets)" in text  # mean spread over seeds


def test_report_files(tmp_path):
    rows = [{"dataset": "a", "task": "regression", "protocol": p, "method": m, "seed": 0, "status": "ok",
             "score": s, "original_score": 0.5, "fit_seconds": 1.0, "n_proposed": 4, "n_valid": 3}
            for p in ("honest", "paper") for m, s in (("original", 0.5), ("ml", 0.6), ("featteam", 0.6))]
    write_results(results_frame(rows), tmp_path, ["original", "featteam", "ml"], header="Command: test\n\n")
    for name in ("results.csv", "results.md", "gain_honest.png", "gain_paper.png", "validity_by_mode.png",
                 "time_by_method.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "results.md").read_text().startswith("Command: test")


def test_another_split_seed_reaches_every_configuration_and_only_the_honest_protocol(suite, tmp_path):
    from featteam.bench.runner import _spec

    manifest = json.loads((suite / "MANIFEST.json").read_text())
    config = BenchConfig(out=tmp_path, data_dir=suite, methods=["original", "featteam", "openfe"], split_seed=2,
                         featteam_settings={"n_golden": 12})
    for job in plan(config, manifest):
        spec = _spec(job, config, manifest)
        assert spec["split_seed"] == 2 and spec["settings"] == {"n_golden": 12, "split_seed": 2}
    # The literature's split is not named: a benchmark stored before the option resumes.
    literature = BenchConfig(out=tmp_path, data_dir=suite)
    assert "split_seed" not in _spec(plan(literature, manifest)[0], literature, manifest)
    with pytest.raises(FeatteamError, match="literature's split"):
        plan(BenchConfig(out=tmp_path, data_dir=suite, protocols=["paper"], split_seed=1), manifest)
