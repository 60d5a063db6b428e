"""Coalescer: a lone call goes at once; calls made meanwhile share the next bulk call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from socius.services.coalescer import Coalescer


class Backend:
    def __init__(self, *, suspends: bool = True) -> None:
        self.calls: list[list[str]] = []
        self.suspends = suspends
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = False

    async def bulk(self, items: Sequence[str]) -> list[str]:
        self.calls.append(list(items))
        if self.suspends:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("down")
        return [f"{item}!" for item in items]


async def test_a_lone_call_is_a_bulk_call_of_one() -> None:
    backend = Backend()
    coalescer = Coalescer(backend.bulk)
    assert await coalescer.call("a") == "a!"
    assert await coalescer.call("b") == "b!"
    assert backend.calls == [["a"], ["b"]]


async def test_calls_made_while_one_is_in_flight_go_together_in_order_duplicates_kept() -> None:
    backend = Backend()
    backend.gate.clear()
    coalescer = Coalescer(backend.bulk)
    first = asyncio.create_task(coalescer.call("a"))
    await asyncio.sleep(0)  # "a" is in flight
    rest = [asyncio.create_task(coalescer.call(item)) for item in ("b", "c", "b")]
    await asyncio.sleep(0)
    backend.gate.set()
    assert await first == "a!"
    assert await asyncio.gather(*rest) == ["b!", "c!", "b!"]
    assert backend.calls == [["a"], ["b", "c", "b"]]
    assert await coalescer.call("d") == "d!"  # idle again: goes at once
    assert backend.calls[-1] == ["d"]


async def test_batches_are_capped() -> None:
    backend = Backend()
    backend.gate.clear()
    coalescer = Coalescer(backend.bulk, max_batch=2)
    first = asyncio.create_task(coalescer.call("a"))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(coalescer.call(str(k))) for k in range(5)]
    await asyncio.sleep(0)
    backend.gate.set()
    await first
    assert await asyncio.gather(*rest) == [f"{k}!" for k in range(5)]
    assert backend.calls[1:] == [["0", "1"], ["2", "3"], ["4"]]


async def test_a_failure_reaches_the_callers_of_that_batch_only() -> None:
    backend = Backend()
    backend.gate.clear()
    coalescer = Coalescer(backend.bulk)
    first = asyncio.create_task(coalescer.call("a"))
    await asyncio.sleep(0)
    queued = asyncio.create_task(coalescer.call("b"))
    await asyncio.sleep(0)
    backend.fail_next = True
    backend.gate.set()
    with pytest.raises(RuntimeError):
        await first
    assert await queued == "b!"
    assert await coalescer.call("c") == "c!"


async def test_a_backend_that_never_suspends_never_batches() -> None:
    backend = Backend(suspends=False)
    coalescer = Coalescer(backend.bulk)
    got = await asyncio.gather(*(coalescer.call(item) for item in "xyz"))
    assert got == ["x!", "y!", "z!"]
    assert backend.calls == [["x"], ["y"], ["z"]]
