"""A subscription's stream of events: one gateway ``Connection``, as ``GET /v1/ws`` runs.

The WebSocket gateway (realtime/gateway.py) already does everything a subscription needs:
it joins the user's bus subject through the hub, replays the user's log after the cursor,
streams live events without duplicates and fills the gaps the bus leaves, closes on a
revoked session, holds a slot under the per-user socket cap, and closes a consumer too
slow to keep up. So a subscription runs one ``Connection`` on a ``Feed``: a ``Socket``
whose "client" sends nothing but the auth frame (the caller was authenticated by the
GraphQL socket's ``connection_init``, so its claims are handed over and its token is not
needed) and whose frames are read by the subscription instead of written to a network.

Frames wait in a small queue: when the subscription's own socket is slow, the gateway's
send queue fills and the connection ends as a too-slow socket would (``too_slow``); the
client subscribes again with its last cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any

import msgspec

from socius.domain.errors import (
    DomainError,
    InvalidCursor,
    Unauthenticated,
    Unavailable,
)
from socius.domain.sessions import AccessClaims
from socius.realtime import Realtime
from socius.realtime.gateway import (
    CLOSE_BAD_CURSOR,
    CLOSE_CURSOR_EXPIRED,
    CLOSE_TOO_MANY,
    CLOSE_TOO_SLOW,
    CLOSE_TRY_LATER,
    CLOSE_UNAUTHENTICATED,
)
from socius.services.auth import Principal
from socius.services.inbox import cursor_expired

__all__ = ["Feed", "StreamEnded", "frames"]

_QUEUE = 16  # frames read from the gateway and not yet taken by the subscription
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class StreamEnded(DomainError):
    """The stream ended on the server's side; ``code`` says why (docs/graphql.md)."""


class Feed:
    """The gateway's ``Socket`` for one subscription."""

    def __init__(self, cursor: str | None) -> None:
        self._auth: str | None = _encode({"type": "auth", "token": "", "cursor": cursor}).decode()
        self._frames: deque[dict[str, Any]] = deque()
        self._changed = asyncio.Event()  # a frame arrived, one was taken, or it closed
        self._left = asyncio.Event()  # the subscription has ended: the "client" left
        self.closed: tuple[int, str] | None = None
        self.error: dict[str, Any] | None = None  # the error frame sent before a close

    # -- the gateway's side (realtime.gateway.Socket) ------------------------------------

    async def receive(self) -> str | bytes | None:
        if self._auth is not None:
            frame, self._auth = self._auth, None
            return frame
        await self._left.wait()
        return None

    async def send(self, text: str) -> None:
        while len(self._frames) >= _QUEUE and not self._left.is_set():
            self._changed.clear()
            await self._changed.wait()
        if self._left.is_set():
            raise ConnectionError("the subscription has ended")
        frame = _decode(text)
        if frame.get("type") == "error":
            self.error = frame
        else:
            self._frames.append(frame)
        self._changed.set()

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed is None:
            self.closed = (code, reason)
        self._changed.set()

    # -- the subscription's side ---------------------------------------------------------

    async def next(self) -> dict[str, Any]:
        """The next frame; raises the reason once the gateway has closed the stream."""
        while True:
            if self._frames:
                frame = self._frames.popleft()
                self._changed.set()  # room for a waiting send
                return frame
            if self.closed is not None:
                raise self._ended(*self.closed)
            self._changed.clear()
            await self._changed.wait()

    def leave(self) -> None:
        self._left.set()
        self._changed.set()

    def _ended(self, code: int, reason: str) -> DomainError:
        said = self.error or {}
        if code == CLOSE_UNAUTHENTICATED:
            return Unauthenticated("the session has ended", code="session_revoked")
        if code == CLOSE_BAD_CURSOR:
            return InvalidCursor(str(said.get("message") or "cursor is not valid"))
        if code == CLOSE_CURSOR_EXPIRED:
            return cursor_expired()
        if code == CLOSE_TRY_LATER:
            return Unavailable("a dependency is unavailable; subscribe again shortly")
        if code == CLOSE_TOO_SLOW:
            return StreamEnded(
                "too far behind: subscribe again from your last cursor", code="too_slow"
            )
        if code == CLOSE_TOO_MANY:
            return StreamEnded(
                "too many sockets and subscriptions open for this user", code="too_many_streams"
            )
        return StreamEnded(reason or "the stream has ended", code="stream_ended")


async def frames(
    realtime: Realtime, principal: Principal, cursor: str | None
) -> AsyncGenerator[dict[str, Any], None]:
    """The gateway's frames for ``principal`` after ``cursor`` (``None``: from now): a
    ``ready`` frame once the replay is done, then ``event`` frames, until the subscriber
    stops reading (or the stream ends, raised as a ``DomainError``)."""
    gateway = realtime.gateway
    feed = Feed(cursor)
    # The subscription's liveness is its own socket's business (graphql-transport-ws
    # pings): the gateway's silence timeout, meant for /v1/ws clients, does not apply.
    limits = replace(gateway.limits, idle_timeout=math.inf)
    claims = AccessClaims(principal.user_id, principal.session_id, expires_at=0, issued_at=0)
    serving = asyncio.create_task(gateway.serve(feed, claims=claims, limits=limits))
    try:
        while True:
            yield await feed.next()
    finally:
        feed.leave()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await serving
