"""A relay that stops between publishing and marking sent, for the crash test.

Run as ``python relay_then_hang.py`` with the SOCIUS_* environment of the test: it wires
the app as ``socius events relay`` does and runs one round of the real relay, whose
stream publishes for real; once the stream has acknowledged a batch it prints
``published N`` and hangs, so that the test kills it (SIGKILL) before the batch is marked
sent.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from socius.bootstrap import build, utc_now
from socius.domain.stream import DomainEvent
from socius.services.ports import EventStream
from socius.services.relay import Relay
from socius.settings import load_settings


class HangAfterPublish:
    def __init__(self, stream: EventStream) -> None:
        self._stream = stream
        self.name = stream.name

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        await self._stream.publish(events)
        print(f"published {len(events)}", flush=True)
        await asyncio.Event().wait()  # until killed


async def main() -> None:
    wiring = build(load_settings())
    stream = wiring.container.events.stream
    relay = Relay(
        wiring.database,
        HangAfterPublish(stream),  # type: ignore[arg-type]
        utc_now,
        lease_seconds=wiring.container.settings.event_relay_lease_seconds,
        batch=int(sys.argv[1]),
    )
    await relay.run_once()


if __name__ == "__main__":
    asyncio.run(main())
