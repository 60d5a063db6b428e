"""The SQL unit of work: one connection, one transaction, repositories bound to it.

A database that cannot be used (down, restarting, locked: ``storage/outage.py``) leaves
a unit of work as the domain's ``Unavailable``, which clients get as a 503 with
``Retry-After``, whether it failed to open, in a statement or at commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections.abc import Awaitable, Callable
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from socius.domain.errors import DomainError, Unavailable
from socius.storage.attachments import SqlAttachmentRepository
from socius.storage.audit import SqlAuditRepository
from socius.storage.conversations import SqlConversationRepository
from socius.storage.domain_events import (
    SqlDomainEventRepository,
    SqlLeaseRepository,
    SqlStreamRepository,
)
from socius.storage.driver import DriverConnection
from socius.storage.edges import SqlEdgeRepository
from socius.storage.engine import (
    READ_OPTION,
    SQLITE_BUSY_TIMEOUT_S,
    SQLITE_PRAGMAS,
    WRITE_OPTION,
    make_engine,
    sqlite_path,
)
from socius.storage.federation import (
    SqlAuthChallengeRepository,
    SqlIdentityRepository,
    SqlPasskeyRepository,
)
from socius.storage.mfa import SqlMfaRepository
from socius.storage.notifications import SqlNotificationRepository
from socius.storage.one_time_tokens import SqlOneTimeTokenRepository
from socius.storage.outage import database_unavailable, is_outage
from socius.storage.outbox import SqlOutboxRepository
from socius.storage.push import SqlPushRepository
from socius.storage.reads import ACQUIRE_TIMEOUT_S, HotReads, lost, lost_under
from socius.storage.reports import SqlReportRepository
from socius.storage.search import SqlSearchRepository
from socius.storage.sends import SqlSendRepository
from socius.storage.sessions import SqlSessionRepository
from socius.storage.signing_keys import SqlSigningKeyRepository
from socius.storage.sqlite_driver import InLoopConnection
from socius.storage.suggestion_lists import SqlSuggestionListRepository
from socius.storage.threads import SqlThreadRepository
from socius.storage.users import SqlUserRepository
from socius.storage.webhooks import SqlWebhookRepository

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["Database", "DriverUnitOfWork", "SqlUnitOfWork"]

AfterCommit = Callable[[], Awaitable[None]]
UsersChanged = Callable[[set[int]], Awaitable[None]]

log = structlog.get_logger("socius.storage")
_WRITER_STATEMENTS = 512


class SqlUnitOfWork:
    """Rolls back unless ``commit()`` is called; runs after-commit callbacks on success.

    Repositories are made on first use: a unit of work uses one or two of them."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        write: bool,
        write_lock: asyncio.Lock | None = None,
        on_users_changed: UsersChanged | None = None,
    ) -> None:
        self._engine = engine
        self._on_users_changed = on_users_changed
        self._write = write
        self._write_lock = write_lock if write else None
        self._holds_lock = False
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None
        self._after: list[AfterCommit] = []

    async def __aenter__(self) -> Self:
        if self._write_lock is not None:
            await self._write_lock.acquire()
            self._holds_lock = True
        try:
            return await self._open()
        except BaseException as exc:
            await self._discard()
            self._release()
            if isinstance(exc, Exception) and is_outage(exc):
                raise database_unavailable(exc) from exc
            raise

    async def _discard(self) -> None:
        """Give back a connection that was opened before a failure (never raises)."""
        conn, self._conn, self._tx = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    def _release(self) -> None:
        if self._holds_lock and self._write_lock is not None:
            self._holds_lock = False
            self._write_lock.release()

    async def _open(self) -> Self:
        conn = self._conn = await self._engine.connect()
        if self._write:
            conn = await conn.execution_options(**{WRITE_OPTION: True})
            self._tx = await conn.begin()
        else:
            # Reads need no transaction: each statement sees what is committed. This
            # spares the BEGIN and ROLLBACK round trips around (often) one query.
            if conn.dialect.name == "sqlite":
                conn = await conn.execution_options(**{READ_OPTION: True})
            else:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        self._conn = conn
        self._bind = conn
        return self

    @cached_property
    def users(self) -> SqlUserRepository:
        return SqlUserRepository(self._bind)

    @cached_property
    def sessions(self) -> SqlSessionRepository:
        return SqlSessionRepository(self._bind)

    @cached_property
    def signing_keys(self) -> SqlSigningKeyRepository:
        return SqlSigningKeyRepository(self._bind)

    @cached_property
    def edges(self) -> SqlEdgeRepository:
        return SqlEdgeRepository(self._bind)

    @cached_property
    def outbox(self) -> SqlOutboxRepository:
        return SqlOutboxRepository(self._bind)

    @cached_property
    def conversations(self) -> SqlConversationRepository:
        return SqlConversationRepository(self._bind)

    @cached_property
    def notifications(self) -> SqlNotificationRepository:
        return SqlNotificationRepository(self._bind)

    @cached_property
    def one_time_tokens(self) -> SqlOneTimeTokenRepository:
        return SqlOneTimeTokenRepository(self._bind)

    @cached_property
    def mfa(self) -> SqlMfaRepository:
        return SqlMfaRepository(self._bind)

    @cached_property
    def audit(self) -> SqlAuditRepository:
        return SqlAuditRepository(self._bind)

    @cached_property
    def sends(self) -> SqlSendRepository:
        return SqlSendRepository(self._bind)

    @cached_property
    def challenges(self) -> SqlAuthChallengeRepository:
        return SqlAuthChallengeRepository(self._bind)

    @cached_property
    def identities(self) -> SqlIdentityRepository:
        return SqlIdentityRepository(self._bind)

    @cached_property
    def passkeys(self) -> SqlPasskeyRepository:
        return SqlPasskeyRepository(self._bind)

    @cached_property
    def domain_events(self) -> SqlDomainEventRepository:
        return SqlDomainEventRepository(self._bind)

    @cached_property
    def stream(self) -> SqlStreamRepository:
        return SqlStreamRepository(self._bind)

    @cached_property
    def leases(self) -> SqlLeaseRepository:
        return SqlLeaseRepository(self._bind)

    @cached_property
    def webhooks(self) -> SqlWebhookRepository:
        return SqlWebhookRepository(self._bind)

    @cached_property
    def attachments(self) -> SqlAttachmentRepository:
        return SqlAttachmentRepository(self._bind)

    @cached_property
    def reports(self) -> SqlReportRepository:
        return SqlReportRepository(self._bind)

    @cached_property
    def threads(self) -> SqlThreadRepository:
        return SqlThreadRepository(self._bind)

    @cached_property
    def search(self) -> SqlSearchRepository:
        return SqlSearchRepository(self._bind)

    @cached_property
    def push(self) -> SqlPushRepository:
        return SqlPushRepository(self._bind)

    @cached_property
    def suggestion_lists(self) -> SqlSuggestionListRepository:
        return SqlSuggestionListRepository(self._bind)

    def after_commit(self, callback: AfterCommit) -> None:
        self._after.append(callback)

    async def commit(self) -> None:
        assert self._tx is not None, "nothing to commit: a read-only unit of work, or not entered"
        await self._tx.commit()
        self._tx = None
        self._release()  # the next writer may start while this one's callbacks run
        await self._committed()

    async def _committed(self) -> None:
        """The after-commit work, once the transaction is durable."""
        callbacks, self._after = self._after, []
        users: SqlUserRepository | None = self.__dict__.get("users")  # (made on first use)
        changed = users.changed if users is not None else None
        if changed and self._on_users_changed is not None:
            # Before the others: whatever they publish is read with the user's new row.
            await self._on_users_changed(set(changed))
        for callback in callbacks:
            await callback()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._after = []
        try:
            if self._tx is not None and self._tx.is_active:
                await self._tx.rollback()
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
        except Exception as cleanup:
            # The work's own outcome (its result, or its error) stands: a connection that
            # died fails its clean-up too, and the pool has dropped it by now.
            log.warning("unit of work clean-up failed", error=repr(cleanup))
            await self._discard()
        finally:
            self._release()
        if isinstance(exc, Exception) and is_outage(exc):
            raise database_unavailable(exc) from exc


class _PoolSource:
    """PostgreSQL: connections of the driver pool (``storage/reads.py``).

    A few of them stay checked out between write units of work (a fifth of the pool,
    none below five connections: the hot reads wait for the rest; idle here):
    handing one over is a list's pop and taking it back an append, where asyncpg's
    ``acquire`` and ``release`` cost ~30 µs a write (a checkout, a reset hook, and a
    task for the ``asyncio.shield`` around every release: decision 0053). Only a
    connection given back clean is kept (the work ended without an error other than
    the domain's own, none of which leaves a statement in flight; not closed, no
    transaction open); any other goes back to the pool, which checks it as before."""

    def __init__(self, reads: HotReads, *, keep: int) -> None:
        self._reads = reads
        self._pool: Any = None
        self._keep = keep
        self._idle: list[Any] = []
        self._closed = False

    async def acquire(self) -> Any:
        while self._idle:
            raw = self._idle.pop()
            if not lost(raw):
                return raw
            # Closed while kept (a database restart ends every session; asyncpg has
            # then detached it, decision 0058): the pool opens a new one in its slot, as
            # its checkout does for its own.
            await self._pool.release(raw)
        self._pool = self._pool or await self._reads.driver_pool()
        # As the engine's pool_timeout: no connection in time is an outage (503). Not
        # ``acquire(timeout=)``: on Python < 3.12 asyncpg runs that through a wait_for of
        # its own, a task per checkout; the timeout scope is a timer (decision 0046).
        async with asyncio.timeout(ACQUIRE_TIMEOUT_S):
            return await self._pool.acquire()

    async def release(self, raw: Any, *, broken: bool, clean: bool = False) -> None:
        if lost(raw):  # detached (its slot is back in the pool already) or closed
            await self._pool.release(raw)
        elif broken:
            raw.terminate()
        elif (
            clean
            and not self._closed
            and len(self._idle) < self._keep
            and not raw.is_in_transaction()
        ):
            self._idle.append(raw)
        else:
            await self._pool.release(raw)

    async def close(self) -> None:
        """Give the kept connections back to the pool (before it closes: it waits for
        every connection checked out), and keep none given back later."""
        self._closed = True
        idle, self._idle = self._idle, []
        for raw in idle:
            await self._pool.release(raw)


class _SqliteWriter:
    """SQLite: one connection of its own for the driver's write units of work, which
    hold the database's write lock (one writer at a time, as every writer in this
    process) from open to commit; opened on first use, as the engine opens its own.

    While no transaction is open on it, the hot reads run on it too (``idle``): in WAL
    mode a connection's page cache is emptied whenever another connection has committed
    since its last read, so a reader of its own would start cold after nearly every
    graph write (decision 0042); this one keeps its pages across its own commits."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: InLoopConnection | None = None
        self._closed = False

    def _open(self) -> InLoopConnection:
        if self._conn is None:
            raw = sqlite3.connect(
                self._path,
                isolation_level=None,
                check_same_thread=False,
                timeout=0,
                # The writes' and the hot reads' texts (one per IN-list length): kept
                # prepared beside each other rather than evicting each other at 128.
                cached_statements=_WRITER_STATEMENTS,
            )
            for pragma in SQLITE_PRAGMAS:
                raw.execute(pragma)
            self._conn = InLoopConnection(raw, SQLITE_BUSY_TIMEOUT_S)
        return self._conn

    async def acquire(self) -> Any:
        return self._open()

    def idle(self) -> sqlite3.Connection | None:
        """The writer's sqlite3 connection while no transaction is open on it (a read
        there sees what is committed, as on any other connection), else None."""
        if self._closed:
            return None
        raw = (self._conn or self._open())._connection
        return raw if raw is not None and not raw.in_transaction else None

    async def release(self, raw: Any, *, broken: bool, clean: bool = False) -> None:  # noqa: ARG002
        conn = self._conn
        if broken and conn is not None and conn is raw:
            self._conn = None
            conn.stop()

    def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.stop()


class DriverUnitOfWork(SqlUnitOfWork):
    """A unit of work on the driver itself (asyncpg, sqlite3), for work whose statements
    all go to the driver (decision 0033): a graph write (``lock_pair``, ``pair_state``,
    ``write_pair``), a profile update (``update_profile``), the relay's read and delete
    of its batch (PostgreSQL). No SQLAlchemy connection, transaction or greenlet: a
    connection of the driver pool (PostgreSQL) or the writer's own (SQLite, under the
    write lock), ``BEGIN`` sent with the first statement, ``COMMIT`` or ``ROLLBACK`` by
    hand, the connection given back before the after-commit callbacks run. Its
    repositories get a ``DriverConnection``; only their paths that send on the driver
    may be used."""

    def __init__(
        self,
        engine: AsyncEngine,
        source: _PoolSource | _SqliteWriter,
        *,
        write: bool = True,
        write_lock: asyncio.Lock | None = None,
        on_users_changed: UsersChanged | None = None,
    ) -> None:
        super().__init__(
            engine, write=write, write_lock=write_lock, on_users_changed=on_users_changed
        )
        self._source = source
        self._driver: DriverConnection | None = None
        self._raw: Any = None

    async def __aenter__(self) -> Self:
        if self._write_lock is not None:
            await self._write_lock.acquire()
            self._holds_lock = True
        try:
            self._raw = await self._source.acquire()
        except BaseException as exc:
            self._release()
            if isinstance(exc, Exception) and is_outage(exc):
                raise database_unavailable(exc) from exc
            raise
        driver = self._driver = DriverConnection(
            self._raw, self._engine.dialect, self._engine.sync_engine.dispatch, write=self._write
        )
        self._bind = cast(AsyncConnection, driver)  # (see the class's docstring)
        return self

    async def commit(self) -> None:
        assert self._write, "nothing to commit: a read-only unit of work"
        assert self._driver is not None, "not entered"
        await self._driver.end(commit=True)
        await self._give_back(clean=True)  # before the callbacks: they need no connection
        await self._committed()

    async def _give_back(self, *, clean: bool = False) -> None:
        """End what has begun (``ROLLBACK``), give the connection back, and let the next
        writer in. ``clean``: no statement can be in flight on it (its source may keep
        it, ``_PoolSource``)."""
        driver, raw, self._driver, self._raw = self._driver, self._raw, None, None
        if raw is None:
            self._release()
            return
        broken = True
        try:
            if driver is not None and driver.in_transaction():
                await driver.end(commit=False)
            broken = False
        except Exception as cleanup:
            # The work's own outcome stands; a connection in an unknown state goes.
            log.warning("unit of work clean-up failed", error=repr(cleanup))
        finally:
            try:
                await self._source.release(raw, broken=broken, clean=clean and not broken)
            finally:
                self._release()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._after = []
        # The domain's refusals come between statements; anything else (an outage, a
        # cancellation, a driver error) may have left one in flight.
        clean = exc is None or (isinstance(exc, DomainError) and not isinstance(exc, Unavailable))
        gone = exc is not None and self._raw is not None and lost_under(exc, self._raw)
        await self._give_back(clean=clean)
        if isinstance(exc, Exception) and (gone or is_outage(exc)):
            raise database_unavailable(exc) from exc


class Database:
    """The primary engine and any read replicas; makes units of work."""

    def __init__(
        self,
        url: str,
        *,
        replica_urls: list[str] | None = None,
        pool_size: int = 20,
        echo: bool = False,
    ) -> None:
        self.url = url
        self.primary = make_engine(url, pool_size=pool_size, echo=echo)
        self.replicas = [
            make_engine(r, pool_size=pool_size, echo=echo) for r in (replica_urls or [])
        ]
        self._next_replica = itertools.cycle(range(len(self.replicas) or 1))
        #: The hottest primary-key reads, on the driver (storage/reads.py).
        self.reads = HotReads(url, pool_size=pool_size, engine=self.primary)
        # SQLite has one writer at a time. Queue writers here, in order, rather than let
        # them collide on the database lock and sleep in SQLite's busy handler (whose
        # back-off grows to 100 ms a try): an embedded server is one process.
        self._write_lock = asyncio.Lock() if self.primary.dialect.name == "sqlite" else None
        self._driver_pool = _PoolSource(self.reads, keep=pool_size // 5)
        path = sqlite_path(url)
        self._sqlite_writer = _SqliteWriter(path) if path else None
        if self._sqlite_writer is not None:
            self.reads.read_on(self._sqlite_writer.idle)
        #: After a commit that updated or deleted users, with their ids (node caches).
        self.on_users_changed: UsersChanged | None = None

    @property
    def dialect(self) -> str:
        return self.primary.dialect.name

    def __call__(
        self, *, write: bool = True, replica: bool = False, driver: bool = False
    ) -> SqlUnitOfWork:
        """``driver``: the work's statements all go to the driver (``DriverUnitOfWork``,
        on PostgreSQL; elsewhere the usual unit of work)."""
        if driver and self.reads.postgres and (write or not replica or not self.replicas):
            return DriverUnitOfWork(
                self.primary,
                self._driver_pool,
                write=write,
                on_users_changed=self.on_users_changed,
            )
        if driver and write and self._sqlite_writer is not None:
            return DriverUnitOfWork(
                self.primary,
                self._sqlite_writer,
                write_lock=self._write_lock,
                on_users_changed=self.on_users_changed,
            )
        engine = self.primary
        if replica and not write and self.replicas:
            engine = self.replicas[next(self._next_replica)]
        return SqlUnitOfWork(
            engine,
            write=write,
            write_lock=self._write_lock,
            on_users_changed=self.on_users_changed,
        )

    def trace(self, tracer: Tracer) -> None:
        """Make every statement of every engine a span of ``tracer`` (tracing is on)."""
        from socius.storage.sql_spans import trace_engine

        for engine in (self.primary, *self.replicas):
            trace_engine(engine, tracer)

    async def ping(self) -> None:
        async with self.primary.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def pool_stats(self) -> dict[str, int]:
        """Checked-out and idle connections of the primary pool."""
        pool = self.primary.sync_engine.pool
        checked_out = getattr(pool, "checkedout", lambda: 0)()
        idle = getattr(pool, "checkedin", lambda: 0)()
        return {"in_use": int(checked_out), "idle": int(idle)}

    async def dispose(self) -> None:
        if self._sqlite_writer is not None:
            self._sqlite_writer.close()
        await self._driver_pool.close()
        await self.reads.close()
        await self.primary.dispose()
        for engine in self.replicas:
            await engine.dispose()
