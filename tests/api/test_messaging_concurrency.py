"""Messaging under real concurrency: requests gathered in the test's own event loop.

The app is served in this loop through httpx's ASGI transport (Litestar's AsyncTestClient
would run the requests one at a time); a counter of requests in flight proves the overlap.
On PostgreSQL the writers really race for the conversation's row lock; SQLite runs one
write transaction at a time, which must give the same results.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from log_support import same_slot
from sqlalchemy import func, select

from conftest import PASSWORD, App, make_app, unique_name
from served import InFlight, serving
from socius.client import AsyncClient
from socius.settings import Settings
from socius.storage.tables import conversations, members, messages

CONVERSATIONS = "/v1/conversations"


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> App:
    # Enough connections that every racing request holds one at the same time.
    return make_app(make_settings(database_pool_size=25))


@pytest.fixture
async def served(app: App) -> AsyncIterator[tuple[Callable[[], AsyncClient], InFlight]]:
    async with serving(app) as served:
        yield served


async def signed_up(sdk: Callable[[], AsyncClient], n: int) -> list[tuple[AsyncClient, str]]:
    users = []
    for _ in range(n):
        client = sdk()
        auth = await client.register(unique_name("msg"), PASSWORD)
        users.append((client, auth.user.id))
    return users


async def db_rows(app: App, stmt: Any) -> list[Any]:
    async with app.wiring.database(write=False) as uow:
        conn = uow.conversations._conn  # the unit of work's connection
        return list(await conn.execute(stmt))


async def sync_all(client: AsyncClient) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = await client.request("GET", "/v1/sync", params={"cursor": cursor, "limit": 100})
        page = response.json()
        if not page["items"]:
            return events
        events += [item["event"] for item in page["items"]]
        cursor = page["next_cursor"]


async def test_simultaneous_opens_from_both_sides_make_one_direct_conversation(
    app: App, served: Any
) -> None:
    sdk, in_flight = served
    (a, a_id), (b, b_id) = await signed_up(sdk, 2)
    calls = [
        (a if i % 2 else b).raw(
            "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [b_id if i % 2 else a_id]}
        )
        for i in range(20)
    ]
    responses = await asyncio.gather(*calls)
    in_flight.assert_overlapped()
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    cid = int(responses[0].json()["id"])
    rows = await db_rows(app, select(conversations.c.id).where(conversations.c.kind == "direct"))
    assert [r.id for r in rows] == [cid]
    member_rows = await db_rows(
        app, select(members.c.user_id).where(members.c.conversation_id == cid)
    )
    assert sorted(r.user_id for r in member_rows) == sorted([int(a_id), int(b_id)])
    for client in (a, b):
        listed = (await client.request("GET", CONVERSATIONS)).json()["items"]
        assert [c["id"] for c in listed] == [str(cid)]
        assert listed[0]["member_count"] == 2


async def test_twenty_simultaneous_retries_of_a_send_make_one_message(
    app: App, served: Any
) -> None:
    sdk, in_flight = served
    (a, _), (b, b_id) = await signed_up(sdk, 2)
    created = await a.request(
        "POST", CONVERSATIONS, json={"kind": "group", "title": "g", "member_ids": [b_id]}
    )
    cid = created.json()["id"]
    payload = {"client_msg_id": "retry-me", "body": "once"}
    responses = await asyncio.gather(
        *(a.raw("POST", f"{CONVERSATIONS}/{cid}/messages", json=payload) for _ in range(20))
    )
    in_flight.assert_overlapped()
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201], [r.text for r in responses if r.status_code > 201]
    bodies = [r.json() for r in responses]
    assert {(m["id"], m["seq"]) for m in bodies} == {(bodies[0]["id"], 1)}
    assert all(m == bodies[0] for m in bodies)

    items = (await b.request("GET", f"{CONVERSATIONS}/{cid}/messages")).json()["items"]
    assert [m["id"] for m in items] == [bodies[0]["id"]]
    count = await db_rows(
        app,
        select(func.count()).select_from(messages).where(messages.c.conversation_id == int(cid)),
    )
    assert count[0][0] == 1
    assert (await b.request("GET", f"{CONVERSATIONS}/{cid}")).json()["last_seq"] == 1
    for client in (a, b):
        created_events = [e for e in await sync_all(client) if e["type"] == "message.created"]
        assert [e["message"]["id"] for e in created_events] == [bodies[0]["id"]]


async def test_simultaneous_sends_from_several_members_number_gap_free(
    app: App, served: Any
) -> None:
    sdk, in_flight = served
    users = await signed_up(sdk, 4)
    owner = users[0][0]
    created = await owner.request(
        "POST",
        CONVERSATIONS,
        json={"kind": "group", "title": "g", "member_ids": [uid for _, uid in users[1:]]},
    )
    cid = created.json()["id"]
    sends = []
    for i in range(30):
        client, _ = users[i % len(users)]
        body = {"client_msg_id": uuid.uuid4().hex, "body": f"m{i}"}
        sends.append(client.raw("POST", f"{CONVERSATIONS}/{cid}/messages", json=body))
    # Someone reads while the others write.
    reads = [
        users[1][0].raw("POST", f"{CONVERSATIONS}/{cid}/read", json={"seq": n})
        for n in range(1, 30, 6)
    ]
    responses = await asyncio.gather(*sends, *reads)
    in_flight.assert_overlapped()
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    sent = [r.json() for r in responses[:30]]
    assert all(r.status_code == 201 for r in responses[:30])
    assert sorted(m["seq"] for m in sent) == list(range(1, 31))
    assert len({m["id"] for m in sent}) == 30

    history = (
        await owner.request("GET", f"{CONVERSATIONS}/{cid}/messages", params={"limit": 100})
    ).json()["items"]
    assert [m["seq"] for m in history] == list(range(1, 31))
    assert {m["id"]: m["seq"] for m in history} == {m["id"]: m["seq"] for m in sent}
    view = (await owner.request("GET", f"{CONVERSATIONS}/{cid}")).json()
    assert view["last_seq"] == 30
    # Every member's log has the messages in the conversation's order, once each.
    for client, _ in users:
        created_events = [e for e in await sync_all(client) if e["type"] == "message.created"]
        assert [e["message"]["seq"] for e in created_events] == list(range(1, 31))
        # Each sender's own pointer moved with their sends.
        mine = (await client.request("GET", f"{CONVERSATIONS}/{cid}")).json()
        assert mine["unread_count"] == 30 - mine["last_read_seq"]
        assert mine["last_read_seq"] >= 1


class AsyncDevice:
    """A client app: a cursor into its user's log and conversations rebuilt from it."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.cursor: str | None = None
        self.seen: list[dict[str, Any]] = []
        self.model: dict[str, dict[int, dict[str, Any]]] = {}
        self.where: dict[str, tuple[str, int]] = {}

    def apply(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("message.created", "message.updated"):
            m = event["message"]
            self.model.setdefault(m["conversation_id"], {})[m["seq"]] = dict(m)
            self.where[m["id"]] = (m["conversation_id"], m["seq"])
        elif kind == "message.deleted":  # in place of the message and its events
            tombstone = dict(event["message"])
            self.model.setdefault(event["conversation_id"], {})[event["seq"]] = tombstone
            self.where[event["message_id"]] = (event["conversation_id"], event["seq"])
        elif kind == "reaction.updated":
            cid, seq = self.where[event["message_id"]]
            self.model[cid][seq]["reactions"] = dict(event["reactions"])

    async def sync(self, *, limit: int, pages: int | None) -> None:
        done = 0
        while pages is None or done < pages:
            response = await self.client.request(
                "GET", "/v1/sync", params={"cursor": self.cursor, "limit": limit}
            )
            page = response.json()
            done += 1
            if not page["items"]:
                return
            for item in page["items"]:
                self.seen.append(item)
                self.apply(item["event"])
            self.cursor = page["next_cursor"]


async def full_history(client: AsyncClient, cid: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        response = await client.request(
            "GET",
            f"{CONVERSATIONS}/{cid}/messages",
            params={"after_seq": items[-1]["seq"] if items else 0, "limit": 100},
        )
        page = response.json()["items"]
        if not page:
            return items
        items += page


@pytest.mark.parametrize("seed", [5, 6])
async def test_random_concurrent_schedule_keeps_every_device_in_step(
    stack: str, app: App, served: Any, seed: int
) -> None:
    """Writers and syncing devices at once: a device that reads its log while other
    transactions are still committing must never skip an event that lands behind it.

    PostgreSQL only: SQLite runs one writer at a time (test_messaging_delivery covers the
    same invariants on it), and its lock waits make bursts slow.
    """
    if stack == "sqlite":
        pytest.skip("SQLite serializes writers; the sequential schedule covers it")
    sdk, in_flight = served
    rng = random.Random(seed)
    (owner, owner_id), (second, second_id), (third, third_id), (outsider, _) = await signed_up(
        sdk, 4
    )
    group = (
        await owner.request(
            "POST",
            CONVERSATIONS,
            json={"kind": "group", "title": "g", "member_ids": [second_id, third_id]},
        )
    ).json()["id"]
    dm = (
        await second.request(
            "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [owner_id]}
        )
    ).json()["id"]
    people = {group: [owner, second, third], dm: [owner, second]}
    devices = [AsyncDevice(c) for c in (owner, owner, second, third, outsider)]
    sent: list[tuple[str, str, AsyncClient]] = []  # (cid, message id, sender)
    statuses: list[tuple[str, int]] = []

    async def op(name: str, call: Any) -> Any:
        response = await call
        statuses.append((name, response.status_code))
        return response

    for _ in range(6):
        calls = []
        retried: list[int] = []
        for _ in range(14):
            kind = rng.choices(["send", "edit", "delete", "react", "read"], [6, 2, 1, 2, 1])[0]
            cid = rng.choice(list(people))
            user = rng.choice(people[cid])
            mine = [s for s in sent if s[0] == cid]
            if kind == "send" or not mine:
                payload = {"client_msg_id": uuid.uuid4().hex, "body": f"b{rng.random()}"}
                path = f"{CONVERSATIONS}/{cid}/messages"
                if rng.random() < 0.2:  # the same send twice, at the same moment
                    retried.append(len(calls))
                    calls.append(op("send", user.raw("POST", path, json=payload)))
                calls.append(op("send", user.raw("POST", path, json=payload)))
                continue
            _, mid, sender = rng.choice(mine)
            base = f"{CONVERSATIONS}/{cid}/messages/{mid}"
            if kind == "edit":
                calls.append(
                    op("edit", sender.raw("PATCH", base, json={"body": f"e{rng.random()}"}))
                )
            elif kind == "delete":
                calls.append(op("delete", sender.raw("DELETE", base)))
            elif kind == "react":
                method = rng.choice(["PUT", "DELETE"])
                emoji = rng.choice(["ok", "👍"])
                calls.append(op("react", user.raw(method, f"{base}/reactions/{emoji}")))
            else:
                seq = rng.randrange(0, 40)
                calls.append(
                    op("read", user.raw("POST", f"{CONVERSATIONS}/{cid}/read", json={"seq": seq}))
                )
        syncing = rng.sample(devices, 3)
        for device in syncing:
            calls.append(device.sync(limit=rng.randint(1, 6), pages=rng.choice([1, 2, None])))
        results = await asyncio.gather(*calls)
        for i in retried:
            first, second_try = results[i].json(), results[i + 1].json()
            assert first["id"] == second_try["id"]
            assert first["seq"] == second_try["seq"]
        # What was sent, and by whom, for the next rounds to edit, delete, react to.
        for cid in people:
            for m in await full_history(owner, cid):
                if all(s[1] != m["id"] for s in sent):
                    author = {owner_id: owner, second_id: second, third_id: third}[m["sender_id"]]
                    sent.append((cid, m["id"], author))

    in_flight.assert_overlapped()
    bad = [(n, s) for n, s in statuses if s >= 500]
    assert bad == []
    allowed = {
        "send": {200, 201},
        "edit": {200, 409},
        "delete": {200},
        "react": {200, 409},
        "read": {200},
    }
    assert all(s in allowed[n] for n, s in statuses), statuses

    for device in devices:
        await device.sync(limit=100, pages=None)
        fresh = AsyncDevice(device.client)
        await fresh.sync(limit=100, pages=None)
        # No gap, no duplicate, same order (an erased or edited message's events rewritten).
        assert len(fresh.seen) == len(device.seen)
        assert all(same_slot(a, b) for a, b in zip(device.seen, fresh.seen, strict=True))
    for device in devices:
        for cid, who in people.items():
            if device.client not in who:
                assert cid not in device.model
                continue
            server = await full_history(device.client, cid)
            local = [device.model[cid][s] for s in sorted(device.model.get(cid, {}))]
            assert local == server
    assert devices[-1].model == {}
    for item in devices[-1].seen:  # the outsider heard nothing of either conversation
        assert group not in repr(item)
        assert dm not in repr(item)
    for cid in people:
        for seq, m in enumerate(await full_history(owner, cid), start=1):
            assert m["seq"] == seq


async def test_an_admin_deleting_a_message_while_its_sender_erases_the_account(
    stack: str, app: App, served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin removes a spammer's message at the moment the spammer erases their account.

    The interleaving is forced: the delete is held just after it locked the conversation;
    the erasure then runs until it waits for that lock; then the delete goes on. Both must
    answer without a 5xx and the message must end as a tombstone without sender.
    """
    if stack == "sqlite":
        pytest.skip("SQLite runs one write transaction at a time: this cannot interleave")
    from socius.storage.conversations import SqlConversationRepository

    sdk, _ = served
    (admin, _), (spammer, spammer_id) = await signed_up(sdk, 2)
    cid = (
        await admin.request(
            "POST", CONVERSATIONS, json={"kind": "group", "title": "g", "member_ids": [spammer_id]}
        )
    ).json()["id"]
    spam = (
        await spammer.request(
            "POST", f"{CONVERSATIONS}/{cid}/messages", json={"client_msg_id": "s", "body": "buy"}
        )
    ).json()

    held, release = asyncio.Event(), asyncio.Event()
    original = SqlConversationRepository.with_member

    async def get_then_wait(
        self: Any, conversation_id: int, user_id: int, *, lock: bool = False
    ) -> Any:
        found = await original(self, conversation_id, user_id, lock=lock)
        if lock and not held.is_set():
            held.set()
            await release.wait()
        return found

    monkeypatch.setattr(SqlConversationRepository, "with_member", get_then_wait)
    delete = asyncio.create_task(
        admin.raw("DELETE", f"{CONVERSATIONS}/{cid}/messages/{spam['id']}")
    )
    await held.wait()
    erase = asyncio.create_task(spammer.raw("DELETE", "/v1/me", json={"password": PASSWORD}))
    await asyncio.wait({erase}, timeout=0.5)  # until it waits for the conversation
    release.set()
    responses = [await delete, await erase]
    assert [r.status_code for r in responses] == [200, 204], [r.text for r in responses]
    items = (await admin.request("GET", f"{CONVERSATIONS}/{cid}/messages")).json()["items"]
    assert [(m["body"], m["deleted"], m["sender_id"]) for m in items] == [(None, True, None)]
