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
import time
from typing import Any, Callable, Protocol, Sequence, TypeVar

from .errors import FeatteamError
from .versions import package_version

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


#: Libraries whose versions decide the scores: a worker must run the same ones as the client.
SCORING_LIBRARIES = ("featteam", "numpy", "scipy", "pandas", "scikit-learn")


def library_versions() -> dict[str, str | None]:
    """The versions of :data:`SCORING_LIBRARIES` in this process (run on each worker too)."""
    return {name: package_version(name) for name in SCORING_LIBRARIES}


class DaskEngine:
    """The workers of a Dask ``distributed`` cluster.

    Parameters
    ----------
    address : str
        The scheduler's address, ``tcp://HOST:PORT``.
    timeout : float
        Seconds to wait for the scheduler, and for a first worker, when connecting.
    retries : int
        Times a task that *raised* is run again (a task whose worker died is run again by the
        scheduler itself, up to its ``allowed-failures``).
    worker_wait : float
        Seconds a map waits while the cluster has no worker at all before it fails.

    Raises
    ------
    FeatteamError
        When ``distributed`` is not installed, the scheduler cannot be reached, no worker
        joins within ``timeout``, or a worker runs other versions of the libraries that decide
        the scores (:data:`SCORING_LIBRARIES`) than this process.

    Notes
    -----
    A shared object is sent once and must not change afterwards (the evaluator and the screen
    do not).  The scheduler may keep fewer copies of it than there are workers; if the last
    copy is lost with its worker, the next map sends it again.
    """

    def __init__(self, address: str, timeout: float = 30.0, retries: int = 1, worker_wait: float = 120.0) -> None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise FeatteamError("--scheduler needs Dask's distributed package: pip install 'featteam[cluster]'") \
                from exc
        self.address = address
        self.retries = retries
        self.worker_wait = worker_wait
        try:
            # Not the default client of this process: nothing else's computations move to the cluster.
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise FeatteamError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        try:
            self.client.wait_for_workers(1, timeout=timeout)
            self._check_versions()
        except BaseException as exc:
            self.client.close()
            if isinstance(exc, (OSError, TimeoutError)):
                raise FeatteamError(f"the Dask scheduler at {address} has no worker (waited {timeout:g} s)") from exc
            raise
        # id -> (the object, its future on the workers); the object is kept so its id stays its own.
        self._scattered: dict[int, tuple[Any, Any]] = {}
        self._cluster_errors = _cluster_errors()

    def _check_versions(self) -> None:
        here = library_versions()
        for worker, theirs in self.client.run(library_versions).items():
            differ = {name: (here[name], theirs.get(name)) for name in here if theirs.get(name) != here[name]}
            if differ:
                listed = ", ".join(f"{name} {mine} here, {other} there" for name, (mine, other) in differ.items())
                raise FeatteamError(f"the Dask worker {worker} runs other versions than this process ({listed}): "
                                    "its scores would differ; install the same versions on every worker")

    @property
    def n_workers(self) -> int:
        """Worker threads of the cluster now (at least 1)."""
        return max(1, sum(self.client.nthreads().values()))

    def _on_workers(self, shared: Any) -> Any:
        """``shared`` on the workers, sent once per object (again if every copy was lost)."""
        key = id(shared)
        if key not in self._scattered or self._scattered[key][1].status != "finished":
            future = self.client.scatter(shared, broadcast=True, hash=False)
            self._scattered[key] = (shared, future)
        return self._scattered[key][1]

    def map(self, function: Callable[[Shared, Item], Result], shared: Shared, items: Sequence[Item],
            progress: bool = False, desc: str = "") -> list[Result]:
        items = list(items)
        results: list[Any] = [None] * len(items)
        todo = list(range(len(items)))
        from tqdm.auto import tqdm

        with tqdm(total=len(items), desc=desc, disable=not progress, leave=False) as bar:
            for attempt in range(2):
                pending: dict[int, Any] = {}
                try:
                    remote = self._on_workers(shared)
                    futures = self.client.map(function, [remote] * len(todo), [items[i] for i in todo],
                                              pure=False, retries=self.retries)
                    pending = dict(zip(todo, futures))
                    self._collect(pending, results, bar)
                    return results
                except self._cluster_errors as exc:
                    todo = sorted(pending) or todo
                    lost = id(shared) in self._scattered and self._scattered[id(shared)][1].status != "finished"
                    if attempt == 0 and lost:
                        logger.warning("the Dask cluster lost the shared data with its last worker: sent again")
                        continue
                    raise FeatteamError(f"the Dask cluster at {self.address} failed while {desc or 'computing'}: "
                                        f"{type(exc).__name__}: {exc}") from exc
        return results

    def _collect(self, pending: dict[int, Any], results: list[Any], bar: Any) -> None:
        """Results into their slots as each task finishes (a finished result is fetched at once,
        so a worker lost later does not take it along); a slot is taken out of ``pending`` when
        its result is in."""
        quiet_since = None
        last_check = time.monotonic()
        try:
            while pending:
                finished = [i for i, future in pending.items() if future.done()]
                for i in finished:
                    future = pending.pop(i)
                    results[i] = future.result()  # a task's own error is raised as it is
                    future.release()
                    bar.update()
                if finished:
                    continue
                time.sleep(0.02)
                if time.monotonic() - last_check > 2.0:  # a cluster without workers would never finish
                    last_check = time.monotonic()
                    if self.client.nthreads():
                        quiet_since = None
                    elif quiet_since is None:
                        quiet_since = last_check
                    elif last_check - quiet_since > self.worker_wait:
                        raise FeatteamError(f"the Dask cluster at {self.address} has had no worker for "
                                            f"{self.worker_wait:g} s; {len(pending)} tasks were not done")
        finally:
            for future in pending.values():
                future.release()

    def describe(self) -> str:
        return f"Dask cluster at {self.address}, {self.n_workers} worker threads"

    def close(self) -> None:
        for _, future in self._scattered.values():
            future.release()
        self._scattered.clear()
        self.client.close()


def _cluster_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean the cluster failed (not a task's own bug): lost workers, lost
    data, cancelled tasks, connections."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker
    from distributed.comm import CommClosedError

    return (KilledWorker, CancelledError, CommClosedError, OSError, TimeoutError)


def make_engine(n_jobs: int = 1, scheduler: str | None = None) -> LocalEngine | DaskEngine:
    """The engine a fit asked for: the cluster at ``scheduler``, else ``n_jobs`` local processes.
    (The command line reads ``$FEATTEAM_SCHEDULER``; the library reads no environment.)"""
    if scheduler:
        engine = DaskEngine(scheduler)
        logger.info("scoring on the %s", engine.describe())
        return engine
    return LocalEngine(n_jobs)
