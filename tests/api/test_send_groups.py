"""Group commit of sends (decision 0011), through the public API on both stacks.

The app is served in the test's own loop (tests/served.py) so that gathered requests
really arrive together, with a wide grouping window so that they surely share groups
(the histogram ``send_group_size`` proves it; the window is a setting, not a timing the
test depends on). WebSockets are driven on the same loop straight through ASGI.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import PASSWORD, App, make_app, unique_name
from served import serving
from socius.client import AsyncClient
from socius.settings import Settings
from socius.storage.sends import SqlSendRepository
from socius.storage.tables import messages

CONVERSATIONS = "/v1/conversations"
WAIT = 10.0  # seconds to wait for a frame before failing
PER_USER = 5  # the per-user send limit here (per hour: nothing refills during a test)


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> App:
    return make_app(
        make_settings(
            database_pool_size=25,
            send_group_window_ms=50,
            limit_messages=PER_USER,
            limit_messages_seconds=3600,
        )
    )


@pytest.fixture
async def served(app: App) -> AsyncIterator[Callable[[], AsyncClient]]:
    async with serving(app) as (sdk, _):
        yield sdk


class LoopSocket:
    """A WebSocket client of the app, on this loop, through ASGI."""

    def __init__(self, asgi: Any) -> None:
        self._asgi = asgi
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def open(self, token: str) -> None:
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": "/v1/ws",
            "raw_path": b"/v1/ws",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"testserver")],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "subprotocols": [],
        }
        self._task = asyncio.create_task(self._asgi(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "websocket.connect"})
        accepted = await asyncio.wait_for(self._from_app.get(), WAIT)
        assert accepted["type"] == "websocket.accept", accepted
        auth = {"type": "auth", "token": token, "cursor": None}
        await self._to_app.put({"type": "websocket.receive", "text": json.dumps(auth)})
        ready = await self.frame()
        assert ready["type"] == "ready", ready

    async def frame(self) -> dict[str, Any]:
        message = await asyncio.wait_for(self._from_app.get(), WAIT)
        assert message["type"] == "websocket.send", message
        frame: dict[str, Any] = json.loads(message["text"])
        return frame

    async def created(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` message.created events (other frames skipped)."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            frame = await self.frame()
            if frame["type"] == "event" and frame["event"]["type"] == "message.created":
                found.append(frame["event"]["message"])
        return found

    async def close(self) -> None:
        await self._to_app.put({"type": "websocket.disconnect", "code": 1000})
        if self._task is not None:
            await asyncio.wait_for(self._task, WAIT)


async def signed_up(sdk: Callable[[], AsyncClient], n: int) -> list[tuple[AsyncClient, str, str]]:
    """n users: (client, user id, access token)."""
    users = []
    for _ in range(n):
        client = sdk()
        auth = await client.register(unique_name("grp"), PASSWORD)
        users.append((client, auth.user.id, auth.access_token))
    return users


def groups_formed(app: App) -> tuple[float, float]:
    """(sends, groups) committed so far, from the ``send_group_size`` histogram."""
    sends = groups = 0.0
    for metric in app.wiring.metrics.send_group_size.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                sends = sample.value
            elif sample.name.endswith("_count"):
                groups = sample.value
    return sends, groups


async def log_of(client: AsyncClient) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = (
            await client.request("GET", "/v1/sync", params={"cursor": cursor, "limit": 100})
        ).json()
        if not page["items"]:
            return events
        events += [item["event"] for item in page["items"]]
        cursor = page["next_cursor"]


def post(client: AsyncClient, cid: str, body: dict[str, Any]) -> Any:
    return client.raw("POST", f"{CONVERSATIONS}/{cid}/messages", json=body)


async def test_concurrent_sends_into_one_and_many_conversations(
    app: App, served: Callable[[], AsyncClient]
) -> None:
    users = await signed_up(served, 6)
    (owner, owner_id, _), others = users[0], users[1:]
    group = (
        await owner.request(
            "POST",
            CONVERSATIONS,
            json={"kind": "group", "title": "g", "member_ids": [u for _, u, _ in others]},
        )
    ).json()["id"]
    directs = []
    for client, _, _ in others:
        opened = await client.request(
            "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [owner_id]}
        )
        directs.append(opened.json()["id"])
    sockets = [LoopSocket(app.asgi) for _ in users]
    for socket, (_, _, token) in zip(sockets, users, strict=True):
        await socket.open(token)
    sends_before, groups_before = groups_formed(app)

    calls: list[tuple[str, dict[str, Any], AsyncClient]] = []
    for k in range(4):
        calls.append((group, {"client_msg_id": f"o{k}", "body": f"owner {k}"}, owner))
    for n, (client, _, _) in enumerate(others):
        for k in range(2):
            calls.append((group, {"client_msg_id": f"g{n}-{k}", "body": f"g {n} {k}"}, client))
            calls.append((directs[n], {"client_msg_id": f"d{n}-{k}", "body": f"d {n}"}, client))
    # The same send twice at once (its retry), inside the same group.
    calls.append((group, {"client_msg_id": "g0-0", "body": "g 0 0"}, others[0][0]))
    responses = await asyncio.gather(*(post(c, cid, body) for cid, body, c in calls))

    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == len(calls) - 1, [r.text for r in responses]
    assert statuses.count(200) == 1
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for (cid, body, _), response in zip(calls, responses, strict=True):
        message = response.json()
        key = (cid, body["client_msg_id"])
        if key in by_key:
            assert message == by_key[key]  # the retry got the original
        by_key[key] = message
    sends_after, groups_after = groups_formed(app)
    assert sends_after - sends_before == len(calls)
    assert groups_after - groups_before < len(calls), "no two sends shared a transaction"

    # Gap-free numbers, one message per key, the same ones everywhere.
    expected = {group: 14, **dict.fromkeys(directs, 2)}
    for cid, count in expected.items():
        history = (
            await owner.request("GET", f"{CONVERSATIONS}/{cid}/messages", params={"limit": 100})
        ).json()["items"]
        assert [m["seq"] for m in history] == list(range(1, count + 1))
        assert {m["id"] for m in history} == {m["id"] for (c, _), m in by_key.items() if c == cid}
    # Every member's log: each conversation's messages once, in order.
    for (client, user_id, _), socket in zip(users, sockets, strict=True):
        mine = {group: 14}
        if user_id == owner_id:
            mine |= dict.fromkeys(directs, 2)
        else:
            mine[directs[[u for _, u, _ in others].index(user_id)]] = 2
        logged = [e["message"] for e in await log_of(client) if e["type"] == "message.created"]
        live = await socket.created(sum(mine.values()))
        for seen in (logged, live):
            for cid, count in mine.items():
                assert [m["seq"] for m in seen if m["conversation_id"] == cid] == list(
                    range(1, count + 1)
                )
            assert len(seen) == sum(mine.values())
    for socket in sockets:
        await socket.close()


async def test_a_bad_send_fails_alone_in_its_group(
    app: App, served: Callable[[], AsyncClient]
) -> None:
    (a, _, _), (b, b_id, _), (c, c_id, _), (d, d_id, _), (outsider, _, _) = await signed_up(
        served, 5
    )
    group = (
        await a.request(
            "POST",
            CONVERSATIONS,
            json={"kind": "group", "title": "g", "member_ids": [b_id, c_id, d_id]},
        )
    ).json()["id"]
    direct = (
        await a.request("POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [c_id]})
    ).json()["id"]
    await c.request("POST", f"/v1/users/{(await a.me()).id}/block")
    sends_before, groups_before = groups_formed(app)

    def text(tag: str, **extra: Any) -> dict[str, Any]:
        return {"client_msg_id": f"{tag}-{uuid.uuid4().hex[:8]}", "body": tag, **extra}

    good = [post(a, group, text("a1")), post(a, group, text("a2")), post(b, group, text("b1"))]
    bad = [
        post(outsider, group, text("outsider")),  # not a member
        post(b, group, text("reply", reply_to="123456789")),  # not a message there
        post(a, direct, text("blocked")),  # c blocked a
        post(c, group, text("blank", body="   ")),  # no body
    ]
    limited = [post(d, group, text(f"d{k}")) for k in range(PER_USER + 1)]
    responses = await asyncio.gather(*good, *bad, *limited)
    ok, wrong, rated = (
        responses[: len(good)],
        responses[len(good) : len(good) + len(bad)],
        responses[len(good) + len(bad) :],
    )
    assert [r.status_code for r in ok] == [201] * len(good), [r.text for r in ok]
    assert [(r.status_code, r.json()["error"]["code"]) for r in wrong] == [
        (404, "conversation_not_found"),
        (422, "invalid_reply_to"),
        (403, "blocked"),
        (422, "empty_body"),
    ], [r.text for r in wrong]
    assert sorted(r.status_code for r in rated) == [201] * PER_USER + [429]
    sends_after, groups_after = groups_formed(app)
    assert groups_after - groups_before < sends_after - sends_before, "no group formed"

    history = (
        await a.request("GET", f"{CONVERSATIONS}/{group}/messages", params={"limit": 100})
    ).json()["items"]
    stored = len(good) + PER_USER
    assert [m["seq"] for m in history] == list(range(1, stored + 1))
    assert {m["id"] for m in history} == {
        r.json()["id"] for r in ok + [r for r in rated if r.status_code == 201]
    }
    assert (await a.request("GET", f"{CONVERSATIONS}/{direct}/messages")).json()["items"] == []
    for client in (a, b, c, d):
        logged = [e["message"] for e in await log_of(client) if e["type"] == "message.created"]
        assert [m["seq"] for m in logged if m["conversation_id"] == group] == list(
            range(1, stored + 1)
        )
    assert [e for e in await log_of(outsider) if e["type"] == "message.created"] == []


async def test_a_group_whose_transaction_fails_answers_each_send_alone(
    app: App, served: Callable[[], AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group transaction that fails for another reason than an outage (here: its
    writes, once: the insert, or on PostgreSQL the one statement of its writes) is rolled
    back whole, and each of its sends then runs in its own transaction."""
    (a, _, _), (b, b_id, _) = await signed_up(served, 2)
    group = (
        await a.request(
            "POST", CONVERSATIONS, json={"kind": "group", "title": "g", "member_ids": [b_id]}
        )
    ).json()["id"]
    failed: list[int] = []

    def failing_once(name: str) -> Any:
        original = getattr(SqlSendRepository, name)

        async def fail_once(self: SqlSendRepository, new: Any, *args: Any) -> Any:
            if not failed:
                failed.append(len(new))
                raise RuntimeError(f"injected failure of a group's {name}")
            return await original(self, new, *args)

        return fail_once

    for name in ("insert", "write"):
        monkeypatch.setattr(SqlSendRepository, name, failing_once(name))
    bodies = [
        (client, {"client_msg_id": f"m{k}", "body": f"m{k}"}) for k in range(4) for client in (a, b)
    ]
    responses = await asyncio.gather(*(post(client, group, body) for client, body in bodies))
    assert [r.status_code for r in responses] == [201] * len(bodies), [r.text for r in responses]
    assert len(failed) == 1
    assert failed[0] > 1  # a real group failed, not a lone send
    assert sorted(r.json()["seq"] for r in responses) == list(range(1, len(bodies) + 1))
    async with app.wiring.database(write=False) as uow:
        conn = uow.conversations._conn
        count = await conn.execute(
            select(func.count())
            .select_from(messages)
            .where(messages.c.conversation_id == int(group))
        )
        assert count.scalar_one() == len(bodies)
    for client in (a, b):
        logged = [e["message"] for e in await log_of(client) if e["type"] == "message.created"]
        assert [m["seq"] for m in logged] == list(range(1, len(bodies) + 1))


# A 1x1 PNG: the upload's type is read from these bytes.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


async def test_one_upload_goes_with_one_message_of_a_group(
    app: App, served: Callable[[], AsyncClient]
) -> None:
    """Sends in one group that carry the same upload: one takes it, the others get 409,
    and the rest of the group is not affected."""
    (a, _, _), (_, b_id, _) = await signed_up(served, 2)
    group = (
        await a.request(
            "POST", CONVERSATIONS, json={"kind": "group", "title": "g", "member_ids": [b_id]}
        )
    ).json()["id"]
    shared = (await a.upload(PNG, filename="one.png")).id
    other = (await a.upload(PNG, filename="two.png")).id

    def text(tag: str, ids: list[str]) -> dict[str, Any]:
        return {
            "client_msg_id": f"{tag}-{uuid.uuid4().hex[:8]}",
            "body": tag,
            "attachment_ids": ids,
        }

    responses = await asyncio.gather(
        post(a, group, text("s1", [shared])),
        post(a, group, text("s2", [shared])),
        post(a, group, text("s3", [other])),
    )
    codes = [r.status_code for r in responses[:2]]
    assert sorted(codes) == [201, 409], [r.text for r in responses]
    loser = responses[codes.index(409)]
    assert loser.json()["error"]["code"] == "attachment_already_sent"
    winner = responses[codes.index(201)].json()
    assert [x["id"] for x in winner["attachments"]] == [shared]
    assert responses[2].status_code == 201, responses[2].text
    assert [x["id"] for x in responses[2].json()["attachments"]] == [other]
    history = (
        await a.request("GET", f"{CONVERSATIONS}/{group}/messages", params={"limit": 100})
    ).json()["items"]
    carried = sorted(x["id"] for m in history for x in m["attachments"])
    assert carried == sorted([shared, other])


def test_a_send_group_runs_a_fixed_small_number_of_statements(
    stack: str, register: Callable[..., Any], count_queries: Callable[[], Any]
) -> None:
    """A group's statements whatever its size (decision 0055; BEGIN and COMMIT not
    counted). PostgreSQL: the locks, one read (members, earlier sends, the direct peer),
    one write (messages, last_seq, read pointers, stream, logs); SQLite one statement a
    table, on the driver. Pins only go down."""
    a, b = register(), register()
    direct_id = a.client.request(
        "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [b.id]}
    ).json()["id"]
    with count_queries() as statements:
        sent = a.client.request(
            "POST",
            f"{CONVERSATIONS}/{direct_id}/messages",
            json={"client_msg_id": "pinned", "body": "hello"},
        )
    assert sent.status_code == 201
    assert len(statements) <= (3 if stack == "postgres" else 11), statements
    # And it did what a send does: the message, numbered, in both members' logs.
    assert sent.json()["seq"] == 1
    for client in (a.client, b.client):
        page = client.request("GET", "/v1/sync", params={"limit": 100}).json()
        logged = [i["event"] for i in page["items"] if i["event"]["type"] == "message.created"]
        assert [e["message"]["body"] for e in logged] == ["hello"]
