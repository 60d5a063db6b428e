"""The WebSocket gateway: one ``Connection`` per socket, independent of the web framework.

Protocol (docs/realtime.md): the client's first frame authenticates and names its cursor.
The connection then subscribes live first (events arriving meanwhile wait in a buffer),
replays its user's log after the cursor, says ``ready``, and streams live events. It
tracks ``last_seq``, the last log position sent: a live event at or below it is a
duplicate and dropped, the next one is sent, and one further ahead reveals a gap that is
filled from the log first. Typing and presence carry no position and pass straight
through. A frame is sent at once when no send is in flight on its socket; otherwise it
waits in a bounded send queue, and the completion of each send starts the next (a
callback, not a task per socket or per frame); a client that lets the queue fill up is
closed with 4408 and resumes from its cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import structlog

from socius.domain.errors import (
    BusUnavailable,
    CacheUnavailable,
    DomainError,
    Gone,
    InvalidInput,
    Unauthenticated,
    Unavailable,
)
from socius.domain.ids import parse_id
from socius.domain.sessions import AccessClaims
from socius.observability.metrics import Metrics
from socius.realtime import eager
from socius.realtime.batcher import Batcher
from socius.realtime.hub import Hub
from socius.realtime.socket_cap import SocketCap
from socius.services.delivery import Delivery, EncodedBusEvent
from socius.services.inbox import InboxService, cursor_for, seq_of
from socius.services.messaging import MessagingService
from socius.services.revocation import Revocations
from socius.services.tokens import AccessTokens

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = [
    "CLOSE_BAD_CURSOR",
    "CLOSE_CURSOR_EXPIRED",
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL",
    "CLOSE_TOO_BIG",
    "CLOSE_TOO_MANY",
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
CLOSE_TRY_LATER = 1013  # the database, cache or event bus is unreachable: reconnect later
CLOSE_BAD_CURSOR = 4400  # the auth frame's cursor is not one of this user's
CLOSE_UNAUTHENTICATED = 4401  # no/late/bad auth frame, bad token, session revoked
CLOSE_TOO_SLOW = 4408  # send queue full, or nothing heard from the client for too long
CLOSE_CURSOR_EXPIRED = 4410  # the cursor is older than the log keeps: resync, then null
CLOSE_TOO_MANY = 4429  # the user already has the most connections allowed (all nodes)

SESSION_REVOKED = "session.revoked"
INTERNAL_EVENTS = frozenset({SESSION_REVOKED})  # bus-only, never forwarded to clients

Render = Callable[[str, dict[str, Any]], dict[str, Any]]

# A dependency that failed: the client reconnects (with its cursor) once it is back.
_DEPENDENCY_DOWN = (Unavailable, CacheUnavailable, BusUnavailable, OSError)


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
    handshakes: int = 128  # handshakes (token, subscription, replay) running at once
    admission_wait: float = 15.0  # how long a handshake may queue for a slot; then 1013


class Socket(Protocol):
    """An accepted WebSocket, as the web framework exposes it."""

    async def receive(self) -> str | bytes | None:
        """The next frame's data; None once the client has gone."""

    async def send(self, text: str) -> None:
        """Send a text frame; raises when the client has gone. (A socket may also have
        ``send_soon(text)``: start the send and return its future, or an awaitable;
        live frames then go through it, see ``Connection._begin``.)"""

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
_decode_payload = msgspec.json.Decoder(dict[str, Any]).decode
_decode_auth = msgspec.json.Decoder(_Auth).decode
_decode_frame = msgspec.json.Decoder(_ClientFrame).decode
_PONG = _encode({"type": "pong"}).decode()
_PINGS = frozenset({'{"type":"ping"}', '{"type": "ping"}'})  # the usual spellings


class _Head:
    """A marker in the live buffer: the log's head was ``seq`` (the periodic check)."""

    __slots__ = ("seq",)

    def __init__(self, seq: int) -> None:
        self.seq = seq


class Gateway:
    """What every connection needs, one per process: admission of handshakes, batched
    reads of log positions and revocations, and the periodic check of every socket."""

    def __init__(
        self,
        hub: Hub,
        tokens: AccessTokens,
        revocations: Revocations,
        inbox: InboxService,
        messaging: MessagingService,
        *,
        metrics: Metrics | None = None,
        render: Render = _default_render,
        limits: Limits | None = None,
        sockets: SocketCap | None = None,
    ) -> None:
        """``sockets``: the per-user cap on connections (None: no cap)."""
        self.hub = hub
        self.sockets = sockets
        self.tokens = tokens
        self.revocations = revocations
        self.inbox = inbox
        self.messaging = messaging
        self.metrics = metrics
        self.render = render
        self.limits = limits or Limits()
        self.connections: set[Connection] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.positions: Batcher[int, int] = Batcher(inbox.positions, default=0)
        self.revoked: Batcher[int, bool] = Batcher(self._revoked, default=False)
        self._admission = asyncio.Semaphore(self.limits.handshakes)
        self._checker: asyncio.Task[None] | None = None
        self._reconfigured = asyncio.Event()
        self.clock = time.monotonic
        #: Tracing on: a span per connection, its handshake and each client frame but pings.
        self.tracer: Tracer | None = None
        self._rendered: tuple[str, bytes | msgspec.Raw, str] = ("", b"", "")
        self._uncounted = 0  # events handed to sockets in this turn of the loop

    def event_sent(self) -> None:
        """An event was handed to a socket. The metric takes the events of one turn of the
        loop at once, at its end: before any scrape (a later turn) sees it."""
        if not self._uncounted:
            if self.metrics is None:
                return
            asyncio.get_running_loop().call_soon(self._count)
        self._uncounted += 1

    def _count(self) -> None:
        count, self._uncounted = self._uncounted, 0
        if self.metrics is not None:
            self.metrics.ws_events_sent_total.inc(count)

    def event_json(self, type_: str, payload: bytes | msgspec.Raw) -> str:
        """The event as frames carry it (``render``), JSON. The recipients of one event
        on this node get it one after another: the last one rendered is kept, so an event
        is decoded and rendered once per node, not once per socket."""
        last_type, last_payload, last = self._rendered
        # The same object for the recipients of one bus message (the hub's); a Raw is
        # never equal to bytes, so the kept payload stays what was passed.
        if (payload is last_payload or payload == last_payload) and type_ == last_type:
            return last
        rendered = _encode(self.render(type_, _decode_payload(payload))).decode()
        self._rendered = (type_, payload, rendered)
        return rendered

    def configure(self, **changes: Any) -> None:
        """Change limits for connections opened from now on (tests use small ones)."""
        self.limits = replace(self.limits, **changes)
        self._admission = asyncio.Semaphore(self.limits.handshakes)
        self._reconfigured.set()  # the periodic check takes its new interval

    async def _revoked(self, session_ids: list[int]) -> dict[int, bool]:
        return dict.fromkeys(await self.revocations.revoked_among(session_ids), True)

    async def serve(
        self,
        socket: Socket,
        *,
        claims: AccessClaims | None = None,
        limits: Limits | None = None,
    ) -> None:
        """Run one accepted socket until it closes. ``claims``: the caller, already
        authenticated by the transport (the auth frame's token is then not verified again;
        the session's revocation still is); ``limits``: this socket's own (the GraphQL
        subscriptions, whose liveness their own socket watches)."""
        if self._checker is None:
            self._checker = asyncio.create_task(self._check_all(), name="socius-ws-check")
        connection = Connection(self, socket, limits or self.limits, claims)
        self.connections.add(connection)
        self._idle.clear()
        if self.metrics:
            self.metrics.ws_connections.inc()
        try:
            tracer = self.tracer
            if tracer is None:
                code = await connection.run()
            else:
                from socius.realtime.ws_spans import traced_session

                code = await traced_session(tracer, connection)
        finally:
            self.connections.discard(connection)
            if not self.connections:
                self._idle.set()
            if self.metrics:
                self.metrics.ws_connections.dec()
        if self.metrics:
            self.metrics.ws_closed_total.labels(code="client" if code is None else str(code)).inc()

    @contextlib.asynccontextmanager
    async def admitted(self, wait: float) -> AsyncIterator[bool]:
        """A handshake slot: at most ``limits.handshakes`` run at once, the others queue
        (in arrival order) for up to ``wait`` seconds. False when none came in time."""
        admission = self._admission
        if admission.locked():  # (else: a free slot, taken without a timer)
            try:
                async with asyncio.timeout(wait):
                    await admission.acquire()
            except TimeoutError:
                yield False
                return
        else:
            await admission.acquire()
        try:
            yield True
        finally:
            admission.release()

    async def shutdown(self, grace: float = 2.0) -> None:
        """Close every connection (1001) and wait up to ``grace`` seconds for them."""
        checker, self._checker = self._checker, None
        if checker is not None:
            checker.cancel()
            await asyncio.gather(checker, return_exceptions=True)
        for connection in list(self.connections):
            connection.finish(CLOSE_GOING_AWAY, "server shutting down")
        if self.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._idle.wait()

    async def _check_all(self) -> None:
        """The process's one timer for all sockets. Every ``idle_timeout / 4``: close
        (4408) the sockets the client has said nothing on for ``idle_timeout``, and let
        the others' completed sends go (``Connection.drop_sent``). Every
        ``recheck_interval``: the sessions of all sockets still stand, and no socket is
        behind its log's head (an event the bus lost, with nothing after it), with one
        cache multi-get and one query per ``_CHECK_BATCH`` sockets."""
        now = self.clock()
        next_sweep = now + self.limits.idle_timeout / 4
        next_check = now + self.limits.recheck_interval
        while True:
            self._reconfigured.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(min(next_sweep, next_check) - now, 0.0)):
                    await self._reconfigured.wait()
                now = self.clock()  # reconfigured: the new intervals count from now
                next_sweep = now + self.limits.idle_timeout / 4
                next_check = now + self.limits.recheck_interval
                continue
            now = self.clock()
            if now >= next_sweep:
                next_sweep = now + self.limits.idle_timeout / 4
                for c in [c for c in self.connections if c.ready and not c.closing]:
                    if now - c.heard > c.idle_timeout:
                        c.finish(CLOSE_TOO_SLOW, "nothing received: send ping frames")
                    else:
                        c.drop_sent()
            if now >= next_check:
                next_check = now + self.limits.recheck_interval
                ready = [c for c in self.connections if c.ready and not c.closing]
                for k in range(0, len(ready), _CHECK_BATCH):
                    try:
                        await self._check_some(ready[k : k + _CHECK_BATCH])
                    except Exception:  # the next round tries again
                        log.exception("ws_check_failed", sockets=len(ready))
                if self.sockets is not None:
                    try:
                        await self.sockets.renew([(c.user_id, c.slot) for c in ready])
                    except Exception:  # the next round tries again
                        log.exception("ws_slot_renewal_failed", sockets=len(ready))
                now = self.clock()

    async def close_revoked(self) -> None:
        """Close (4401) now every socket whose session is revoked. For revocations this
        process hears of only through the database: an embedded server polls it for those
        made by another process (``socius admin disable-user``) and calls this."""
        live = [c for c in self.connections if c.session_id and not c.closing]
        for k in range(0, len(live), _CHECK_BATCH):
            await self._close_revoked(live[k : k + _CHECK_BATCH])

    async def _close_revoked(self, connections: list[Connection]) -> None:
        revoked = await self.revocations.revoked_among(list({c.session_id for c in connections}))
        for c in connections:
            if c.session_id in revoked:
                c.finish(CLOSE_UNAUTHENTICATED, "the session has ended")

    async def _check_some(self, connections: list[Connection]) -> None:
        await self._close_revoked(connections)
        heads = await self.inbox.positions(list({c.user_id for c in connections}))
        for c in connections:
            head = heads.get(c.user_id, 0)
            if head > c.last_seq and not c.closing:
                c.behind(head)


_CHECK_BATCH = 500


class Connection:
    """One socket. The task that serves it (the web framework's) authenticates, replays,
    then reads the client's frames; frames are sent from callbacks (a send's completion
    starts the next queued one), and a pump task exists while live events wait to be
    processed: an idle socket has no task of its own and no timer (the gateway's one
    timer watches every socket's silence)."""

    __slots__ = (
        "_claims",
        "_done",
        "_gw",
        "_limits",
        "_live",
        "_out",
        "_pump",
        "_room",
        "_send",
        "_sending",
        "_socket",
        "_task",
        "_typed",
        "acked",
        "heard",
        "last_seq",
        "ready",
        "session_id",
        "slot",
        "user_id",
    )

    def __init__(
        self, gateway: Gateway, socket: Socket, limits: Limits, claims: AccessClaims | None = None
    ) -> None:
        self._gw = gateway
        self._claims = claims
        self._socket = socket
        self._limits = limits
        self.user_id = 0
        self.session_id = 0
        self.last_seq = 0  # the last log position sent (or skipped by a null cursor)
        self.acked = 0  # the last position the client acknowledged
        self.ready = False  # replayed and `ready` queued: live events flow
        self.slot = ""  # this connection's place under the per-user cap
        self._typed: dict[int, float] | None = None
        # Both made when needed and dropped when drained (an idle socket has neither).
        self._live: deque[EncodedBusEvent | _Head] | None = None  # live events to process
        self._out: deque[tuple[str, bool]] | None = None  # frames for the writer
        self.heard = 0.0  # loop time of the last frame from the client (once ready)
        self._room: asyncio.Future[None] | None = None  # a replay waiting for room in _out
        self._pump: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._done: tuple[int | None, str] | None = None
        self._sending: Any = None  # the future of the last send (done or not)
        # A socket may start a send without a coroutine (AsgiSocket.send_soon: Granian's
        # send is a future already); any other sends with its coroutine.
        self._send: Callable[[str], Any] = getattr(socket, "send_soon", socket.send)

    # -- lifecycle -------------------------------------------------------------------------

    def finish(self, code: int | None, reason: str = "") -> None:
        """End the connection: close with ``code`` (None: the client already left)."""
        if self._done is not None:
            return
        self._done = (code, reason)
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()  # wake the serving task wherever it waits; run() closes

    def _failed(self, exc: Exception) -> None:
        """End the connection after ``exc``: 1013 (try later) when a dependency is down,
        1011 for anything else (a bug)."""
        if isinstance(exc, _DEPENDENCY_DOWN):
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            log.warning("ws_dependency_unavailable", user_id=self.user_id, error=repr(cause)[:300])
            self.finish(CLOSE_TRY_LATER, "a dependency is unavailable, retry shortly")
        else:
            log.exception("ws_connection_failed", user_id=self.user_id)
            self.finish(CLOSE_INTERNAL, "internal error")

    @property
    def closing(self) -> bool:
        return self._done is not None

    @property
    def idle_timeout(self) -> float:
        return self._limits.idle_timeout

    async def run(self) -> int | None:
        """Serve the socket; the close code (None when the client closed)."""
        self._task = asyncio.current_task()
        try:
            try:
                await self._serve()
            except asyncio.CancelledError:
                if self._done is None:
                    raise  # cancelled from outside (the server is going away)
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
            except Exception as exc:
                self._failed(exc)
            self._task = None  # nothing may cancel the clean-up
            for task_ in (self._pump, self._sending):
                if isinstance(task_, asyncio.Task):
                    task_.cancel()
            code, reason = self._done or (None, "")
            if code is not None:
                await self._socket.close(code, reason)
            return code
        finally:
            self._task = None
            if self.slot and self._gw.sockets is not None:
                self._gw.sockets.release(self.user_id, self.slot)
            if self.user_id:
                await self._gw.hub.leave(self.user_id, self)

    async def _serve(self) -> None:
        """Authenticate, replay, read; returns once finished."""
        auth = await self._auth_frame()
        if auth is None:
            return
        async with self._gw.admitted(self._limits.admission_wait) as admitted:
            if not admitted:
                self.finish(CLOSE_TRY_LATER, "too many connections at once, retry shortly")
                return
            tracer = self._gw.tracer
            if tracer is None:
                started = await self._start(auth)
            else:
                with tracer.start_as_current_span("ws auth"):
                    started = await self._start(auth)
        del auth  # the token is not kept for the socket's life
        if not started:
            return
        self._flush_live()
        await self._read()

    async def _auth_frame(self) -> _Auth | None:
        """The first frame, which must be an auth frame, within ``auth_timeout``."""
        try:
            async with asyncio.timeout(self._limits.auth_timeout):
                raw = await self._socket.receive()
        except TimeoutError:
            self.finish(CLOSE_UNAUTHENTICATED, "no auth frame in time")
            return None
        if raw is None:
            self.finish(None)
            return None
        try:
            frame = _decode_auth(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            frame = None
        if frame is None or frame.type != "auth" or _too_big(raw, self._limits.max_frame_bytes):
            self.finish(CLOSE_UNAUTHENTICATED, "the first frame must be an auth frame")
            return None
        return frame

    async def _start(self, frame: _Auth) -> bool:
        """Token, subscription, replay, `ready`. False when the connection is finished."""
        gw = self._gw
        try:
            # The signature and claims; revocation is checked once subscribed (below).
            claims = self._claims or await gw.tokens.verify(frame.token)
        except Unauthenticated as exc:
            self.finish(CLOSE_UNAUTHENTICATED, exc.code)
            return False
        try:
            after = seq_of(frame.cursor)
        except InvalidInput as exc:
            await self._reject_cursor(exc)
            return False
        self.user_id, self.session_id = claims.user_id, claims.session_id
        if gw.sockets is not None:
            slot = await gw.sockets.claim(self.user_id)
            if slot is None:
                self.finish(CLOSE_TOO_MANY, "too many connections for this user")
                return False
            self.slot = slot
        try:
            await gw.hub.join(self.user_id, self)
        except BusUnavailable as exc:
            log.warning("ws_bus_unavailable", error=str(exc))
            self.finish(CLOSE_TRY_LATER, "live delivery is unavailable, retry shortly")
            return False
        # Revoked before the subscription (the bus said nothing to this connection):
        # checked after it, so that a revocation is either seen here or arrives live.
        if await gw.revoked.get(self.session_id):
            self.finish(CLOSE_UNAUTHENTICATED, "the session has ended")
            return False
        # Read after subscribing: an event committed later arrives live.
        position = await gw.positions.get(self.user_id)
        if frame.cursor is None:
            self.last_seq = position  # start from now; /v1/sync serves the history
        elif after > position:
            await self._reject_cursor(InvalidInput("cursor is not valid", code="invalid_cursor"))
            return False
        else:
            self.last_seq = after
            if position > after and not await self._fill(position):
                return False
        ready = _encode({"type": "ready", "cursor": cursor_for(self.last_seq)}).decode()
        if not await self._put(ready, is_event=False):
            return False
        self.ready = True
        self.heard = gw.clock()
        return not self.closing

    async def _reject_cursor(self, exc: DomainError, code: int = CLOSE_BAD_CURSOR) -> None:
        with contextlib.suppress(Exception):
            await self._socket.send(_error_frame(exc.code, exc.message))
        self.finish(code, exc.code)

    # -- from the hub and the periodic check ----------------------------------------------

    def deliver(self, event: EncodedBusEvent) -> None:
        if self._done is not None:
            return
        if event.type in INTERNAL_EVENTS:
            if event.type == SESSION_REVOKED:
                ended = _decode_payload(event.payload).get("session_ids") or []
                if str(self.session_id) in ended:
                    self.finish(CLOSE_UNAUTHENTICATED, "the session has ended")
            return
        live = self._live
        if live is None:
            if self.ready and self._pump is None and self._now(event):
                return  # handled here: no task (the usual case: the next number)
            live = self._live = deque()
        elif len(live) >= self._limits.live_buffer:
            self.finish(CLOSE_TOO_SLOW, "too far behind: resume from your cursor")
            return
        live.append(event)
        self._flush_live()

    def _now(self, event: EncodedBusEvent) -> bool:
        """Handle a live event at once if that needs no waiting (no gap to fill first);
        False when it must go through the pump."""
        seq = event.seq
        if seq is not None:
            if seq <= self.last_seq:
                return True  # already sent
            if seq > self.last_seq + 1:
                return False  # a gap: filled from the log first (async)
        if self._offer(self._live_frame(event)) and seq is not None:
            self.last_seq = seq
        return True

    def behind(self, head: int) -> None:
        """The log's head is ``head``: send what the bus has not delivered up to it."""
        if self._live is None:
            self._live = deque()
        self._live.append(_Head(head))
        self._flush_live()

    def _flush_live(self) -> None:
        if self.ready and self._live and self._pump is None and self._done is None:
            self._pump = asyncio.create_task(self._process())

    async def _process(self) -> None:
        """Live events in order, while there are any (then the task ends)."""
        live = self._live
        try:
            while live and self._done is None:
                item = live.popleft()
                if isinstance(item, _Head):
                    if item.seq > self.last_seq and not await self._fill(item.seq):
                        return
                elif not await self._handle(item):
                    return
        except Exception as exc:
            self._failed(exc)
        finally:
            self._pump = None
            if not self._live:
                self._live = None

    async def _handle(self, event: EncodedBusEvent) -> bool:
        """One live event; False once the connection is finished."""
        seq = event.seq
        if seq is None:
            return self._offer(self._live_frame(event))
        if seq <= self.last_seq:
            return True  # already sent (replayed, or the bus said it twice)
        if seq > self.last_seq + 1 and not await self._fill(seq - 1):
            return False
        if not self._offer(self._live_frame(event)):
            return False
        self.last_seq = seq
        return True

    async def _fill(self, upto: int) -> bool:
        """Send the log after ``last_seq`` up to ``upto``, in order."""
        inbox, page = self._gw.inbox, self._limits.page
        while self.last_seq < upto:
            end = min(upto, self.last_seq + page)
            try:
                events = await inbox.events_between(self.user_id, self.last_seq, end)
            except Gone as exc:  # pruned (retention) before it could be sent
                await self._reject_cursor(exc, CLOSE_CURSOR_EXPIRED)
                return False
            for e in events:
                if e.seq is None or e.seq <= self.last_seq:
                    continue
                if e.seq > upto:
                    break
                if not await self._put(self._frame(e.type, e.payload, e.seq)):
                    return False
                self.last_seq = e.seq
            # The query returned every row up to `end` (rows come in order, and a short
            # answer is the whole rest of the log): a number left out was erased.
            self.last_seq = max(self.last_seq, end)
        return True

    # -- sending ---------------------------------------------------------------------------

    def _offer(self, text: str, *, is_event: bool = True) -> bool:
        """Send a frame without waiting: at once when the socket's last send is done, else
        queued (sent when the one in flight completes); a full queue closes the connection
        (4408). False once the connection is finished."""
        if self._done is not None:
            return False
        out = self._out
        if out is None:
            sending = self._sending
            if sending is None or sending.done():
                if sending is not None and not self._settled(sending):
                    return False
                return self._begin(text, is_event)
            out = self._out = deque()
            sending.add_done_callback(self._sent_one)  # the queue goes on from there
        elif len(out) >= self._limits.send_queue:
            self.finish(CLOSE_TOO_SLOW, "send queue full: resume from your cursor")
            return False
        out.append((text, is_event))
        return True

    def _begin(self, text: str, is_event: bool) -> bool:
        """Hand one frame to the socket (its last send is done). No task and no wake-up
        of its own: the send's future (Granian's send is one) is kept, and only looked at
        when the next frame comes (done: the frame goes at once) or, when frames queue
        behind it, called back when done. A coroutine send runs at once
        (``realtime/eager.py``) and only one that has to wait gets a task; one that
        completed in this call still holds the socket until the next turn of the loop, so
        a flood in one turn goes through the bounded queue and overflows it. False when
        the client has gone."""
        if is_event:
            self._gw.event_sent()  # counted when handed over: a client that read it finds it
        try:
            sending: Any = self._send(text)
            if getattr(sending, "add_done_callback", None) is None:  # a coroutine, or so
                pending = eager.start(
                    sending if type(sending) is CoroutineType else _awaited(sending)
                )
                if pending is None:  # sent, in this call: the socket is free next turn
                    loop = asyncio.get_running_loop()
                    sending = loop.create_future()
                    loop.call_soon(sending.set_result, None)
                else:
                    sending = asyncio.ensure_future(_finished(pending))
        except Exception:  # the client went away
            self.finish(None)
            return False
        self._sending = sending
        return True

    def _settled(self, sending: Any) -> bool:
        """The outcome of a send that is done: False (and the connection finished) when
        it failed: the client went away mid-send."""
        try:
            ok = sending.result() is not False
        except BaseException:  # failed, or cancelled (the connection is ending)
            ok = False
        if not ok:
            self.finish(None)
        return ok

    def drop_sent(self) -> None:
        """Let go of the last send's future once it is done (the gateway's sweep): an
        idle socket then holds none."""
        sending = self._sending
        if sending is not None and self._out is None and sending.done():
            self._sending = None
            self._settled(sending)

    def _sent_one(self, sending: Any) -> None:
        """The send in flight completed and frames wait behind it: they go, one send at a
        time (each called back in turn while more wait)."""
        if self._done is not None or sending is not self._sending:
            return
        if not self._settled(sending):
            return
        out = self._out
        while out:
            text, is_event = out.popleft()
            room = self._room
            if room is not None and not room.done():
                room.set_result(None)
            if not self._begin(text, is_event):
                return
            sending = self._sending
            if not sending.done():
                if out:
                    sending.add_done_callback(self._sent_one)
                    return
                break
            if not self._settled(sending):
                return
        self._out = None

    async def _put(self, text: str, *, is_event: bool = True) -> bool:
        """Queue a frame read from the log, waiting a while for room."""
        if self._out is not None and len(self._out) >= self._limits.send_queue:
            try:
                async with asyncio.timeout(self._limits.stall_timeout):
                    while self._out is not None and len(self._out) >= self._limits.send_queue:
                        self._room = asyncio.get_running_loop().create_future()
                        await self._room
            except TimeoutError:
                self.finish(CLOSE_TOO_SLOW, "send queue full: resume from your cursor")
                return False
            finally:
                self._room = None
        return self._offer(text, is_event=is_event)

    # -- reading ---------------------------------------------------------------------------

    async def _read(self) -> None:
        """Client frames until the end. Silence is watched by the gateway's sweep (one
        timer per process, not one per socket)."""
        limits, receive, clock = self._limits, self._socket.receive, self._gw.clock
        tracer = self._gw.tracer
        self.heard = clock()
        while self._done is None:
            raw = await receive()
            self.heard = clock()
            if raw is None:
                self.finish(None)
                return
            if _too_big(raw, limits.max_frame_bytes):
                self.finish(CLOSE_TOO_BIG, f"frames are limited to {limits.max_frame_bytes} bytes")
                return
            if tracer is None or raw in _PINGS:
                await self._on_frame(raw)
            else:
                with tracer.start_as_current_span(_frame_span(raw)):
                    await self._on_frame(raw)

    async def _on_frame(self, raw: str | bytes) -> None:
        if raw in _PINGS:
            self._offer(_PONG, is_event=False)
            return
        try:
            frame = _decode_frame(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
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
        if conversation_id is None:
            self._offer(
                _error_frame("conversation_not_found", "no such conversation"), is_event=False
            )
            return
        now = time.monotonic()
        typed = self._typed
        if typed is None:
            typed = self._typed = {}
        if now - typed.get(conversation_id, 0.0) < 1.0:
            return  # at most one typing signal per conversation and second
        if len(typed) > 256:
            typed.clear()
        typed[conversation_id] = now
        try:
            await self._gw.messaging.typing(self.user_id, conversation_id)
        except DomainError as exc:
            self._offer(_error_frame(exc.code, exc.message), is_event=False)

    def _live_frame(self, event: EncodedBusEvent) -> str:
        """``_frame`` of a live event, its rendering shared with the other sockets."""
        rendered = self._gw.event_json(event.type, event.payload)
        if event.seq is None:
            return '{"type":"event","event":' + rendered + "}"
        # A cursor is base64url: its JSON is itself in quotes.
        return "".join(
            ('{"type":"event","cursor":"', cursor_for(event.seq), '","event":', rendered, "}")
        )

    def _frame(self, type_: str, payload: dict[str, Any], seq: int | None) -> str:
        body: dict[str, Any] = {"type": "event"}
        if seq is not None:
            body["cursor"] = cursor_for(seq)
        body["event"] = self._gw.render(type_, payload)
        return _encode(body).decode()


async def _awaited(awaitable: Awaitable[Any]) -> None:
    await awaitable


async def _finished(pending: eager.Pending) -> bool:
    """A started send finished: False when it failed (the client went away)."""
    try:
        await eager.finish(pending)
    except Exception:
        return False
    return True


_TRACED_FRAMES = frozenset({"typing", "ack", "ping", "auth"})


def _frame_span(raw: str | bytes) -> str:
    """The span name of a client frame (tracing on): ``ws <type>`` for the known types."""
    try:
        kind = _decode_frame(raw).type
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return "ws bad_frame"
    return f"ws {kind}" if kind in _TRACED_FRAMES else "ws frame"


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
