"""W1's list pages on first read, in process: CPU per page of this process (the service,
its driver and cache clients) and of the database servers (decision 0052).

    # PostgreSQL: a copy of the W1 seed (never the template itself)
    psql -c 'CREATE DATABASE w1_lists TEMPLATE socius_w1_seed_<key>'
    flock /tmp/socius-cpu.lock .venv/bin/python -m bench.list_read_cost \\
        --database postgresql:///w1_lists --redis redis://127.0.0.1:6379
    # embedded: the W1 seed (built on first use, as `socius bench w1 --stack embedded` does)
    flock /tmp/socius-cpu.lock .venv/bin/python -m bench.list_read_cost

For ``--owners`` users of the seed (a fixed sample), each read once, nothing cached before
(a fresh Redis prefix, an empty L1): F (``GET /v1/friends?limit=50``: the owner's own first
page), L (``GET /v1/users/{id}/friends?limit=50`` by another user: blocks, the owner's
profile, the page), M (``GET /v1/users/{id}/mutual-friends``). Each op is a round over
every owner; its CPU (``time.process_time``; the database's from /proc, as the bench
harness reads it: ``postgres_us`` every PostgreSQL process on the machine, others' work
too; ``backends_us`` this database's backends only) over the count. The bodies' SHA-256
is printed: the same seed gives the same bodies, before and after a change.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.harness.cpu import _database_cpu, _process_cpu
from bench.harness.stack import Stack
from bench.workloads import w1_seed
from socius.api.rest.people import _render_list
from socius.bootstrap import build
from socius.domain.errors import Forbidden, NotFound
from socius.domain.graph import EdgeType
from socius.settings import load_settings
from socius.storage.migrate import upgrade

FRIEND = EdgeType.FRIEND
_WITH_FRIENDS = "SELECT DISTINCT src FROM edges WHERE type = 1 ORDER BY src"


def _owners(path: str, n: int) -> list[int]:
    """``n`` users with at least one friend, the same ones each time."""
    db = sqlite3.connect(path)
    ids = [r[0] for r in db.execute(_WITH_FRIENDS)]
    db.close()
    return random.Random(52).sample(ids, n)


async def _pg_owners(url: str, n: int) -> list[int]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(_WITH_FRIENDS)
    finally:
        await conn.close()
    return random.Random(52).sample([r[0] for r in rows], n)


class _Backends:
    """The CPU of the PostgreSQL backends serving the database (this script's only: its
    copy of the seed), from /proc: not every PostgreSQL process, which others share."""

    def __init__(self, url: str | None) -> None:
        self._url = url
        self._start: dict[int, float] = {}

    async def _now(self) -> dict[int, float]:
        if self._url is None:
            return {}
        import asyncpg

        conn = await asyncpg.connect(self._url)
        try:
            pids = await conn.fetch(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        return {r[0]: _process_cpu(r[0]) for r in pids}

    async def start(self) -> None:
        self._start = await self._now()

    async def seconds(self) -> float:
        return sum(t - self._start.get(pid, 0.0) for pid, t in (await self._now()).items())


async def _measure(
    name: str,
    owners: list[int],
    read: Callable[[int, int], Awaitable[bytes]],
    backends: _Backends,
) -> dict[str, Any]:
    digest = hashlib.sha256()
    await backends.start()
    db0, cpu0, t0 = _database_cpu(), time.process_time(), time.perf_counter()
    for i, owner in enumerate(owners):
        viewer = owners[i - 1]  # another owner of the sample
        try:
            digest.update(await read(viewer, owner))
        except (Forbidden, NotFound) as exc:  # a private owner, a block: as the API says
            digest.update(type(exc).__name__.encode())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    db1 = _database_cpu()
    n = len(owners)
    return {
        "op": name,
        "here_us": round(cpu / n * 1e6),
        "backends_us": round(await backends.seconds() / n * 1e6),
        "postgres_us": round((db1["postgres_cores"] - db0["postgres_cores"]) / n * 1e6),
        "redis_us": round((db1["redis_cores"] - db0["redis_cores"]) / n * 1e6),
        "wall_us": round(wall / n * 1e6),
        "bodies_sha256": digest.hexdigest()[:16],
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database", help="PostgreSQL URL (a copy of the W1 seed); else SQLite")
    ap.add_argument("--redis", help="with --database: the Redis URL")
    ap.add_argument("--owners", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=2, help="each a fresh cache")
    ap.add_argument("--ops", default="FLM", help="which of F, L and M")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="list-read-cost-"))
    env: dict[str, Any] = {"data_dir": str(work / "data"), "log_level": "warning"}
    if a.database:
        owners = await _pg_owners(a.database, a.owners)
        url = a.database.replace("postgresql://", "postgresql+asyncpg://", 1)
        env |= {"database_url": url, "redis_url": a.redis or ""}
    else:
        stack = Stack(kind="embedded", workdir=work)
        await w1_seed.prepare(stack, w1_seed.SeedParams.from_env(), Console(), admin_url="")
        owners = _owners(str(stack.sqlite_path), a.owners)
    # The seed is made at its schema (w1_seed.seed_schema); a migration past it that keeps
    # the seed (``keeps_seed``) is applied here, as a bench server's start would.
    await upgrade(env["database_url"] if a.database else f"sqlite:///{stack.sqlite_path}")
    for r in range(a.rounds):
        settings = load_settings({}, redis_prefix=f"list-cost-{os.getpid()}-{r}:", **env)
        for line in await _round(settings, owners, _Backends(a.database), a.ops):
            print(r, line)


async def _round(
    settings: Any, owners: list[int], backends: _Backends, ops: str
) -> list[dict[str, Any]]:
    """F, L and M once each over ``owners``, on a fresh wiring (an empty L1)."""
    c = build(settings).container
    for start in c.on_start:
        await start()
    graph = c.graph

    async def own(_viewer: int, owner: int) -> bytes:
        return await graph.list_own_body(owner, FRIEND, limit=50, cursor=None, render=_render_list)

    async def other(viewer: int, owner: int) -> bytes:
        return await graph.list_edges_body(
            viewer, owner, FRIEND, limit=50, cursor=None, render=_render_list
        )

    async def mutual(viewer: int, owner: int) -> bytes:
        return _render_list(await graph.mutual_friends(viewer, owner, limit=50, cursor=None))

    half = len(owners) // 2  # F on one half of the owners, L on the other: first reads
    runs = {"F": (owners[:half], own), "L": (owners[half:], other), "M": (owners, mutual)}
    out = [await _measure(op, *runs[op], backends) for op in ops]
    for stop in reversed(c.on_stop):
        await stop()
    return out


if __name__ == "__main__":
    asyncio.run(main())
