"""The cap on one user's WebSocket connections, counted across every node.

Each connection holds a slot: a member of the cache set ``sockets:<user id>`` (Redis
when clustered, so all nodes count together; in memory when embedded). A connection
past ``limit`` gets no slot and is closed with 4429. A slot expires ``ttl`` seconds
after it was last renewed: the gateway's periodic check renews those of its sockets
(every ``ttl / 3``), so the slots of a node that died free themselves, and a slot is
given back at once when its socket closes.

Claims that come together (a reconnecting crowd) go in one script call per batch, and
give-backs are sent in batches in the background: neither costs a round trip per
socket. A cache outage fails open: the socket is let in, the miss counted.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Sequence

import structlog

from socius.domain.errors import CacheUnavailable
from socius.services.coalescer import Coalescer
from socius.services.ports import Cache

__all__ = ["SocketCap"]

log = structlog.get_logger("socius.realtime")

_BATCH = 500


def _key(user_id: int) -> str:
    return f"sockets:{user_id}"


class SocketCap:
    def __init__(
        self,
        cache: Cache,
        *,
        limit: int,
        ttl: float = 300.0,
        on_refused: Callable[[], None] = lambda: None,
        on_cache_error: Callable[[str], None] = lambda _op: None,
    ) -> None:
        """``limit``: connections per user (0: no cap, and no cache traffic)."""
        self._cache = cache
        self.limit = limit
        self.ttl = ttl
        self._on_refused = on_refused
        self._on_cache_error = on_cache_error
        self._prefix = secrets.token_hex(6)  # slots of this process differ from others'
        self._serial = itertools.count(1)
        self._claims: Coalescer[tuple[str, str], bool] = Coalescer(self._claim_many)
        self._releases: list[tuple[str, str]] = []
        self._releaser: asyncio.Task[None] | None = None
        self._next_renew = time.monotonic() + ttl / 3

    async def _claim_many(self, items: Sequence[tuple[str, str]]) -> list[bool]:
        return await self._cache.claim_slots(items, limit=self.limit, ttl=self.ttl)

    async def claim(self, user_id: int) -> str | None:
        """A slot for a new connection of ``user_id``; None when the user is at the cap."""
        if self.limit <= 0:
            return ""
        slot = f"{self._prefix}:{next(self._serial)}"
        try:
            held = await self._claims.call((_key(user_id), slot))
        except CacheUnavailable:
            self._on_cache_error("socket_cap")
            return slot
        if held:
            return slot
        self._on_refused()
        return None

    def release(self, user_id: int, slot: str) -> None:
        """Give the slot back (soon, in the background; never waits)."""
        if not slot:
            return
        self._releases.append((_key(user_id), slot))
        if self._releaser is None:
            self._releaser = asyncio.get_running_loop().create_task(self._release_all())

    async def _release_all(self) -> None:
        try:
            while self._releases:
                batch, self._releases = self._releases[:_BATCH], self._releases[_BATCH:]
                try:
                    await self._cache.release_slots(batch)
                except CacheUnavailable:  # they expire on their own
                    self._on_cache_error("socket_cap")
        finally:
            self._releaser = None

    async def settle(self) -> None:
        """Wait until the slots given back so far are released (shutdown, tests)."""
        while self._releaser is not None:
            await asyncio.shield(self._releaser)

    async def renew(self, held: Sequence[tuple[int, str]]) -> None:
        """Keep the slots of this process's open sockets ``(user_id, slot)`` alive; does
        the work only every ``ttl / 3`` however often it is called."""
        now = time.monotonic()
        if self.limit <= 0 or now < self._next_renew:
            return
        self._next_renew = now + self.ttl / 3
        items = [(_key(user_id), slot) for user_id, slot in held if slot]
        for start in range(0, len(items), _BATCH):
            try:
                await self._cache.renew_slots(items[start : start + _BATCH], ttl=self.ttl)
            except CacheUnavailable:
                self._on_cache_error("socket_cap")
                return
