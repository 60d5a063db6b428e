"""End to end, on real ``socius serve`` processes: live delivery across nodes over the bus
(NATS, or Redis pub/sub), and resuming with a cursor after a node dies (SIGKILL) or
restarts (SIGTERM), with nothing lost and nothing repeated (docs/realtime.md, decision 0004).

Every wait is bounded by ``asyncio.timeout``; a sleep only ever paces the sender or polls.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from e2e.cluster import Cluster, Node
from socius.client import AsyncClient, RealtimeClient, RealtimeClosed, SyncItem
from socius.services.delivery import shard_subject

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

WAIT = 15.0  # seconds any single expectation may take before the test fails
PASSWORD = "correct horse battery staple"
STREAM = 200  # messages in the SIGKILL test


@dataclass
class User:
    client: AsyncClient
    id: str
    node: Node

    @property
    def token(self) -> str:
        assert self.client.access_token is not None
        return self.client.access_token


Register = Callable[[Node], Awaitable[User]]


@pytest.fixture
async def people() -> AsyncIterator[Register]:
    """Register a fresh account through a node; its client talks to that node."""
    clients: list[AsyncClient] = []

    async def register(node: Node) -> User:
        client = AsyncClient(node.http_url, timeout=WAIT)
        clients.append(client)
        auth = await client.register(f"e2e_{secrets.token_hex(6)}", PASSWORD)
        return User(client, auth.user.id, node)

    yield register
    for client in clients:
        await client.aclose()


# ------------------------------------------------------------------------------ helpers


def message_of(frame: dict[str, Any], conversation_id: str) -> dict[str, Any] | None:
    """The message of a ``message.created`` event frame in that conversation, else None."""
    event = frame.get("event") or {}
    if frame.get("type") != "event" or event.get("type") != "message.created":
        return None
    message: dict[str, Any] = event["message"]
    return message if message["conversation_id"] == conversation_id else None


async def next_message(rt: RealtimeClient, conversation_id: str) -> dict[str, Any]:
    """Read frames until the next ``message.created`` of the conversation; its frame."""
    async with asyncio.timeout(WAIT):
        while True:
            frame = await rt.recv()
            if message_of(frame, conversation_id) is not None:
                return frame


async def sync_all(client: AsyncClient, cursor: str | None = None) -> list[SyncItem]:
    """Every event of the caller's log after ``cursor``, through GET /v1/sync."""
    items: list[SyncItem] = []
    while True:
        page = await client.sync(cursor, limit=100)
        if not page.items:
            return items
        items += page.items
        cursor = page.next_cursor


def logged(frames: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(cursor, event) of the frames that carry a log position, as /v1/sync lists them."""
    return [(f["cursor"], f["event"]) for f in frames if f.get("type") == "event" and "cursor" in f]


async def drain_until_pong(rt: RealtimeClient) -> list[dict[str, Any]]:
    """Ping, and return every frame the server queued before the pong."""
    await rt.ping()
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT):
        while (frame := await rt.recv())["type"] != "pong":
            seen.append(frame)
    return seen


async def until_closed(
    rt: RealtimeClient, frames: list[dict[str, Any]] | None = None
) -> RealtimeClosed:
    """Read (into ``frames``) until the socket ends; how it ended."""
    async with asyncio.timeout(WAIT):
        while True:
            try:
                frame = await rt.recv()
            except RealtimeClosed as closed:
                return closed
            if frames is not None:
                frames.append(frame)


async def send(user: User, conversation_id: str, body: str) -> int:
    message = await user.client.send_message(
        conversation_id, body, client_msg_id=secrets.token_hex(8)
    )
    return message.seq


# -------------------------------------------------------------------------------- tests


async def test_events_cross_nodes_in_both_directions(cluster: Cluster, people: Register) -> None:
    a, b = await cluster.start("a", "b")
    alice, bob = await people(a), await people(b)
    conversation = (await bob.client.open_direct(alice.id)).id

    async with (
        RealtimeClient(a.ws_url, alice.token) as alice_rt,
        RealtimeClient(b.ws_url, bob.token) as bob_rt,
    ):
        alice_ready, bob_ready = alice_rt.cursor, bob_rt.cursor

        # Bob sends through node B; Alice, connected to node A, gets it live.
        sent = await bob.client.send_message(conversation, "hello from b", client_msg_id="b-1")
        frame = await next_message(alice_rt, conversation)
        got = frame["event"]["message"]
        assert (got["id"], got["seq"], got["body"], got["sender_id"]) == (
            sent.id,
            1,
            "hello from b",
            bob.id,
        )

        # And back: Alice sends through node A; Bob, on node B, gets his own copy, then hers.
        reply = await alice.client.send_message(conversation, "hi from a", client_msg_id="a-1")
        assert reply.seq == 2
        bob_frames = [await next_message(bob_rt, conversation) for _ in range(2)]
        assert [
            (f["event"]["message"]["seq"], f["event"]["message"]["body"]) for f in bob_frames
        ] == [
            (1, "hello from b"),
            (2, "hi from a"),
        ]
        alice_own = await next_message(alice_rt, conversation)
        assert alice_own["event"]["message"]["id"] == reply.id

        # What each socket delivered is exactly the log, position for position.
        for user, ready, frames in (
            (alice, alice_ready, [frame, alice_own]),
            (bob, bob_ready, bob_frames),
        ):
            log = [(i.cursor, i.event) for i in await sync_all(user.client, ready)]
            assert logged(frames) == log


async def test_sigkill_mid_stream_loses_and_repeats_nothing(
    cluster: Cluster, people: Register
) -> None:
    a, b = await cluster.start("a", "b")
    alice, bob = await people(b), await people(b)
    conversation = (await bob.client.open_direct(alice.id)).id
    before = await sync_all(alice.client)
    start = before[-1].cursor if before else None

    first = RealtimeClient(a.ws_url, alice.token, cursor=start)
    await first.connect()
    frames: list[dict[str, Any]] = list(first.replayed)

    kill_now = asyncio.Event()
    sent = sent_at_kill = 0

    async def stream() -> None:
        nonlocal sent
        for i in range(1, STREAM + 1):
            await send(bob, conversation, f"m{i}")
            sent = i
            if i == STREAM // 3:
                kill_now.set()
            await asyncio.sleep(0.005)  # a steady pace, not a wait for anything

    def count(some: list[dict[str, Any]]) -> int:
        return sum(1 for f in some if message_of(f, conversation))

    sender = asyncio.create_task(stream())
    try:
        # Node A dies a third of the way in: main process and worker, SIGKILL, no goodbye.
        async def killer() -> list[int]:
            await kill_now.wait()
            pids = a.kill()
            await a.wait_dead(pids)
            nonlocal sent_at_kill
            sent_at_kill = sent
            return pids

        killing = asyncio.create_task(killer())
        await until_closed(first, frames)
        pids = await killing
        assert len(pids) >= 2, f"expected Granian's main process and its worker, got {pids}"
        on_a = count(frames)

        # Alice resumes on node B from the last cursor she saw, while Bob keeps sending.
        second = RealtimeClient(b.ws_url, alice.token, cursor=first.cursor)
        await second.connect()
        replayed = count(second.replayed)
        frames += second.replayed
        sent_at_resume = sent
        async with asyncio.timeout(WAIT * 2):
            while count(frames) < STREAM:
                frames.append(await second.recv())
        async with asyncio.timeout(WAIT):
            await sender
        frames += await drain_until_pong(second)  # nothing further is on its way
        # Ground truth: the log from where Alice started, as GET /v1/sync reads it. The
        # notifier writes the notifications of messages sent while Alice was away after
        # those messages, on whichever node holds its lease (B, once A's has lapsed): the
        # log can still grow after the pong. So the socket must catch up with the log as
        # it was read, and every frame must be the log's next entry: in order, none twice.
        truth = [(i.cursor, i.event) for i in await sync_all(alice.client, start)]
        async with asyncio.timeout(WAIT * 2):
            while len(logged(frames)) < len(truth):
                frames.append(await second.recv())
        await second.close()
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        await first.close()

    split = (
        f"{on_a} live on A, {replayed} replayed on B, {count(frames) - on_a - replayed} live on B"
    )
    # The kill came mid-stream, and the stream went on after Alice resumed.
    assert on_a <= sent_at_kill < STREAM, split
    assert sent_at_resume < STREAM, split
    messages = [m for f in frames if (m := message_of(f, conversation))]
    assert [m["seq"] for m in messages] == list(range(1, STREAM + 1)), split
    assert [m["body"] for m in messages] == [f"m{i}" for i in range(1, STREAM + 1)]
    final = [(i.cursor, i.event) for i in await sync_all(alice.client, start)]
    assert logged(frames)[: len(truth)] == truth
    assert logged(frames) == final[: len(logged(frames))]


async def test_a_restarted_node_resumes_a_client_with_exactly_what_it_missed(
    cluster: Cluster, people: Register
) -> None:
    a, b = await cluster.start("a", "b")
    alice, bob = await people(a), await people(a)
    conversation = (await bob.client.open_direct(alice.id)).id

    rt = RealtimeClient(b.ws_url, alice.token)
    await rt.connect()
    try:
        for i in range(1, 4):
            assert await send(bob, conversation, f"before-{i}") == i
            assert (await next_message(rt, conversation))["event"]["message"]["seq"] == i
        cursor = rt.cursor

        # A graceful stop ends the socket (with which code: the next test's business).
        stopping = asyncio.create_task(b.terminate())
        after_stop: list[dict[str, Any]] = []
        await until_closed(rt, after_stop)
        assert not [f for f in after_stop if message_of(f, conversation)], after_stop
        assert await stopping == 0, "socius serve did not exit cleanly on SIGTERM"
        assert rt.cursor == cursor
    finally:
        await rt.close()

    # Meanwhile Bob goes on through node A.
    for i in range(4, 9):
        assert await send(bob, conversation, f"during-{i}") == i

    # Node B comes back on the same port; Alice resumes there with her cursor.
    await cluster.start("b")
    async with RealtimeClient(b.ws_url, alice.token, cursor=cursor) as resumed:
        assert [
            (m["seq"], m["body"]) for f in resumed.replayed if (m := message_of(f, conversation))
        ] == [(i, f"during-{i}") for i in range(4, 9)]
        missed = [(i.cursor, i.event) for i in await sync_all(alice.client, cursor)]
        assert logged(resumed.replayed) == missed
        # And live delivery works again on the restarted node.
        assert await send(bob, conversation, "after") == 9
        frame = await next_message(resumed, conversation)
        assert (frame["event"]["message"]["seq"], frame["event"]["message"]["body"]) == (9, "after")


@pytest.mark.parametrize("bus", ["redis"])  # the bus plays no part
async def test_a_graceful_stop_ends_sockets_promptly(cluster: Cluster, people: Register) -> None:
    """docs/realtime.md: at shutdown a socket is closed with 1001 or simply dropped (Granian
    closes connections before the app's shutdown runs); either way promptly, and the
    server exits cleanly. Resuming elsewhere is the multi-node tests' business."""
    (a,) = await cluster.start("a")
    alice = await people(a)
    async with RealtimeClient(a.ws_url, alice.token) as rt:
        stopping = asyncio.create_task(a.terminate())
        started = time.monotonic()
        closed = await until_closed(rt)
        took = time.monotonic() - started
        assert await stopping == 0
    assert closed.code in (1001, 1006, None), f"{closed} after {took:.1f} s"
    assert took < 5.0, f"the socket lingered {took:.1f} s after SIGTERM"


async def _ws_connections(node: Node) -> float:
    async with httpx.AsyncClient(timeout=WAIT) as http:
        text = (await http.get(f"{node.http_url}/metrics")).text
    found = re.search(r"^\w*ws_connections (\S+)$", text, re.MULTILINE)
    assert found, "no ws_connections gauge in /metrics"
    return float(found.group(1))


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds (bounded): for state that settles asynchronously."""
    deadline = time.monotonic() + WAIT
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("bus", ["redis"])  # NATS: its monitoring endpoint is not enabled
async def test_a_node_subscribes_only_the_shards_of_the_users_connected_to_it(
    cluster: Cluster, people: Register, redis_prefix: str
) -> None:
    # Events go by shard of their recipients (decision 0050): a node listens to the shard
    # subject of each user connected to it, once, and gives it up with the shard's last.
    a, b = await cluster.start("a", "b")
    alice, carol, bob = await people(a), await people(a), await people(b)
    channel = {
        u.id: f"{redis_prefix}{shard_subject(int(u.id))}".encode() for u in (alice, bob, carol)
    }
    redis = aioredis.Redis.from_url(cluster.env["SOCIUS_REDIS_URL"])

    async def subscribed() -> dict[bytes | str, int]:
        """Channel -> number of subscribers (nodes), for the delivery shards (every node
        also listens to its node-wide subjects: revocations, cache invalidations)."""
        names = await redis.pubsub_channels(f"{redis_prefix}deliver.*")
        if not names:
            return {}
        return dict(await redis.pubsub_numsub(*names))

    def listening(*held: tuple[Node, User]) -> dict[bytes | str, int]:
        """Channel -> nodes that listen to it when each node holds those users' sockets."""
        nodes: dict[bytes | str, set[str]] = {}
        for node, user in held:
            nodes.setdefault(channel[user.id], set()).add(node.name)
        return {c: len(n) for c, n in nodes.items()}

    def expect(*held: tuple[Node, User]) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await subscribed() == listening(*held)

        return check

    try:
        assert await subscribed() == {}  # nobody connected: no node listens to anyone
        # connect() returns after `ready`, and the subscription is made before the replay.
        alice_1 = RealtimeClient(a.ws_url, alice.token)
        await alice_1.connect()
        assert await subscribed() == listening((a, alice))
        alice_2 = RealtimeClient(a.ws_url, alice.token)
        await alice_2.connect()  # a second socket on the same node: still one subscription
        bob_rt = RealtimeClient(b.ws_url, bob.token)
        await bob_rt.connect()
        carol_rt = RealtimeClient(a.ws_url, carol.token)
        await carol_rt.connect()
        # One subscriber per node and shard: A listens to Alice's and Carol's, B to Bob's.
        everyone = ((a, alice), (b, bob), (a, carol))
        assert await subscribed() == listening(*everyone)

        # One of Alice's two sockets leaves: node A keeps listening for her.
        await alice_1.close()

        async def a_has_two() -> bool:
            return await _ws_connections(a) == 2

        await _eventually(a_has_two, "node A to count 2 sockets")
        assert await subscribed() == listening(*everyone)
        conversation = (await bob.client.open_direct(alice.id)).id
        await send(bob, conversation, "still here")  # live, well before the 30 s re-check
        assert (await next_message(alice_2, conversation))["event"]["message"]["body"] == (
            "still here"
        )

        # Her last socket leaves: A gives up her shard unless Carol's is the same one.
        await alice_2.close()
        await _eventually(expect((b, bob), (a, carol)), "Alice's shard to be given up")
        await bob_rt.close()
        await carol_rt.close()
        await _eventually(expect(), "every shard to be given up")
    finally:
        await redis.aclose()
