"""An in-process cache with expiry, for the embedded mode and tests."""

from __future__ import annotations

import time
from collections import OrderedDict

__all__ = ["MemoryCache"]


class MemoryCache:
    """Bounded LRU with per-key expiry. Not shared between processes."""

    def __init__(self, *, max_entries: int = 200_000) -> None:
        self._data: OrderedDict[str, tuple[float, bytes | int]] = OrderedDict()
        self._max = max_entries

    def _live(self, key: str) -> tuple[float, bytes | int] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._data[key]
            return None
        return entry

    def _put(self, key: str, expires: float, value: bytes | int) -> None:
        self._data[key] = (expires, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        if entry is None:
            return None
        value = entry[1]
        return str(value).encode() if isinstance(value, int) else value

    async def set(self, key: str, value: bytes, *, ttl: float) -> None:
        self._put(key, time.monotonic() + ttl, value)

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

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()
