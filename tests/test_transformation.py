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

from featteam import FeatureTransformer, Transformation, TransformationError
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
