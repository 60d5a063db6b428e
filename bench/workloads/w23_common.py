"""What W2 and W3 share: their extra options, the server's settings per stack and bus,
reading the server's message history straight from the database, and where the CPU went
(server, each load-generator process, everything else) during a phase."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiosqlite
import asyncpg

from bench.harness.options import Options
from bench.harness.procs import proc_cpu_s
from bench.harness.stack import Stack
from bench.workloads.w23_seed import TOKEN_ENV

__all__ = [
    "BackendCpu",
    "History",
    "PidCpu",
    "add_stack_args",
    "options_from",
    "run_main",
    "server_env",
    "stack_label",
]


def run_main(main: Coroutine[Any, Any, int]) -> int:
    """asyncio.run, with SIGTERM cancelling the bench so its `finally`s stop the server
    and the load-generator processes."""

    async def wrapper() -> int:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await main

    return asyncio.run(wrapper())


def add_stack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bus",
        choices=["nats", "redis"],
        default="nats",
        help="postgres stack: the event bus (NATS, or Redis pub/sub)",
    )
    p.add_argument("--nats-url", default="nats://127.0.0.1:4222")


def options_from(ns: argparse.Namespace) -> Options:
    return Options.from_namespace(ns)


def stack_label(stack: str, bus: str) -> str:
    """embedded | postgres (PostgreSQL + Redis cache + NATS) | postgres-redisbus."""
    if stack == "embedded":
        return "embedded"
    return "postgres" if bus == "nats" else "postgres-redisbus"


def server_env(stack: Stack, bus: str, nats_url: str) -> dict[str, str]:
    """The measured server's settings: the stack's, the bench tokens' lifetime, the bus."""
    env = stack.settings_env() | TOKEN_ENV
    if stack.kind == "postgres" and bus == "nats":
        env["SOCIUS_NATS_URL"] = nats_url
    return env


def describe_stack(stack: Stack, bus: str) -> str:
    if stack.kind == "embedded":
        return "SQLite (aiosqlite), in-process cache, in-process bus (MemoryBus)"
    bus_name = "NATS" if bus == "nats" else "Redis pub/sub"
    return f"PostgreSQL (asyncpg), Redis cache, {bus_name} bus"


class History:
    """The server's final history, read from the `messages` table (not through the app)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._pg: asyncpg.Connection | None = None
        self._lite: aiosqlite.Connection | None = None

    async def __aenter__(self) -> History:
        if self.stack.database_url:
            self._pg = await asyncpg.connect(self.stack.database_url)
        else:
            self._lite = await aiosqlite.connect(self.stack.sqlite_path)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._lite is not None:
            await self._lite.close()

    async def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self._pg is not None:
            parts = sql.split("?")
            numbered = parts[0] + "".join(f"${k}{p}" for k, p in enumerate(parts[1:], 1))
            return [tuple(r) for r in await self._pg.fetch(numbered, *args)]
        assert self._lite is not None
        async with self._lite.execute(sql, args) as cur:
            return [tuple(r) for r in await cur.fetchall()]

    async def count(self, prefix: str) -> int:
        rows = await self._rows(
            "SELECT count(*) FROM messages WHERE client_msg_id LIKE ?", prefix + "%"
        )
        return int(rows[0][0])

    async def backend_pids(self) -> list[int]:
        """PostgreSQL: the server processes serving the bench database, but this reader's
        own (their CPU is the database's work for the server); SQLite: none."""
        if self._pg is None:
            return []
        rows = await self._pg.fetch(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [int(r["pid"]) for r in rows]

    async def seqs(self, prefix: str) -> dict[str, list[int]]:
        """conversation id -> seqs of the messages whose client_msg_id starts with prefix."""
        rows = await self._rows(
            "SELECT conversation_id, seq FROM messages WHERE client_msg_id LIKE ? "
            "ORDER BY conversation_id, seq",
            prefix + "%",
        )
        out: dict[str, list[int]] = {}
        for conv, seq in rows:
            out.setdefault(str(conv), []).append(int(seq))
        return out


@dataclass
class PidCpu:
    """CPU seconds of named groups of processes between `start` and `stop`, as cores."""

    groups: dict[str, list[int]]
    _t: float = 0.0
    _before: dict[str, float] = field(default_factory=dict)
    result: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        return {g: sum(proc_cpu_s(p) for p in pids) for g, pids in self.groups.items()}

    def start(self) -> PidCpu:
        self._t = time.monotonic()
        self._before = self._now()
        return self

    def stop(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self._t, 1e-9)
        after = self._now()
        self.result = {
            f"{g}_cores": round((after[g] - self._before[g]) / elapsed, 3) for g in self.groups
        }
        self.result.update(
            {f"{g}_cpu_s": round(after[g] - self._before[g], 3) for g in self.groups}
        )
        return self.result


class BackendCpu:
    """CPU seconds of the database's backends for the bench database between ``start``
    and ``stop`` (PostgreSQL; 0 on SQLite, whose work is in the server process). Backends
    that appear meanwhile count from 0; the shared WAL writer and checkpointer are left
    out (with synchronous commit each backend flushes its own commit record)."""

    def __init__(self, history: History) -> None:
        self._history = history
        self._before: dict[int, float] = {}

    async def start(self) -> BackendCpu:
        self._before = {p: proc_cpu_s(p) for p in await self._history.backend_pids()}
        return self

    async def stop(self) -> float:
        pids = set(self._before) | set(await self._history.backend_pids())
        return round(sum(max(proc_cpu_s(p) - self._before.get(p, 0.0), 0.0) for p in pids), 3)


def flatten(xs: Iterable[Iterable[Any]]) -> list[Any]:
    return [x for part in xs for x in part]
