"""W1's graph and profile writes below HTTP: CPU, PostgreSQL CPU, statements and round
trips per write (decision 0053).

    .venv/bin/python bench/write_cost.py                        # SQLite (embedded)
    .venv/bin/python bench/write_cost.py --postgres postgresql://postgres@127.0.0.1:5432/postgres \
        --redis redis://127.0.0.1:6379/0

Each write is the fast lane's own function (what the front calls once the token is
verified: ``fast_change``'s for follow, unfollow and accept, the friend request's and
``PATCH /v1/me``'s with their JSON bodies), awaited in this process one after another:
the figure is the cost of a write below the front (its Python, its statements, the
after-commit invalidation and publish), not throughput. FO: a follow of a user not yet
followed (one in ten of them private: a follow request); FO again: a repeat; UF: an
unfollow of a user followed; FR: a friend request, then its accept (per request); E:
``PATCH /v1/me`` of the bio. With ``--postgres`` a fresh database is made (and dropped),
and the CPU of its server processes that serve this one (``pg_stat_activity`` of the
database, read from /proc) is reported per write too: "db µs". Round trips: the calls
this process makes on the driver's connections (``DriverConnection._call``) and on the
hot reads' pool, counted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from bench.harness.statements import counting
from socius.api.fast import FAST_WRITE
from socius.api.rest import friends, me
from socius.api.rest.graph_views import fast_change
from socius.bootstrap import build
from socius.services.auth import ClientInfo, Principal
from socius.services.graph import GraphService
from socius.settings import load_settings
from socius.storage import driver as driver_module
from socius.storage.edges import SqlEdgeRepository
from socius.storage.migrate import upgrade

PASSWORD = "write-cost bench password 1"  # noqa: S105 (throwaway accounts)

_FOLLOW = fast_change(GraphService.follow)[FAST_WRITE][0]
_UNFOLLOW = fast_change(GraphService.unfollow)[FAST_WRITE][0]
_ACCEPT = fast_change(GraphService.accept_friend_request)[FAST_WRITE][0]
_REQUEST = friends._fast_send_request
_UPDATE_ME = me._fast_update_me
# (absent before decision 0053: this script then measures that tree's one path)
checks = getattr(getattr(SqlEdgeRepository, "checks_pairs", None), "fget", None)


class _Trips:
    """Calls on the driver (each a round trip): ``DriverConnection._call`` counted."""

    def __init__(self) -> None:
        self.n = 0
        original = driver_module.DriverConnection._call

        async def call(conn: Any, method: Any, *args: Any) -> Any:
            self.n += 1
            return await original(conn, method, *args)

        driver_module.DriverConnection._call = call  # type: ignore[method-assign]


def _proc_cpu(pids: list[int]) -> float:
    """Seconds on CPU of these processes (/proc/PID/schedstat: nanoseconds, where
    /proc/PID/stat counts 10 ms ticks)."""
    total = 0.0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
        except OSError:
            continue
    return total


async def measure(
    overrides: dict[str, Any],
    n: int,
    users: int,
    db: str | None,
    ops: set[str] | None = None,
    *,
    compare: bool = False,
    alternate: tuple[str, str] | None = None,
) -> list[dict]:
    settings = load_settings(
        {},
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        log_json=False,
        log_level="warning",
        **{
            "limit_friend_requests": 1_000_000_000,
            "register_max_per_ip_per_hour": 1_000_000,
            # The stream's relay (woken by each write's event) is left out: its work is
            # the same whatever the write's path, and it runs on this loop.
            "event_relay_in_server": False,
            **overrides,
        },
    )
    await upgrade(settings.effective_database_url)
    wiring = build(settings)
    c = wiring.container
    for start in c.on_start:
        await start()
    engine = wiring.database.primary.sync_engine
    client = ClientInfo(ip="127.0.0.1", user_agent="write-cost")
    ids: list[int] = []
    for i in range(users):
        issued = await c.accounts.register(
            f"w{secrets.token_hex(4)}{i}", PASSWORD, email=None, display_name=None, client=client
        )
        ids.append(issued.user.id)  # type: ignore[union-attr]
    who = {u: Principal(u, 0) for u in ids}
    for u in ids[::10]:  # one in ten private: their follows are requests
        await _UPDATE_ME(c, who[u], (), b'{"is_private": true}')
    admin = None
    if db is not None:
        admin = await asyncpg.connect(db)
        for statement in filter(None, os.environ.get("WRITE_COST_SQL", "").split(";")):
            await admin.execute(statement)  # an experiment's set-up (not for the figures)
    trips = _Trips()

    def pairs(shift: int) -> list[tuple[int, int]]:
        return [(ids[i % users], ids[(i + shift + i // users) % users]) for i in range(n)]

    fo = [(a, b) for a, b in pairs(1) if a != b]
    fr = [(a, b) for a, b in pairs(users // 2 + 1) if a != b]

    def follow(a: int, b: int) -> Awaitable[bytes]:
        return _FOLLOW(c, who[a], (str(b),), b"")

    def unfollow(a: int, b: int) -> Awaitable[bytes]:
        return _UNFOLLOW(c, who[a], (str(b),), b"")

    async def request_accept(a: int, b: int) -> None:
        await _REQUEST(c, who[a], (), b'{"user_id": "%d"}' % b)
        await _ACCEPT(c, who[b], (str(a),), b"")

    bios = [b'{"bio": "bio %d"}' % i for i in range(2)]

    def update(i: int) -> Awaitable[bytes]:
        a = ids[i % users]
        return _UPDATE_ME(c, who[a], (), bios[(i // users) % 2])

    cases: list[tuple[str, int, Callable[[int], Awaitable[object]]]] = [
        ("FO", len(fo), lambda i: follow(*fo[i])),
        ("FO again", len(fo), lambda i: follow(*fo[i])),
        ("UF", len(fo), lambda i: unfollow(*fo[i])),
        ("FR", 2 * len(fr), lambda i: request_accept(*fr[i])),
        ("E", n, update),
    ]
    # Warm: the statements prepared, the connections open (then their server processes
    # are known), on other pairs than the measured ones.
    for i in range(50):
        a, b = ids[i % users], ids[(i + 3) % users]
        await follow(a, b)
        await follow(a, b)
        await unfollow(a, b)
        await request_accept(ids[(i + 7) % users], ids[(i + 5) % users])
        await update(i)
    out: list[dict[str, Any]] = []
    modes: list[Any] = ["locked", "checked"] if compare else [None]
    if alternate is not None:
        modes = ["before", "after"]
    for name, requests, run in cases:
        if ops is not None and name.split()[0] not in ops:
            continue
        calls = requests if name != "FR" else requests // 2
        per = requests // calls
        backends: list[int] = []
        if admin is not None:
            backends = [
                r[0]
                for r in await admin.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            ]
        # --compare: blocks of calls in turn with the pair checked at the write (this
        # tree's PostgreSQL path) and locked first (its fallback, the path before 0053).
        blocks = 10 if compare or alternate else 1
        totals = {m: [0.0, 0.0, 0.0, 0, 0, 0] for m in modes}
        kinds: dict[Any, collections.Counter[str]] = {m: collections.Counter() for m in modes}
        for k in range(blocks * len(modes)):
            mode = modes[k % len(modes)]
            lo = calls * k // (blocks * len(modes))
            hi = calls * (k + 1) // (blocks * len(modes))
            if alternate is not None:
                # --alternate: the database set up as before or after, in turns.
                assert admin is not None
                await admin.execute(alternate[0] if mode == "before" else alternate[1])
            elif mode is not None:
                SqlEdgeRepository.checks_pairs = property(  # type: ignore[method-assign]
                    checks if mode == "checked" else lambda _self: False
                )
            with counting(engine) as statements:
                trips.n = 0
                db0 = _proc_cpu(backends)
                cpu0, t0 = time.process_time(), time.perf_counter()
                for i in range(lo, hi):
                    await run(i)
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
                db_cpu = _proc_cpu(backends) - db0
            real = [s for s in statements if not s.startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
            t = totals[mode]
            t[0] += cpu
            t[1] += db_cpu
            t[2] += wall
            t[3] += len(real)
            t[4] += trips.n
            t[5] += (hi - lo) * per
            kinds[mode].update(" ".join(x.split())[:60] for x in real)
        if compare:
            SqlEdgeRepository.checks_pairs = property(checks)  # type: ignore[method-assign]
        for mode in modes:
            cpu, db_cpu, wall, n_statements, n_trips, done = totals[mode]
            row = {
                "op": name,
                "path": mode,
                "requests": done,
                "statements": round(n_statements / done, 2),
                "round_trips": round(n_trips / done, 2),
                "cpu_us": round(cpu / done * 1e6),
                "db_us": round(db_cpu / done * 1e6) if admin is not None else None,
                "wall_us": round(wall / done * 1e6),
            }
            out.append(row)
            print(json.dumps(row), file=sys.stderr)
            if os.environ.get("WRITE_COST_STATEMENTS"):
                for text, k in kinds[mode].most_common(12):
                    print(f"   {k / done:6.2f}  {text}", file=sys.stderr)
    if admin is not None:
        await admin.close()
    for stop in c.on_stop:
        await stop()
    await wiring.database.dispose()
    return out


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text(json.dumps(rows, indent=1) + "\n")


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--writes", type=int, default=2000, help="writes of each kind")
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--postgres", default="", help="PostgreSQL server URL (a database is made)")
    p.add_argument("--redis", default="", help="Redis URL for the cache (with --postgres)")
    p.add_argument("--out", default="", help="also write the rows (JSON) to this file")
    p.add_argument("--ops", default="", help="only these (comma-separated: FO,UF,FR,E)")
    p.add_argument(
        "--compare",
        action="store_true",
        help="PostgreSQL: each write's checked path and its locked one (the path before "
        "decision 0053), in turns, in this one process",
    )
    p.add_argument(
        "--alternate",
        nargs=2,
        metavar=("BEFORE_SQL", "AFTER_SQL"),
        help="PostgreSQL: blocks of each write in turns, the first statement run (by "
        "another connection) before the blocks marked before, the second before the "
        "others: a change of the database's side measured in one process and window",
    )
    ns = p.parse_args()
    if ns.alternate and not ns.postgres:
        p.error("--alternate needs --postgres")
    if ns.compare and checks is None:
        p.error("--compare: this tree has one path only")
    ops = set(ns.ops.split(",")) if ns.ops else None
    if ns.postgres:
        name = f"socius_write_cost_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(ns.postgres)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = ns.postgres.rsplit("/", 1)[0] + "/" + name
            extra: dict[str, Any] = {"database_url": url}
            if ns.redis:
                extra |= {"redis_url": ns.redis, "redis_prefix": f"{name}:"}
            rows = await measure(
                extra,
                ns.writes,
                ns.users,
                url,
                ops,
                compare=ns.compare,
                alternate=tuple(ns.alternate) if ns.alternate else None,
            )
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            rows = await measure({"data_dir": tmp}, ns.writes, ns.users, None, ops)
    print(json.dumps(rows, indent=1))
    if ns.out:
        _write(Path(ns.out), rows)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
