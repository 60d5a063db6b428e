"""Threads through the public API (docs/threads.md): replies with ``thread_root_id``, the
root's summary, the thread's pages, who may read it, socket events, per-thread read
pointers, what deletion and erasure do to the summary, and concurrent replies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from api_support import error
from ws_support import connected, until

from clock import Clock
from conftest import PASSWORD, Account, App, make_app, unique_name
from served import serving
from socius.settings import Settings

CONVERSATIONS = "/v1/conversations"


@pytest.fixture
def app(make_settings: Callable[..., Settings], clock: Clock) -> App:
    # Enough connections that every racing reply holds one at the same time; a clock the
    # test moves (disappearing replies).
    return make_app(make_settings(database_pool_size=25), clock=clock)


def make_group(owner: Account, *members: Account) -> str:
    response = owner.client.request(
        "POST",
        CONVERSATIONS,
        json={"kind": "group", "title": "team", "member_ids": [m.id for m in members]},
    )
    return str(response.json()["id"])


def send(a: Account, cid: str, body: str = "hello", **extra: Any) -> httpx.Response:
    return a.client.raw(
        "POST",
        f"{CONVERSATIONS}/{cid}/messages",
        json={"client_msg_id": uuid.uuid4().hex, "body": body, **extra},
    )


def sent(a: Account, cid: str, body: str = "hello", **extra: Any) -> dict[str, Any]:
    response = send(a, cid, body, **extra)
    assert response.status_code == 201, response.text
    return dict(response.json())


def reply(a: Account, cid: str, root: str, body: str = "re") -> dict[str, Any]:
    return sent(a, cid, body, thread_root_id=root)


def timeline(a: Account, cid: str, **params: Any) -> list[dict[str, Any]]:
    page = a.client.request("GET", f"{CONVERSATIONS}/{cid}/messages", params=params).json()
    return list(page["items"])


def thread(a: Account, cid: str, root: str, **params: Any) -> httpx.Response:
    return a.client.raw("GET", f"{CONVERSATIONS}/{cid}/messages/{root}/thread", params=params)


def page(a: Account, cid: str, root: str, **params: Any) -> dict[str, Any]:
    response = thread(a, cid, root, **params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def mark(a: Account, cid: str, root: str, seq: int) -> httpx.Response:
    return a.client.raw(
        "POST", f"{CONVERSATIONS}/{cid}/messages/{root}/thread/read", json={"seq": seq}
    )


def logged(a: Account) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        got = a.client.request("GET", "/v1/sync", params={"cursor": cursor, "limit": 100}).json()
        if not got["items"]:
            return events
        events += [item["event"] for item in got["items"]]
        cursor = got["next_cursor"]


def root_in_timeline(a: Account, cid: str, root: str) -> dict[str, Any]:
    return next(m for m in timeline(a, cid) if m["id"] == root)


def test_replies_count_on_the_root_and_stay_out_of_the_timeline(
    register: Callable[..., Account],
) -> None:
    a, b, c = register(), register(), register()
    cid = make_group(a, b, c)
    root = sent(a, cid, "topic")
    assert root["thread"] is None
    assert root["thread_root_id"] is None
    first = reply(b, cid, root["id"], "one")
    assert first["thread_root_id"] == root["id"]
    assert first["thread"] is None
    reply(c, cid, root["id"], "two")
    last = reply(b, cid, root["id"], "three")
    after = sent(a, cid, "main line")
    # A retry of a reply is the same reply, counted once.
    again = b.client.raw(
        "POST",
        f"{CONVERSATIONS}/{cid}/messages",
        json={
            "client_msg_id": last["client_msg_id"],
            "body": "three",
            "thread_root_id": root["id"],
        },
    )
    assert again.status_code == 200
    assert again.json()["id"] == last["id"]

    # The main timeline: the root and the later message, not the replies.
    assert [m["body"] for m in timeline(a, cid)] == ["topic", "main line"]
    summary = root_in_timeline(c, cid, root["id"])["thread"]
    assert summary["reply_count"] == 3
    assert summary["participants"] == [b.id, c.id]  # distinct, in order of first reply
    assert summary["last_reply_at"] == last["created_at"]
    # c's own reply moved c's pointer past b's first reply: only b's last one is unread.
    assert (summary["last_read_seq"], summary["unread_count"]) == (3, 1)
    assert root_in_timeline(a, cid, root["id"])["thread"]["unread_count"] == 3

    got = page(a, cid, root["id"])
    assert [m["body"] for m in got["items"]] == ["one", "two", "three"]
    assert got["root"]["id"] == root["id"]
    assert got["root"]["thread"]["reply_count"] == 3
    # Replies take conversation seqs like any message.
    assert [m["seq"] for m in got["items"]] == [2, 3, 4]
    assert after["seq"] == 5
    # The SDK sees the same.
    typed = a.client.list_thread(cid, root["id"])
    assert [m.body for m in typed.items] == ["one", "two", "three"]
    assert typed.root.thread is not None
    assert typed.root.thread.reply_count == 3
    assert typed.root.thread.participants == [b.id, c.id]


def test_a_root_must_be_a_live_top_level_message_of_the_conversation(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    cid, other = make_group(a, b), make_group(a, b)
    root = sent(a, cid, "topic")
    in_thread = reply(b, cid, root["id"])
    elsewhere = sent(a, other, "elsewhere")
    gone = sent(a, cid, "gone")
    a.client.request("DELETE", f"{CONVERSATIONS}/{cid}/messages/{gone['id']}")
    for bad in (in_thread["id"], elsewhere["id"], gone["id"], "123456789", "not-an-id"):
        response = send(b, cid, "x", thread_root_id=bad)
        assert error(response) == (422, "invalid_thread_root"), (bad, response.text)
    # Nothing was stored for them.
    assert page(a, cid, root["id"])["root"]["thread"]["reply_count"] == 1
    assert a.client.request("GET", f"{CONVERSATIONS}/{cid}").json()["last_seq"] == 3


def test_thread_pages_follow_the_timelines_conventions(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    root = sent(a, cid, "topic")
    seqs = [reply(a if i % 2 else b, cid, root["id"], f"r{i}")["seq"] for i in range(7)]
    sent(a, cid, "noise")  # not part of the thread's pages
    newest = page(a, cid, root["id"], limit=3)
    assert [m["body"] for m in newest["items"]] == ["r4", "r5", "r6"]
    assert newest["next_cursor"] is None
    before = page(a, cid, root["id"], limit=3, before_seq=newest["items"][0]["seq"])
    assert [m["body"] for m in before["items"]] == ["r1", "r2", "r3"]
    after = page(a, cid, root["id"], limit=2, after_seq=seqs[1])
    assert [m["body"] for m in after["items"]] == ["r2", "r3"]
    walked: list[str] = []
    cursor = 0
    while items := page(a, cid, root["id"], limit=2, after_seq=cursor)["items"]:
        walked += [m["body"] for m in items]
        cursor = items[-1]["seq"]
    assert walked == [f"r{i}" for i in range(7)]
    assert error(thread(a, cid, root["id"], limit=0)) == (422, "validation_error")
    assert error(thread(a, cid, root["id"], limit=101))[0] == 422


def test_only_members_read_a_thread(register: Callable[..., Account]) -> None:
    a, b, outsider = register(), register(), register()
    cid = make_group(a, b)
    root = sent(a, cid, "topic")
    reply(b, cid, root["id"])
    assert error(thread(outsider, cid, root["id"])) == (404, "conversation_not_found")
    assert error(mark(outsider, cid, root["id"], 2)) == (404, "conversation_not_found")
    assert error(send(outsider, cid, "x", thread_root_id=root["id"]))[0] == 404
    # A reply is not a root; an unknown message is none.
    child = page(a, cid, root["id"])["items"][0]["id"]
    assert error(thread(a, cid, child)) == (404, "message_not_found")
    assert error(thread(a, cid, "999999999")) == (404, "message_not_found")
    assert error(thread(a, "999999999", root["id"])) == (404, "conversation_not_found")
    # One who left reads it no more.
    b.client.request("DELETE", f"{CONVERSATIONS}/{cid}/members/{b.id}")
    assert error(thread(b, cid, root["id"])) == (404, "conversation_not_found")


def test_a_block_makes_a_direct_thread_read_only_but_readable(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    cid = a.client.request(
        "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [b.id]}
    ).json()["id"]
    root = sent(a, cid, "topic")
    reply(b, cid, root["id"], "before")
    a.client.block(b.id)
    for who in (a, b):
        assert error(send(who, cid, "x", thread_root_id=root["id"])) == (403, "blocked")
        assert error(mark(who, cid, root["id"], 2)) == (403, "blocked")
        assert [m["body"] for m in page(who, cid, root["id"])["items"]] == ["before"]
    a.client.unblock(b.id)
    assert reply(b, cid, root["id"], "after")["thread_root_id"] == root["id"]


def test_read_pointers_are_per_thread_and_per_user(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    one, two = sent(a, cid, "one"), sent(a, cid, "two")
    r1 = reply(b, cid, one["id"], "1a")
    r2 = reply(b, cid, one["id"], "1b")
    reply(b, cid, two["id"], "2a")
    threads = {m["id"]: m["thread"] for m in timeline(a, cid)}
    assert threads[one["id"]]["unread_count"] == 2
    assert threads[two["id"]]["unread_count"] == 1

    moved = mark(a, cid, one["id"], r1["seq"])
    assert moved.status_code == 200, moved.text
    assert moved.json() == {
        "conversation_id": cid,
        "root_id": one["id"],
        "last_read_seq": r1["seq"],
        "unread_count": 1,
    }
    # Never back; beyond the last seq stops at it.
    assert mark(a, cid, one["id"], 0).json()["last_read_seq"] == r1["seq"]
    assert a.client.mark_thread_read(cid, one["id"], 10**9).unread_count == 0
    threads = {m["id"]: m["thread"] for m in timeline(a, cid)}
    assert threads[one["id"]]["unread_count"] == 0
    assert threads[two["id"]]["unread_count"] == 1  # the other thread is untouched
    assert page(b, cid, one["id"])["root"]["thread"]["last_read_seq"] == r2["seq"]
    # The reader's own devices hear of it; the other member does not.
    reads = [e for e in logged(a) if e["type"] == "thread.read"]
    assert [(e["root_id"], e["unread_count"]) for e in reads] == [
        (one["id"], 1),
        (one["id"], 0),
    ]
    assert not [e for e in logged(b) if e["type"] == "thread.read"]
    assert error(mark(a, cid, one["id"], -1))[0] == 422


def test_thread_events_reach_members_through_sync_and_the_socket(
    http: Any, register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    root = sent(a, cid, "topic")
    with connected(http, a.auth.access_token) as (ws, _, _):
        first = reply(b, cid, root["id"], "on the socket")
        created, _ = until(ws, lambda f: f.get("event", {}).get("type") == "message.created")
        assert created["event"]["message"]["thread_root_id"] == root["id"]
        assert created["event"]["message"]["id"] == first["id"]
        updated, _ = until(ws, lambda f: f.get("event", {}).get("type") == "thread.updated")
        assert updated["event"]["root_id"] == root["id"]
        assert updated["event"]["thread"]["reply_count"] == 1
        assert updated["event"]["thread"]["participants"] == [b.id]
        assert "unread_count" not in updated["event"]["thread"]  # per caller, not in events
        ready_cursor = updated["cursor"]
    reply(a, cid, root["id"], "while away")
    # Resuming from the cursor replays what was missed, in order.
    with connected(http, a.auth.access_token, ready_cursor) as (_, replayed, _):
        kinds = [
            (f["event"]["type"], f["event"].get("thread", {}).get("reply_count")) for f in replayed
        ]
        assert kinds == [("message.created", None), ("thread.updated", 2)]
    for who in (a, b):
        counts = [e["thread"]["reply_count"] for e in logged(who) if e["type"] == "thread.updated"]
        assert counts == [1, 2]


def test_deleting_a_reply_takes_it_out_of_the_summary(register: Callable[..., Account]) -> None:
    a, b, c = register(), register(), register()
    cid = make_group(a, b, c)
    root = sent(a, cid, "topic")
    b1 = reply(b, cid, root["id"], "b1")
    c1 = reply(c, cid, root["id"], "c1")
    b2 = reply(b, cid, root["id"], "b2")
    assert b.client.raw("DELETE", f"{CONVERSATIONS}/{cid}/messages/{b2['id']}").status_code == 200
    summary = root_in_timeline(a, cid, root["id"])["thread"]
    assert (summary["reply_count"], summary["participants"]) == (2, [b.id, c.id])
    assert summary["last_reply_at"] == c1["created_at"]
    assert b.client.raw("DELETE", f"{CONVERSATIONS}/{cid}/messages/{b1['id']}").status_code == 200
    summary = root_in_timeline(a, cid, root["id"])["thread"]
    assert (summary["reply_count"], summary["participants"]) == (1, [c.id])
    assert summary["unread_count"] == 1  # deleted replies are never unread
    # The tombstones stay in the thread's pages, as in the timeline.
    items = page(a, cid, root["id"])["items"]
    assert [(m["body"], m["deleted"]) for m in items] == [
        (None, True),
        ("c1", False),
        (None, True),
    ]
    # Every thread.updated in the logs says what stands now.
    for who in (a, b, c):
        told = [e["thread"] for e in logged(who) if e["type"] == "thread.updated"]
        assert told
        assert all(t["reply_count"] == 1 and t["participants"] == [c.id] for t in told)
    # A deleted root keeps its thread; it takes no new replies.
    a.client.request("DELETE", f"{CONVERSATIONS}/{cid}/messages/{root['id']}")
    assert page(b, cid, root["id"])["root"]["thread"]["reply_count"] == 1
    assert error(send(b, cid, "late", thread_root_id=root["id"])) == (422, "invalid_thread_root")


def test_a_disappearing_reply_leaves_the_summary_when_its_time_is_up(
    app: App, http: Any, clock: Clock, register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    root = sent(a, cid, "topic")
    reply(a, cid, root["id"], "lasting")
    a.client.request("PATCH", f"{CONVERSATIONS}/{cid}", json={"message_ttl_seconds": 60})
    reply(b, cid, root["id"], "fleeting")
    assert root_in_timeline(a, cid, root["id"])["thread"]["participants"] == [a.id, b.id]
    clock.advance(61)
    http.blocking_portal.call(app.wiring.container.messaging.expire_due)
    summary = root_in_timeline(a, cid, root["id"])["thread"]
    assert (summary["reply_count"], summary["participants"]) == (1, [a.id])
    assert [m["body"] for m in page(b, cid, root["id"])["items"]] == ["lasting", None]


def test_an_erased_repliers_id_leaves_the_summary_and_the_logs(
    register: Callable[..., Account],
) -> None:
    a, gone, c = register(), register(), register()
    cid = make_group(a, gone, c)
    root = sent(a, cid, "topic")
    reply(gone, cid, root["id"], "mine")
    reply(c, cid, root["id"], "theirs")
    assert root_in_timeline(a, cid, root["id"])["thread"]["participants"] == [gone.id, c.id]
    response = gone.client.raw("DELETE", "/v1/me", json={"password": PASSWORD})
    assert response.status_code == 204, response.text
    summary = root_in_timeline(a, cid, root["id"])["thread"]
    assert (summary["reply_count"], summary["participants"]) == (1, [c.id])
    for who in (a, c):
        for event in logged(who):
            if event["type"] == "thread.updated":
                assert gone.id not in event["thread"]["participants"], event


def test_participants_stop_at_ten(register: Callable[..., Account]) -> None:
    owner = register()
    others = [register() for _ in range(11)]
    cid = make_group(owner, *others)
    root = sent(owner, cid, "topic")
    for who in others:
        reply(who, cid, root["id"])
    summary = root_in_timeline(owner, cid, root["id"])["thread"]
    assert summary["reply_count"] == 11
    assert summary["participants"] == [o.id for o in others[:10]]


async def test_concurrent_replies_count_every_one(app: App) -> None:
    async with serving(app) as (sdk, in_flight):
        users = []
        for _ in range(6):
            client = sdk()
            auth = await client.register(unique_name("thr"), PASSWORD)
            users.append((client, auth.user.id))
        owner = users[0][0]
        cid = (
            await owner.request(
                "POST",
                CONVERSATIONS,
                json={"kind": "group", "title": "t", "member_ids": [u for _, u in users[1:]]},
            )
        ).json()["id"]
        root = await owner.send_message(cid, "topic", client_msg_id="root")
        n = 60
        results = await asyncio.gather(
            *(
                users[i % len(users)][0].send_message(
                    cid, f"r{i}", client_msg_id=f"r{i}", thread_root_id=root.id
                )
                for i in range(n)
            ),
            *(owner.send_message(cid, f"m{i}", client_msg_id=f"m{i}") for i in range(10)),
        )
        in_flight.assert_overlapped()
        replies = [m for m in results if m.thread_root_id == root.id]
        assert len(replies) == n
        got = await owner.list_thread(cid, root.id, limit=100)
        assert sorted(m.seq for m in got.items) == sorted(m.seq for m in replies)
        assert got.root.thread is not None
        assert got.root.thread.reply_count == n
        assert sorted(got.root.thread.participants) == sorted(u for _, u in users)
        seqs = sorted(m.seq for m in results)
        assert seqs == list(range(2, n + 12))  # gap-free with the other sends
        # Every member's log ends with a summary that counts them all.
        for client, _ in users:
            events = []
            cursor = None
            while items := (page_ := await client.sync(cursor, limit=100)).items:
                events += [i.event for i in items]
                cursor = page_.next_cursor
            told = [e["thread"]["reply_count"] for e in events if e["type"] == "thread.updated"]
            assert told
            assert told[-1] == n
            assert told == sorted(told)


def test_graphql_messages_carry_the_thread(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    root = sent(a, cid, "topic")
    reply(b, cid, root["id"], "re")
    data = a.client.graphql(
        "query($c: ID!) { conversation(id: $c) { messages { body threadRootId "
        "thread { replyCount participants } } } }",
        {"c": cid},
    )
    assert data["conversation"]["messages"] == [
        {"body": "topic", "threadRootId": None, "thread": {"replyCount": 1, "participants": [b.id]}}
    ]
    # Replying through the mutation works the same way.
    sent_ = b.client.graphql(
        'mutation($c: ID!, $t: ID) { sendMessage(conversationId: $c, clientMsgId: "g1", '
        'body: "via graphql", threadRootId: $t) { threadRootId } }',
        {"c": cid, "t": root["id"]},
    )
    assert sent_["sendMessage"] == {"threadRootId": root["id"]}
    assert page(a, cid, root["id"])["root"]["thread"]["reply_count"] == 2
