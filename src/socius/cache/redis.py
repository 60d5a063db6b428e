"""The Redis cache: shared by every node. Failures surface as CacheUnavailable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from socius.domain.errors import CacheUnavailable

__all__ = ["RedisCache"]

T = TypeVar("T")


class RedisCache:
    def __init__(self, url: str, *, prefix: str = "socius:", timeout: float = 0.5) -> None:
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=512,
            health_check_interval=0,
        )
        self._prefix = prefix

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(str(exc)) from exc

    async def get(self, key: str) -> bytes | None:
        value = await self._call(lambda: self._redis.get(self._k(key)))
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    async def set(self, key: str, value: bytes, *, ttl: float) -> None:
        await self._call(lambda: self._redis.set(self._k(key), value, px=max(1, int(ttl * 1000))))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._call(lambda: self._redis.delete(*(self._k(k) for k in keys)))

    async def exists(self, key: str) -> bool:
        return bool(await self._call(lambda: self._redis.exists(self._k(key))))

    async def incr(self, key: str, *, ttl: float) -> int:
        full = self._k(key)

        async def run() -> int:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(full)
                pipe.pexpire(full, max(1, int(ttl * 1000)), nx=True)
                count, _ = await pipe.execute()
            return int(count)

        return await self._call(run)

    async def ttl(self, key: str) -> float:
        millis = await self._call(lambda: self._redis.pttl(self._k(key)))
        return max(0.0, int(millis) / 1000)

    async def ping(self) -> None:
        await self._call(lambda: self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
