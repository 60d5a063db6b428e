"""The notification inbox and /v1/sync: each user's events, oldest first, resumable
exactly where a client left off."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from conftest import Account
from cursors import raw_cursor

CONVERSATIONS = "/v1/conversations"


def error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    return response.status_code, body["error"]["code"]


def send(a: Account, cid: str, body: str = "hello") -> dict[str, Any]:
    response = a.client.request(
        "POST",
        f"{CONVERSATIONS}/{cid}/messages",
        json={"client_msg_id": uuid.uuid4().hex, "body": body},
    )
    return dict(response.json())


def sync_page(a: Account, cursor: str | None, limit: int = 100) -> dict[str, Any]:
    return dict(
        a.client.request("GET", "/v1/sync", params={"cursor": cursor, "limit": limit}).json()
    )


def sync_all(a: Account, cursor: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Every item (cursor and event) after ``cursor``."""
    items: list[dict[str, Any]] = []
    while True:
        page = sync_page(a, cursor, limit)
        if not page["items"]:
            assert page["next_cursor"] == cursor or cursor is None
            return items
        assert page["next_cursor"] == page["items"][-1]["cursor"]
        items += page["items"]
        cursor = page["next_cursor"]


def notifications(a: Account, **params: Any) -> dict[str, Any]:
    return dict(a.client.request("GET", "/v1/notifications", params=params).json())


def test_notifications_for_requests_followers_and_groups(
    register: Callable[..., Account],
) -> None:
    a, b, c = register(), register(), register()
    a.client.request("POST", "/v1/friends/requests", json={"user_id": b.id})
    b.client.request("POST", f"/v1/friends/requests/{a.id}/accept")
    c.client.request("POST", f"/v1/users/{a.id}/follow")
    group = a.client.request(
        "POST", CONVERSATIONS, json={"kind": "group", "title": "g", "member_ids": [b.id]}
    ).json()
    a.client.request("POST", f"{CONVERSATIONS}/{group['id']}/members", json={"user_ids": [c.id]})

    inbox_a = notifications(a)
    assert [(n["type"], n["payload"].get("user_id")) for n in inbox_a["items"]] == [
        ("follow.new", c.id),
        ("friend.accepted", b.id),
    ]
    assert inbox_a["unread_count"] == 2
    assert inbox_a["next_cursor"] is None

    inbox_b = notifications(b)
    assert [n["type"] for n in inbox_b["items"]] == ["member.added", "friend.request"]
    added = inbox_b["items"][0]["payload"]
    assert added["conversation"]["id"] == group["id"]
    assert added["by"] == a.id
    assert inbox_b["items"][1]["payload"]["user_id"] == a.id
    assert inbox_b["unread_count"] == 2
    assert all(n["read"] is False for n in inbox_b["items"])
    ids = [int(n["id"]) for n in inbox_b["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first

    inbox_c = notifications(c)
    assert [n["type"] for n in inbox_c["items"]] == ["member.added"]
    assert inbox_c["items"][0]["payload"]["user_ids"] == [c.id]
    # The owner is not notified of what they did themselves.
    assert all(n["type"] != "member.added" for n in inbox_a["items"])

    # Each notification also reached the user's event log.
    logged = [i["event"] for i in sync_all(b) if i["event"]["type"] == "notification"]
    assert [e["notification"]["id"] for e in logged] == [n["id"] for n in inbox_b["items"]][::-1]


def test_notifications_page_and_mark_read(register: Callable[..., Account]) -> None:
    me = register()
    fans = [register() for _ in range(5)]
    for fan in fans:
        fan.client.request("POST", f"/v1/users/{me.id}/follow")
    everything = notifications(me)["items"]
    assert [n["payload"]["user_id"] for n in everything] == [f.id for f in reversed(fans)]

    seen, cursor = [], None
    while True:
        page = notifications(me, limit=2, cursor=cursor)
        assert page["unread_count"] == 5
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything

    # Mark the oldest three read: up to and including an id.
    marked = me.client.request("POST", "/v1/notifications/read", json={"up_to_id": seen[2]["id"]})
    assert marked.json() == {"marked": 3}
    after = notifications(me)
    assert after["unread_count"] == 2
    assert [n["read"] for n in after["items"]] == [False, False, True, True, True]
    again = me.client.request("POST", "/v1/notifications/read", json={"up_to_id": seen[2]["id"]})
    assert again.json() == {"marked": 0}
    everything_read = me.client.request(
        "POST", "/v1/notifications/read", json={"up_to_id": seen[0]["id"]}
    )
    assert everything_read.json() == {"marked": 2}
    assert notifications(me)["unread_count"] == 0
    # Marking is per user: the fans' inboxes are untouched (and empty).
    assert notifications(fans[0])["items"] == []

    bad = me.client.raw("POST", "/v1/notifications/read", json={"up_to_id": "nope"})
    assert error(bad) == (422, "invalid_id")
    assert error(me.client.raw("POST", "/v1/notifications/read", json={}))[0] == 422
    assert error(me.client.raw("GET", "/v1/notifications", params={"cursor": "!!"})) == (
        400,
        "invalid_cursor",
    )


def test_sync_returns_events_oldest_first_and_resumes_exactly(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    cid = a.client.request(
        "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [b.id]}
    ).json()["id"]
    sent = [send(a, cid, f"m{i}") for i in range(7)]
    a.client.request(
        "PATCH", f"{CONVERSATIONS}/{cid}/messages/{sent[2]['id']}", json={"body": "edited"}
    )
    b.client.request("PUT", f"{CONVERSATIONS}/{cid}/messages/{sent[3]['id']}/reactions/ok")

    everything = sync_all(b)
    events = [i["event"] for i in everything]
    assert [e["type"] for e in events] == [
        "conversation.updated",
        *["message.created"] * 7,
        "message.updated",
        "reaction.updated",
    ]
    # message.created carries the message as it was sent, or as it is since its edit (no
    # old text survives in the log).
    edited = events[8]["message"]
    assert edited["body"] == "edited"
    assert [e["message"] for e in events[1:8]] == [*sent[:2], edited, *sent[3:]]
    assert len({i["cursor"] for i in everything}) == len(everything)

    # Any page size walks the same events; each item's cursor resumes right after it.
    for size in (1, 3, 4):
        assert sync_all(b, limit=size) == everything
    for n, item in enumerate(everything):
        assert sync_all(b, cursor=item["cursor"]) == everything[n + 1 :]

    # Caught up: an empty page that keeps the cursor.
    last = everything[-1]["cursor"]
    page = sync_page(b, last)
    assert page == {"items": [], "next_cursor": last}
    # What happens next is all that comes next.
    fresh = send(a, cid, "later")
    page = sync_page(b, last)
    assert [(i["event"]["type"], i["event"]["message"]) for i in page["items"]] == [
        ("message.created", fresh)
    ]
    assert sync_page(b, page["next_cursor"])["items"] == []
    # The sender's own log has its own numbering and its own copy.
    assert [i["event"]["type"] for i in sync_all(a)][-1] == "message.created"

    for bad in ("not base64 !", raw_cursor({"n": 5}), raw_cursor({"s": -1})):
        assert error(b.client.raw("GET", "/v1/sync", params={"cursor": bad})) == (
            400,
            "invalid_cursor",
        )
    assert error(b.client.raw("GET", "/v1/sync", params={"limit": 0}))[0] in (400, 422)
    assert b.client.raw("GET", "/v1/sync", auth=False).status_code == 401
