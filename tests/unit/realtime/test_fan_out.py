"""Events go on the bus by shard of their recipients (decision 0050): one bus message per
shard, each distinct event once in it with its recipients, and each node's hub hands every
event to the connections of its recipients there, in each user's order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from socius.bus.memory import MemoryBroker, MemoryBus
from socius.domain.events import Event
from socius.domain.ids import IdGenerator
from socius.realtime.hub import Hub
from socius.services.delivery import (
    SHARDS,
    Delivery,
    EncodedBusEvent,
    Fanned,
    shard_of,
    shard_subject,
)

NOW = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)


class _Bus:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def publish_many(self, items: list[tuple[str, bytes]]) -> None:
        self.sent += items


class _Socket:
    def __init__(self) -> None:
        self.got: list[EncodedBusEvent] = []

    def deliver(self, event: EncodedBusEvent) -> None:
        self.got.append(event)


def _delivery(bus: Any) -> Delivery:
    return Delivery(bus, lambda: NOW, IdGenerator(node_id=1))


def _message(body: str, members: list[int], first_seq: int) -> list[Event]:
    payload = {"message": {"body": body}}
    return [Event(u, "message.created", payload, first_seq, NOW, 1) for u in members]


def test_users_spread_over_every_shard_however_their_ids_were_made() -> None:
    # One id a millisecond (sequence 0: users registering one at a time), and many in one
    # millisecond (a bulk import): both spread evenly over the shards.
    ms, one_a_ms = 5_000_000, []
    for k in range(SHARDS * 20):
        ms += 1 + k % 7  # gaps of 1..7 ms
        one_a_ms.append((ms << 22) | (3 << 12))  # domain/ids.py: ms | node 3 | sequence 0
    burst = [(1_000_000 << 22) | (3 << 12) | seq for seq in range(SHARDS * 20)]
    for ids in (one_a_ms, burst):
        counts = [0] * SHARDS
        for user_id in ids:
            counts[shard_of(user_id)] += 1
        assert min(counts) >= 10, counts  # 20 each on average


def test_a_message_goes_once_per_shard_with_its_recipients_and_their_positions() -> None:
    a, b, c = 3, 3 + SHARDS, 4  # a and b share a shard
    items = _delivery(_Bus()).messages(_message("hi", [a, b, c], 10))
    assert sorted(s for s, _ in items) == sorted({shard_subject(a), shard_subject(c)})
    decoded = {s: msgspec.json.decode(p, type=list[Fanned]) for s, p in items}
    [shared] = decoded[shard_subject(a)]
    assert (shared.type, shared.users, shared.seqs) == ("message.created", [a, b], [10, 10])
    assert msgspec.json.decode(shared.payload) == {"message": {"body": "hi"}}
    assert shared.created_at == NOW
    [alone] = decoded[shard_subject(c)]
    assert (alone.users, alone.seqs) == ([c], [10])


def test_each_users_events_keep_their_order_within_a_shard_message() -> None:
    # One payload object for two events of user 1 (and one of user 2) with another event
    # of user 1 between them: the second use cannot join the first one's item.
    shared = {"n": 1}
    events = [
        Event(1, "x", shared, 1, NOW),
        Event(1, "y", {"n": 2}, 2, NOW),
        Event(1, "x", shared, 3, NOW),
        Event(1 + SHARDS, "x", shared, 7, NOW),
    ]
    [(_, payload)] = _delivery(_Bus()).messages(events)
    fanned = msgspec.json.decode(payload, type=list[Fanned])
    order = [(u, s) for f in fanned for u, s in zip(f.users, f.seqs or [], strict=True)]
    assert [s for u, s in order if u == 1] == [1, 2, 3]
    assert len(fanned) == 3  # user 1 + SHARDS joined the first item


async def test_a_node_delivers_to_the_connections_of_recipients_it_holds() -> None:
    broker = MemoryBroker()
    sender, node = MemoryBus(broker=broker), MemoryBus(broker=broker)
    await sender.start()
    await node.start()
    hub = Hub(node)
    here, there_too, elsewhere = 5, 5 + SHARDS, 6
    sockets = {u: _Socket() for u in (here, there_too)}
    second = _Socket()
    for user, socket in sockets.items():
        await hub.join(user, socket)
    await hub.join(here, second)
    delivery = _delivery(sender)
    await delivery.publish(_message("one", [here, there_too, elsewhere, 5 + 2 * SHARDS], 4))
    await delivery.ephemeral([here, elsewhere], "typing", {"conversation_id": "9"})
    await _until(lambda: len(second.got) == 2)
    got = [(e.type, e.seq, msgspec.json.decode(e.payload)) for e in sockets[here].got]
    assert got == [
        ("message.created", 4, {"message": {"body": "one"}}),
        ("typing", None, {"conversation_id": "9"}),
    ]
    assert [(e.type, e.seq) for e in second.got] == [("message.created", 4), ("typing", None)]
    assert [(e.type, e.seq) for e in sockets[there_too].got] == [("message.created", 4)]

    # The last user of a shard to leave gives up its subscription; the others keep theirs.
    await hub.leave(here, sockets[here])
    await hub.leave(here, second)
    await delivery.publish(_message("two", [here, there_too], 5))
    await _until(lambda: len(sockets[there_too].got) == 2)
    assert [e.seq for e in sockets[there_too].got] == [4, 5]
    assert len(sockets[here].got) == 2
    await hub.leave(there_too, sockets[there_too])
    assert hub.users() == []
    await sender.close()
    await node.close()


async def _until(done: Callable[[], bool]) -> None:
    """A few turns of the loop, until ``done`` (the memory bus hands over in its task)."""
    for _ in range(50):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("not delivered")


def test_an_event_is_rendered_once_for_its_recipients_on_a_node() -> None:
    from socius.realtime.gateway import Gateway

    rendered: list[str] = []

    def render(type_: str, payload: dict[str, Any]) -> dict[str, Any]:
        rendered.append(type_)
        return {"kind": type_, **payload}

    class _Inbox:
        async def positions(self, _users: list[int]) -> dict[int, int]:
            return {}

    none: Any = None
    gateway = Gateway(none, none, none, _Inbox(), none, render=render)  # type: ignore[arg-type]
    delivery = _delivery(_Bus())
    [(_, payload)] = delivery.messages(_message("hi", [1, 1 + SHARDS], 3))
    [fanned] = msgspec.json.decode(payload, type=list[Fanned])
    frames = {gateway.event_json(fanned.type, fanned.payload) for _ in fanned.users}
    assert frames == {'{"kind":"message.created","message":{"body":"hi"}}'}
    assert rendered == ["message.created"]
    # An equal payload that came in another bus message: still the kept rendering.
    again = msgspec.json.decode(payload, type=list[Fanned])[0].payload
    gateway.event_json(fanned.type, again)
    assert rendered == ["message.created"]


def test_a_shards_message_is_split_past_its_size_in_order() -> None:
    from socius.services.delivery import MAX_FANOUT_BYTES

    body = "x" * 3000  # ~3 KB a message: a few dozen fill a shard's message
    count = 3 * MAX_FANOUT_BYTES // 3000
    events = [e for n in range(count) for e in _message(f"{n}{body}", [1, 1 + SHARDS], n + 1)]
    items = _delivery(_Bus()).messages(events)
    assert len(items) >= 3
    assert {s for s, _ in items} == {shard_subject(1)}
    assert all(len(p) < MAX_FANOUT_BYTES + 4000 for _, p in items)
    seen = [(f.users, f.seqs) for _, p in items for f in msgspec.json.decode(p, type=list[Fanned])]
    assert seen == [([1, 1 + SHARDS], [n + 1, n + 1]) for n in range(count)]
