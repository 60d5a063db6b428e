"""MemoryBus: the bus contract (``BusContract``, which tests/integration/test_bus_brokers.py
runs on NATS and Redis too), plus what only the in-process bus has.

A contract test gets ``make_bus`` (an async factory: each call is another started "node"
on the same broker, under a subject prefix unique to the test) and ``dead_bus`` (a bus
whose broker cannot be reached). Deliveries are awaited with timeouts, never by sleeping.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from socius.bus.memory import MemoryBroker, MemoryBus
from socius.domain.errors import BusUnavailable

Bus = Any  # MemoryBus, NatsBus or RedisBus: the structural Bus port
MakeBus = Callable[[], Awaitable[Bus]]

WAIT = 10.0  # seconds a delivery may take before the test fails


class Inbox:
    """A handler that records payloads; ``wait_for`` returns once ``count`` have come."""

    def __init__(self, *, fail_on: bytes | None = None) -> None:
        self.items: list[bytes] = []
        self._fail_on = fail_on
        self._changed = asyncio.Event()

    async def __call__(self, payload: bytes) -> None:
        self.items.append(payload)
        self._changed.set()
        if payload == self._fail_on:
            raise RuntimeError("handler failure (expected by the test)")

    async def wait_for(self, count: int, seconds: float = WAIT) -> list[bytes]:
        try:
            async with asyncio.timeout(seconds):
                while len(self.items) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"got {len(self.items)} of {count} payloads within {seconds}s")
        return self.items


def subject() -> str:
    return f"user.{secrets.randbelow(10**12)}"


def other_tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current and not t.done()}


class BusContract:
    """What every Bus implementation does. Subclasses provide ``make_bus`` and ``dead_bus``."""

    async def test_publish_reaches_a_subscriber(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        inbox = Inbox()
        await bus.subscribe("user.1", inbox)
        await bus.publish("user.1", b"hello")
        assert await inbox.wait_for(1) == [b"hello"]

    async def test_publish_many_reaches_each_subject_in_order(self, make_bus: MakeBus) -> None:
        sender, receiver = await make_bus(), await make_bus()
        first, second = Inbox(), Inbox()
        await receiver.subscribe("user.1", first)
        await receiver.subscribe("user.2", second)
        items = [(f"user.{1 + k % 2}", b"m%d" % k) for k in range(10)] + [("user.3", b"none")]
        await sender.publish_many(items)
        assert await first.wait_for(5) == [b"m0", b"m2", b"m4", b"m6", b"m8"]
        assert await second.wait_for(5) == [b"m1", b"m3", b"m5", b"m7", b"m9"]
        await sender.publish_many([])

    async def test_publish_many_on_a_dead_bus_is_unavailable(self, dead_bus: Bus) -> None:
        with pytest.raises(BusUnavailable):
            await dead_bus.publish_many([("user.1", b"lost")])

    async def test_a_publish_on_one_node_reaches_another_node_on_its_subjects_only(
        self, make_bus: MakeBus
    ) -> None:
        a, b = await make_bus(), await make_bus()
        on_b1, on_b2, on_a3 = Inbox(), Inbox(), Inbox()
        await b.subscribe("user.1", on_b1)
        await b.subscribe("user.2", on_b2)
        await a.subscribe("user.3", on_a3)

        await a.publish("user.1", b"one")
        await a.publish("user.2", b"two")
        await a.publish("user.3", b"three")  # a node hears its own publishes too
        await a.publish("user.4", b"nobody")  # no subscriber anywhere
        await b.publish("user.1", b"one again")

        # Order holds per publisher; two publishers' messages may interleave either way.
        assert sorted(await on_b1.wait_for(2)) == [b"one", b"one again"]
        assert await on_b2.wait_for(1) == [b"two"]
        assert await on_a3.wait_for(1) == [b"three"]
        # Sentinels after everything: nothing else arrived meanwhile.
        await a.publish("user.1", b"end")
        await a.publish("user.2", b"end")
        assert (await on_b1.wait_for(3))[2] == b"end"
        assert await on_b2.wait_for(2) == [b"two", b"end"]
        assert on_a3.items == [b"three"]

    async def test_order_per_subject_is_kept_for_1000_messages(self, make_bus: MakeBus) -> None:
        a, b = await make_bus(), await make_bus()
        first, second = Inbox(), Inbox()
        await b.subscribe("user.10", first)
        await b.subscribe("user.20", second)
        for i in range(1000):
            await a.publish("user.10", b"%d" % i)
            if i % 3 == 0:
                await a.publish("user.20", b"%d" % i)
        assert await first.wait_for(1000) == [b"%d" % i for i in range(1000)]
        assert await second.wait_for(334) == [b"%d" % i for i in range(0, 1000, 3)]

    async def test_unsubscribe_stops_delivery(self, make_bus: MakeBus) -> None:
        a, b = await make_bus(), await make_bus()
        gone, sentinel = Inbox(), Inbox()
        sub = await b.subscribe("user.1", gone)
        await b.subscribe("user.2", sentinel)
        await a.publish("user.1", b"before")
        assert await gone.wait_for(1) == [b"before"]

        await sub.unsubscribe()
        await sub.unsubscribe()  # twice is harmless
        await a.publish("user.1", b"after")
        await a.publish("user.2", b"sentinel")  # published after "after", by the same node
        await sentinel.wait_for(1)
        assert gone.items == [b"before"]

    async def test_many_subscribers_of_one_subject_on_one_node(self, make_bus: MakeBus) -> None:
        a, b = await make_bus(), await make_bus()
        inboxes = [Inbox() for _ in range(3)]
        subs = [await b.subscribe("user.1", inbox) for inbox in inboxes]
        await a.publish("user.1", b"x")
        for inbox in inboxes:
            assert await inbox.wait_for(1) == [b"x"]

        await subs[1].unsubscribe()
        await a.publish("user.1", b"y")
        assert await inboxes[0].wait_for(2) == [b"x", b"y"]
        assert await inboxes[2].wait_for(2) == [b"x", b"y"]
        assert inboxes[1].items == [b"x"]

        # The same handler twice is two subscriptions: it is called twice.
        twice = Inbox()
        await b.subscribe("user.5", twice)
        await b.subscribe("user.5", twice)
        await a.publish("user.5", b"z")
        assert await twice.wait_for(2) == [b"z", b"z"]

    async def test_a_failing_handler_does_not_stop_later_deliveries(
        self, make_bus: MakeBus
    ) -> None:
        a, b = await make_bus(), await make_bus()
        failing, neighbour = Inbox(fail_on=b"boom"), Inbox()
        await b.subscribe("user.1", failing)
        await b.subscribe("user.1", neighbour)
        for payload in (b"boom", b"ok", b"boom", b"still ok"):
            await a.publish("user.1", payload)
        assert await failing.wait_for(4) == [b"boom", b"ok", b"boom", b"still ok"]
        assert await neighbour.wait_for(4) == [b"boom", b"ok", b"boom", b"still ok"]

    async def test_a_handler_may_publish_and_subscribe(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        relayed, late = Inbox(), Inbox()

        async def relay(payload: bytes) -> None:
            await bus.publish("user.2", b"relayed " + payload)
            await bus.subscribe("user.3", late)

        await bus.subscribe("user.1", relay)
        await bus.subscribe("user.2", relayed)
        await bus.publish("user.1", b"x")
        assert await relayed.wait_for(1) == [b"relayed x"]
        await bus.publish("user.3", b"y")
        assert await late.wait_for(1) == [b"y"]

    async def test_ping_answers_while_connected(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        await bus.ping()

    async def test_close_is_clean(self, make_bus: MakeBus) -> None:
        before = other_tasks()
        a, b = await make_bus(), await make_bus()
        inbox = Inbox()
        sub = await b.subscribe("user.1", inbox)
        for i in range(100):  # some may still be in flight when the buses close
            await a.publish("user.1", b"%d" % i)
        await inbox.wait_for(1)

        await b.close()
        await a.close()
        await a.close()  # twice is harmless
        await sub.unsubscribe()  # after close too
        assert other_tasks() <= before
        for bus in (a, b):
            with pytest.raises(BusUnavailable):
                await bus.publish("user.1", b"late")
            with pytest.raises(BusUnavailable):
                await bus.subscribe("user.1", inbox)
            with pytest.raises(BusUnavailable):
                await bus.ping()

    async def test_an_unreachable_broker_raises_bus_unavailable(self, dead_bus: Bus) -> None:
        async def start_and_publish() -> None:
            await dead_bus.start()
            await dead_bus.publish("user.1", b"lost")

        with pytest.raises(BusUnavailable):
            await start_and_publish()
        await dead_bus.close()

    async def test_a_bus_that_is_not_running_refuses_use(self, dead_bus: Bus) -> None:
        with pytest.raises(BusUnavailable):
            await dead_bus.publish("user.1", b"early")
        with pytest.raises(BusUnavailable):
            await dead_bus.subscribe("user.1", Inbox())
        with pytest.raises(BusUnavailable):
            await dead_bus.ping()
        await dead_bus.close()


# ------------------------------------------------------------------------------- memory


@pytest.fixture
async def make_bus() -> AsyncIterator[MakeBus]:
    broker = MemoryBroker()
    made: list[MemoryBus] = []

    async def make() -> MemoryBus:
        made.append(MemoryBus(broker=broker))
        await made[-1].start()
        return made[-1]

    yield make
    for bus in made:
        await bus.close()


@pytest.fixture
async def dead_bus() -> MemoryBus:
    # In process there is no broker to lose: a closed bus stands in for one.
    bus = MemoryBus()
    await bus.close()
    return bus


class TestMemoryBus(BusContract):
    pass


async def test_a_bus_refuses_use_before_start() -> None:
    bus = MemoryBus()
    with pytest.raises(BusUnavailable):
        await bus.publish("user.1", b"early")
    with pytest.raises(BusUnavailable):
        await bus.subscribe("user.1", Inbox())
    await bus.start()
    await bus.ping()
    await bus.close()


async def test_buses_on_different_brokers_do_not_hear_each_other() -> None:
    a, b = MemoryBus(), MemoryBus()
    await a.start()
    await b.start()
    inbox, own = Inbox(), Inbox()
    await b.subscribe("user.1", inbox)
    await a.subscribe("user.1", own)
    await a.publish("user.1", b"x")
    await own.wait_for(1)
    assert inbox.items == []
    await a.close()
    await b.close()


async def test_a_full_queue_drops_instead_of_blocking_the_publisher() -> None:
    bus = MemoryBus(max_pending=2)
    await bus.start()
    inbox = Inbox()
    await bus.subscribe("user.1", inbox)
    for i in range(5):  # the dispatcher cannot run in between: no await suspends
        await bus.publish("user.1", b"%d" % i)
    assert await inbox.wait_for(2) == [b"0", b"1"]
    await bus.publish("user.1", b"later")
    assert await inbox.wait_for(3) == [b"0", b"1", b"later"]
    await bus.close()


async def test_a_handler_may_close_its_bus() -> None:
    bus = MemoryBus()
    await bus.start()

    async def close(_payload: bytes) -> None:
        await bus.close()

    async def ping_until_closed() -> None:
        async with asyncio.timeout(WAIT):
            while True:
                await bus.ping()
                await asyncio.sleep(0)

    await bus.subscribe("user.1", close)
    await bus.publish("user.1", b"x")
    with pytest.raises(BusUnavailable):
        await ping_until_closed()
