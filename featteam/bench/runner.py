"""Plan and run a benchmark: every configuration in its own process, with a time limit.

Results are kept per configuration under ``OUT/configs/`` as they finish, so a stopped benchmark
resumes where it stopped; ``OUT/results.csv``, ``OUT/results.md`` and the plots are rebuilt from
all of them at the end.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import PRESETS
from ..errors import FeatteamError
from .methods import GROUP_METHODS, METHODS, PEER_GROUPS, groups_for, load_manifest, resolve_datasets

logger = logging.getLogger(__name__)

#: The groups from cheapest to dearest (quick subset, 1 thread: original < 1 s, openfe 9-55 s, featteam ~100 s, autofeat 75-600 s).
GROUP_COST: tuple[str, ...] = ("original", "openfe", "featteam", "autofeat")


@dataclass
class BenchConfig:
    """What ``featteam bench`` runs (see ``featteam bench --help``)."""

    out: Path
    data_dir: Path
    datasets: list[str] | None = None
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    seeds: list[int] = field(default_factory=lambda: [0])
    protocols: list[str] = field(default_factory=lambda: ["honest"])
    preset: str = "quick"
    #: rows featteam scores candidates on (None: the preset's; 0: every row)
    max_search_rows: int | None = None
    #: honest protocol: seed of every table's train/test split (0: the literature's)
    split_seed: int = 0
    #: seconds per configuration, a safety stop (None: the preset's, :data:`TIME_LIMITS`)
    time_limit: float | None = None
    jobs: int = 1
    threads: int | None = None
    peer_python: str | None = None
    rerun_failed: bool = False
    featteam_settings: dict[str, Any] = field(default_factory=dict)  # FitConfig overrides on top of the preset
    #: a Dask scheduler's address: featteam's configurations score and screen candidates on its
    #: workers (the same results; the peers run on this machine)
    scheduler: str | None = None


@dataclass
class Job:
    dataset: str
    protocol: str
    group: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.dataset}__{self.protocol}__{self.group}__s{self.seed}"


def plan(config: BenchConfig, manifest: dict[str, Any]) -> list[Job]:
    datasets = resolve_datasets(config.datasets, manifest)
    groups = groups_for(config.methods)
    for protocol in config.protocols:
        if protocol not in ("honest", "paper"):
            raise FeatteamError(f"unknown protocol {protocol!r} (honest or paper)")
    if config.split_seed and "paper" in config.protocols:
        raise FeatteamError("the paper protocol uses the literature's split (--split-seed 0)")
    if not 0 <= config.split_seed < 2**32:
        raise FeatteamError(f"--split-seed must be an integer from 0 to 2**32 - 1, not {config.split_seed}")
    jobs = []
    # Cheapest groups first (then protocol, dataset, seed): a benchmark stopped early has the most
    # complete table, and autofeat, the slowest on wide tables, comes last.
    for group in sorted(groups, key=GROUP_COST.index):
        for protocol in config.protocols:
            for dataset in datasets:
                # The original features' score does not depend on a seed (fixed split and model).
                seeds = config.seeds[:1] if group == "original" else config.seeds
                jobs.extend(Job(dataset, protocol, group, seed) for seed in seeds)
    return jobs


def _threads(config: BenchConfig) -> int:
    return config.threads or max(1, (os.cpu_count() or 1) // max(1, config.jobs))


def _spec(job: Job, config: BenchConfig, manifest: dict[str, Any]) -> dict[str, Any]:
    entry = manifest["datasets"][job.dataset]
    spec = {"dataset": job.dataset, "data": str((Path(config.data_dir) / entry["file"]).resolve()),
            "target": entry.get("target", "label"), "protocol": job.protocol, "group": job.group,
            "seed": job.seed, "preset": config.preset, "max_search_rows": search_rows(config),
            "settings": config.featteam_settings, "n_jobs": _threads(config), "run_dir": str((Path(config.out) / "runs" / job.name).resolve())}
    if config.scheduler and job.group == "featteam":
        spec["scheduler"] = config.scheduler
    if config.split_seed:
        # Named only when it is not the literature's split, so a benchmark stored before the option
        # existed still resumes (its stored configurations are compared with these).
        spec["split_seed"] = config.split_seed
        spec["settings"] = {**config.featteam_settings, "split_seed": config.split_seed}
    return spec


#: Each preset's time limit per configuration by default: well above the suite's slowest fit
#: on a 2-core machine (quick: higgs about 190 s; paper: higgs's 10,000-row split 3317 s,
#: BENCHMARKS.md ``paper46``).  A limit is a safety stop; budgets are counted in candidates,
#: epochs and steps.
TIME_LIMITS: dict[str, float] = {"demo": 1200.0, "quick": 1200.0, "default": 3600.0, "paper": 7200.0}


def time_limit(config: BenchConfig) -> float:
    """Seconds a configuration may run before it is stopped (and recorded as a timeout)."""
    return config.time_limit if config.time_limit is not None else TIME_LIMITS[config.preset]


def search_rows(config: BenchConfig) -> int:
    """The rows featteam's search scores candidates on in this benchmark (0: every row): the
    preset's own unless ``max_search_rows`` says otherwise, so ``--preset paper`` searches the
    whole test split as the literature does."""
    if config.max_search_rows is not None:
        return config.max_search_rows
    return PRESETS[config.preset].get("max_search_rows") or 0


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """The same configuration: where it runs (its folder, its threads, a cluster) does not change results."""
    ignore = ("run_dir", "n_jobs", "scheduler")
    return {k: v for k, v in old.items() if k not in ignore} == {k: v for k, v in new.items() if k not in ignore}


def _python_for(group: str, config: BenchConfig) -> str:
    python = sys.executable
    if group in PEER_GROUPS:
        python = config.peer_python or os.environ.get("FEATTEAM_PEER_PYTHON") or sys.executable
    # Absolute (the worker runs in its own folder), but not resolved: a venv's python is a symlink.
    return os.path.abspath(python) if os.sep in python else python


def _base_row(job: Job, manifest: dict[str, Any]) -> dict[str, Any]:
    entry = manifest["datasets"][job.dataset]
    return {"dataset": job.dataset, "task": entry["task"], "metric": entry["metric"], "protocol": job.protocol,
            "seed": job.seed, "group": job.group}


class _Running:
    def __init__(self, job: Job, process: subprocess.Popen, result: Path, log: Path, started: float) -> None:
        self.job, self.process, self.result, self.log, self.started = job, process, result, log, started


def run_bench(config: BenchConfig, progress: bool = True) -> list[dict[str, Any]]:
    """Run every configuration not already done; returns all result rows (old and new)."""
    from tqdm.auto import tqdm

    manifest = load_manifest(config.data_dir)
    out = Path(config.out)
    configs_dir = out / "configs"
    configs_dir.mkdir(parents=True, exist_ok=True)
    jobs = plan(config, manifest)
    todo = []
    for job in jobs:
        done, spec_path = configs_dir / f"{job.name}.json", configs_dir / f"{job.name}.spec.json"
        # Done means: a result of the very same configuration (settings included).
        if done.exists() and spec_path.exists() and _same(json.loads(spec_path.read_text()), _spec(job, config, manifest)):
            rows = json.loads(done.read_text())
            if not (config.rerun_failed and any(r.get("status") in ("error", "timeout") for r in rows)):
                continue
        todo.append(job)
    logger.info("%d configurations planned, %d to run", len(jobs), len(todo))
    if config.scheduler and any(job.group == "featteam" for job in todo):
        from ..engine import make_engine

        # An unreachable cluster is one clear error now, not a failed configuration per table.
        make_engine(1, config.scheduler).close()
    env = dict(os.environ)
    threads = str(_threads(config))
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
               TOKENIZERS_PARALLELISM="false")
    running: list[_Running] = []
    queue = list(todo)
    bar = tqdm(total=len(todo), desc="bench", disable=not progress)
    try:
        while queue or running:
            while queue and len(running) < max(1, config.jobs):
                job = queue.pop(0)
                spec_path = configs_dir / f"{job.name}.spec.json"
                (configs_dir / f"{job.name}.json").unlink(missing_ok=True)
                spec_path.write_text(json.dumps(_spec(job, config, manifest), indent=1))
                result = configs_dir / f"{job.name}.result.json"
                result.unlink(missing_ok=True)
                log = configs_dir / f"{job.name}.log"
                workdir = Path(config.out) / "runs" / job.name  # OpenFE writes a fixed file name into its cwd
                workdir.mkdir(parents=True, exist_ok=True)
                # A peer may iterate over a set of strings (autofeat's feature selection does), whose
                # order changes with each process's hash seed: fixed, so its result is reproducible.
                job_env = {**env, "PYTHONHASHSEED": "0"} if job.group in PEER_GROUPS else env
                with open(log, "w") as handle:
                    process = subprocess.Popen(
                        [_python_for(job.group, config), "-m", "featteam.bench.worker", str(spec_path.resolve()),
                         str(result.resolve())],
                        stdout=handle, stderr=subprocess.STDOUT, env=job_env, start_new_session=True, cwd=workdir)
                running.append(_Running(job, process, result, log, time.perf_counter()))
            time.sleep(0.5)
            for item in list(running):
                elapsed = time.perf_counter() - item.started
                code = item.process.poll()
                if code is None and elapsed <= time_limit(config):
                    continue
                if code is None:  # over its time limit: stop the whole process group
                    os.killpg(item.process.pid, signal.SIGKILL)
                    item.process.wait()
                rows = _collect(item, code, elapsed, config, manifest)
                (configs_dir / f"{item.job.name}.json").write_text(json.dumps(rows, default=str) + "\n")
                running.remove(item)
                bar.update(1)
                bar.set_postfix_str(f"{item.job.name}: {rows[0].get('status')}")
    finally:
        for item in running:  # interrupted: leave no orphan behind
            os.killpg(item.process.pid, signal.SIGKILL)
        bar.close()
    return load_rows(config, manifest, jobs)


def _collect(item: _Running, code: int | None, elapsed: float, config: BenchConfig,
             manifest: dict[str, Any]) -> list[dict[str, Any]]:
    base = _base_row(item.job, manifest)
    if code is None:
        return [{**base, "method": m, "status": "timeout", "fit_seconds": round(elapsed, 1),
                 "message": f"stopped after the {time_limit(config):.0f} s limit"} for m in GROUP_METHODS[item.job.group]]
    if code != 0 or not item.result.exists():
        tail = item.log.read_text(errors="replace").strip().splitlines()[-1:] if item.log.exists() else []
        return [{**base, "method": m, "status": "error", "fit_seconds": round(elapsed, 1),
                 "message": f"exit code {code}: {' '.join(tail)[:500]}"} for m in GROUP_METHODS[item.job.group]]
    rows = [{**base, **row} for row in json.loads(item.result.read_text())]
    spec = json.loads((Path(config.out) / "configs" / f"{item.job.name}.spec.json").read_text())
    for i, row in enumerate(rows):
        if row.get("status") == "ok" and row.get("generated"):  # a peer's columns: scored here
            from .worker import score_generated
            try:
                rows[i] = score_generated(spec, row)
            except Exception as exc:  # recorded: the benchmark goes on
                rows[i] = {**row, "status": "error", "message": f"scoring failed: {type(exc).__name__}: {exc}"}
    return rows


def reference_rows(config: BenchConfig, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """MOAT's published scores (paper protocol only)."""
    if "moat" not in config.methods or "paper" not in config.protocols:
        return []
    rows = []
    for dataset in resolve_datasets(config.datasets, manifest):
        entry = manifest["datasets"][dataset]
        reference = entry.get("paper_protocol_reference") or {}
        if "moat" in reference:
            rows.append({"dataset": dataset, "task": entry["task"], "metric": entry["metric"], "protocol": "paper",
                         "seed": None, "group": "reference", "method": "moat", "status": "reference",
                         "score": reference["moat"], "original_score": reference.get("original_features")})
    return rows


def load_rows(config: BenchConfig, manifest: dict[str, Any], jobs: list[Job] | None = None) -> list[dict[str, Any]]:
    """The rows of the planned configurations that have results, plus the references."""
    jobs = plan(config, manifest) if jobs is None else jobs
    wanted = set(config.methods)
    rows = []
    for job in jobs:
        path = Path(config.out) / "configs" / f"{job.name}.json"
        if path.exists():
            rows.extend(r for r in json.loads(path.read_text()) if r["method"] in wanted)
    return rows + reference_rows(config, manifest)
