"""The database floor: the raw rate of one primary-key read through the server's driver.

N asyncio tasks, each with its own connection (the server's pool gives each request one),
run `SELECT * FROM users WHERE id = ?` with random seeded ids for a fixed duration.
aiosqlite for the embedded stack, asyncpg for PostgreSQL: the drivers SQLAlchemy uses
under socius, without SQLAlchemy, the app or HTTP.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from bench.harness.stats import percentiles_ms

__all__ = ["pk_read_floor", "user_ids"]

_SQLITE_QUERY = "SELECT * FROM users WHERE id = ?"
_PG_QUERY = "SELECT * FROM users WHERE id = $1"


async def user_ids(*, sqlite_path: Path | None = None, database_url: str = "") -> list[int]:
    if database_url:
        conn = await asyncpg.connect(database_url)
        try:
            return [r[0] for r in await conn.fetch("SELECT id FROM users")]
        finally:
            await conn.close()
    assert sqlite_path is not None
    async with aiosqlite.connect(sqlite_path) as db, db.execute("SELECT id FROM users") as cur:
        return [int(r[0]) for r in await cur.fetchall()]


async def pk_read_floor(
    ids: list[int],
    *,
    duration: float,
    tasks: int,
    sqlite_path: Path | None = None,
    database_url: str = "",
) -> dict[str, Any]:
    """Reads per second, latency percentiles and error count (a missing row is an error)."""
    if not ids:
        raise ValueError("no users to read")
    counts = [0] * tasks
    errors = [0] * tasks
    samples: list[list[float]] = [[] for _ in range(tasks)]
    start_gate = asyncio.Event()
    deadline = 0.0

    async def reader(k: int, fetch: Any) -> None:
        rng = random.Random(k)
        await start_gate.wait()
        pick = rng.choice
        clock = time.perf_counter
        while clock() < deadline:
            t = clock()
            try:
                row = await fetch(pick(ids))
            except Exception:  # a failed read is an error to count, not a crash
                errors[k] += 1
                continue
            samples[k].append(clock() - t)
            if row is None:
                errors[k] += 1
            else:
                counts[k] += 1

    closers: list[Any] = []
    fetchers: list[Any] = []
    if database_url:
        for _ in range(tasks):
            conn = await asyncpg.connect(database_url)
            closers.append(conn.close)
            stmt = await conn.prepare(_PG_QUERY)
            fetchers.append(stmt.fetchrow)
    else:
        assert sqlite_path is not None
        for _ in range(tasks):
            db = await aiosqlite.connect(sqlite_path)
            await db.execute("PRAGMA cache_size=-32000")
            closers.append(db.close)

            async def fetch(uid: int, db: aiosqlite.Connection = db) -> Any:
                async with db.execute(_SQLITE_QUERY, (uid,)) as cur:
                    return await cur.fetchone()

            fetchers.append(fetch)
    try:
        workers = [asyncio.create_task(reader(k, fetchers[k])) for k in range(tasks)]
        await asyncio.sleep(0)
        t0 = time.perf_counter()
        deadline = t0 + duration
        start_gate.set()
        await asyncio.gather(*workers)
        elapsed = time.perf_counter() - t0
    finally:
        for close in closers:
            await close()
    reads = sum(counts)
    every = [s for per in samples for s in per]
    return {
        "driver": "asyncpg" if database_url else "aiosqlite",
        "query": _PG_QUERY if database_url else _SQLITE_QUERY,
        "tasks": tasks,
        "rows": len(ids),
        "duration_s": elapsed,
        "reads": reads,
        "rate": reads / elapsed,
        "errors": sum(errors),
        "latency_ms": percentiles_ms(every),
    }
