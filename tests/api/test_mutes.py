"""Mutes: muting a user silences their notifications and their typing (the events that
tell a change of state still arrive); muting a conversation is the caller's own flag
(`muted` in the conversation object) that notifications and push honour, while unread
counts go on as usual."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from api_support import error, logged
from litestar.testing import TestClient
from ws_support import connected, event_type, recv

from conftest import PASSWORD, Account, unique_name
from socius.client import AsyncClient, Relationship

C = "/v1/conversations"


def send(sender: Account, cid: str, body: str) -> None:
    sender.client.send_message(cid, body, client_msg_id=secrets.token_hex(8))


def end_of(account: Account) -> str:
    return logged(account)[1]


def notified(account: Account) -> list[tuple[str, str | None]]:
    """(type, the user it is about) of the account's notifications, oldest first."""
    items = account.client.request("GET", "/v1/notifications").json()["items"]
    return [(n["type"], n["payload"].get("user_id") or n["payload"].get("by")) for n in items][::-1]


# ---------------------------------------------------------------------------- users


def test_muting_a_user_silences_their_notifications_but_keeps_the_events(
    register: Callable[..., Account],
) -> None:
    a, b, c = register(), register(), register()
    assert a.client.mute(b.id).muting is True
    # Private to the muter: b's side shows nothing.
    assert b.client.relationships([a.id])[0] == Relationship(
        user_id=a.id,
        friend=False,
        request_sent=False,
        request_received=False,
        following=False,
        followed_by=False,
        follow_requested=False,
        blocking=False,
        blocked_by=False,
        muting=False,
    )
    start = end_of(a)
    b.client.send_friend_request(a.id)
    c.client.send_friend_request(a.id)
    group = b.client.create_group("b's group", [a.id]).id
    b.client.follow(a.id)

    # Every event arrived (requests, membership)...
    events = [(e["type"], e.get("user_id") or e.get("by")) for e in logged(a, start)[0]]
    assert [e for e in events if e[0] != "notification"] == [
        ("friend.request", b.id),
        ("friend.request", c.id),
        ("member.added", b.id),
        ("follow.new", b.id),
    ]
    # ...and b's request is there to answer; but only c's rang.
    assert [u.id for u in a.client.friend_requests(direction="incoming").items] == [c.id, b.id]
    assert notified(a) == [("friend.request", c.id)]
    assert a.client.conversation(group).muted is False  # a user's mute is not the group's

    # Answers from the muted user are silent too; the other way round they are not.
    a.client.send_friend_request(c.id)  # (c asked first: now friends)
    a.client.accept_friend_request(b.id)
    assert ("friend.accepted", a.id) in notified(b)

    a.client.unmute(b.id)
    b.client.unfollow(a.id)
    b.client.follow(a.id)
    assert notified(a)[-1] == ("follow.new", b.id)


def test_a_private_account_that_mutes_a_follower_is_not_notified_of_them(
    register: Callable[..., Account],
) -> None:
    private, fan = register(), register()
    private.client.update_me(is_private=True)
    private.client.mute(fan.id)
    fan.client.follow(private.id)  # a request
    private.client.approve_follow_request(fan.id)
    types = [e["type"] for e in logged(private)[0] if e["type"] != "notification"]
    assert types == ["follow.request", "follow.new"]
    assert notified(private) == []
    assert notified(fan) == [("follow.accepted", private.id)]


def test_muting_a_user_stops_their_typing_one_way(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b, c = register(), register(), register()
    dm = a.client.open_direct(b.id).id
    group = c.client.create_group("three", [a.id, b.id]).id
    a.client.mute(b.id)
    with (
        connected(http, a.auth.access_token) as (ws_a, _, _),
        connected(http, b.auth.access_token) as (ws_b, _, _),
    ):
        for cid in (dm, group):
            ws_b.send_json({"type": "typing", "conversation_id": cid})  # over the socket
            ws_b.send_json({"type": "ping"})
            assert recv(ws_b) == {"type": "pong"}  # handled: refused nothing, told b nothing
            assert b.client.raw("POST", f"{C}/{cid}/typing").status_code == 204
            send(b, cid, f"b still talks in {cid}")  # messages are not muted
            first = recv(ws_a)
            assert event_type(first) == "message.created", first
            assert recv(ws_b)["event"]["type"] == "message.created"  # b's own
            # The mute is a's alone: a's typing reaches b.
            assert a.client.raw("POST", f"{C}/{cid}/typing").status_code == 204
            heard = recv(ws_b)["event"]
            assert (heard["type"], heard["user_id"]) == ("typing", a.id)
        a.client.unmute(b.id)
        b.client.raw("POST", f"{C}/{dm}/typing")
        heard = recv(ws_a)["event"]
        assert (heard["type"], heard["user_id"], heard["conversation_id"]) == ("typing", b.id, dm)


# ---------------------------------------------------------------------------- conversations


def test_muting_a_conversation_is_the_callers_own_and_idempotent(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    cid = a.client.open_direct(b.id).id
    assert a.client.conversation(cid).muted is False
    start_a, start_b = end_of(a), end_of(b)
    for _ in range(2):
        assert a.client.mute_conversation(cid).muted is True
    assert a.client.conversation(cid).muted is True
    assert [(c.id, c.muted) for c in a.client.conversations().items] == [(cid, True)]
    # Nobody else sees it: not b's view, not the member list.
    assert b.client.conversation(cid).muted is False
    members = a.client.request("GET", f"{C}/{cid}/members").json()["items"]
    assert all("muted" not in m for m in members)

    # Unread counts stay correct while muted.
    for n in range(3):
        send(b, cid, f"message {n}")
    muted = a.client.conversation(cid)
    assert (muted.unread_count, muted.last_seq, muted.muted) == (3, 3, True)
    assert a.client.mark_read(cid, 2) == 2
    assert a.client.conversation(cid).unread_count == 1

    for _ in range(2):
        assert a.client.unmute_conversation(cid).muted is False
    assert a.client.conversation(cid).muted is False
    # The caller's other devices hear each change once; nobody else hears of it.
    changes = [e for e in logged(a, start_a)[0] if e["type"] == "conversation.muted"]
    assert changes == [
        {"type": "conversation.muted", "conversation_id": cid, "muted": True},
        {"type": "conversation.muted", "conversation_id": cid, "muted": False},
    ]
    assert "conversation.muted" not in {e["type"] for e in logged(b, start_b)[0]}


def test_a_conversation_can_be_muted_across_a_block(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    cid = a.client.open_direct(b.id).id
    b.client.block(a.id)
    assert a.client.mute_conversation(cid).muted is True  # the caller's own: no one else
    assert b.client.mute_conversation(cid).muted is True


def test_muting_a_conversation_you_are_not_in_is_404(register: Callable[..., Account]) -> None:
    a, b, c = register(), register(), register()
    dm = a.client.open_direct(b.id).id
    group = a.client.create_group("g", [c.id]).id
    c.client.request("DELETE", f"{C}/{group}/members/{c.id}")  # left
    for method in ("PUT", "DELETE"):
        for cid in (dm, group, "123456789", "not-an-id"):
            response = c.client.raw(method, f"{C}/{cid}/mute")
            assert error(response) == (404, "conversation_not_found"), (method, cid)
        assert a.client.raw(method, f"{C}/{dm}/mute", auth=False).status_code == 401
    assert a.client.conversation(dm).muted is False


async def test_the_async_client_mutes_and_unmutes(
    async_sdk: Callable[[], AsyncClient],
) -> None:
    a, b = async_sdk(), async_sdk()
    await a.register(unique_name(), PASSWORD)
    other = await b.register(unique_name(), PASSWORD)
    cid = (await a.open_direct(other.user.id)).id
    assert (await a.mute_conversation(cid)).muted is True
    assert (await a.conversation(cid)).muted is True
    assert (await a.unmute_conversation(cid)).muted is False
