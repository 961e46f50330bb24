"""Nothing is opened, created or switched that the call did not ask for: asking for the cache
directory's name creates nothing, plotting leaves matplotlib's backend and pyplot alone, and a
fit without a run directory leaves no folder behind."""

import ast
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import featteam
from featteam.llm.cache import ResponseCache
from featteam.settings import cache_dir

PACKAGE = Path(featteam.__file__).resolve().parent


def test_cache_dir_names_the_folder_without_creating_it(tmp_path, monkeypatch):
    missing = tmp_path / "not" / "yet"
    monkeypatch.setenv("FEATTEAM_CACHE_DIR", str(missing))
    assert cache_dir() == missing
    assert not missing.exists() and not (tmp_path / "not").exists()


def test_cache_dir_default_is_under_xdg_cache_home_and_not_created(tmp_path, monkeypatch):
    monkeypatch.delenv("FEATTEAM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "featteam"
    assert not (tmp_path / "xdg").exists()


def test_response_cache_creates_its_file_on_the_first_write_only(tmp_path):
    path = tmp_path / "cache" / "responses.sqlite"
    cache = ResponseCache(path)
    assert cache.get("k") is None and len(cache) == 0  # a miss, not a new file
    assert not path.parent.exists()
    cache.put("k", ["x"])
    assert path.exists() and cache.get("k") == ["x"] and len(cache) == 1
    cache.close()
    assert ResponseCache(path).get("k") == ["x"]


def _fake_gguf(tmp_path: Path) -> Path:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"not really a model")
    return gguf


class _Saves:
    """Stands in for a transformers model or tokenizer: save_pretrained writes one file."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.config = type("Config", (), {})()

    def save_pretrained(self, directory) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / self.name).write_text("{}")


@pytest.fixture
def fake_conversion(monkeypatch):
    """resolve_model_dir's conversion without reading a model: only its file handling is tested."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *args, **kwargs: _Saves("config.json"))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        lambda *args, **kwargs: _Saves("tokenizer.json"))


def test_two_conversions_at_once_take_turns(tmp_path, monkeypatch, fake_conversion):
    """Two fits on a fresh cache: one converts, the other waits and uses its result (without the
    lock the second removed the first's unfinished folder, and one of them failed)."""
    import threading
    import time

    import transformers

    from featteam.llm.local import resolve_model_dir

    monkeypatch.setenv("FEATTEAM_CACHE_DIR", str(tmp_path / "fresh-cache"))
    loads = []

    class SlowSaves(_Saves):
        def save_pretrained(self, directory) -> None:
            time.sleep(0.3)  # a conversion takes a while: the other fit arrives in the middle
            super().save_pretrained(directory)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *args, **kwargs: loads.append(1) or SlowSaves("config.json"))
    gguf = _fake_gguf(tmp_path)
    results, errors = [], []

    def convert() -> None:
        try:
            results.append(resolve_model_dir(gguf))
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            errors.append(exc)

    threads = [threading.Thread(target=convert) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    assert len(loads) == 1  # converted once
    assert (results[0] / "config.json").exists() and (results[0] / "tokenizer.json").exists()


def test_model_conversion_creates_the_models_folder_it_writes(tmp_path, monkeypatch, fake_conversion):
    from featteam.llm.local import CONVERSION_RECORD, is_conversion, resolve_model_dir

    cache = tmp_path / "fresh-cache"
    monkeypatch.setenv("FEATTEAM_CACHE_DIR", str(cache))
    target = resolve_model_dir(_fake_gguf(tmp_path))
    assert target.parent == cache / "models"
    assert sorted(p.name for p in target.iterdir()) == ["config.json", CONVERSION_RECORD, "tokenizer.json"]
    assert is_conversion(target)  # named by its GGUF's content, which the record says
    # A conversion made before the record existed gets it when it is next used.
    (target / CONVERSION_RECORD).unlink()
    assert not is_conversion(target)
    assert resolve_model_dir(_fake_gguf(tmp_path)) == target and is_conversion(target)
    renamed = target.rename(target.with_name("moved"))
    assert not is_conversion(renamed)  # a renamed folder's name no longer says what it holds
    renamed.rename(target)
    # No .partial left; the lock file two conversions take turns on stays (it is empty).
    assert sorted(p.name for p in (cache / "models").iterdir()) == [target.name, target.name + ".lock"]
    assert resolve_model_dir(_fake_gguf(tmp_path)) == target  # cached: not converted again
    # Reinstalled (the same bytes, a new mtime): the same conversion; other bytes: another one.
    import os

    os.utime(tmp_path / "tiny.gguf", (1_000_000_000, 1_000_000_000))
    assert resolve_model_dir(tmp_path / "tiny.gguf") == target
    (tmp_path / "tiny.gguf").write_bytes(b"another model")
    assert resolve_model_dir(tmp_path / "tiny.gguf") != target


def test_model_conversion_replaces_a_stale_partial_folder(tmp_path, monkeypatch, fake_conversion):
    from featteam.llm import local

    monkeypatch.setenv("FEATTEAM_CACHE_DIR", str(tmp_path / "cache"))
    gguf = _fake_gguf(tmp_path)
    # Where the conversion goes, found by converting once and removing the result.
    target = local.resolve_model_dir(gguf)
    for item in target.iterdir():
        item.unlink()
    target.rmdir()
    stale = target.with_name(target.name + ".partial")
    stale.mkdir()
    (stale / "half-written.safetensors").write_text("cut short by a kill")
    assert local.resolve_model_dir(gguf) == target
    assert sorted(p.name for p in target.iterdir()) == ["config.json", local.CONVERSION_RECORD, "tokenizer.json"]
    assert not stale.exists()


def test_no_module_imports_pyplot():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            offenders += [f"{path.relative_to(PACKAGE)}: {n}" for n in names if n.startswith("matplotlib.pyplot")]
    assert not offenders


def test_plots_write_pngs_and_keep_the_backend(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    from featteam.plots import loss_curve, new_figure, save_figure, scores_by_mode

    before = matplotlib.get_backend()
    scores_by_mode({"ml": [0.1, 0.3, 0.2], "student": [], "teaming": [0.4]}, tmp_path / "modes.png", reference=0.25)
    loss_curve([2.0, 1.5, 1.2], tmp_path / "loss.png")
    fig, axes = new_figure((4, 2), ncols=2)
    assert len(axes) == 2
    assert save_figure(fig, tmp_path / "grid.png") == tmp_path / "grid.png"
    for name in ("modes.png", "loss.png", "grid.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == before


def test_plots_neither_switch_the_backend_nor_import_pyplot(tmp_path):
    """In a fresh interpreter, where pyplot is not imported yet and the backend is chosen by the user."""
    pytest.importorskip("matplotlib")
    script = f"""
import sys
import matplotlib
matplotlib.use("pdf")  # a user's choice that is not Agg; sets the name without importing pyplot
assert "matplotlib.pyplot" not in sys.modules
from featteam.plots import loss_curve, scores_by_mode
scores_by_mode({{"ml": [0.1, 0.3], "teaming": [0.4]}}, {str(tmp_path / "modes.png")!r}, reference=0.2)
loss_curve([2.0, 1.5], {str(tmp_path / "loss.png")!r})
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pdf", "False"]
    assert (tmp_path / "modes.png").stat().st_size > 0 and (tmp_path / "loss.png").stat().st_size > 0


def _strings(value):
    if isinstance(value, dict):
        for inner in value.values():
            yield from _strings(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            yield from _strings(inner)
    elif isinstance(value, (str, Path)):
        yield str(value)


class _FakeRun:
    """Stands in for pipeline.Run: reads the table and writes what a finished run leaves (the
    report, with the table's path, and transformation.json), so the estimator's handling of its
    directory is tested in a second."""

    #: the configuration of the last run made
    last_config = None

    def __init__(self, out, data, target, config, **kwargs) -> None:
        self.out, self.data, self.target = Path(out), Path(data), target
        _FakeRun.last_config = config

    def execute(self) -> dict:
        from featteam.data import load_table, prepare
        from featteam.expr import Transformation

        self.out.mkdir(parents=True, exist_ok=True)
        dataset = prepare(load_table(self.data), self.target)  # as Run reads it (load_dataset)
        Transformation(["f0", "f1", "*"], list(dataset.X.columns),
                       metadata={"preprocessor": dataset.preprocessor.to_dict()}).fit(dataset.X).save(
            self.out / "transformation.json")
        return {"data": {"path": str(self.data), "rows": len(dataset.X)}, "artefacts": [str(self.out / "x.png")],
                "result": {"score": 0.5}}


def _regression(rows: int = 160) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(rows, 4)), columns=["a", "b", "c", "d"])
    return X, X["a"] * X["b"] + 0.1 * rng.normal(size=rows)


def test_fit_in_a_temporary_directory_keeps_results_in_memory_only(tmp_path, monkeypatch):
    from featteam import pipeline
    from featteam.estimator import FeatTeam

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(pipeline, "Run", _FakeRun)
    X, y = _regression()
    model = FeatTeam(n_jobs=1).fit(X, y)
    assert not list(temp.iterdir())
    assert model.report_["data"] == {"path": None, "rows": 160} and model.report_["artefacts"] == [None]
    assert model.report_["result"] == {"score": 0.5}
    assert model.transform(X).shape == (160, 5)
    assert list(model.get_feature_names_out()) == ["a", "b", "c", "d", "(a * b)"]


def test_transform_of_a_table_with_a_text_column(tmp_path, monkeypatch):
    """The text column comes out as the codes the fit read it as (it raised a ValueError before)."""
    from featteam import pipeline
    from featteam.estimator import FeatTeam

    monkeypatch.setattr(pipeline, "Run", _FakeRun)
    X, y = _regression()
    X["colour"] = np.where(X["c"] > 0, "red", "blue")
    out = FeatTeam(n_jobs=1).set_output(transform="pandas").fit(X, y).transform(X)
    assert list(out.columns) == ["a", "b", "c", "d", "colour", "(a * b)"]
    assert np.array_equal(out["colour"].to_numpy(), np.where(X["c"] > 0, 1.0, 0.0))  # blue 0, red 1


def test_fit_in_a_run_dir_keeps_the_table_there(tmp_path, monkeypatch):
    from featteam import pipeline
    from featteam.estimator import FeatTeam

    monkeypatch.setattr(pipeline, "Run", _FakeRun)
    X, y = _regression()
    model = FeatTeam(run_dir=str(tmp_path / "run_here"), n_jobs=1).fit(X, y)
    data = tmp_path / "run_here" / "training_data.parquet"
    assert data.exists() and (tmp_path / "run_here" / "run" / "transformation.json").exists()
    assert model.report_["data"]["path"] == str(data)  # kept: the run resumes from it


def test_the_search_reads_x_as_transform_does(monkeypatch):
    """The fit's table went through a CSV file: dates came back as text (dropped as free text),
    the category "NA" as a missing value, "True"/"False" as booleans, so the search and transform
    read X differently.  Now the search reads X as prepare (and transform) read it."""
    from featteam import pipeline, prepare
    from featteam.estimator import FeatTeam

    monkeypatch.setattr(pipeline, "Run", _FakeRun)
    X, y = _regression()
    rng = np.random.default_rng(1)
    X["when"] = pd.date_range("2021-01-01", periods=len(X), freq="D")
    X["code"] = rng.choice(["NA", "B"], size=len(X)).astype(object)
    X["flag"] = rng.choice(["True", "False"], size=len(X)).astype(object)
    X["mixed"] = pd.Series([1.5 if i % 2 else "n/a" for i in range(len(X))], dtype=object)  # Parquet needs text
    model = FeatTeam(n_jobs=1).set_output(transform="pandas").fit(X, y)
    expected = prepare(X.assign(target=y), "target").X
    out = model.transform(X)
    assert list(out.columns[:-1]) == list(expected.columns) == ["a", "b", "c", "d", "when", "code", "flag", "mixed"]
    assert np.array_equal(out.iloc[:, :-1].to_numpy(), expected.to_numpy(), equal_nan=True)
    assert not out["code"].isna().any() and not out["flag"].isna().any()


def test_the_estimator_refuses_bad_input_clearly(monkeypatch):
    from featteam import pipeline
    from featteam.errors import DataError, FeatteamError
    from featteam.estimator import FeatTeam

    monkeypatch.setattr(pipeline, "Run", _FakeRun)
    X, y = _regression()
    with pytest.raises(DataError, match="X must be a table"):
        FeatTeam(n_jobs=1).fit(np.zeros(40), np.zeros(40))
    with pytest.raises(DataError, match="y is required"):
        FeatTeam(n_jobs=1).fit(X, None)
    with pytest.raises(FeatteamError, match="random_state must be an integer"):
        FeatTeam(n_jobs=1, random_state=None).fit(X, y)
    with pytest.raises(DataError, match="more than one column named"):
        FeatTeam(n_jobs=1).fit(pd.concat([X, X[["a"]]], axis=1), y)
    model = FeatTeam(n_jobs=1).fit(X.to_numpy(), y.to_numpy().reshape(-1, 1))  # y as one column
    assert not hasattr(model, "feature_names_in_") and model.n_features_in_ == 4  # scikit-learn's rule
    assert model.transform(X.to_numpy()).shape == (160, 5)
    with pytest.raises(DataError, match="the fit saw 4 columns"):
        model.transform(X.to_numpy()[:, :3])
    with pytest.raises(ValueError, match="input_features has 3 names"):
        model.get_feature_names_out(["a", "b", "c"])


def test_settings_may_set_none_and_names_out_are_unique(monkeypatch):
    """None in settings is a value (search_trees=None: the downstream model's trees), not skipped;
    a new feature named like an input column gets a name of its own."""
    from featteam import pipeline
    from featteam.estimator import FeatTeam

    monkeypatch.setattr(pipeline, "Run", _FakeRun)
    X, y = _regression()
    X = X.rename(columns={"d": "(a * b)"})
    model = FeatTeam(n_jobs=1, preset="quick", settings={"search_trees": None}).fit(X, y)
    assert _FakeRun.last_config.search_trees is None
    names = list(model.get_feature_names_out())
    assert names == ["a", "b", "c", "(a * b)", "new: (a * b)"] and len(set(names)) == len(names)
    assert list(model.set_output(transform="pandas").transform(X).columns) == names


@pytest.mark.slow
def test_fit_without_run_dir_leaves_no_folder(tmp_path, monkeypatch):
    from featteam.estimator import FeatTeam

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(160, 4)), columns=["a", "b", "c", "d"])
    y = X["a"] * X["b"] + 0.1 * rng.normal(size=160)
    model = FeatTeam(preset="quick", teacher="none",
                     settings=dict(n_golden=16, search_top_k=2, step_sizes=(1.0, 4.0), beam=2, latent_epochs=30,
                                   student_epochs=1, student_samples=4),
                     n_jobs=1).fit(X, y)
    assert not list(temp.glob("featteam-*"))
    # The fitted estimator works from memory and keeps no path into the removed directory.
    assert model.transform(X).shape[0] == len(X)
    kept = list(_strings(model.report_)) + list(_strings(model.transformation_.metadata))
    kept += list(_strings(json.loads(json.dumps(vars(model), default=str))))
    assert not [s for s in kept if str(temp) in s]


def test_a_damaged_response_cache_is_left_alone_and_not_used(tmp_path, caplog):
    """A file that is not a database: every lookup misses, nothing is written into it, one warning."""
    path = tmp_path / "responses.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    cache = ResponseCache(path)
    assert cache.get("k") is None and len(cache) == 0
    cache.put("k", ["x"])
    assert cache.get("k") is None
    assert path.read_bytes() == b"this is not a database" * 100
    assert caplog.text.count("cannot be used") == 1
    # A stored response that is not JSON is a miss, not a crash.
    good = ResponseCache(tmp_path / "good.sqlite")
    good.put("k", ["x"])
    good._db.execute("UPDATE responses SET value = '[[[' WHERE key = 'k'")
    assert good.get("k") is None
    good.close()
    with pytest.raises(sqlite3.ProgrammingError):
        good.get("k")
