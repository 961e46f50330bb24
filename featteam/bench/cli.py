"""The ``bench`` subcommand."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ..config import PRESETS
from ..engine import SCHEDULER_ENV
from .methods import METHODS, QUICK_DATASETS
from .runner import TIME_LIMITS


def _by_preset(value_of: Callable[[str], object]) -> str:
    """Each preset's default of a bench setting, for its help (stated where the default is)."""
    return ", ".join(f"{preset} {value_of(preset)}" for preset in PRESETS)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark featteam against its peers on the field's suite")
    p.add_argument("--out", required=True, help="output directory (a stopped benchmark resumes from it)")
    p.add_argument("--data-dir", default=os.environ.get("FEATTEAM_DATA_DIR", "../shared/datasets"),
                   help="folder with MANIFEST.json and the tables (default: FEATTEAM_DATA_DIR or ../shared/datasets)")
    p.add_argument("--datasets", nargs="+", default=["all"],
                   help=f"dataset names, 'all' (default) or 'quick' ({', '.join(QUICK_DATASETS)})")
    p.add_argument("--methods", nargs="+", default=list(METHODS), help=f"from {', '.join(METHODS)} (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--protocol", dest="protocols", nargs="+", choices=["honest", "paper"], default=["honest"])
    p.add_argument("--preset", choices=list(PRESETS), default="quick", help="featteam's preset (default: quick)")
    rows = _by_preset(lambda preset: PRESETS[preset].get("max_search_rows") or "every row")
    p.add_argument("--max-search-rows", type=int,
                   help=f"featteam scores candidates on at most this many rows (default: the preset's - {rows}; "
                        "0: every row)")
    p.add_argument("--split-seed", type=int, default=0,
                   help="honest protocol: seed of every table's train/test split (default 0, the literature's "
                        "split; another gives test rows the suite's usual split does not hold, to check a change "
                        "before it is measured there)")
    p.add_argument("--time-limit", type=float,
                   help="seconds per configuration, a safety stop (default: the preset's - "
                        f"{_by_preset(lambda preset: f'{TIME_LIMITS[preset]:g}')})")
    p.add_argument("--jobs", type=int, default=1, help="configurations run at once (default 1)")
    p.add_argument("--threads", type=int, help="threads per configuration (default: cores / jobs)")
    p.add_argument("--peer-python",
                   help="interpreter with the bench extra for OpenFE and autofeat (default: FEATTEAM_PEER_PYTHON "
                        "or this one)")
    p.add_argument("--scheduler", default=os.environ.get(SCHEDULER_ENV) or None, metavar="tcp://HOST:PORT",
                   help=f"featteam's configurations score and screen candidates on this Dask cluster (default: "
                        f"{SCHEDULER_ENV}); the same results, but their fit times are the cluster's, not comparable "
                        "with the peers', which run on this machine")
    p.add_argument("--rerun-failed", action="store_true", help="run again configurations that failed or timed out")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rebuild the results and the report from the configurations already finished")
    p.add_argument("--no-progress", action="store_true")


def _peer_versions(python: str) -> str:
    code = ("from importlib.metadata import version\n"
            "print(', '.join(f'{n} {version(n)}' for n in ('openfe', 'autofeat', 'lightgbm', 'numpy', 'pandas', "
            "'scikit-learn')))")
    try:
        return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"


def _header(args: argparse.Namespace, seconds: float) -> str:
    from ..versions import versions

    mem = ""
    try:
        kib = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        mem = f", {kib / 2**20:.0f} GiB memory"
    except (OSError, StopIteration, ValueError):
        pass
    peer_python = args.peer_python or os.environ.get("FEATTEAM_PEER_PYTHON") or sys.executable
    ours = ", ".join(f"{k} {v}" for k, v in versions().items())
    return (f"Command: `featteam {' '.join(shlex.quote(a) for a in args.argv)}`  \n"
            f"Machine: {platform.machine()}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}; "
            + ("report rebuilt from the finished configurations (each ran as stored in configs/)  \n"
               if args.report_only else
               f"{args.jobs} configuration(s) at a time; wall time of this invocation {seconds / 60:.1f} min  \n") +
            (f"featteam's candidates scored on the Dask cluster at {args.scheduler} (its fit times are the "
             "cluster's, not comparable with the peers')  \n" if args.scheduler and not args.report_only else "") +
            f"featteam side: {ours}  \nPeers' interpreter: {_peer_versions(peer_python)}\n\n")


def _cmd_bench(args: argparse.Namespace) -> int:
    from .methods import load_manifest
    from .report import results_frame, write_results
    from .runner import BenchConfig, load_rows, run_bench

    config = BenchConfig(out=Path(args.out), data_dir=Path(args.data_dir), datasets=args.datasets,
                         methods=args.methods, seeds=args.seeds, protocols=args.protocols, preset=args.preset,
                         max_search_rows=args.max_search_rows, split_seed=args.split_seed,
                         time_limit=args.time_limit, jobs=args.jobs,
                         threads=args.threads, peer_python=args.peer_python, rerun_failed=args.rerun_failed,
                         scheduler=args.scheduler)
    start = time.perf_counter()
    if args.report_only:
        rows = load_rows(config, load_manifest(config.data_dir))
    else:
        rows = run_bench(config, progress=not args.no_progress)
    frame = results_frame(rows)
    path = write_results(frame, config.out, [m for m in METHODS if m in config.methods],
                         header=_header(args, time.perf_counter() - start))
    ok = frame[frame["status"].isin(["ok", "reference"])]
    print(f"\n{len(frame)} results ({len(ok)} with a score) in {config.out}: results.csv, {path.name}, plots")
    for (protocol, method), gain in ok.groupby(["protocol", "method"])["gain"].mean().items():
        print(f"  {protocol:7s} {method:9s} mean gain over the original features {gain:+.4f}")
    failed = frame[~frame["status"].isin(["ok", "reference"])]
    if len(failed):
        print(f"  {len(failed)} results without a score (timeouts or errors): see {path.name}")
    return 0


COMMANDS = {"bench": _cmd_bench}
