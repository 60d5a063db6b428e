"""Send-path micro-benchmark: SQL statements, CPU and time per message sent, by size.

    .venv/bin/python bench/send_cost.py                       # SQLite, in-process parts
    .venv/bin/python bench/send_cost.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

``MessagingService.send`` is called in this process (no HTTP, no WebSocket readers): the
figure is the cost of a send below the API: validation, the transaction, the per-member
event logs, the publish onto the in-process bus, and the per-user send limit (one cache
round trip; ``--no-send-limit`` leaves it out, to see what it costs). ``--concurrency N``
gathers N sends at a time (from the members in turn), which then share transactions
(group commit, decision 0011): statements and CPU per send fall with N. With ``--postgres`` a
fresh database is created and dropped; PostgreSQL's own CPU is not in the figure (its
statements are). ``--thread`` sends every message as a reply in one thread (docs/threads.md):
the difference is what keeping the root's summary and the senders' pointers costs. Sends
are sequential by default: this is cost, not throughput (W2 measures it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from typing import Any

import asyncpg

from bench.harness.statements import counting
from socius.bootstrap import build
from socius.services.auth import ClientInfo
from socius.settings import load_settings
from socius.storage.migrate import upgrade

PASSWORD = "send-cost bench password 1"  # noqa: S105 (throwaway accounts)


async def measure(
    settings_overrides: dict[str, Any],
    sizes: list[int],
    sends: int,
    concurrency: int = 1,
    thread: bool = False,
) -> list[dict]:
    settings = load_settings(
        {},
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        log_json=False,
        log_level="warning",
        # One sender posts hundreds of messages in a row: the per-user limit runs on each
        # (its cost is in the figure) but never refuses; --no-send-limit leaves it out.
        **{"limit_messages": 1_000_000_000, **settings_overrides},
    )
    await upgrade(settings.effective_database_url)
    wiring = build(settings)
    services = wiring.container
    for start in services.on_start:
        await start()
    engine = wiring.database.primary.sync_engine
    client = ClientInfo(ip="127.0.0.1", user_agent="send-cost")
    ids = []
    for i in range(max(sizes)):
        issued = await services.accounts.register(
            f"s{secrets.token_hex(4)}{i}", PASSWORD, email=None, display_name=None, client=client
        )
        ids.append(issued.user.id)
    out: list[dict[str, Any]] = []
    for size in sizes:
        if size == 2:
            view, _ = await services.messaging.open_direct(ids[0], ids[1])
        else:
            view = await services.messaging.create_group(ids[0], f"g{size}", ids[1:size])
        cid = view.conversation.id
        root_id = None
        if thread:
            root, _ = await services.messaging.send(
                ids[0], cid, client_msg_id=f"root{size}", body="topic", reply_to=None
            )
            root_id = root.id

        async def send(
            n: int, tag: str, cid: int = cid, size: int = size, root_id: int | None = root_id
        ) -> None:
            for start in range(0, n, concurrency):
                done = await asyncio.gather(
                    *(
                        services.messaging.send(
                            ids[k % size],
                            cid,
                            client_msg_id=f"{tag}-{k}",
                            body="hello there",
                            reply_to=None,
                            thread_root_id=root_id,
                        )
                        for k in range(start, min(n, start + concurrency))
                    )
                )
                assert all(created for _, created in done)

        await send(20, f"warm{size}")
        with counting(engine) as statements:
            cpu0, t0 = time.process_time(), time.perf_counter()
            await send(sends, f"m{size}")
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        per = [s for s in statements if not s.startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
        row = {
            "members": size,
            "sends": sends,
            "concurrency": concurrency,
            "thread": thread,
            "statements_per_send": round(len(per) / sends, 2),
            "cpu_us_per_send": round(cpu / sends * 1e6),
            "wall_us_per_send": round(wall / sends * 1e6),
        }
        out.append(row)
        print(json.dumps(row), file=sys.stderr)
    for stop in services.on_stop:
        await stop()
    return out


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2,5,50", help="conversation sizes (2 = direct)")
    p.add_argument("--sends", type=int, default=300)
    p.add_argument("--postgres", default="", help="PostgreSQL server URL (a database is made)")
    p.add_argument("--redis", default="", help="Redis URL for the cache (with --postgres)")
    p.add_argument("--no-send-limit", action="store_true", help="turn the per-user send limit off")
    p.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="sends gathered at once (from the members in turn): they share transactions "
        "(group commit, decision 0011)",
    )
    p.add_argument("--thread", action="store_true", help="every send a reply in one thread")
    ns = p.parse_args()
    sizes = [int(s) for s in ns.sizes.split(",")]
    limit: dict[str, Any] = {"limit_messages": 0} if ns.no_send_limit else {}
    if ns.postgres:
        name = f"socius_send_cost_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(ns.postgres)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = ns.postgres.rsplit("/", 1)[0] + "/" + name
            extra: dict[str, Any] = {"database_url": url, **limit}
            if ns.redis:
                extra |= {"redis_url": ns.redis, "redis_prefix": f"{name}:"}
            rows = await measure(extra, sizes, ns.sends, ns.concurrency, ns.thread)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            rows = await measure(
                {"data_dir": tmp, **limit}, sizes, ns.sends, ns.concurrency, ns.thread
            )
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
