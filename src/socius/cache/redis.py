"""The Redis cache: shared by every node. Failures surface as CacheUnavailable."""

from __future__ import annotations

import itertools
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from socius.cache.redis_timeouts import connection_class_for
from socius.domain.errors import CacheUnavailable

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["RedisCache"]

T = TypeVar("T")

_LEASE = "lease:"

# KEYS: key1, lease1, key2, lease2, ...; ARGV: ttl in ms, value1, token1, value2, token2, ...
# Stores each value whose lease still holds the caller's token, releases that lease, and
# returns how many were stored. An invalidation deletes the lease, so a fill begun before
# it stores nothing.
_FILL = """
local stored = 0
for i = 1, #KEYS, 2 do
  if redis.call('GET', KEYS[i + 1]) == ARGV[i + 2] then
    redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[1])
    redis.call('DEL', KEYS[i + 1])
    stored = stored + 1
  end
end
return stored
"""


# KEYS: key1, lease1, key2, lease2, ...; ARGV: lease ttl in ms, token1, token2, ...
# For each key: its value if it has one; else 1 when its lease was taken with the given
# token, 0 when another holds it. A GET and, on a miss, a SET NX, in one round trip.
_GET_OR_LEASE = """
local out = {}
for i = 1, #KEYS, 2 do
  local value = redis.call('GET', KEYS[i])
  if value then
    out[#out + 1] = value
  elseif redis.call('SET', KEYS[i + 1], ARGV[(i + 1) / 2 + 1], 'NX', 'PX', ARGV[1]) then
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""


# KEYS: buckets; ARGV: interval1 (µs), burst1, interval2, burst2, ...
# GCRA: a bucket is stored as its "theoretical arrival time" (µs on Redis's clock, which
# every node shares); it is full when that lies in the past. For each bucket: 0 when a
# token was taken, else the µs until one will be there.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local wait = tat - interval * (tonumber(ARGV[2 * i]) - 1) - now
  if wait > 0 then
    out[i] = wait
  else
    -- (%.0f: Lua would print a 16-digit number in the exponent form, losing digits)
    redis.call('SET', key, string.format('%.0f', tat + interval),
               'PX', string.format('%.0f', math.ceil((tat + interval - now) / 1000)))
    out[i] = 0
  end
end
return out
"""

# Redis's clock in ms, the one every node shares: the start of the slot scripts.
_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: sorted sets (member -> expiry in ms on Redis's clock); ARGV: limit, ttl in ms,
# member1, member2, ... Drops the expired members, then adds each member unless its set
# holds `limit` live ones: 1 when added (or already held), 0 when refused.
_CLAIM = (
    _NOW_MS
    + """
local limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  local member = ARGV[i + 2]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZSCORE', key, member) or redis.call('ZCARD', key) < limit then
    redis.call('ZADD', key, now + ttl, member)
    redis.call('PEXPIRE', key, ttl)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
)

# KEYS: sorted sets; ARGV: ttl in ms, member1, member2, ...: renew the members still held.
_RENEW = (
    _NOW_MS
    + """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if redis.call('ZADD', key, 'XX', 'CH', now + ttl, ARGV[i + 1]) == 1 then
    redis.call('PEXPIRE', key, ttl)
  end
end
return 0
"""
)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _bytes(value: bytes | str | None) -> bytes | None:
    if value is None:
        return None
    return value.encode() if isinstance(value, str) else bytes(value)


class RedisCache:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "socius:",
        timeout: float = 0.5,
        tracer: Tracer | None = None,
    ) -> None:
        """``tracer``: each command (or pipeline) is a span of it (None: no tracing)."""
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "max_connections": 512,
            "health_check_interval": 0,
            **connection_class_for(url),  # no task per command (cache/redis_timeouts.py)
        }
        if tracer is None:
            self._redis = aioredis.Redis.from_url(url, **options)
        else:
            from socius.cache.redis_spans import traced_redis

            self._redis = traced_redis(url, tracer, **options)
        self._prefix = prefix
        self._fill_script = self._redis.register_script(_FILL)
        self._get_or_lease_script = self._redis.register_script(_GET_OR_LEASE)
        self._take_script = self._redis.register_script(_TAKE)
        self._claim_script = self._redis.register_script(_CLAIM)
        self._renew_script = self._redis.register_script(_RENEW)
        # Lease tokens must differ across nodes and calls, not be secret: a random
        # prefix per cache and a counter (no syscall per lease).
        self._token_prefix = os.urandom(8).hex()
        self._tokens = itertools.count(1)

    def _token(self) -> str:
        return f"{self._token_prefix}{next(self._tokens):x}"

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(str(exc)) from exc

    async def get(self, key: str) -> bytes | None:
        return _bytes(await self._call(lambda: self._redis.get(self._k(key))))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        values = await self._call(lambda: self._redis.mget([self._k(k) for k in keys]))
        return [_bytes(v) for v in values]

    async def set(self, key: str, value: bytes, *, ttl: float) -> None:
        await self._call(lambda: self._redis.set(self._k(key), value, px=_ms(ttl)))

    async def set_many(self, items: Sequence[tuple[str, bytes, float]]) -> None:
        if not items:
            return

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value, ttl in items:
                    pipe.set(self._k(key), value, px=_ms(ttl))
                await pipe.execute()

        await self._call(run)

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

    async def lease(self, key: str, *, ttl: float) -> str | None:
        return (await self.lease_many([key], ttl=ttl))[0]

    async def lease_many(self, keys: Sequence[str], *, ttl: float) -> list[str | None]:
        if not keys:
            return []
        tokens = [self._token() for _ in keys]
        px = _ms(ttl)

        async def run() -> list[bool | None]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, token in zip(keys, tokens, strict=True):
                    pipe.set(self._k(_LEASE + key), token, nx=True, px=px)
                return list(await pipe.execute())

        taken = await self._call(run)
        return [token if ok else None for token, ok in zip(tokens, taken, strict=True)]

    async def get_or_lease(self, key: str, *, ttl: float) -> tuple[bytes | None, str | None]:
        return (await self.get_many_or_lease([key], ttl=ttl))[0]

    async def get_many_or_lease(
        self, keys: Sequence[str], *, ttl: float
    ) -> list[tuple[bytes | None, str | None]]:
        if not keys:
            return []
        tokens = [self._token() for _ in keys]
        full = [k for key in keys for k in (self._k(key), self._k(_LEASE + key))]
        args: list[str | int] = [_ms(ttl), *tokens]
        found = await self._call(lambda: self._get_or_lease_script(keys=full, args=args))
        out: list[tuple[bytes | None, str | None]] = []
        for token, item in zip(tokens, found, strict=True):
            if isinstance(item, int):
                out.append((None, token if item else None))
            else:
                out.append((_bytes(item), None))
        return out

    async def fill(self, key: str, value: bytes, *, ttl: float, token: str) -> bool:
        return await self._fill([(key, value, token)], ttl) == 1

    async def fill_many(self, items: Sequence[tuple[str, bytes, str]], *, ttl: float) -> None:
        if items:
            await self._fill(items, ttl)

    async def _fill(self, items: Sequence[tuple[str, bytes, str]], ttl: float) -> int:
        keys: list[str] = []
        args: list[bytes | str | int] = [_ms(ttl)]
        for key, value, token in items:
            keys += (self._k(key), self._k(_LEASE + key))
            args += (value, token)
        return int(await self._call(lambda: self._fill_script(keys=keys, args=args)))

    async def invalidate(self, *keys: str) -> None:
        if keys:
            full = [k for key in keys for k in (self._k(key), self._k(_LEASE + key))]
            await self._call(lambda: self._redis.delete(*full))

    async def take_tokens(self, items: Sequence[tuple[str, float, int]]) -> list[float]:
        if not items:
            return []
        keys = [self._k(key) for key, _, _ in items]
        args: list[int] = []
        for _, interval, burst in items:
            args += (max(1, int(interval * 1_000_000)), burst)
        waits = await self._call(lambda: self._take_script(keys=keys, args=args))
        return [int(w) / 1_000_000 for w in waits]

    async def claim_slots(
        self, items: Sequence[tuple[str, str]], *, limit: int, ttl: float
    ) -> list[bool]:
        if not items:
            return []
        keys = [self._k(key) for key, _ in items]
        args: list[str | int] = [limit, _ms(ttl), *(member for _, member in items)]
        added = await self._call(lambda: self._claim_script(keys=keys, args=args))
        return [bool(a) for a in added]

    async def renew_slots(self, items: Sequence[tuple[str, str]], *, ttl: float) -> None:
        if items:
            keys = [self._k(key) for key, _ in items]
            args: list[str | int] = [_ms(ttl), *(member for _, member in items)]
            await self._call(lambda: self._renew_script(keys=keys, args=args))

    async def release_slots(self, items: Sequence[tuple[str, str]]) -> None:
        if not items:
            return

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, member in items:
                    pipe.zrem(self._k(key), member)
                await pipe.execute()

        await self._call(run)

    async def ping(self) -> None:
        await self._call(lambda: self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
