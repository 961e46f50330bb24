"""The versions of Python and of the libraries a result depends on (standard library only:
the bench's peer interpreter and Dask workers read them too)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

#: The libraries a fit's result depends on, reported with every result.
REPORTED_LIBRARIES = ("featteam", "numpy", "pandas", "scikit-learn", "torch", "transformers", "peft", "openai")


def package_version(name: str) -> str | None:
    """The installed version of the distribution ``name``; None when it is not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, str]:
    """The versions of Python and of :data:`REPORTED_LIBRARIES` that are installed."""
    out = {"python": platform.python_version()}
    for name in REPORTED_LIBRARIES:
        found = package_version(name)
        if found is not None:
            out[name] = found
    return out
