"""Suggestions micro-benchmark: SQL statements and CPU of a suggestion read and of a
friendship change, in process (decision 0028).

    .venv/bin/python bench/suggestion_cost.py                       # SQLite
    .venv/bin/python bench/suggestion_cost.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

A small graph is made through the services (``--users`` users, each befriending
``--degree`` others at random), every user asks for suggestions once, then:

- **read, stored / cold cache**: ``suggest`` after the user's cache entry was dropped;
- **read, warm**: ``suggest`` again (the cache holds the list);
- **friendship change, request path**: a friend request and its accept, as the API calls
  them (the write path and its after-commit work);
- **refresher, per recomputed list**: due lists recomputed in rounds of 1 (the
  refresher behind its budget before decision 0034) or 20;
- **friendship change, off the request path**: what the refresher then spends on it (the
  relay's publish is not counted: it exists for the stream anyway): reading the events,
  making the two lists due, recomputing them. Absent before decision 0028 (the column is
  empty), when the next request of either user recomputed instead: that is the "read,
  recompute" row.

Run against an older tree with ``PYTHONPATH=<export>/src``: the rows the tree has no
refresher for are left out. PostgreSQL's own CPU is not in the figures (its statements
are).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from bench.harness.statements import counting
from socius.bootstrap import build
from socius.services.auth import ClientInfo
from socius.settings import load_settings
from socius.storage.migrate import upgrade

PASSWORD = "suggestion-cost bench password 1"  # noqa: S105 (throwaway accounts)


async def cost(engine: Any, n: int, work: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    with counting(engine, transactions=False) as statements:
        cpu0 = time.process_time()
        await work()
        cpu = time.process_time() - cpu0
    return {"statements": round(len(statements) / n, 2), "cpu_us": round(cpu / n * 1e6)}


async def measure(overrides: dict[str, Any], users: int, degree: int, changes: int) -> dict:
    settings = load_settings(
        {},
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        log_json=False,
        log_level="warning",
        event_relay_in_server=False,  # the refresher runs here, counted, not in background
        limit_friend_requests=0,
        **overrides,
    )
    await upgrade(settings.effective_database_url)
    wiring = build(settings)
    c = wiring.container
    for start in c.on_start:
        await start()
    engine = wiring.database.primary.sync_engine
    rng = random.Random(7)
    ids = []
    for i in range(users):
        # One address per account: registration is throttled per address.
        client = ClientInfo(ip=f"127.1.{i // 250}.{i % 250 + 1}", user_agent="suggestion-cost")
        issued = await c.accounts.register(
            f"g{secrets.token_hex(4)}{i}", PASSWORD, email=None, display_name=None, client=client
        )
        ids.append(issued.user.id)
    pairs: set[tuple[int, int]] = set()
    for a in ids:
        for b in rng.sample(ids, degree):
            if a != b and (b, a) not in pairs:
                pairs.add((a, b))
    for a, b in pairs:
        await c.graph.send_friend_request(a, b)
        await c.graph.accept_friend_request(b, a)
    refresher = getattr(c, "refresher", None)

    async def drain() -> None:
        while await c.relay.run_once():
            pass
        if refresher is not None:
            while await refresher.run_once():
                pass

    await drain()
    for u in ids:  # every user has asked once (and so has a stored list, after 0028)
        await c.suggestions.suggest(u, limit=20)
    sample = ids[: min(200, users)]
    out: dict[str, Any] = {"users": users, "friendships": len(pairs)}

    async def cold() -> None:
        for u in sample:
            await c.suggestions._cache.invalidate(f"s:{u}")
            await c.suggestions.suggest(u, limit=20)

    async def warm() -> None:
        for u in sample:
            await c.suggestions.suggest(u, limit=20)

    # The invalidation is in the figure: it is cache work, no statement.
    out["read, stored (cold cache)" if refresher else "read, recompute (cold cache)"] = await cost(
        engine, len(sample), cold
    )
    await warm()
    out["read, warm"] = await cost(engine, len(sample), warm)

    free = [
        (a, b)
        for a, b in ((rng.choice(ids), rng.choice(ids)) for _ in range(changes * 4))
        if a != b and (a, b) not in pairs and (b, a) not in pairs
    ]
    chosen = list(dict.fromkeys(free))[:changes]

    async def befriend() -> None:
        for a, b in chosen:
            await c.graph.send_friend_request(a, b)
            await c.graph.accept_friend_request(b, a)

    out["friendship change, request path (request + accept)"] = await cost(
        engine, len(chosen), befriend
    )
    if refresher is not None:
        while await c.relay.run_once():
            pass
        refresher._per_second = 1e9
        refresher._tokens = 1e9

        async def refresh() -> None:
            while await refresher.run_once():
                pass

        out["friendship change, refresher (per change: 2 lists)"] = await cost(
            engine, len(chosen), refresh
        )

        # The refresher's cost per recomputed list (decision 0034), its rounds taking
        # ``size`` due lists each: the sample's lists made due, then rounds until none is.
        for size in (1, 20):
            async with c.suggestions._uow() as uow:
                await uow.suggestion_lists.mark_due(sample, at=c.suggestions._clock())
                await uow.commit()
            refresher._batch = size
            refresher._tokens = size
            out[f"refresher, per recomputed list (rounds of {size})"] = await cost(
                engine, len(sample), refresh
            )
    for stop in c.on_stop:
        await stop()
    return out


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--degree", type=int, default=20)
    p.add_argument("--changes", type=int, default=50)
    p.add_argument("--postgres", default="", help="PostgreSQL server URL (a database is made)")
    p.add_argument("--redis", default="", help="Redis URL for the cache (with --postgres)")
    ns = p.parse_args()
    if ns.postgres:
        name = f"socius_suggestion_cost_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(ns.postgres)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            extra: dict[str, Any] = {"database_url": ns.postgres.rsplit("/", 1)[0] + "/" + name}
            if ns.redis:
                extra |= {"redis_url": ns.redis, "redis_prefix": f"{name}:"}
            row = await measure(extra, ns.users, ns.degree, ns.changes)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            row = await measure({"data_dir": tmp}, ns.users, ns.degree, ns.changes)
    print(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
