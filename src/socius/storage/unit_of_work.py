"""The SQL unit of work: one connection, one transaction, repositories bound to it.

A database that cannot be used (down, restarting, locked: ``storage/outage.py``) leaves
a unit of work as the domain's ``Unavailable``, which clients get as a 503 with
``Retry-After``, whether it failed to open, in a statement or at commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Self

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from socius.storage.attachments import SqlAttachmentRepository
from socius.storage.audit import SqlAuditRepository
from socius.storage.conversations import SqlConversationRepository
from socius.storage.domain_events import (
    SqlDomainEventRepository,
    SqlLeaseRepository,
    SqlStreamRepository,
)
from socius.storage.edges import SqlEdgeRepository
from socius.storage.engine import READ_OPTION, WRITE_OPTION, make_engine
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
from socius.storage.reads import HotReads
from socius.storage.reports import SqlReportRepository
from socius.storage.search import SqlSearchRepository
from socius.storage.sends import SqlSendRepository
from socius.storage.sessions import SqlSessionRepository
from socius.storage.signing_keys import SqlSigningKeyRepository
from socius.storage.suggestion_lists import SqlSuggestionListRepository
from socius.storage.threads import SqlThreadRepository
from socius.storage.users import SqlUserRepository
from socius.storage.webhooks import SqlWebhookRepository

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["Database", "SqlUnitOfWork"]

AfterCommit = Callable[[], Awaitable[None]]
UsersChanged = Callable[[set[int]], Awaitable[None]]

log = structlog.get_logger("socius.storage")


class SqlUnitOfWork:
    """Rolls back unless ``commit()`` is called; runs after-commit callbacks on success."""

    users: SqlUserRepository
    sessions: SqlSessionRepository
    signing_keys: SqlSigningKeyRepository
    edges: SqlEdgeRepository
    outbox: SqlOutboxRepository
    conversations: SqlConversationRepository
    notifications: SqlNotificationRepository
    one_time_tokens: SqlOneTimeTokenRepository
    mfa: SqlMfaRepository
    audit: SqlAuditRepository
    sends: SqlSendRepository
    challenges: SqlAuthChallengeRepository
    identities: SqlIdentityRepository
    passkeys: SqlPasskeyRepository
    domain_events: SqlDomainEventRepository
    stream: SqlStreamRepository
    leases: SqlLeaseRepository
    webhooks: SqlWebhookRepository
    attachments: SqlAttachmentRepository
    reports: SqlReportRepository
    threads: SqlThreadRepository
    search: SqlSearchRepository
    push: SqlPushRepository
    suggestion_lists: SqlSuggestionListRepository

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
        self.users = SqlUserRepository(conn)
        self.sessions = SqlSessionRepository(conn)
        self.signing_keys = SqlSigningKeyRepository(conn)
        self.edges = SqlEdgeRepository(conn)
        self.outbox = SqlOutboxRepository(conn)
        self.conversations = SqlConversationRepository(conn)
        self.notifications = SqlNotificationRepository(conn)
        self.one_time_tokens = SqlOneTimeTokenRepository(conn)
        self.mfa = SqlMfaRepository(conn)
        self.audit = SqlAuditRepository(conn)
        self.sends = SqlSendRepository(conn)
        self.challenges = SqlAuthChallengeRepository(conn)
        self.identities = SqlIdentityRepository(conn)
        self.passkeys = SqlPasskeyRepository(conn)
        self.domain_events = SqlDomainEventRepository(conn)
        self.stream = SqlStreamRepository(conn)
        self.leases = SqlLeaseRepository(conn)
        self.webhooks = SqlWebhookRepository(conn)
        self.attachments = SqlAttachmentRepository(conn)
        self.reports = SqlReportRepository(conn)
        self.threads = SqlThreadRepository(conn)
        self.search = SqlSearchRepository(conn)
        self.push = SqlPushRepository(conn)
        self.suggestion_lists = SqlSuggestionListRepository(conn)
        return self

    def after_commit(self, callback: AfterCommit) -> None:
        self._after.append(callback)

    async def commit(self) -> None:
        assert self._tx is not None, "nothing to commit: a read-only unit of work, or not entered"
        await self._tx.commit()
        self._tx = None
        self._release()  # the next writer may start while this one's callbacks run
        callbacks, self._after = self._after, []
        changed = self.users.changed
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
        #: After a commit that updated or deleted users, with their ids (node caches).
        self.on_users_changed: UsersChanged | None = None

    @property
    def dialect(self) -> str:
        return self.primary.dialect.name

    def __call__(self, *, write: bool = True, replica: bool = False) -> SqlUnitOfWork:
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
        await self.reads.close()
        await self.primary.dispose()
        for engine in self.replicas:
            await engine.dispose()
