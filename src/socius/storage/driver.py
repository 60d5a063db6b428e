"""The hottest reads, sent on the driver's own connection.

Through SQLAlchemy a statement is built, keyed, compiled and its rows processed. Here it
is one call: ``execute_fetchall`` on SQLite (run on the loop, decision 0007), ``fetch``
on asyncpg (its own prepared-statement cache). On PostgreSQL in read-only units of
work, and in a write unit of work once its transaction is open: SQLAlchemy begins it
lazily, at its own first statement, so a statement sent before that would run outside
the transaction. On SQLite a write unit of work's ``BEGIN IMMEDIATE`` has run on this
very connection when it opens.

SQL is written once with ``?`` placeholders and numbered (``$1``...) for asyncpg.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.events import JsonPayload
from socius.storage.engine import READ_OPTION
from socius.storage.outage import database_unavailable, is_outage

__all__ = [
    "DriverConnection",
    "direct",
    "fetch",
    "fetch_any",
    "fetch_arrays",
    "json_texts",
    "numbered",
    "on_driver",
    "read_timestamp",
    "write_timestamp",
]


class _Statement:
    """What the engine's statement listeners are handed for a statement sent here (they
    keep per-statement state in ``info``, as on a SQLAlchemy connection)."""

    __slots__ = ("info",)

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}


class DriverConnection:
    """A unit of work's connection on the driver itself (asyncpg, or ``sqlite_driver``'s
    ``InLoopConnection`` on SQLite, where ``BEGIN IMMEDIATE`` waits for other processes
    without blocking the loop), no SQLAlchemy around it
    (decision 0033): its transaction begins at its first statement (``BEGIN`` sent with
    it when the statement takes no parameters: ``begin_with``), or not at all for a
    statement that runs alone (``fetch(..., begin=False)``: atomic by itself).

    Statements are announced to the engine's statement listeners (the query-count pins
    and the SQL spans see them), as ``storage/reads.py`` does."""

    __slots__ = ("_dispatch", "_sqlite", "_write", "begun", "dialect", "driver")

    def __init__(self, driver: Any, dialect: Dialect, dispatch: Any, *, write: bool) -> None:
        """``write=False``: every statement runs alone (autocommit), as a read-only unit
        of work's does."""
        self.driver = driver
        self.dialect = dialect
        self._dispatch = dispatch
        self._write = write
        self._sqlite = dialect.name == "sqlite"
        self.begun = False

    async def begin_with(self, script: str, announced: str, *args: Any) -> None:
        """``BEGIN`` and ``script`` (no parameters: its values are inlined integers) in one
        round trip; listeners hear of ``announced`` with ``args``."""
        if self.begun or not self._write or self._sqlite:
            await self.fetch(announced, *args)
            return
        with self._announce(announced, args):
            await self._send(f"BEGIN; {script}")
        self.begun = True

    async def fetch(self, sql: str, *args: Any, begin: bool = True) -> Sequence[Sequence[Any]]:
        if begin and self._write and not self.begun:
            await self._send("BEGIN IMMEDIATE" if self._sqlite else "BEGIN")
            self.begun = True
        dispatch = self._dispatch
        if dispatch is None or not dispatch.before_cursor_execute:  # (no one listens)
            if self._sqlite:
                return await self._call(self.driver.execute_fetchall, sql, args)  # type: ignore[no-any-return]
            return await self._call(self.driver.fetch, _numbered(sql), *args)  # type: ignore[no-any-return]
        rows: Sequence[Sequence[Any]]
        with self._announce(sql, args):
            if self._sqlite:
                rows = await self._call(self.driver.execute_fetchall, sql, args)
            else:
                rows = await self._call(self.driver.fetch, _numbered(sql), *args)
        return rows

    async def fetch_each(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """``sql`` once per row of arguments, in order, in the transaction: on asyncpg
        pipelined (``executemany``: one round trip), on SQLite one after the other."""
        if not rows:
            return
        if self._write and not self.begun:
            await self._send("BEGIN IMMEDIATE" if self._sqlite else "BEGIN")
            self.begun = True
        if self._sqlite:
            for args in rows:
                with self._announce(sql, args):
                    await self._call(self.driver.execute_fetchall, sql, args)
            return
        with self._announce(sql, rows, many=True):  # as SQLAlchemy announces executemany
            await self._call(self.driver.executemany, _numbered(sql), rows)

    def in_transaction(self) -> bool:
        """Has a transaction begun (by the driver's account too: a ``BEGIN`` whose wait
        was cancelled may have reached the server)?"""
        if self.begun:
            return True
        if self._sqlite:
            return bool(self.driver.in_transaction)
        return bool(self.driver.is_in_transaction())

    async def end(self, *, commit: bool) -> None:
        """``COMMIT`` (or ``ROLLBACK``) what has begun."""
        if self.begun or (not commit and self.in_transaction()):
            self.begun = False
            await self._send("COMMIT" if commit else "ROLLBACK")

    async def _send(self, sql: str) -> None:
        if self._sqlite:
            await self._call(self.driver.execute_fetchall, sql, ())
        else:
            await self._call(self.driver.execute, sql)

    async def _call(self, method: Any, *args: Any) -> Any:
        try:
            return await method(*args)
        except Exception as exc:
            if is_outage(exc):
                raise database_unavailable(exc) from exc
            raise

    @contextlib.contextmanager
    def _announce(self, sql: str, args: Sequence[Any], *, many: bool = False) -> Iterator[None]:
        dispatch = self._dispatch
        if dispatch is None or not dispatch.before_cursor_execute:
            yield
            return
        seen = _Statement()
        dispatch.before_cursor_execute(seen, None, sql, args, None, many)
        try:
            yield
        finally:
            if dispatch.after_cursor_execute:
                dispatch.after_cursor_execute(seen, None, sql, args, None, many)


def on_driver(conn: object) -> DriverConnection | None:
    """``conn`` when it is a ``DriverConnection`` (a unit of work on the driver hands its
    repositories one in place of SQLAlchemy's connection), else None."""
    return conn if isinstance(conn, DriverConnection) else None


def direct(conn: AsyncConnection | DriverConnection) -> bool:
    """May a statement on ``conn`` go to the driver directly (see above)?"""
    if isinstance(conn, DriverConnection):
        return True
    sync = conn.sync_connection
    if sync is None:
        return False
    if conn.dialect.name == "sqlite":
        return True
    options = sync.get_execution_options()
    if options.get(READ_OPTION) or options.get("isolation_level") == "AUTOCOMMIT":
        return True
    # A write unit of work: only once SQLAlchemy's transaction has begun on the server.
    driver: Any = sync.connection.driver_connection
    return bool(driver.is_in_transaction())


def numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders numbered for asyncpg (``$1``, ``$2``...)."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], start=1)) + parts[-1]


_numbered = functools.lru_cache(maxsize=256)(numbered)  # the hot statements: fixed texts


async def fetch(
    conn: AsyncConnection | DriverConnection, sql: str, *args: Any
) -> Sequence[Sequence[Any]]:
    """The rows of one statement, as the driver returns them (tuples or records).

    Listeners of the engine's ``before_cursor_execute`` and ``after_cursor_execute``
    events still see the statement (the tests that pin how many statements a request runs
    count them there; the SQL spans start and end there)."""
    if isinstance(conn, DriverConnection):
        return await conn.fetch(sql, *args)
    sync = conn.sync_connection
    if sync is None or not sync.dispatch.before_cursor_execute:
        return await _fetch(conn, sql, args)
    sync.dispatch.before_cursor_execute(sync, None, sql, args, None, False)
    try:
        return await _fetch(conn, sql, args)
    finally:
        if sync.dispatch.after_cursor_execute:
            sync.dispatch.after_cursor_execute(sync, None, sql, args, None, False)


async def _fetch(conn: AsyncConnection, sql: str, args: Sequence[Any]) -> Sequence[Sequence[Any]]:
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    if conn.dialect.name == "postgresql":
        try:
            rows: Sequence[Sequence[Any]] = await driver.fetch(_numbered(sql), *args)
        except Exception as exc:
            # SQLAlchemy is not in this call to notice a dead connection: drop it here.
            if driver.is_closed():
                await conn.invalidate(exc)
                raise database_unavailable(exc) from exc
            raise
        return rows
    return list(await driver.execute_fetchall(sql, args))


async def fetch_any(
    conn: AsyncConnection | DriverConnection, sql: str, *args: Any
) -> Sequence[Sequence[Any]]:
    """``fetch``, also as a write unit of work's first statement on PostgreSQL: there it
    goes through ``exec_driver_sql`` (no statement built or compiled), which opens the
    transaction first. The rows as the driver returns them."""
    if isinstance(conn, DriverConnection) or direct(conn):
        return await fetch(conn, sql, *args)
    if conn.dialect.name == "postgresql":
        sql = _numbered(sql)
    result = await conn.exec_driver_sql(sql, tuple(args))
    return list(result.fetchall()) if result.returns_rows else []


async def fetch_arrays(
    conn: AsyncConnection | DriverConnection,
    sql: str,
    rows: Sequence[Sequence[Any]],
    *,
    json: Sequence[int] = (),
    begin: bool = True,
) -> Sequence[Sequence[Any]]:
    """``fetch`` of a PostgreSQL statement that takes ``rows`` a column an array
    (``unnest(?::bigint[], ?::text[], ...)``): one statement text whatever their count,
    no per-row work in asyncpg. The columns at the indexes ``json`` go as JSON texts
    (``json_texts``). ``begin=False`` on a ``DriverConnection``: the statement runs
    alone (atomic by itself) unless a transaction has begun. No rows: nothing is sent."""
    if not rows:
        return []
    columns: list[Any] = [list(column) for column in zip(*rows, strict=True)]
    for i in json:
        columns[i] = json_texts(columns[i])
    if isinstance(conn, DriverConnection):
        return await conn.fetch(sql, *columns, begin=begin)
    return await fetch(conn, sql, *columns)


_json = msgspec.json.Encoder()


def json_texts(values: Sequence[Any]) -> list[str]:
    """Each value as JSON text, an object shared by many values (a message's payload in
    each of its members' events) encoded once."""
    done: dict[int, str] = {}
    out: list[str] = []
    for value in values:
        text = done.get(id(value))
        if text is None:
            raw = value.json if type(value) is JsonPayload else _json.encode(value)
            text = done[id(value)] = raw.decode()
        out.append(text)
    return out


def read_timestamp(value: Any) -> datetime:
    """A ``UtcDateTime`` column as the driver returns it (SQLite: ISO text, naive UTC).

    SQLite's text is parsed with its offset appended: one C call, where parsing the naive
    text and then ``replace(tzinfo=UTC)`` cost several times more (decision 0042; a list
    page reads two timestamps a row)."""
    if value.__class__ is str:
        try:
            parsed: datetime | None = datetime.fromisoformat(value + "+00:00")
        except ValueError:  # a text with an offset of its own
            parsed = None
        if parsed is not None and parsed.tzinfo is UTC:
            return parsed
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def write_timestamp(value: datetime, dialect: str) -> Any:
    """An aware datetime as ``UtcDateTime`` stores it: on SQLite SQLAlchemy's DATETIME
    text (naive UTC, microseconds), on PostgreSQL the aware value."""
    if value.tzinfo is None:
        raise ValueError("UtcDateTime needs an aware datetime")
    utc = value.astimezone(UTC)
    if dialect == "sqlite":
        return utc.strftime("%Y-%m-%d %H:%M:%S.%f")
    return utc
