"""The WebSocket gateway: one ``Connection`` per socket, independent of the web framework.

Protocol (docs/realtime.md): the client's first frame authenticates and names its cursor.
The connection then subscribes live first (events arriving meanwhile wait in a buffer),
replays its user's log after the cursor, says ``ready``, and streams live events. It
tracks ``last_seq``, the last log position sent: a live event at or below it is a
duplicate and dropped, the next one is sent, and one further ahead reveals a gap that is
filled from the log first. Typing and presence carry no position and pass straight
through. Every frame goes through a bounded send queue drained by a writer task; a client
that lets it fill up is closed with 4408 and resumes from its cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import msgspec
import structlog

from socius.domain.errors import BusUnavailable, DomainError, InvalidInput, Unauthenticated
from socius.domain.events import Event
from socius.domain.ids import parse_id
from socius.observability.metrics import Metrics
from socius.realtime.hub import Hub
from socius.services.auth import AuthService
from socius.services.delivery import BusEvent, Delivery
from socius.services.inbox import InboxService, cursor_for, seq_of
from socius.services.messaging import MessagingService
from socius.services.revocation import Revocations

__all__ = [
    "CLOSE_BAD_CURSOR",
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL",
    "CLOSE_TOO_BIG",
    "CLOSE_TOO_SLOW",
    "CLOSE_TRY_LATER",
    "CLOSE_UNAUTHENTICATED",
    "INTERNAL_EVENTS",
    "SESSION_REVOKED",
    "Connection",
    "Gateway",
    "Limits",
    "Socket",
    "revocation_notifier",
]

log = structlog.get_logger("socius.realtime")

CLOSE_GOING_AWAY = 1001  # the server is shutting down: reconnect elsewhere
CLOSE_TOO_BIG = 1009  # a client frame over Limits.max_frame_bytes
CLOSE_INTERNAL = 1011
CLOSE_TRY_LATER = 1013  # the event bus is unreachable
CLOSE_BAD_CURSOR = 4400  # the auth frame's cursor is not one of this user's
CLOSE_UNAUTHENTICATED = 4401  # no/late/bad auth frame, bad token, session revoked
CLOSE_TOO_SLOW = 4408  # send queue full, or nothing heard from the client for too long

SESSION_REVOKED = "session.revoked"
INTERNAL_EVENTS = frozenset({SESSION_REVOKED})  # bus-only, never forwarded to clients

Render = Callable[[str, dict[str, Any]], dict[str, Any]]


def _default_render(type_: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": type_, **payload}


@dataclass(frozen=True, slots=True)
class Limits:
    auth_timeout: float = 10.0  # the auth frame must come within this
    idle_timeout: float = 60.0  # close (4408) when nothing is received for this long
    recheck_interval: float = 30.0  # re-check the session and the log this often
    send_queue: int = 1000  # frames waiting for the client; beyond: 4408
    live_buffer: int = 10_000  # live events waiting to be processed; beyond: 4408
    stall_timeout: float = 30.0  # how long a log replay may wait on a full send queue
    max_frame_bytes: int = 64 * 1024  # client frames; beyond: close 1009
    page: int = 100  # log rows per query when replaying or filling a gap


class Socket(Protocol):
    """An accepted WebSocket, as the web framework exposes it."""

    async def receive(self) -> str | bytes | None:
        """The next frame's data; None once the client has gone."""

    async def send(self, text: str) -> None:
        """Send a text frame; raises when the client has gone."""

    async def close(self, code: int, reason: str = "") -> None:
        """Close with ``code``; never raises."""


class _Auth(msgspec.Struct, forbid_unknown_fields=False):
    type: str
    token: str
    cursor: str | None = None


class _ClientFrame(msgspec.Struct, forbid_unknown_fields=False):
    type: str
    conversation_id: str | None = None
    cursor: str | None = None


_encode = msgspec.json.Encoder().encode
_decode_auth = msgspec.json.Decoder(_Auth).decode
_decode_frame = msgspec.json.Decoder(_ClientFrame).decode
_PONG = _encode({"type": "pong"}).decode()


class _Tick:
    """A marker in the live buffer: time to re-check the session and the log."""


_TICK = _Tick()


class Gateway:
    """What every connection needs; one per process."""

    def __init__(
        self,
        hub: Hub,
        auth: AuthService,
        revocations: Revocations,
        inbox: InboxService,
        messaging: MessagingService,
        *,
        metrics: Metrics | None = None,
        render: Render = _default_render,
        limits: Limits | None = None,
    ) -> None:
        self.hub = hub
        self.auth = auth
        self.revocations = revocations
        self.inbox = inbox
        self.messaging = messaging
        self.metrics = metrics
        self.render = render
        self.limits = limits or Limits()
        self.connections: set[Connection] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def configure(self, **changes: Any) -> None:
        """Change limits for connections opened from now on (tests use small ones)."""
        self.limits = replace(self.limits, **changes)

    async def serve(self, socket: Socket) -> None:
        """Run one accepted socket until it closes."""
        connection = Connection(self, socket, self.limits)
        self.connections.add(connection)
        self._idle.clear()
        if self.metrics:
            self.metrics.ws_connections.inc()
        try:
            code = await connection.run()
        finally:
            self.connections.discard(connection)
            if not self.connections:
                self._idle.set()
            if self.metrics:
                self.metrics.ws_connections.dec()
        if self.metrics:
            self.metrics.ws_closed_total.labels(code="client" if code is None else str(code)).inc()

    async def shutdown(self, grace: float = 2.0) -> None:
        """Close every connection (1001) and wait up to ``grace`` seconds for them."""
        for connection in list(self.connections):
            connection.finish(CLOSE_GOING_AWAY, "server shutting down")
        if self.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._idle.wait()


class Connection:
    def __init__(self, gateway: Gateway, socket: Socket, limits: Limits) -> None:
        self._gw = gateway
        self._socket = socket
        self._limits = limits
        self.user_id = 0
        self.session_id = 0
        self.last_seq = 0  # the last log position sent (or skipped by a null cursor)
        self.acked = 0  # the last position the client acknowledged
        self._typed: dict[int, float] = {}
        self._live: deque[BusEvent | _Tick] = deque()
        self._wakeup = asyncio.Event()
        self._out: asyncio.Queue[tuple[str, bool]] = asyncio.Queue(maxsize=limits.send_queue)
        self._done: asyncio.Future[tuple[int | None, str]] = (
            asyncio.get_running_loop().create_future()
        )

    # -- lifecycle -------------------------------------------------------------------------

    def finish(self, code: int | None, reason: str = "") -> None:
        """End the connection: close with ``code`` (None: the client already left)."""
        if not self._done.done():
            self._done.set_result((code, reason))

    @property
    def closing(self) -> bool:
        return self._done.done()

    async def run(self) -> int | None:
        """Serve the socket; the close code (None when the client closed)."""
        try:
            code, reason = await self._serve()
        except Exception:  # a dependency failed before the tasks started
            log.exception("ws_connection_failed", user_id=self.user_id)
            code, reason = CLOSE_INTERNAL, "internal error"
        if code is not None:
            await self._socket.close(code, reason)
        return code

    async def _serve(self) -> tuple[int | None, str]:
        cursor = await self._authenticate()
        if self._done.done():
            return self._done.result()
        try:
            await self._gw.hub.join(self.user_id, self)
        except BusUnavailable as exc:
            log.warning("ws_bus_unavailable", error=str(exc))
            return CLOSE_TRY_LATER, "live delivery is unavailable, retry shortly"
        tasks: list[asyncio.Task[None]] = []
        try:
            # Revoked between the token check and the subscription: the bus said nothing.
            if await self._gw.revocations.is_revoked(self.session_id):
                return CLOSE_UNAUTHENTICATED, "the session has ended"
            tasks = [
                asyncio.create_task(self._guard(self._read())),
                asyncio.create_task(self._guard(self._pump(cursor))),
                asyncio.create_task(self._guard(self._write())),
            ]
            return await self._done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._gw.hub.leave(self.user_id, self)

    async def _guard(self, body: Any) -> None:
        try:
            await body
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ws_connection_failed", user_id=self.user_id)
            self.finish(CLOSE_INTERNAL, "internal error")

    async def _authenticate(self) -> str | None:
        """Wait for the auth frame; the cursor it names. Finishes the connection on failure."""
        receiving = asyncio.ensure_future(self._socket.receive())
        try:
            await asyncio.wait(
                (receiving, self._done),
                timeout=self._limits.auth_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if not receiving.done():
                receiving.cancel()
                await asyncio.gather(receiving, return_exceptions=True)
        if self._done.done():  # shut down meanwhile
            return None
        if receiving.cancelled():
            self.finish(CLOSE_UNAUTHENTICATED, "no auth frame in time")
            return None
        raw = receiving.result()
        if raw is None:
            self.finish(None)
            return None
        try:
            frame = _decode_auth(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            frame = None
        if frame is None or frame.type != "auth" or _too_big(raw, self._limits.max_frame_bytes):
            self.finish(CLOSE_UNAUTHENTICATED, "the first frame must be an auth frame")
            return None
        try:
            principal = await self._gw.auth.authenticate(frame.token)
        except Unauthenticated as exc:
            self.finish(CLOSE_UNAUTHENTICATED, exc.code)
            return None
        try:
            seq_of(frame.cursor)
        except InvalidInput as exc:
            await self._reject_cursor(exc)
            return None
        self.user_id, self.session_id = principal.user_id, principal.session_id
        return frame.cursor

    async def _reject_cursor(self, exc: InvalidInput) -> None:
        with contextlib.suppress(Exception):
            await self._socket.send(_error_frame(exc.code, exc.message))
        self.finish(CLOSE_BAD_CURSOR, exc.code)

    # -- from the hub ----------------------------------------------------------------------

    def deliver(self, event: BusEvent) -> None:
        if self._done.done():
            return
        if event.type in INTERNAL_EVENTS:
            if event.type == SESSION_REVOKED:
                ended = event.payload.get("session_ids") or []
                if str(self.session_id) in ended:
                    self.finish(CLOSE_UNAUTHENTICATED, "the session has ended")
            return
        if len(self._live) >= self._limits.live_buffer:
            self.finish(CLOSE_TOO_SLOW, "too far behind: resume from your cursor")
            return
        self._live.append(event)
        self._wakeup.set()

    # -- tasks -----------------------------------------------------------------------------

    async def _write(self) -> None:
        metrics = self._gw.metrics
        while True:
            text, is_event = await self._out.get()
            try:
                await self._socket.send(text)
            except Exception:  # the client went away mid-send
                self.finish(None)
                return
            if is_event and metrics:
                metrics.ws_events_sent_total.inc()

    def _offer(self, text: str, *, is_event: bool = True) -> bool:
        """Queue a frame without waiting; a full queue closes the connection (4408)."""
        try:
            self._out.put_nowait((text, is_event))
        except asyncio.QueueFull:
            self.finish(CLOSE_TOO_SLOW, "send queue full: resume from your cursor")
            return False
        return True

    async def _put(self, text: str) -> bool:
        """Queue a frame read from the log, waiting a while for room."""
        try:
            async with asyncio.timeout(self._limits.stall_timeout):
                await self._out.put((text, True))
        except TimeoutError:
            self.finish(CLOSE_TOO_SLOW, "send queue full: resume from your cursor")
            return False
        return True

    async def _read(self) -> None:
        limits = self._limits
        while True:
            try:
                async with asyncio.timeout(limits.idle_timeout):
                    raw = await self._socket.receive()
            except TimeoutError:
                self.finish(CLOSE_TOO_SLOW, "nothing received: send ping frames")
                return
            if raw is None:
                self.finish(None)
                return
            if _too_big(raw, limits.max_frame_bytes):
                self.finish(CLOSE_TOO_BIG, f"frames are limited to {limits.max_frame_bytes} bytes")
                return
            await self._on_frame(raw)

    async def _on_frame(self, raw: str | bytes) -> None:
        try:
            frame = _decode_frame(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self._offer(_error_frame("bad_frame", "not a JSON object with a type"), is_event=False)
            return
        if frame.type == "ping":
            self._offer(_PONG, is_event=False)
        elif frame.type == "typing" and frame.conversation_id is not None:
            await self._typing(frame.conversation_id)
        elif frame.type == "ack" and frame.cursor is not None:
            try:
                self.acked = max(self.acked, seq_of(frame.cursor))
            except InvalidInput as exc:
                self._offer(_error_frame(exc.code, exc.message), is_event=False)
        else:
            self._offer(
                _error_frame("bad_frame", f"unknown or incomplete frame {frame.type[:32]!r}"),
                is_event=False,
            )

    async def _typing(self, conversation: str) -> None:
        conversation_id = parse_id(conversation)
        now = time.monotonic()
        if conversation_id is not None and now - self._typed.get(conversation_id, 0.0) < 1.0:
            return  # at most one typing signal per conversation and second
        if conversation_id is None:
            self._offer(
                _error_frame("conversation_not_found", "no such conversation"), is_event=False
            )
            return
        if len(self._typed) > 256:
            self._typed.clear()
        self._typed[conversation_id] = now
        try:
            await self._gw.messaging.typing(self.user_id, conversation_id)
        except DomainError as exc:
            self._offer(_error_frame(exc.code, exc.message), is_event=False)

    async def _pump(self, cursor: str | None) -> None:
        """Replay after the cursor, say ready, then process live events in order."""
        inbox = self._gw.inbox
        position = await inbox.position(self.user_id)
        if cursor is None:
            self.last_seq = position  # start from now; /v1/sync serves the history
        else:
            after = seq_of(cursor)
            if after > position:
                await self._reject_cursor(
                    InvalidInput("cursor is not valid", code="invalid_cursor")
                )
                return
            self.last_seq = after
            if not await self._fill(None):
                return
        if not await self._put_ready():
            return
        next_check = time.monotonic() + self._limits.recheck_interval
        while not self._done.done():
            while self._live:
                item = self._live.popleft()
                if isinstance(item, _Tick):
                    if not await self._check():
                        return
                elif not await self._handle(item):
                    return
            now = time.monotonic()
            if now >= next_check:
                next_check = now + self._limits.recheck_interval
                self._live.append(_TICK)
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next_check - now):
                    await self._wakeup.wait()

    async def _put_ready(self) -> bool:
        frame = _encode({"type": "ready", "cursor": cursor_for(self.last_seq)}).decode()
        try:
            async with asyncio.timeout(self._limits.stall_timeout):
                await self._out.put((frame, False))
        except TimeoutError:
            self.finish(CLOSE_TOO_SLOW, "send queue full: resume from your cursor")
            return False
        return True

    async def _handle(self, event: BusEvent) -> bool:
        """One live event; False once the connection is finished."""
        seq = event.seq
        if seq is None:
            return self._offer(self._frame(event.type, event.payload, None))
        if seq <= self.last_seq:
            return True  # already sent (replayed, or the bus said it twice)
        if seq > self.last_seq + 1 and not await self._fill(seq - 1):
            return False
        if not self._offer(self._frame(event.type, event.payload, seq)):
            return False
        self.last_seq = seq
        return True

    async def _fill(self, upto: int | None) -> bool:
        """Send the log after ``last_seq`` up to ``upto`` (None: all of it), in order."""
        inbox, page = self._gw.inbox, self._limits.page
        while upto is None or self.last_seq < upto:
            events: list[Event]
            if upto is None:
                events = (
                    await inbox.sync(self.user_id, cursor=cursor_for(self.last_seq), limit=page)
                ).items
            else:
                end = min(upto, self.last_seq + page)
                events = await inbox.events_between(self.user_id, self.last_seq, end)
            for e in events:
                if e.seq is None or e.seq <= self.last_seq:
                    continue
                if upto is not None and e.seq > upto:
                    break
                if not await self._put(self._frame(e.type, e.payload, e.seq)):
                    return False
                self.last_seq = e.seq
            if upto is None and len(events) < page:
                return True
            if upto is not None and not events:
                # Nothing (left) in the log up there (it was erased): move on.
                self.last_seq = min(upto, self.last_seq + page)
        return True

    async def _check(self) -> bool:
        """The safety nets: the session still stands, and nothing the bus lost is missed."""
        if await self._gw.revocations.is_revoked(self.session_id):
            self.finish(CLOSE_UNAUTHENTICATED, "the session has ended")
            return False
        position = await self._gw.inbox.position(self.user_id)
        if position > self.last_seq:
            return await self._fill(position)
        return True

    def _frame(self, type_: str, payload: dict[str, Any], seq: int | None) -> str:
        body: dict[str, Any] = {"type": "event"}
        if seq is not None:
            body["cursor"] = cursor_for(seq)
        body["event"] = self._gw.render(type_, payload)
        return _encode(body).decode()


def _too_big(raw: str | bytes, limit: int) -> bool:
    if isinstance(raw, bytes) or len(raw) * 4 <= limit:  # UTF-8: at most 4 bytes a character
        return len(raw) > limit
    return len(raw.encode()) > limit


def _error_frame(code: str, message: str) -> str:
    return _encode({"type": "error", "code": code, "message": message}).decode()


def revocation_notifier(delivery: Delivery) -> Callable[[int, list[int]], Awaitable[None]]:
    """For Revocations: after a revocation commits, tell every node to close the sockets of
    those sessions at once (4401). Best effort: the connections' periodic check is the net."""

    async def notify(user_id: int, session_ids: list[int]) -> None:
        await delivery.ephemeral(
            [user_id], SESSION_REVOKED, {"session_ids": [str(s) for s in session_ids]}
        )

    return notify
