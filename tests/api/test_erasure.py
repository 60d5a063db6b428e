"""Erasure that holds: deleted, expired, erased or edited-away content is gone from every
table of the schema and from every API a client reads through.

Each test writes unique markers (a message body, a reaction), checks that the walk finds
them while they stand (so the walk can fail), erases them one way, then walks every table
(``schema_walk``) and every read API of every account still there: conversation list and
view, history, sync from the start, WebSocket replay from position 0 and from null,
notifications and export. The log positions must stay what they were: a tombstone takes
the place of each event about an erased message.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from log_support import about
from ws_support import connected

from conftest import PASSWORD, Account, App, Clock, make_app
from schema_walk import tables_holding
from socius.domain.events import Event
from socius.services.inbox import cursor_for
from socius.settings import Settings

CONVERSATIONS = "/v1/conversations"


@pytest.fixture
def app(make_settings: Callable[..., Settings], clock: Clock) -> App:
    return make_app(make_settings(), clock=clock)


def marker(kind: str = "mk") -> str:
    """A string nothing else in the database can hold by chance (≤ 16: fits an emoji)."""
    return f"{kind}{secrets.token_hex(6)}"


def make_group(owner: Account, *others: Account) -> str:
    body = {"kind": "group", "title": "erasure", "member_ids": [o.id for o in others]}
    return str(owner.client.request("POST", CONVERSATIONS, json=body).json()["id"])


def send(a: Account, cid: str, body: str, reply_to: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"client_msg_id": uuid.uuid4().hex, "body": body}
    if reply_to is not None:
        payload["reply_to"] = reply_to
    response = a.client.raw("POST", f"{CONVERSATIONS}/{cid}/messages", json=payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


def react(a: Account, cid: str, mid: str, emoji: str) -> None:
    path = f"{CONVERSATIONS}/{cid}/messages/{mid}/reactions/{emoji}"
    assert a.client.raw("PUT", path).status_code == 200


def sync_items(a: Account) -> list[dict[str, Any]]:
    """The whole log from the start: ``{"cursor", "event"}`` items."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = a.client.request("GET", "/v1/sync", params={"cursor": cursor, "limit": 100}).json()
        if not page["items"]:
            return items
        items += page["items"]
        cursor = page["next_cursor"]


def readable(http: Any, a: Account, cids: list[str]) -> dict[str, str]:
    """Everything ``a`` can read through the API, per API."""
    get = a.client.raw
    seen = {
        "conversations": get("GET", CONVERSATIONS).text,
        "notifications": get("GET", "/v1/notifications", params={"limit": 100}).text,
        "export": get("GET", "/v1/me/export").text,
        "sync": repr(sync_items(a)),
    }
    for cid in cids:
        seen[f"conversation {cid}"] = get("GET", f"{CONVERSATIONS}/{cid}").text
        seen[f"history {cid}"] = get(
            "GET", f"{CONVERSATIONS}/{cid}/messages", params={"limit": 100}
        ).text
    for name, cursor in (("replay from 0", cursor_for(0)), ("replay from null", None)):
        with connected(http, a.client.access_token or "", cursor) as (_, replayed, _ready):
            seen[name] = repr(replayed)
    return seen


def where(http: Any, app: App, readers: list[Account], cids: list[str], *needles: str) -> Any:
    """Where each needle can still be found: tables, and (account, API) pairs."""
    found: dict[str, list[str]] = {
        n: list(t) for n, t in tables_holding(http, app, *needles).items()
    }
    for a in readers:
        for api, text in readable(http, a, cids).items():
            for needle in needles:
                if needle in text:
                    found.setdefault(needle, []).append(f"{a.username}: {api}")
    return found


def positions(items: list[dict[str, Any]]) -> list[str]:
    return [item["cursor"] for item in items]


def test_delete_for_everyone_leaves_only_tombstones(
    app: App, http: Any, register: Callable[..., Account]
) -> None:
    sender, b, c = register(), register(), register()
    cid = make_group(sender, b, c)
    first, second, emoji = marker("first"), marker("second"), marker("em")
    message = send(sender, cid, f"the words {first}")
    reply = send(c, cid, "a reply", reply_to=message["id"])
    sender.client.request(
        "PATCH", f"{CONVERSATIONS}/{cid}/messages/{message['id']}", json={"body": second}
    )
    react(b, cid, message["id"], emoji)
    readers = [sender, b, c]
    standing = where(http, app, readers, [cid], second, emoji)
    assert {"messages", "user_events"} <= set(standing[second])
    assert "reactions" in standing[emoji]
    assert any("replay from 0" in place for place in standing[second])
    before = {a.id: positions(sync_items(a)) for a in readers}

    deleted = b.client.raw("DELETE", f"{CONVERSATIONS}/{cid}/messages/{message['id']}")
    assert deleted.status_code == 403  # a member may not; the sender may
    deleted = sender.client.raw("DELETE", f"{CONVERSATIONS}/{cid}/messages/{message['id']}")
    assert deleted.status_code == 200

    assert where(http, app, readers, [cid], first, second, emoji) == {}
    for a in readers:
        items = sync_items(a)
        # Every position is still there, one more for the deletion itself.
        assert positions(items)[: len(before[a.id])] == before[a.id]
        assert len(items) == len(before[a.id]) + 1
        for item in items:
            event = item["event"]
            if about(event) == message["id"]:
                assert event["type"] == "message.deleted"
                assert (event["conversation_id"], event["seq"]) == (cid, message["seq"])
                assert event["message"]["deleted"] is True
    # The reply stays, still naming what it answered.
    kept = c.client.request("GET", f"{CONVERSATIONS}/{cid}/messages").json()["items"]
    assert [m["reply_to"] for m in kept if m["id"] == reply["id"]] == [message["id"]]


def test_an_edit_leaves_no_old_text_anywhere(
    app: App, http: Any, register: Callable[..., Account]
) -> None:
    sender, b = register(), register()
    cid = make_group(sender, b)
    old, new = marker("old"), marker("new")
    message = send(sender, cid, f"draft {old}")
    react(b, cid, message["id"], "ok")
    assert "user_events" in where(http, app, [sender, b], [cid], old)[old]
    before = sync_items(b)

    path = f"{CONVERSATIONS}/{cid}/messages/{message['id']}"
    edited = sender.client.request("PATCH", path, json={"body": f"final {new}"}).json()

    assert where(http, app, [sender, b], [cid], old) == {}
    after = sync_items(b)
    assert positions(after)[: len(before)] == positions(before)
    created = [i["event"] for i in after if i["event"]["type"] == "message.created"]
    assert [e["message"]["body"] for e in created] == [f"final {new}"]
    assert created[0]["message"]["edited_at"] == edited["edited_at"]
    assert after[-1]["event"]["type"] == "message.updated"


def test_a_disappearing_message_leaves_only_tombstones(
    app: App, http: Any, clock: Clock, register: Callable[..., Account]
) -> None:
    sender, b = register(), register()
    cid = make_group(sender, b)
    sender.client.request("PATCH", f"{CONVERSATIONS}/{cid}", json={"message_ttl_seconds": 60})
    words, emoji = marker("ttl"), marker("em")
    message = send(sender, cid, f"fleeting {words}")
    react(b, cid, message["id"], emoji)
    assert where(http, app, [sender, b], [cid], words, emoji).keys() == {words, emoji}
    before = positions(sync_items(b))

    clock.advance(61)
    http.blocking_portal.call(app.wiring.container.messaging.expire_due)

    assert where(http, app, [sender, b], [cid], words, emoji) == {}
    after = sync_items(b)
    assert positions(after)[: len(before)] == before
    tombstones = [i for i in after if about(i["event"]) == message["id"]]
    assert {i["event"]["type"] for i in tombstones} == {"message.deleted"}
    assert len(tombstones) == 3  # the creation, the reaction, and the expiry itself


def test_an_erased_accounts_words_and_reactions_leave_every_log(
    app: App, http: Any, register: Callable[..., Account]
) -> None:
    gone, b, c = register(), register(), register()
    group = make_group(b, gone, c)
    dm = gone.client.request(
        "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [b.id]}
    ).json()["id"]
    words, private, emoji, kept = marker("grp"), marker("dm"), marker("em"), marker("keep")
    own = send(gone, group, f"mine {words}")
    send(gone, dm, f"between us {private}")
    theirs = send(b, group, f"b says {kept}")
    react(gone, group, theirs["id"], emoji)  # the account's reaction on someone else's words
    react(c, group, theirs["id"], "ok")
    react(b, group, own["id"], "ok")
    readers = [b, c]
    assert where(http, app, readers, [group, dm], words, private, emoji).keys() == {
        words,
        private,
        emoji,
    }

    response = gone.client.raw("DELETE", "/v1/me", json={"password": PASSWORD})
    assert response.status_code == 204, response.text

    assert where(http, app, readers, [group, dm], words, private, emoji) == {}
    # What others wrote stays, with the reactions that are still theirs.
    history = b.client.request("GET", f"{CONVERSATIONS}/{group}/messages").json()["items"]
    assert [(m["body"], m["reactions"]) for m in history] == [
        (None, {}),
        (f"b says {kept}", {"ok": 1}),
    ]
    # A client rebuilding the conversation from its log alone ends with the same.
    for reader in readers:
        model: dict[int, Any] = {}
        for item in sync_items(reader):
            event = item["event"]
            if event["type"] in ("message.created", "message.updated"):
                if event["message"]["conversation_id"] == group:
                    model[event["message"]["seq"]] = dict(event["message"])
            elif event["type"] == "message.deleted" and event["conversation_id"] == group:
                model[event["seq"]] = dict(event["message"])
            elif event["type"] == "reaction.updated" and event["conversation_id"] == group:
                seq = next(s for s, m in model.items() if m["id"] == event["message_id"])
                model[seq]["reactions"] = event["reactions"]
        assert [(model[s]["body"], model[s]["reactions"]) for s in sorted(model)] == [
            (m["body"], m["reactions"]) for m in history
        ]


def test_a_notification_about_a_message_follows_its_edits_and_its_erasure(
    app: App, http: Any, register: Callable[..., Account]
) -> None:
    """No feature notifies about a message yet (a mention will): whatever does, by naming
    the message on the event, gets its notifications edited and erased with it."""
    sender, b = register(), register()
    cid = make_group(sender, b)
    draft, final = marker("draft"), marker("final")
    message = send(sender, cid, f"hey {draft}")
    container = app.wiring.container

    async def mention() -> None:
        event = Event(
            int(b.id), "mention", {"message": dict(message)}, message_id=int(message["id"])
        )
        async with app.wiring.database() as uow:
            await container.delivery.record(uow, [event], notify=[event])
            await uow.commit()

    http.blocking_portal.call(mention)
    assert draft in b.client.raw("GET", "/v1/notifications").text
    path = f"{CONVERSATIONS}/{cid}/messages/{message['id']}"
    sender.client.request("PATCH", path, json={"body": f"hey {final}"})
    assert mentions(b) == [f"hey {final}"]
    assert where(http, app, [sender, b], [cid], draft) == {}
    logged = [i["event"] for i in sync_items(b) if i["event"]["type"] == "notification"]
    wrapped = [e["notification"] for e in logged if e["notification"]["type"] == "mention"]
    assert [n["payload"]["message"]["body"] for n in wrapped] == [f"hey {final}"]

    sender.client.request("DELETE", path)
    assert mentions(b) == []
    assert where(http, app, [sender, b], [cid], final) == {}


def mentions(a: Account) -> list[str]:
    notes = a.client.request("GET", "/v1/notifications").json()["items"]
    return [n["payload"]["message"]["body"] for n in notes if n["type"] == "mention"]
