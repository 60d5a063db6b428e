"""EXPLAIN (ANALYZE, BUFFERS) of the edges reads that ``ix_edges_src_type_pos`` serves, on a
copy of the W1 seed (decision 0051).

    psql -c 'CREATE DATABASE w1_explain TEMPLATE socius_w1_seed_<key>'
    .venv/bin/python bench/edges_index_explain.py postgresql:///w1_explain LABEL  # a local copy

For 200 users with friends (a fixed sample): a list's first page and a later page (the
statements of ``SqlEdgeRepository``), and the suggestion refresher's two statements
(newest friends with degrees for 50 viewers at once, then each viewer's second degree),
with the refresher's parameters (``services/suggestions.py``). Each statement runs twice;
the second (warm) round's shared buffers (hit + read) and execution times are summed. JIT
is off, as the refresher's statements stay below its cost threshold.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from typing import Any

import asyncpg

from socius.domain.graph import EdgeType
from socius.services.suggestions import _EXCLUDED, FANOUT, KEEP
from socius.storage import edges
from socius.storage.driver import numbered

USERS = 200
BATCH = 50
FRIEND = int(EdgeType.FRIEND)


async def _explain(conn: asyncpg.Connection, sql: str, *args: Any) -> tuple[int, float]:
    text = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
    plan = json.loads(text)[0]
    top = plan["Plan"]
    return top["Shared Hit Blocks"] + top["Shared Read Blocks"], plan["Execution Time"]


async def _round(conn: asyncpg.Connection, users: list[int]) -> dict[str, list[float]]:
    totals: dict[str, list[float]] = {}

    async def add(name: str, sql: str, *args: Any) -> None:
        buffers, ms = await _explain(conn, sql, *args)
        total = totals.setdefault(name, [0, 0.0])
        total[0] += buffers
        total[1] += ms

    excluded = sorted(int(t) for t in _EXCLUDED)
    for user in users:
        await add("list_first", numbered(edges._RANGE), user, FRIEND, 51)
        pos = await conn.fetchval(
            "SELECT pos FROM edges WHERE src = $1 AND type = $2 ORDER BY pos DESC LIMIT 1 "
            "OFFSET 10",
            user,
            FRIEND,
        )
        if pos is not None:
            await add("list_before", numbered(edges._RANGE_BEFORE), user, FRIEND, pos, 51)
    for i in range(0, len(users), BATCH):
        viewers = users[i : i + BATCH]
        newest = edges._FRIENDS_WITH_DEGREE_PG
        await add("refresh_friends", newest, viewers, FRIEND, FANOUT)
        weighted: dict[int, tuple[list[int], list[float]]] = {}
        for viewer, friend, degree in await conn.fetch(newest, viewers, FRIEND, FANOUT):
            dsts, wts = weighted.setdefault(viewer, ([], []))
            dsts.append(friend)
            wts.append(1.0 / math.log(max(degree, 2)))
        for viewer, (dsts, wts) in weighted.items():
            await add(
                "refresh_second_degree",
                edges._SECOND_DEGREE_PG,
                dsts,
                wts,
                FRIEND,
                FANOUT - 1,
                viewer,
                KEEP * 2,
                excluded,
                KEEP,
            )
    return totals


async def main(url: str, label: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET jit = off")
        users = [
            r[0]
            for r in await conn.fetch(
                "SELECT src FROM edge_counts WHERE type = $1 AND count > 0 "
                "ORDER BY hashint8(src) LIMIT $2",
                FRIEND,
                USERS,
            )
        ]
        await _round(conn, users)  # cold
        totals = await _round(conn, users)
        indexes = await conn.fetch(
            "SELECT indexdef, pg_relation_size(indexname::regclass) FROM pg_indexes "
            "WHERE tablename = 'edges' ORDER BY indexname"
        )
    finally:
        await conn.close()
    report = {
        "label": label,
        "users": USERS,
        "statements": {
            name: {"buffers": int(b), "execution_ms": round(ms, 1)}
            for name, (b, ms) in totals.items()
        },
        "indexes": [{"definition": d, "mib": round(size / 2**20, 1)} for d, size in indexes],
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
