"""Engines: the one place where SQLite and PostgreSQL are told apart.

SQLite runs in WAL mode with foreign keys on, on the event loop's thread
(``sqlite_driver``, decision 0007). Its write transactions start with ``BEGIN IMMEDIATE``
so that a writer takes the lock before it reads instead of failing when a read lock
cannot be upgraded; the driver waits for a lock held by another process without
blocking the loop. The directory of the SQLite file must exist (nothing is created
here: a mistyped path is refused at start, see ``socius.preflight``).

PostgreSQL's pool hands out no connection that the server has closed (a restart, a
failover, an idle timeout): asyncpg notices the closed socket as it happens, so a
checkout looks at that flag, which costs no round trip, and replaces such a connection
instead of running the request's first statement on it. A connection that dies while
in use is dropped by SQLAlchemy (its error is a disconnect), and the request gets a 503
(``storage/outage.py``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from socius.storage.sqlite_driver import connect

__all__ = [
    "READ_OPTION",
    "SQLITE_BUSY_TIMEOUT_S",
    "SQLITE_MMAP",
    "SQLITE_PRAGMAS",
    "WRITE_OPTION",
    "async_url",
    "make_engine",
    "sqlite_path",
]

WRITE_OPTION = "socius_write"
#: SQLite: a read-only unit of work; no BEGIN, each statement runs in the driver's own
#: autocommit mode (cheaper than switching isolation_level to AUTOCOMMIT and back).
READ_OPTION = "socius_read"
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Reads through a memory map of up to this much of the file (SQLite's usual build caps
#: it at 2 GiB - 64 KiB; a larger file is read as before beyond it).
SQLITE_MMAP = "PRAGMA mmap_size=2147418112"
#: Every SQLite connection's settings (the engine's, and the driver's writer's).
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=0",  # the driver waits, off the loop (sqlite_driver)
    "PRAGMA cache_size=-32000",
    "PRAGMA temp_store=MEMORY",
    # Pages read from the file's memory map instead of copied into the page cache by a
    # read() each: on W1's 1.1 GB database, 25-40% less CPU per friends-of-friends list
    # (decision 0048). Writes still go through the journal (WAL) as before.
    SQLITE_MMAP,
)


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite://`` URL (None: not SQLite, or in memory)."""
    scheme, _, rest = url.partition("://")
    if not scheme.startswith("sqlite"):
        return None
    path = rest[1:] if rest.startswith("/") else rest
    return path if path and path != ":memory:" else None


def async_url(url: str) -> str:
    """The SQLAlchemy URL with the async driver for a plain ``sqlite://``/``postgresql://`` URL."""
    scheme, _, rest = url.partition("://")
    if scheme in {"postgresql", "postgres"}:
        return f"postgresql+asyncpg://{rest}"
    if scheme == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    return url


def make_engine(url: str, *, pool_size: int = 20, echo: bool = False) -> AsyncEngine:
    full = async_url(url)
    if full.startswith("sqlite"):
        return _sqlite_engine(full, pool_size=pool_size, echo=echo)
    engine = create_async_engine(
        full,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,  # a SELECT per checkout: the closed-socket check below is free
        pool_recycle=1800,
        pool_timeout=10,
        echo=echo,
        connect_args={"server_settings": {"application_name": "socius"}, "timeout": 5},
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry, _proxy: Any) -> None:
    """A pooled asyncpg connection whose socket the server has closed is not handed out:
    the pool discards it and opens a new one (SQLAlchemy retries the checkout)."""
    driver: Any = getattr(dbapi_conn, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _sqlite_engine(url: str, *, pool_size: int, echo: bool) -> AsyncEngine:
    path = url.split(":///", 1)[1] if ":///" in url else ""
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        echo=echo,
        async_creator=connect(path or ":memory:", busy_timeout=SQLITE_BUSY_TIMEOUT_S),
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        opts: dict[str, Any] = dict(conn.get_execution_options())
        if opts.get(READ_OPTION):
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if opts.get(WRITE_OPTION) else "BEGIN")

    return engine
