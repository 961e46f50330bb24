"""Applying transformations: fit/transform, JSON persistence, the scikit-learn transformer."""

import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

from featteam import FeatteamError, FeatureTransformer, Transformation, TransformationError
from featteam.expr.imputation import fill_missing, fit_medians


def _frame(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.uniform(18, 80, n), "income": rng.lognormal(10, 1, n),
                         "odd name!": rng.normal(size=n)})


def test_fit_transform_and_missing_values():
    frame = _frame()
    t = Transformation.from_text("(age * income), quan_trans(`odd name!`), log(income / age)", frame.columns)
    fitted = t.fit(frame)
    new = fitted.transform(frame)
    assert new.shape == (50, 3)
    np.testing.assert_allclose(new[:, 0], frame["age"] * frame["income"])
    holes = frame.copy()
    holes.iloc[0, 0] = np.nan
    holes.iloc[1, 1] = np.inf
    out = fitted.transform(holes)
    assert np.all(np.isfinite(out))
    assert out[0, 0] == pytest.approx(fitted.impute_values[0] * frame["income"][0])


def test_columns_are_checked_by_name_and_reordered():
    frame = _frame()
    fitted = Transformation.from_text("(age / income)", frame.columns).fit(frame)
    reordered = frame[["odd name!", "income", "age"]]
    np.testing.assert_array_equal(fitted.transform(reordered), fitted.transform(frame))
    with pytest.raises(TransformationError, match="missing column"):
        fitted.transform(frame.drop(columns="age"))
    with pytest.raises(TransformationError, match="not fitted"):
        Transformation.from_text("(age / income)", frame.columns).transform(frame)
    with pytest.raises(FeatteamError, match="missing column"):  # what featteam reports, caught as one
        fitted.transform(frame.drop(columns="age"))


def test_json_roundtrip(tmp_path):
    frame = _frame()
    fitted = Transformation.from_text("stand_scaler(age), minmax_scaler(income - age)", frame.columns).fit(frame)
    path = tmp_path / "t.json"
    fitted.save(path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1
    assert data["formulas"] == ["stand_scaler(age)", "minmax_scaler((income - age))"]
    loaded = Transformation.load(path)
    np.testing.assert_array_equal(loaded.transform(frame), fitted.transform(frame))


@pytest.mark.parametrize("content, message", [
    ("not json", "not valid JSON"),
    ('{"kind": "something else"}', "not a featteam transformation"),
    ('{"kind": "featteam.transformation", "schema_version": 99}', "unsupported schema_version"),
    ('{"kind": "featteam.transformation", "schema_version": 1}', "malformed"),
    ('{"kind": "featteam.transformation", "schema_version": 1, "tokens": ["f0", "__import__"], '
     '"input_columns": ["a"]}', "unknown token"),
])
def test_bad_transformation_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        Transformation.load(path)


def test_saved_transformation_applies_in_a_process_without_torch(tmp_path):
    frame = _frame(80)
    data_path = tmp_path / "data.csv"
    frame.to_csv(data_path, index=False)
    fitted = Transformation.from_text("(age * income), quan_trans(`odd name!`), sigmoid(age)",
                                      frame.columns).fit(frame)
    fitted.save(tmp_path / "t.json")
    np.save(tmp_path / "expected.npy", fitted.transform(frame))
    script = textwrap.dedent(f"""
        import sys
        import numpy as np, pandas as pd
        from featteam import Transformation, FeatureTransformer
        t = Transformation.load({str(tmp_path / 't.json')!r})
        frame = pd.read_csv({str(data_path)!r})
        out = t.transform(frame)
        assert np.array_equal(out, np.load({str(tmp_path / 'expected.npy')!r})), "columns differ"
        ft = FeatureTransformer(t).fit(frame)
        heavy = [m for m in ("torch", "transformers", "openai", "peft") if m in sys.modules]
        assert not heavy, heavy
        print("OK")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"


def test_sklearn_estimator_checks():
    failures = [r for r in check_estimator(FeatureTransformer("[f0 square]"), on_fail=None)
                if r["status"] == "failed"]
    assert failures == []


def test_transformer_in_a_pipeline_with_pandas_output():
    frame = _frame(120)
    y = frame["age"] * frame["income"]
    transformer = FeatureTransformer("(age * income), log(income)").set_output(transform="pandas")
    out = transformer.fit_transform(frame)
    assert list(out.columns) == ["age", "income", "odd name!", "(age * income)", "log(income)"]
    pipeline = make_pipeline(FeatureTransformer("(age * income)"), RandomForestRegressor(n_estimators=10, random_state=0))
    assert pipeline.fit(frame, y).score(frame, y) > 0.9
    loaded_from_path = FeatureTransformer(transformation="[f0 f1 *]", keep_original=False).fit(frame.to_numpy())
    assert loaded_from_path.get_feature_names_out().tolist() == ["(x0 * x1)"]


def test_columns_with_other_names_are_refused_not_taken_by_position():
    """X with names that are not the transformation's columns is an error, even when the number
    of columns matches (taking them by position would compute the wrong features silently)."""
    t = Transformation.from_text("(age / income)", ["age", "income"])
    other = pd.DataFrame({"height": [1.0, 2.0, 3.0], "weight": [4.0, 5.0, 6.0]})
    with pytest.raises(TransformationError, match="lacks the transformation's column"):
        FeatureTransformer(t).fit(other)
    assert FeatureTransformer(t).fit(other.to_numpy()).transform(other.to_numpy()).shape == (3, 3)  # no names


def _saved_from_a_raw_table(tmp_path, rows: int = 60):
    """A transformation saved as ``featteam fit`` saves one: over a table with a text column, with
    the table's reading (its preprocessor) in its metadata, fitted on the first rows."""
    from featteam.data import prepare

    rng = np.random.default_rng(0)
    raw = pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], size=rows), "size": rng.normal(size=rows),
                        "label": rng.normal(size=rows)})
    dataset = prepare(raw, "label")
    features = raw.drop(columns="label")
    path = tmp_path / "transformation.json"
    columns = list(dataset.X.columns)
    tokens = Transformation.from_text("(colour * size), quan_trans(size)", columns).tokens
    Transformation(tokens, columns, metadata={"preprocessor": dataset.preprocessor.to_dict()}).fit(
        dataset.X.iloc[:40]).save(path)
    return path, features, dataset


def test_a_saved_transformation_reads_the_raw_table_as_the_fit_did(tmp_path):
    """A raw table with a text column goes through FeatureTransformer as through
    ``featteam transform``: the saved reading turns the text into the fit's codes."""
    path, features, dataset = _saved_from_a_raw_table(tmp_path)
    saved = Transformation.load(path)
    transformer = FeatureTransformer(path).set_output(transform="pandas")
    out = transformer.fit_transform(features)
    assert list(out.columns) == ["colour", "size", "(colour * size)", "quan_trans(size)"]
    assert np.array_equal(out["colour"].to_numpy(), dataset.X["colour"].to_numpy())
    assert np.allclose(out.iloc[:, 2:].to_numpy(), saved.fit(dataset.X).transform(dataset.X))  # refit on X
    # refit=False keeps the saved fit (on the first 40 rows), as `featteam transform` applies it.
    kept = FeatureTransformer(path, keep_original=False, refit=False).fit(features.iloc[:5])
    assert np.allclose(kept.transform(features), saved.transform(dataset.X))
    assert not np.allclose(kept.transform(features)[:, 1], out.iloc[:, 3].to_numpy())  # a different fit
    with pytest.raises(TransformationError, match="refit=False"):
        FeatureTransformer("(colour * size)", refit=False).fit(dataset.X)


def test_transformer_needs_a_transformation():
    with pytest.raises(ValueError, match="needs a transformation"):
        FeatureTransformer().fit(_frame())


# -- imputation --------------------------------------------------------------------------

_values = st.one_of(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0]),
                    st.floats(-1e6, 1e6, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 30).flatmap(lambda n: arrays(np.float64, (n, 3), elements=_values)))
def test_fitted_medians_are_the_nan_medians_of_the_finite_values(X):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning leaks, even for an all-missing column
        medians = fit_medians(X)
    for j in range(X.shape[1]):
        finite = X[np.isfinite(X[:, j]), j]
        if finite.size == 0:
            assert medians[j] == 0.0
            continue
        assert medians[j] == np.median(finite)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            assert medians[j] == np.nanmedian(np.where(np.isfinite(X[:, j]), X[:, j], np.nan))
    filled = fill_missing(X, medians)
    assert np.all(np.isfinite(filled))
    np.testing.assert_array_equal(filled[np.isfinite(X)], X[np.isfinite(X)])
    np.testing.assert_array_equal(filled, np.where(np.isfinite(X), X, medians))


def test_fill_missing_copies_only_when_something_is_missing():
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert fill_missing(X, [0.0, 0.0]) is X
    holes = np.array([[np.nan, 2.0], [3.0, -np.inf]])
    filled = fill_missing(holes, [9.0, 8.0])
    assert filled.tolist() == [[9.0, 2.0], [3.0, 8.0]] and np.isnan(holes[0, 0])  # the input is untouched


def test_fitted_impute_values_are_the_training_medians():
    frame = _frame()
    frame.iloc[:10, 0] = np.nan
    frame.iloc[10:15, 1] = np.inf
    fitted = Transformation.from_text("(age * income)", frame.columns).fit(frame)
    assert fitted.impute_values == fit_medians(frame.to_numpy()).tolist()
    assert fitted.impute_values[0] == np.median(frame["age"][10:])
    assert all(type(v) is float for v in fitted.impute_values)  # saved as JSON


# -- every field of a transformation file is checked at load ------------------------------

def _fitted_dict():
    frame = _frame()
    t = Transformation.from_text("stand_scaler(age), minmax_scaler(income - age), quan_trans(`odd name!`)",
                                 frame.columns).fit(frame)
    return t.to_dict()


def _with(changes):
    data = _fitted_dict()
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        target = data
        for key in parents:
            target = target[key]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return data


_DELETE = object()
_FLOAT_MAX_TEXT = "1e999"  # json reads it as inf


@pytest.mark.parametrize("changes, field", [
    ({"tokens": "f0 stand_scaler"}, "tokens must be a list"),
    ({"tokens": _DELETE}, "'tokens' is missing"),
    ({"tokens": ["f0", 1]}, r"tokens\[1\] is not a token"),
    ({"tokens": ["f0", {"op": "sqrt"}]}, r"tokens\[1\] is not a token"),
    ({"tokens": ["f0", "x" * 1000]}, r"tokens\[1\] is not a token"),
    ({"tokens": ["f0\n", "sqrt"]}, r"tokens\[0\] is not a token"),
    ({"input_columns": "age"}, "input_columns must be a list"),
    ({"input_columns": ["age", None, "x"]}, r"input_columns\[1\] must be a string"),
    ({"input_columns": ["age", {"a": 1}, "x"]}, r"input_columns\[1\] must be a string"),
    ({"input_columns": ["age", "age", "x"]}, "input_columns must be distinct"),
    ({"impute_values": [1.0]}, "impute_values must be a list of 3 numbers"),
    ({"impute_values": [1.0, 2.0, 3.0, 4.0]}, "impute_values must be a list of 3 numbers"),
    ({"impute_values": [None, None, None]}, r"impute_values\[0\] must be a number"),
    ({"impute_values": [1.0, "2", 3.0]}, r"impute_values\[1\] must be a number"),
    ({"impute_values": [1.0, True, 3.0]}, r"impute_values\[1\] must be a number"),
    ({"impute_values": [1.0, float("nan"), 3.0]}, r"impute_values\[1\] must be a finite number"),
    ({"impute_values": [1.0, float("inf"), 3.0]}, r"impute_values\[1\] must be a finite number"),
    ({"impute_values": [1.0, 10 ** 400, 3.0]}, r"impute_values\[1\] must be a finite number"),
    ({"impute_values": {"0": 1.0}}, "impute_values must be a list"),
    ({"states": [1]}, "states must be an object"),
    ({"states": "x"}, "states must be an object"),
    ({"states": {}}, r"no state for the stateful operator\(s\) at position\(s\) \[1, 6, 9\]"),
    ({"states.x": {}}, "key 'x' is not a token position"),
    ({"states.01": {}}, "key '01' is not a token position"),
    ({"states.0": {"mean": 0.0, "std": 1.0}}, r"states\[0\]: token 0 is no stateful operator"),
    ({"states.99": {"mean": 0.0, "std": 1.0}}, r"states\[99\]: token 99 is no stateful operator"),
    ({"states.1": None}, r"states\[1\] must be an object"),
    ({"states.1": {"mean": 0.0}}, r"states\[1\] of stand_scaler must have the keys \['mean', 'std'\]"),
    ({"states.1": {"mean": 0.0, "std": 1.0, "x": 2}}, "must have the keys"),
    ({"states.1.std": 0.0}, r"states\[1\].std must be positive"),
    ({"states.1.std": -1.0}, r"states\[1\].std must be positive"),
    ({"states.1.mean": None}, r"states\[1\].mean must be a number"),
    ({"states.1.mean": float("nan")}, r"states\[1\].mean must be a finite number"),
    ({"states.1.mean": [0.0]}, r"states\[1\].mean must be a number"),
    ({"states.6.min": 5.0, "states.6.max": 1.0}, r"states\[6\]: min 5.0 is above max 1.0"),
    ({"states.6.max": float("-inf")}, r"states\[6\].max must be a finite number"),
    ({"states.9.quantiles": []}, r"states\[9\].quantiles must be a list of 2 to 1000 numbers"),
    ({"states.9.quantiles": [1.0]}, "must be a list of 2 to 1000 numbers"),
    ({"states.9.quantiles": list(range(1001))}, "must be a list of 2 to 1000 numbers"),
    ({"states.9.quantiles": "0 1"}, "must be a list of 2 to 1000 numbers"),
    ({"states.9.quantiles": [0.0, None, 1.0]}, r"states\[9\].quantiles\[1\] must be a number"),
    ({"states.9.quantiles": [0.0, float("inf")]}, r"quantiles\[1\] must be a finite number"),
    ({"states.9.quantiles": [2.0, 1.0, 3.0]}, "quantiles must be in increasing order"),
    ({"metadata": [["task", "regression"]]}, "metadata must be an object"),
    ({"metadata": "x"}, "metadata must be an object"),
    ({"schema_version": True}, "unsupported schema_version"),
    ({"schema_version": 1.0}, "unsupported schema_version"),
])
def test_every_field_of_a_file_is_checked(tmp_path, changes, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_with(changes)))
    with pytest.raises(TransformationError, match=field):
        Transformation.load(path)


def test_a_corrupt_file_is_refused_at_load_not_at_transform(tmp_path):
    """The reported cases: before, a short list failed later with an internal IndexError and
    nulls gave silently wrong numbers (an imputed 0), both only once the input had a NaN."""
    frame = _frame()
    frame.iloc[0, :] = np.nan
    for impute in ([1.0], [None, None, None], [1.0, float("inf"), 2.0], ["a", "b", "c"]):
        path = tmp_path / "t.json"
        path.write_text(json.dumps({**_fitted_dict(), "impute_values": impute}))
        with pytest.raises(TransformationError, match="impute_values"):
            Transformation.load(path).transform(frame)


def test_a_valid_file_with_integers_and_no_states_loads(tmp_path):
    data = _fitted_dict()
    data["impute_values"] = [1, 2, 3]  # JSON integers are numbers too
    data["states"]["1"]["std"] = 2
    loaded = Transformation.from_dict(data)
    assert loaded.impute_values == [1.0, 2.0, 3.0] and type(loaded.states[1]["std"]) is float
    unfitted = Transformation.from_dict({**data, "impute_values": None, "states": None, "metadata": None})
    assert not unfitted.is_fitted and unfitted.metadata == {}


def test_the_state_of_every_stateful_operator_is_checked():
    from featteam.expr.operators import OPERATORS
    from featteam.expr.transformation import _STATE_KEYS

    frame = _frame()
    for token, op in OPERATORS.items():
        if op.stateful:
            fitted = Transformation(["f0", token], ["age"]).fit(frame[["age"]])
            assert set(fitted.states[1]) == set(_STATE_KEYS[token])


def test_duplicate_keys_bom_and_bytes(tmp_path):
    path = tmp_path / "t.json"
    text = json.dumps(_fitted_dict())
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # a BOM, as some editors write: fine
    assert Transformation.load(path).is_fitted
    path.write_text(text[:-1] + ', "tokens": ["f0", "sqrt"]}')
    with pytest.raises(TransformationError, match="the key 'tokens' appears twice"):
        Transformation.load(path)
    path.write_bytes(b"\xff\xfe{\x00}\x00")
    with pytest.raises(TransformationError, match="not UTF-8"):
        Transformation.load(path)
    path.write_text("[" * 100_000)
    with pytest.raises(TransformationError, match="not valid JSON"):
        Transformation.load(path)
    path.write_text('{"kind": "featteam.transformation", "schema_version": 1, "x": 1' + "0" * 5000 + "}")
    with pytest.raises(TransformationError, match="not valid JSON"):
        Transformation.load(path)


def test_input_columns_are_taken_by_position_even_with_repeated_names():
    frame = _frame()
    fitted = Transformation.from_text("(age / income)", frame.columns).fit(frame)
    twice = pd.concat([frame[["age"]].rename(columns={"age": "odd name!"}), frame], axis=1)
    np.testing.assert_array_equal(fitted.transform(twice), fitted.transform(frame))
    with pytest.raises(TransformationError, match="input must be numeric"):
        fitted.transform(np.array([["a", "b", "c"]]))


def test_impute_values_stay_finite_for_values_near_the_float_maximum():
    frame = pd.DataFrame({"a": [1.7e308, 1.7e308, 1.7e308, 2.0], "b": [1.0, 2.0, 3.0, 4.0]})
    with np.errstate(over="ignore"):
        assert fit_medians(frame.to_numpy())[0] == np.inf  # the mean of the two middle values overflows
        fitted = Transformation.from_text("(a * b)", ["a", "b"]).fit(frame)
    assert all(np.isfinite(fitted.impute_values))
    assert np.all(np.isfinite(fitted.transform(frame.iloc[:, ::-1].assign(a=np.nan))))


# -- size limits ----------------------------------------------------------------------------

def test_files_over_the_size_limit_are_refused_before_reading(tmp_path):
    import time

    from featteam.expr.transformation import MAX_FILE_BYTES

    path = tmp_path / "big.json"
    data = {**_fitted_dict(), "tokens": ["f0", "sqrt", "<sep>"] * 500_000}  # 12 MB
    path.write_text(json.dumps(data))
    assert path.stat().st_size > MAX_FILE_BYTES
    start = time.perf_counter()
    with pytest.raises(TransformationError, match=f"at most {MAX_FILE_BYTES}"):
        Transformation.load(path)
    assert time.perf_counter() - start < 0.5


def test_too_many_tokens_are_refused_before_the_structure_checks(tmp_path):
    import time

    from featteam.expr.transformation import MAX_TOKENS

    path = tmp_path / "long.json"
    data = {**_fitted_dict(), "tokens": ["f0"] * (MAX_TOKENS + 1)}  # and no valid structure
    path.write_text(json.dumps(data))
    start = time.perf_counter()
    with pytest.raises(TransformationError, match=f"{MAX_TOKENS + 1} tokens, at most {MAX_TOKENS}"):
        Transformation.load(path)
    assert time.perf_counter() - start < 0.5
    # At the limit it loads (many features of a few tokens each) and applies in reasonable time.
    unary = ["sqrt", "square", "sin", "cos", "tanh", "sigmoid", "log", "reciprocal", "cube"]
    tokens, k = [], 0
    while True:
        feature, rest = [f"f{k % 3}"], k
        while True:  # k in base 9, one unary operator a digit: every feature differs
            feature.append(unary[rest % 9])
            rest //= 9
            if not rest:
                break
        if len(tokens) + len(feature) + 1 > MAX_TOKENS:
            break
        tokens += (["<sep>"] if tokens else []) + feature
        k += 1
    frame = _frame()
    start = time.perf_counter()
    fitted = Transformation(tokens, list(frame.columns)).fit(frame)
    new = fitted.transform(frame)
    assert len(tokens) > MAX_TOKENS - 10 and new.shape == (50, k) and np.all(np.isfinite(new))
    assert time.perf_counter() - start < 10


def test_nesting_depth_is_limited_like_infix_text():
    from featteam.expr import MAX_NESTING, parse_infix
    from featteam.expr.transformation import MAX_DEPTH

    assert MAX_DEPTH == MAX_NESTING
    deepest = Transformation(["f0"] + ["sqrt"] * MAX_DEPTH, ["a"])
    # Every formula a transformation writes reads back.
    assert parse_infix(deepest.formulas[0], ["a"]) == deepest.tokens
    chain = ["f0", "f1", "+"] + ["f1", "+"] * (MAX_DEPTH - 1)
    assert parse_infix(Transformation(chain, ["a", "b"]).formulas[0], ["a", "b"]) == chain
    with pytest.raises(TransformationError, match=f"nests {MAX_DEPTH + 1} operators deep"):
        Transformation(["f0"] + ["sqrt"] * (MAX_DEPTH + 1), ["a"])
    with pytest.raises(TransformationError, match="nests"):
        Transformation(chain + ["f1", "+"], ["a", "b"])


# -- writing -----------------------------------------------------------------------------------

def test_save_is_atomic(tmp_path, monkeypatch):
    from pathlib import Path

    frame = _frame()
    path = tmp_path / "t.json"
    first = Transformation.from_text("(age * income)", frame.columns).fit(frame)
    first.save(path)
    before = path.read_text()
    real_write_text = Path.write_text

    def killed(self, text, *args, **kwargs):
        real_write_text(self, text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        Transformation.from_text("log(age)", frame.columns).fit(frame).save(path)
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["t.json"]
    monkeypatch.undo()
    Transformation.from_text("log(age)", frame.columns).fit(frame).save(path)
    assert Transformation.load(path).formulas == ["log(age)"] and [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_transform_command_refuses_an_unknown_output_suffix_before_any_work(tmp_path, capsys):
    from featteam.cli import main

    frame = _frame()
    frame.to_csv(tmp_path / "d.csv", index=False)
    # The transformation does not even exist: the suffix is refused first.
    assert main(["transform", str(tmp_path / "missing.json"), str(tmp_path / "d.csv"),
                 "--out", str(tmp_path / "o.xlsx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("featteam: error: cannot write") and ".csv, .csv.gz, .parquet, .pq" in err
    assert err.count("\n") == 1 and not (tmp_path / "o.xlsx").exists()


@pytest.mark.parametrize("name", ["o.csv", "o.csv.gz", "o.parquet", "o.pq"])
def test_transform_command_writes_each_format(tmp_path, capsys, name):
    from featteam.cli import main
    from featteam.data import load_table

    frame = _frame()
    frame.to_csv(tmp_path / "d.csv", index=False)
    Transformation.from_text("(age * income)", frame.columns).fit(frame).save(tmp_path / "t.json")
    assert main(["transform", str(tmp_path / "t.json"), str(tmp_path / "d.csv"), "--out", str(tmp_path / name)]) == 0
    out = load_table(tmp_path / name)
    assert list(out.columns) == ["age", "income", "odd name!", "(age * income)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["d.csv", "t.json", name])


def test_a_killed_transform_leaves_no_half_file(tmp_path, monkeypatch, capsys):
    from featteam.cli import main

    frame = _frame()
    frame.to_csv(tmp_path / "d.csv", index=False)
    Transformation.from_text("(age * income)", frame.columns).fit(frame).save(tmp_path / "t.json")
    real_to_csv = pd.DataFrame.to_csv

    def killed(self, target, *args, **kwargs):
        real_to_csv(self.head(3), target, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", killed)
    assert main(["transform", str(tmp_path / "t.json"), str(tmp_path / "d.csv"), "--out", str(tmp_path / "o.csv")]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "t.json"]


def test_transform_command_with_a_corrupt_file_is_one_line(tmp_path, capsys):
    from featteam.cli import main

    frame = _frame()
    frame.iloc[0, 0] = np.nan
    frame.to_csv(tmp_path / "d.csv", index=False)
    bad = {**Transformation.from_text("(age * income)", frame.columns).fit(frame.fillna(1.0)).to_dict(),
           "impute_values": [1.0]}
    (tmp_path / "t.json").write_text(json.dumps(bad))
    for command in (["transform", str(tmp_path / "t.json"), str(tmp_path / "d.csv"), "--out",
                     str(tmp_path / "o.csv")], ["show", str(tmp_path / "t.json")]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.startswith("featteam: error: malformed transformation file: impute_values") and err.count("\n") == 1
    bad = {**bad, "impute_values": [1.0, 2.0, 3.0], "metadata": {"preprocessor": {"columns": "age"}}}
    (tmp_path / "t.json").write_text(json.dumps(bad))
    assert main(["transform", str(tmp_path / "t.json"), str(tmp_path / "d.csv"), "--out", str(tmp_path / "o.csv")]) == 1
    assert "featteam: error: malformed preprocessor" in capsys.readouterr().err


def test_feature_transformer_reads_names_not_positions_and_says_what_it_cannot_read():
    """Integer column names are names (they were matched by position, silently); infinite values
    are imputed as Transformation does; a text or date column is refused by name."""
    fit = pd.DataFrame({"0": [10.0, 20.0, 30.0, 40.0], "1": [1.0, 2.0, 3.0, 4.0]})
    saved = Transformation.from_text("log(`0`)", ["0", "1"]).fit(fit)
    swapped = pd.DataFrame({1: [1.0, 2.0, 3.0, 4.0], 0: [10.0, 20.0, 30.0, 40.0]})
    np.testing.assert_allclose(FeatureTransformer(saved).fit(swapped).transform(swapped)[:, -1], np.log(fit["0"]))
    by_text = FeatureTransformer("(`0` * `1`)").fit(swapped)
    np.testing.assert_allclose(by_text.transform(swapped)[:, -1], fit["0"] * fit["1"])
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [4.0, 5.0, 6.0, 8.0]})
    model = FeatureTransformer("(a * b)").fit(X)
    out = model.transform(X.assign(a=[np.inf, 2.0, 3.0, 4.0]))
    assert np.isfinite(out[:, -1]).all() and out[0, -1] == model.transformation_.transform(X.assign(a=np.nan))[0, 0]
    on_arrays = FeatureTransformer("[f0 f1 *]").fit(X.to_numpy())
    assert np.isfinite(on_arrays.transform(np.array([[np.inf, 1.0]]))[:, -1]).all()
    with pytest.raises(TransformationError, match=r"column\(s\) \['id'\] are not numbers"):
        FeatureTransformer("(a * b)").fit(X.assign(id=["u1", "u2", "u3", "u4"]))
    with pytest.raises(TransformationError, match=r"column\(s\) \['a'\] are not numbers"):
        FeatureTransformer("(a * b)").fit(X.assign(a=pd.date_range("2020-01-01", periods=4)))
    with pytest.raises(TransformationError, match="hold dates or durations"):
        Transformation.from_text("(a * b)", ["a", "b"]).fit(X).transform(X.assign(a=pd.date_range("2020", periods=4)))
    with pytest.raises(TransformationError, match="more than one column named"):
        Transformation.from_text("(a * b)", ["a", "b"]).fit(X).transform(pd.concat([X, X[["a"]]], axis=1))


def test_output_names_are_unique_and_input_features_checked():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [4.0, 5.0, 6.0, 8.0], "(a * b)": [0.0, 0.0, 0.0, 1.0]})
    model = FeatureTransformer("(a * b)").fit(X)
    assert list(model.get_feature_names_out()) == ["a", "b", "(a * b)", "new: (a * b)"]
    y = np.array([1.0, 2.0, 3.0, 5.0])
    make_pipeline(FeatureTransformer("(a * b)"), RandomForestRegressor(n_estimators=2)).set_output(
        transform="pandas").fit(X, y)  # pandas output refused repeated names before
    twice = make_pipeline(FeatureTransformer("(a * b)"), FeatureTransformer("(a * b)")).set_output(transform="pandas")
    assert list(twice.fit_transform(X).columns)[-2:] == ["new: (a * b)", "new 2: (a * b)"]
    with pytest.raises(ValueError, match="input_features has 2 names"):
        model.get_feature_names_out(["p", "q"])
    with pytest.raises(ValueError, match="are not the fit's columns"):
        model.get_feature_names_out(["p", "q", "r"])
    assert list(FeatureTransformer("[f0 f1 *]").fit(X.to_numpy()).get_feature_names_out(["p", "q", "r"]))[:3] == \
        ["p", "q", "r"]


def test_complex_input_is_refused_not_cast_to_real():
    frame = _frame()
    fitted = Transformation.from_text("(age / income)", frame.columns).fit(frame)
    with pytest.raises(TransformationError, match=r"\['age'\] hold complex numbers"):
        fitted.transform(frame.assign(age=frame["age"] * 1j))
    with pytest.raises(TransformationError, match="complex numbers"):
        fitted.transform(frame.to_numpy() * 1j)
