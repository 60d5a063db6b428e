"""Direct conversations: exactly one per pair, and only between people who may talk."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from conftest import Account

CONVERSATIONS = "/v1/conversations"


def error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


def open_dm(a: Account, b: Account) -> httpx.Response:
    return a.client.raw("POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [b.id]})


def send(a: Account, cid: str, body: str = "hello") -> httpx.Response:
    return a.client.raw(
        "POST",
        f"{CONVERSATIONS}/{cid}/messages",
        json={"client_msg_id": uuid.uuid4().hex, "body": body},
    )


def my_conversations(a: Account) -> list[dict[str, Any]]:
    page = a.client.request("GET", CONVERSATIONS, params={"limit": 100}).json()
    return list(page["items"])


def test_direct_conversation_is_created_once_and_found_from_either_side(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    first = open_dm(a, b)
    assert first.status_code == 201, first.text
    conversation = first.json()
    assert conversation["kind"] == "direct"
    assert conversation["title"] is None
    assert conversation["owner_id"] is None
    assert sorted(conversation["member_ids"]) == sorted([a.id, b.id])
    assert conversation["member_count"] == 2
    assert conversation["last_seq"] == 0
    assert conversation["unread_count"] == 0

    from_b = open_dm(b, a)
    assert from_b.json()["id"] == conversation["id"]
    assert open_dm(a, b).json()["id"] == conversation["id"]
    assert [c["id"] for c in my_conversations(a)] == [conversation["id"]]
    assert [c["id"] for c in my_conversations(b)] == [conversation["id"]]

    # With a message in it, opening again still finds the same conversation.
    assert send(a, conversation["id"]).status_code == 201
    again = open_dm(b, a)
    assert again.status_code == 200
    assert again.json()["id"] == conversation["id"]
    assert again.json()["last_message"]["body"] == "hello"

    # A different pair gets a different conversation.
    c = register()
    other = open_dm(a, c)
    assert other.status_code == 201
    assert other.json()["id"] != conversation["id"]


def test_opening_an_existing_empty_direct_conversation_answers_200(
    register: Callable[..., Account],
) -> None:
    """The route promises 201 only when the conversation was created ("200 when it
    existed"); a second open of a conversation with no message in it is not a creation."""
    a, b = register(), register()
    assert open_dm(a, b).status_code == 201
    assert open_dm(a, b).status_code == 200
    assert open_dm(b, a).status_code == 200


def test_direct_conversation_needs_exactly_one_other_real_user(
    register: Callable[..., Account],
) -> None:
    a, b, c = register(), register(), register()
    assert error(a.client.raw("POST", CONVERSATIONS, json={"kind": "direct", "member_ids": []}))[
        0
    ] == (422)
    assert error(
        a.client.raw("POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [b.id, c.id]})
    ) == (422, "invalid_members")
    assert error(open_dm(a, a)) == (422, "cannot_target_self")
    unknown = a.client.raw(
        "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": ["999999999999"]}
    )
    assert error(unknown) == (404, "user_not_found")
    garbage = a.client.raw("POST", CONVERSATIONS, json={"kind": "direct", "member_ids": ["x!"]})
    assert error(garbage) == (404, "user_not_found")
    assert my_conversations(a) == []


def test_blocked_either_way_cannot_open_a_direct_conversation(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    a.client.request("POST", f"/v1/users/{b.id}/block")
    assert error(open_dm(a, b)) == (403, "blocked")
    assert error(open_dm(b, a)) == (403, "blocked")
    assert my_conversations(a) == []
    assert my_conversations(b) == []
    a.client.request("DELETE", f"/v1/users/{b.id}/block")
    assert open_dm(b, a).status_code == 201


def test_a_block_stops_both_sides_writing_an_existing_direct_conversation(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    cid = open_dm(a, b).json()["id"]
    assert send(a, cid, "before").status_code == 201
    b.client.request("POST", f"/v1/users/{a.id}/block")
    assert error(send(a, cid, "after")) == (403, "blocked")
    assert error(send(b, cid, "after")) == (403, "blocked")
    history = b.client.request("GET", f"{CONVERSATIONS}/{cid}/messages").json()["items"]
    assert [m["body"] for m in history] == ["before"]
    b.client.request("DELETE", f"/v1/users/{a.id}/block")
    assert send(a, cid, "unblocked").status_code == 201


def test_recipient_taking_messages_from_friends_only(register: Callable[..., Account]) -> None:
    a, b, friend = register(), register(), register()
    b.client.request("PATCH", "/v1/me", json={"dm_policy": "friends"})
    assert error(open_dm(a, b)) == (403, "dm_not_allowed")
    assert my_conversations(b) == []
    # The policy is the recipient's: b may still open one with a.
    cid = open_dm(b, a).json()["id"]
    assert error(send(a, cid)) == (403, "dm_not_allowed")

    friend.client.request("POST", "/v1/friends/requests", json={"user_id": b.id})
    b.client.request("POST", f"/v1/friends/requests/{friend.id}/accept")
    opened = open_dm(friend, b)
    assert opened.status_code == 201, opened.text
    assert send(friend, opened.json()["id"]).status_code == 201

    b.client.request("PATCH", "/v1/me", json={"dm_policy": "everyone"})
    assert send(a, cid).status_code == 201
