"""Reads of the JetStream event stream that go on where they stopped (the notifier's
rounds) keep one pull consumer between reads, and still see every event once, in order:
across batches, after the server dropped that consumer, from an earlier position again
(a round that did not commit), and filtered by type."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from conftest import NATS_URL, require_service
from socius.domain.stream import DomainEvent
from socius.stream.jetstream import JetStreamEventStream

EVENTS = 45


async def _consumers(stream: JetStreamEventStream) -> list[str]:
    js = await stream._context()
    return [c.name for c in await js.consumers_info(stream.stream_name)]


async def test_reads_that_go_on_keep_one_consumer_and_miss_nothing() -> None:
    require_service(NATS_URL, "nats")
    tag = secrets.token_hex(4)
    stream = JetStreamEventStream(
        NATS_URL,
        stream=f"SOCIUS_TEST_{tag.upper()}",
        subject_prefix=f"socius-test.{tag}.events.",
    )
    try:
        now = datetime.now(UTC)
        events = [
            DomainEvent(
                1000 + i,
                "message.created" if i % 3 else "message.reacted",
                now,
                {"n": i},
            )
            for i in range(EVENTS)
        ]
        await stream.publish(events)

        seen: list[int] = []
        after = 0
        while batch := await stream.read(
            after=after, types=["message.created", "message.reacted"], limit=7
        ):
            seen += [item.event.id for item in batch]
            after = batch[-1].position
            assert len(await _consumers(stream)) == 1  # the same one, read after read
        assert seen == [e.id for e in events]

        # The server let the consumer go (a quiet minute): the next read makes another.
        js = await stream._context()
        for name in await _consumers(stream):
            await js.delete_consumer(stream.stream_name, name)
        await stream.publish([DomainEvent(2000, "message.created", now, {"n": EVENTS})])
        again = await stream.read(
            after=after, types=["message.created", "message.reacted"], limit=7
        )
        assert [item.event.id for item in again] == [2000]

        # A round that did not commit reads from its old position again: the same events.
        first = await stream.read(after=0, types=["message.created", "message.reacted"], limit=10)
        assert [item.event.id for item in first] == [e.id for e in events[:10]]

        # One type: filtered on the server, positions skip the others.
        reacted = await stream.read(after=0, types=["message.reacted"], limit=100)
        assert [item.event.id for item in reacted] == [
            e.id for e in events if e.type == "message.reacted"
        ]
        assert len(await _consumers(stream)) <= 8
    finally:
        await stream.delete()
        await stream.close()
