"""A persistent response cache: re-running a fit with a warm cache makes no LLM calls."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: The response cache's file name: in ``settings.cache_dir()`` (shared by every run), or in a run
#: directory (a benchmark configuration's own).
CACHE_FILE = "llm_responses.sqlite"


def cache_key(**parts: Any) -> str:
    """A stable key over the model, the messages and the sampling parameters."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ResponseCache:
    """SQLite table ``key -> JSON response``; safe to share between runs.

    The database file (and its folder) is opened or created on first use, not on construction:
    a run that never asks an LLM (``teacher="none"``) leaves the cache directory untouched, and
    a lookup in a file that does not exist yet is a miss that creates nothing.  A file that is
    not a database, or a damaged one, is left as it is: the cache warns once and answers every
    lookup with a miss (the fit asks the LLM), and a stored response that is not JSON is a miss.
    A location where the file cannot be made or opened (its folder cannot be created: a file
    stands in the way; no permission) is treated the same: warned of once, never written, and
    never an error after the LLM has answered (that answer is still used).

    Parameters
    ----------
    path : str or Path or None
        The database file; None keeps the cache in memory only.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._broken = False
        if self.path is None:
            self._connect()  # in memory: no I/O, and nothing to find later

    def _connect(self) -> sqlite3.Connection:
        """The open database, created with its folder if needed (call with the lock held, or in __init__)."""
        if self._closed:
            # As sqlite3 says of a closed connection: a closed cache is not silently reopened.
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        if self._db is None:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(":memory:" if self.path is None else str(self.path), check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.commit()
        return self._db

    def _reader(self) -> sqlite3.Connection | None:
        """The database if it is open or its file exists; None when there is nothing to read yet."""
        if not self._closed and self._db is None and (self.path is None or not self.path.exists()):
            return None
        return self._connect()

    def _use(self, action: Callable[[sqlite3.Connection], T], default: T, create: bool = False) -> T:
        """``action(db)`` under the lock; ``default`` when there is no database to read (``create``:
        make it) or the file is damaged or cannot be made: then warn once, keep whatever is there
        and stop using it."""
        with self._lock:
            if self._broken:
                return default
            try:
                db = self._connect() if create else self._reader()
                return default if db is None else action(db)
            except sqlite3.ProgrammingError:  # closed: as sqlite3 says of a closed connection
                raise
            except sqlite3.DatabaseError as exc:
                logger.warning("the LLM response cache %s cannot be used (%s): running without it; remove the "
                               "file to start a new one", self.path, exc)
                self._broken = True
                return default
            except OSError as exc:
                # Its folder cannot be created or looked at.  Raised after the endpoint answered,
                # this would lose a paid answer and stop the fit: the cache is a saving, not a need.
                logger.warning("the LLM response cache %s cannot be created or opened (%s): running without it; "
                               "check that its folder can be made and written to (the shared cache's is "
                               "FEATTEAM_CACHE_DIR)", self.path, exc)
                self._broken = True
                return default

    def get(self, key: str) -> Any | None:
        row = self._use(lambda db: db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone(), None)
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except (TypeError, ValueError, RecursionError):
            logger.warning("a damaged response in %s is asked again", self.path)
            return None

    def put(self, key: str, value: Any) -> None:
        def insert(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, json.dumps(value)))
            db.commit()

        self._use(insert, None, create=True)

    def __len__(self) -> int:
        return self._use(lambda db: db.execute("SELECT COUNT(*) FROM responses").fetchone()[0], 0)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
            self._db = None
            self._closed = True
