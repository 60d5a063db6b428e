"""Primary-key reads of the hottest rows, on the driver itself (decision 0010).

A read-only unit of work through SQLAlchemy costs a pool checkout, execution options, a
statement key and compile-cache look-up, result processing and a pool return: ~490 µs
of CPU for ``GET /v1/me``'s one-row user read on PostgreSQL, against ~58 µs for
asyncpg's own ``fetchrow`` of a prepared statement, and ~10 µs for sqlite3. The reads
here skip all of it:

- PostgreSQL: an asyncpg pool of its own (``max_size`` = the database pool size, made on
  first use, connections kept), whose connections cache the prepared statements;
- SQLite: one sqlite3 connection of its own, read-only, run on the event loop like the
  rest of SQLite in socius (decision 0007); WAL lets it read beside the writer.

The one write here is the refresh's rotation on PostgreSQL (decision 0030), a single
statement: atomic on its own, so autocommit on this pool needs no BEGIN / COMMIT.

Each read is one statement in autocommit: it sees what is committed, as a read-only unit
of work does. Failures that mean "the database is away" become ``Unavailable`` (503).

The cold reads of the graph's lists and profiles are here too (decision 0026): a list
head, the users of a page with their counts, the relationships of a viewer with a few
users, whom a user blocks either way, mutual friends. Each is still announced to the
primary engine's statement listeners (the query-count pins and the SQL spans see it).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from socius.domain.graph import EdgeRow, EdgeType, ListedUserRow
from socius.domain.users import User, UserStatus
from socius.storage.driver import read_timestamp
from socius.storage.edges import (
    _MUTUAL_BEFORE,
    _MUTUAL_FIRST,
    _RANGE,
    _RANGE_BEFORE,
    EDGE_TYPES_OF,
)
from socius.storage.engine import SQLITE_MMAP
from socius.storage.outage import database_unavailable, is_outage
from socius.storage.suggestion_lists import _GET as _SUGGESTION_LIST
from socius.storage.users import USER_COLUMNS, USER_FIELDS, user_from_driver

__all__ = ["ACQUIRE_TIMEOUT_S", "HotReads", "lost", "lost_under"]

_USER_BY_ID = f"SELECT {USER_COLUMNS} FROM users WHERE id = ?"  # noqa: S608 (no values)
_ACTIVE = UserStatus.ACTIVE.value
ACQUIRE_TIMEOUT_S = 10.0  # a connection of the driver pool (reads and write units of work)
_BLOCKED = "SELECT dst FROM edges WHERE src = ? AND type IN (?, ?) LIMIT ?"
_COUNT = "(SELECT count FROM edge_counts WHERE src = users.id AND type = ?)"
# What a listed user shows (ListedUserRow), not the whole row (no email, credentials,
# settings): fewer columns to decode, no JSON; the status as whether it is active (one
# boolean, not a text to decode and compare). A row with no user has NULL for all of them.
_LISTED_COLUMNS = (
    f"username, display_name, bio, avatar_url, is_private, created_at, status = '{_ACTIVE}'"
)


def _joined(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(", "))


@functools.lru_cache(maxsize=32)
def _counts(src: str, n_types: int, postgres: bool) -> tuple[str, str]:
    """The select list's counts of ``n_types`` types of the user ``src`` and what the FROM
    clause joins for them. Their ``?``: the types twice, in the join (PostgreSQL), or once,
    in the select list (SQLite).

    PostgreSQL: one lateral look-up of the user's rows in ``edge_counts`` (one index
    descent, the rows side by side) where a correlated subquery per type made one descent
    each: for a page of 51 with 3 types, 51 look-ups instead of 153 (decision 0052).
    SQLite: a correlated subquery per type (no LATERAL; its alternatives cost the same)."""
    if not postgres or not n_types:
        return "".join(
            f", (SELECT count FROM edge_counts WHERE src = {src} AND type = ?)"  # noqa: S608
            for _ in range(n_types)
        ), ""
    picks = ", ".join(f"max(count) FILTER (WHERE type = ?) AS c{i}" for i in range(n_types))
    types = ", ".join("?" * n_types)
    join = (
        f" CROSS JOIN LATERAL (SELECT {picks} FROM edge_counts "  # noqa: S608 (no values)
        f"WHERE src = {src} AND type IN ({types})) AS c"  # one row: an aggregate
    )
    return "".join(f", c.c{i}" for i in range(n_types)), join


@functools.lru_cache(maxsize=16)
def _with_users_sql(rows_sql: str, n_types: int, postgres: bool) -> str:
    """The rows of ``rows_sql`` (``dst, pos, created_at``, newest first) with their users
    (any status; NULLs where there is no row) and ``n_types`` counts each: a page and its
    profiles in one statement. Its arguments: ``_with_users_args``."""
    counts, join = _counts("e.dst", n_types, postgres)
    return (
        f"SELECT e.dst, e.pos, e.created_at, {_joined(_LISTED_COLUMNS, 'u')}{counts} "  # noqa: S608
        f"FROM ({rows_sql}) AS e LEFT JOIN users AS u ON u.id = e.dst{join} "
        "ORDER BY e.pos DESC, e.dst DESC"
    )


def _with_users_args(postgres: bool, types: list[int], *rows_args: Any) -> tuple[Any, ...]:
    """The arguments of ``_with_users_sql`` in the order of its placeholders: the
    counts' types before the rows' (SQLite: in the select list) or after them
    (PostgreSQL: in the lateral join, each type twice)."""
    return (*rows_args, *types, *types) if postgres else (*types, *rows_args)


@functools.lru_cache(maxsize=16)
def _first_read_sql(parts: tuple[bool, bool, bool], n_types: int, postgres: bool) -> str:
    """What a read of another user's list needs first, the ``parts`` of it asked for, in one
    statement (decision 0059): whom the viewer blocks or is blocked by (``k`` 0: ``dst``),
    the owner as ``_listed_sql`` reads it (``k`` 1) and the list's first page with its
    users as ``_with_users_sql`` (``k`` 2). Each row: ``k, dst, pos, created_at``, the
    listed user's columns, its counts (NULLs where a part has none). Its arguments:
    ``_first_read_args``."""
    blocks, owner, page = parts
    nulls = ", NULL" * (len(_LISTED_COLUMNS.split(", ")) + n_types)
    columns = _joined(_LISTED_COLUMNS, "u")
    branches = []  # the page first: its columns' types are those of the branches after it
    if page:
        counts, join = _counts("e.dst", n_types, postgres)
        branches.append(
            f"SELECT 2, e.dst, e.pos, e.created_at, {columns}{counts} "  # noqa: S608
            f"FROM ({_RANGE}) AS e LEFT JOIN users AS u ON u.id = e.dst{join}"
        )
    if owner:
        counts, join = _counts("u.id", n_types, postgres)
        branches.append(
            f"SELECT 1, u.id, NULL, NULL, {columns}{counts} "  # noqa: S608 (no values)
            f"FROM users AS u{join} WHERE u.id = ?"
        )
    if blocks:
        branches.append(f"SELECT 0, b.dst, NULL, NULL{nulls} FROM ({_BLOCKED}) AS b")  # noqa: S608
    return " UNION ALL ".join(branches) + " ORDER BY 1, 3 DESC, 2 DESC"


class _Statement:
    """What the engine's statement listeners are handed for a read made here (they keep
    per-statement state in ``info``, as on a SQLAlchemy connection)."""

    __slots__ = ("info",)

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}


@functools.lru_cache(maxsize=256)  # fixed texts (and one per IN-list length on SQLite)
def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], start=1)) + parts[-1]


@functools.lru_cache(maxsize=64)
def _profiles_sql(n_types: int, n_ids: int | None) -> str:
    """The users with ``n_types`` counts each; ``n_ids`` placeholders (SQLite) or one
    array (PostgreSQL: None)."""
    where = "id = ANY(?::BIGINT[])" if n_ids is None else f"id IN ({', '.join('?' * n_ids)})"
    counts = "".join(f", {_COUNT}" for _ in range(n_types))
    return f"SELECT {USER_COLUMNS}{counts} FROM users WHERE {where}"  # noqa: S608 (no values)


@functools.lru_cache(maxsize=64)
def _listed_sql(n_types: int, n_ids: int | None) -> str:
    """``_profiles_sql`` with what a listed user shows only (the columns of
    ``_with_users_sql``, the id first); ``n_ids`` placeholders (SQLite) or one array
    (PostgreSQL: None). Its arguments: the types (twice on PostgreSQL), then the ids."""
    where = "u.id = ANY(?::BIGINT[])" if n_ids is None else f"u.id IN ({', '.join('?' * n_ids)})"
    counts, join = _counts("u.id", n_types, n_ids is None)
    columns = _joined(_LISTED_COLUMNS, "u")
    return f"SELECT u.id, {columns}{counts} FROM users AS u{join} WHERE {where}"  # noqa: S608


@functools.lru_cache(maxsize=64)
def _types_sql(n_ids: int | None) -> str:
    where = "dst = ANY(?::BIGINT[])" if n_ids is None else f"dst IN ({', '.join('?' * n_ids)})"
    return f"SELECT dst, type FROM edges WHERE src = ? AND {where}"  # noqa: S608 (no values)


def _edge_with_user(row: Any, at: int) -> tuple[EdgeRow, ListedUserRow | None]:
    """A list's row from ``row[at]`` on: ``dst, pos, created_at``, then its user's columns
    and counts (None where the user row is gone)."""
    dst = row[at]
    user = None if row[at + 3] is None else _listed_user(dst, row, at + 3)
    return EdgeRow(dst, row[at + 1], read_timestamp(row[at + 2])), user


def lost(conn: Any) -> bool:
    """Whether a connection checked out of the driver pool can no longer be used: closed,
    or already taken back by its pool. asyncpg gives a connection's slot back to its pool
    as soon as the connection closes, even while it is checked out (a restart or
    ``pg_terminate_backend`` ends the session), and detaches the object held: every call
    on it then raises ``InterfaceError`` ("released back to the pool"), which says
    nothing of an outage (decision 0058). Such a one is dropped, never handed a
    statement; the pool opens a new one in its slot on a later checkout."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # detached: the only error ``is_closed`` raises
        return True


def lost_under(exc: BaseException, conn: Any) -> bool:
    """Whether ``exc`` is asyncpg's own error on a connection that closed under the work
    ("connection is closed", "released back to the pool"): an outage (503), not a bug,
    whatever its class says (decision 0058)."""
    return isinstance(exc, asyncpg.InterfaceError) and lost(conn)


async def _keep_session(_conn: Any) -> None:
    """What a connection goes back to the pool with: nothing to undo (one autocommit
    SELECT at a time, no session state), so not asyncpg's default reset, which is a
    round trip (``RESET ALL``, ``UNLISTEN *``...) on every release."""


def _listed_user(uid: int, row: Sequence[Any], at: int) -> ListedUserRow:
    """A listed user from its ``_LISTED_COLUMNS`` (from ``row[at]``) then its counts,
    NULL read as 0."""
    return ListedUserRow(
        uid,
        row[at],
        row[at + 1],
        row[at + 2],
        row[at + 3],
        bool(row[at + 4]),
        read_timestamp(row[at + 5]),
        bool(row[at + 6]),
        tuple([c or 0 for c in row[at + 7 :]]),
    )


class HotReads:
    """Reads on the driver; `url` is the database's (``sqlite:///path`` or PostgreSQL)."""

    def __init__(self, url: str, *, pool_size: int = 20, engine: AsyncEngine | None = None) -> None:
        """``engine``: whose statement listeners hear of each read (None: no one's)."""
        scheme, _, rest = url.partition("://")
        self._sqlite_path: str | None = None
        self._dsn: str | None = None
        if scheme.startswith("sqlite"):
            path = rest[1:] if rest.startswith("/") else rest
            if path and path != ":memory:":  # an in-memory database is per connection
                self._sqlite_path = path
        else:
            self._dsn = f"postgresql://{rest}"
        self._pool_size = pool_size
        self._pool: Any = None  # asyncpg.Pool
        self._idle: list[Any] = []  # kept connections (``_fetch``)
        self._keep = pool_size // 2
        self._sqlite: sqlite3.Connection | None = None
        self._opening: asyncio.Lock | None = None
        self._dispatch: Any = engine.sync_engine.dispatch if engine is not None else None
        self._shared: Callable[[], sqlite3.Connection | None] | None = None

    def read_on(self, connection: Callable[[], sqlite3.Connection | None]) -> None:
        """SQLite: read on ``connection()`` when it gives one (the writer's connection
        while no transaction is open on it: its page cache stays warm across its own
        commits, decision 0042), else on this reader's own connection."""
        self._shared = connection

    @property
    def available(self) -> bool:
        return self._dsn is not None or self._sqlite_path is not None

    async def user(self, user_id: int) -> User | None:
        """The user row with this id (whatever its status), or None."""
        row = await self._one(_USER_BY_ID, user_id)
        return user_from_driver(row) if row is not None else None

    @property
    def postgres(self) -> bool:
        return self._dsn is not None

    async def statement(self, sql: str, *args: Any) -> Any:
        """The first row of one statement (``?`` placeholders) in autocommit on the
        PostgreSQL pool, or None: a statement that writes is atomic on its own. Used by
        the refresh (``storage/sessions.py``, decision 0030); PostgreSQL only."""
        assert self._dsn is not None, "statements that write run on PostgreSQL only"
        return await self._one(sql, *args)

    async def rows(self, sql: str, *args: Any) -> Any:
        """Every row of one statement, as ``statement`` (a batch of refreshes, decision
        0044); PostgreSQL only."""
        assert self._dsn is not None, "statements that write run on PostgreSQL only"
        return await self._rows(sql, *args)

    # the graph's cold reads (decision 0026) ---------------------------------------------

    async def edge_range(
        self, src: int, type_: EdgeType, *, limit: int, before_pos: int | None = None
    ) -> list[EdgeRow]:
        """``SqlEdgeRepository.range``: newest first, after ``before_pos`` if given."""
        if before_pos is None:
            rows = await self._rows(_RANGE, src, int(type_), limit)
        else:
            rows = await self._rows(_RANGE_BEFORE, src, int(type_), before_pos, limit)
        return [EdgeRow(d, p, read_timestamp(c)) for d, p, c in rows]

    async def edge_types(self, src: int, dsts: Sequence[int]) -> dict[int, frozenset[EdgeType]]:
        """The edge types from ``src`` to each of ``dsts`` (empty: none)."""
        found: dict[int, set[EdgeType]] = {d: set() for d in dsts}
        if dsts:
            unique = list(found)
            if self._dsn is not None:
                rows = await self._rows(_types_sql(None), src, unique)
            else:
                rows = await self._rows(_types_sql(len(unique)), src, *unique)
            for dst, type_ in rows:
                found[dst].add(EdgeType(type_))
        return {d: frozenset(t) for d, t in found.items()}

    async def blocked(self, src: int, *, limit: int) -> list[int]:
        """Up to ``limit`` users ``src`` blocks or is blocked by (a block has its inverse,
        so ``src``'s own edges tell both ways)."""
        blocks, blocked_by = int(EdgeType.BLOCKS), int(EdgeType.BLOCKED_BY)
        return [row[0] for row in await self._rows(_BLOCKED, src, blocks, blocked_by, limit)]

    async def edge_range_with_users(
        self, src: int, type_: EdgeType, *, limit: int, types: Sequence[EdgeType]
    ) -> list[tuple[EdgeRow, ListedUserRow | None]]:
        """``edge_range`` (a first page) and ``users_with_counts`` of its rows in one
        statement: each row with its user and counts, None where the user row is gone."""
        postgres = self._dsn is not None
        sql = _with_users_sql(_RANGE, len(types), postgres)
        args = _with_users_args(postgres, [int(t) for t in types], src, int(type_), limit)
        return self._with_users(await self._rows(sql, *args))

    async def first_read(
        self,
        *,
        owner: int,
        blocks_of: int | None,
        blocks_limit: int,
        profile: bool,
        page: tuple[EdgeType, int] | None,
        types: Sequence[EdgeType],
    ) -> tuple[list[int], ListedUserRow | None, list[tuple[EdgeRow, ListedUserRow | None]]]:
        """What a read of ``owner``'s list by another user needs first, in one statement
        (decision 0059): ``blocked(blocks_of, limit=blocks_limit)`` (unless None), with
        ``profile`` ``listed_users([owner], types)``'s row (None: no such user) and with
        ``page`` (the type and the limit of a first page) ``edge_range_with_users``. A part
        not asked for comes back empty (None)."""
        postgres, counted = self._dsn is not None, [int(t) for t in types]
        parts = (blocks_of is not None, profile, page is not None)
        args: list[Any] = []  # in the order of the statement's parts
        if page is not None:
            args += _with_users_args(postgres, counted, owner, int(page[0]), page[1])
        if profile:
            args += (*counted, *counted, owner) if postgres else (*counted, owner)
        if blocks_of is not None:
            args += (blocks_of, int(EdgeType.BLOCKS), int(EdgeType.BLOCKED_BY), blocks_limit)
        rows = await self._rows(_first_read_sql(parts, len(types), postgres), *args)
        blocked: list[int] = []
        user: ListedUserRow | None = None
        found: list[tuple[EdgeRow, ListedUserRow | None]] = []
        for row in rows:
            kind = row[0]
            if kind == 2:
                found.append(_edge_with_user(row, 1))
            elif kind == 1:
                user = _listed_user(row[1], row, 4)
            else:
                blocked.append(row[1])
        return blocked, user, found

    async def mutual_with_users(
        self,
        a: int,
        b: int,
        type_: EdgeType,
        *,
        limit: int,
        before_pos: int | None,
        types: Sequence[EdgeType],
    ) -> list[tuple[EdgeRow, ListedUserRow | None]]:
        """``mutual`` with each row's user and counts (as ``edge_range_with_users``)."""
        t, counted, postgres = int(type_), [int(c) for c in types], self._dsn is not None
        if before_pos is None:
            sql = _with_users_sql(_MUTUAL_FIRST, len(types), postgres)
            args = _with_users_args(postgres, counted, b, t, a, t, limit)
        else:
            sql = _with_users_sql(_MUTUAL_BEFORE, len(types), postgres)
            args = _with_users_args(postgres, counted, b, t, a, t, before_pos, limit)
        return self._with_users(await self._rows(sql, *args))

    @staticmethod
    def _with_users(rows: Any) -> list[tuple[EdgeRow, ListedUserRow | None]]:
        """Each row: ``dst, pos, created_at`` then its user's columns and counts."""
        return [_edge_with_user(row, 0) for row in rows]

    async def edge_types_of(self, src: int, *, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` of ``src``'s edges as ``(dst, type)``, in no order."""
        return [(row[0], row[1]) for row in await self._rows(EDGE_TYPES_OF, src, limit)]

    async def users_with_counts(
        self, user_ids: Sequence[int], types: Sequence[EdgeType]
    ) -> list[tuple[User, dict[EdgeType, int]]]:
        """``SqlUserRepository.get_many_with_counts``: users (any status) with their stored
        edge counts of ``types``, in one statement."""
        if not user_ids:
            return []
        args: list[Any] = [int(t) for t in types]
        if self._dsn is not None:
            rows = await self._rows(_profiles_sql(len(types), None), *args, list(user_ids))
        else:
            rows = await self._rows(_profiles_sql(len(types), len(user_ids)), *args, *user_ids)
        n = len(USER_FIELDS)
        return [
            (user_from_driver(row), {t: int(c or 0) for t, c in zip(types, row[n:], strict=True)})
            for row in rows
        ]

    async def listed_users(
        self, user_ids: Sequence[int], types: Sequence[EdgeType]
    ) -> list[ListedUserRow]:
        """``users_with_counts`` with the columns of a profile only (no email, credentials
        nor settings to decode: decision 0039), as ``edge_range_with_users`` reads them."""
        if not user_ids:
            return []
        counted = [int(t) for t in types]
        if self._dsn is not None:
            sql = _listed_sql(len(types), None)
            rows = await self._rows(sql, *counted, *counted, list(user_ids))
        else:
            rows = await self._rows(_listed_sql(len(types), len(user_ids)), *counted, *user_ids)
        return [_listed_user(row[0], row, 1) for row in rows]

    async def mutual(
        self, a: int, b: int, type_: EdgeType, *, limit: int, before_pos: int | None = None
    ) -> list[EdgeRow]:
        """``SqlEdgeRepository.mutual``: users both ``a`` and ``b`` have an edge of
        ``type_`` to, by ``a``'s order."""
        t = int(type_)
        if before_pos is None:
            rows = await self._rows(_MUTUAL_FIRST, b, t, a, t, limit)
        else:
            rows = await self._rows(_MUTUAL_BEFORE, b, t, a, t, before_pos, limit)
        return [EdgeRow(d, p, read_timestamp(c)) for d, p, c in rows]

    async def suggestion_list(self, user_id: int) -> bytes | None:
        """``SqlSuggestionListRepository.get``: a user's stored suggestions (decision 0034:
        the cache misses of ``GET /v1/friends/suggestions`` without a unit of work)."""
        row = await self._one(_SUGGESTION_LIST, user_id)
        return None if row is None else bytes(row[0])

    # ------------------------------------------------------------------------------------

    async def _one(self, sql: str, *args: Any) -> Any:
        rows = await self._rows(sql, *args)
        return rows[0] if rows else None

    async def _rows(self, sql: str, *args: Any) -> Any:
        dispatch, seen = self._dispatch, None
        if dispatch is not None and dispatch.before_cursor_execute:
            seen = _Statement()
            dispatch.before_cursor_execute(seen, None, sql, args, None, False)
        try:
            if self._dsn is not None:
                return await self._fetch(_numbered(sql), args)
            conn = (self._shared and self._shared()) or self._sqlite or self._open_sqlite()
            return conn.execute(sql, args).fetchall()  # run to its end: no read left open
        except Exception as exc:
            if is_outage(exc):
                raise database_unavailable(exc) from exc
            raise
        finally:
            if seen is not None and dispatch.after_cursor_execute:
                dispatch.after_cursor_execute(seen, None, sql, args, None, False)

    async def _fetch(self, sql: str, args: tuple[Any, ...]) -> Any:
        """PostgreSQL: ``sql`` on a kept connection when one is idle, else on one of the
        pool's. Up to ``_keep`` connections stay checked out between reads: handing one
        over is a list's pop and taking it back an append, where the pool's ``acquire``
        and ``release`` cost ~30 µs a read (a task for the ``asyncio.shield`` around
        every release; decision 0053 measured it for the writes).

        A kept connection whose session ended meanwhile (``lost``: a restart) is dropped
        before any statement is sent on it, as the pool's checkout replaces its own
        (decision 0058). One whose read failed or was cancelled goes back to the pool,
        which checks it as before; if the read failed because the connection was lost
        under it, the read is an outage (503) whatever the error's class."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not lost(conn):
                break
            await self._give_back(conn)
        else:
            pool = self._pool or await self._open_pool()
            # No connection in time is an outage (503), not a request waiting forever.
            async with asyncio.timeout(ACQUIRE_TIMEOUT_S):
                conn = await pool.acquire()
        try:
            rows = await conn.fetch(sql, *args)
        except BaseException as exc:
            gone = lost_under(exc, conn)
            await self._give_back(conn)
            if gone:
                raise database_unavailable(exc) from exc
            raise
        if len(idle) < self._keep and self._pool is not None and not lost(conn):
            idle.append(conn)
        else:
            await self._give_back(conn)
        return rows

    async def _give_back(self, conn: Any) -> None:
        """Back to the pool: a detached connection (its slot back already) is let go, a
        closed one is ended and its slot freed, any other is checked in."""
        if self._pool is not None:
            await self._pool.release(conn)
        elif not lost(conn):  # the pool was closed meanwhile
            conn.terminate()

    async def driver_pool(self) -> Any:
        """The asyncpg pool (made on first use), for write units of work on the driver
        (``storage/unit_of_work.py``): each ends its transaction before it gives its
        connection back, so the pool's no-reset release still holds."""
        return self._pool or await self._open_pool()

    async def _open_pool(self) -> Any:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._pool_size,
                    timeout=5,
                    server_settings={"application_name": "socius"},
                    reset=_keep_session,
                )
        return self._pool

    def _open_sqlite(self) -> sqlite3.Connection:
        assert self._sqlite_path is not None
        conn = sqlite3.connect(self._sqlite_path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA busy_timeout=0")  # WAL: a reader does not wait for the writer
        conn.execute(SQLITE_MMAP)  # as every connection of the engine (decision 0048)
        self._sqlite = conn
        return conn

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        idle, self._idle = self._idle, []
        if pool is not None:
            for conn in idle:  # the pool's close waits for every connection checked out
                await pool.release(conn)
            await pool.close()
        conn, self._sqlite = self._sqlite, None
        if conn is not None:
            conn.close()
