"""A block, from both sides: the direct conversation between the two turns read-only for
both, no typing, read receipt or presence crosses in any conversation (REST and socket),
and search, suggestions and mutual friends hide each from the other. Unblocking restores
all of it (but not the friendship or follows the block ended)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from api_support import error, logged
from litestar.testing import TestClient
from litestar.testing.websocket_test_session import WebSocketTestSession
from ws_support import assert_pong_next, connected, event_type, realtime_of, recv, until

from conftest import Account, unique_name

C = "/v1/conversations"


def befriend(a: Account, b: Account) -> None:
    a.client.send_friend_request(b.id)
    b.client.accept_friend_request(a.id)


def direct(a: Account, b: Account) -> str:
    return a.client.open_direct(b.id).id


def send(sender: Account, cid: str, body: str) -> httpx.Response:
    return sender.client.raw(
        "POST", f"{C}/{cid}/messages", json={"client_msg_id": secrets.token_hex(8), "body": body}
    )


def position(account: Account) -> str:
    return logged(account)[1]


def writes(actor: Account, cid: str, own_message: str) -> dict[str, httpx.Response]:
    """Every change a member may make to a conversation, tried once each."""
    base = f"{C}/{cid}"
    client = actor.client
    return {
        "send": send(actor, cid, "more"),
        "edit": client.raw("PATCH", f"{base}/messages/{own_message}", json={"body": "edited"}),
        "react": client.raw("PUT", f"{base}/messages/{own_message}/reactions/👍"),
        "read": client.raw("POST", f"{base}/read", json={"seq": 2}),
        "typing": client.raw("POST", f"{base}/typing"),
        "settings": client.raw("PATCH", base, json={"message_ttl_seconds": None}),
    }


def typing_of(user: Account, cid: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def match(frame: dict[str, Any]) -> bool:
        event = frame.get("event", {})
        return (
            frame["type"] == "event"
            and event.get("type") == "typing"
            and event.get("user_id") == user.id
            and (cid is None or event.get("conversation_id") == cid)
        )

    return match


def read_by(user: Account) -> Callable[[dict[str, Any]], bool]:
    def match(frame: dict[str, Any]) -> bool:
        event = frame.get("event", {})
        return event.get("type") == "read.updated" and event.get("user_id") == user.id

    return match


def handled(ws: WebSocketTestSession) -> list[dict[str, Any]]:
    """Wait until the server has handled every frame sent on ``ws`` so far (it reads a
    socket's frames one at a time and answers a ping in turn); the frames before."""
    ws.send_json({"type": "ping"})
    _, before = until(ws, lambda f: f == {"type": "pong"})
    return before


# ---------------------------------------------------------------------------- direct


@pytest.mark.parametrize("blocker_name", ["first", "second"])
def test_a_block_makes_the_direct_conversation_read_only_for_both(
    register: Callable[..., Account], blocker_name: str
) -> None:
    a, b = register(), register()
    cid = direct(a, b)
    own = {a.id: send(a, cid, "from a").json()["id"], b.id: send(b, cid, "from b").json()["id"]}
    blocker, blocked = (a, b) if blocker_name == "first" else (b, a)
    cursors = {u.id: position(u) for u in (a, b)}

    blocker.client.block(blocked.id)
    for actor in (a, b):
        for what, response in writes(actor, cid, own[actor.id]).items():
            assert error(response) == (403, "blocked"), (what, actor is blocker)
        # The conversation, with its history unchanged, stays readable.
        assert actor.client.conversation(cid).last_seq == 2
        assert [m.body for m in actor.client.messages(cid)] == ["from a", "from b"]
        assert actor.client.messages(cid)[0].reactions == {}
    for reader in (a, b):  # and nothing crossed: neither log holds anything new
        assert logged(reader, cursors[reader.id])[0] == []

    blocker.client.unblock(blocked.id)
    for actor in (a, b):
        answered = {what: r.status_code for what, r in writes(actor, cid, own[actor.id]).items()}
        assert answered == {
            "send": 201,
            "edit": 200,
            "react": 200,
            "read": 200,
            "typing": 204,
            "settings": 200,
        }
    assert [m.body for m in a.client.messages(cid)] == ["edited", "edited", "more", "more"]


def test_across_a_block_you_may_still_take_back_your_own_words(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    cid = direct(a, b)
    mid = send(a, cid, "regret").json()["id"]
    a.client.request("PUT", f"{C}/{cid}/messages/{mid}/reactions/ok")
    b.client.block(a.id)

    unreacted = a.client.raw("DELETE", f"{C}/{cid}/messages/{mid}/reactions/ok")
    assert unreacted.status_code == 200
    assert unreacted.json()["reactions"] == {}
    deleted = a.client.raw("DELETE", f"{C}/{cid}/messages/{mid}")
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] is True
    assert [(m.body, m.deleted) for m in b.client.messages(cid)] == [(None, True)]


def test_typing_frames_across_a_block_are_refused_both_ways(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    cid = direct(a, b)
    a.client.block(b.id)
    frame = {"type": "typing", "conversation_id": cid}
    with (
        connected(http, a.auth.access_token) as (ws_a, _, _),
        connected(http, b.auth.access_token) as (ws_b, _, _),
    ):
        for typist, other in ((ws_a, ws_b), (ws_b, ws_a)):
            typist.send_json(frame)
            answer = recv(typist)
            assert (answer["type"], answer["code"]) == ("error", "blocked")
            assert_pong_next(other)  # the refusal came before anything was sent to them
    a.client.unblock(b.id)
    with (
        connected(http, a.auth.access_token) as (ws_a, _, _),
        connected(http, b.auth.access_token) as (ws_b, _, _),
    ):
        ws_b.send_json(frame)
        assert typing_of(b, cid)(recv(ws_a))
        ws_a.send_json(frame)
        assert typing_of(a, cid)(recv(ws_b))


# ---------------------------------------------------------------------------- groups


def test_in_a_shared_group_typing_and_read_receipts_do_not_cross_a_block(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    """What a shared group shows across a block: messages (and reactions, membership)
    as to everyone; typing and read receipts of one never reach the other, either way."""
    owner, a, b = register(), register(), register()
    group = owner.client.create_group("shared", [a.id, b.id]).id
    send(owner, group, "one")
    a.client.block(b.id)
    cursors = {u.id: position(u) for u in (a, b)}
    with (
        connected(http, owner.auth.access_token) as (ws_owner, _, _),
        connected(http, a.auth.access_token) as (ws_a, _, _),
        connected(http, b.auth.access_token) as (ws_b, _, _),
    ):
        sockets = {a.id: ws_a, b.id: ws_b}
        for speaker, shunned in ((a, b), (b, a)):
            ws_speaker = sockets[speaker.id]
            ws_speaker.send_json({"type": "typing", "conversation_id": group})
            handled(ws_speaker)
            assert speaker.client.raw("POST", f"{C}/{group}/typing").status_code == 204
            assert speaker.client.mark_read(group, 1) == 1
            # The owner hears all of it...
            assert typing_of(speaker, group)(recv(ws_owner))
            assert typing_of(speaker, group)(recv(ws_owner))
            assert read_by(speaker)(recv(ws_owner))
            # ...the shunned member nothing: the owner's typing is the first they hear.
            owner.client.raw("POST", f"{C}/{group}/typing")
            assert typing_of(owner, group)(recv(sockets[shunned.id]))
            _, before = until(ws_speaker, typing_of(owner, group))
            assert [event_type(f) for f in before] == ["read.updated"]  # their own
        # Messages stay visible to everyone in a group.
        send(b, group, "still in the group")
        message = recv(ws_a)
        assert event_type(message) == "message.created"
        assert message["event"]["message"]["body"] == "still in the group"
    for user, other in ((a, b), (b, a)):
        events = logged(user, cursors[user.id])[0]
        assert [e for e in events if e.get("user_id") == other.id] == []

    a.client.unblock(b.id)
    with (
        connected(http, a.auth.access_token) as (ws_a, _, _),
        connected(http, b.auth.access_token) as (ws_b, _, _),
    ):
        send(owner, group, "two")
        for ws in (ws_a, ws_b):
            assert event_type(recv(ws)) == "message.created"
        b.client.raw("POST", f"{C}/{group}/typing")
        assert typing_of(b, group)(recv(ws_a))
        assert a.client.mark_read(group, 3) == 3
        until(ws_b, read_by(a))


# ---------------------------------------------------------------------------- presence


def presence_of(viewer: Account, *ids: str) -> list[dict[str, Any]]:
    response = viewer.client.request("GET", "/v1/presence", params={"ids": ",".join(ids)})
    return list(response.json()["items"])


def is_presence(user: Account, *, online: bool) -> Callable[[dict[str, Any]], bool]:
    def match(frame: dict[str, Any]) -> bool:
        event = frame.get("event", {})
        return (
            event.get("type") == "presence"
            and event.get("user_id") == user.id
            and event.get("online") is online
        )

    return match


def test_presence_does_not_cross_a_block(
    app: Any, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    """Presence goes to friends, and a block ends the friendship: neither hears the other
    come or go (c, a friend of both, is the marker that comes next)."""
    a, b, c = register(), register(), register()
    befriend(a, b)
    befriend(a, c)
    befriend(b, c)
    b.client.block(a.id)

    def settle() -> None:
        http.blocking_portal.call(realtime_of(app).presence.settle)

    def c_comes_and_goes(*listeners: WebSocketTestSession) -> None:
        with connected(http, c.auth.access_token):
            for ws in listeners:  # the first thing each hears
                assert is_presence(c, online=True)(recv(ws))
        for ws in listeners:
            assert is_presence(c, online=False)(recv(ws))

    with contextlib.ExitStack() as b_open:
        ws_b = b_open.enter_context(connected(http, b.auth.access_token))[0]
        settle()
        with connected(http, a.auth.access_token) as (ws_a, _, _):
            settle()  # a came online: b must not hear it
            assert presence_of(a, b.id) == []
            assert presence_of(b, a.id) == []
            c_comes_and_goes(ws_a, ws_b)
            b_open.close()  # b goes offline: a must not hear it
            settle()
            c_comes_and_goes(ws_a)
    b.client.unblock(a.id)  # the friendship the block ended stays ended
    assert presence_of(a, b.id) == []


# ---------------------------------------------------------------------------- finding people


def test_search_hides_each_from_the_other(register: Callable[..., Account]) -> None:
    tag = f"blk{secrets.token_hex(3)}"
    a, b, c = (register(unique_name(tag)) for _ in range(3))

    def found(viewer: Account) -> set[str]:
        return {u.id for u in viewer.client.iter_search_users(tag, limit=1)}

    assert found(a) == found(b) == {a.id, b.id, c.id}
    a.client.block(b.id)
    assert found(a) == {a.id, c.id}
    assert found(b) == {b.id, c.id}
    assert found(c) == {a.id, b.id, c.id}
    a.client.unblock(b.id)
    assert found(a) == found(b) == {a.id, b.id, c.id}


def test_suggestions_and_mutual_friends_hide_each_from_the_other(
    register: Callable[..., Account],
) -> None:
    a, b, shared = register(), register(), register()
    befriend(a, shared)
    befriend(b, shared)

    def suggested(viewer: Account) -> list[str]:
        return [s.user.id for s in viewer.client.suggestions()]

    def mutual(viewer: Account, other: Account) -> httpx.Response:
        return viewer.client.raw("GET", f"/v1/users/{other.id}/mutual-friends")

    assert suggested(a) == [b.id]  # now cached for both
    assert suggested(b) == [a.id]
    assert [u["id"] for u in mutual(a, b).json()["items"]] == [shared.id]
    b.client.block(a.id)
    assert suggested(a) == []
    assert suggested(b) == []
    assert error(mutual(a, b)) == (404, "user_not_found")
    assert error(mutual(b, a)) == (404, "user_not_found")
    b.client.unblock(a.id)
    assert suggested(a) == [b.id]
    assert suggested(b) == [a.id]
    assert [u["id"] for u in mutual(b, a).json()["items"]] == [shared.id]


def test_a_third_users_lists_hide_each_from_the_other(register: Callable[..., Account]) -> None:
    a, b, c, d = register(), register(), register(), register()
    for user in (a, b, d):
        befriend(c, user)
        user.client.follow(c.id)

    def listed(viewer: Account, which: str) -> list[str]:
        found: list[str] = []
        cursor = None
        while True:  # pages of one: the cursor moves past a hidden user
            page = viewer.client.request(
                "GET", f"/v1/users/{c.id}/{which}", params={"limit": 1, "cursor": cursor}
            ).json()
            found += [u["id"] for u in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    everyone = [d.id, b.id, a.id]  # newest first
    assert listed(a, "friends") == everyone
    a.client.block(b.id)
    for which in ("friends", "followers"):
        assert listed(a, which) == [d.id, a.id]
        assert listed(b, which) == [d.id, b.id]
        assert listed(d, which) == everyone  # a bystander sees both
        assert listed(c, which) == everyone  # and so does the owner
    a.client.unblock(b.id)
    assert listed(a, "followers") == listed(b, "followers") == everyone


# ---------------------------------------------------------------------------- cost


def test_the_checks_ride_on_the_reads_already_made(
    register: Callable[..., Account], count_queries: Callable[[], Any]
) -> None:
    """Typing is two statements (the membership, with the block read in it; who hears it)
    in any conversation; a send, an edit or a read receipt costs the same in a group with
    a block among its members as in one without."""
    owner, a, b, c = register(), register(), register(), register()
    split = owner.client.create_group("split", [a.id, b.id]).id
    plain = owner.client.create_group("plain", [a.id, c.id]).id
    dm = a.client.open_direct(c.id).id
    a.client.block(b.id)
    a.client.mute(owner.id)

    def cost(do: Callable[[], httpx.Response]) -> int:
        with count_queries() as statements:
            assert do().status_code < 300
        return len(statements)

    def typing(typist: Account, cid: str) -> int:
        return cost(lambda: typist.client.raw("POST", f"{C}/{cid}/typing"))

    assert typing(owner, split) == typing(owner, plain) == typing(a, split) == typing(a, dm) == 2

    costs: dict[str, set[int]] = {"send": set(), "edit": set(), "read": set()}
    edit = {"body": "edited"}
    for cid in (split, plain):
        mid = send(owner, cid, "hello").json()["id"]
        costs["send"].add(cost(lambda cid=cid: send(owner, cid, "again")))
        costs["edit"].add(
            cost(
                lambda cid=cid, mid=mid: owner.client.raw(
                    "PATCH", f"{C}/{cid}/messages/{mid}", json=edit
                )
            )
        )
        costs["read"].add(
            cost(lambda cid=cid: a.client.raw("POST", f"{C}/{cid}/read", json={"seq": 2}))
        )
    assert all(len(c) == 1 for c in costs.values()), costs
