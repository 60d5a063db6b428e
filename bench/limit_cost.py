"""Per-user limit micro-benchmark: CPU per check of ``RateLimit.check`` (the send limit).

    .venv/bin/python bench/limit_cost.py                      # in-process cache only
    .venv/bin/python bench/limit_cost.py --redis redis://127.0.0.1:6379/0

Measured in this process (the check's client side; Redis's own CPU is not in it):
``lone`` checks one after another (one script call each), ``crowd`` checks ``--crowd`` at
a time as a busy node does (the coalescer sends those arriving together in one call), and,
for scale, ``get``: one plain Redis GET round trip. Never refuses (a huge limit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from collections.abc import Awaitable, Callable

from socius.cache.memory import MemoryCache
from socius.cache.redis import RedisCache
from socius.services.ports import Cache
from socius.services.rate_limits import Buckets, RateLimit


async def cpu_per_call(run: Callable[[int], Awaitable[None]], calls: int, per_run: int) -> float:
    """Microseconds of this process's CPU per call, after a warm-up."""
    for i in range(20):
        await run(i)
    cpu0 = time.process_time()
    for i in range(calls // per_run):
        await run(i)
    return (time.process_time() - cpu0) / calls * 1e6


async def measure(cache: Cache, name: str, calls: int, crowd: int) -> dict[str, object]:
    limit = RateLimit(Buckets(cache), name="messages", count=1_000_000_000, seconds=1)
    users = 1000

    async def lone(i: int) -> None:
        await limit.check(i % users)

    async def together(i: int) -> None:
        await asyncio.gather(*(limit.check((i * crowd + k) % users) for k in range(crowd)))

    row: dict[str, object] = {
        "cache": name,
        "lone_us": round(await cpu_per_call(lone, calls, 1), 1),
        f"crowd{crowd}_us": round(await cpu_per_call(together, calls, crowd), 1),
    }
    if isinstance(cache, RedisCache):

        async def get(i: int) -> None:
            await cache.get(f"k{i % users}")

        row["get_us"] = round(await cpu_per_call(get, calls, 1), 1)
    return row


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis", default="", help="also measure on this Redis")
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--crowd", type=int, default=20, help="checks at once in the crowd case")
    ns = p.parse_args()
    rows = [await measure(MemoryCache(), "memory", ns.calls, ns.crowd)]
    if ns.redis:
        cache = RedisCache(ns.redis, prefix=f"limit-cost-{secrets.token_hex(4)}:")
        try:
            rows.append(await measure(cache, "redis", ns.calls, ns.crowd))
        finally:
            await cache.close()
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(main()))
    sys.exit(uvloop.run(main()))
