"""Presence: online while connected on any node, announced to friends only, and
GET /v1/presence (friends only, never a 5xx when the cache is down)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient
from ws_support import assert_pong_next, connected, event_type, realtime_of, recv, until

from conftest import Account
from socius.domain.errors import CacheUnavailable


def befriend(a: Account, b: Account) -> None:
    a.client.send_friend_request(b.id)
    b.client.accept_friend_request(a.id)


def presence_of(viewer: Account, *ids: str) -> list[dict[str, Any]]:
    response = viewer.client.request("GET", "/v1/presence", params={"ids": ",".join(ids)})
    assert response.status_code == 200
    return list(response.json()["items"])


def settled(app: Any, http: TestClient[Any]) -> None:
    """Wait until presence has announced what the connections so far changed: it does so
    in the background, so a friend connecting right after could hear it too."""
    http.blocking_portal.call(realtime_of(app).presence.settle)


def is_presence(user: Account, online: bool) -> Callable[[dict[str, Any]], bool]:
    def match(frame: dict[str, Any]) -> bool:
        event = frame.get("event", {})
        return (
            frame["type"] == "event"
            and event.get("type") == "presence"
            and event.get("user_id") == user.id
            and event.get("online") is online
        )

    return match


def test_friends_see_online_and_offline_and_strangers_see_nothing(
    app: Any, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b, c = register(), register(), register()
    befriend(a, b)
    assert presence_of(a, b.id) == [{"user_id": b.id, "online": False, "last_seen_at": None}]

    with (
        connected(http, a.auth.access_token) as (ws_a, _, _),
        connected(http, c.auth.access_token) as (ws_c, _, _),
    ):
        settled(app, http)  # a's own "online" went out before b is there to hear it
        with connected(http, b.auth.access_token) as (ws_b, _, _):
            online = recv(ws_a)
            assert is_presence(b, True)(online)
            assert "cursor" not in online
            [seen] = presence_of(a, b.id, c.id, a.id, "123")
            assert seen["user_id"] == b.id
            assert seen["online"] is True
            assert presence_of(c, b.id) == []  # not c's friend: left out
            assert_pong_next(ws_b)
        offline = recv(ws_a)
        assert is_presence(b, False)(offline)
        assert offline["event"]["last_seen_at"] is not None
        assert presence_of(a, b.id) == [
            {"user_id": b.id, "online": False, "last_seen_at": offline["event"]["last_seen_at"]}
        ]
        # c, a stranger to b, heard nothing of it: the first thing c hears is this.
        a.client.send_friend_request(c.id)
        assert event_type(recv(ws_c)) == "friend.request"


def test_a_user_stays_online_until_their_last_connection_leaves(
    app: Any, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    befriend(a, b)
    with connected(http, a.auth.access_token) as (ws_a, _, _):
        settled(app, http)  # a's own "online" went out before b is there to hear it
        with connected(http, b.auth.access_token) as (ws_1, _, _):
            assert is_presence(b, True)(recv(ws_a))
            with connected(http, b.auth.access_token) as (ws_2, _, _):
                assert_pong_next(ws_2)
            assert_pong_next(ws_1)
            assert presence_of(a, b.id)[0]["online"] is True
        _, between = until(ws_a, is_presence(b, False))
        assert between == []  # no offline (or second online) while one socket was left


def test_presence_input_is_checked(http: TestClient[Any], register: Callable[..., Account]) -> None:
    a = register()
    too_many = ",".join(str(10**17 + i) for i in range(101))
    response = a.client.raw("GET", "/v1/presence", params={"ids": too_many})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "too_many_ids"
    response = a.client.raw("GET", "/v1/presence", params={"ids": "1,abc"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_id"
    response = a.client.raw("GET", "/v1/presence", params={"ids": "1"}, auth=False)
    assert response.status_code == 401
    assert presence_of(a, "") == []


class _DownCache:
    def __getattr__(self, name: str) -> Any:
        async def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise CacheUnavailable("down")

        return fail


def test_a_cache_outage_reads_as_offline_and_never_fails(
    app: Any,
    http: TestClient[Any],
    register: Callable[..., Account],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = register(), register()
    befriend(a, b)
    with connected(http, b.auth.access_token) as (ws_b, _, _):
        assert presence_of(a, b.id)[0]["online"] is True
        settled(app, http)  # b's "online" went out before a is there to hear it
        monkeypatch.setattr(realtime_of(app).presence, "_cache", _DownCache())
        assert presence_of(a, b.id) == [{"user_id": b.id, "online": False, "last_seen_at": None}]
        # Connecting and leaving still work while presence cannot be stored.
        with connected(http, a.auth.access_token) as (ws_a, _, _):
            assert_pong_next(ws_a)
        assert_pong_next(ws_b)
