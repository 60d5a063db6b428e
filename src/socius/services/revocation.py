"""The revocation list: sessions whose access tokens must stop working at once.

Checked on every authenticated request in the cache (memory or Redis), never in SQL,
unless the cache is down: then the database's ``revoked_sessions`` answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import structlog

from socius.domain.errors import CacheUnavailable
from socius.services.ports import Cache, Clock, UnitOfWork, UnitOfWorkFactory

__all__ = ["Revocations"]

log = structlog.get_logger("socius.revocation")


class Revocations:
    def __init__(
        self,
        cache: Cache,
        uow: UnitOfWorkFactory,
        clock: Clock,
        *,
        token_ttl_seconds: int,
        on_cache_error: Callable[[str], None] = lambda _op: None,
        on_revoked: Callable[[int, list[int]], Awaitable[None]] | None = None,
    ) -> None:
        """``on_revoked(user_id, session_ids)`` runs after a revoking transaction commits
        (the WebSocket gateway closes those sessions' sockets through it)."""
        self._cache = cache
        self._uow = uow
        self._clock = clock
        self._ttl = token_ttl_seconds + 60  # outlive the last token, with skew to spare
        self._on_cache_error = on_cache_error
        self._on_revoked = on_revoked
        self._dirty = False
        self._watermark: datetime | None = None

    def horizon(self) -> datetime:
        """Until when a revocation made now must be remembered."""
        return self._clock() + timedelta(seconds=self._ttl)

    async def record(
        self, uow: UnitOfWork, session_ids: list[int], *, user_id: int | None = None
    ) -> None:
        """Inside the revoking transaction: write it down, and publish it after commit.
        ``user_id``: whose sessions they are (looked up when not given)."""
        if not session_ids:
            return
        await uow.sessions.record_revocations(session_ids, self.horizon())
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
            await self._publish(ids, float(self._ttl))
            if self._on_revoked is not None:
                for owner, sids in owners.items():
                    try:
                        await self._on_revoked(owner, sids)
                    except Exception:  # the sockets' periodic check closes them anyway
                        log.exception("revocation notice failed", sessions=len(sids))

        uow.after_commit(publish)

    async def _publish(self, session_ids: list[int], ttl: float) -> None:
        try:
            for sid in session_ids:
                await self._cache.set(_key(sid), b"1", ttl=ttl)
        except CacheUnavailable:
            # Durable in the database; checks fall back to it while the cache is down,
            # and resync() copies it into the cache once the cache is back.
            self._dirty = True
            self._on_cache_error("revocation_publish")
            log.warning("revocation not cached", sessions=len(session_ids))

    async def is_revoked(self, session_id: int) -> bool:
        try:
            return await self._cache.exists(_key(session_id))
        except CacheUnavailable:
            self._on_cache_error("revocation_check")
        async with self._uow(write=False) as uow:
            return await uow.sessions.is_revoked(session_id, self._clock())

    async def revoked_among(self, session_ids: Sequence[int]) -> set[int]:
        """Those of ``session_ids`` that are revoked: one cache multi-get (the gateway
        re-checks all its sockets' sessions this way)."""
        if not session_ids:
            return set()
        try:
            found = await self._cache.get_many([_key(s) for s in session_ids])
            return {s for s, hit in zip(session_ids, found, strict=True) if hit is not None}
        except CacheUnavailable:
            self._on_cache_error("revocation_check")
        now = self._clock()
        async with self._uow(write=False) as uow:
            return {s for s in session_ids if await uow.sessions.is_revoked(s, now)}

    async def warm(self) -> int:
        """Copy the live revocations from the database into the cache."""
        self._watermark = None
        count = await self.poll()
        await self._cache.set(_SYNCED, b"1", ttl=365 * 24 * 3600)
        return count

    async def poll(self) -> int:
        """Copy revocations made since the last poll (by any process) into the cache.

        An in-process cache is not shared with other processes on the same database (a
        CLI command, say), so the embedded server polls the durable list every second.
        """
        now = self._clock()
        async with self._uow(write=False) as uow:
            live = await uow.sessions.live_revocations(now, since=self._watermark)
        for sid, until in live:
            await self._cache.set(_key(sid), b"1", ttl=(until - now).total_seconds())
        if live:
            self._watermark = max(until for _, until in live)
        return len(live)

    async def resync(self) -> bool:
        """Warm the cache again if it lost revocations: a publish failed, or the cache
        restarted empty (its marker key is gone). True when it warmed."""
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
