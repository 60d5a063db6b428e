"""JetStream read micro-benchmark: CPU per event of ``JetStreamEventStream.read`` (decision
0043) against nats-py's ``get_msg`` one event at a time (the read before it).

    .venv/bin/python bench/stream_read_cost.py --nats nats://127.0.0.1:4222

Measured in this process (the reader's side; the NATS server's own CPU is not in it): a
stream of its own with ``--events`` events of two types, read from the start with both
types (every event, as the notifier reads), best and median of ``--repeats`` reads each.
The stream is removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from datetime import UTC, datetime

from nats.js.errors import NotFoundError

from socius.domain.stream import DomainEvent, StreamedEvent, type_matches
from socius.stream.jetstream import JetStreamEventStream, decode_event

TYPES = ["message.created", "message.reacted"]


async def one_by_one(stream: JetStreamEventStream, after: int, limit: int) -> list[StreamedEvent]:
    """The read before decision 0043: nats-py's ``get_msg``, one event per round trip."""
    js = await stream._context()
    subject = stream.subject(">")
    found: list[StreamedEvent] = []
    seq = after + 1
    while len(found) < limit:
        try:
            msg = await js.get_msg(stream.stream_name, seq=seq, next=True, subject=subject)
        except NotFoundError:
            break
        position = int(msg.seq or seq)
        if msg.data is not None:
            event = decode_event(msg.data)
            if type_matches(event.type, TYPES):
                found.append(StreamedEvent(position, event))
        seq = position + 1
    return found


async def main(url: str, events: int, repeats: int) -> dict[str, object]:
    name = "BENCH_READS_" + secrets.token_hex(4).upper()
    stream = JetStreamEventStream(url, stream=name, subject_prefix=f"bench-reads-{name}.")
    await stream.start()
    try:
        now = datetime.now(UTC)
        await stream.publish(
            [
                DomainEvent(
                    10_000 + i,
                    TYPES[i % 7 == 6],
                    now,
                    {"message_id": str(i), "conversation_id": "7", "sender_id": "9"},
                    i,
                )
                for i in range(events)
            ]
        )
        cpu: dict[str, list[float]] = {"get_msg one by one": [], "read (0043)": []}
        for _ in range(repeats):
            for label in cpu:
                start = time.process_time()
                if label == "read (0043)":
                    got = await stream.read(after=0, types=TYPES, limit=events)
                else:
                    got = await one_by_one(stream, 0, events)
                cpu[label].append((time.process_time() - start) / events * 1e6)
                assert [g.position for g in got] == list(range(1, events + 1))
        return {
            label: {"best_us": round(min(v), 1), "median_us": round(sorted(v)[len(v) // 2], 1)}
            for label, v in cpu.items()
        }
    finally:
        await stream.delete()
        await stream.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=10)
    ns = parser.parse_args()
    print(json.dumps(asyncio.run(main(ns.nats, ns.events, ns.repeats)), indent=2))
