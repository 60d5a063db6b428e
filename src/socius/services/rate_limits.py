"""Per-user abuse limits: token buckets in the cache, shared by every node.

Each limited action (sending a message, a typing signal, a friend request, creating a
group, a report of abuse) has a bucket per user: ``count`` tokens, refilled one every
``seconds / count``.
An action that finds its bucket empty is refused with 429 ``rate_limited`` and a
``Retry-After`` saying when the next token comes.

Cost: one cache round trip per action at most, and less under load: the takes asked
for while one is in flight go together in the next (one script call on Redis for all of
them), so a busy node pays one round trip per batch, not per message. With the
in-process cache a take never suspends, so nothing ever waits for a batch.

A cache outage fails open: the action goes ahead, and the miss is counted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

from socius.domain.errors import CacheUnavailable, RateLimited
from socius.services.coalescer import Coalescer
from socius.services.ports import Cache

__all__ = ["Buckets", "RateLimit", "UserLimits"]

_WHAT = {"typing": "typing signals", "groups": "new groups"}  # (else the name says it)


class Buckets:
    """Takes tokens through ``Cache.take_tokens``; concurrent takes go together."""

    def __init__(self, cache: Cache) -> None:
        self._takes: Coalescer[tuple[str, float, int], float] = Coalescer(cache.take_tokens)

    async def take(self, key: str, interval: float, burst: int) -> float:
        """0.0 when a token was taken, else the seconds until one comes. Raises
        CacheUnavailable when the cache does not answer."""
        return await self._takes.call((key, interval, burst))


class RateLimit:
    """One action's limit: ``count`` per user, refilled evenly over ``seconds``."""

    def __init__(
        self,
        buckets: Buckets | None,
        *,
        name: str,
        count: int,
        seconds: float,
        on_refused: Callable[[], None] = lambda: None,
        on_cache_error: Callable[[str], None] = lambda _op: None,
    ) -> None:
        self._buckets = buckets
        self.name = name
        self.count = count
        self._interval = seconds / count if count > 0 else 0.0
        self._on_refused = on_refused
        self._on_cache_error = on_cache_error

    async def check(self, user_id: int) -> None:
        """Take one of ``user_id``'s tokens, or raise RateLimited (429) when none is left."""
        if self._buckets is None or self.count <= 0:
            return
        key = f"limit:{self.name}:{user_id}"
        try:
            wait = await self._buckets.take(key, self._interval, self.count)
        except CacheUnavailable:
            self._on_cache_error(f"limit_{self.name}")
            return
        if wait <= 0:
            return
        self._on_refused()
        retry_after = max(1, math.ceil(wait))
        what = _WHAT.get(self.name, self.name.replace("_", " "))
        raise RateLimited(f"too many {what}; try again in {retry_after} s", retry_after=retry_after)


def _unlimited(name: str) -> RateLimit:
    return RateLimit(None, name=name, count=0, seconds=1)


@dataclass(frozen=True, slots=True)
class UserLimits:
    """The limited actions. ``UserLimits.off()`` limits nothing (bench, unit tests)."""

    messages: RateLimit
    typing: RateLimit
    friend_requests: RateLimit
    groups: RateLimit
    reports: RateLimit = dataclasses.field(default_factory=lambda: _unlimited("reports"))

    @classmethod
    def off(cls) -> UserLimits:
        names = ("messages", "typing", "friend_requests", "groups", "reports")
        return cls(*(_unlimited(n) for n in names))
