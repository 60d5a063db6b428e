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
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from typing import Any

import asyncpg

from socius.domain.users import User
from socius.storage.outage import database_unavailable, is_outage
from socius.storage.users import USER_COLUMNS, user_from_driver

__all__ = ["HotReads"]

_USER_BY_ID = f"SELECT {USER_COLUMNS} FROM users WHERE id = ?"  # noqa: S608 (no values)


@functools.lru_cache(maxsize=64)  # fixed texts
def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], start=1)) + parts[-1]


async def _keep_session(_conn: Any) -> None:
    """What a connection goes back to the pool with: nothing to undo (one autocommit
    SELECT at a time, no session state), so not asyncpg's default reset, which is a
    round trip (``RESET ALL``, ``UNLISTEN *``...) on every release."""


class HotReads:
    """Reads on the driver; `url` is the database's (``sqlite:///path`` or PostgreSQL)."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
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
        self._sqlite: sqlite3.Connection | None = None
        self._opening: asyncio.Lock | None = None

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

    async def _one(self, sql: str, *args: Any) -> Any:
        try:
            if self._dsn is not None:
                pool = self._pool or await self._open_pool()
                return await pool.fetchrow(_numbered(sql), *args)
            conn = self._sqlite or self._open_sqlite()
            rows = conn.execute(sql, args).fetchall()  # run to its end: no read left open
            return rows[0] if rows else None
        except Exception as exc:
            if is_outage(exc):
                raise database_unavailable(exc) from exc
            raise

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
        self._sqlite = conn
        return conn

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
        conn, self._sqlite = self._sqlite, None
        if conn is not None:
            conn.close()
