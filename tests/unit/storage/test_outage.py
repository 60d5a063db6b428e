"""Which database errors are outages (503, retry) and which are not (a bug or the caller's
conflict), told by type and result code: checked on errors the real drivers raise."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import exc as sa
from sqlalchemy import text

from socius.domain.errors import Unavailable
from socius.storage.engine import make_engine
from socius.storage.outage import database_unavailable, is_outage


def raised(call: object, *args: object) -> BaseException:
    try:
        call(*args)  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("nothing was raised")


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, sqlite3.Connection]]:
    """Two connections to one file; the first holds the write lock."""
    path = tmp_path / "x.db"
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    yield holder, other
    other.close()
    holder.close()


def test_sqlite_lock_and_open_failures_are_outages(locked, tmp_path):
    _, other = locked
    assert is_outage(raised(other.execute, "INSERT INTO t VALUES (2)"))  # SQLITE_BUSY
    assert is_outage(raised(sqlite3.connect, str(tmp_path / "missing" / "x.db")))  # CANTOPEN


def test_sqlite_statement_errors_are_not(locked):
    holder, _ = locked
    assert not is_outage(raised(holder.execute, "SELECT * FROM no_such_table"))
    assert not is_outage(raised(holder.execute, "INSERT INTO t VALUES (1)"))  # a duplicate
    assert not is_outage(raised(holder.execute, "SELEKT 1"))


async def test_sqlalchemy_wrapped_errors_are_told_apart(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    try:
        with pytest.raises(sa.OperationalError) as info:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert is_outage(info.value)  # wraps SQLITE_CANTOPEN
    finally:
        await engine.dispose()
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as conn:
            with pytest.raises(sa.OperationalError) as info:
                await conn.execute(text("SELECT * FROM no_such_table"))
        assert not is_outage(info.value)
    finally:
        await engine.dispose()


async def test_postgres_connection_errors_are_outages():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = make_engine(f"postgresql://socius@127.0.0.1:{port}/socius")
    try:
        with pytest.raises(ConnectionRefusedError) as info:
            async with engine.connect():
                pass
        assert is_outage(info.value)
    finally:
        await engine.dispose()
    for error in (
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        TimeoutError(),
        sa.TimeoutError("QueuePool limit reached"),
    ):
        assert is_outage(error), error
    for error in (
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.UndefinedTableError("relation does not exist"),
        asyncpg.exceptions.InterfaceError("another operation is in progress"),
        ValueError("a bug"),
    ):
        assert not is_outage(error), error


def test_the_cause_chain_is_followed():
    def wrapped() -> None:
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("wrapped") from inner

    assert is_outage(raised(wrapped))
    error = database_unavailable(ConnectionRefusedError())
    assert isinstance(error, Unavailable)
    assert error.code == "unavailable"
    assert error.retry_after >= 1
