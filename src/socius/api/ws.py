"""GET /v1/ws: the WebSocket gateway (protocol in docs/realtime.md).

OpenAPI cannot describe a WebSocket, so this route is documented in docs/realtime.md:

- The first frame must be ``{"type": "auth", "token": <access token>, "cursor": <cursor
  or null>}`` within 10 s, else the socket closes with 4401 (also for a bad or revoked
  token). A cursor that is not one of the caller's closes it with 4400.
- With a cursor (from ``/v1/sync`` or from an earlier ``event`` / ``ready`` frame: they
  are interchangeable), everything after it is sent first as ``event`` frames, then
  ``{"type": "ready", "cursor": ...}``. With ``null``, nothing is replayed: the stream
  starts at the current position, which ``ready`` names. A client that wants its whole
  history pages through ``/v1/sync`` first and connects with the cursor it ends at.
- Then live events; typing and presence come without a cursor and are never replayed.
- A client that cannot keep up, or sends nothing for 60 s (send ``ping`` every 30 s), is
  closed with 4408 and resumes from its last cursor. Logout, password change, session
  revocation and account deletion close the affected sockets at once with 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.types import ASGIApp

from socius.api.dependencies import container_of
from socius.realtime import Realtime

__all__ = ["AsgiSocket", "LitestarSocket", "WebSocketFront", "ws_gateway"]

PATH = "/v1/ws"


class LitestarSocket:
    """A Litestar WebSocket as the gateway's ``Socket``."""

    def __init__(self, socket: WebSocket[Any, Any, Any]) -> None:
        self._socket = socket

    async def receive(self) -> str | bytes | None:
        try:
            message = await self._socket.receive()
        except WebSocketDisconnect:
            return None
        if message["type"] != "websocket.receive":
            return None
        text = message.get("text")
        if text is not None:
            return str(text)
        return bytes(message.get("bytes") or b"")

    async def send(self, text: str) -> None:
        await self._socket.send_text(text)

    async def close(self, code: int, reason: str = "") -> None:
        # The client may be gone, or the server may already have stopped serving (at
        # shutdown Granian closes connections before the app's own shutdown runs): a close
        # that cannot be sent must not hold anything up.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._socket.close(code, reason)


@websocket("/v1/ws", name="ws_gateway")
async def ws_gateway(socket: WebSocket[Any, Any, Any]) -> None:
    """The WebSocket gateway: authenticate, replay after the cursor, then stream live."""
    realtime = container_of(socket.app.state).realtime
    await socket.accept()
    if realtime is None:
        await socket.close(1011, "real-time delivery is not configured")
        return
    await realtime.gateway.serve(LitestarSocket(socket))


class AsgiSocket:
    """The raw ASGI websocket as the gateway's ``Socket`` (no framework in between)."""

    __slots__ = ("_closed", "_receive", "_send")

    def __init__(self, receive: Any, send: Any) -> None:
        self._receive = receive
        self._send = send
        self._closed = False

    async def receive(self) -> str | bytes | None:
        if self._closed:
            return None
        message: Any = await self._receive()
        if message["type"] != "websocket.receive":  # websocket.disconnect
            self._closed = True
            return None
        text = message.get("text")
        if text is not None:
            return str(text)
        return bytes(message.get("bytes") or b"")

    async def send(self, text: str) -> None:
        await self._send({"type": "websocket.send", "text": text})

    def send_soon(self, text: str) -> Any:
        """Start sending a text frame, without a coroutine of our own: what the server's
        send returns (Granian: a future, already under way; another server: a
        coroutine). The gateway's path for every live frame."""
        return self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str = "") -> None:
        # As LitestarSocket.close: the client or the server may already be gone.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._send({"type": "websocket.close", "code": code, "reason": reason})


class WebSocketFront:
    """Serves ``GET /v1/ws`` straight from the ASGI scope, in front of the middleware and
    Litestar's routing; everything else goes to ``app``.

    Litestar adds nothing the gateway uses (it has its own protocol, auth frame and
    errors) but costs, per socket, its routing and parameter resolution at connect, a few
    kilobytes of wrappers and suspended frames for the socket's life, and two wrappers on
    every frame sent: a large share of a connect and of an idle socket's memory (W3)."""

    def __init__(self, app: ASGIApp, realtime: Realtime | None) -> None:
        self._app = app
        self._realtime = realtime

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket" or scope["path"] != PATH:
            await self._app(scope, receive, send)
            return
        message: Any = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        socket = AsgiSocket(receive, send)
        if self._realtime is None:
            await socket.close(1011, "real-time delivery is not configured")
            return
        await self._realtime.gateway.serve(socket)
