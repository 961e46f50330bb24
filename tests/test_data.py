"""Input checks: every bad-input case gets a clear error or a reported fix, never a crash."""

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featteam import DataError, Transformation, load_dataset, load_table, prepare
from featteam.data import HEADER_ATTR, Preprocessor, check_output_path, duplicate_columns, infer_task, write_table
from featteam.expr.operators import BOUND


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
    assert any("'mostly numbers': numeric, but 1 of its 200 values are not numbers" in n for n in ds.notes)
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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0.0, -0.0, 1.0, 2.5, np.nan, -1e300]), min_size=3, max_size=3),
                min_size=1, max_size=6),
       st.lists(st.integers(0, 5), max_size=4))
def test_duplicate_columns_agree_with_pandas(columns, copies):
    # Small value sets and copied columns, so that duplicates (and near misses) are common.
    columns = columns + [columns[i % len(columns)] for i in copies]
    X = pd.DataFrame({f"c{i}": values for i, values in enumerate(columns)})
    assert duplicate_columns(X).tolist() == X.T.duplicated().tolist()


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


# -- a target named twice in the header (pandas renames the copy, which would leak the target) --

def _write_csv(path, header, rows):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def _leaky_rows(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(size=n), rng.normal(size=n)
    label = (x0 > 0).astype(int)
    return [(a, b, c, b) for a, b, c in zip(x0, label, x1)]


def test_a_target_named_twice_in_the_header_is_refused(tmp_path):
    path = _write_csv(tmp_path / "leak.csv", "x0,label,x1,label", _leaky_rows())
    frame = load_table(path)
    assert "label.1" in frame.columns and frame.attrs[HEADER_ATTR] == {"label.1": "label"}
    with pytest.raises(DataError, match=r"names the target 'label' more than once .*'label\.1'.*leak"):
        load_dataset(path, "label")
    with pytest.raises(DataError, match="more than once"):  # the copy as the target: just as ambiguous
        load_dataset(path, "label.1")
    import gzip

    (tmp_path / "leak.csv.gz").write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(DataError, match="more than once"):  # in a .csv.gz too
        load_dataset(tmp_path / "leak.csv.gz", "label")


def test_a_column_really_named_like_a_pandas_copy_is_kept(tmp_path):
    rows = [(a, b, c) for a, b, c, _ in _leaky_rows()]
    ds = load_dataset(_write_csv(tmp_path / "ok.csv", "x0,label,label.1", rows), "label")
    assert list(ds.X.columns) == ["x0", "label.1"]
    assert not any("label.1" in n for n in ds.notes)  # the raw header says it is no copy
    # A repeated feature name is kept (as pandas renamed it) and said.
    rows = [(a, c, b) for a, b, c, _ in _leaky_rows()]
    ds = load_dataset(_write_csv(tmp_path / "twice.csv", "x0,x0,label", rows), "label")
    assert list(ds.X.columns) == ["x0", "x0.1"]
    assert any("'x0.1': the header repeats the name 'x0'" in n for n in ds.notes)


def test_a_frame_not_read_by_featteam_gets_a_warning_about_a_possible_copy(small_classification):
    frame = small_classification.rename(columns={"d": "target.1"})
    ds = prepare(frame, "target")
    assert any("'target.1' may be a copy of the target" in n for n in ds.notes)
    frame = small_classification.copy()
    frame.columns = ["a", "target", "c", "d", "target"]
    with pytest.raises(DataError, match="more than one column is named 'target'.*leak"):
        prepare(frame, "target")


# -- values beyond the operators' bound -------------------------------------------------

def test_huge_finite_values_are_clipped_to_the_operators_bound(small_regression):
    from featteam.evaluation import Evaluator

    frame = small_regression.copy()
    frame.loc[[3, 4], "a"] = [1e300, -1e300]
    frame.loc[5, "b"] = 2e15
    ds = prepare(frame, "target")
    assert ds.X["a"].max() == BOUND and ds.X["a"].min() == -BOUND and ds.X["b"].max() == BOUND
    assert any("'a': 2 value(s) beyond +-1e+15 clipped" in n for n in ds.notes)
    assert any("'b': 1 value(s) beyond" in n for n in ds.notes)
    # The downstream model takes them (scikit-learn's trees refuse what float32 cannot hold).
    assert np.isfinite(Evaluator(ds, "honest").final_score(None))
    # New rows are clipped the same way, so a deployed transformation sees what training saw.
    new = ds.preprocessor.transform(frame)
    np.testing.assert_array_equal(new.to_numpy(), ds.X.to_numpy())
    fitted = Transformation.from_text("(a * b), quan_trans(a)", list(ds.X.columns)).fit(ds.X)
    np.testing.assert_array_equal(fitted.transform(new), fitted.transform(ds.X))
    assert np.all(np.abs(fitted.impute_values) <= BOUND)


def test_dates_become_seconds_inside_the_bound(small_regression):
    frame = small_regression.copy()
    frame["when"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(frame)), unit="D")
    ds = prepare(frame, "target")
    assert ds.X["when"].iloc[0] == 1577836800.0 and ds.X["when"].nunique() == len(frame)
    assert ds.preprocessor.to_dict()["datetime_unit"] == "s"
    again = Preprocessor.from_dict(ds.preprocessor.to_dict()).transform(frame)
    np.testing.assert_array_equal(again["when"].to_numpy(), ds.X["when"].to_numpy())
    # A preprocessor saved before dates were seconds keeps pandas' own integers.
    old = {k: v for k, v in ds.preprocessor.to_dict().items() if k != "datetime_unit"}
    legacy = Preprocessor.from_dict(old).transform(frame)
    assert legacy["when"].iloc[0] == BOUND  # frame["when"].astype("int64") is beyond it: clipped


# -- numeric columns with some text -------------------------------------------------------

@pytest.mark.parametrize("share", [0.11, 0.15, 0.2])
def test_a_numeric_column_with_some_text_stays_numeric(small_regression, share):
    frame = small_regression.copy()
    n_text = int(share * len(frame))
    column = frame["a"].astype(object)
    column.iloc[:n_text] = [f"n/a {i}" for i in range(n_text)]  # many distinct strings: no category
    frame["a"] = column
    ds = prepare(frame, "target")
    assert "a" in ds.X.columns and ds.X["a"].isna().sum() == n_text
    assert any(f"'a': numeric, but {n_text} of its 200 values are not numbers" in n for n in ds.notes)
    # New rows are coerced the same way: text in that column is a missing value.
    new = ds.preprocessor.transform(frame.head(n_text + 3))
    assert new["a"].isna().sum() == n_text and np.isfinite(new["a"].iloc[-1])


def test_a_mostly_text_column_is_still_text(small_regression):
    frame = small_regression.copy()
    column = frame["a"].astype(object)
    column.iloc[:100] = [f"id-{i}" for i in range(100)]
    frame["a"] = column
    ds = prepare(frame, "target")
    assert "a" not in ds.X.columns and any("'a': dropped" in n for n in ds.notes)


def test_a_malformed_preprocessor_is_a_data_error():
    good = Preprocessor(["a"], {"a": ["x"]}, {"a": "a"}).to_dict()
    assert Preprocessor.from_dict(good).columns == ["a"]
    for bad in ([], "x", {}, {"columns": "a"}, {"columns": [1]}, {"columns": ["a", "a"]},
                {**good, "categories": []}, {**good, "categories": {"a": "x"}}, {**good, "categories": {"a": [1]}},
                {**good, "source_names": {"a": None}}, {**good, "datetime_unit": "ms"}):
        with pytest.raises(DataError, match="malformed preprocessor"):
            Preprocessor.from_dict(bad)
    with pytest.raises(DataError, match="more than one column named 'a'"):
        Preprocessor.from_dict(good).transform(pd.DataFrame([[1, 2]], columns=["a", "a"]))


# -- corrupt files ----------------------------------------------------------------------

def test_corrupt_files_are_data_errors(tmp_path, small_regression):
    import gzip

    small_regression.to_csv(tmp_path / "good.csv.gz", index=False)
    whole = (tmp_path / "good.csv.gz").read_bytes()
    cases = {
        "truncated.csv.gz": whole[: len(whole) // 2],
        "garbage.csv.gz": b"\x1f\x8b\x08garbage, not deflate data" * 3,
        "not_gzip.csv.gz": b"plain text, not gzip\n1,2\n",
        "bad_crc.csv.gz": whole[:-8] + b"\0" * 8,
        "latin1.csv": "caf\xe9,y\n1,2\n".encode("latin-1"),
        "open_quote.csv": b'a,b\n1,"2\n3,4\n',
        "empty.csv": b"",
        "ragged.csv": b"a,b\n1,2\n1,2,3,4,5\n",
        "broken.parquet": b"PAR1 garbage PAR1",
        "broken.csv.xz": b"\xfd7zXZ\x00 garbage",
        "broken.csv.zip": b"PK\x03\x04 garbage",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match="cannot read") as info:
            load_table(tmp_path / name)
        assert "\n" not in str(info.value), name
    assert "compressed file is corrupt or truncated" in _message(load_table, tmp_path / "truncated.csv.gz")
    assert "not UTF-8" in _message(load_table, tmp_path / "latin1.csv")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        load_table(tmp_path / "folder.csv")
    assert gzip.decompress(whole)  # the good file itself is fine


def _message(function, *args):
    try:
        function(*args)
    except DataError as exc:
        return str(exc)
    raise AssertionError("no DataError")


# -- writing tables ---------------------------------------------------------------------

def test_write_table_formats_and_refused_suffixes(tmp_path, small_regression):
    import gzip

    for name in ("o.csv", "o.CSV", "o.csv.gz", "o.parquet", "o.pq"):
        write_table(small_regression, tmp_path / name)
        assert load_table(tmp_path / name).shape == small_regression.shape
    assert gzip.decompress((tmp_path / "o.csv.gz").read_bytes()).startswith(b"a,b,c,d,target")
    for name in ("o.xlsx", "o.json", "o", "o.csv.bz2", "o.tsv"):
        with pytest.raises(DataError, match="the output must end in .csv, .csv.gz, .parquet, .pq"):
            check_output_path(tmp_path / name)
    with pytest.raises(DataError, match="no such folder"):
        check_output_path(tmp_path / "missing" / "o.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.CSV", "o.csv", "o.csv.gz", "o.parquet", "o.pq"]


def test_write_table_is_atomic(tmp_path, small_regression, monkeypatch):
    path = tmp_path / "o.csv"
    path.write_text("the old table\n")

    def killed(self, target, *args, **kwargs):
        with open(target, "w") as handle:
            handle.write("a,b,c\n1,2")  # half a table, then the process is stopped
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", killed)
    with pytest.raises(KeyboardInterrupt):
        write_table(small_regression, path)
    assert path.read_text() == "the old table\n"
    assert [p.name for p in tmp_path.iterdir()] == ["o.csv"]  # no temporary file is left


_COLUMN_KINDS = st.sampled_from(["number", "mostly numbers", "category", "free text", "empty", "constant", "date",
                                  "text dates"])


@settings(max_examples=40, deadline=None)
@given(kinds=st.lists(_COLUMN_KINDS, min_size=1, max_size=6), drop_redundant=st.booleans(),
       seed=st.integers(0, 2**16))
def test_a_reading_on_every_row_is_prepares_own(kinds, drop_redundant, seed):
    """Dataset.read_on decides on the rows it is given; given every row it decides what prepare did."""
    rng = np.random.default_rng(seed)
    n = 60
    frame = pd.DataFrame({"target": rng.normal(size=n)})
    for i, kind in enumerate(kinds):
        frame[f"c{i}"] = {
            "number": lambda: rng.normal(size=n),
            "mostly numbers": lambda: np.where(rng.random(n) < 0.1, "n/a", rng.normal(size=n).astype(str)),
            "category": lambda: rng.choice(["a", "b", "c"], size=n),
            "free text": lambda: [f"id-{k}" for k in rng.permutation(n)],
            "empty": lambda: np.full(n, np.nan),
            "constant": lambda: np.ones(n),
            "date": lambda: pd.to_datetime(rng.integers(0, 10**9, size=n), unit="s"),
            "text dates": lambda: np.where(rng.random(n) < 0.1, "n/a", pd.to_datetime(
                rng.integers(0, 10**9, size=n), unit="s").strftime("%Y-%m-%dT%H:%M:%S")),
        }[kind]()
    frame["x"] = rng.normal(size=n)  # one usable column, whatever was drawn
    dataset = prepare(frame, "target", drop_redundant=drop_redundant)
    again = dataset.read_on(np.arange(n))
    assert again is dataset


def test_the_training_rows_decide_how_a_column_reads(caplog):
    """A column is numbers on some rows and text on others: the reading follows the rows given."""
    rng = np.random.default_rng(0)
    n = 100
    values = rng.normal(size=n).astype(str).astype(object)
    values[80:] = "missing"  # text on the last 20 rows, and on 2 of the first 80
    values[:2] = "missing"
    frame = pd.DataFrame({"x": rng.normal(size=n), "mixed": values, "y": rng.normal(size=n)})
    dataset = prepare(frame, "y")
    # On every row 78 of 100 values are numbers (below NUMERIC_SHARE): text, and too many values.
    assert "mixed" not in dataset.X.columns
    first = np.arange(80)
    with caplog.at_level(logging.WARNING, logger="featteam.data"):
        on_first = dataset.read_on(first)
    assert list(on_first.X.columns) == ["x", "mixed"] and on_first.preprocessor.columns == ["x", "mixed"]
    mixed = on_first.X["mixed"].to_numpy()
    assert np.isnan(mixed[:2]).all() and np.isnan(mixed[80:]).all() and not np.isnan(mixed[2:80]).any()
    assert any(note.startswith("on the training rows only: column 'mixed': numeric, but 2 of its 80")
               for note in on_first.notes)
    assert "on the training rows only" in caplog.text
    # New rows read by the training rows' reading agree with the rows it coded.
    deployed = on_first.preprocessor.transform(frame.drop(columns="y"))
    assert np.array_equal(deployed.to_numpy(), on_first.X.to_numpy(), equal_nan=True)
    assert np.array_equal(on_first.X["x"].to_numpy(), dataset.X["x"].to_numpy())


@pytest.mark.parametrize("drop_redundant", [False, True])
def test_a_numeric_column_without_values_on_the_training_rows_is_dropped(drop_redundant):
    rng = np.random.default_rng(1)
    n = 100
    late = np.full(n, np.nan)
    late[80:] = rng.normal(size=20)  # values only outside the first 80 rows
    constant_there = np.ones(n)
    constant_there[90:] = 2.0
    frame = pd.DataFrame({"x": rng.normal(size=n), "late": late, "flat": constant_there, "y": rng.normal(size=n)})
    dataset = prepare(frame, "y", drop_redundant=drop_redundant)
    assert list(dataset.X.columns) == ["x", "late", "flat"]
    on_first = dataset.read_on(np.arange(80))
    expected = ["x"] if drop_redundant else ["x", "flat"]
    assert list(on_first.X.columns) == expected and on_first.preprocessor.columns == expected
    assert any("'late': dropped, no usable value" in note for note in on_first.notes)
    assert any("'flat': constant" in note and note.startswith("on the training rows only") for note in on_first.notes)


def test_nan_refuse_holds_for_the_training_rows_reading():
    """A column dropped on every row (free text) that reads as numbers with gaps on the training
    rows is refused there under nan='refuse', as prepare refuses gaps."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=100).astype(str).astype(object)
    values[78:] = "?"
    frame = pd.DataFrame({"x": rng.normal(size=100), "mixed": values, "y": rng.normal(size=100)})
    dataset = prepare(frame, "y", nan="refuse")
    assert list(dataset.X.columns) == ["x"]
    with pytest.raises(DataError, match="missing or infinite values in 'mixed': 2"):
        dataset.read_on(np.arange(80))
    assert list(prepare(frame, "y").read_on(np.arange(80)).X.columns) == ["x", "mixed"]


def test_a_trailing_separator_does_not_shift_the_columns(tmp_path):
    """Spreadsheet exports end rows with a separator: pandas made the first column the index and
    named every column after its neighbour (the target over another column), silently."""
    rows = "".join(f"{i % 2},{i * 0.1:.1f},{i * 0.2:.1f},\n" for i in range(40))
    path = tmp_path / "trailing.csv"
    path.write_text("label,a,b\n" + rows)
    frame = load_table(path)
    assert list(frame.columns) == ["label", "a", "b"] and frame["label"].tolist()[:4] == [0, 1, 0, 1]
    assert prepare(frame, "label").task == "classification"
    # Values beyond the header's names would be lost: refused, saying so.
    (tmp_path / "extra.csv").write_text("label,a,b\n" + rows.replace(",\n", ",7\n"))
    with pytest.raises(DataError, match="more values than the header has names"):
        load_table(tmp_path / "extra.csv")


def test_a_column_named_like_the_target_once_cleaned_is_refused(small_regression):
    frame = small_regression.assign(**{" target": small_regression["target"]})
    with pytest.raises(DataError, match="the target's name, once its spaces are removed"):
        prepare(frame, "target")


def test_dates_written_as_text_read_as_the_fit_read_them(tmp_path, small_regression, caplog):
    """A table fitted with a date column (Parquet) and new rows from a CSV file (dates as text):
    the saved reading parses them; values it cannot read are said in a warning, not silently lost."""
    frame = small_regression.assign(when=pd.date_range("2021-01-01", periods=len(small_regression), freq="D"))
    frame.to_parquet(tmp_path / "fit.parquet")
    dataset = prepare(load_table(tmp_path / "fit.parquet"), "target")
    assert dataset.preprocessor.dates == ["when"]
    frame.to_csv(tmp_path / "new.csv", index=False)
    new = load_table(tmp_path / "new.csv").drop(columns="target")
    assert not pd.api.types.is_datetime64_any_dtype(new["when"])  # text in the CSV
    read = dataset.preprocessor.transform(new)
    assert np.array_equal(read.to_numpy(), dataset.X.to_numpy(), equal_nan=True)
    # Saved and read back, the reading keeps its dates (and reads a file written before them).
    saved = dataset.preprocessor.to_dict()
    assert Preprocessor.from_dict(saved) == dataset.preprocessor
    assert Preprocessor.from_dict({k: v for k, v in saved.items() if k != "dates"}).dates == []
    # A value that is neither number nor date, or an unseen category, is missing, and said.
    new.loc[new.index[:3], "when"] = "soon"
    new["a"] = new["a"].astype(object)
    new.loc[new.index[:5], "a"] = "1,234.5"
    with caplog.at_level(logging.WARNING, logger="featteam.data"):
        read = dataset.preprocessor.transform(new)
    assert read["when"].isna().sum() == 3 and read["a"].isna().sum() == 5
    assert "column 'when': 3 of" in caplog.text and "column 'a': 5 of" in caplog.text and "'1,234.5'" in caplog.text


def test_parquet_dates_without_a_time_are_dates(tmp_path, small_regression):
    """A Parquet date32 column reads as Python dates (objects): read as seconds, like datetimes,
    not as text with too many values (dropped)."""
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    days = [datetime.date(2020, 1, 1) + datetime.timedelta(days=i) for i in range(len(small_regression))]
    days[3] = None
    table = pa.Table.from_pandas(small_regression, preserve_index=False).append_column(
        "day", pa.array(days, type=pa.date32()))
    pq.write_table(table, tmp_path / "t.parquet")
    dataset = prepare(load_table(tmp_path / "t.parquet"), "target")
    assert dataset.preprocessor.dates == ["day"]
    assert dataset.X["day"].iloc[0] == 1577836800.0 and np.isnan(dataset.X["day"].iloc[3])
    as_text = pd.DataFrame({"day": [str(d) if d else None for d in days]})
    read = dataset.preprocessor.transform(small_regression.drop(columns="target").assign(day=as_text["day"]))
    assert np.array_equal(read["day"].to_numpy(), dataset.X["day"].to_numpy(), equal_nan=True)


def test_classification_asked_of_a_continuous_target_is_refused_clearly(small_regression, caplog):
    """--task classification on numbers: every row a class of its own. It warned with all 200
    values and then failed in scikit-learn's stratification; now a DataError says what to do."""
    with pytest.raises(DataError, match="200 classes in 200 rows: it looks continuous; use --task regression"):
        prepare(small_regression, "target", task="classification")
    # Many classes, a few of them rare: kept, and the note names at most ten of them.
    frame = small_regression.assign(target=np.r_[np.repeat(np.arange(40), 4), np.arange(100, 140)])
    with caplog.at_level(logging.WARNING, logger="featteam.data"):
        dataset = prepare(frame, "target", task="classification")
    assert len(dataset.classes) == 80 and "and 30 more of 'target' have a single row" in caplog.text


def test_complex_numbers_are_refused_not_cast_to_real(small_regression):
    """numpy drops an imaginary part with a warning at most: a complex target or feature column
    is refused by name instead."""
    with pytest.raises(DataError, match=r"\['target'\] hold complex numbers"):
        prepare(small_regression.assign(target=small_regression["target"] + 1j), "target")
    with pytest.raises(DataError, match=r"\['b'\] hold complex numbers"):
        prepare(small_regression.assign(b=small_regression["b"] * 1j), "target")
    reading = prepare(small_regression, "target").preprocessor
    with pytest.raises(DataError, match=r"\['b'\] hold complex numbers"):  # a saved reading applied to new rows
        reading.transform(small_regression.assign(b=small_regression["b"] * 1j))


def test_dates_written_as_text_are_dates_when_fitted_too(tmp_path, small_regression, caplog):
    """A CSV file's ISO 8601 dates read as seconds (not as categories, which a date the fit never saw
    would miss), values that are no date are missing and said; month names or day/month orders that
    ISO 8601 does not fix stay text."""
    n = len(small_regression)
    frame = small_regression.assign(
        when=pd.date_range("2021-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        stamp=pd.date_range("2021-01-01", periods=n, freq="h", tz="Europe/Paris").astype(str),
        month=np.where(np.arange(n) % 2, "March", "April"),
        us=pd.date_range("2021-01-01", periods=n, freq="D").strftime("%m/%d/%Y"))
    frame.loc[3, "when"] = "soon"
    frame.to_csv(tmp_path / "fit.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="featteam.data"):
        dataset = prepare(load_table(tmp_path / "fit.csv"), "target")
    assert dataset.preprocessor.dates == ["when", "stamp"]
    assert dataset.preprocessor.categories == {"month": ["April", "March"]}
    assert "us" not in dataset.X.columns  # 200 distinct texts: free text, dropped as before
    assert dataset.X["when"].iloc[0] == pd.Timestamp("2021-01-01").timestamp()
    assert dataset.X["stamp"].iloc[0] == pd.Timestamp("2020-12-31 23:00").timestamp()  # UTC
    assert np.isnan(dataset.X["when"].iloc[3])
    assert "column 'when': dates written as text (ISO 8601)" in caplog.text and "1 of its 200" in caplog.text
    new = frame.drop(columns="target")
    new.loc[0, "when"] = "2030-01-01"  # later than every training date: read, not a missing category
    read = dataset.preprocessor.transform(new)
    assert read["when"].iloc[0] == pd.Timestamp("2030-01-01").timestamp()
    assert np.array_equal(read["stamp"].to_numpy(), dataset.X["stamp"].to_numpy())


def test_far_dates_complex_objects_and_other_date_forms():
    """Review findings: "9999-12-31" (a common "no end date") overflowed nanoseconds and stopped the
    fit; Python complex values in an object column lost their imaginary part; "20210304" or
    "2021/03/04" were dates to pandas' ISO 8601 mode but numbers or text to a CSV reader."""
    rng = np.random.default_rng(0)
    n = 40
    days = pd.Series(pd.date_range("2020-01-01", periods=n, freq="7D")).dt.strftime("%Y-%m-%d").astype(object)
    days.iloc[3], days.iloc[4] = "9999-12-31", "0001-01-01"
    frame = pd.DataFrame({"end": days, "x": rng.normal(size=n), "y": rng.normal(size=n)})
    dataset = prepare(frame, "y")
    assert dataset.X["end"].iloc[3:5].tolist() == [253402214400.0, -62135596800.0]
    as_datetimes = frame.assign(end=pd.to_datetime(days, format="ISO8601"))  # a datetime column (Parquet)
    assert prepare(as_datetimes, "y").X["end"].iloc[3] == 253402214400.0
    assert dataset.preprocessor.transform(frame.drop(columns="y"))["end"].iloc[3] == 253402214400.0
    complex_objects = frame.assign(x=pd.Series([complex(i, 1) for i in range(n)], dtype=object))
    with pytest.raises(DataError, match=r"\['x'\] hold complex numbers"):
        prepare(complex_objects, "y")
    with pytest.raises(DataError, match=r"\['x'\] hold complex numbers"):
        dataset.preprocessor.transform(complex_objects)
    other_forms = frame.assign(end=np.resize(["20210304", "2021/03/04", "2021-3-4", "2021"], n).astype(object)
                               .astype(str) + np.resize(["", "x"], n))
    assert prepare(other_forms, "y").preprocessor.dates == []
