"""Batcher: concurrent lookups share one bulk read, never one that started before them."""

from __future__ import annotations

import asyncio

import pytest

from socius.realtime.batcher import Batcher


class Store:
    def __init__(self) -> None:
        self.values: dict[int, int] = {}
        self.calls: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.started = asyncio.Event()

    async def bulk(self, keys: list[int]) -> dict[int, int]:
        self.calls.append(list(keys))
        self.started.set()
        snapshot = {k: self.values[k] for k in keys if k in self.values}
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("down")
        return snapshot


async def test_concurrent_lookups_share_one_bulk_read_and_missing_keys_get_the_default() -> None:
    store = Store()
    store.values = {1: 10, 2: 20}
    batcher = Batcher(store.bulk, default=0)
    got = await asyncio.gather(*(batcher.get(k) for k in (1, 2, 1, 3)))
    assert got == [10, 20, 10, 0]
    assert store.calls == [[1, 2, 3]]


async def test_a_lookup_made_during_a_bulk_read_waits_for_the_next_one() -> None:
    store = Store()
    store.values = {1: 10}
    store.gate = asyncio.Event()
    batcher = Batcher(store.bulk, default=0)
    first = asyncio.ensure_future(batcher.get(1))
    await store.started.wait()
    store.values[1] = 11  # changed after the first read began
    second = asyncio.ensure_future(batcher.get(1))
    store.gate.set()
    assert await first == 10
    assert await second == 11
    assert store.calls == [[1], [1]]


async def test_batches_are_bounded_and_a_failure_reaches_its_callers_only() -> None:
    store = Store()
    store.values = {k: k for k in range(5)}
    batcher = Batcher(store.bulk, default=-1, max_batch=2)
    assert await asyncio.gather(*(batcher.get(k) for k in range(5))) == [0, 1, 2, 3, 4]
    assert store.calls == [[0, 1], [2, 3], [4]]
    store.fail = True
    with pytest.raises(RuntimeError):
        await batcher.get(1)
    store.fail = False
    assert await batcher.get(1) == 1
