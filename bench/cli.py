"""`socius bench <workload> [options]`: the entry point socius.cli imports.

socius bench w4 --stack embedded
socius bench w4 --stack postgres --duration 10 --runs 3
"""

from __future__ import annotations

import argparse
import importlib
import shutil

from bench.harness.options import Options

__all__ = ["run"]

WORKLOADS = {
    "w0": "the request path: server CPU per request against the framework floor",
    "w1": "social graph API",
    "w2": "chat delivery",
    "w3": "connections",
    "w4": "identity: login, refresh, token verification",
    "w5": "scale-out",
}
IMPLEMENTED = {"w0", "w1", "w2", "w3", "w4"}
NEEDS_WRK = {"w0", "w1", "w2", "w4"}  # their HTTP load comes from wrk
OWN_OPTIONS = {"w2", "w3"}  # add their own options to the shared parser: main(parser, args)


def _parser(workload: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"socius bench {workload}",
        description=f"{workload}: {WORKLOADS.get(workload, '?')} "
        "(see docs/workloads.md and bench/README.md)",
    )
    p.add_argument("--stack", choices=["embedded", "postgres"], default="embedded")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per load phase")
    p.add_argument("--runs", type=int, default=3, help="runs; the median is reported")
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--port", type=int, default=None, help="server port (default: a free one)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads")
    p.add_argument("--db-tasks", type=int, default=16, help="readers for the database floor")
    p.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin URL; a fresh database is created beside it and dropped after",
    )
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each phase, wait up to SECONDS for other processes to leave the CPU idle",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the server during the first run's HTTP phases (pip install py-spy)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="w1: seconds of the same load before the measured runs (not counted; 0: none)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="SOCIUS_NAME=VALUE",
        help="a server setting for this run (repeatable), e.g. SOCIUS_L1_CACHE_TTL_SECONDS=60; "
        "recorded in the result's config",
    )
    p.add_argument(
        "--ref",
        default=None,
        help="measure this git ref (e.g. HEAD), exported clean, instead of the working tree",
    )
    return p


def run(workload: str, args: list[str]) -> int:
    workload = workload.lower()
    if workload not in WORKLOADS:
        print(f"unknown workload {workload!r}; choose one of {', '.join(WORKLOADS)}")
        return 2
    if workload not in IMPLEMENTED:
        print(f"{workload} ({WORKLOADS[workload]}): not implemented yet")
        return 2
    if workload in NEEDS_WRK and shutil.which("wrk") is None:
        print(f"socius bench {workload} needs wrk: apt-get install wrk (or scripts/bench-deps)")
        return 2
    if workload in OWN_OPTIONS:
        own = importlib.import_module(f"bench.workloads.{workload}")
        return int(own.main(_parser(workload), args))
    ns = _parser(workload).parse_args(args)
    if ns.runs < 1 or ns.duration <= 0 or ns.connections < 1 or ns.workers < 1 or ns.warmup < 0:
        print("--runs, --duration, --connections and --workers must be positive, --warmup >= 0")
        return 2
    if ns.workers > 1 and ns.stack == "embedded":
        print("--workers > 1 needs Redis: use --stack postgres")
        return 2
    options = Options.from_namespace(ns)
    module = importlib.import_module(f"bench.workloads.{workload}")
    code: int = module.run(options)
    return code
