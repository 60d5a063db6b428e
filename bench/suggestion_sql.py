"""The refresher's friends-of-friends statements on SQLite, alone, on W1's seeded graph
(decision 0048): CPU per list of the statement as it is, of two cheaper-looking
alternatives, and with the file read through a memory map.

Run after a W1 embedded bench has seeded ``bench/results/tmp/w1-seed-cache/`` (read only):

    flock /tmp/socius-cpu.lock .venv/bin/python -m bench.suggestion_sql [--lists 200]

Variants, each over the same random users, twice (a first pass and a warm one):

- ``as is``: ``newest_with_degree`` then ``_second_degree_direct`` (the refresher's two
  statements per list);
- ``split``: friends of degree <= FANOUT read through the covering primary key instead of
  the ``pos`` index (no table lookups for them), hubs as before;
- ``python``: each friend's newest FANOUT friends read one statement each and counted in
  Python;
- ``as is + mmap``: the first, with ``PRAGMA mmap_size`` (engine.SQLITE_MMAP).

Prints CPU µs per list (process time) and whether each variant ranks as ``as is`` does.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from socius.domain.graph import EdgeType
from socius.services.suggestions import _EXCLUDED, FANOUT, KEEP
from socius.storage.edges import _NEWEST_WITH_DEGREE, _second_degree_direct
from socius.storage.engine import SQLITE_MMAP

CACHE = Path(__file__).parent / "results" / "tmp" / "w1-seed-cache"
T = int(EdgeType.FRIEND)
EXCLUDED = sorted(int(t) for t in _EXCLUDED)
NEWEST = "SELECT dst FROM edges WHERE src = ? AND type = ? ORDER BY pos DESC, dst DESC LIMIT ?"
Row = tuple[int, int, float]


def _friends(db: sqlite3.Connection, v: int) -> list[tuple[int, int, float]]:
    rows = db.execute(_NEWEST_WITH_DEGREE, (T, v, T, FANOUT)).fetchall()
    return [(d, int(c), 1.0 / math.log(max(int(c) if s == "active" else 2, 2))) for d, s, c in rows]


def as_is(db: sqlite3.Connection, v: int) -> list[Row]:
    fr = _friends(db, v)
    if not fr:
        return []
    args: list[Any] = [x for d, _, w in fr for x in (d, w)]
    args += [T, T, FANOUT - 1, -(1 << 63), v, KEEP * 2, v, *EXCLUDED, KEEP]
    return db.execute(_second_degree_direct(len(fr), len(EXCLUDED)), args).fetchall()


def _split_sql(n: int) -> str:
    weighted = ", ".join("(?, ?, ?)" for _ in range(n))
    types = ", ".join("?" * len(EXCLUDED))
    return f"""
        WITH w(f, wt, small) AS (VALUES {weighted}),
        fof(candidate, wt) AS (
            SELECT e.dst, w.wt FROM w JOIN edges e INDEXED BY sqlite_autoindex_edges_1
                ON e.src = w.f AND e.type = ? WHERE w.small
            UNION ALL
            SELECT e.dst, w.wt FROM w JOIN edges e INDEXED BY ix_edges_src_type_pos
                ON e.src = w.f AND e.type = ? AND e.pos >= COALESCE(
                (SELECT k.pos FROM edges k WHERE k.src = w.f AND k.type = ?
                 ORDER BY k.pos DESC LIMIT 1 OFFSET ?), ?) WHERE NOT w.small
        ),
        ranked AS (
            SELECT candidate, COUNT(*) AS mutual, SUM(wt) AS score FROM fof
            WHERE candidate <> ? AND candidate NOT IN (SELECT f FROM w)
            GROUP BY candidate ORDER BY score DESC, mutual DESC, candidate LIMIT ?
        )
        SELECT candidate, mutual, score FROM ranked
        WHERE NOT EXISTS (SELECT 1 FROM edges r
                          WHERE r.src = ? AND r.type IN ({types}) AND r.dst = ranked.candidate)
        ORDER BY score DESC, mutual DESC, candidate LIMIT ?
        """  # noqa: S608 (placeholders only)


def split(db: sqlite3.Connection, v: int) -> list[Row]:
    fr = _friends(db, v)
    if not fr:
        return []
    args: list[Any] = [x for d, c, w in fr for x in (d, w, c <= FANOUT)]
    args += [T, T, T, FANOUT - 1, -(1 << 63), v, KEEP * 2, v, *EXCLUDED, KEEP]
    return db.execute(_split_sql(len(fr)), args).fetchall()


def python(db: sqlite3.Connection, v: int) -> list[Row]:
    fr = _friends(db, v)
    friends = {f for f, _, _ in fr}
    mutual: dict[int, int] = {}
    score: dict[int, float] = {}
    for f, _, w in fr:
        for (c,) in db.execute(NEWEST, (f, T, FANOUT)):
            if c in friends or c == v:
                continue
            mutual[c] = mutual.get(c, 0) + 1
            score[c] = score.get(c, 0.0) + w
    ranked = sorted(score, key=lambda c: (-score[c], -mutual[c], c))[: KEEP * 2]
    if ranked:
        marks = ", ".join("?" * len(EXCLUDED))
        q = f"SELECT dst FROM edges WHERE src = ? AND type IN ({marks}) AND dst IN ({', '.join('?' * len(ranked))})"  # noqa: E501, S608
        hidden = {r[0] for r in db.execute(q, [v, *EXCLUDED, *ranked])}
        ranked = [c for c in ranked if c not in hidden]
    return [(c, mutual[c], score[c]) for c in ranked[:KEEP]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lists", type=int, default=200)
    args = parser.parse_args()
    seeds = sorted(CACHE.glob("w1-*.db"))
    assert seeds, f"no seeded W1 database in {CACHE}: run a W1 embedded bench first"
    uri = f"file:{seeds[-1]}?mode=ro"
    probe = sqlite3.connect(uri, uri=True)
    users = [
        r[0] for r in probe.execute("SELECT id FROM users ORDER BY random() LIMIT ?", (args.lists,))
    ]
    reference = {v: as_is(probe, v) for v in users}
    probe.close()
    variants: list[tuple[str, Callable[[sqlite3.Connection, int], list[Row]], list[str]]] = [
        ("as is", as_is, []),
        ("split", split, []),
        ("python", python, []),
        ("as is + mmap", as_is, [SQLITE_MMAP]),
    ]
    print(f"{seeds[-1].name}: {len(users)} random users, CPU µs per list (process time)")
    for name, fn, pragmas in variants:
        db = sqlite3.connect(uri, uri=True)
        db.execute("PRAGMA cache_size=-32000")  # as engine.SQLITE_PRAGMAS
        for p in pragmas:
            db.execute(p)
        passes = []
        same = True
        for _ in range(2):
            t = time.process_time()
            for v in users:
                found = fn(db, v)
                same &= [r[:2] for r in found] == [r[:2] for r in reference[v]]
            passes.append((time.process_time() - t) / len(users) * 1e6)
        db.close()
        print(
            f"  {name:14} first pass {passes[0]:6.0f}  warm {passes[1]:6.0f}  same ranking: {same}"
        )


if __name__ == "__main__":
    main()
