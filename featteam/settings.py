"""Settings from the environment, with the package prefix ``FEATTEAM_``.

``FEATTEAM_CACHE_DIR``
    Where converted models and the LLM response cache live
    (default: ``$XDG_CACHE_HOME/featteam`` or ``~/.cache/featteam``).
``FEATTEAM_BASE_URL``, ``FEATTEAM_MODEL``, ``FEATTEAM_API_KEY``
    The OpenAI-compatible teacher; each falls back to ``OPENAI_BASE_URL``,
    ``OPENAI_MODEL`` and ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


def cache_dir() -> Path:
    """The cache directory's path; nothing is created here.

    Returns
    -------
    Path
        ``FEATTEAM_CACHE_DIR``, else ``$XDG_CACHE_HOME/featteam``, else ``~/.cache/featteam``.
        It may not exist yet: whoever writes under it creates what it writes.
    """
    root = os.environ.get("FEATTEAM_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "featteam"


def env(name: str, fallback: str | None = None) -> str | None:
    """``FEATTEAM_<name>``, else ``<fallback>`` (an ``OPENAI_*`` variable), else None."""
    value = os.environ.get(f"FEATTEAM_{name}")
    if value:
        return value
    return os.environ.get(fallback) if fallback else None


@contextlib.contextmanager
def cache_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a file beside a cache entry) while the block runs: two
    processes that fill the same entry (two fits on a fresh cache) take turns, and the second
    finds the first's result.  Without advisory locks (not POSIX) the block runs unlocked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            import fcntl
        except ImportError:
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
