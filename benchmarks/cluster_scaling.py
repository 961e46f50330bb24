"""Scoring through a Dask cluster: overhead per task, tasks per second with 1 and 2 workers, and
the projected wall time of a fit on more workers.

Usage: python benchmarks/cluster_scaling.py TABLE.csv[.gz] --target label [--candidates 48]
           [--report RUN/report.json] [--workers 1 2]

For each worker count it starts a real scheduler and that many one-thread workers on 127.0.0.1
(separate processes, stopped at the end) and measures

- the overhead per task: a map of a function that does nothing, through the scheduler;
- real scoring: ``Evaluator.score_many`` of ``--candidates`` transformations of the table
  (each a 5-fold cross-validation), the same ones every time; the scores are checked equal to
  a local run's.

With ``--report`` (a finished ``featteam fit``'s report.json of the same table) it projects that
fit's wall time on 8 and 32 workers: the time outside candidate scoring stays, the scoring time
(candidates scored x measured seconds per candidate on one worker) divides by the workers, and
each task pays the measured overhead.  A projection, not a measurement: it assumes the fit's
candidates cost what these do and that batches keep every worker busy (a batch smaller than
the workers does not).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _noop(shared, item):
    return item


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalCluster:
    """A scheduler and ``n`` one-thread workers as separate processes on 127.0.0.1."""

    def __init__(self, n_workers: int, directory: Path) -> None:
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                                            "127.0.0.1", "--port", self.address.rsplit(":", 1)[1],
                                            "--no-dashboard", "--idle-timeout", "900"], **quiet)]
        for i in range(n_workers):
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nthreads", "1", "--no-nanny",
                 "--no-dashboard", "--memory-limit", "0", "--death-timeout", "60", "--local-directory",
                 str(directory), "--name", f"w{i}"], **quiet))
        from distributed import Client

        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client = Client(self.address, timeout=5, set_as_default=False)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            try:
                client.wait_for_workers(n_workers, timeout=60)
            finally:
                client.close()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _candidates(n_columns: int, n: int) -> list[list[str]]:
    rng = np.random.default_rng(0)
    binary, unary = ["+", "-", "*", "/"], ["sin", "log", "sqrt", "square", "tanh"]
    out = []
    while len(out) < n:
        a, b = rng.choice(n_columns, size=2, replace=False)
        feature = [f"f{a}", f"f{b}", str(rng.choice(binary))]
        if rng.random() < 0.5:
            feature.append(str(rng.choice(unary)))
        if feature not in out:
            out.append(feature)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table")
    parser.add_argument("--target", default="label")
    parser.add_argument("--candidates", type=int, default=48)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--noop-tasks", type=int, default=500)
    parser.add_argument("--max-search-rows", type=int, default=2000)
    parser.add_argument("--search-trees", type=int, default=None,
                        help="trees of the search's forest (default: the report's, else the full model's 100)")
    parser.add_argument("--report", help="a finished fit's report.json of the same table: project its wall time")
    parser.add_argument("--scratch", default="bench_out/cluster_scaling", help="the workers' scratch directory")
    args = parser.parse_args(argv)

    from featteam.data import load_dataset
    from featteam.engine import DaskEngine
    from featteam.evaluation import Evaluator

    report = json.loads(Path(args.report).read_text()) if args.report else None
    trees = args.search_trees or (report["config"].get("search_trees") if report else None)
    dataset = load_dataset(args.table, args.target)
    candidates = _candidates(dataset.X.shape[1], args.candidates)
    start = time.perf_counter()
    local = Evaluator(dataset, "honest", max_search_rows=args.max_search_rows, validation_size=0.2,
                      search_trees=trees)
    expected = [r.score for r in local.score_many(candidates)]
    local_seconds = time.perf_counter() - start
    print(f"{dataset.name}: {len(candidates)} candidates on this machine, 1 process: {local_seconds:.1f} s "
          f"({local_seconds / len(candidates):.3f} s each)")
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.workers:
        cluster = LocalCluster(n, scratch)
        try:
            engine = DaskEngine(cluster.address)
        except BaseException:
            cluster.close()
            raise
        try:
            start = time.perf_counter()
            engine.map(_noop, None, list(range(args.noop_tasks)))
            overhead = (time.perf_counter() - start) / args.noop_tasks
            evaluator = Evaluator(dataset, "honest", max_search_rows=args.max_search_rows, validation_size=0.2,
                                  search_trees=trees, engine=engine)
            start = time.perf_counter()
            scores = [r.score for r in evaluator.score_many(candidates)]
            seconds = time.perf_counter() - start
            assert scores == expected, "the cluster's scores differ from the local ones"
        finally:
            engine.close()
            cluster.close()
        rows.append({"workers": n, "overhead_ms_per_task": round(1000 * overhead, 2),
                     "noop_tasks_per_second": round(1 / overhead, 1), "scoring_seconds": round(seconds, 2),
                     "candidates_per_second": round(len(candidates) / seconds, 3),
                     "speedup_vs_local": round(local_seconds / seconds, 2)})
        print(json.dumps(rows[-1]))
    if report:
        import os

        one = next(r for r in rows if r["workers"] == min(args.workers))
        per_candidate = one["scoring_seconds"] / len(candidates) * one["workers"]  # on one worker
        overhead = rows[-1]["overhead_ms_per_task"] / 1000
        logs = sorted(Path(args.report).parent.glob("scores-*.jsonl"), key=lambda p: p.stat().st_mtime)
        n_scored = len(logs[-1].read_text().splitlines()) if logs else 0
        n_jobs = report.get("n_jobs") or 1
        n_jobs = (os.cpu_count() or 1) if n_jobs < 0 else n_jobs
        total = float(report["seconds"])
        scoring = min(total, n_scored * per_candidate / n_jobs)  # what the fit spent scoring, in parallel
        print(f"fit: {total:.0f} s with {n_jobs} local jobs, {n_scored} candidates scored, about {scoring:.0f} s "
              f"of it scoring ({per_candidate:.2f} s per candidate on one worker)")
        for workers in (8, 32):
            projected = total - scoring + n_scored * per_candidate / workers + n_scored * overhead
            print(f"projected on {workers} workers: {projected:.0f} s")


if __name__ == "__main__":
    main()
