"""Content that goes away: disappearing messages, and the messages of an erased account.

The app here runs on a clock the test moves, so "later" needs no waiting.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from clock import Clock
from conftest import PASSWORD, Account, App, make_app
from socius.settings import Settings
from socius.storage.tables import messages, reactions

CONVERSATIONS = "/v1/conversations"


@pytest.fixture
def app(make_settings: Callable[..., Settings], clock: Clock) -> App:
    return make_app(make_settings(), clock=clock)


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def make_group(owner: Account, *members: Account) -> str:
    response = owner.client.request(
        "POST",
        CONVERSATIONS,
        json={"kind": "group", "title": "team", "member_ids": [m.id for m in members]},
    )
    return str(response.json()["id"])


def send(a: Account, cid: str, body: str = "hello") -> dict[str, Any]:
    response = a.client.request(
        "POST",
        f"{CONVERSATIONS}/{cid}/messages",
        json={"client_msg_id": uuid.uuid4().hex, "body": body},
    )
    return dict(response.json())


def history(a: Account, cid: str) -> list[dict[str, Any]]:
    page = a.client.request("GET", f"{CONVERSATIONS}/{cid}/messages", params={"limit": 100})
    return list(page.json()["items"])


def sync_all(a: Account) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = a.client.request("GET", "/v1/sync", params={"cursor": cursor, "limit": 100}).json()
        if not page["items"]:
            return events
        events += [item["event"] for item in page["items"]]
        cursor = page["next_cursor"]


def replay(events: list[dict[str, Any]], cid: str) -> list[dict[str, Any]]:
    """A client's view of conversation ``cid``, built from its events alone."""
    local: dict[int, dict[str, Any]] = {}
    by_id: dict[str, int] = {}
    for e in events:
        if e["type"] in ("message.created", "message.updated"):
            m = e["message"]
            if m["conversation_id"] == cid:
                local[m["seq"]] = dict(m)
                by_id[m["id"]] = m["seq"]
        elif e["type"] == "message.deleted" and e["conversation_id"] == cid:
            # The tombstone, in place of the message and of every event about it.
            local[e["seq"]] = dict(e["message"])
            by_id[e["message_id"]] = e["seq"]
        elif e["type"] == "reaction.updated" and e["conversation_id"] == cid:
            local[by_id[e["message_id"]]]["reactions"] = e["reactions"]
    return [local[s] for s in sorted(local)]


def run(http: Any, fn: Callable[[], Any]) -> Any:
    return http.blocking_portal.call(fn)


def stored_messages(app: App, http: Any, cid: str) -> list[Any]:
    async def read() -> list[Any]:
        async with app.wiring.database(write=False) as uow:
            rows = await uow.conversations._conn.execute(
                select(messages)
                .where(messages.c.conversation_id == int(cid))
                .order_by(messages.c.seq)
            )
            return list(rows)

    return list(run(http, read))


def test_disappearing_messages_are_erased_when_their_time_is_up(
    app: App, http: Any, clock: Clock, register: Callable[..., Account]
) -> None:
    owner, b, c = register(), register(), register()
    cid = make_group(owner, b, c)
    kept = send(owner, cid, "before the timer")
    done = owner.client.request(
        "PATCH", f"{CONVERSATIONS}/{cid}", json={"message_ttl_seconds": 60}
    ).json()
    assert done["message_ttl_seconds"] == 60
    fleeting = send(b, cid, "self-destruct")
    owner.client.request("PUT", f"{CONVERSATIONS}/{cid}/messages/{fleeting['id']}/reactions/ok")
    expire = app.wiring.container.messaging.expire_due

    clock.advance(30)
    assert run(http, expire) == 0
    assert [m["body"] for m in history(c, cid)] == ["before the timer", "self-destruct"]

    # Turning the timer off affects new messages only.
    owner.client.request("PATCH", f"{CONVERSATIONS}/{cid}", json={"message_ttl_seconds": None})
    lasting = send(c, cid, "after the timer")

    clock.advance(31)
    run(http, expire)  # the background sweep may have beaten us to it; either way:
    rows = stored_messages(app, http, cid)
    assert [(r.seq, r.body) for r in rows] == [
        (1, "before the timer"),
        (2, None),
        (3, "after the timer"),
    ]
    assert rows[1].deleted_at is not None
    assert rows[1].sender_id == int(b.id)
    items = history(c, cid)
    assert [(m["body"], m["deleted"]) for m in items] == [
        ("before the timer", False),
        (None, True),
        ("after the timer", False),
    ]
    assert items[1]["reactions"] == {}
    assert items[0] == kept
    assert items[2] == lasting
    assert run(http, expire) == 0  # nothing is erased twice

    async def reaction_rows() -> list[Any]:
        async with app.wiring.database(write=False) as uow:
            found = await uow.conversations._conn.execute(
                select(reactions).where(reactions.c.message_id == int(fleeting["id"]))
            )
            return list(found)

    assert run(http, reaction_rows) == []
    for member in (owner, b, c):
        events = sync_all(member)
        deleted = [e for e in events if e["type"] == "message.deleted"]
        assert {(e["message_id"], e["seq"]) for e in deleted} == {(fleeting["id"], 2)}
        assert "self-destruct" not in repr(events)
        assert replay(events, cid) == items


def test_a_direct_conversations_timer_is_either_members(
    app: App, http: Any, clock: Clock, register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    cid = a.client.request(
        "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [b.id]}
    ).json()["id"]
    b.client.request("PATCH", f"{CONVERSATIONS}/{cid}", json={"message_ttl_seconds": 5})
    gone = send(a, cid, "poof")
    clock.advance(6)
    run(http, app.wiring.container.messaging.expire_due)
    assert history(a, cid)[0]["id"] == gone["id"]
    assert history(a, cid)[0]["body"] is None


def erase(account: Account) -> None:
    response = account.client.raw("DELETE", "/v1/me", json={"password": PASSWORD})
    assert response.status_code == 204, response.text


def test_an_erased_accounts_messages_become_tombstones(
    app: App, http: Any, register: Callable[..., Account]
) -> None:
    gone, b, c = register(), register(), register()
    group = make_group(b, gone, c)
    dm = gone.client.request(
        "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [b.id]}
    ).json()["id"]
    secret = send(gone, group, "secret one")
    answer = send(b, group, "answer")
    send(gone, dm, "secret two")
    b.client.request("PUT", f"{CONVERSATIONS}/{group}/messages/{secret['id']}/reactions/ok")
    gone.client.request("PUT", f"{CONVERSATIONS}/{group}/messages/{answer['id']}/reactions/ok")

    erase(gone)

    items = history(c, group)
    assert [(m["seq"], m["sender_id"], m["body"], m["deleted"]) for m in items] == [
        (1, None, None, True),
        (2, b.id, "answer", False),
    ]
    assert items[0]["reactions"] == {}
    assert items[1]["reactions"] == {}
    view = b.client.request("GET", f"{CONVERSATIONS}/{group}").json()
    assert view["member_count"] == 2
    assert view["owner_id"] == b.id
    members = b.client.request("GET", f"{CONVERSATIONS}/{group}/members").json()["items"]
    assert sorted(m["user_id"] for m in members) == sorted([b.id, c.id])
    assert send(c, group, "still here")["seq"] == 3

    # The other side keeps the direct conversation, with a tombstone in it.
    assert [c_["id"] for c_ in b.client.request("GET", CONVERSATIONS).json()["items"]] == [
        group,
        dm,
    ]
    dm_items = history(b, dm)
    assert [(m["sender_id"], m["body"], m["deleted"]) for m in dm_items] == [(None, None, True)]
    assert b.client.request("GET", f"{CONVERSATIONS}/{dm}").json()["member_count"] == 1
    # Nothing the account wrote is left in storage.
    for cid in (group, dm):
        for row in stored_messages(app, http, cid):
            assert row.sender_id != int(gone.id)
            assert row.body is None or "secret" not in row.body


def test_an_erased_owner_hands_the_group_over(
    app: App, http: Any, register: Callable[..., Account]
) -> None:
    """Leaving hands ownership over; erasing the account is leaving too. Without it the
    group has no owner and nobody can ever change a role again."""
    owner, admin, member = register(), register(), register()
    cid = make_group(owner, admin, member)
    owner.client.request(
        "PATCH", f"{CONVERSATIONS}/{cid}/members/{admin.id}", json={"role": "admin"}
    )
    erase(owner)
    view = admin.client.request("GET", f"{CONVERSATIONS}/{cid}").json()
    assert view["owner_id"] == admin.id
    assert view["role"] == "owner"
    made = admin.client.raw(
        "PATCH", f"{CONVERSATIONS}/{cid}/members/{member.id}", json={"role": "admin"}
    )
    assert made.status_code == 200, made.text


def test_the_others_are_told_when_an_erased_accounts_messages_go(
    app: App, http: Any, register: Callable[..., Account]
) -> None:
    """Clients that replay their events must end with the server's history: the erased
    messages need a message.deleted (and the leaving a member.removed) in the others' logs,
    or their copies keep the erased words forever."""
    gone, b = register(), register()
    cid = make_group(b, gone)
    send(gone, cid, "forget me")
    send(b, cid, "ok")
    erase(gone)
    events = sync_all(b)

    def content(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(m["seq"], m["id"], m["body"], m["deleted"], m["reactions"]) for m in items]

    assert content(replay(events, cid)) == content(history(b, cid))
    removed = [e for e in events if e["type"] == "member.removed"]
    assert [e["user_id"] for e in removed] == [gone.id]
