"""realtime/eager.py: a coroutine run at once in the caller's call, finished by a task only
when it has to wait."""

from __future__ import annotations

import asyncio

import pytest

from socius.realtime import eager


async def test_a_coroutine_that_never_waits_completes_in_the_call() -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("sent")

    assert eager.start(quick()) is None
    assert done == ["sent"]


async def test_a_coroutine_that_waits_is_finished_where_it_stopped() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def slow() -> None:
        steps.append("before")
        steps.append(await gate)
        await asyncio.sleep(0)  # a bare yield too
        steps.append("after")

    pending = eager.start(slow())
    assert pending is not None
    assert steps == ["before"]
    task = asyncio.create_task(eager.finish(pending))
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result("woken")
    await asyncio.wait_for(task, 5)
    assert steps == ["before", "woken", "after"]


async def test_errors_reach_the_caller_before_and_after_waiting() -> None:
    async def fails_at_once() -> None:
        raise OSError("gone")

    with pytest.raises(OSError, match="gone"):
        eager.start(fails_at_once())

    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def fails_later() -> None:
        await gate

    pending = eager.start(fails_later())
    assert pending is not None
    gate.set_exception(OSError("gone later"))
    with pytest.raises(OSError, match="gone later"):
        await eager.finish(pending)


async def test_cancelling_the_finishing_task_cancels_the_coroutine() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def waits() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    pending = eager.start(waits())
    assert pending is not None
    task = asyncio.create_task(eager.finish(pending))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
    assert gate.cancelled()
