"""Sample what PostgreSQL's client backends of the bench databases are doing, every 20 ms.

    .venv/bin/python bench/pg_waits.py OUT.jsonl [DATABASE_PREFIX] [--url URL]

Run beside a bench (under the same benchmark lock): one JSON line per second with the
count of samples per ``state|wait_event_type:wait_event|query`` (idle backends left
out), e.g. ``idle in transaction|Client:ClientRead|...`` (the backend waits for the
worker inside a transaction) or ``active|Lock:transactionid|...`` (it waits for another
transaction's row lock). Decision 0055 read the send groups' waits this way.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time

import asyncpg

SQL = (
    "SELECT state, wait_event_type, wait_event, left(query, 48) AS q FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname LIKE $1"
)


async def sample(out: str, prefix: str, url: str) -> None:
    conn = await asyncpg.connect(url)
    counts: collections.Counter[str] = collections.Counter()
    began, n = time.time(), 0
    with open(out, "a", buffering=1) as f:  # noqa: ASYNC230 (a bench tool: a line a second)
        while True:
            n += 1
            for r in await conn.fetch(SQL, prefix + "%"):
                if r["state"] != "idle":
                    key = f"{r['state']}|{r['wait_event_type']}:{r['wait_event']}|{r['q']}"
                    counts[key.replace("\n", " ")] += 1
            if time.time() - began >= 1.0:
                f.write(json.dumps({"t": time.time(), "samples": n, "counts": counts}) + "\n")
                counts, began, n = collections.Counter(), time.time(), 0
            await asyncio.sleep(0.02)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("prefix", nargs="?", default="socius_bench_")
    p.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ns = p.parse_args()
    asyncio.run(sample(ns.out, ns.prefix, ns.url))


if __name__ == "__main__":
    main()
