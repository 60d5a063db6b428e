"""The Redis cache: shared by every node. Failures surface as CacheUnavailable."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from socius.cache.resp import Arg, ReplyError, RespClient, Script
from socius.domain.errors import CacheUnavailable

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["RedisCache"]

# What a failed command raises: TimeoutError and ConnectionError are OSErrors.
_ERRORS = (OSError, ReplyError)

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


# KEYS: key1, lease1, key2, lease2, ...; ARGV: lease ttl in ms, the call's token prefix.
# For each key: its value if it has one; else 1 when its lease was taken with the token
# <prefix>:<n> (n: the key's place, from 1), 0 when another holds it. A GET and, on a
# miss, a SET NX, in one round trip. (One prefix per call, not a token per key: a page's
# 50 profiles are mostly hits.)
_GET_OR_LEASE = """
local out = {}
for i = 1, #KEYS, 2 do
  local value = redis.call('GET', KEYS[i])
  if value then
    out[#out + 1] = value
  elseif redis.call('SET', KEYS[i + 1], ARGV[2] .. ':' .. ((i + 1) / 2), 'NX', 'PX', ARGV[1]) then
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


class RedisCache:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "socius:",
        timeout: float = 0.5,
        tracer: Tracer | None = None,
    ) -> None:
        """``tracer``: each command (or pipeline) is a span of it (None: no tracing).

        The client is the lean one of cache/resp.py (decision 0037), not redis-py."""
        if tracer is None:
            self._redis = RespClient(url, timeout=timeout)
        else:
            from socius.cache.redis_spans import TracedRespClient

            self._redis = TracedRespClient(url, timeout=timeout, tracer=tracer)
        self._prefix = prefix
        self._fill_script = Script(_FILL)
        self._get_or_lease_script = Script(_GET_OR_LEASE)
        self._take_script = Script(_TAKE)
        self._claim_script = Script(_CLAIM)
        self._renew_script = Script(_RENEW)
        # Lease tokens must differ across nodes and calls, not be secret: a random
        # prefix per cache and a counter (no syscall per lease).
        self._token_prefix = os.urandom(8).hex()
        self._tokens = itertools.count(1)

    def _token(self) -> str:
        return f"{self._token_prefix}{next(self._tokens):x}"

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def _execute(self, *args: Arg) -> Any:
        try:
            return await self._redis.execute(*args)
        except _ERRORS as exc:
            raise CacheUnavailable(str(exc)) from exc

    async def _pipeline(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        try:
            return await self._redis.pipeline(commands)
        except _ERRORS as exc:
            raise CacheUnavailable(str(exc)) from exc

    async def _script(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        try:
            return await self._redis.evalsha(script, keys, args)
        except _ERRORS as exc:
            raise CacheUnavailable(str(exc)) from exc

    async def get(self, key: str) -> bytes | None:
        return await self._execute("GET", self._prefix + key)  # type: ignore[no-any-return]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        prefix = self._prefix
        return await self._execute("MGET", *[prefix + k for k in keys])  # type: ignore[no-any-return]

    async def set(self, key: str, value: bytes, *, ttl: float) -> None:
        await self._execute("SET", self._prefix + key, value, "PX", _ms(ttl))

    async def set_many(self, items: Sequence[tuple[str, bytes, float]]) -> None:
        if items:
            prefix = self._prefix
            await self._pipeline(
                [("SET", prefix + key, value, "PX", _ms(ttl)) for key, value, ttl in items]
            )

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._execute("DEL", *[self._prefix + k for k in keys])

    async def exists(self, key: str) -> bool:
        return bool(await self._execute("EXISTS", self._prefix + key))

    async def incr(self, key: str, *, ttl: float) -> int:
        full = self._prefix + key
        try:
            count, _ = await self._redis.transaction(
                [("INCRBY", full, 1), ("PEXPIRE", full, max(1, int(ttl * 1000)), "NX")]
            )
        except _ERRORS as exc:
            raise CacheUnavailable(str(exc)) from exc
        return int(count)

    async def ttl(self, key: str) -> float:
        millis = await self._execute("PTTL", self._prefix + key)
        return max(0.0, int(millis) / 1000)

    async def lease(self, key: str, *, ttl: float) -> str | None:
        return (await self.lease_many([key], ttl=ttl))[0]

    async def lease_many(self, keys: Sequence[str], *, ttl: float) -> list[str | None]:
        if not keys:
            return []
        tokens = [self._token() for _ in keys]
        px = _ms(ttl)
        lease = self._prefix + _LEASE
        taken = await self._pipeline(
            [
                ("SET", lease + key, token, "NX", "PX", px)
                for key, token in zip(keys, tokens, strict=True)
            ]
        )
        return [token if ok else None for token, ok in zip(tokens, taken, strict=True)]

    async def get_or_lease(self, key: str, *, ttl: float) -> tuple[bytes | None, str | None]:
        return (await self.get_many_or_lease([key], ttl=ttl))[0]

    async def get_many_or_lease(
        self, keys: Sequence[str], *, ttl: float
    ) -> list[tuple[bytes | None, str | None]]:
        if not keys:
            return []
        base = self._token()
        prefix = self._prefix
        lease = prefix + _LEASE
        full = [k for key in keys for k in (prefix + key, lease + key)]
        found = await self._script(self._get_or_lease_script, full, [_ms(ttl), base])
        if len(found) != len(keys):
            raise CacheUnavailable("Redis: a reply per key expected")
        out: list[tuple[bytes | None, str | None]] = []
        for n, item in enumerate(found, 1):
            if isinstance(item, int):
                out.append((None, f"{base}:{n}" if item else None))
            else:
                out.append((item, None))
        return out

    async def fill(self, key: str, value: bytes, *, ttl: float, token: str) -> bool:
        return await self._fill([(key, value, token)], ttl) == 1

    async def fill_many(self, items: Sequence[tuple[str, bytes, str]], *, ttl: float) -> None:
        if items:
            await self._fill(items, ttl)

    async def _fill(self, items: Sequence[tuple[str, bytes, str]], ttl: float) -> int:
        prefix = self._prefix
        lease = prefix + _LEASE
        keys: list[Arg] = []
        args: list[Arg] = [_ms(ttl)]
        for key, value, token in items:
            keys += (prefix + key, lease + key)
            args += (value, token)
        return int(await self._script(self._fill_script, keys, args))

    async def invalidate(self, *keys: str) -> None:
        if keys:
            await self._execute(*self.invalidation(keys))

    def invalidation(self, keys: Sequence[str]) -> tuple[Arg, ...]:
        """The command ``invalidate(*keys)`` sends (``keys`` not empty): for a caller that
        pipelines it with the bus's commands on this cache's connection (``client``)."""
        prefix = self._prefix
        lease = prefix + _LEASE
        return ("DEL", *[k for key in keys for k in (prefix + key, lease + key)])

    @property
    def client(self) -> RespClient:
        """This cache's connection to Redis (a bus on the same Redis may share it)."""
        return self._redis

    async def take_tokens(self, items: Sequence[tuple[str, float, int]]) -> list[float]:
        if not items:
            return []
        keys = [self._prefix + key for key, _, _ in items]
        args: list[Arg] = []
        for _, interval, burst in items:
            args += (max(1, int(interval * 1_000_000)), burst)
        waits = await self._script(self._take_script, keys, args)
        return [int(w) / 1_000_000 for w in waits]

    async def claim_slots(
        self, items: Sequence[tuple[str, str]], *, limit: int, ttl: float
    ) -> list[bool]:
        if not items:
            return []
        keys = [self._prefix + key for key, _ in items]
        args: list[Arg] = [limit, _ms(ttl), *(member for _, member in items)]
        added = await self._script(self._claim_script, keys, args)
        return [bool(a) for a in added]

    async def renew_slots(self, items: Sequence[tuple[str, str]], *, ttl: float) -> None:
        if items:
            keys = [self._prefix + key for key, _ in items]
            args: list[Arg] = [_ms(ttl), *(member for _, member in items)]
            await self._script(self._renew_script, keys, args)

    async def release_slots(self, items: Sequence[tuple[str, str]]) -> None:
        if items:
            prefix = self._prefix
            await self._pipeline([("ZREM", prefix + key, member) for key, member in items])

    async def ping(self) -> None:
        await self._execute("PING")

    async def close(self) -> None:
        await self._redis.close()
