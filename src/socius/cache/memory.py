"""An in-process cache with expiry, for the embedded mode and tests."""

from __future__ import annotations

import itertools
import os
import time
from collections import OrderedDict
from collections.abc import Sequence

__all__ = ["MemoryCache"]

_LEASE = "lease:"
# Tokens need only be distinct (this cache lives in one process): a counter, not a syscall.
_TOKEN_PREFIX = os.urandom(4).hex()


class MemoryCache:
    """Bounded LRU with per-key expiry. Not shared between processes.

    Leases live beside the values as ``lease:<key>`` entries, as on Redis. Every method
    runs without suspending, so each is atomic on the event loop: no locks are needed.
    """

    def __init__(self, *, max_entries: int = 200_000) -> None:
        self._data: OrderedDict[str, tuple[float, bytes | int | float]] = OrderedDict()
        self._max = max_entries
        self._tokens = itertools.count(1)
        self._slots: dict[str, dict[str, float]] = {}  # key -> member -> expiry

    def _live(self, key: str) -> tuple[float, bytes | int | float] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._data[key]
            return None
        return entry

    def _put(self, key: str, expires: float, value: bytes | int | float) -> None:
        data = self._data
        data[key] = (expires, value)
        data.move_to_end(key)
        while len(data) > self._max:
            data.popitem(last=False)
        # Expired entries otherwise stay until read or pushed out at the bound: each put
        # also takes up to two expired ones off the old end, so what is held follows the
        # live set, not the bound (memory flat under a long tail of keys).
        now = time.monotonic()
        for _ in range(2):
            oldest = next(iter(data))
            if data[oldest][0] > now:
                break
            del data[oldest]

    def _read(self, key: str) -> bytes | None:
        entry = self._live(key)
        if entry is None:
            return None
        value = entry[1]
        return value if isinstance(value, bytes) else str(value).encode()

    def _lease(self, key: str, ttl: float) -> str | None:
        if self._live(_LEASE + key) is not None:
            return None
        token = f"{_TOKEN_PREFIX}{next(self._tokens):x}"
        self._put(_LEASE + key, time.monotonic() + ttl, token.encode())
        return token

    def _fill(self, key: str, value: bytes, ttl: float, token: str) -> bool:
        lease = self._live(_LEASE + key)
        if lease is None or lease[1] != token.encode():
            return False
        del self._data[_LEASE + key]
        self._put(key, time.monotonic() + ttl, value)
        return True

    async def get(self, key: str) -> bytes | None:
        return self._read(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._read(key) for key in keys]

    async def set(self, key: str, value: bytes, *, ttl: float) -> None:
        self._put(key, time.monotonic() + ttl, value)

    async def set_many(self, items: Sequence[tuple[str, bytes, float]]) -> None:
        now = time.monotonic()
        for key, value, ttl in items:
            self._put(key, now + ttl, value)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def incr(self, key: str, *, ttl: float) -> int:
        entry = self._live(key)
        if entry is None:
            self._put(key, time.monotonic() + ttl, 1)
            return 1
        count = int(entry[1]) + 1
        self._put(key, entry[0], count)
        return count

    async def ttl(self, key: str) -> float:
        entry = self._live(key)
        return 0.0 if entry is None else max(0.0, entry[0] - time.monotonic())

    async def lease(self, key: str, *, ttl: float) -> str | None:
        return self._lease(key, ttl)

    async def lease_many(self, keys: Sequence[str], *, ttl: float) -> list[str | None]:
        return [self._lease(key, ttl) for key in keys]

    async def get_or_lease(self, key: str, *, ttl: float) -> tuple[bytes | None, str | None]:
        value = self._read(key)
        return (value, None) if value is not None else (None, self._lease(key, ttl))

    async def get_many_or_lease(
        self, keys: Sequence[str], *, ttl: float
    ) -> list[tuple[bytes | None, str | None]]:
        out: list[tuple[bytes | None, str | None]] = []
        for key in keys:  # (no coroutine per key: a page asks for 50)
            value = self._read(key)
            out.append((value, None) if value is not None else (None, self._lease(key, ttl)))
        return out

    async def fill(self, key: str, value: bytes, *, ttl: float, token: str) -> bool:
        return self._fill(key, value, ttl, token)

    async def fill_many(self, items: Sequence[tuple[str, bytes, str]], *, ttl: float) -> None:
        for key, value, token in items:
            self._fill(key, value, ttl, token)

    async def invalidate(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)
            self._data.pop(_LEASE + key, None)

    async def take_tokens(self, items: Sequence[tuple[str, float, int]]) -> list[float]:
        out: list[float] = []
        for key, interval, burst in items:
            now = time.monotonic()
            entry = self._live(key)
            # The bucket is its "theoretical arrival time": full while it is in the past.
            tat = entry[1] if entry is not None and isinstance(entry[1], float) else now
            tat = max(tat, now)
            wait = tat - interval * (burst - 1) - now
            if wait > 0:
                out.append(wait)
                continue
            self._put(key, tat + interval, tat + interval)
            out.append(0.0)
        return out

    def _live_slots(self, key: str, now: float) -> dict[str, float]:
        members = self._slots.get(key)
        if members is None:
            return {}
        for member in [m for m, until in members.items() if until <= now]:
            del members[member]
        return members

    async def claim_slots(
        self, items: Sequence[tuple[str, str]], *, limit: int, ttl: float
    ) -> list[bool]:
        out: list[bool] = []
        for key, member in items:
            now = time.monotonic()
            members = self._live_slots(key, now)
            if member not in members and len(members) >= limit:
                out.append(False)
                continue
            members[member] = now + ttl
            self._slots[key] = members
            out.append(True)
        return out

    async def renew_slots(self, items: Sequence[tuple[str, str]], *, ttl: float) -> None:
        now = time.monotonic()
        for key, member in items:
            members = self._live_slots(key, now)
            if member in members:
                members[member] = now + ttl

    async def release_slots(self, items: Sequence[tuple[str, str]]) -> None:
        for key, member in items:
            members = self._slots.get(key)
            if members is not None:
                members.pop(member, None)
                if not members:
                    del self._slots[key]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()
        self._slots.clear()
