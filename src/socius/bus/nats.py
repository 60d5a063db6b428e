"""The NATS event bus: core pub/sub through a NATS server or cluster, shared by every node.

Failures surface as BusUnavailable. After the first connection the client reconnects on
its own, forever, and replays its subscriptions; publishes made meanwhile are buffered (up
to ``pending_size`` bytes, then BusUnavailable).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscriptionHandle
from nats.errors import BadSubjectError
from nats.errors import Error as NatsError

from socius.domain.errors import BusUnavailable

__all__ = ["NatsBus", "NatsSubscription"]

log = structlog.get_logger("socius.bus")

Handler = Callable[[bytes], Awaitable[None]]

_FAILURES = (NatsError, OSError, TimeoutError)


class NatsSubscription:
    __slots__ = ("_handle",)

    def __init__(self, handle: NatsSubscriptionHandle) -> None:
        self._handle: NatsSubscriptionHandle | None = handle

    async def unsubscribe(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            # Closed or reconnecting: the interest is gone or will not be replayed.
            with contextlib.suppress(*_FAILURES):
                await handle.unsubscribe()


class NatsBus:
    """One NATS connection per node. Subjects go out as ``prefix + subject``.

    ``publish`` only appends to the client's buffer, which its flusher task writes in
    batches; ``flush`` waits until the server has everything published so far.
    ``subscribe`` returns once the server has registered the interest.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        prefix: str = "socius.",
        name: str = "socius",
        timeout: float = 2.0,
        reconnect_wait: int = 1,
        ping_interval: int = 20,
        pending_size: int = 8 * 1024 * 1024,
        pending_msgs_limit: int = 65_536,
    ) -> None:
        self._servers = [url] if isinstance(url, str) else list(url)
        self._prefix = prefix
        self._name = name
        self._timeout = timeout
        self._reconnect_wait = reconnect_wait
        self._ping_interval = ping_interval
        self._pending_size = pending_size
        self._pending_msgs_limit = pending_msgs_limit
        self._nc: Client | None = None
        self._closed = False
        self._last_error: BaseException | None = None
        self._watchers: list[Callable[[bool], None]] = []

    async def start(self) -> None:
        if self._closed:
            raise BusUnavailable("the bus is closed")
        if self._nc is not None:
            return
        nc = Client()
        try:
            # With reconnects on for good, the client would retry the first connection
            # forever as well: bound it here instead.
            async with asyncio.timeout(self._timeout):
                await nc.connect(
                    self._servers,
                    name=self._name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self._reconnect_wait,
                    connect_timeout=max(1, math.ceil(self._timeout)),
                    ping_interval=self._ping_interval,
                    max_outstanding_pings=2,
                    pending_size=self._pending_size,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
        except _FAILURES as exc:
            with contextlib.suppress(*_FAILURES):
                await nc.close()
            cause = self._last_error or exc
            raise BusUnavailable(f"NATS unreachable: {cause!r}") from exc
        self._nc = nc

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        log.warning("bus_error", bus="nats", error=repr(exc))

    async def _on_disconnected(self) -> None:
        if not self._closed:
            log.warning("bus_disconnected", bus="nats")
            self._tell(False)

    async def _on_reconnected(self) -> None:
        # The client has sent its subscriptions again before it calls this.
        log.info("bus_reconnected", bus="nats")
        self._tell(True)

    def watch(self, on_change: Callable[[bool], None]) -> None:
        self._watchers.append(on_change)

    def _tell(self, up: bool) -> None:
        for watcher in self._watchers:
            try:
                watcher(up)
            except Exception:
                log.exception("bus_watcher_failed", bus="nats")

    def _client(self) -> Client:
        nc = self._nc
        if nc is None:
            raise BusUnavailable("the bus is closed" if self._closed else "the bus is not started")
        return nc

    async def publish(self, subject: str, payload: bytes) -> None:
        nc = self._client()
        try:
            await nc.publish(self._prefix + subject, payload)
        except BadSubjectError as exc:
            raise ValueError(f"invalid subject {subject!r}") from exc
        except _FAILURES as exc:
            raise BusUnavailable(f"NATS publish failed: {exc!r}") from exc

    async def publish_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Appended to the client's buffer together: its flusher writes them to the server
        in one go."""
        nc = self._client()
        prefix = self._prefix
        try:
            for subject, payload in items:
                await nc.publish(prefix + subject, payload)
        except BadSubjectError as exc:
            raise ValueError("invalid subject") from exc
        except _FAILURES as exc:
            raise BusUnavailable(f"NATS publish failed: {exc!r}") from exc

    async def flush(self) -> None:
        """Wait until the server has received everything published so far."""
        await self._round_trip(self._client())

    async def _round_trip(self, nc: Client) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await nc.flush(timeout=max(1, math.ceil(self._timeout)))
        except _FAILURES as exc:
            raise BusUnavailable(f"NATS did not answer: {exc!r}") from exc

    async def subscribe(self, subject: str, handler: Handler) -> NatsSubscription:
        nc = self._client()
        full = self._prefix + subject

        async def deliver(msg: Msg) -> None:
            try:
                await handler(msg.data)
            except Exception:
                log.exception("bus_handler_failed", bus="nats", subject=subject)

        try:
            handle = await nc.subscribe(
                full,
                cb=deliver,
                pending_msgs_limit=self._pending_msgs_limit,
                pending_bytes_limit=self._pending_size,
            )
        except BadSubjectError as exc:
            raise ValueError(f"invalid subject {subject!r}") from exc
        except _FAILURES as exc:
            raise BusUnavailable(f"NATS subscribe failed: {exc!r}") from exc
        subscription = NatsSubscription(handle)
        try:
            await self._round_trip(nc)  # "from now on": the server has the interest
        except BusUnavailable:
            await subscription.unsubscribe()
            raise
        return subscription

    async def ping(self) -> None:
        nc = self._client()
        if not nc.is_connected:
            raise BusUnavailable("NATS is not connected")
        await self._round_trip(nc)

    async def close(self) -> None:
        self._closed = True
        nc, self._nc = self._nc, None
        if nc is None:
            return
        if nc.is_connected:
            with contextlib.suppress(BusUnavailable):
                await self._round_trip(nc)
        with contextlib.suppress(*_FAILURES):
            await nc.close()
