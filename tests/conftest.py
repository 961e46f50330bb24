from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture
def shared_datasets() -> Path:
    if not (SHARED / "MANIFEST.json").exists():
        pytest.skip("../shared/datasets is not beside this checkout")
    return SHARED


@pytest.fixture
def small_regression() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = X[:, 0] * X[:, 1] + np.log(np.abs(X[:, 2]) + 1) + 0.1 * rng.normal(size=200)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["target"] = y
    return frame


@pytest.fixture
def small_classification() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["target"] = y
    return frame
