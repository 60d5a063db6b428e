"""SQLite run on the event loop's own thread, behind the asyncio driver interface that
SQLAlchemy's ``aiosqlite`` dialect expects.

aiosqlite hands every call to a thread of its own and back, which costs ~175 µs of CPU
per statement on our machine while the statement itself takes 1 to 20 µs (decision 0007).
Here each call runs at once, on the loop: an indexed read or write of a few rows blocks
the loop for microseconds, less than the hand-over did.

Waiting for the database lock must not block the loop, so the busy timeout is 0 and a
``database is locked`` outside a transaction (``BEGIN IMMEDIATE`` or an autocommit read)
is retried here with ``asyncio.sleep`` until ``busy_timeout`` seconds have passed. Inside
one process writers already queue on the unit of work's lock; this waits only for other
processes (``socius worker``, an admin command).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

__all__ = ["InLoopConnection", "connect"]

T = TypeVar("T")

_FIRST_WAIT = 0.001
_MAX_WAIT = 0.05


_BUSY = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)


def _is_locked(error: sqlite3.OperationalError) -> bool:
    """Another connection holds the lock (by the result code, not the message)."""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _BUSY


class InLoopCursor:
    """An aiosqlite-shaped cursor whose coroutines finish without suspending."""

    __slots__ = ("_conn", "_cursor")

    def __init__(self, conn: InLoopConnection) -> None:
        self._conn = conn
        self._cursor = conn._conn.cursor()

    async def __aenter__(self) -> InLoopCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InLoopCursor:
        if parameters is None:
            await self._conn._run(self._cursor.execute, sql)
        else:
            await self._conn._run(self._cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> InLoopCursor:
        await self._conn._run(self._cursor.executemany, sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _Immediate:
    """Stands in for aiosqlite's request queue: SQLAlchemy's adapter sets the isolation
    level by putting a function on it; here the function runs at once."""

    __slots__ = ()

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting caller
            if future is not None:
                future.set_exception(exc)
            return
        if future is not None:
            future.set_result(result)


class InLoopConnection:
    """The subset of ``aiosqlite.Connection`` that SQLAlchemy's adapter uses."""

    def __init__(self, conn: sqlite3.Connection, busy_timeout: float) -> None:
        self._conn = conn
        self._tx = _Immediate()
        self._busy_timeout = busy_timeout
        self._closed = False

    @property
    def _connection(self) -> sqlite3.Connection | None:
        """aiosqlite's name for the open sqlite3 connection (None once closed)."""
        return None if self._closed else self._conn

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        try:
            return call(*args)
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or self._conn.in_transaction:
                raise
        # Another process holds the lock and we hold nothing yet: wait without blocking.
        deadline = time.monotonic() + self._busy_timeout
        wait = _FIRST_WAIT
        while True:
            await asyncio.sleep(wait)
            try:
                return call(*args)
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc) or self._conn.in_transaction:
                    raise
                if time.monotonic() >= deadline:
                    raise
            wait = min(wait * 2, _MAX_WAIT)

    def cursor(self) -> InLoopCursor:
        return InLoopCursor(self)

    async def execute_fetchall(
        self, sql: str, parameters: Sequence[Any] | None = None
    ) -> list[Any]:
        """aiosqlite's one-call query (``storage/driver.py`` uses it)."""
        cursor = self._conn.cursor()
        try:
            await self._run(cursor.execute, sql, parameters or ())
            return cursor.fetchall()
        finally:
            cursor.close()

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        self._closed = True
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)


def connect(path: str, *, busy_timeout: float) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: connections to ``path``."""

    async def create() -> InLoopConnection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
        return InLoopConnection(conn, busy_timeout)

    return create
