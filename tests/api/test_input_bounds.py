"""No input makes a 5xx: forged cursors, out-of-range numbers and deeply nested JSON are
clear 4xx answers in the error envelope, on every list, on both stacks (issue 8, item 3)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from ws_support import assert_pong_next, connected, expect_close, recv

from conftest import Account
from contract import assert_error
from cursors import raw_cursor

CONVERSATIONS = "/v1/conversations"
BEYOND_INT64 = [2**63, 2**64, 2**70, -(2**63) - 1, -(2**70)]


@dataclass
class World:
    """A caller with a friend, a follower, a group with a message and a notification, so
    every list has something in it and every path names something real."""

    me: Account
    friend: Account
    conversation: str

    def lists(self) -> dict[str, str]:
        """Every list that pages with a cursor, by the key its position uses."""
        return {
            "/v1/friends": "p",
            "/v1/friends/requests": "p",
            "/v1/blocks": "p",
            "/v1/follow-requests": "p",
            f"/v1/users/{self.friend.id}/friends": "p",
            f"/v1/users/{self.friend.id}/followers": "p",
            f"/v1/users/{self.friend.id}/following": "p",
            f"/v1/users/{self.friend.id}/mutual-friends": "p",
            CONVERSATIONS: "c",
            f"{CONVERSATIONS}/{self.conversation}/members": "u",
            "/v1/notifications": "n",
            "/v1/sync": "s",
            "/v1/users/search?q=a": "o",
        }

    def get(self, url: str, **params: Any) -> httpx.Response:
        path, _, query = url.partition("?")
        fixed = dict(part.split("=", 1) for part in query.split("&") if part)
        return self.me.client.raw("GET", path, params={**fixed, **params})


@pytest.fixture
def world(register: Callable[..., Account]) -> World:
    me, friend, fan = register(), register(), register()
    me.client.request("POST", "/v1/friends/requests", json={"user_id": friend.id})
    friend.client.request("POST", f"/v1/friends/requests/{me.id}/accept")
    fan.client.request("POST", f"/v1/users/{me.id}/follow")
    group = me.client.request(
        "POST",
        CONVERSATIONS,
        json={"kind": "group", "title": "bounds", "member_ids": [friend.id]},
    ).json()
    me.client.request(
        "POST",
        f"{CONVERSATIONS}/{group['id']}/messages",
        json={"client_msg_id": uuid.uuid4().hex, "body": "hi"},
    )
    return World(me, friend, group["id"])


def test_cursors_holding_numbers_past_64_bits_are_400_on_every_list(world: World) -> None:
    for url, key in world.lists().items():
        for value in BEYOND_INT64:
            position: dict[str, Any] = {key: value}
            if key == "c":
                position["t"] = "2026-01-01T00:00:00Z"
            response = world.get(url, cursor=raw_cursor(position))
            assert_error(response, 400, "invalid_cursor")


def test_a_conversations_cursor_needs_an_aware_time_in_range(world: World) -> None:
    good = {"c": 1, "t": "2026-01-01T00:00:00+02:00"}
    assert world.get(CONVERSATIONS, cursor=raw_cursor(good)).status_code == 200
    for when in (
        "2026-01-01T00:00:00",  # naive
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "2026-13-01T00:00:00Z",
        "yesterday",
        1767225600,
    ):
        response = world.get(CONVERSATIONS, cursor=raw_cursor({"c": 1, "t": when}))
        assert_error(response, 400, "invalid_cursor")


def test_a_cursor_of_another_list_or_with_extra_fields_is_400(world: World) -> None:
    for url, key in world.lists().items():
        other = "s" if key != "s" else "n"
        for position in ({other: 1}, {key: 1, "x": 1}, {}, [1], 1, None, "s"):
            response = world.get(url, cursor=raw_cursor(position))
            assert_error(response, 400, "invalid_cursor")


@pytest.mark.parametrize("name", ["before_seq", "after_seq"])
def test_message_seq_bounds_past_64_bits_are_422(world: World, name: str) -> None:
    url = f"{CONVERSATIONS}/{world.conversation}/messages"
    assert world.get(url, **{name: 2**63 - 1}).status_code == 200
    for value in (2**63, 2**64, 2**70, -1):
        error = assert_error(world.get(url, **{name: value}), 422, "validation_error")
        assert error["details"]["field"] == name


def test_read_pointer_past_64_bits_is_422(world: World) -> None:
    url = f"{CONVERSATIONS}/{world.conversation}/read"
    for seq in (2**63, 2**70):
        response = world.me.client.raw("POST", url, json={"seq": seq})
        assert_error(response, 422, "validation_error")
    assert world.me.client.raw("POST", url, json={"seq": 2**63 - 1}).status_code == 200


@pytest.mark.parametrize("depth", [33, 1_000, 10_000, 30_000])
def test_deeply_nested_json_is_400_invalid_json(world: World, depth: int) -> None:
    """Under the 64 KiB body limit, whatever the body is meant for."""
    nested = b"[" * depth + b"]" * depth
    bodies = [
        nested,
        b'{"body": ' + nested + b', "client_msg_id": "x"}',
        b'{"client_msg_id": "x", "body": "hi", "extra": ' + nested + b"}",
    ]
    url = f"{CONVERSATIONS}/{world.conversation}/messages"
    for body in bodies:
        assert len(body) < 64 * 1024
        response = world.me.client.raw(
            "POST", url, content=body, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 400, "invalid_json")


def test_nesting_up_to_the_limit_is_judged_by_its_shape(world: World) -> None:
    nested = b"[" * 31 + b"]" * 31
    response = world.me.client.raw(
        "POST",
        f"{CONVERSATIONS}/{world.conversation}/messages",
        content=b'{"client_msg_id": "x", "body": ' + nested + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 422, "validation_error")


# ----------------------------------------------------------------------- fuzzing

_ints = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([*BEYOND_INT64, 2**63 - 1, 0, -1, 1]),
)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    _ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.datetimes(timezones=st.none() | st.just(UTC)).map(datetime.isoformat),
)
_value = _scalar | st.lists(_scalar, max_size=3)
_keys = ["s", "n", "p", "u", "o", "c", "t", "x"]


def cursors(key: str) -> st.SearchStrategy[str]:
    """Cursors for a list whose position is ``key``: mostly near-misses of a real one."""
    required: dict[str, st.SearchStrategy[Any]] = {key: _ints}
    if key == "c":
        required["t"] = _scalar
    near = st.fixed_dictionaries(required, optional={"x": _value})
    anything = st.dictionaries(st.sampled_from(_keys), _value, max_size=3)
    return st.one_of(
        near.map(raw_cursor),
        anything.map(raw_cursor),
        _value.map(raw_cursor),
        st.text(max_size=40),
        st.binary(max_size=60).map(lambda raw: raw.hex()),
        st.text(alphabet="AZaz09_-=+/", min_size=500, max_size=700),
    )


NUMBERS = st.one_of(_ints.map(str), st.text(max_size=12), st.floats().map(str))


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_cursors_and_numbers_never_make_a_5xx(world: World, data: st.DataObject) -> None:
    """Any cursor, limit or seq bound on any list: 200, or a 4xx in the error envelope
    (400 for a cursor, 422 for a number)."""
    lists = {
        **world.lists(),
        f"{CONVERSATIONS}/{world.conversation}/messages": "",
        "/v1/friends/suggestions": "",
    }
    url = data.draw(st.sampled_from(sorted(lists)), label="url")
    params: dict[str, str] = {}
    if data.draw(st.booleans(), label="with limit"):
        params["limit"] = data.draw(NUMBERS, label="limit")
    if url.endswith("/messages"):
        for name in ("before_seq", "after_seq"):
            if data.draw(st.booleans(), label=f"with {name}"):
                params[name] = data.draw(NUMBERS, label=name)
    elif lists[url]:
        params["cursor"] = data.draw(cursors(lists[url]), label="cursor")
    response = world.get(url, **params)
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code == 400:
        assert_error(response, 400, "invalid_cursor")
    elif response.status_code == 422:  # only a number is a 422
        assert_error(response, 422, "validation_error")
        assert response.json()["error"]["details"]["field"] in params


def test_deeply_nested_socket_frames_are_refused_not_crashing(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a = register()
    deep = "[" * 20_000 + "]" * 20_000
    with http.websocket_connect("/v1/ws") as ws:
        ws.send_text('{"type": "auth", "token": "x", "junk": ' + deep + "}")
        assert expect_close(ws, 4401) == []
    with connected(http, a.auth.access_token) as (ws, _, _):
        ws.send_text('{"type": "ping", "junk": ' + deep + "}")
        assert recv(ws)["code"] == "bad_frame"
        assert_pong_next(ws)
