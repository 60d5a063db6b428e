"""The Redis event bus: pub/sub channels shared by every node. Failures surface as
BusUnavailable.

Publishing goes through the lean pipelined client of the cache (cache/resp.py; decision
0040), on a connection of its own or on the cache's (``client``): then a cache
invalidation and the messages that must follow it leave in one write
(``RedisCacheAndBus``). Subscribing stays on redis-py's PubSub connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
import structlog
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from socius.cache.redis import RedisCache
from socius.cache.resp import Arg, ReplyError, RespClient
from socius.domain.errors import BusUnavailable

__all__ = ["RedisBus", "RedisCacheAndBus", "RedisSubscription"]

log = structlog.get_logger("socius.bus")

Handler = Callable[[bytes], Awaitable[None]]

_FAILURES = (RedisError, OSError)
# What the publishing client raises: TimeoutError and ConnectionError are OSErrors.
_PUBLISH_FAILURES = (OSError, ReplyError)
_KEEPALIVE = b"socius-bus-keepalive"


class RedisSubscription:
    __slots__ = ("_bus", "active", "channel", "handler")

    def __init__(self, bus: RedisBus, channel: bytes, handler: Handler) -> None:
        self._bus = bus
        self.channel = channel
        self.handler = handler
        self.active = True

    async def unsubscribe(self) -> None:
        await self._bus.remove(self)


class RedisBus:
    """One PubSub connection per node, read by one task; another calls the handlers by
    channel, in arrival order (up to ``max_pending`` queued, then dropped and logged).

    A channel is subscribed on Redis while at least one local handler wants it. After a
    reconnect the channels are subscribed again (messages published in the gap are lost:
    the bus is best effort). ``subscribe`` returns once Redis has registered the channel:
    a PING sent after the SUBSCRIBE on the same connection comes back after it. When the
    connection stays silent for ``3 * keepalive`` seconds although it was pinged, the
    reader drops and reopens it.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "socius.",
        name: str = "socius-bus",
        timeout: float = 1.0,
        keepalive: float = 10.0,
        max_pending: int = 100_000,
        client: RespClient | None = None,
    ) -> None:
        """``client``: the connection to publish on (the cache's, on the same Redis: see
        ``RedisCacheAndBus``); None: one of the bus's own, closed with it."""
        # One immediate retry: it reconnects a pooled connection that Redis has dropped;
        # longer outages surface at once as BusUnavailable.
        common: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "socket_keepalive": True,
            "health_check_interval": 0,
            "retry": Retry(NoBackoff(), 1),
        }
        # A lost connection fails what is in flight on it; the next publish connects again.
        self._owns_client = client is None
        self._client = client or RespClient(url, timeout=timeout)
        self._sub_redis = aioredis.Redis.from_url(url, client_name=name, **common)
        self._pubsub = self._sub_redis.pubsub()
        self._prefix = prefix
        self._timeout = timeout
        self._keepalive = keepalive
        self._subs: dict[bytes, list[RedisSubscription]] = {}
        self._waiters: dict[bytes, asyncio.Future[None]] = {}
        self._tokens = itertools.count()
        self._commands = asyncio.Lock()
        self._pending: deque[tuple[bytes, bytes]] = deque()
        self._max_pending = max_pending
        self._dropped = 0
        self._wakeup = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._closed = False
        self._last_seen = 0.0
        self._last_probe = 0.0
        self._watchers: list[Callable[[bool], None]] = []
        self._down = False

    async def start(self) -> None:
        if self._closed:
            raise BusUnavailable("the bus is closed")
        if self._reader is not None:
            return
        try:
            await self._client.execute("PING")
            await self._pubsub.connect()  # type: ignore[no-untyped-call]
        except (*_FAILURES, ReplyError) as exc:
            raise BusUnavailable(f"Redis unreachable: {exc!r}") from exc
        connection = self._connection()
        assert connection is not None
        # Runs after PubSub's own callback, which subscribes its channels again.
        connection.register_connect_callback(self._on_reconnect)  # type: ignore[no-untyped-call]
        self._last_seen = self._last_probe = asyncio.get_running_loop().time()
        self._reader = asyncio.create_task(self._read(), name="socius-redis-bus-reader")
        self._dispatcher = asyncio.create_task(self._dispatch(), name="socius-redis-bus")

    def _check(self) -> None:
        if self._reader is None or self._closed:
            raise BusUnavailable("the bus is closed" if self._closed else "the bus is not started")

    async def publish(self, subject: str, payload: bytes) -> None:
        self._check()
        try:
            await self._client.execute("PUBLISH", self._prefix + subject, payload)
        except _PUBLISH_FAILURES as exc:
            raise BusUnavailable(f"Redis publish failed: {exc!r}") from exc

    async def publish_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """One pipeline of PUBLISH commands: one round trip."""
        self._check()
        if not items:
            return
        try:
            await self._client.pipeline(self.publications(items))
        except _PUBLISH_FAILURES as exc:
            raise BusUnavailable(f"Redis publish failed: {exc!r}") from exc

    def publications(self, items: Sequence[tuple[str, bytes]]) -> list[tuple[Arg, ...]]:
        """The PUBLISH commands of ``publish_many(items)``; BusUnavailable when the bus is
        not started or closed."""
        self._check()
        prefix = self._prefix
        return [("PUBLISH", prefix + subject, payload) for subject, payload in items]

    @property
    def client(self) -> RespClient:
        return self._client

    async def subscribe(self, subject: str, handler: Handler) -> RedisSubscription:
        self._check()
        sub = RedisSubscription(self, (self._prefix + subject).encode(), handler)
        subs = self._subs.get(sub.channel)
        try:
            if subs is None:
                self._subs[sub.channel] = [sub]
                await self._command(lambda: self._pubsub.subscribe(sub.channel))
            else:
                subs.append(sub)
            await self._barrier()  # also covers a SUBSCRIBE still in flight for another
        except BaseException:
            await self.remove(sub)
            raise
        return sub

    async def remove(self, sub: RedisSubscription) -> None:
        sub.active = False
        subs = self._subs.get(sub.channel)
        if subs is None or sub not in subs:
            return
        subs.remove(sub)
        if subs or self._closed:
            return
        del self._subs[sub.channel]
        try:
            await self._command(lambda: self._pubsub.unsubscribe(sub.channel))
        except BusUnavailable as exc:
            # Redis is away: the reconnect drops channels no handler wants (_on_reconnect).
            log.warning("bus_unsubscribe_failed", bus="redis", error=str(exc))

    async def _command(self, send: Callable[[], Awaitable[Any]]) -> None:
        try:
            async with self._commands:
                await send()
        except _FAILURES as exc:
            raise BusUnavailable(f"Redis pub/sub failed: {exc!r}") from exc

    async def _barrier(self) -> None:
        """Wait until Redis has processed every command sent on the pub/sub connection."""
        token = b"socius-bus-%d" % next(self._tokens)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[token] = waiter
        try:
            await self._command(lambda: self._pubsub.ping(token))
            async with asyncio.timeout(self._timeout):
                await waiter
        except TimeoutError as exc:
            raise BusUnavailable("Redis pub/sub did not answer") from exc
        finally:
            self._waiters.pop(token, None)

    async def _on_reconnect(self, _connection: Connection) -> None:
        log.info("bus_reconnected", bus="redis", channels=len(self._subs))
        orphans = [c for c in self._pubsub.channels if c not in self._subs]
        if orphans:
            await self._pubsub.unsubscribe(*orphans)
        if self._down:
            self._down = False
            self._tell(True)

    def watch(self, on_change: Callable[[bool], None]) -> None:
        self._watchers.append(on_change)

    def _tell(self, up: bool) -> None:
        for watcher in self._watchers:
            try:
                watcher(up)
            except Exception:
                log.exception("bus_watcher_failed", bus="redis")

    def _lost(self) -> None:
        if not self._down and not self._closed:
            self._down = True
            self._tell(False)

    async def _read(self) -> None:
        """Read the connection: pongs are answered here, messages queued for dispatch."""
        loop = asyncio.get_running_loop()
        backoff = 0.05
        while True:
            try:
                message = await self._pubsub.get_message(timeout=min(1.0, self._keepalive))
                now = loop.time()
                if message is not None:
                    self._last_seen = now
                    self._route(message)
                else:
                    await self._keep_alive(now)
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The next get_message reconnects (and PubSub subscribes its channels).
                log.warning("bus_reader_error", bus="redis", error=repr(exc))
                self._lost()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _route(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            channel: bytes = message["channel"]
            if channel not in self._subs:
                return
            if len(self._pending) >= self._max_pending:
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 10_000 == 0:
                    log.warning("bus_overflow", bus="redis", dropped=self._dropped)
                return
            self._pending.append((channel, message["data"]))
            self._wakeup.set()
        elif kind == "pong":
            waiter = self._waiters.pop(message["data"], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def _dispatch(self) -> None:
        """Call the handlers, in arrival order, apart from the reader: a handler may
        subscribe (which waits for the reader) and a slow one does not stall the socket."""
        pending = self._pending
        while True:
            if not pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            channel, payload = pending.popleft()
            for sub in tuple(self._subs.get(channel, ())):
                if not sub.active:
                    continue
                try:
                    await sub.handler(payload)
                except Exception:
                    log.exception("bus_handler_failed", bus="redis", channel=channel.decode())

    def _connection(self) -> Connection | None:
        # redis-py declares PubSub.connection as always None.
        return cast("Connection | None", self._pubsub.connection)

    async def _keep_alive(self, now: float) -> None:
        connection = self._connection()
        if connection is None:
            return
        if now - self._last_seen > 3 * self._keepalive:
            log.warning("bus_connection_silent", bus="redis")
            self._last_seen = self._last_probe = now
            self._lost()
            await connection.disconnect()
        elif now - self._last_seen > self._keepalive and now - self._last_probe > self._keepalive:
            self._last_probe = now
            await self._command(lambda: self._pubsub.ping(_KEEPALIVE))

    async def ping(self) -> None:
        self._check()
        try:
            await self._client.execute("PING")
        except _PUBLISH_FAILURES as exc:
            raise BusUnavailable(f"Redis unreachable: {exc!r}") from exc
        await self._barrier()

    async def close(self) -> None:
        self._closed = True
        for subs in self._subs.values():
            for sub in subs:
                sub.active = False
        self._subs.clear()
        self._pending.clear()
        tasks = [t for t in (self._reader, self._dispatcher) if t is not None]
        self._reader = self._dispatcher = None
        for task in tasks:
            task.cancel()
            if task is not asyncio.current_task():  # not closed from inside a handler
                # gather, not suppress(CancelledError): a cancel of this close must go on
                await asyncio.gather(task, return_exceptions=True)
        for waiter in self._waiters.values():
            waiter.cancel()
        with contextlib.suppress(*_FAILURES):
            await self._pubsub.aclose()
        with contextlib.suppress(*_FAILURES):
            await self._sub_redis.aclose()
        if self._owns_client:
            await self._client.close()


class RedisCacheAndBus:
    """The Redis cache and the Redis bus on one connection (the bus publishes on the
    cache's client): a write's after-commit work, the cache ``DEL`` then the ``PUBLISH``es
    (every node's L1 invalidation, the write's events), leaves in one write and comes back
    in one read. Redis runs a connection's commands in order, so the ``DEL`` is done
    before any node hears a message: the order of two awaited round trips, in one
    (decision 0040)."""

    def __init__(self, cache: RedisCache, bus: RedisBus) -> None:
        if cache.client is not bus.client:
            raise ValueError("the cache and the bus must share one client")
        self._cache = cache
        self._bus = bus
        self._client = cache.client

    async def invalidate_and_publish(
        self, keys: Sequence[str], messages: Sequence[tuple[str, bytes]]
    ) -> tuple[bool, bool]:
        """``DEL`` ``keys`` (and their leases), then publish ``messages``, in one round trip;
        whether each part was done (never raises for an outage: a bus that is not started
        or closed publishes nothing, the ``DEL`` still goes)."""
        commands: list[tuple[Arg, ...]] = [self._cache.invalidation(keys)] if keys else []
        published = True
        if messages:
            try:
                commands += self._bus.publications(messages)
            except BusUnavailable:
                published = False
        if not commands:
            return True, published
        try:
            replies = await self._client.replies(commands)
        except OSError:
            return not keys, not messages
        n = 1 if keys else 0
        invalidated = not any(isinstance(r, ReplyError) for r in replies[:n])
        published = published and not any(isinstance(r, ReplyError) for r in replies[n:])
        return invalidated, published
