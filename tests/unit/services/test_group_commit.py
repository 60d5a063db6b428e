"""GroupCommit: concurrent operations answered by one run per group, each its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from socius.services.group_commit import GroupCommit


class Runs:
    """A ``run`` that records its groups; ``gate`` holds a run until set."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()

    async def __call__(self, ops: Sequence[int]) -> list[int | Exception]:
        self.groups.append(list(ops))
        self.started.set()
        await self.gate.wait()
        return [ValueError(f"bad {op}") if op < 0 else op * 10 for op in ops]


async def test_operations_that_arrive_together_share_one_run_and_get_their_own_answers() -> None:
    runs = Runs()
    group: GroupCommit[int, int] = GroupCommit(runs, window=0.05)
    answers = await asyncio.gather(*(group.submit(op) for op in (1, -2, 3)), return_exceptions=True)
    assert runs.groups == [[1, -2, 3]]
    assert answers[0] == 10
    assert isinstance(answers[1], ValueError)
    assert answers[2] == 30


async def test_a_group_is_at_most_max_group_operations() -> None:
    runs = Runs()
    group: GroupCommit[int, int] = GroupCommit(runs, max_group=2, window=0.05)
    assert await asyncio.gather(*(group.submit(op) for op in range(5))) == [0, 10, 20, 30, 40]
    assert runs.groups == [[0, 1], [2, 3], [4]]


async def test_operations_arriving_during_a_run_go_together_in_the_next() -> None:
    runs = Runs()
    runs.gate.clear()
    sizes: list[int] = []
    group: GroupCommit[int, int] = GroupCommit(runs, window=0, on_group=sizes.append)
    first = asyncio.create_task(group.submit(1))
    await asyncio.wait_for(runs.started.wait(), 5)
    later = [asyncio.create_task(group.submit(op)) for op in (2, 3, 4)]
    await asyncio.sleep(0)
    runs.gate.set()
    assert await first == 10
    assert [await t for t in later] == [20, 30, 40]
    assert runs.groups == [[1], [2, 3, 4]]
    assert sizes == [1, 3]


async def test_a_run_that_raises_fails_its_whole_group_only() -> None:
    calls = 0

    async def run(ops: Sequence[int]) -> list[int | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the transaction failed")
        return list(ops)

    group: GroupCommit[int, int] = GroupCommit(run, window=0.05)
    failed = await asyncio.gather(group.submit(1), group.submit(2), return_exceptions=True)
    assert all(isinstance(f, RuntimeError) for f in failed)
    assert await group.submit(3) == 3


async def test_a_caller_that_gave_up_before_its_group_started_is_not_run() -> None:
    runs = Runs()
    group: GroupCommit[int, int] = GroupCommit(runs, window=0.05)
    gone = asyncio.create_task(group.submit(1))
    stays = asyncio.create_task(group.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    assert await stays == 20
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert runs.groups == [[2]]
