"""Live delivery's bus side alone: CPU µs per delivery from publish to the hub's hand-over.

    .venv/bin/python bench/fanout_cost.py                  # NATS at 127.0.0.1:4222
    PYTHONPATH=/tmp/other/src .venv/bin/python bench/fanout_cost.py   # another commit

One process is one node: a ``NatsBus``, the ``Hub`` with ``--users`` users joined (one
listener each that only counts), and ``Delivery`` publishing W2-shaped traffic after
"commit": ``--messages`` messages in groups of ``--group`` (a send group's events: each
message once per member of its conversation, 80% direct, 20% groups of 5..50), and for
each message a ``notification`` event per member but the sender, published per 200
messages (a notifier round). The figure is this process's CPU (``time.process_time``)
from the first publish until every delivery has reached its listener, ÷ deliveries: the
bus client's work both ways, the hub's, the publisher's encoding; no sockets, no
database. The NATS server's own CPU is not counted. Median of ``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from socius.bus.nats import NatsBus
from socius.domain.events import Event
from socius.domain.ids import IdGenerator
from socius.realtime.hub import Hub
from socius.services.delivery import Delivery


class _Count:
    def __init__(self) -> None:
        self.n = 0
        self.target = 0
        self.done = asyncio.Event()


class _Counter:
    __slots__ = ("count",)

    def __init__(self, count: _Count) -> None:
        self.count = count

    def deliver(self, _event: Any) -> None:
        count = self.count
        count.n += 1
        if count.n == count.target:
            count.done.set()


def _traffic(users: list[int], messages: int, rng: random.Random) -> tuple[list[list[Event]], int]:
    now = datetime.now(UTC)
    seq: dict[int, int] = {}
    out: list[list[Event]] = []
    notes: list[Event] = []
    total = 0
    for m in range(messages):
        k = 2 if rng.random() < 0.8 else rng.randint(5, 50)
        members = rng.sample(users, k)
        payload = {
            "message": {
                "id": str(10**15 + m),
                "conversation_id": str(10**14 + m % 997),
                "sender_id": str(members[0]),
                "body": "hello, this is a W2-sized message body " * 2,
                "seq": m,
                "created_at": now.isoformat(),
            }
        }
        events = []
        for u in sorted(members):
            seq[u] = seq.get(u, 0) + 1
            events.append(Event(u, "message.created", payload, seq[u], now, m))
        out.append(events)
        for u in members[1:]:
            seq[u] = seq.get(u, 0) + 1
            note = {"notification": {"id": str(10**16 + total), "type": "message", "read": False}}
            notes.append(Event(u, "notification", note, seq[u], now, m))
        total += len(events) + k - 1
        if (m + 1) % 200 == 0 or m == messages - 1:
            out.append(notes)
            notes = []
    return out, total


async def _run(ns: argparse.Namespace, seed: int) -> float:
    bus = NatsBus(ns.nats, prefix=f"fanout{seed}.")
    await bus.start()
    hub = Hub(bus)
    count = _Count()
    users = list(range(10**12, 10**12 + ns.users))
    for u in users:
        await hub.join(u, _Counter(count))
    delivery = Delivery(bus, lambda: datetime.now(UTC), IdGenerator(node_id=1))
    batches, total = _traffic(users, ns.messages, random.Random(seed))
    groups: list[list[Event]] = []
    pending: list[Event] = []
    for i, events in enumerate(batches):
        pending += events
        if events[0].type == "notification" or (i + 1) % ns.group == 0:
            groups.append(pending)
            pending = []
    if pending:
        groups.append(pending)
    count.target = total
    start = time.process_time()
    for events in groups:
        await delivery.publish(events)
        await asyncio.sleep(0)  # the reader gets its turns, as between commits
    await count.done.wait()
    used = time.process_time() - start
    await bus.close()
    return used / total * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--group", type=int, default=8, help="messages per send group")
    parser.add_argument("--runs", type=int, default=5)
    ns = parser.parse_args()
    figures = [asyncio.run(_run(ns, seed)) for seed in range(ns.runs)]
    print(
        f"bus side, CPU per delivery: median {statistics.median(figures):.2f} µs "
        f"(runs: {', '.join(f'{f:.2f}' for f in figures)})"
    )


if __name__ == "__main__":
    main()
