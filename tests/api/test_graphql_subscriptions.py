"""GraphQL subscriptions over graphql-transport-ws at /graphql, fed by the same per-user
delivery as GET /v1/ws: resumable, authorized the same way, on both stacks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from graphql_support import (
    next_payload,
    recv,
    subscribe,
    transport_ws,
    wait_streaming,
)
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from ws_support import connected

from conftest import Account

EVENTS = "subscription($c: String) { events(cursor: $c) { type cursor event } }"


def befriend(a: Account, b: Account) -> None:
    a.client.send_friend_request(b.id)
    b.client.accept_friend_request(a.id)


def direct(a: Account, b: Account) -> str:
    response = a.client.request(
        "POST", "/v1/conversations", json={"kind": "direct", "member_ids": [b.id]}
    )
    return str(response.json()["id"])


def send(sender: Account, conversation_id: str, body: str) -> dict[str, Any]:
    response = sender.client.request(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": uuid.uuid4().hex, "body": body},
    )
    return dict(response.json())


def events_item(ws: Any, op_id: str) -> dict[str, Any]:
    payload = next_payload(ws, op_id)
    assert "errors" not in payload, payload
    item = payload["data"]["events"]
    assert isinstance(item, dict)
    return item


def test_events_stream_live_and_resume_from_a_cursor(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    befriend(a, b)
    cid = direct(a, b)
    with transport_ws(http, a.auth.access_token) as ws:
        subscribe(ws, "1", EVENTS, c=None)
        ready = events_item(ws, "1")
        assert ready["type"] == "ready"
        assert ready["event"] is None
        sent = send(b, cid, "live one")
        live = events_item(ws, "1")
        assert live["type"] == "message.created"
        assert live["event"]["message"]["body"] == "live one"
        assert live["event"]["message"]["id"] == sent["id"]
        cursor = live["cursor"]
        ws.send_json({"id": "1", "type": "complete"})
        # Missed while not subscribed: replayed from the cursor, exactly once, then ready.
        missed = [send(b, cid, f"missed {k}")["id"] for k in range(3)]
        subscribe(ws, "2", EVENTS, c=cursor)
        replayed = [events_item(ws, "2") for _ in range(3)]
        assert [r["event"]["message"]["id"] for r in replayed] == missed
        rest = a.client.request("GET", "/v1/sync", params={"cursor": cursor}).json()
        assert [r["cursor"] for r in replayed] == [i["cursor"] for i in rest["items"]]
        assert events_item(ws, "2") == {
            "type": "ready",
            "cursor": replayed[-1]["cursor"],
            "event": None,
        }
        # A bad cursor: the same code as /v1/sync gives.
        subscribe(ws, "3", EVENTS, c="bogus!")
        payload = next_payload(ws, "3")
        assert payload["errors"][0]["extensions"]["code"] == "invalid_cursor"


def test_message_created_is_for_members_only(
    app: Any, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b, outsider = register(), register(), register()
    befriend(a, b)
    cid = direct(a, b)
    other = direct(b, register())
    query = (
        "subscription($c: ID!) { messageCreated(conversationId: $c) { id body seq sender { id } } }"
    )
    with transport_ws(http, outsider.auth.access_token) as ws:
        subscribe(ws, "x", query, c=cid)
        payload = next_payload(ws, "x")
        assert payload["errors"][0]["extensions"]["code"] == "conversation_not_found"
        assert recv(ws) == {"id": "x", "type": "complete"}
    with transport_ws(http, b.auth.access_token) as ws:
        subscribe(ws, "m", query, c=cid)
        wait_streaming(app, http, b.id)
        send(b, other, "elsewhere")  # b's, but not in this conversation
        sent = send(a, cid, "here")
        payload = next_payload(ws, "m")
        assert payload == {
            "data": {
                "messageCreated": {
                    "id": sent["id"],
                    "body": "here",
                    "seq": sent["seq"],
                    "sender": {"id": a.id},
                }
            }
        }


def test_typing_and_presence(
    app: Any, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b, c = register(), register(), register()
    befriend(a, b)
    cid = direct(a, b)
    with transport_ws(http, a.auth.access_token) as ws:
        subscribe(ws, "t", "subscription { typing { conversationId userId } }")
        subscribe(ws, "p", "subscription { presence { userId online } }")
        wait_streaming(app, http, a.id, count=2)
        c.client.request("POST", "/v1/users/" + a.id + "/follow")  # nothing for these two
        b.client.request("POST", f"/v1/conversations/{cid}/typing")
        assert next_payload(ws, "t") == {
            "data": {"typing": {"conversationId": cid, "userId": b.id}}
        }
        with connected(http, b.auth.access_token):
            assert next_payload(ws, "p") == {"data": {"presence": {"userId": b.id, "online": True}}}
        assert next_payload(ws, "p") == {"data": {"presence": {"userId": b.id, "online": False}}}


def test_queries_over_the_socket_and_its_authentication(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a = register()
    with transport_ws(http, a.auth.access_token) as ws:
        subscribe(ws, "q", "{ me { id } }")
        assert next_payload(ws, "q") == {"data": {"me": {"id": a.id}}}
        assert recv(ws) == {"id": "q", "type": "complete"}
    # The header-like payload GraphiQL sends works too.
    with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json(
            {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {a.auth.access_token}"},
            }
        )
        assert recv(ws) == {"type": "connection_ack"}
    for payload in ({}, {"token": "nope"}):
        with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init", "payload": payload})
            with pytest.raises(WebSocketDisconnect) as closed:
                recv(ws)
            assert closed.value.code == 4403


def test_a_revoked_session_ends_its_subscriptions(
    app: Any, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a = register()
    token = a.auth.access_token
    with transport_ws(http, token) as ws:
        subscribe(ws, "1", EVENTS, c=None)
        assert events_item(ws, "1")["type"] == "ready"
        a.client.request("POST", "/v1/auth/logout")
        payload = next_payload(ws, "1")
        assert payload["errors"][0]["extensions"]["code"] == "session_revoked"
        assert recv(ws) == {"id": "1", "type": "complete"}
        # And every later operation on that socket is refused the same way.
        subscribe(ws, "2", "{ me { id } }")
        assert next_payload(ws, "2")["errors"][0]["extensions"]["code"] == "session_revoked"
