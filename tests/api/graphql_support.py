"""Helpers for the GraphQL tests: run an operation as an account, expect an error code."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from litestar.testing.websocket_test_session import WebSocketTestSession
from ws_support import realtime_of

from conftest import Account
from socius.client import GraphQLError

WAIT = 10.0  # seconds a test waits for a frame before failing


def gql(a: Account, query: str, **variables: Any) -> dict[str, Any]:
    """The operation's data, through the SDK (raises GraphQLError on errors)."""
    return a.client.graphql(query, variables or None)


def gql_error(a: Account, query: str, **variables: Any) -> GraphQLError:
    with pytest.raises(GraphQLError) as caught:
        a.client.graphql(query, variables or None)
    return caught.value


def codes(error: GraphQLError) -> list[str]:
    return [e["extensions"]["code"] for e in error.errors]


def recv(ws: WebSocketTestSession) -> dict[str, Any]:
    frame = ws.receive_json(timeout=WAIT)
    assert isinstance(frame, dict)
    return frame


@contextlib.contextmanager
def transport_ws(http: TestClient[Any], token: str | None) -> Iterator[WebSocketTestSession]:
    """A graphql-transport-ws socket on /graphql, its connection_init acknowledged."""
    with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"token": token} if token else {}})
        assert recv(ws) == {"type": "connection_ack"}
        yield ws


def subscribe(ws: WebSocketTestSession, op_id: str, query: str, **variables: Any) -> None:
    ws.send_json(
        {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}}
    )


def next_payload(ws: WebSocketTestSession, op_id: str) -> dict[str, Any]:
    """The payload of the next ``next`` message of ``op_id`` (pongs and others skipped)."""
    while True:
        frame = recv(ws)
        if frame.get("id") == op_id:
            assert frame["type"] in ("next", "error"), frame
            if frame["type"] == "error":
                return {"errors": frame["payload"]}
            payload = frame["payload"]
            assert isinstance(payload, dict)
            return payload


def wait_streaming(app: Any, http: TestClient[Any], user_id: str, count: int = 1) -> None:
    """Wait until ``count`` gateway connections of the user are streaming live (a
    subscription that starts "from now" misses what commits before that)."""
    gateway = realtime_of(app).gateway

    def streaming() -> int:
        return sum(1 for c in gateway.connections if c.ready and c.user_id == int(user_id))

    async def ready() -> None:
        for _ in range(int(WAIT / 0.01)):
            if streaming() >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{count} streams of user {user_id} not ready")

    http.blocking_portal.call(ready)
