"""Input checks: every bad-input case gets a clear error or a reported fix, never a crash."""

import logging

import numpy as np
import pandas as pd
import pytest

from featteam import DataError, load_table, prepare
from featteam.data import infer_task


def test_missing_target_column(small_regression):
    with pytest.raises(DataError, match="target column 'nope' not found; columns are: a, b, c, d, target"):
        prepare(small_regression, "nope")


def test_nan_and_inf_impute_or_refuse(small_regression, caplog):
    frame = small_regression.copy()
    frame.loc[3, "a"] = np.nan
    frame.loc[4, "b"] = np.inf
    with caplog.at_level(logging.WARNING):
        ds = prepare(frame, "target")
    assert ds.X["a"].isna().sum() == 1 and ds.X["b"].isna().sum() == 1
    assert any("imputed with training medians" in n and "'a': 1" in n and "'b': 1" in n for n in ds.notes)
    assert "imputed" in caplog.text
    with pytest.raises(DataError, match=r"missing or infinite values in 'a': 1, 'b': 1"):
        prepare(frame, "target", nan="refuse")


def test_missing_targets_are_dropped_and_said(small_regression):
    frame = small_regression.copy()
    frame.loc[[1, 2], "target"] = np.nan
    ds = prepare(frame, "target")
    assert ds.n_rows == 198
    assert any("dropped 2 row(s)" in n for n in ds.notes)


def test_text_and_categorical_columns(small_classification):
    frame = small_classification.copy()
    frame["colour"] = np.where(frame["a"] > 0, "red", "blue")
    frame["cat"] = pd.Categorical(np.where(frame["b"] > 0, "x", "y"))
    frame["id"] = [f"user-{i}" for i in range(len(frame))]
    frame["mostly numbers"] = frame["c"].astype(str)
    frame.loc[0, "mostly numbers"] = "n/a"
    ds = prepare(frame, "target")
    assert {"colour", "cat", "mostly numbers"} <= set(ds.X.columns)
    assert "id" not in ds.X.columns
    assert set(ds.X["colour"].unique()) == {0.0, 1.0}
    assert any("'id': dropped" in n for n in ds.notes)
    assert any("'mostly numbers': 1 non-numeric" in n for n in ds.notes)
    # The same encoding applies to new raw rows; unknown categories become missing.
    new = frame.head(3).copy()
    new.loc[new.index[0], "colour"] = "green"
    out = ds.preprocessor.transform(new)
    assert np.isnan(out["colour"].iloc[0]) and list(out.columns) == list(ds.X.columns)


def test_constant_and_duplicate_columns(small_regression):
    frame = small_regression.copy()
    frame["const"] = 3.0
    frame["a_copy"] = frame["a"]
    kept = prepare(frame, "target")
    assert "const" in kept.X.columns and any("'const': constant, kept" in n for n in kept.notes)
    assert any("'a_copy': duplicate" in n for n in kept.notes)
    dropped = prepare(frame, "target", drop_redundant=True)
    assert "const" not in dropped.X.columns and "a_copy" not in dropped.X.columns


def test_one_class_target(small_classification):
    frame = small_classification.copy()
    frame["target"] = 1
    with pytest.raises(DataError, match="only one class"):
        prepare(frame, "target", task="classification")
    with pytest.raises(DataError, match="constant"):
        prepare(frame, "target", task="regression")


def test_too_few_rows(small_regression):
    with pytest.raises(DataError, match="too few rows: 10"):
        prepare(small_regression.head(10), "target")


def test_no_usable_feature():
    frame = pd.DataFrame({"text": [f"free text {i}" for i in range(40)], "y": [0, 1] * 20})
    with pytest.raises(DataError, match="no usable feature column"):
        prepare(frame, "y")


def test_odd_column_names(small_regression):
    frame = small_regression.copy()
    frame.columns = ["a b", "", 7, "a b", "target"]
    ds = prepare(frame, "target")
    assert list(ds.X.columns) == ["a b", "column_1", "7", "a b.1"]
    assert any("renamed" in n for n in ds.notes)


def test_task_inference():
    assert infer_task(pd.Series([0, 1, 1, 0] * 10)) == "classification"
    assert infer_task(pd.Series(["a", "b"] * 20)) == "classification"
    assert infer_task(pd.Series(np.linspace(0, 1, 40))) == "regression"


def test_string_labels_are_encoded(small_classification):
    frame = small_classification.copy()
    frame["target"] = np.where(frame["target"] == 1, "yes", "no")
    ds = prepare(frame, "target")
    assert ds.task == "classification" and ds.classes == ["no", "yes"] and set(ds.y) == {0, 1}


def test_load_table_formats(tmp_path, small_regression):
    small_regression.to_csv(tmp_path / "t.csv.gz", index=False)
    small_regression.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv.gz", "t.parquet"):
        assert load_table(tmp_path / name).shape == small_regression.shape
    with pytest.raises(DataError, match="no such file"):
        load_table(tmp_path / "missing.csv")
    (tmp_path / "broken.parquet").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read"):
        load_table(tmp_path / "broken.parquet")
