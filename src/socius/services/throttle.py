"""A fixed-window throttle (registrations per address), counted in the cache. A cache
outage fails open. Logins have their own, fairer one: `login_throttle.py`."""

from __future__ import annotations

import math
from collections.abc import Callable

from socius.domain.errors import CacheUnavailable, RateLimited
from socius.services.ports import Cache

__all__ = ["Throttle"]


class Throttle:
    """Counts events per key in fixed windows and refuses past a limit."""

    def __init__(
        self,
        cache: Cache,
        *,
        name: str,
        limit: int,
        window_seconds: int,
        on_cache_error: Callable[[str], None] = lambda _op: None,
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        self._cache = cache
        self._name = name
        self._limit = limit
        self._window = window_seconds
        self._on_cache_error = on_cache_error
        self._on_refused = on_refused

    def _key(self, subject: str) -> str:
        return f"throttle:{self._name}:{subject}"

    async def check(self, subject: str) -> None:
        """Raise RateLimited when ``subject`` has used up its window."""
        try:
            raw = await self._cache.get(self._key(subject))
            if raw is None or int(raw) < self._limit:
                return
            retry_after = await self._cache.ttl(self._key(subject))
        except CacheUnavailable:
            self._on_cache_error(f"throttle_{self._name}")
            return
        self._on_refused()
        raise RateLimited(
            "too many attempts; try again later",
            retry_after=max(1, math.ceil(retry_after)),
            code="too_many_attempts",
        )

    async def hit(self, subject: str) -> None:
        try:
            await self._cache.incr(self._key(subject), ttl=self._window)
        except CacheUnavailable:
            self._on_cache_error(f"throttle_{self._name}")

    async def reset(self, subject: str) -> None:
        try:
            await self._cache.delete(self._key(subject))
        except CacheUnavailable:
            self._on_cache_error(f"throttle_{self._name}")
