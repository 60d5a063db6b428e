"""Coalesced calls: concurrent single-item calls answered by one bulk call.

The first caller goes at once, alone; the callers that come while its call is in flight
queue up, and go together in the next bulk call (a batch per round trip until none is
left). Under no load a call costs one bulk call of one item and no extra loop iteration;
with an in-process backend, whose bulk call never suspends, nothing ever queues.

Unlike ``realtime.batcher.Batcher`` items are not merged: an item given twice is in the
bulk call twice (taking two tokens is not taking one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

I = TypeVar("I")  # noqa: E741 (an item)
R = TypeVar("R")


class Coalescer(Generic[I, R]):
    def __init__(
        self, bulk: Callable[[Sequence[I]], Awaitable[Sequence[R]]], *, max_batch: int = 500
    ) -> None:
        """``bulk(items)`` answers each item, in order."""
        self._bulk = bulk
        self._max = max_batch
        self._queue: list[tuple[I, asyncio.Future[R]]] = []
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None

    async def call(self, item: I) -> R:
        """The answer to ``item``; raises what the bulk call raised."""
        if self._busy:
            future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            self._queue.append((item, future))
            return await future
        self._busy = True
        try:
            (answer,) = await self._bulk([item])
        finally:
            if self._queue:
                self._drainer = asyncio.get_running_loop().create_task(self._drain())
            else:
                self._busy = False
        return answer

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                try:
                    answers = await self._bulk([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:
            self._busy = False
            for _, future in self._queue:  # cancelled mid-way: nobody hangs
                future.cancel()
            self._queue.clear()
