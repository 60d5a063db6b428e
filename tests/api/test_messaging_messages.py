"""Messages: idempotent send, edit, delete, reactions, replies, read pointers, history and
the answers to bad input."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import Account

CONVERSATIONS = "/v1/conversations"
MESSAGE_FIELDS = {
    "id",
    "conversation_id",
    "seq",
    "sender_id",
    "client_msg_id",
    "body",
    "reply_to",
    "created_at",
    "edited_at",
    "deleted",
    "reactions",
    "attachments",  # docs/attachments.md
    "thread_root_id",  # docs/threads.md
    "thread",
}


def error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return response.status_code, body["error"]["code"]


def make_group(owner: Account, *members: Account) -> str:
    response = owner.client.request(
        "POST",
        CONVERSATIONS,
        json={"kind": "group", "title": "team", "member_ids": [m.id for m in members]},
    )
    return str(response.json()["id"])


def open_dm(a: Account, b: Account) -> str:
    response = a.client.request(
        "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [b.id]}
    )
    return str(response.json()["id"])


def send(
    a: Account, cid: str, body: str = "hello", cmid: str | None = None, **extra: Any
) -> httpx.Response:
    return a.client.raw(
        "POST",
        f"{CONVERSATIONS}/{cid}/messages",
        json={"client_msg_id": cmid or uuid.uuid4().hex, "body": body, **extra},
    )


def history(a: Account, cid: str, **params: Any) -> list[dict[str, Any]]:
    page = a.client.request("GET", f"{CONVERSATIONS}/{cid}/messages", params=params).json()
    assert page["next_cursor"] is None
    return list(page["items"])


def conversation(a: Account, cid: str) -> dict[str, Any]:
    return dict(a.client.request("GET", f"{CONVERSATIONS}/{cid}").json())


def sync_all(a: Account) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = a.client.request("GET", "/v1/sync", params={"cursor": cursor, "limit": 100}).json()
        if not page["items"]:
            return events
        events += [item["event"] for item in page["items"]]
        cursor = page["next_cursor"]


def of_type(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_]


def react(a: Account, cid: str, mid: str, emoji: str, *, on: bool = True) -> httpx.Response:
    return a.client.raw(
        "PUT" if on else "DELETE", f"{CONVERSATIONS}/{cid}/messages/{mid}/reactions/{emoji}"
    )


def test_send_then_retry_returns_the_same_message(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    first = send(a, cid, "hi there", cmid="c-1")
    assert first.status_code == 201, first.text
    message = first.json()
    assert set(message) == MESSAGE_FIELDS
    assert message["conversation_id"] == cid
    assert message["seq"] == 1
    assert message["sender_id"] == a.id
    assert message["client_msg_id"] == "c-1"
    assert message["body"] == "hi there"
    assert message["reply_to"] is None
    assert message["edited_at"] is None
    assert message["deleted"] is False
    assert message["reactions"] == {}

    retry = send(a, cid, "hi there", cmid="c-1")
    assert retry.status_code == 200
    assert retry.json() == message
    # A retry is recognised by its id alone, whatever the body says.
    assert send(a, cid, "something else", cmid="c-1").json() == message
    assert history(b, cid) == [message]
    assert conversation(b, cid)["last_seq"] == 1
    for user in (a, b):
        created = of_type(sync_all(user), "message.created")
        assert [e["message"]["id"] for e in created] == [message["id"]]

    # The id belongs to its sender: someone else's c-1 is a new message.
    theirs = send(b, cid, "mine", cmid="c-1")
    assert theirs.status_code == 201
    assert theirs.json()["seq"] == 2
    assert theirs.json()["id"] != message["id"]
    # And to its conversation.
    elsewhere = send(a, make_group(a, b), "hi there", cmid="c-1")
    assert elsewhere.status_code == 201
    assert elsewhere.json()["seq"] == 1


def test_a_retry_after_an_edit_or_delete_returns_the_message_as_it_is(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    mid = send(a, cid, "v1", cmid="same").json()["id"]
    a.client.request("PATCH", f"{CONVERSATIONS}/{cid}/messages/{mid}", json={"body": "v2"})
    assert send(a, cid, "v1", cmid="same").json()["body"] == "v2"
    a.client.request("DELETE", f"{CONVERSATIONS}/{cid}/messages/{mid}")
    again = send(a, cid, "v1", cmid="same")
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["body"], again.json()["deleted"]) == (mid, None, True)
    assert len(history(a, cid)) == 1


def test_edit_is_for_the_sender_only(register: Callable[..., Account]) -> None:
    owner, b = register(), register()
    cid = make_group(owner, b)
    message = send(b, cid, "typo").json()
    path = f"{CONVERSATIONS}/{cid}/messages/{message['id']}"
    # Not even the owner may edit someone else's words.
    assert error(owner.client.raw("PATCH", path, json={"body": "forged"})) == (
        403,
        "not_the_sender",
    )
    edited = b.client.request("PATCH", path, json={"body": "fixed"}).json()
    assert edited["body"] == "fixed"
    assert edited["edited_at"] is not None
    assert (edited["id"], edited["seq"], edited["created_at"]) == (
        message["id"],
        message["seq"],
        message["created_at"],
    )
    assert history(owner, cid) == [edited]
    assert conversation(owner, cid)["last_seq"] == 1  # an edit is not a new message
    for user in (owner, b):
        updated = of_type(sync_all(user), "message.updated")
        assert [e["message"] for e in updated] == [edited]

    assert error(b.client.raw("PATCH", path, json={"body": ""})) == (422, "empty_body")
    assert error(b.client.raw("PATCH", path, json={"body": "x" * 4001})) == (422, "body_too_long")
    missing = f"{CONVERSATIONS}/{cid}/messages/999999999999"
    assert error(b.client.raw("PATCH", missing, json={"body": "x"})) == (404, "message_not_found")
    b.client.request("DELETE", path)
    assert error(b.client.raw("PATCH", path, json={"body": "zombie"})) == (409, "message_deleted")


def test_delete_for_everyone_leaves_a_tombstone(register: Callable[..., Account]) -> None:
    owner, admin, b, c = (register() for _ in range(4))
    cid = make_group(owner, admin, b, c)
    owner.client.request(
        "PATCH", f"{CONVERSATIONS}/{cid}/members/{admin.id}", json={"role": "admin"}
    )
    m1 = send(b, cid, "secret").json()
    m2 = send(b, cid, "keep").json()
    m3 = send(c, cid, "spam").json()
    m4 = send(owner, cid, "owner's").json()
    react(c, cid, m1["id"], "👍")
    react(owner, cid, m1["id"], "👍")

    # A plain member may not delete someone else's message.
    assert error(c.client.raw("DELETE", f"{CONVERSATIONS}/{cid}/messages/{m1['id']}")) == (
        403,
        "not_the_sender",
    )
    gone = b.client.request("DELETE", f"{CONVERSATIONS}/{cid}/messages/{m1['id']}").json()
    assert gone["body"] is None
    assert gone["deleted"] is True
    assert gone["reactions"] == {}
    assert (gone["id"], gone["seq"], gone["sender_id"]) == (m1["id"], 1, b.id)
    # Deleting again is the same answer.
    again = b.client.raw("DELETE", f"{CONVERSATIONS}/{cid}/messages/{m1['id']}")
    assert again.status_code == 200
    assert again.json() == gone
    # An admin deletes others' messages, the owner's included.
    assert admin.client.request("DELETE", f"{CONVERSATIONS}/{cid}/messages/{m3['id']}").json()[
        "deleted"
    ]
    assert admin.client.request("DELETE", f"{CONVERSATIONS}/{cid}/messages/{m4['id']}").json()[
        "deleted"
    ]

    items = history(c, cid)
    assert [(m["seq"], m["body"], m["deleted"]) for m in items] == [
        (1, None, True),
        (2, "keep", False),
        (3, None, True),
        (4, None, True),
    ]
    assert items[0]["reactions"] == {}
    assert items[1] == m2
    # The reactions are gone from storage, not just hidden, and nothing can be added.
    assert error(react(c, cid, m1["id"], "🔥")) == (409, "message_deleted")

    for user in (owner, admin, b, c):
        events = sync_all(user)
        deleted = of_type(events, "message.deleted")
        # Each deletion told once, and every earlier event about the message (its creation,
        # the reactions to it) replaced by the same tombstone where it stood.
        assert {(e["message_id"], e["seq"], e["conversation_id"]) for e in deleted} == {
            (m1["id"], 1, cid),
            (m3["id"], 3, cid),
            (m4["id"], 4, cid),
        }
        gone = {m1["id"], m3["id"], m4["id"]}
        created = [e["message"]["id"] for e in of_type(events, "message.created")]
        assert gone.isdisjoint(created)
        assert all("secret" not in repr(e) for e in events)
    # The conversation list shows the tombstone as the last message.
    listed = c.client.request("GET", CONVERSATIONS).json()["items"][0]
    assert listed["last_message"]["deleted"] is True
    assert listed["last_message"]["body"] is None


def test_reactions_are_idempotent_and_counted(register: Callable[..., Account]) -> None:
    a, b, c = register(), register(), register()
    cid = make_group(a, b, c)
    mid = send(a, cid).json()["id"]
    assert react(a, cid, mid, "👍").json()["reactions"] == {"👍": 1}
    assert react(a, cid, mid, "👍").json()["reactions"] == {"👍": 1}
    assert react(b, cid, mid, "👍").json()["reactions"] == {"👍": 2}
    assert react(b, cid, mid, "heart").json()["reactions"] == {"👍": 2, "heart": 1}
    assert react(c, cid, mid, "heart", on=False).json()["reactions"] == {"👍": 2, "heart": 1}
    assert react(a, cid, mid, "👍", on=False).json()["reactions"] == {"👍": 1, "heart": 1}
    assert react(a, cid, mid, "👍", on=False).json()["reactions"] == {"👍": 1, "heart": 1}
    assert history(c, cid)[0]["reactions"] == {"👍": 1, "heart": 1}
    # Only changes are announced, each with the new counts.
    announced = of_type(sync_all(c), "reaction.updated")
    assert [(e["user_id"], e["emoji"], e["added"], e["reactions"]) for e in announced] == [
        (a.id, "👍", True, {"👍": 1}),
        (b.id, "👍", True, {"👍": 2}),
        (b.id, "heart", True, {"👍": 2, "heart": 1}),
        (a.id, "👍", False, {"👍": 1, "heart": 1}),
    ]
    assert all(e["message_id"] == mid and e["conversation_id"] == cid for e in announced)
    assert react(b, cid, "999999999999", "👍").status_code == 404
    assert error(react(b, cid, mid, "a" * 17)) == (422, "invalid_emoji")


def test_reply_to_must_be_a_message_of_the_same_conversation(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    cid, other = make_group(a, b), make_group(a, b)
    original = send(a, cid, "question").json()
    foreign = send(a, other, "elsewhere").json()
    reply = send(b, cid, "answer", reply_to=original["id"])
    assert reply.status_code == 201
    assert reply.json()["reply_to"] == original["id"]
    assert history(a, cid)[-1]["reply_to"] == original["id"]
    for bad in (foreign["id"], "999999999999", "not-an-id"):
        response = send(b, cid, "answer", reply_to=bad)
        assert error(response) == (422, "invalid_reply_to"), bad
    # A reply to a deleted message is still a reply to its tombstone.
    a.client.request("DELETE", f"{CONVERSATIONS}/{cid}/messages/{original['id']}")
    assert send(b, cid, "too late", reply_to=original["id"]).status_code == 201
    assert [m["seq"] for m in history(a, cid)] == [1, 2, 3]


def test_read_pointer_moves_forward_only_and_counts_unread(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    cid = open_dm(a, b)
    for i in range(3):
        send(a, cid, f"m{i}")
    # Sending moves your own pointer: your own messages are read.
    assert (conversation(a, cid)["last_read_seq"], conversation(a, cid)["unread_count"]) == (3, 0)
    assert (conversation(b, cid)["last_read_seq"], conversation(b, cid)["unread_count"]) == (0, 3)

    def read(seq: int) -> int:
        response = b.client.request("POST", f"{CONVERSATIONS}/{cid}/read", json={"seq": seq})
        assert response.json()["conversation_id"] == cid
        return int(response.json()["last_read_seq"])

    assert read(2) == 2
    assert conversation(b, cid)["unread_count"] == 1
    assert read(1) == 2  # never back
    assert read(0) == 2
    assert read(99) == 3  # clamped to the last message
    view = conversation(b, cid)
    assert (view["last_read_seq"], view["unread_count"], view["last_seq"]) == (3, 0, 3)

    assert send(b, cid, "reply").json()["seq"] == 4
    assert conversation(b, cid)["last_read_seq"] == 4
    assert conversation(a, cid)["unread_count"] == 1
    listed = a.client.request("GET", CONVERSATIONS).json()["items"][0]
    assert (listed["unread_count"], listed["last_message"]["body"]) == (1, "reply")
    members = a.client.request("GET", f"{CONVERSATIONS}/{cid}/members").json()["items"]
    assert {m["user_id"]: m["last_read_seq"] for m in members} == {a.id: 3, b.id: 4}

    # Each move is announced to both members; the ones that moved nothing are not.
    reads = [(e["user_id"], e["seq"]) for e in of_type(sync_all(a), "read.updated")]
    assert reads == [(b.id, 2), (b.id, 3)]
    assert error(b.client.raw("POST", f"{CONVERSATIONS}/{cid}/read", json={"seq": -1}))[0] == 422
    assert error(b.client.raw("POST", f"{CONVERSATIONS}/{cid}/read", json={"seq": "x"}))[0] == 422


def test_members_added_later_start_with_everything_read(register: Callable[..., Account]) -> None:
    a, b, late = register(), register(), register()
    cid = make_group(a, b)
    for _ in range(3):
        send(a, cid)
    a.client.request("POST", f"{CONVERSATIONS}/{cid}/members", json={"user_ids": [late.id]})
    view = conversation(late, cid)
    assert (view["last_read_seq"], view["unread_count"]) == (3, 0)
    send(b, cid)
    assert conversation(late, cid)["unread_count"] == 1


def test_conversations_list_most_recently_active_first(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    first, second, third = make_group(a, b), make_group(a, b), make_group(a, b)
    send(b, first, "old news")
    send(b, third, "newer")
    send(b, first, "newest")
    items = a.client.request("GET", CONVERSATIONS).json()["items"]
    assert [c["id"] for c in items] == [first, third, second]
    assert [c["unread_count"] for c in items] == [2, 1, 0]
    assert items[0]["last_message"]["body"] == "newest"
    assert items[2]["last_message"] is None
    # Paging walks the same order without repeats.
    seen, cursor = [], None
    while True:
        page = a.client.request("GET", CONVERSATIONS, params={"limit": 1, "cursor": cursor})
        seen += [c["id"] for c in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [first, third, second]


def test_history_pages_by_seq(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    for i in range(1, 26):
        assert send(a if i % 2 else b, cid, f"m{i}").json()["seq"] == i

    def seqs(**params: Any) -> list[int]:
        return [m["seq"] for m in history(b, cid, **params)]

    assert seqs() == list(range(1, 26))  # oldest first
    assert seqs(limit=10) == list(range(16, 26))  # the newest ten
    assert seqs(before_seq=16, limit=10) == list(range(6, 16))
    assert seqs(before_seq=6, limit=10) == list(range(1, 6))
    assert seqs(before_seq=1) == []
    assert seqs(after_seq=20) == list(range(21, 26))
    assert seqs(after_seq=5, limit=3) == [6, 7, 8]
    assert seqs(after_seq=0, limit=2) == [1, 2]
    assert seqs(after_seq=25) == []
    assert seqs(after_seq=5, before_seq=9) == [6, 7, 8]
    # Walking backwards from the end and forwards from the start both cover everything.
    backwards, before = [], None
    while True:
        page = seqs(before_seq=before, limit=7) if before else seqs(limit=7)
        if not page:
            break
        backwards = page + backwards
        before = page[0]
    assert backwards == list(range(1, 26))
    bodies = [m["body"] for m in history(b, cid, after_seq=0, limit=100)]
    assert bodies == [f"m{i}" for i in range(1, 26)]
    path = f"{CONVERSATIONS}/{cid}/messages"
    for params in ({"limit": 0}, {"limit": 101}, {"before_seq": 0}, {"after_seq": -1}):
        assert error(b.client.raw("GET", path, params=params))[0] in (400, 422), params


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"client_msg_id": "a", "body": ""}, "empty_body"),
        ({"client_msg_id": "a", "body": " \n\t "}, "empty_body"),
        ({"client_msg_id": "a", "body": "x" * 4001}, "body_too_long"),
        ({"client_msg_id": "a", "body": "bell\x07"}, "invalid_characters"),
        ({"client_msg_id": "has space", "body": "x"}, "invalid_client_msg_id"),
        ({"client_msg_id": "sl/ash", "body": "x"}, "invalid_client_msg_id"),
        ({"client_msg_id": "a", "body": "x", "sender_id": "1"}, "unknown_field"),
        ({"client_msg_id": "a", "body": "x", "seq": 1}, "unknown_field"),
        ({"body": "x"}, "validation_error"),
        ({"client_msg_id": "a"}, "validation_error"),
        ({"client_msg_id": "a", "body": 5}, "validation_error"),
        ({"client_msg_id": 5, "body": "x"}, "validation_error"),
    ],
)
def test_bad_messages_are_refused_with_a_code(
    register: Callable[..., Account], payload: dict[str, Any], code: str
) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    response = a.client.raw("POST", f"{CONVERSATIONS}/{cid}/messages", json=payload)
    assert error(response) == (422, code), response.text
    assert history(a, cid) == []


def test_the_longest_body_is_4000_characters(register: Callable[..., Account]) -> None:
    a = register()
    cid = make_group(a)
    assert send(a, cid, "x" * 4000).status_code == 201
    assert send(a, cid, "é" * 4000).status_code == 201  # characters, not bytes
    assert error(send(a, cid, "x" * 4001)) == (422, "body_too_long")
    bad_id = a.client.raw(
        "POST", f"{CONVERSATIONS}/{cid}/messages", json={"client_msg_id": "", "body": "x"}
    )
    assert error(bad_id)[0] == 422
    too_long_id = send(a, cid, "x", cmid="c" * 65)
    assert error(too_long_id)[0] == 422
    not_json = a.client.raw(
        "POST",
        f"{CONVERSATIONS}/{cid}/messages",
        content=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert error(not_json) == (400, "invalid_json")
    assert [m["seq"] for m in history(a, cid)] == [1, 2]


def test_a_body_far_over_the_limit_is_body_too_long_too(register: Callable[..., Account]) -> None:
    """However long, a too-long body is ``body_too_long`` (the contract's code), not a
    generic validation error, for sending and for editing alike."""
    a = register()
    cid = make_group(a)
    assert error(send(a, cid, "x" * 20_000)) == (422, "body_too_long")
    mid = send(a, cid).json()["id"]
    edit = a.client.raw(
        "PATCH", f"{CONVERSATIONS}/{cid}/messages/{mid}", json={"body": "x" * 20_000}
    )
    assert error(edit) == (422, "body_too_long")


def test_other_bad_input_in_conversations(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    cases: list[tuple[str, str, Any, tuple[int, str]]] = [
        ("POST", CONVERSATIONS, {"kind": "room", "member_ids": []}, (422, "validation_error")),
        (
            "POST",
            CONVERSATIONS,
            {"kind": "group", "title": "x", "member_ids": [], "owner_id": b.id},
            (422, "unknown_field"),
        ),
        ("PATCH", f"{CONVERSATIONS}/{cid}", {"colour": "red"}, (422, "unknown_field")),
        ("PATCH", f"{CONVERSATIONS}/{cid}", {"title": ""}, (422, "invalid_title")),
        ("PATCH", f"{CONVERSATIONS}/{cid}", {"message_ttl_seconds": 10**9}, (422, "invalid_ttl")),
        ("POST", f"{CONVERSATIONS}/{cid}/members", {"user_ids": []}, (422, "validation_error")),
        ("POST", f"{CONVERSATIONS}/{cid}/read", {"seq": 1, "x": 1}, (422, "unknown_field")),
        ("POST", f"{CONVERSATIONS}/{cid}/read", {}, (422, "validation_error")),
    ]
    for method, path, body, expected in cases:
        response = a.client.raw(method, path, json=body)
        assert error(response) == expected, (method, path, body, response.text)
    dm = open_dm(a, b)
    assert error(a.client.raw("PATCH", f"{CONVERSATIONS}/{dm}", json={"title": "x"})) == (
        422,
        "direct_conversation",
    )
    assert error(
        a.client.raw("POST", f"{CONVERSATIONS}/{dm}/members", json={"user_ids": [b.id]})
    ) == (422, "direct_conversation")
    assert error(a.client.raw("DELETE", f"{CONVERSATIONS}/{dm}/members/{a.id}")) == (
        422,
        "direct_conversation",
    )
    assert a.client.raw("GET", CONVERSATIONS, auth=False).status_code == 401


def test_typing_is_ephemeral(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    assert a.client.raw("POST", f"{CONVERSATIONS}/{cid}/typing").status_code == 204
    assert of_type(sync_all(b), "typing") == []
