"""NatsBus and RedisBus against real brokers: the bus contract (the same cases as
MemoryBus, from tests/unit/bus/test_bus_memory.py), plus what only a networked bus has.

NATS and Redis come from ``SOCIUS_TEST_NATS_URL`` / ``SOCIUS_TEST_REDIS_URL``; without
them these tests are skipped, except under CI (``CI=true``), where a missing broker is an
error. Every test works under a subject prefix of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from socius.bus.nats import NatsBus
from socius.bus.redis import RedisBus
from unit.bus.test_bus_memory import WAIT, Bus, BusContract, Inbox, MakeBus

NATS_URL = os.environ.get("SOCIUS_TEST_NATS_URL", "")
REDIS_URL = os.environ.get("SOCIUS_TEST_REDIS_URL", "")
IN_CI = os.environ.get("CI") == "true"

BROKERS = [
    pytest.param("nats", marks=pytest.mark.nats),
    pytest.param("redis", marks=pytest.mark.redis),
]


def require(broker: str) -> str:
    url = NATS_URL if broker == "nats" else REDIS_URL
    if not url:
        if IN_CI:
            pytest.fail(
                f"{broker} is required under CI but SOCIUS_TEST_{broker.upper()}_URL is unset"
            )
        pytest.skip(f"{broker} not configured (SOCIUS_TEST_{broker.upper()}_URL)")
    return url


def new_bus(broker: str, url: str, prefix: str, **options: object) -> Bus:
    if broker == "nats":
        return NatsBus(url, prefix=prefix, **options)  # type: ignore[arg-type]
    return RedisBus(url, prefix=prefix, **options)  # type: ignore[arg-type]


def unique_prefix() -> str:
    return f"socius-test.{secrets.token_hex(6)}."


def dead_port() -> int:
    """A local port where nothing listens (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_bus(broker: str) -> AsyncIterator[MakeBus]:
    url = require(broker)
    prefix = unique_prefix()
    made: list[Bus] = []

    async def make() -> Bus:
        made.append(new_bus(broker, url, prefix))
        await made[-1].start()
        return made[-1]

    yield make
    for bus in made:
        await bus.close()


@pytest.fixture
def dead_bus(broker: str) -> Bus:
    url = (
        f"nats://127.0.0.1:{dead_port()}"
        if broker == "nats"
        else f"redis://127.0.0.1:{dead_port()}/0"
    )
    return new_bus(broker, url, unique_prefix(), timeout=0.5)


class TestBrokerBus(BusContract):
    pass


async def test_nats_flush_waits_until_the_server_has_every_publish() -> None:
    url = require("nats")
    prefix = unique_prefix()
    a, b = NatsBus(url, prefix=prefix), NatsBus(url, prefix=prefix)
    await a.start()
    await b.start()
    try:
        inbox = Inbox()
        await b.subscribe("user.1", inbox)
        for i in range(10):
            await a.publish("user.1", b"%d" % i)
        await a.flush()
        assert await inbox.wait_for(10) == [b"%d" % i for i in range(10)]
    finally:
        await a.close()
        await b.close()


class Direct:
    """A handler with ``now``: NatsBus calls it as it reads, without a task of its own."""

    def __init__(self, fail_on: bytes = b"") -> None:
        self.items: list[bytes] = []
        self.awaited = 0
        self.fail_on = fail_on
        self.changed = asyncio.Event()

    async def __call__(self, payload: bytes) -> None:
        self.awaited += 1
        self.now(payload)

    def now(self, payload: bytes) -> None:
        self.items.append(payload)
        self.changed.set()
        if payload == self.fail_on:
            raise RuntimeError("a handler bug")

    async def wait_for(self, n: int) -> list[bytes]:
        async with asyncio.timeout(WAIT):
            while len(self.items) < n:
                self.changed.clear()
                await self.changed.wait()
        return list(self.items)


async def test_nats_calls_a_handlers_now_in_order_and_stops_at_unsubscribe() -> None:
    url = require("nats")
    prefix = unique_prefix()
    a, b = NatsBus(url, prefix=prefix), NatsBus(url, prefix=prefix)
    await a.start()
    await b.start()
    try:
        one, two, plain = Direct(fail_on=b"4"), Direct(), Inbox()
        sub = await b.subscribe("user.1", one)
        await b.subscribe("user.2", two)
        await b.subscribe("user.1", plain)  # a plain handler on the same subject still works
        await a.publish_many([(f"user.{1 + i % 2}", b"%d" % i) for i in range(20)])
        await a.flush()
        # In publish order; a handler that raises loses nothing after it.
        assert await one.wait_for(10) == [b"%d" % i for i in range(0, 20, 2)]
        assert await two.wait_for(10) == [b"%d" % i for i in range(1, 20, 2)]
        assert await plain.wait_for(10) == [b"%d" % i for i in range(0, 20, 2)]
        assert one.awaited == two.awaited == 0  # never through nats-py's task
        await sub.unsubscribe()
        await a.publish_many([("user.1", b"late"), ("user.2", b"20")])
        await a.flush()
        assert await two.wait_for(11) == [b"%d" % i for i in range(1, 20, 2)] + [b"20"]
        await b.ping()  # a round trip after the late publish: it has arrived, or never will
        assert b"late" not in one.items
    finally:
        await a.close()
        await b.close()


async def test_the_redis_reader_survives_a_reconnect() -> None:
    url = require("redis")
    prefix, name = unique_prefix(), f"socius-test-{secrets.token_hex(6)}"
    a, b = RedisBus(url, prefix=prefix), RedisBus(url, prefix=prefix, name=name)
    await a.start()
    await b.start()
    admin = aioredis.Redis.from_url(url)
    try:
        inbox, fresh = Inbox(), Inbox()
        await b.subscribe("user.1", inbox)
        await a.publish("user.1", b"before")
        await inbox.wait_for(1)

        killed = [c["id"] for c in await admin.client_list() if c.get("name") == name]
        assert len(killed) == 1  # b's one pub/sub connection
        await admin.client_kill_filter(_id=killed[0])

        # Publishes made while b reconnects are lost (best effort): retry until one lands.
        async with asyncio.timeout(WAIT):
            while b"after" not in inbox.items:
                await a.publish("user.1", b"after")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(inbox.wait_for(len(inbox.items) + 1), 0.2)
        now = [c["id"] for c in await admin.client_list() if c.get("name") == name]
        assert len(now) == 1
        assert now != killed

        await b.subscribe("user.2", fresh)  # the reconnected reader takes new channels
        await a.publish("user.2", b"fresh")
        assert await fresh.wait_for(1) == [b"fresh"]
        await b.ping()
    finally:
        await admin.aclose()
        await a.close()
        await b.close()
