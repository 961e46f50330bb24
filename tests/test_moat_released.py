"""benchmarks/moat_released.py: MOAT's stack machine as MOAT's code runs it, and its released
HDF files read column by column with their stored dtypes."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "moat_released.py"


@pytest.fixture(scope="module")
def moat_released():
    spec = importlib.util.spec_from_file_location("moat_released", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_binary_operator_takes_the_two_bottom_entries(moat_released):
    c0, c1, c2 = np.array([5.0, 7.0]), np.array([1.0, 2.0]), np.array([10.0, 20.0])
    # MOAT: "-" takes c0, c1 (the bottom two) and pushes c0 - c1 on top of c2; "+" then adds c2
    # and that.  Normal postfix would give c0 + (c1 - c2) = [-4, -11].
    np.testing.assert_array_equal(moat_released.moat_column([c0, c1, c2], "0 1 2 - +"), c2 + (c0 - c1))
    # With two operands the two readings agree.
    np.testing.assert_array_equal(moat_released.moat_column([c0, c1], "0 1 -"), c0 - c1)


def test_a_failed_guard_passes_its_operand_through(moat_released):
    negative, with_zero = np.array([-4.0, 9.0]), np.array([0.0, 3.0])
    np.testing.assert_array_equal(moat_released.moat_column([negative], "0 sqrt"), negative)
    np.testing.assert_array_equal(moat_released.moat_column([with_zero], "0 log"), with_zero)
    np.testing.assert_array_equal(moat_released.moat_column([negative, with_zero], "0 1 /"), negative)
    np.testing.assert_array_equal(moat_released.moat_column([np.array([4.0, 9.0])], "0 sqrt"), [2.0, 3.0])


def test_integer_columns_compute_as_integers(moat_released):
    # np.reciprocal of an integer 2 is 0: MOAT's released values hold such columns.
    assert moat_released.moat_column([np.array([1, 2, 4])], "0 reciprocal").tolist() == [1, 0, 0]


def test_an_unknown_token_is_refused(moat_released):
    with pytest.raises(ValueError, match="unknown token"):
        moat_released.moat_column([np.ones(3)], "0 exp")


def test_formulas_in_featteams_language(moat_released):
    assert moat_released.featteam_tokens("1 quan_trans 12 +") == ["f1", "quan_trans", "f12", "+"]


def test_a_released_file_is_read_with_each_columns_dtype(moat_released, tmp_path):
    h5py = pytest.importorskip("h5py")
    # pandas' HDF "fixed" layout, as MOAT's Test/<table>.hdf files hold it: one block per dtype.
    path = tmp_path / "table.hdf"
    with h5py.File(path, "w") as handle:
        data = handle.create_group("data")
        data["axis0"] = np.array([b"0", b"1", b"0 1 +", b"label"])
        data["block0_items"] = np.array([b"0", b"0 1 +", b"label"])
        data["block0_values"] = np.array([[0.5, 2.5, 1.0], [1.5, 4.5, 0.0]])
        data["block1_items"] = np.array([b"1"])
        data["block1_values"] = np.array([[2], [3]], dtype=np.int64)
    names, columns, label = moat_released.read_released(path)
    assert names == ["0", "1", "0 1 +"]
    assert columns[1].dtype == np.int64 and columns[1].tolist() == [2, 3]
    assert columns[2].tolist() == [2.5, 4.5]
    assert label.dtype == np.float64 and label.tolist() == [1.0, 0.0]
