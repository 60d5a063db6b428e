"""The command-line options every workload shares."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

__all__ = ["Options"]


@dataclass(frozen=True)
class Options:
    stack: str  # "embedded" | "postgres"
    duration: float  # seconds of load per phase
    runs: int
    workers: int  # server worker processes
    port: int | None  # None: a free port
    connections: int  # wrk connections
    wrk_threads: int
    db_tasks: int  # concurrent readers for the database floor
    postgres_url: str  # an admin URL: bench databases are created beside it
    redis_url: str
    keep: bool  # keep the work dir (server logs) after the run
    wait_quiet: float  # before each phase, wait up to this many seconds for an idle machine
    profile: bool  # py-spy the server during the first run's load phases
    ref: str | None  # measure this git ref (exported) instead of the working tree
    warmup: float = 30.0  # w1: seconds of unmeasured load before the runs
    server_settings: tuple[tuple[str, str], ...] = ()  # --set SOCIUS_X=value, for the server

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> Options:
        """The options of `socius bench`'s shared parser (bench/cli.py)."""
        return cls(
            stack=ns.stack,
            duration=ns.duration,
            runs=ns.runs,
            workers=ns.workers,
            port=ns.port,
            connections=ns.connections,
            wrk_threads=ns.wrk_threads,
            db_tasks=ns.db_tasks,
            postgres_url=ns.postgres_url,
            redis_url=ns.redis_url,
            keep=ns.keep,
            ref=ns.ref,
            wait_quiet=ns.wait_quiet,
            profile=ns.profile,
            warmup=ns.warmup,
            server_settings=tuple(_setting(text) for text in ns.set or ()),
        )

    def server_env(self) -> dict[str, str]:
        """The ``--set`` settings, as the server's environment."""
        return dict(self.server_settings)


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("SOCIUS_"):
        raise SystemExit(f"--set {text!r}: expected SOCIUS_NAME=value")
    return name, value
