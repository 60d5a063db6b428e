"""The WebSocket gateway from Python: authenticate, resume from a cursor, receive events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Self

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["RealtimeClient", "RealtimeClosed"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class RealtimeClosed(Exception):
    """The server closed the socket; ``code`` says why (4401 auth, 4408 too slow, 4410
    the cursor is older than the events kept: resync, then connect with no cursor)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


class RealtimeClient:
    """One connection to ``GET /v1/ws``.

    ``cursor`` is the position after the last event received; reconnect with it to get
    exactly what was missed. Event frames are returned as the server sent them
    (``{"type": "event", "cursor"?, "event": {...}}``).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        cursor: str | None = None,
        open_timeout: float = 10.0,
        max_size: int = 1 << 20,
    ) -> None:
        self._url = url
        self._token = token
        self.cursor = cursor
        self._open_timeout = open_timeout
        self._max_size = max_size
        self._ws: ClientConnection | None = None
        self.replayed: list[dict[str, Any]] = []

    async def connect(self) -> str:
        """Open, authenticate, collect the replay (``replayed``); the ready cursor."""
        self._ws = await connect(
            self._url, open_timeout=self._open_timeout, max_size=self._max_size
        )
        await self._send({"type": "auth", "token": self._token, "cursor": self.cursor})
        self.replayed = []
        while True:
            frame = await self._recv_frame()
            if frame.get("type") == "ready":
                self.cursor = frame.get("cursor") or self.cursor
                return str(self.cursor)
            if frame.get("type") == "event":
                self.replayed.append(frame)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _send(self, frame: dict[str, Any]) -> None:
        assert self._ws is not None, "not connected"
        await self._ws.send(_encode(frame).decode())

    async def _recv_frame(self) -> dict[str, Any]:
        assert self._ws is not None, "not connected"
        try:
            raw = await self._ws.recv()
        except ConnectionClosed as exc:
            received = exc.rcvd
            raise RealtimeClosed(
                received.code if received else None, received.reason if received else ""
            ) from exc
        frame = _decode(raw)
        if frame.get("type") == "event" and frame.get("cursor"):
            self.cursor = frame["cursor"]
        return frame

    async def recv(self) -> dict[str, Any]:
        """The next frame (events, pongs, errors). Bound the wait with ``asyncio.timeout``."""
        return await self._recv_frame()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Event frames as they come, until the socket closes."""
        while True:
            try:
                frame = await self._recv_frame()
            except RealtimeClosed:
                return
            if frame.get("type") == "event":
                yield frame

    async def ping(self) -> None:
        await self._send({"type": "ping"})

    async def typing(self, conversation_id: str) -> None:
        await self._send({"type": "typing", "conversation_id": conversation_id})

    async def ack(self, cursor: str) -> None:
        await self._send({"type": "ack", "cursor": cursor})

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
