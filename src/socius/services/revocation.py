"""The revocation list: sessions whose access tokens must stop working at once.

Durable in the database (``revoked_sessions``, written in the revoking transaction) and
held in every node's memory, fed by the bus (docs/decisions/0016): a check is a dictionary
lookup while this node's bus link is current. The revoking node adds the sessions to its
memory as soon as the transaction commits; every other node hears them on the bus within
milliseconds. While the link is not current (lost, or back but not yet caught up) every
check asks Redis and then the database: a Redis miss proves nothing (a revocation made
while Redis was down is not there), so only the database says "not revoked" then.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import msgspec
import structlog

from socius.domain.errors import CacheUnavailable
from socius.services.bus_link import BusLink
from socius.services.ports import Cache, Clock, UnitOfWork, UnitOfWorkFactory

__all__ = ["SUBJECT", "Revocations"]

log = structlog.get_logger("socius.revocation")

SUBJECT = "revocations"
_SKEW = timedelta(seconds=120)  # catch-up reads this far behind its last point: clock skew


class _Notice(msgspec.Struct, array_like=True):
    """What a revocation looks like on the bus: the sessions and until when (epoch s)."""

    sessions: list[int]
    until: float


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Notice).decode


class Revocations:
    subject = SUBJECT

    def __init__(
        self,
        cache: Cache,
        uow: UnitOfWorkFactory,
        clock: Clock,
        *,
        token_ttl_seconds: int,
        link: BusLink | None = None,
        on_cache_error: Callable[[str], None] = lambda _op: None,
        on_revoked: Callable[[int, list[int]], Awaitable[None]] | None = None,
        on_check: Callable[[str], None] = lambda _source: None,
    ) -> None:
        """``on_revoked(user_id, session_ids)`` runs after a revoking transaction commits
        (the WebSocket gateway closes those sessions' sockets through it). ``link``: the
        bus link whose followers this list is; without one (tests, the CLI) memory is
        never trusted alone. ``on_check(source)``: counts where a check was answered."""
        self._cache = cache
        self._uow = uow
        self._clock = clock
        self._ttl = token_ttl_seconds + 60  # outlive the last token, with skew to spare
        self._link = link
        self._on_cache_error = on_cache_error
        self._on_revoked = on_revoked
        self._on_check = on_check
        self._memory: dict[int, float] = {}  # session id -> until (epoch seconds)
        self._dirty = False
        self._watermark: datetime | None = None  # the newest ``until`` read from the table
        if link is not None:
            link.follow(self)

    def horizon(self) -> datetime:
        """Until when a revocation made now must be remembered."""
        return self._clock() + timedelta(seconds=self._ttl)

    @property
    def trusted(self) -> bool:
        """Whether memory alone answers checks (the bus link is current)."""
        return self._link is not None and self._link.current

    # ------------------------------------------------------------------ revoking

    async def record(
        self, uow: UnitOfWork, session_ids: list[int], *, user_id: int | None = None
    ) -> None:
        """Inside the revoking transaction: write it down, and publish it after commit.
        ``user_id``: whose sessions they are (looked up when not given)."""
        if not session_ids:
            return
        until = self.horizon()
        await uow.sessions.record_revocations(session_ids, until)
        ids = list(session_ids)
        owners: dict[int, list[int]] = {}
        if self._on_revoked is not None:
            if user_id is not None:
                owners[user_id] = ids
            else:
                for sid in ids:
                    session = await uow.sessions.get(sid)
                    if session is not None:
                        owners.setdefault(session.user_id, []).append(sid)

        async def publish() -> None:
            # First, before any await: refused here from now on.
            self._remember(ids, until.timestamp())
            if self._link is not None:
                await self._link.publish(SUBJECT, _encode(_Notice(ids, until.timestamp())))
            await self._store(ids, float(self._ttl))
            if self._on_revoked is not None:
                for owner, sids in owners.items():
                    try:
                        await self._on_revoked(owner, sids)
                    except Exception:  # the sockets' periodic check closes them anyway
                        log.exception("revocation notice failed", sessions=len(sids))

        uow.after_commit(publish)

    def _remember(self, session_ids: Sequence[int], until: float) -> None:
        memory = self._memory
        for sid in session_ids:
            if memory.get(sid, 0.0) < until:
                memory[sid] = until

    async def _store(self, session_ids: list[int], ttl: float) -> None:
        """Copy into Redis, where nodes whose link is not current look first."""
        try:
            await self._cache.set_many([(_key(sid), b"1", ttl) for sid in session_ids])
        except CacheUnavailable:
            # Durable in the database, which answers every check Redis does not.
            self._dirty = True
            self._on_cache_error("revocation_publish")
            log.warning("revocation not cached", sessions=len(session_ids))

    # ------------------------------------------------------------------ checking

    def known_revoked(self, session_id: int) -> bool | None:
        """Without I/O: True when memory knows the session revoked, False when memory
        alone may answer (the link is current) and does not, None when the shared stores
        must be asked (``is_revoked``). For a front that wants to skip the await."""
        if session_id in self._memory:
            return True
        return False if self.trusted else None

    async def is_revoked(self, session_id: int) -> bool:
        if session_id in self._memory:
            self._on_check("memory")
            return True
        if self.trusted:
            self._on_check("memory")
            return False
        return session_id in await self._ask_stores([session_id])

    async def revoked_among(self, session_ids: Sequence[int]) -> set[int]:
        """Those of ``session_ids`` that are revoked (the gateway re-checks all its
        sockets' sessions this way)."""
        if not session_ids:
            return set()
        known = {s for s in session_ids if s in self._memory}
        if self.trusted:
            return known
        rest = [s for s in session_ids if s not in known]
        return known | (await self._ask_stores(rest) if rest else set())

    async def _ask_stores(self, session_ids: Sequence[int]) -> set[int]:
        """Redis, then the database for whatever Redis did not hold."""
        try:
            found = await self._cache.get_many([_key(s) for s in session_ids])
            revoked = {s for s, hit in zip(session_ids, found, strict=True) if hit is not None}
        except CacheUnavailable:
            self._on_cache_error("revocation_check")
            revoked = set()
        rest = [s for s in session_ids if s not in revoked]
        if revoked:
            self._on_check("redis")
        if rest:
            self._on_check("database")
            now = self._clock()
            async with self._uow(write=False) as uow:
                revoked |= {s for s in rest if await uow.sessions.is_revoked(s, now)}
        return revoked

    # ------------------------------------------------------------------ the bus link

    async def on_message(self, payload: bytes) -> None:
        try:
            notice = _decode(payload)
        except (msgspec.DecodeError, ValueError):
            log.warning("revocation notice undecodable")
            return
        self._remember(notice.sessions, notice.until)

    def lost(self) -> None:
        """Nothing to drop: memory only grows; checks now also ask the stores."""

    async def catch_up(self) -> None:
        """Read the revocations made since the last point read (all live ones at first)."""
        await self.poll()

    # ------------------------------------------------------------------ upkeep

    async def warm(self) -> int:
        """Read every live revocation into memory, and copy them into the cache."""
        self._watermark = None
        count = await self.poll(store=True)
        await self._cache.set(_SYNCED, b"1", ttl=365 * 24 * 3600)
        return count

    async def poll(self, *, store: bool = False) -> int:
        """Read revocations made since the last poll (by any process) into memory: how
        many were new. Also the embedded server's way to hear of a CLI's revocations (its
        in-process bus does not reach other processes), once a second. ``store``: copy
        them into the cache too."""
        now = self._clock()
        since = None if self._watermark is None else self._watermark - _SKEW
        async with self._uow(write=False) as uow:
            live = await uow.sessions.live_revocations(now, since=since)
        fresh = [(sid, until) for sid, until in live if sid not in self._memory]
        for sid, until in live:
            self._remember([sid], until.timestamp())
        if live:
            newest = max(until for _, until in live)
            if self._watermark is None or newest > self._watermark:
                self._watermark = newest
        if store and live:
            await self._cache.set_many(
                [(_key(sid), b"1", (until - now).total_seconds()) for sid, until in live]
            )
        self._forget_expired(now)
        return len(fresh)

    def _forget_expired(self, now: datetime) -> None:
        cutoff = now.timestamp()
        expired = [sid for sid, until in self._memory.items() if until <= cutoff]
        for sid in expired:
            del self._memory[sid]

    async def resync(self) -> bool:
        """Copy the revocations into Redis again if it lost them: a copy failed, or it
        restarted empty (its marker key is gone). True when it did. Only nodes whose link
        is not current read Redis, and they trust only its hits."""
        try:
            if not self._dirty and await self._cache.exists(_SYNCED):
                return False
            self._dirty = False
            await self.warm()
        except CacheUnavailable:
            self._dirty = True
            self._on_cache_error("revocation_resync")
            return False
        return True


_SYNCED = "revoked:synced"


def _key(session_id: int) -> str:
    return f"revoked:{session_id}"
