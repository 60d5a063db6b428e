"""Helpers for the WebSocket gateway tests: frames are waited for with timeouts, never
with sleeps."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from litestar.testing.websocket_test_session import WebSocketTestSession

from socius.realtime import Realtime

WAIT = 10.0  # seconds a test waits for a frame before failing


def realtime_of(app: Any) -> Realtime:
    realtime: Realtime | None = app.wiring.container.realtime
    assert realtime is not None
    return realtime


def recv(ws: WebSocketTestSession, timeout: float = WAIT) -> dict[str, Any]:
    frame = ws.receive_json(timeout=timeout)
    assert isinstance(frame, dict)
    return frame


def expect_close(
    ws: WebSocketTestSession, code: int, timeout: float = WAIT
) -> list[dict[str, Any]]:
    """Read until the server closes with ``code``; the frames seen before."""
    seen: list[dict[str, Any]] = []
    while True:
        try:
            seen.append(recv(ws, timeout))
        except WebSocketDisconnect as closed:
            got = (closed.code, closed.detail)
            break
    assert got[0] == code, (got, seen)
    return seen


def authenticate(
    ws: WebSocketTestSession, token: str, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    """Send the auth frame; the replayed event frames and the ``ready`` cursor."""
    ws.send_json({"type": "auth", "token": token, "cursor": cursor})
    replayed: list[dict[str, Any]] = []
    while True:
        frame = recv(ws)
        if frame["type"] == "ready":
            return replayed, frame["cursor"]
        assert frame["type"] == "event", frame
        replayed.append(frame)


@contextlib.contextmanager
def connected(
    http: TestClient[Any], token: str, cursor: str | None = None
) -> Iterator[tuple[WebSocketTestSession, list[dict[str, Any]], str]]:
    with http.websocket_connect("/v1/ws") as ws:
        replayed, ready = authenticate(ws, token, cursor)
        yield ws, replayed, ready


def until(
    ws: WebSocketTestSession, match: Callable[[dict[str, Any]], bool]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first frame ``match`` accepts, and those before it."""
    before: list[dict[str, Any]] = []
    while True:
        frame = recv(ws)
        if match(frame):
            return frame, before
        before.append(frame)


def assert_pong_next(ws: WebSocketTestSession) -> None:
    """The socket is open and has nothing queued before the answer to a ping."""
    ws.send_json({"type": "ping"})
    frame = recv(ws)
    assert frame == {"type": "pong"}, f"a frame came before the pong: {frame}"


def event_type(frame: dict[str, Any]) -> str:
    return str(frame["event"]["type"])
