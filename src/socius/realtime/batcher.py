"""Coalesced lookups: concurrent single-key reads answered by one bulk read.

A burst of connections (a server restart brings every client back at once) each needs
its user's log position and its session's revocation state. One query per socket would
make the database the bottleneck of the resume; a ``Batcher`` collects the keys asked
for while a bulk read is in flight and asks for all of them in the next one. Under no
load a lookup is one bulk read of one key, a loop iteration later.

A key asked for while a bulk read is in flight waits for the next one: the answer is
never older than the question (the gateway relies on it: a position read must happen
after the bus subscription it follows).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

__all__ = ["Batcher"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Batcher(Generic[K, V]):
    def __init__(
        self,
        bulk: Callable[[list[K]], Awaitable[Mapping[K, V]]],
        *,
        default: V,
        max_batch: int = 500,
    ) -> None:
        """``bulk(keys)`` answers many keys at once; keys it leaves out get ``default``."""
        self._bulk = bulk
        self._default = default
        self._max = max_batch
        self._waiting: dict[K, list[asyncio.Future[V]]] = {}
        self._runner: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)  # the other callers of this loop iteration join in
            while self._waiting:
                keys = list(self._waiting)[: self._max]
                waiters = {k: self._waiting.pop(k) for k in keys}
                try:
                    found = await self._bulk(keys)
                except Exception as exc:
                    for futures in waiters.values():
                        for f in futures:
                            if not f.done():
                                f.set_exception(exc)
                    continue
                for k, futures in waiters.items():
                    value = found.get(k, self._default)
                    for f in futures:
                        if not f.done():
                            f.set_result(value)
        finally:
            self._runner = None
            for futures in self._waiting.values():  # cancelled mid-way: nobody hangs
                for f in futures:
                    f.cancel()
            self._waiting.clear()
