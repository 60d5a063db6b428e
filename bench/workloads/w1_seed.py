"""W1 seed: 100,000 users and a power-law social graph, written straight into the database.

Seeding through the HTTP API would spend an argon2 hash per account (tens of ms each), so
the rows go in directly, in the schema of ``socius.storage.tables`` (created by the real
migrations first, ``socius.storage.migrate.upgrade``):

- ``users``: ``w1u000000`` ... ; 10% private; every user shares ONE argon2id hash (default
  cost) of a random password that is thrown away (nobody can log in as a seeded user; the
  hash is never printed or logged);
- ``edges``: both directions of every pair, as the app writes them (``FRIEND`` <->
  ``FRIEND``, ``FOLLOWS`` <-> ``FOLLOWED_BY``, see ``socius.domain.graph.INVERSE``), the
  edge and its inverse sharing one ``pos`` (a socius-style time-ordered id: increasing
  with ``created_at``, all in the past so edges made during the bench sort newer);
- ``edge_counts``: exact counts per (user, type), as the app keeps them.

Graph model (fixed RNG seed, so every run and both stacks get the same graph):

- friend degrees from a bounded Pareto (alpha 1.1, i.e. P(d) ~ d^-2.1, max 5,000), mean 50,
  wired with the configuration model (shuffled stubs paired; self-loops and duplicate
  pairs dropped; one correction pass so the realised mean is 50);
- follows on top: out-degree from a bounded Pareto (alpha 1.5, max 1,000), mean 20;
  whom to follow picked with probability proportional to (friend degree + 1), so followers
  are heavy-tailed too. Follows of private users are stored as approved follows.

Bulk writes: SQLite with ``executemany`` in one big transaction (journal off during the
load, the secondary edge index built after it, WAL switched back on); PostgreSQL with
asyncpg ``copy_records_to_table`` (edge primary key and index dropped during the COPY and
recreated with their exact definitions, then ``VACUUM ANALYZE``, as autovacuum would).

Cache (the seed takes minutes, copying it seconds): the finished SQLite file is kept in
``bench/results/tmp/w1-seed-cache/`` (git-ignored) and each bench run starts from a copy;
on PostgreSQL a template database ``socius_w1_seed_<key>`` is kept and each run's fresh
database is re-created from it (``CREATE DATABASE ... TEMPLATE``). The key hashes the seed
parameters, this file's SEED_VERSION and the migrations' head revision, so a schema change
re-seeds. ``BENCH_W1_RESEED=1`` forces a new seed; ``BENCH_W1_USERS=N`` seeds a smaller
graph (for trying the bench quickly). Drop old templates with ``DROP DATABASE``.

Sessions for the callers are NOT in the cache: each bench run inserts them into its own
copy (see ``insert_sessions``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench.harness.results import RESULTS_DIR
from bench.harness.stack import Stack
from socius.domain.graph import INVERSE, EdgeType
from socius.domain.ids import EPOCH_MS
from socius.services.passwords import PasswordHasher
from socius.settings import load_settings
from socius.storage.migrate import _config, upgrade

__all__ = ["Graph", "SeedParams", "SeedResult", "build_graph", "insert_sessions", "prepare"]

SEED_VERSION = 1
CACHE_DIR = RESULTS_DIR / "tmp" / "w1-seed-cache"
TEMPLATE_PREFIX = "socius_w1_seed_"
SEED_NODE = 1000  # the node bits of every seeded id (the servers pick their own)
USERS_FROM = datetime(2025, 1, 1, tzinfo=UTC)  # user i was created i ms after this
EDGES_FROM = datetime(2025, 2, 1, tzinfo=UTC)  # edges: spread over one year from here
EDGES_SPAN_DAYS = 365
CHUNK = 200_000

FRIEND = int(EdgeType.FRIEND)
FOLLOWS = int(EdgeType.FOLLOWS)
FOLLOWED_BY = int(EdgeType.FOLLOWED_BY)
assert INVERSE[EdgeType.FRIEND] is EdgeType.FRIEND
assert INVERSE[EdgeType.FOLLOWS] is EdgeType.FOLLOWED_BY


@dataclass(frozen=True)
class SeedParams:
    users: int = 100_000
    friend_mean: float = 50.0
    friend_max: int = 5_000
    friend_alpha: float = 1.1  # bounded Pareto shape: P(degree = d) ~ d^-(1 + alpha)
    follow_mean: float = 20.0
    follow_max: int = 1_000
    follow_alpha: float = 1.5
    private_share: float = 0.10
    rng_seed: int = 20_261_121

    @classmethod
    def from_env(cls) -> SeedParams:
        users = int(os.environ.get("BENCH_W1_USERS", "100000"))
        if users < 1000:
            raise ValueError("BENCH_W1_USERS must be >= 1000")
        return cls(users=users, friend_max=min(5_000, users // 20))

    def key(self) -> str:
        text = json.dumps(
            {"params": asdict(self), "version": SEED_VERSION, "schema": seed_schema()},
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def seed_schema() -> str | None:
    """The newest migration that changes what a seed holds: the head, or below the newest
    ones that declare ``keeps_seed = True`` (a function, no table: migration 0022). The
    seed is made at that revision and a run's copy is upgraded past it when the server
    starts (auto-migrate), so those keep the template (re-seeding drops the other seeds,
    shared by every worktree) and a commit before them can still run on it (``--ref``)."""
    from alembic.script import ScriptDirectory

    for script in ScriptDirectory.from_config(_config()).walk_revisions():
        if not getattr(script.module, "keeps_seed", False):
            return script.revision
    return None


# -- the graph (numpy, deterministic) -----------------------------------------------------


def _bounded_pareto(rng: np.random.Generator, n: int, alpha: float, lo: float, hi: float) -> Any:
    u = rng.random(n)
    la, ha = lo**alpha, hi**alpha
    return (-(u * ha - u * la - ha) / (ha * la)) ** (-1.0 / alpha)


def _pareto_mean(alpha: float, lo: float, hi: float) -> float:
    if abs(alpha - 1.0) < 1e-9:
        return hi * lo / (hi - lo) * math.log(hi / lo)
    la: float = lo**alpha
    return float(
        la
        / (1 - (lo / hi) ** alpha)
        * alpha
        / (alpha - 1)
        * (lo ** (1 - alpha) - hi ** (1 - alpha))
    )


def _degrees(rng: np.random.Generator, n: int, alpha: float, mean: float, hi: int) -> Any:
    """Integer degrees >= 1 with the given mean, bounded by `hi` (bisection on the minimum)."""
    lo_min, lo_max = 0.5, float(mean)
    for _ in range(80):
        mid = (lo_min + lo_max) / 2
        if _pareto_mean(alpha, mid, hi + 1) - 0.5 < mean:
            lo_min = mid
        else:
            lo_max = mid
    d = np.floor(_bounded_pareto(rng, n, alpha, (lo_min + lo_max) / 2, hi + 1)).astype(np.int64)
    return np.clip(d, 1, hi)


def _unique_pairs(a: Any, b: Any, n: int, *, undirected: bool) -> tuple[Any, Any]:
    keep = a != b
    a, b = a[keep], b[keep]
    if undirected:
        a, b = np.minimum(a, b), np.maximum(a, b)
    keys = np.unique(a * n + b)
    return keys // n, keys % n


@dataclass
class Graph:
    """The seeded graph by user index (0..n-1); ``ids[i]`` is user i's id."""

    n: int
    ids: Any  # int64[n]
    private: Any  # bool[n]
    friend_a: Any  # int64[pairs], a < b
    friend_b: Any
    friend_pos: Any  # int64[pairs]
    follow_src: Any  # sorted by src
    follow_dst: Any
    follow_pos: Any
    friend_keys: Any  # sorted a*n+b for both directions: membership tests
    follow_ptr: Any  # CSR over follow_src: user i follows follow_dst[ptr[i]:ptr[i+1]]
    friend_deg: Any
    follow_out: Any
    follow_in: Any
    stats: dict[str, Any] = field(default_factory=dict)

    def are_friends(self, a: Any, b: Any) -> Any:
        keys = np.asarray(a, dtype=np.int64) * self.n + np.asarray(b, dtype=np.int64)
        at = np.searchsorted(self.friend_keys, keys)
        at = np.minimum(at, len(self.friend_keys) - 1)
        return self.friend_keys[at] == keys

    def edge_rows(self) -> int:
        return 2 * (len(self.friend_a) + len(self.follow_src))


def build_graph(p: SeedParams) -> Graph:
    t0 = time.perf_counter()
    rng = np.random.default_rng(p.rng_seed)
    n = p.users
    users_ms = int(USERS_FROM.timestamp() * 1000) - EPOCH_MS
    ids = ((users_ms + np.arange(n, dtype=np.int64)) << 22) | (SEED_NODE << 12)
    private = rng.random(n) < p.private_share

    # friendships: configuration model, one pass to correct the mean for dropped pairs
    target = p.friend_mean
    for _attempt in range(2):
        # duplicate pairs fall mostly on the hubs: aim 20% higher so the realised max is ~max
        deg = _degrees(rng, n, p.friend_alpha, target, int(p.friend_max * 1.2))
        stubs = np.repeat(np.arange(n, dtype=np.int64), deg)
        if len(stubs) % 2:
            stubs = stubs[:-1]
        rng.shuffle(stubs)
        fa, fb = _unique_pairs(stubs[0::2], stubs[1::2], n, undirected=True)
        realised = 2 * len(fa) / n
        if abs(realised - p.friend_mean) / p.friend_mean < 0.01:
            break
        target *= p.friend_mean / realised
    friend_deg = np.bincount(np.concatenate([fa, fb]), minlength=n)

    # follows: out-degree power law, targets by popularity (friend degree + 1)
    weight = (friend_deg + 1).astype(np.float64)
    cdf = np.cumsum(weight / weight.sum())
    target = p.follow_mean
    for _attempt in range(2):
        out = _degrees(rng, n, p.follow_alpha, target, p.follow_max)
        src = np.repeat(np.arange(n, dtype=np.int64), out)
        dst = np.minimum(np.searchsorted(cdf, rng.random(len(src)), side="right"), n - 1)
        ws, wd = _unique_pairs(src, dst.astype(np.int64), n, undirected=False)
        realised = len(ws) / n
        if abs(realised - p.follow_mean) / p.follow_mean < 0.01:
            break
        target *= p.follow_mean / realised
    follow_out = np.bincount(ws, minlength=n)
    follow_in = np.bincount(wd, minlength=n)

    # positions: every pair gets a creation time in the EDGES_SPAN; pos increases with it
    pairs = len(fa) + len(ws)
    span_ms = EDGES_SPAN_DAYS * 86_400_000
    start_ms = int(EDGES_FROM.timestamp() * 1000) - EPOCH_MS
    ms = np.sort(rng.integers(0, span_ms, pairs, dtype=np.int64))
    ms = np.maximum.accumulate(ms - np.arange(pairs)) + np.arange(pairs)  # strictly increasing
    order = rng.permutation(pairs)  # which pair got which time
    pos = ((start_ms + ms[order]) << 22) | (SEED_NODE << 12)
    friend_pos, follow_pos = pos[: len(fa)], pos[len(fa) :]

    friend_keys = np.sort(np.concatenate([fa * n + fb, fb * n + fa]))
    follow_ptr = np.concatenate([[0], np.cumsum(follow_out)]).astype(np.int64)
    g = Graph(
        n=n,
        ids=ids,
        private=private,
        friend_a=fa,
        friend_b=fb,
        friend_pos=friend_pos,
        follow_src=ws,
        follow_dst=wd,
        follow_pos=follow_pos,
        friend_keys=friend_keys,
        follow_ptr=follow_ptr,
        friend_deg=friend_deg,
        follow_out=follow_out,
        follow_in=follow_in,
    )

    def dist(x: Any) -> dict[str, float]:
        q = np.percentile(x, [50, 90, 99, 99.9])
        return {
            "mean": round(float(x.mean()), 2),
            "p50": float(q[0]),
            "p90": float(q[1]),
            "p99": float(q[2]),
            "p999": float(q[3]),
            "max": int(x.max()),
            "zero": int((x == 0).sum()),
        }

    g.stats = {
        "users": n,
        "private_users": int(private.sum()),
        "friend_pairs": len(fa),
        "follow_pairs": len(ws),
        "edge_rows": g.edge_rows(),
        "friend_degree": dist(friend_deg),
        "following": dist(follow_out),
        "followers": dist(follow_in),
        "graph_build_s": round(time.perf_counter() - t0, 2),
    }
    return g


# -- rows ----------------------------------------------------------------------------------


def _edge_arrays(g: Graph) -> tuple[Any, Any, Any, Any]:
    """(src index, type, dst index, pos) of every edge row, sorted by the primary key."""
    fa, fb, ws, wd = g.friend_a, g.friend_b, g.follow_src, g.follow_dst
    src = np.concatenate([fa, fb, ws, wd])
    dst = np.concatenate([fb, fa, wd, ws])
    typ = np.concatenate(
        [
            np.full(2 * len(fa), FRIEND, dtype=np.int64),
            np.full(len(ws), FOLLOWS, dtype=np.int64),
            np.full(len(ws), FOLLOWED_BY, dtype=np.int64),
        ]
    )
    pos = np.concatenate([g.friend_pos, g.friend_pos, g.follow_pos, g.follow_pos])
    order = np.lexsort((dst, typ, src))  # ids increase with the index: same order as ids
    return src[order], typ[order], dst[order], pos[order]


def _count_rows(g: Graph) -> list[tuple[int, int, int]]:
    rows: list[tuple[int, int, int]] = []
    ids = g.ids.tolist()
    for type_, counts in (
        (FRIEND, g.friend_deg),
        (FOLLOWS, g.follow_out),
        (FOLLOWED_BY, g.follow_in),
    ):
        for i in np.nonzero(counts)[0].tolist():
            rows.append((ids[i], type_, int(counts[i])))
    rows.sort()
    return rows


def _ms_to_sqlite_text(ms: Any) -> list[str]:
    """Socius-epoch milliseconds -> SQLAlchemy's SQLite DATETIME text (naive UTC)."""
    stamps = (np.datetime64(EPOCH_MS, "ms") + ms.astype("timedelta64[ms]")).astype("datetime64[us]")
    return [s.replace("T", " ") for s in np.datetime_as_string(stamps, unit="us").tolist()]


def _ms_to_datetimes(ms: Any) -> list[datetime]:
    base = datetime.fromtimestamp(EPOCH_MS / 1000, UTC)
    return [base + timedelta(milliseconds=m) for m in ms.tolist()]


def _user_rows(g: Graph, password_hash: str, *, sqlite: bool) -> Iterator[tuple[Any, ...]]:
    ids = g.ids.tolist()
    private = g.private.tolist()
    ms = g.ids >> 22
    created: list[Any] = _ms_to_sqlite_text(ms) if sqlite else _ms_to_datetimes(ms)
    for i in range(g.n):
        yield (
            ids[i],
            f"w1u{i:06d}",
            None,
            f"W1 User {i}",
            "",
            None,
            int(private[i]) if sqlite else private[i],
            "everyone",
            password_hash,
            "active",
            0 if sqlite else False,
            "{}",
            created[i],
            created[i],
        )


USER_COLUMNS = [
    "id",
    "username",
    "email",
    "display_name",
    "bio",
    "avatar_url",
    "is_private",
    "dm_policy",
    "password_hash",
    "status",
    "is_admin",
    "settings",
    "created_at",
    "updated_at",
]


async def _shared_hash() -> str:
    """One argon2id hash at the server's default cost, of a password nobody keeps."""
    s = load_settings(environ={})
    hasher = PasswordHasher(
        memory_kib=s.argon2_memory_kib,
        time_cost=s.argon2_time_cost,
        parallelism=s.argon2_parallelism,
    )
    return await hasher.hash(secrets.token_urlsafe(24))


# -- progress -------------------------------------------------------------------------------


class _SeedProgress:
    def __init__(self, console: Console) -> None:
        self.p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )

    def __enter__(self) -> _SeedProgress:
        self.p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.p.stop()

    def task(self, name: str, total: int) -> TaskID:
        return self.p.add_task(name, total=total)

    def advance(self, task: TaskID, n: int) -> None:
        self.p.advance(task, n)

    def done(self, task: TaskID) -> None:
        t = self.p.tasks[task]
        self.p.update(task, completed=t.total)


# -- SQLite ---------------------------------------------------------------------------------


def _seed_sqlite_sync(
    path: Path, g: Graph, password_hash: str, prog: _SeedProgress
) -> dict[str, float]:
    timings: dict[str, float] = {}
    db = sqlite3.connect(path, isolation_level=None)
    try:
        index_sql = db.execute(
            "SELECT sql FROM sqlite_master WHERE type='index' AND name='ix_edges_src_type_pos'"
        ).fetchone()[0]
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute("DROP INDEX ix_edges_src_type_pos")
        db.execute("BEGIN")

        t = time.perf_counter()
        task = prog.task("users", g.n)
        rows = _user_rows(g, password_hash, sqlite=True)
        marks = ",".join("?" * len(USER_COLUMNS))
        sql = f"INSERT INTO users ({','.join(USER_COLUMNS)}) VALUES ({marks})"  # noqa: S608 (constants)
        while batch := [r for _, r in zip(range(CHUNK), rows, strict=False)]:
            db.executemany(sql, batch)
            prog.advance(task, len(batch))
        timings["users_s"] = time.perf_counter() - t

        t = time.perf_counter()
        src, typ, dst, pos = _edge_arrays(g)
        task = prog.task("edges (both directions)", len(src))
        ids = g.ids
        for s in range(0, len(src), CHUNK):
            e = s + CHUNK
            created = _ms_to_sqlite_text(pos[s:e] >> 22)
            db.executemany(
                "INSERT INTO edges (src, type, dst, pos, created_at) VALUES (?,?,?,?,?)",
                zip(
                    ids[src[s:e]].tolist(),
                    typ[s:e].tolist(),
                    ids[dst[s:e]].tolist(),
                    pos[s:e].tolist(),
                    created,
                    strict=True,
                ),
            )
            prog.advance(task, len(created))
        timings["edges_s"] = time.perf_counter() - t

        t = time.perf_counter()
        counts = _count_rows(g)
        task = prog.task("edge_counts", len(counts))
        db.executemany("INSERT INTO edge_counts (src, type, count) VALUES (?,?,?)", counts)
        prog.done(task)
        db.execute("COMMIT")
        timings["counts_s"] = time.perf_counter() - t

        t = time.perf_counter()
        task = prog.task("index ix_edges_src_type_pos", 1)
        db.execute(index_sql)
        prog.done(task)
        timings["index_s"] = time.perf_counter() - t
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
    return timings


async def _seed_sqlite(
    stack: Stack, g: Graph, p: SeedParams, console: Console, reseed: bool
) -> dict[str, Any]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cached = CACHE_DIR / f"w1-{p.key()}.db"
    info: dict[str, Any] = {"cache": str(cached)}
    if reseed or not cached.exists():
        for old in CACHE_DIR.glob("w1-*.db*"):
            old.unlink()
        partial = CACHE_DIR / f"w1-{p.key()}.partial.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(partial) + suffix).unlink(missing_ok=True)  # noqa: ASYNC240
        t = time.perf_counter()
        await upgrade(f"sqlite:///{partial}", revision=seed_schema() or "head")
        password_hash = await _shared_hash()
        with _SeedProgress(console) as prog:
            info["timings"] = await asyncio.to_thread(
                _seed_sqlite_sync, partial, g, password_hash, prog
            )
        partial.rename(cached)
        info["seed_s"] = round(time.perf_counter() - t, 1)
        info["from_cache"] = False
    else:
        info["from_cache"] = True
    t = time.perf_counter()
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(shutil.copyfile, cached, stack.sqlite_path)
    info["copy_s"] = round(time.perf_counter() - t, 1)
    info["size_mib"] = round(stack.sqlite_path.stat().st_size / 2**20, 1)
    return info


# -- PostgreSQL -----------------------------------------------------------------------------


def _db_url(admin_url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


async def _seed_pg_database(
    url: str, g: Graph, password_hash: str, prog: _SeedProgress
) -> dict[str, float]:
    timings: dict[str, float] = {}
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute("SET synchronous_commit = off")
        pk = await conn.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'pk_edges'"
        )
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_edges_src_type_pos'"
        )
        await conn.execute("DROP INDEX ix_edges_src_type_pos")
        await conn.execute("ALTER TABLE edges DROP CONSTRAINT pk_edges")

        t = time.perf_counter()
        task = prog.task("users", g.n)
        rows = _user_rows(g, password_hash, sqlite=False)
        while batch := [r for _, r in zip(range(CHUNK), rows, strict=False)]:
            await conn.copy_records_to_table("users", records=batch, columns=USER_COLUMNS)
            prog.advance(task, len(batch))
        timings["users_s"] = time.perf_counter() - t

        t = time.perf_counter()
        src, typ, dst, pos = _edge_arrays(g)
        task = prog.task("edges (both directions)", len(src))
        ids = g.ids
        for s in range(0, len(src), CHUNK):
            e = s + CHUNK
            created = _ms_to_datetimes(pos[s:e] >> 22)
            records = list(
                zip(
                    ids[src[s:e]].tolist(),
                    typ[s:e].tolist(),
                    ids[dst[s:e]].tolist(),
                    pos[s:e].tolist(),
                    created,
                    strict=True,
                )
            )
            await conn.copy_records_to_table(
                "edges", records=records, columns=["src", "type", "dst", "pos", "created_at"]
            )
            prog.advance(task, len(records))
        timings["edges_s"] = time.perf_counter() - t

        t = time.perf_counter()
        counts = _count_rows(g)
        task = prog.task("edge_counts", len(counts))
        await conn.copy_records_to_table(
            "edge_counts", records=counts, columns=["src", "type", "count"]
        )
        prog.done(task)
        timings["counts_s"] = time.perf_counter() - t

        t = time.perf_counter()
        task = prog.task("edge primary key + index", 2)
        await conn.execute(f"ALTER TABLE edges ADD CONSTRAINT pk_edges {pk}")
        prog.advance(task, 1)
        await conn.execute(index)
        prog.done(task)
        timings["index_s"] = time.perf_counter() - t

        t = time.perf_counter()
        task = prog.task("VACUUM ANALYZE", 1)
        await conn.execute("VACUUM (ANALYZE) users, edges, edge_counts")
        prog.done(task)
        timings["vacuum_s"] = time.perf_counter() - t
    finally:
        await conn.close()
    return timings


async def _seed_pg(
    stack: Stack, g: Graph, p: SeedParams, console: Console, admin_url: str, reseed: bool
) -> dict[str, Any]:
    template = TEMPLATE_PREFIX + p.key()
    partial = template + "_partial"
    info: dict[str, Any] = {"template": template}
    admin = await asyncpg.connect(admin_url)
    try:
        existing = {
            r[0]
            for r in await admin.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", TEMPLATE_PREFIX + "%"
            )
        }
        if reseed or template not in existing:
            for name in existing:  # old seeds (other parameters or schema) and leftovers
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{partial}"')
            t = time.perf_counter()
            url = _db_url(admin_url, partial)
            await upgrade(url, revision=seed_schema() or "head")
            password_hash = await _shared_hash()
            with _SeedProgress(console) as prog:
                info["timings"] = await _seed_pg_database(url, g, password_hash, prog)
            await admin.execute(f'ALTER DATABASE "{partial}" RENAME TO "{template}"')
            info["seed_s"] = round(time.perf_counter() - t, 1)
            info["from_cache"] = False
        else:
            info["from_cache"] = True
        # Re-create the run's (empty) database from the template.
        name = stack.info["postgres_database"]
        t = time.perf_counter()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        info["copy_s"] = round(time.perf_counter() - t, 1)
        size = await admin.fetchval("SELECT pg_database_size($1)", name)
        info["size_mib"] = round(size / 2**20, 1)
    finally:
        await admin.close()
    return info


# -- entry points ---------------------------------------------------------------------------


@dataclass
class SeedResult:
    graph: Graph
    info: dict[str, Any]


async def prepare(stack: Stack, p: SeedParams, console: Console, *, admin_url: str) -> SeedResult:
    """Build the graph (always: the request generator needs it) and put the seeded
    database in place for this run (from the cache when it holds this seed)."""
    reseed = os.environ.get("BENCH_W1_RESEED", "") not in ("", "0")
    t = time.perf_counter()
    with console.status("building the graph (numpy)"):
        g = await asyncio.to_thread(build_graph, p)
    console.log(
        f"graph: {g.n:,} users, {len(g.friend_a):,} friendships, {len(g.follow_src):,} follows, "
        f"{g.edge_rows():,} edge rows ({g.stats['graph_build_s']} s)"
    )
    if stack.kind == "embedded":
        info = await _seed_sqlite(stack, g, p, console, reseed)
    else:
        info = await _seed_pg(stack, g, p, console, admin_url, reseed)
    info["total_s"] = round(time.perf_counter() - t, 1)
    info["key"] = p.key()
    info["params"] = asdict(p)
    info["graph"] = g.stats
    if "timings" in info:
        info["timings"] = {k: round(v, 1) for k, v in info["timings"].items()}
    return SeedResult(g, info)


async def insert_sessions(stack: Stack, user_ids: list[int], session_ids: list[int]) -> None:
    """One live session per caller, as a login would make (no refresh tokens needed)."""
    now = datetime.now(UTC)
    expires = now + timedelta(days=30)
    if stack.database_url:
        conn = await asyncpg.connect(stack.database_url)
        try:
            await conn.copy_records_to_table(
                "sessions",
                records=[
                    (sid, uid, now, now, expires, None, "w1-bench", "127.0.0.1")
                    for uid, sid in zip(user_ids, session_ids, strict=True)
                ],
                columns=[
                    "id",
                    "user_id",
                    "created_at",
                    "last_used_at",
                    "expires_at",
                    "revoked_at",
                    "user_agent",
                    "ip",
                ],
            )
        finally:
            await conn.close()
        return

    def write() -> None:
        text = _ms_to_sqlite_text(np.array([int(now.timestamp() * 1000) - EPOCH_MS]))[0]
        until = _ms_to_sqlite_text(np.array([int(expires.timestamp() * 1000) - EPOCH_MS]))[0]
        db = sqlite3.connect(stack.sqlite_path, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, "
                "revoked_at, user_agent, ip) VALUES (?,?,?,?,?,NULL,'w1-bench','127.0.0.1')",
                [
                    (sid, uid, text, text, until)
                    for uid, sid in zip(user_ids, session_ids, strict=True)
                ],
            )
            db.execute("COMMIT")
        finally:
            db.close()

    await asyncio.to_thread(write)
