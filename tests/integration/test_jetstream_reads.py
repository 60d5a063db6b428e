"""JetStream reads (stream/jetstream.py ``read``) against a real NATS server: the gets go
in batches, and whatever the batch sizes, a read returns the events after its position
of the types asked for, in order, each once, up to its limit, and nothing past an event
it has not returned. NATS comes from ``SOCIUS_TEST_NATS_URL`` (skipped without it, an
error under CI)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from socius.domain.stream import DomainEvent
from socius.stream.jetstream import JetStreamEventStream

NATS_URL = os.environ.get("SOCIUS_TEST_NATS_URL", "")

pytestmark = pytest.mark.nats


@pytest.fixture
async def stream() -> AsyncIterator[JetStreamEventStream]:
    if not NATS_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("NATS is required under CI but SOCIUS_TEST_NATS_URL is unset")
        pytest.skip("NATS not configured (SOCIUS_TEST_NATS_URL)")
    name = "TEST_READS_" + secrets.token_hex(4).upper()
    made = JetStreamEventStream(NATS_URL, stream=name, subject_prefix=f"test-reads-{name}.")
    await made.start()
    yield made
    await made.delete()
    await made.close()


def events(n: int) -> list[DomainEvent]:
    """Every third one a reaction, the others messages."""
    now = datetime.now(UTC)
    return [
        DomainEvent(
            1_000 + i,
            "message.reacted" if i % 3 == 2 else "message.created",
            now,
            {"message_id": str(i)},
            i,
        )
        for i in range(n)
    ]


def ids(found: list[object]) -> list[int]:
    return [item.event.id for item in found]  # type: ignore[attr-defined]


async def test_reads_return_each_event_after_the_position_once_in_order(
    stream: JetStreamEventStream,
) -> None:
    made = events(150)
    assert await stream.read(after=0, limit=10) == []  # nothing yet
    await stream.publish(made)
    everything = await stream.read(after=0, limit=1_000)
    assert ids(everything) == [e.id for e in made]
    assert [item.position for item in everything] == list(range(1, 151))

    # Several types: all read, those asked for kept; limits cut anywhere.
    both = ["message.created", "message.reacted"]
    for after, limit in [(0, 1), (0, 2), (0, 7), (5, 33), (100, 1_000), (149, 5), (150, 5)]:
        found = await stream.read(after=after, types=both, limit=limit)
        assert ids(found) == [e.id for e in made[after:][:limit]]

    # One type: filtered by the server, so the sequences it finds have gaps.
    created = [e for i, e in enumerate(made) if i % 3 != 2]
    for after, limit in [(0, 1), (0, 64), (2, 9), (70, 1_000), (150, 3)]:
        found = await stream.read(after=after, types=["message.created"], limit=limit)
        assert ids(found) == [e.id for i, e in enumerate(made) if i % 3 != 2 and i >= after][:limit]
        assert len({item.position for item in found}) == len(found)
    assert len(await stream.read(after=0, types=["message.created"], limit=1_000)) == len(created)

    # A read that ends where the stream does: the next one takes what came after.
    first = await stream.read(after=0, limit=1_000)
    more = events(160)[150:]
    await stream.publish(more)
    rest = await stream.read(after=first[-1].position, limit=1_000)
    assert ids(rest) == [e.id for e in more]


async def test_batched_gets_are_not_many_more_than_the_events_read(
    stream: JetStreamEventStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a read costs, in gets: one per event and at most one batch more when the
    events follow each other; when the server filters out most of the stream (a sparse
    type), gets that find the same message again stay within one more per event."""
    now = datetime.now(UTC)
    made = [
        DomainEvent(2_000 + i, "graph.blocked" if i % 10 == 9 else "message.created", now, {}, None)
        for i in range(300)
    ]
    await stream.publish(made)
    await stream.start()
    nc = stream._nc
    assert nc is not None
    gets = 0
    request = nc.request

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal gets
        gets += 1
        return await request(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(nc, "request", counted)
    everything = await stream.read(after=0, limit=1_000)
    assert len(everything) == 300
    assert gets <= 300 + 32
    gets = 0
    sparse = await stream.read(after=0, types=["graph.*"], limit=1_000)
    assert [item.event.id for item in sparse] == [e.id for e in made if e.type == "graph.blocked"]
    assert gets <= 2 * len(sparse) + 2
