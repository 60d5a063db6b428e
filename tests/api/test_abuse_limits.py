"""Per-user abuse limits: sends, typing, friend requests and group creation answer 429
``rate_limited`` with Retry-After past their limit, and a socket past the per-user cap is
closed with 4429. Counted in memory (embedded) or in Redis, across nodes (clustered).

The limits here are small and their windows long (an hour), so that no token comes back
while a test runs: nothing depends on how fast the machine is.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from ws_support import authenticate, expect_close, realtime_of, recv

from conftest import NATS_URL, PASSWORD, Account, App, make_app, require_service, unique_name
from contract import assert_error
from socius.client import Client
from socius.settings import Settings

HOUR = 3600
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def limited(make_settings: Callable[..., Settings]) -> Callable[..., Iterator[Any]]:
    """``with limited(**settings) as (http, app, new_account): ...``"""
    from contextlib import contextmanager

    @contextmanager
    def start(**overrides: Any) -> Iterator[Any]:
        app = make_app(make_settings(**overrides))
        with TestClient(app.asgi) as http:  # type: ignore[arg-type]

            def account() -> Account:
                client = Client(http=http)
                return Account(client, client.register(unique_name(), PASSWORD), PASSWORD)

            yield http, app, account

    return start


def direct(a: Account, b: Account) -> str:
    body = a.client.request(
        "POST", "/v1/conversations", json={"kind": "direct", "member_ids": [b.id]}
    ).json()
    return str(body["id"])


def post_message(sender: Account, conversation: str) -> Any:
    return sender.client.raw(
        "POST",
        f"/v1/conversations/{conversation}/messages",
        json={"client_msg_id": secrets.token_hex(8), "body": "hi"},
    )


def assert_limited(response: Any, interval: float) -> None:
    """429 rate_limited, with a Retry-After no longer than one refill interval."""
    error = assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= interval
    assert error["details"]["retry_after"] == retry_after


def metric(http: TestClient[Any], action: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f'rate_limited_total{{action="{action}"}}'):
            return float(line.split()[-1])
    return 0.0


# ---------------------------------------------------------------------------- REST limits


def test_sends_past_the_limit_are_refused_and_not_stored(limited: Any) -> None:
    with limited(limit_messages=3, limit_messages_seconds=HOUR) as (http, _, account):
        a, b = account(), account()
        conversation = direct(a, b)
        for _ in range(3):
            assert post_message(a, conversation).status_code == 201
        assert_limited(post_message(a, conversation), HOUR / 3)
        # The other member has a bucket of their own.
        assert post_message(b, conversation).status_code == 201
        history = b.client.request("GET", f"/v1/conversations/{conversation}/messages").json()
        assert len(history["items"]) == 4
        assert metric(http, "messages") == 1


def test_typing_past_the_limit_is_refused_over_rest_and_the_socket(limited: Any) -> None:
    with limited(limit_typing=2, limit_typing_seconds=HOUR) as (http, _, account):
        a, b = account(), account()
        conversation = direct(a, b)
        path = f"/v1/conversations/{conversation}/typing"
        for _ in range(2):
            assert a.client.raw("POST", path).status_code < 300
        assert_limited(a.client.raw("POST", path), HOUR / 2)
        with http.websocket_connect("/v1/ws") as ws:
            authenticate(ws, a.auth.access_token)
            ws.send_json({"type": "typing", "conversation_id": conversation})
            frame = recv(ws)
            assert frame["type"] == "error"
            assert frame["code"] == "rate_limited"


def test_friend_requests_past_the_limit_are_refused(limited: Any) -> None:
    with limited(limit_friend_requests=2, limit_friend_requests_seconds=HOUR) as (_, _, account):
        a, others = account(), [account() for _ in range(3)]
        for other in others[:2]:
            response = a.client.raw("POST", "/v1/friends/requests", json={"user_id": other.id})
            assert response.status_code == 200
        response = a.client.raw("POST", "/v1/friends/requests", json={"user_id": others[2].id})
        assert_limited(response, HOUR / 2)
        assert not a.client.relationships([others[2].id])[0].request_sent
        # Answering a request is not limited.
        assert (
            others[0].client.raw("POST", f"/v1/friends/requests/{a.id}/accept").status_code == 200
        )


def test_group_creation_past_the_limit_is_refused(limited: Any) -> None:
    with limited(limit_groups=1, limit_groups_seconds=HOUR) as (_, _, account):
        a, b = account(), account()
        body = {"kind": "group", "title": "team", "member_ids": [b.id]}
        assert a.client.raw("POST", "/v1/conversations", json=body).status_code == 201
        assert_limited(a.client.raw("POST", "/v1/conversations", json=body), HOUR)
        assert len(a.client.request("GET", "/v1/conversations").json()["items"]) == 1
        assert b.client.raw("POST", "/v1/conversations", json=body).status_code == 201


def test_a_limit_of_zero_is_no_limit(limited: Any) -> None:
    with limited(limit_messages=0) as (_, _, account):
        a, b = account(), account()
        conversation = direct(a, b)
        for _ in range(60):  # more than the default allows at once
            assert post_message(a, conversation).status_code == 201


# ---------------------------------------------------------------------------- sockets


def wait_until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_socket_past_the_per_user_cap_is_closed_4429(limited: Any) -> None:
    with limited(ws_max_connections_per_user=2) as (http, app, account):
        a, b = account(), account()
        gateway = realtime_of(app).gateway
        with http.websocket_connect("/v1/ws") as first, http.websocket_connect("/v1/ws") as second:
            authenticate(first, a.auth.access_token)
            authenticate(second, a.auth.access_token)
            with http.websocket_connect("/v1/ws") as third:
                third.send_json({"type": "auth", "token": a.auth.access_token, "cursor": None})
                assert expect_close(third, 4429) == []
            # Another user is not affected.
            with http.websocket_connect("/v1/ws") as other:
                authenticate(other, b.auth.access_token)
            second.close()
            wait_until(lambda: len(gateway.connections) == 1)
            http.blocking_portal.call(realtime_of(app).sockets.settle)
            # The closed socket's slot is free again.
            with http.websocket_connect("/v1/ws") as again:
                authenticate(again, a.auth.access_token)
        assert metric(http, "sockets") == 1


# ---------------------------------------------------------------------------- clustered


def two_nodes(stack: str, make_settings: Callable[..., Settings], **overrides: Any) -> list[App]:
    if stack != "postgres":
        pytest.skip("nodes share their counts only through Redis")
    return [make_app(make_settings(**overrides)) for _ in range(2)]


def test_sends_are_counted_across_nodes(stack: str, make_settings: Callable[..., Settings]) -> None:
    node_a, node_b = two_nodes(stack, make_settings, limit_messages=3, limit_messages_seconds=HOUR)
    with TestClient(node_a.asgi) as http_a, TestClient(node_b.asgi) as http_b:  # type: ignore[arg-type]
        clients = [Client(http=http_a), Client(http=http_a)]
        a, b = (Account(c, c.register(unique_name(), PASSWORD), PASSWORD) for c in clients)
        conversation = direct(a, b)
        a_on_b = Account(Client(http=http_b, access_token=a.auth.access_token), a.auth, PASSWORD)
        assert post_message(a, conversation).status_code == 201
        assert post_message(a_on_b, conversation).status_code == 201
        assert post_message(a, conversation).status_code == 201
        assert_limited(post_message(a_on_b, conversation), HOUR / 3)
        assert_limited(post_message(a, conversation), HOUR / 3)


def test_sockets_are_counted_across_nodes(
    stack: str, make_settings: Callable[..., Settings]
) -> None:
    node_a, node_b = two_nodes(stack, make_settings, ws_max_connections_per_user=2)
    with TestClient(node_a.asgi) as http_a, TestClient(node_b.asgi) as http_b:  # type: ignore[arg-type]
        token = Client(http=http_a).register(unique_name(), PASSWORD).access_token
        with http_a.websocket_connect("/v1/ws") as one, http_b.websocket_connect("/v1/ws") as two:
            authenticate(one, token)
            authenticate(two, token)
            for http in (http_a, http_b):
                with http.websocket_connect("/v1/ws") as third:
                    third.send_json({"type": "auth", "token": token, "cursor": None})
                    expect_close(third, 4429)


def test_a_cache_outage_fails_open(stack: str, make_settings: Callable[..., Settings]) -> None:
    if stack != "postgres":
        pytest.skip("the cache outage needs the Redis-backed stack")
    require_service(NATS_URL, "nats")
    app = make_app(
        make_settings(
            redis_url=DEAD_REDIS,
            nats_url=NATS_URL,  # (the bus must live on: the Redis bus is down too)
            limit_messages=1,
            limit_messages_seconds=HOUR,
            ws_max_connections_per_user=1,
        )
    )
    with TestClient(app.asgi) as http:  # type: ignore[arg-type]
        a, b = (
            Account(c, c.register(unique_name(), PASSWORD), PASSWORD)
            for c in (Client(http=http), Client(http=http))
        )
        conversation = direct(a, b)
        for _ in range(3):
            assert post_message(a, conversation).status_code == 201
        with http.websocket_connect("/v1/ws") as one, http.websocket_connect("/v1/ws") as two:
            authenticate(one, a.auth.access_token)
            authenticate(two, a.auth.access_token)
        text = http.get("/metrics").text
        assert 'cache_errors_total{op="limit_messages"}' in text
        assert 'cache_errors_total{op="socket_cap"}' in text
