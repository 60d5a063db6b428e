"""The NATS event bus: core pub/sub through a NATS server or cluster, shared by every node.

Failures surface as BusUnavailable. After the first connection the client reconnects on
its own, forever, and replays its subscriptions; publishes made meanwhile are buffered (up
to ``pending_size`` bytes, then BusUnavailable).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from nats import errors as nats_errors
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
_BAD_SUBJECT = re.compile(r"\s")  # as nats-py's publish: whitespace (CR, LF) is refused


class _Client(Client):
    """nats-py's client, with the payloads of some subscriptions handed to a plain
    function as the reader parses them (``direct``, by subscription id).

    nats-py gives each subscription with a callback a queue and a task: every message is
    a ``Msg`` object, a queue put, a wake-up of that task and a get before the callback
    runs (~10% of the worker's CPU in W2, where each message is ~13 bus messages to ~13
    users' subscriptions). A handler with a ``now(payload)`` method that never waits (the
    hub's: it only queues the event on each socket) is called right here instead; its
    subscription keeps nats-py's queue and task for a message that arrives before it is
    registered here (the subscribe call's own window)."""

    def __init__(self) -> None:
        super().__init__()
        self.direct: dict[int, Callable[[bytes], None]] = {}

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: Any
    ) -> None:
        now = self.direct.get(sid)
        if now is None or reply:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        now(data)  # never raises: NatsBus.subscribe guards it

    async def publish_commands(self, data: bytes, msgs: int, size: int) -> None:
        """Send ``data``, ``msgs`` PUB commands already built (``size`` payload bytes), as
        one buffer: what ``publish`` does for each, once (the checks, the flusher's kick),
        and one chunk for the flusher's write instead of one per message."""
        if self.is_closed:
            raise nats_errors.ConnectionClosedError
        if self.is_draining_pubs:
            raise nats_errors.ConnectionDrainingError
        if not self.is_connected and (
            self._max_pending_size <= 0
            or len(data) + self._pending_data_size > self._max_pending_size
        ):
            raise nats_errors.OutboundBufferLimitError
        self.stats["out_msgs"] += msgs
        self.stats["out_bytes"] += size
        await self._send_command(data)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()


class NatsSubscription:
    __slots__ = ("_direct", "_handle")

    def __init__(
        self, handle: NatsSubscriptionHandle, direct: dict[int, Callable[[bytes], None]] | None
    ) -> None:
        self._handle: NatsSubscriptionHandle | None = handle
        self._direct = direct

    async def unsubscribe(self) -> None:
        handle, self._handle = self._handle, None
        if self._direct is not None and handle is not None:
            self._direct.pop(handle._id, None)
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
        self._nc: _Client | None = None
        self._closed = False
        self._last_error: BaseException | None = None
        self._watchers: list[Callable[[bool], None]] = []

    async def start(self) -> None:
        if self._closed:
            raise BusUnavailable("the bus is closed")
        if self._nc is not None:
            return
        nc = _Client()
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

    def _client(self) -> _Client:
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
        """Appended to the client's buffer together, as one chunk of PUB commands: its
        flusher writes them to the server in one go. All or nothing: a bad subject or a
        payload over the server's limit fails the call before anything is sent."""
        nc = self._client()
        prefix = self._prefix
        limit = nc.max_payload
        commands: list[bytes] = []
        size = 0
        for subject, payload in items:
            full = prefix + subject
            if not subject or _BAD_SUBJECT.search(full):
                raise ValueError(f"invalid subject {subject!r}")
            if len(payload) > limit:
                raise BusUnavailable(f"NATS publish failed: payload over {limit} bytes")
            size += len(payload)
            commands.append(b"PUB %b %d\r\n%b\r\n" % (full.encode(), len(payload), payload))
        if not commands:
            return
        try:
            await nc.publish_commands(b"".join(commands), len(commands), size)
        except _FAILURES as exc:
            raise BusUnavailable(f"NATS publish failed: {exc!r}") from exc

    async def flush(self) -> None:
        """Wait until the server has received everything published so far."""
        await self._round_trip(self._client())

    async def _round_trip(self, nc: _Client) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await nc.flush(timeout=max(1, math.ceil(self._timeout)))
        except _FAILURES as exc:
            raise BusUnavailable(f"NATS did not answer: {exc!r}") from exc

    async def subscribe(self, subject: str, handler: Handler) -> NatsSubscription:
        """A ``handler`` with a ``now(payload)`` method (that never waits) is called through
        it, in the reader's own call (``_Client``)."""
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
        now: Callable[[bytes], None] | None = getattr(handler, "now", None)
        if now is not None:

            def guarded(payload: bytes) -> None:
                try:
                    now(payload)
                except Exception:
                    log.exception("bus_handler_failed", bus="nats", subject=subject)

            nc.direct[handle._id] = guarded
        subscription = NatsSubscription(handle, nc.direct if now is not None else None)
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
