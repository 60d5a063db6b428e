"""An in-process event bus, for the embedded mode and tests."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import structlog

from socius.domain.errors import BusUnavailable

__all__ = ["MemoryBroker", "MemoryBus"]

log = structlog.get_logger("socius.bus")

Handler = Callable[[bytes], Awaitable[None]]


class MemoryBroker:
    """What the NATS or Redis server is to the networked buses: every MemoryBus attached
    to one broker receives the others' publishes, like nodes of one cluster."""

    def __init__(self) -> None:
        self._buses: list[MemoryBus] = []

    def attach(self, bus: MemoryBus) -> None:
        if bus not in self._buses:
            self._buses.append(bus)

    def detach(self, bus: MemoryBus) -> None:
        if bus in self._buses:
            self._buses.remove(bus)

    def route(self, subject: str, payload: bytes) -> None:
        for bus in self._buses:
            bus.offer(subject, payload)


class MemorySubscription:
    __slots__ = ("_bus", "active", "handler", "now", "subject")

    def __init__(self, bus: MemoryBus, subject: str, handler: Handler) -> None:
        self._bus = bus
        self.subject = subject
        self.handler = handler
        # A handler with ``now(payload)`` (that never waits) is called through it.
        self.now: Callable[[bytes], None] | None = getattr(handler, "now", None)
        self.active = True

    async def unsubscribe(self) -> None:
        self._bus.remove(self)


class MemoryBus:
    """Delivers through one dispatcher task per bus, in publish order.

    Publishing never waits for handlers: payloads queue up to ``max_pending`` per bus,
    beyond which they are dropped (and logged), as a broker drops for a slow consumer.
    Each bus has its own broker unless one is passed in.
    """

    def __init__(self, *, broker: MemoryBroker | None = None, max_pending: int = 100_000) -> None:
        self._broker = broker or MemoryBroker()
        self._max_pending = max_pending
        self._subs: dict[str, list[MemorySubscription]] = {}
        self._pending: deque[tuple[str, bytes]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._dropped = 0

    async def start(self) -> None:
        if self._closed:
            raise BusUnavailable("the bus is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._dispatch(), name="socius-memory-bus")
            self._broker.attach(self)

    def _check(self) -> None:
        if self._task is None or self._closed:
            raise BusUnavailable("the bus is closed" if self._closed else "the bus is not started")

    async def publish(self, subject: str, payload: bytes) -> None:
        self._check()
        self._broker.route(subject, payload)

    async def publish_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        self._check()
        for subject, payload in items:
            self._broker.route(subject, payload)

    async def subscribe(self, subject: str, handler: Handler) -> MemorySubscription:
        self._check()
        sub = MemorySubscription(self, subject, handler)
        self._subs.setdefault(subject, []).append(sub)
        return sub

    def remove(self, sub: MemorySubscription) -> None:
        sub.active = False
        subs = self._subs.get(sub.subject)
        if subs is not None and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._subs[sub.subject]

    def offer(self, subject: str, payload: bytes) -> None:
        """Queue a payload published anywhere on the broker, if anyone here listens."""
        if subject not in self._subs:
            return
        if len(self._pending) >= self._max_pending:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 10_000 == 0:
                log.warning("bus_overflow", bus="memory", subject=subject, dropped=self._dropped)
            return
        self._pending.append((subject, payload))
        self._wakeup.set()

    async def _dispatch(self) -> None:
        pending = self._pending
        while True:
            if not pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            subject, payload = pending.popleft()
            for sub in tuple(self._subs.get(subject, ())):
                if not sub.active:
                    continue
                try:
                    if sub.now is not None:
                        sub.now(payload)  # never waits: no coroutine for it (realtime/hub.py)
                    else:
                        await sub.handler(payload)
                except Exception:
                    log.exception("bus_handler_failed", bus="memory", subject=subject)

    async def ping(self) -> None:
        self._check()

    def watch(self, on_change: Callable[[bool], None]) -> None:
        """An in-process bus never loses its broker while it runs."""

    async def close(self) -> None:
        self._closed = True
        self._broker.detach(self)
        for subs in self._subs.values():
            for sub in subs:
                sub.active = False
        self._subs.clear()
        self._pending.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            if task is not asyncio.current_task():  # not closed from inside a handler
                # gather, not suppress(CancelledError): a cancel of this close must go on
                await asyncio.gather(task, return_exceptions=True)
