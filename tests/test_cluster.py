"""Scoring on a real Dask cluster: a scheduler and two workers started as separate processes on
127.0.0.1 (bounded in time, shut down by the tests), a fit through them against the local fit,
and a worker killed mid-run."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

from featteam.config import FitConfig
from featteam.data import prepare
from featteam.engine import DaskEngine, LocalEngine, make_engine
from featteam.errors import FeatteamError
from featteam.evaluation import Evaluator
from featteam.pipeline import Run
from featteam.screen import FeatureScreen

#: Seconds a cluster may take to come up; a worker or scheduler left behind exits on its own after these.
START_TIMEOUT = 60
IDLE_TIMEOUT = 3600


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_worker(address: str, name: str, directory) -> subprocess.Popen:
    # No nanny: killing the worker's process loses the worker (a nanny would restart it).
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--name", name,
                             "--nthreads", "1", "--no-nanny", "--no-dashboard", "--memory-limit", "0",
                             "--death-timeout", str(START_TIMEOUT), "--local-directory", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def cluster(tmp_path):
    """(address, worker processes) of a fresh scheduler with two one-thread workers."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", address.rsplit(":", 1)[1], "--no-dashboard",
                                   "--idle-timeout", str(IDLE_TIMEOUT)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    workers = [_start_worker(address, f"worker-{i}", tmp_path) for i in range(2)]
    processes += workers
    try:
        from distributed import Client

        deadline = time.monotonic() + START_TIMEOUT
        client = None
        while client is None:
            try:
                client = Client(address, timeout=5, set_as_default=False)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        try:
            client.wait_for_workers(2, timeout=START_TIMEOUT)
        finally:
            client.close()
        yield address, workers
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _table(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 4))
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["y"] = X[:, 0] * X[:, 1] + np.abs(X[:, 2]) + 0.1 * rng.normal(size=rows)
    return frame


def _suite(folder, rows: int):
    """A one-table suite laid out like ../shared/datasets (``_table`` as "tiny", a regression)."""
    suite = folder / "suite"
    suite.mkdir()
    _table(rows=rows).rename(columns={"y": "label"}).to_csv(suite / "tiny.csv", index=False)
    (suite / "MANIFEST.json").write_text(json.dumps({"datasets": {"tiny": {
        "file": "tiny.csv", "task": "regression", "target": "label", "metric": "one_minus_rae"}}}))
    return suite


def _sequences(n: int) -> list[list[str]]:
    binary, unary = ["+", "-", "*", "/"], ["sin", "log", "sqrt", "square"]
    out = []
    for i in range(n):
        a, b = f"f{i % 4}", f"f{(i // 4 + 1 + i % 4) % 4}"
        out.append([a, b, binary[i % 4]] + ([unary[(i // 4) % 4]] if i >= 16 else []))
    return out


def test_an_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(FeatteamError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:"):
        DaskEngine(f"tcp://127.0.0.1:{_free_port()}", timeout=2)
    assert isinstance(make_engine(n_jobs=2), LocalEngine)  # no scheduler: nothing changes


@pytest.mark.slow  # starts a cluster
def test_scores_and_screen_gains_on_the_cluster_equal_the_local_ones(cluster):
    address, _ = cluster
    dataset = prepare(_table(), "y")
    local = Evaluator(dataset, "honest", validation_size=0.2)
    engine = DaskEngine(address)
    try:
        remote = Evaluator(dataset, "honest", validation_size=0.2, engine=engine)
        sequences = _sequences(24)
        assert [r.score for r in remote.score_many(sequences)] == [r.score for r in local.score_many(sequences)]
        assert engine.n_workers == 2 and "Dask cluster at " + address in engine.describe()
        # The evaluator (with the table) went to the workers once, not with each task.
        assert len(engine._scattered) == 1
        screen_here = FeatureScreen(local, chunk=64)
        screen_there = FeatureScreen(local, chunk=64, engine=engine)
        here, there = screen_here.order1(7), screen_there.order1(7)
        assert len(here) > 64 and np.array_equal(screen_here.gains(here), screen_there.gains(there))
    finally:
        engine.close()


@pytest.mark.slow  # starts a cluster
def test_a_worker_killed_mid_run_costs_only_its_unfinished_tasks(cluster, tmp_path):
    address, workers = cluster
    dataset = prepare(_table(rows=400), "y")
    sequences = _sequences(32)
    expected = [r.score for r in Evaluator(dataset, "honest").score_many(sequences)]
    engine = DaskEngine(address)
    killed_at = []

    def kill_one_worker():
        # Once worker-0 is computing a task (not before: the kill must land mid-run).
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            names = {address: info.get("name") for address, info in
                     engine.client.scheduler_info(n_workers=-1)["workers"].items()}
            if any(names.get(address) == "worker-0" and tasks for address, tasks in engine.client.processing().items()):
                break
            time.sleep(0.05)
        workers[0].send_signal(signal.SIGKILL)
        killed_at.append(time.monotonic())

    try:
        evaluator = Evaluator(dataset, "honest", engine=engine)
        evaluator.persist(tmp_path / "scores.jsonl")
        killer = threading.Thread(target=kill_one_worker)
        killer.start()
        results = evaluator.score_many(sequences)
        finished_at = time.monotonic()
        killer.join()
        assert killed_at and killed_at[0] < finished_at, "the worker must die while the scores are computed"
        assert workers[0].wait(timeout=10) == -signal.SIGKILL
        assert [r.score for r in results] == expected
        assert engine.n_workers == 1
        # Every score is in the log, and a new client resumes without computing any again.
        again = Evaluator(dataset, "honest", engine=engine)
        again.persist(tmp_path / "scores.jsonl")
        assert [r.score for r in again.score_many(sequences)] == expected and again.n_scored == 0
    finally:
        engine.close()


@pytest.mark.slow  # starts a cluster and runs two small fits
def test_a_fit_on_the_cluster_gives_the_local_result(cluster, tmp_path):
    address, _ = cluster
    path = tmp_path / "table.csv"
    _table(rows=200).to_csv(path, index=False)
    config = FitConfig.from_preset("quick", n_golden=16, teacher="none", search_top_k=2, step_sizes=(1.0, 4.0),
                                   beam=2, latent_epochs=20, student_epochs=1, student_samples=4)
    here = Run(tmp_path / "here", path, "y", config, n_jobs=1, progress=False).execute()
    there = Run(tmp_path / "there", path, "y", config, progress=False, scheduler=address).execute()
    assert there.engine.startswith(f"Dask cluster at {address}") and here.engine.startswith("this machine")
    for name in ("transformation.json", "golden.jsonl", "candidates.jsonl"):
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "there" / name).read_bytes(), name
    assert there.result.score == here.result.score


@pytest.mark.slow  # starts a cluster and runs a small bench twice
def test_bench_sends_featteams_scoring_to_the_cluster_with_the_local_result(cluster, tmp_path):
    from featteam.bench.runner import BenchConfig, run_bench
    from featteam.report import RunReport

    address, _ = cluster
    suite = _suite(tmp_path, rows=200)
    tiny = dict(n_golden=16, teacher="none", search_top_k=2, step_sizes=[1.0, 4.0], beam=2, latent_epochs=20,
                student_epochs=1, student_samples=4)
    results = {}
    for where, scheduler in (("here", None), ("there", address)):
        config = BenchConfig(out=tmp_path / where, data_dir=suite, methods=["featteam"], time_limit=600,
                             featteam_settings=tiny, scheduler=scheduler)
        results[where] = {row["method"]: row for row in run_bench(config, progress=False)}
    here, there = results["here"]["featteam"], results["there"]["featteam"]
    assert there["status"] == here["status"] == "ok"
    assert (there["score"], there["formulas"]) == (here["score"], here["formulas"])
    report = RunReport.load(tmp_path / "there" / "runs" / "tiny__honest__featteam__s0" / "report.json")
    assert report.engine.startswith(f"Dask cluster at {address}")
    # Where a configuration ran does not make it another: a finished local one is not run again.
    again = BenchConfig(out=tmp_path / "here", data_dir=suite, methods=["featteam"], time_limit=600,
                        featteam_settings=tiny, scheduler=address)
    stored = (tmp_path / "here" / "configs" / "tiny__honest__featteam__s0.json").stat().st_mtime_ns
    assert run_bench(again, progress=False)[0]["score"] == here["score"]
    assert (tmp_path / "here" / "configs" / "tiny__honest__featteam__s0.json").stat().st_mtime_ns == stored


@pytest.mark.slow  # waits for the connection's timeout
def test_a_bench_with_an_unreachable_scheduler_stops_before_any_configuration(tmp_path):
    from featteam.bench.runner import BenchConfig, run_bench

    config = BenchConfig(out=tmp_path / "out", data_dir=_suite(tmp_path, rows=100), methods=["original", "featteam"],
                         scheduler=f"tcp://127.0.0.1:{_free_port()}")
    with pytest.raises(FeatteamError, match="cannot reach the Dask scheduler"):
        run_bench(config, progress=False)
    assert not list((tmp_path / "out" / "configs").glob("*.json"))  # nothing ran, nothing recorded as failed
