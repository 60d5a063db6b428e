"""Retention of the per-user event logs: events older than the setting are pruned.

Pruning runs in the background (the embedded server's housekeeping, or ``socius worker``),
in batches of one short transaction each, oldest events first. A log always keeps one
unbroken range of positions and records the highest one it lost (``pruned_to``), so the
check of a client's cursor is exact: below it, ``/v1/sync`` answers 410
``cursor_expired`` and the socket closes with 4410, and the client resyncs.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from socius.services.ports import Clock, UnitOfWorkFactory

__all__ = ["LogRetention"]


class LogRetention:
    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, *, keep_seconds: int, batch: int = 1000
    ) -> None:
        """``keep_seconds``: how long an event is kept (0: for ever)."""
        self._uow = uow
        self._clock = clock
        self.keep_seconds = keep_seconds
        self.batch = batch

    async def prune(self, *, max_batches: int = 50) -> tuple[int, bool]:
        """Prune events older than the retention, at most ``max_batches`` batches; the
        events pruned, and whether more may be left (call again soon)."""
        if self.keep_seconds <= 0:
            return 0, False
        before = self._clock() - timedelta(seconds=self.keep_seconds)
        total = 0
        for _ in range(max_batches):
            async with self._uow() as uow:
                found = await uow.outbox.prune(before, limit=self.batch)
                if found is None:  # it gave way to another transaction's lock
                    return total, True
                await uow.commit()
            total += found
            if found < self.batch:
                return total, False
            await asyncio.sleep(0)  # other writers go between two batches
        return total, True
