"""Where the many small, independent computations of a fit run: on this machine, or on a Dask cluster.

A fit's cost is scoring candidates (a cross-validation each) and screening blocks of single
features.  Both are a map of a module-level function over items, with one large shared object
(the :class:`~featteam.evaluation.Evaluator`, holding the table, or the
:class:`~featteam.screen.FeatureScreen`).  An engine runs such a map:

- :class:`LocalEngine` - ``n_jobs`` joblib processes on this machine (the default);
- :class:`DaskEngine` - the workers of a Dask ``distributed`` cluster (``featteam fit
  --scheduler tcp://HOST:PORT``, ``FEATTEAM_SCHEDULER``, ``FeatTeam(scheduler=...)``).  The
  shared object goes to every worker once (scattered, broadcast), not with each task; a
  worker lost mid-map costs only its unfinished tasks, which the scheduler runs again on the
  others.

Every function mapped is deterministic (fixed seeds inside), and results come back in the
order of the items, so a fit gives the same result on either engine and for any number of
workers.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Protocol, Sequence, TypeVar

from .errors import FeatteamError

logger = logging.getLogger(__name__)

#: The environment variable the command line reads the scheduler's address from.
SCHEDULER_ENV = "FEATTEAM_SCHEDULER"

Shared = TypeVar("Shared")
Item = TypeVar("Item")
Result = TypeVar("Result")


class Engine(Protocol):
    """What scoring and screening need of the place they run."""

    #: computations that can run at once (processes or worker threads)
    n_workers: int

    def map(self, function: Callable[[Shared, Item], Result], shared: Shared, items: Sequence[Item],
            progress: bool = False, desc: str = "") -> list[Result]:
        """``[function(shared, item) for item in items]``, in that order, computed where the engine runs."""

    def describe(self) -> str:
        """Where it runs, in words (for the report and the log)."""

    def close(self) -> None:
        """Let go of what the engine holds (a cluster connection); a local engine holds nothing."""


class LocalEngine:
    """``n_jobs`` joblib processes on this machine (``-1``: one per core; 1: in this process).

    Parameters
    ----------
    n_jobs : int
    """

    def __init__(self, n_jobs: int = 1) -> None:
        from joblib import effective_n_jobs

        self.n_workers = int(effective_n_jobs(n_jobs))

    def map(self, function: Callable[[Shared, Item], Result], shared: Shared, items: Sequence[Item],
            progress: bool = False, desc: str = "") -> list[Result]:
        items = list(items)
        if self.n_workers == 1 or len(items) < 2:
            from tqdm.auto import tqdm

            return [function(shared, item) for item in tqdm(items, desc=desc, disable=not progress, leave=False)]
        from joblib import Parallel, delayed

        return Parallel(n_jobs=self.n_workers, batch_size=1)(delayed(function)(shared, item) for item in items)

    def describe(self) -> str:
        return f"this machine, {self.n_workers} process{'es' if self.n_workers > 1 else ''}"

    def close(self) -> None:
        pass


class DaskEngine:
    """The workers of a Dask ``distributed`` cluster.

    Parameters
    ----------
    address : str
        The scheduler's address, ``tcp://HOST:PORT``.
    timeout : float
        Seconds to wait for the scheduler when connecting.
    retries : int
        Times a task that *raised* is run again (a task whose worker died is run again by the
        scheduler itself, up to its ``allowed-failures``).

    Raises
    ------
    FeatteamError
        When ``distributed`` is not installed or the scheduler cannot be reached.
    """

    def __init__(self, address: str, timeout: float = 30.0, retries: int = 1) -> None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise FeatteamError("--scheduler needs Dask's distributed package: pip install 'featteam[cluster]'") \
                from exc
        self.address = address
        self.retries = retries
        try:
            # Not the default client of this process: nothing else's computations move to the cluster.
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise FeatteamError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        # id -> (the object, its future on the workers); the object is kept so its id stays its own.
        self._scattered: dict[int, tuple[Any, Any]] = {}

    @property
    def n_workers(self) -> int:
        """Worker threads of the cluster now (at least 1)."""
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def _on_workers(self, shared: Any) -> Any:
        """``shared`` on every worker, sent once per object."""
        key = id(shared)
        if key not in self._scattered:
            future = self.client.scatter(shared, broadcast=True, hash=False)
            self._scattered[key] = (shared, future)
        return self._scattered[key][1]

    def map(self, function: Callable[[Shared, Item], Result], shared: Shared, items: Sequence[Item],
            progress: bool = False, desc: str = "") -> list[Result]:
        items = list(items)
        if not items:
            return []
        from tqdm.auto import tqdm

        remote = self._on_workers(shared)
        futures = self.client.map(function, [remote] * len(items), items, pure=False, retries=self.retries)
        try:
            results = []
            for future in tqdm(futures, desc=desc, disable=not progress, leave=False):  # in order
                results.append(future.result())
            return results
        except Exception as exc:  # a task that failed for good, or the cluster gone: say where
            raise FeatteamError(f"the Dask cluster at {self.address} failed while {desc or 'computing'}: "
                                f"{type(exc).__name__}: {exc}") from exc
        finally:
            for future in futures:
                future.release()

    def describe(self) -> str:
        return f"Dask cluster at {self.address}, {self.n_workers} worker threads"

    def close(self) -> None:
        for _, future in self._scattered.values():
            future.release()
        self._scattered.clear()
        self.client.close()


def make_engine(n_jobs: int = 1, scheduler: str | None = None) -> LocalEngine | DaskEngine:
    """The engine a fit asked for: the cluster at ``scheduler``, else ``n_jobs`` local processes.
    (The command line reads ``$FEATTEAM_SCHEDULER``; the library reads no environment.)"""
    if scheduler:
        engine = DaskEngine(scheduler)
        logger.info("scoring on the %s", engine.describe())
        return engine
    return LocalEngine(n_jobs)
