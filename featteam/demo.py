"""`make demo`: the main job on a table that ships with scikit-learn (no download)."""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path


def demo_table(directory: Path) -> Path:
    """Write scikit-learn's diabetes table (442 rows, 10 features, regression) as CSV."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    path = directory / "diabetes.csv"
    frame.to_csv(path, index=False)
    return path


def main(argv: list[str] | None = None) -> int:
    from .cli import main as cli_main

    logging.basicConfig(level=logging.WARNING)
    directory = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="featteam-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    table = demo_table(directory)
    print(f"featteam demo on scikit-learn's diabetes table ({table})\n")
    return cli_main(["fit", str(table), "--target", "target", "--out", str(directory / "run"),
                     "--preset", "demo"])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
