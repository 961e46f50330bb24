"""What a benchmark can run: the methods, the process ("group") that computes each, the datasets.

featteam's four modes come from one ``featteam fit`` (its per-mode bests, each scored under the
protocol), so one featteam process yields the rows ``featteam`` (the chosen transformation),
``teaming``, ``ml``, ``student`` and ``teacher``.  ``moat`` is MOAT's published score under the
paper protocol (MANIFEST.json), not a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..candidates import METHOD_MODES
from ..errors import FeatteamError

#: The rows of featteam's modes (the one list of modes: ``featteam.candidates``).
FEATTEAM_MODES: tuple[str, ...] = tuple(mode.value for mode in METHOD_MODES)
GROUP_METHODS: dict[str, tuple[str, ...]] = {
    "original": ("original",),
    "featteam": ("featteam", *FEATTEAM_MODES),
    "openfe": ("openfe",),
    "autofeat": ("autofeat",),
}
REFERENCE_METHODS: tuple[str, ...] = ("moat",)
METHODS: tuple[str, ...] = tuple(m for ms in GROUP_METHODS.values() for m in ms) + REFERENCE_METHODS
PEER_GROUPS: tuple[str, ...] = ("openfe", "autofeat")

#: ``make bench``: six small tables, both tasks, two seeds (about 25 minutes on 2 cores).
QUICK_DATASETS: tuple[str, ...] = ("pima_indian", "german_credit", "wine_red", "airfoil", "housing_boston",
                                   "openml_586")


def group_of(method: str) -> str | None:
    for group, methods in GROUP_METHODS.items():
        if method in methods:
            return group
    return None


def groups_for(methods: list[str]) -> list[str]:
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise FeatteamError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    groups = {group_of(m) for m in methods} - {None}
    return [g for g in GROUP_METHODS if g in groups]


def load_manifest(data_dir: Path) -> dict[str, Any]:
    path = Path(data_dir) / "MANIFEST.json"
    if not path.exists():
        raise FeatteamError(f"{path} not found: point --data-dir (or FEATTEAM_DATA_DIR) at the benchmark suite")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FeatteamError(f"{path} is not valid JSON: {exc}") from exc


def resolve_datasets(names: list[str] | None, manifest: dict[str, Any]) -> list[str]:
    """``None`` or ``all``: every dataset of the suite; ``quick``: the quick subset."""
    available = list(manifest["datasets"])
    if not names or names == ["all"]:
        return available
    out: list[str] = []
    for name in names:
        expanded = list(QUICK_DATASETS) if name == "quick" else [name]
        for n in expanded:
            if n not in manifest["datasets"]:
                raise FeatteamError(f"unknown dataset {n!r}; the suite has {', '.join(available)}")
            if n not in out:
                out.append(n)
    return out
