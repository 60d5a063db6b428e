"""Groups: the owner, members and roles, the member limit, and what non-members see."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import Account

CONVERSATIONS = "/v1/conversations"


def error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


def make_group(owner: Account, *members: Account, title: str = "team") -> dict[str, Any]:
    response = owner.client.request(
        "POST",
        CONVERSATIONS,
        json={"kind": "group", "title": title, "member_ids": [m.id for m in members]},
    )
    assert response.status_code == 201
    return dict(response.json())


def send(a: Account, cid: str, body: str = "hello") -> httpx.Response:
    return a.client.raw(
        "POST",
        f"{CONVERSATIONS}/{cid}/messages",
        json={"client_msg_id": uuid.uuid4().hex, "body": body},
    )


def send_reply(a: Account, cid: str, reply_to: str) -> httpx.Response:
    return a.client.raw(
        "POST",
        f"{CONVERSATIONS}/{cid}/messages",
        json={"client_msg_id": uuid.uuid4().hex, "body": "re", "reply_to": reply_to},
    )


def members(a: Account, cid: str) -> dict[str, str]:
    """user_id -> role, as ``a`` sees the member list."""
    page = a.client.request("GET", f"{CONVERSATIONS}/{cid}/members", params={"limit": 100}).json()
    return {m["user_id"]: m["role"] for m in page["items"]}


def add(a: Account, cid: str, *users: Account) -> httpx.Response:
    return a.client.raw(
        "POST", f"{CONVERSATIONS}/{cid}/members", json={"user_ids": [u.id for u in users]}
    )


def remove(a: Account, cid: str, user: Account) -> httpx.Response:
    return a.client.raw("DELETE", f"{CONVERSATIONS}/{cid}/members/{user.id}")


def set_role(a: Account, cid: str, user: Account, role: str) -> httpx.Response:
    return a.client.raw("PATCH", f"{CONVERSATIONS}/{cid}/members/{user.id}", json={"role": role})


def sync_all(a: Account) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = a.client.request("GET", "/v1/sync", params={"cursor": cursor, "limit": 100}).json()
        if not page["items"]:
            return events
        events += [item["event"] for item in page["items"]]
        cursor = page["next_cursor"]


def mentions(event: dict[str, Any], cid: str) -> bool:
    """Whether an event is about conversation ``cid``."""
    return cid in repr(event)


def test_the_creator_owns_the_group(register: Callable[..., Account]) -> None:
    owner, b, c = register(), register(), register()
    group = make_group(owner, b, c, b, owner, title="  Climbers  ")
    assert group["kind"] == "group"
    assert group["title"] == "Climbers"
    assert group["owner_id"] == owner.id
    assert group["role"] == "owner"
    assert group["member_count"] == 3
    assert group["member_ids"] is None
    assert members(owner, group["id"]) == {owner.id: "owner", b.id: "member", c.id: "member"}
    seen_by_b = b.client.request("GET", f"{CONVERSATIONS}/{group['id']}").json()
    assert seen_by_b["role"] == "member"
    assert seen_by_b["owner_id"] == owner.id

    # A group of one is fine; a group without a title is not.
    alone = make_group(owner, title="notes")
    assert alone["member_count"] == 1
    untitled = owner.client.raw("POST", CONVERSATIONS, json={"kind": "group", "member_ids": []})
    assert error(untitled) == (422, "validation_error")
    blank = owner.client.raw(
        "POST", CONVERSATIONS, json={"kind": "group", "title": "  ", "member_ids": []}
    )
    assert error(blank) == (422, "invalid_title")
    with_unknown = owner.client.raw(
        "POST",
        CONVERSATIONS,
        json={"kind": "group", "title": "x", "member_ids": [b.id, "999999999999"]},
    )
    assert error(with_unknown) == (404, "user_not_found")


def test_only_the_owner_or_an_admin_adds_and_removes(register: Callable[..., Account]) -> None:
    owner, admin, m1, m2, m3 = (register() for _ in range(5))
    cid = make_group(owner, admin, m1)["id"]
    assert set_role(owner, cid, admin, "admin").json()["role"] == "admin"

    # A plain member may do neither.
    assert error(add(m1, cid, m2)) == (403, "not_an_admin")
    assert error(remove(m1, cid, admin)) == (403, "not_an_admin")
    assert members(owner, cid) == {owner.id: "owner", admin.id: "admin", m1.id: "member"}

    # The owner adds; adding someone twice changes nothing.
    added = add(owner, cid, m2, m2)
    assert added.status_code == 200
    assert added.json()["member_count"] == 4
    assert add(owner, cid, m2).json()["member_count"] == 4
    # An admin adds and removes members.
    assert add(admin, cid, m3).json()["member_count"] == 5
    assert remove(admin, cid, m3).status_code == 204
    assert remove(admin, cid, m2).status_code == 204
    assert error(remove(admin, cid, m2)) == (404, "member_not_found")
    # ... but not the owner, nor another admin.
    assert set_role(owner, cid, m1, "admin").status_code == 200
    assert error(remove(admin, cid, owner)) == (403, "not_the_owner")
    assert error(remove(admin, cid, m1)) == (403, "not_the_owner")
    # The owner removes admins.
    assert remove(owner, cid, m1).status_code == 204
    assert members(owner, cid) == {owner.id: "owner", admin.id: "admin"}
    assert error(m1.client.raw("GET", f"{CONVERSATIONS}/{cid}")) == (404, "conversation_not_found")

    # Blocked people cannot be added.
    m2.client.request("POST", f"/v1/users/{owner.id}/block")
    assert error(add(owner, cid, m2)) == (403, "blocked")


def test_anyone_can_leave(register: Callable[..., Account]) -> None:
    owner, admin, member = register(), register(), register()
    cid = make_group(owner, admin, member)["id"]
    set_role(owner, cid, admin, "admin")
    assert remove(member, cid, member).status_code == 204
    assert error(member.client.raw("GET", f"{CONVERSATIONS}/{cid}"))[0] == 404
    assert remove(admin, cid, admin).status_code == 204
    assert members(owner, cid) == {owner.id: "owner"}
    assert owner.client.request("GET", f"{CONVERSATIONS}/{cid}").json()["member_count"] == 1


def test_the_owner_leaving_hands_ownership_over(register: Callable[..., Account]) -> None:
    owner, early, admin, late = (register() for _ in range(4))
    cid = make_group(owner, early)["id"]
    add(owner, cid, admin)
    add(owner, cid, late)
    set_role(owner, cid, admin, "admin")

    # An admin comes before members who joined earlier.
    assert remove(owner, cid, owner).status_code == 204
    after = admin.client.request("GET", f"{CONVERSATIONS}/{cid}").json()
    assert after["owner_id"] == admin.id
    assert after["role"] == "owner"
    assert members(admin, cid) == {admin.id: "owner", early.id: "member", late.id: "member"}
    # The new owner has the owner's powers.
    assert set_role(admin, cid, late, "admin").status_code == 200

    # No admin but the one... then the longest-standing member.
    set_role(admin, cid, late, "member")
    assert remove(admin, cid, admin).status_code == 204
    after = early.client.request("GET", f"{CONVERSATIONS}/{cid}").json()
    assert after["owner_id"] == early.id
    assert members(early, cid) == {early.id: "owner", late.id: "member"}


def test_roles_change_by_the_owner_only(register: Callable[..., Account]) -> None:
    owner, admin, member, outsider = (register() for _ in range(4))
    cid = make_group(owner, admin, member)["id"]
    assert error(set_role(member, cid, member, "admin")) == (403, "not_the_owner")
    made = set_role(owner, cid, admin, "admin").json()
    assert (made["user_id"], made["role"]) == (admin.id, "admin")
    assert set_role(owner, cid, admin, "admin").json()["role"] == "admin"  # idempotent
    assert error(set_role(admin, cid, member, "admin")) == (403, "not_the_owner")
    assert error(set_role(owner, cid, owner, "member")) == (422, "invalid_role")
    assert error(set_role(owner, cid, admin, "owner"))[0] == 422
    assert error(set_role(owner, cid, admin, "king"))[0] == 422
    assert error(set_role(owner, cid, outsider, "admin")) == (404, "member_not_found")
    assert set_role(owner, cid, admin, "member").json()["role"] == "member"
    assert members(owner, cid)[admin.id] == "member"
    # A former admin has lost the powers.
    assert error(add(admin, cid, outsider)) == (403, "not_an_admin")


def test_title_and_ttl_are_for_the_owner_and_admins(register: Callable[..., Account]) -> None:
    owner, admin, member = register(), register(), register()
    cid = make_group(owner, admin, member)["id"]
    set_role(owner, cid, admin, "admin")
    path = f"{CONVERSATIONS}/{cid}"
    assert error(member.client.raw("PATCH", path, json={"title": "mine"})) == (
        403,
        "not_an_admin",
    )
    assert error(member.client.raw("PATCH", path, json={"message_ttl_seconds": 60})) == (
        403,
        "not_an_admin",
    )
    assert admin.client.request("PATCH", path, json={"title": "renamed"}).json()["title"] == (
        "renamed"
    )
    done = owner.client.request("PATCH", path, json={"message_ttl_seconds": 3600}).json()
    assert done["message_ttl_seconds"] == 3600
    off = owner.client.request("PATCH", path, json={"message_ttl_seconds": 0}).json()
    assert off["message_ttl_seconds"] is None
    assert error(owner.client.raw("PATCH", path, json={"message_ttl_seconds": -5})) == (
        422,
        "invalid_ttl",
    )
    assert error(owner.client.raw("PATCH", path, json={"owner_id": member.id}))[0] == 422


def test_the_member_limit(
    register: Callable[..., Account], monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, b = register(), register()
    fake = [str(10**15 + i) for i in range(1001)]
    # 1,000 others and the creator: one too many, refused before anyone is looked up.
    too_many = owner.client.raw(
        "POST", CONVERSATIONS, json={"kind": "group", "title": "big", "member_ids": fake[:1000]}
    )
    assert error(too_many) == (422, "too_many_members")
    way_too_many = owner.client.raw(
        "POST", CONVERSATIONS, json={"kind": "group", "title": "big", "member_ids": fake}
    )
    assert error(way_too_many)[0] == 422
    # 999 others would fit: then it is about who they are.
    fits = owner.client.raw(
        "POST", CONVERSATIONS, json={"kind": "group", "title": "big", "member_ids": fake[:999]}
    )
    assert error(fits) == (404, "user_not_found")

    cid = make_group(owner, b)["id"]
    assert error(add(owner, cid, *[]))[0] == 422  # empty list
    overflow = owner.client.raw(
        "POST", f"{CONVERSATIONS}/{cid}/members", json={"user_ids": fake[:999]}
    )
    assert error(overflow) == (409, "too_many_members")
    assert owner.client.request("GET", f"{CONVERSATIONS}/{cid}").json()["member_count"] == 2

    # The same rule with a limit of 4, on real users.
    import socius.services.messaging as messaging

    monkeypatch.setattr(messaging, "MAX_GROUP_MEMBERS", 4)
    c, d, e = register(), register(), register()
    assert add(owner, cid, c, d).json()["member_count"] == 4  # exactly full
    assert add(owner, cid, c).status_code == 200  # already in: still fine
    assert error(add(owner, cid, e)) == (409, "too_many_members")
    remove(owner, cid, c)
    assert add(owner, cid, e).json()["member_count"] == 4
    full = owner.client.raw(
        "POST",
        CONVERSATIONS,
        json={"kind": "group", "title": "x", "member_ids": [b.id, c.id, d.id, e.id]},
    )
    assert error(full) == (422, "too_many_members")
    assert make_group(owner, b, c, d)["member_count"] == 4


def test_non_members_get_404_for_everything_in_a_conversation(
    register: Callable[..., Account],
) -> None:
    owner, member, outsider = register(), register(), register()
    cid = make_group(owner, member)["id"]
    message = send(owner, cid).json()
    mid = message["id"]
    owner.client.request("PUT", f"{CONVERSATIONS}/{cid}/messages/{mid}/reactions/👍")
    base = f"{CONVERSATIONS}/{cid}"
    attempts: list[tuple[str, str, Any]] = [
        ("GET", base, None),
        ("PATCH", base, {"title": "hijack"}),
        ("GET", f"{base}/members", None),
        ("POST", f"{base}/members", {"user_ids": [outsider.id]}),
        ("DELETE", f"{base}/members/{member.id}", None),
        ("PATCH", f"{base}/members/{member.id}", {"role": "admin"}),
        ("GET", f"{base}/messages", None),
        ("POST", f"{base}/messages", {"client_msg_id": "x1", "body": "hi"}),
        ("PATCH", f"{base}/messages/{mid}", {"body": "edited"}),
        ("DELETE", f"{base}/messages/{mid}", None),
        ("PUT", f"{base}/messages/{mid}/reactions/👍", None),
        ("DELETE", f"{base}/messages/{mid}/reactions/👍", None),
        ("POST", f"{base}/read", {"seq": 1}),
        ("POST", f"{base}/typing", None),
    ]
    for method, path, body in attempts:
        response = outsider.client.raw(method, path, json=body)
        assert error(response) == (404, "conversation_not_found"), (method, path, response.text)
    # Leaving yourself out of a conversation you are not in is the same 404.
    assert error(remove(outsider, cid, outsider)) == (404, "conversation_not_found")
    # Ids that do not exist or are not ids answer the same.
    for bad in ("999999999999", "not-an-id", "0"):
        assert error(outsider.client.raw("GET", f"{CONVERSATIONS}/{bad}")) == (
            404,
            "conversation_not_found",
        )
    # A message of their conversation cannot be reached through one of the outsider's own.
    theirs = owner.client.request(
        "POST", CONVERSATIONS, json={"kind": "group", "title": "own", "member_ids": []}
    )
    own = outsider.client.request(
        "POST", CONVERSATIONS, json={"kind": "group", "title": "own", "member_ids": []}
    ).json()["id"]
    assert theirs.status_code == 201
    via = f"{CONVERSATIONS}/{own}/messages/{mid}"
    for method, path, body in (
        ("PATCH", via, {"body": "edited"}),
        ("DELETE", via, None),
        ("PUT", f"{via}/reactions/👍", None),
        ("DELETE", f"{via}/reactions/👍", None),
    ):
        response = outsider.client.raw(method, path, json=body)
        assert error(response) == (404, "message_not_found"), (method, path, response.text)
    replying = send_reply(outsider, own, mid)
    assert error(replying) == (422, "invalid_reply_to")
    # Nothing changed.
    history = owner.client.request("GET", f"{base}/messages").json()["items"]
    assert [(m["body"], m["reactions"]) for m in history] == [("hello", {"👍": 1})]
    assert members(owner, cid) == {owner.id: "owner", member.id: "member"}
    assert [c["id"] for c in outsider.client.request("GET", CONVERSATIONS).json()["items"]] == [own]


def test_non_members_never_receive_a_conversations_events(
    register: Callable[..., Account],
) -> None:
    owner, member, leaver, outsider = (register() for _ in range(4))
    cid = make_group(owner, member, leaver)["id"]
    first = send(owner, cid, "one").json()
    assert remove(leaver, cid, leaver).status_code == 204
    leaver_events = sync_all(leaver)
    # The leaver heard about the conversation up to and including their own leaving.
    assert leaver_events[-1]["type"] == "member.removed"
    assert leaver_events[-1]["user_id"] == leaver.id

    second = send(owner, cid, "two").json()
    mid = second["id"]
    owner.client.request("PATCH", f"{CONVERSATIONS}/{cid}/messages/{mid}", json={"body": "2"})
    member.client.request("PUT", f"{CONVERSATIONS}/{cid}/messages/{mid}/reactions/ok")
    member.client.request("POST", f"{CONVERSATIONS}/{cid}/read", json={"seq": 2})
    owner.client.request("POST", f"{CONVERSATIONS}/{cid}/typing")
    owner.client.request("PATCH", f"{CONVERSATIONS}/{cid}", json={"title": "renamed"})
    owner.client.request("DELETE", f"{CONVERSATIONS}/{cid}/messages/{first['id']}")
    add(owner, cid, register())

    # Nothing new reached the leaver; only the deleted message's copy in their log became
    # its tombstone, in place (erasure reaches every log that holds the message).
    after = sync_all(leaver)
    assert len(after) == len(leaver_events)
    for before, now in zip(leaver_events, after, strict=True):
        if before["type"] == "message.created" and before["message"]["id"] == first["id"]:
            assert (now["type"], now["message_id"]) == ("message.deleted", first["id"])
            assert now["message"]["body"] is None
        else:
            assert now == before
    assert [e for e in sync_all(outsider) if mentions(e, cid)] == []
    assert all("two" not in repr(e) and "renamed" not in repr(e) for e in sync_all(leaver))
    # The members did hear all of it.
    types = [e["type"] for e in sync_all(member) if mentions(e, cid)]
    for expected in (
        "message.created",
        "message.updated",
        "reaction.updated",
        "read.updated",
        "conversation.updated",
        "message.deleted",
        "member.added",
        "member.removed",
    ):
        assert expected in types, (expected, types)
