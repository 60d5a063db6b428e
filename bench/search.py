"""Message search: latency (p50/p99) of GET /v1/search/messages over 1 M messages.

    flock /tmp/socius-cpu.lock .venv/bin/python -m bench.search
    flock /tmp/socius-cpu.lock .venv/bin/python -m bench.search --stack postgres

The harness's stack, server and statistics. The database is migrated by the real
migrations (so the search index and its triggers are the ones in production), then
``--messages`` messages are loaded straight into it, not over HTTP: SQLite ``executemany``
in one transaction, PostgreSQL asyncpg ``copy_records_to_table`` with the GIN index built
after the COPY (as ``w1_seed`` does with its indexes). The triggers run for every row, so
the load also measures what indexing costs per message (``load``).

Corpus (fixed RNG seed): ``--conversations`` conversations, the searching user a member of
``--mine`` of them, holding ``--mine-share`` of the messages; every body 6-18 words drawn
from a ``--vocabulary``-word Zipf distribution (exponent 1: word ``w0`` is in most
messages, like "the"), so query shapes span the range:

- ``common``: ``w0`` (in ~70% of all messages), ``medium``: ``w50`` (~2%),
  ``rare``: ``w5000`` (~0.02%), ``two_words``: ``w10 w200`` (both), ``in_conversation``:
  ``w10`` in one of the searcher's conversations, ``no_match``: a word never written.

Each shape is queried over HTTP by ``--concurrency`` clients for ``--seconds`` (after a
warm-up), first page of 20; p50/p99 of the round trip, and every non-200 counted as an
error. The floor is the same query in process, straight through
``socius.storage.search.SqlSearchRepository`` on one connection (no HTTP, no service):
p50 of the database's own work, and the ratio of HTTP p50 to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.harness.machine import machine_info
from bench.harness.server import ServerProcess, free_port
from bench.harness.stack import fresh_stack
from bench.harness.stats import percentiles_ms
from socius.storage.engine import make_engine
from socius.storage.migrate import upgrade
from socius.storage.search import SqlSearchRepository

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PASSWORD = "correct horse battery staple"  # noqa: S105 (a bench account's)
PAGE = 20
CHUNK = 20_000
ID_BASE = 1 << 50  # message and conversation ids far from the app's own
MESSAGE_COLUMNS = [
    "id",
    "conversation_id",
    "seq",
    "sender_id",
    "client_msg_id",
    "body",
    "created_at",
]


def _shapes(mine_cid: int) -> dict[str, dict[str, Any]]:
    return {
        "common": {"q": "w0"},
        "medium": {"q": "w50"},
        "rare": {"q": "w5000"},
        "two_words": {"q": "w10 w200"},
        "in_conversation": {"q": "w10", "conversation_id": mine_cid},
        "no_match": {"q": "neverwritten"},
    }


# -- the corpus ------------------------------------------------------------------------------


class Corpus:
    """Who is in which conversation, and the messages, generated once per run."""

    def __init__(self, args: argparse.Namespace, searcher: int) -> None:
        rng = np.random.default_rng(20261204)
        self.searcher = searcher
        self.cids = [ID_BASE + c for c in range(args.conversations)]
        self.mine = self.cids[: args.mine]
        n = args.messages
        # A conversation per message: the searcher's share over theirs, the rest elsewhere.
        in_mine = rng.random(n) < args.mine_share
        conv = np.where(
            in_mine,
            rng.integers(0, args.mine, n),
            rng.integers(args.mine, args.conversations, n),
        )
        self.conv = conv
        ranks = np.arange(1, args.vocabulary + 1, dtype=np.float64)
        p = 1.0 / ranks
        p /= p.sum()
        lengths = rng.integers(6, 19, n)
        words = rng.choice(args.vocabulary, size=int(lengths.sum()), p=p)
        ends = np.cumsum(lengths)
        vocab = [f"w{k}" for k in range(args.vocabulary)]
        text = [vocab[w] for w in words.tolist()]
        starts = ends - lengths
        self.bodies = [
            " ".join(text[s:e]) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
        self.n = n

    def member_rows(self) -> list[tuple[int, int]]:
        """(conversation, user): the searcher and one other in theirs; two others elsewhere."""
        rows = [(c, self.searcher) for c in self.mine]
        rows += [(c, ID_BASE + 10_000_000 + i) for i, c in enumerate(self.cids)]
        rows += [(c, ID_BASE + 20_000_000 + i) for i, c in enumerate(self.cids[len(self.mine) :])]
        return rows

    def message_rows(self, start: datetime) -> tuple[list[list[Any]], dict[int, int]]:
        """The rows in ``MESSAGE_COLUMNS`` order (``created_at`` as datetimes), and each
        conversation's last seq."""
        seqs: dict[int, int] = {}
        rows: list[list[Any]] = []
        step = timedelta(days=30) / max(self.n, 1)
        for i, (c, body) in enumerate(zip(self.conv.tolist(), self.bodies, strict=True)):
            cid = self.cids[c]
            seq = seqs[cid] = seqs.get(cid, 0) + 1
            sender = self.searcher if c < len(self.mine) and i % 2 else ID_BASE + 10_000_000 + c
            rows.append([ID_BASE + i, cid, seq, sender, f"b{i}", body, start + step * i])
        return rows, seqs


def _conversation_rows(corpus: Corpus, when: Any, seqs: dict[int, int]) -> list[list[Any]]:
    """``when``: a datetime (PostgreSQL) or SQLite's timestamp text."""
    return [
        [cid, "group", "bench", corpus.searcher, None, None, seqs.get(cid, 0), 2, when, when, when]
        for cid in corpus.cids
    ]


CONVERSATION_COLUMNS = [
    "id",
    "kind",
    "title",
    "owner_id",
    "direct_key",
    "message_ttl_seconds",
    "last_seq",
    "member_count",
    "last_message_at",
    "created_at",
    "updated_at",
]
MEMBER_COLUMNS = ["conversation_id", "user_id", "role", "joined_at", "last_read_seq", "muted"]


def _sqlite_text(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _load_sqlite(path: Path, corpus: Corpus) -> dict[str, float]:
    start = datetime.now(UTC) - timedelta(days=31)
    rows, seqs = corpus.message_rows(start)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-500000")
        db.execute("BEGIN")
        t = time.perf_counter()
        marks = ",".join("?" * len(MESSAGE_COLUMNS))
        sql = f"INSERT INTO messages ({','.join(MESSAGE_COLUMNS)}) VALUES ({marks})"  # noqa: S608 (constants)
        for s in range(0, len(rows), CHUNK):
            db.executemany(sql, [[*r[:-1], _sqlite_text(r[-1])] for r in rows[s : s + CHUNK]])
        messages_s = time.perf_counter() - t
        when = _sqlite_text(start)
        db.executemany(
            f"INSERT INTO conversations ({','.join(CONVERSATION_COLUMNS)}) "  # noqa: S608
            f"VALUES ({','.join('?' * len(CONVERSATION_COLUMNS))})",
            _conversation_rows(corpus, when, seqs),
        )
        db.executemany(
            f"INSERT INTO members ({','.join(MEMBER_COLUMNS)}) VALUES (?,?,?,?,?,?)",  # noqa: S608
            [(c, u, "member", when, 0, 0) for c, u in corpus.member_rows()],
        )
        db.execute("COMMIT")
        t2 = time.perf_counter()
        db.execute("ANALYZE")
        return {"messages_s": round(messages_s, 1), "analyze_s": round(time.perf_counter() - t2, 1)}
    finally:
        db.close()


async def _load_postgres(url: str, corpus: Corpus) -> dict[str, float]:
    import asyncpg

    start = datetime.now(UTC) - timedelta(days=31)
    rows, seqs = corpus.message_rows(start)
    conn = await asyncpg.connect(url)
    try:
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_messages_search_vector'"
        )
        await conn.execute("DROP INDEX ix_messages_search_vector")
        t = time.perf_counter()
        # The trigger computes every row's vector during the COPY.
        for s in range(0, len(rows), CHUNK * 5):
            await conn.copy_records_to_table(
                "messages", records=rows[s : s + CHUNK * 5], columns=MESSAGE_COLUMNS
            )
        messages_s = time.perf_counter() - t
        t = time.perf_counter()
        await conn.execute(index)
        index_s = time.perf_counter() - t
        await conn.copy_records_to_table(
            "conversations",
            records=[tuple(r) for r in _conversation_rows(corpus, start, seqs)],
            columns=CONVERSATION_COLUMNS,
        )
        await conn.copy_records_to_table(
            "members",
            records=[(c, u, "member", start, 0, False) for c, u in corpus.member_rows()],
            columns=MEMBER_COLUMNS,
        )
        t = time.perf_counter()
        await conn.execute("VACUUM ANALYZE messages")
        await conn.execute("ANALYZE members")
        return {
            "messages_s": round(messages_s, 1),
            "gin_index_s": round(index_s, 1),
            "vacuum_analyze_s": round(time.perf_counter() - t, 1),
        }
    finally:
        await conn.close()


# -- measuring -------------------------------------------------------------------------------


async def _http_shape(
    base: str, token: str, params: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    query = {**params, "limit": PAGE}
    latencies: list[float] = []
    errors = 0
    items = 0
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as http:
        for _ in range(args.warmup):
            await http.get("/v1/search/messages", params=query)
        deadline = time.monotonic() + args.seconds

        async def client() -> None:
            nonlocal errors, items
            while time.monotonic() < deadline:
                t = time.perf_counter()
                r = await http.get("/v1/search/messages", params=query)
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200:
                    errors += 1
                else:
                    items = len(r.json()["items"])

        await asyncio.gather(*(client() for _ in range(args.concurrency)))
    return {
        "requests": len(latencies),
        "errors": errors,
        "page_items": items,
        "rate_per_s": round(len(latencies) / args.seconds, 1),
        "latency_ms": {k: round(v, 2) for k, v in percentiles_ms(latencies).items()},
    }


async def _floor_shape(url: str, searcher: int, params: dict[str, Any], n: int) -> dict[str, Any]:
    engine = make_engine(url, pool_size=1)
    words = str(params["q"]).split()
    latencies: list[float] = []
    try:
        async with engine.connect() as conn:
            repo = SqlSearchRepository(conn)
            for i in range(n + 2):
                t = time.perf_counter()
                await repo.messages(
                    searcher,
                    words,
                    conversation_id=params.get("conversation_id"),
                    now=datetime.now(UTC),
                    limit=PAGE + 1,
                    offset=0,
                )
                if i >= 2:  # the first two warm the connection and the cache
                    latencies.append(time.perf_counter() - t)
            await conn.rollback()
    finally:
        await engine.dispose()
    return {k: round(v, 2) for k, v in percentiles_ms(latencies).items()}


def _matches(corpus: Corpus, shapes: dict[str, dict[str, Any]]) -> dict[str, int]:
    """How many messages each shape matches, all conversations and the searcher's (from
    the generated bodies, not the index)."""
    mine = set(range(len(corpus.mine)))
    found: dict[str, int] = {}
    conv = corpus.conv.tolist()
    for name, params in shapes.items():
        words = set(str(params["q"]).split())
        only = params.get("conversation_id")
        total = visible = 0
        for c, body in zip(conv, corpus.bodies, strict=True):
            if words <= set(body.split()):
                total += 1
                if c in mine and (only is None or corpus.cids[c] == only):
                    visible += 1
        found[f"{name}_all"] = total
        found[f"{name}_visible"] = visible
    return found


async def main(args: argparse.Namespace) -> int:
    workdir = RESULTS / "tmp" / f"search-{int(time.time())}"
    record: dict[str, Any] = {"benchmark": "search", "stack": args.stack, "args": vars(args)}
    async with fresh_stack(
        args.stack,
        workdir,
        postgres_admin_url=args.postgres_url,
        redis_url=args.redis_url,
        tag="search",
    ) as stack:
        url = stack.database_url or f"sqlite:///{stack.sqlite_path}"
        await upgrade(url)
        env = {**stack.settings_env(), "SOCIUS_LOG_LEVEL": "warning"}
        server = _server(env, workdir)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
                r = await http.post(
                    "/v1/auth/register",
                    json={"username": f"srch_{hex(time.time_ns())[-6:]}", "password": PASSWORD},
                )
                r.raise_for_status()
                token = r.json()["access_token"]
                searcher = int(r.json()["user"]["id"])
        finally:
            await server.stop()

        t = time.perf_counter()
        corpus = Corpus(args, searcher)
        record["generate_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        if args.stack == "postgres":
            timings = await _load_postgres(stack.database_url, corpus)
        else:
            timings = await asyncio.to_thread(_load_sqlite, stack.sqlite_path, corpus)
        load_s = time.perf_counter() - t
        record["load"] = {
            **timings,
            "total_s": round(load_s, 1),
            "messages_per_s": round(args.messages / timings["messages_s"]),
        }
        print(json.dumps({"load": record["load"]}), flush=True)
        shapes = _shapes(corpus.mine[0])
        record["matches"] = _matches(corpus, shapes)

        server = _server(env, workdir)
        await server.start()
        results: dict[str, Any] = {}
        try:
            for name, params in shapes.items():
                results[name] = await _http_shape(server.base_url, token, params, args)
                print(name, json.dumps(results[name]), flush=True)
        finally:
            await server.stop()
        for name, params in shapes.items():
            floor = await _floor_shape(url, searcher, params, args.floor_queries)
            p50 = results[name]["latency_ms"].get("p50", float("nan"))
            results[name]["floor_ms"] = floor
            results[name]["ratio_p50_to_floor"] = round(p50 / floor["p50"], 2)
        record["stack_info"] = stack.info

    errors = sum(r["errors"] for r in results.values())
    record.update(
        {
            "machine": machine_info(ROOT),
            "summary": {
                n: {
                    "p50_ms": r["latency_ms"].get("p50"),
                    "p99_ms": r["latency_ms"].get("p99"),
                    "floor_p50_ms": r["floor_ms"].get("p50"),
                    "ratio_p50_to_floor": r["ratio_p50_to_floor"],
                    "requests": r["requests"],
                }
                for n, r in results.items()
            },
            "errors": errors,
            "shapes": results,
        }
    )
    await asyncio.to_thread(RESULTS.mkdir, parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = RESULTS / f"search-{args.stack}-{stamp}.json"
    await asyncio.to_thread(out.write_text, json.dumps(record, indent=2) + "\n")
    print(json.dumps({"summary": record["summary"], "errors": errors}, indent=2))
    print(f"wrote {out.relative_to(RESULTS.parent.parent)}")
    return 0 if errors == 0 else 1


def _server(env: dict[str, str], workdir: Path) -> ServerProcess:
    return ServerProcess(env, port=free_port(), workers=1, log_path=workdir / "server.log")


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stack", choices=["embedded", "postgres"], default="embedded")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--mine", type=int, default=20, help="conversations the searcher is in")
    parser.add_argument("--mine-share", type=float, default=0.05, help="their share of messages")
    parser.add_argument("--vocabulary", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=8.0, help="of load per query shape")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--floor-queries", type=int, default=20)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(_args(sys.argv[1:]))))
