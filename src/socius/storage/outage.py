"""Which database errors mean "the database is away" (a 503 the client may retry) rather
than a bug, decided by the exception's type (and for SQLite its result code), never by
its message.

An outage is a connection that failed or was lost (refused, reset, timed out, closed by
a restart), a server that is shutting down, starting up or out of connections or disk,
a pool that has no connection to give in time, and on SQLite a database that is locked
or whose file cannot be read or written. Everything else (a constraint, a syntax error,
a missing table) is left alone: those are bugs or the caller's own conflicts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import asyncpg
from sqlalchemy import exc as sa

from socius.domain.errors import Unavailable

__all__ = ["database_unavailable", "is_outage"]

_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, timed out (TimeoutError)
    sa.TimeoutError,  # no pooled connection came in time
    sa.DisconnectionError,  # a checkout found its connection dead, and so did the retry
    asyncpg.exceptions.PostgresConnectionError,  # class 08, ConnectionDoesNotExistError
    asyncpg.exceptions.OperatorInterventionError,  # 57: admin/crash shutdown, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby answers after a failover
)

# SQLite primary result codes (https://sqlite.org/rescode.html) that mean the file or
# its lock, not the statement, is the problem.
_SQLITE_OUTAGES = frozenset(
    {
        5,  # SQLITE_BUSY: another process holds the lock past the busy timeout
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        8,  # SQLITE_READONLY: the file or its directory is not writable
        10,  # SQLITE_IOERR: disk I/O error
        13,  # SQLITE_FULL: the disk is full
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL: a WAL lock protocol error
    }
)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, the driver error SQLAlchemy wrapped, and what each was raised from."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None) if isinstance(current, sa.DBAPIError) else None
        for nxt in (orig, current.__cause__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def is_outage(error: BaseException) -> bool:
    """True when ``error`` says the database cannot be used right now."""
    for e in _causes(error):
        if isinstance(e, sa.DBAPIError) and e.connection_invalidated:
            return True  # SQLAlchemy found the connection dead (and dropped it)
        if isinstance(e, _OUTAGES):
            return True
        if isinstance(e, sqlite3.Error):
            code = getattr(e, "sqlite_errorcode", None)
            if isinstance(code, int) and (code & 0xFF) in _SQLITE_OUTAGES:
                return True
    return False


def database_unavailable(cause: BaseException | None = None) -> Unavailable:
    """The error a client gets while the database is away."""
    error = Unavailable("the database is unavailable; retry shortly")
    if cause is not None:
        error.__cause__ = cause
    return error
