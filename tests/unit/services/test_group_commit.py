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


async def test_with_one_group_in_flight_the_next_waits_for_its_commit() -> None:
    runs = Runs()
    runs.gate.clear()
    group: GroupCommit[int, int] = GroupCommit(runs, window=0)
    first = asyncio.create_task(group.submit(1))
    await asyncio.wait_for(runs.started.wait(), 5)
    second = asyncio.create_task(group.submit(2))
    await asyncio.sleep(0.02)
    assert runs.groups == [[1]]  # the second waits for the first's commit
    runs.gate.set()
    assert (await first, await second) == (10, 20)
    assert runs.groups == [[1], [2]]


async def test_up_to_in_flight_groups_run_at_once_and_the_next_waits_for_a_slot() -> None:
    runs = Runs()
    runs.gate.clear()
    sizes: list[int] = []
    group: GroupCommit[int, int] = GroupCommit(
        runs, window=0.005, in_flight=2, on_group=sizes.append
    )
    first = asyncio.create_task(group.submit(1))
    await asyncio.wait_for(runs.started.wait(), 5)
    second = asyncio.create_task(group.submit(2))
    await asyncio.sleep(0.05)
    assert runs.groups == [[1], [2]]  # the second did not wait for the first's commit
    later = [asyncio.create_task(group.submit(op)) for op in (3, 4)]
    await asyncio.sleep(0.05)
    assert runs.groups == [[1], [2]]  # both slots taken: they wait, together
    runs.gate.set()
    assert [await t for t in (first, second, *later)] == [10, 20, 30, 40]
    assert runs.groups == [[1], [2], [3, 4]]
    assert sizes == [1, 1, 2]


async def test_groups_in_flight_each_answer_their_own_operations() -> None:
    order: list[int] = []

    async def run(ops: Sequence[int]) -> list[int | Exception]:
        await asyncio.sleep(0.03 if ops[0] == 0 else 0.0)  # the first group ends last
        order.append(ops[0])
        if ops[0] == 0:
            raise RuntimeError("the transaction failed")
        return [ValueError(f"bad {op}") if op < 0 else op * 10 for op in ops]

    group: GroupCommit[int, int] = GroupCommit(run, max_group=2, window=0.01, in_flight=3)
    answers = await asyncio.gather(
        *(group.submit(op) for op in (0, 1, 2, -3, 4)), return_exceptions=True
    )
    assert isinstance(answers[0], RuntimeError)
    assert isinstance(answers[1], RuntimeError)
    assert answers[2] == 20
    assert isinstance(answers[3], ValueError)
    assert answers[4] == 40
    assert order[-1] == 0  # the later groups did not wait for it


async def test_a_caller_that_waits_for_each_answer_keeps_its_order_across_groups() -> None:
    seen: list[int] = []

    async def run(ops: Sequence[int]) -> list[int | Exception]:
        await asyncio.sleep(0.001 * (ops[0] % 3))
        seen.extend(ops)
        return list(ops)

    group: GroupCommit[int, int] = GroupCommit(run, window=0, in_flight=4)

    async def caller(k: int) -> None:
        for i in range(10):
            assert await group.submit(k * 100 + i) == k * 100 + i

    await asyncio.gather(*(caller(k) for k in range(5)))
    for k in range(5):
        mine = [op for op in seen if op // 100 == k]
        assert mine == sorted(mine)


async def test_an_operation_whose_key_a_group_in_flight_holds_waits_for_a_later_group() -> None:
    runs = Runs()
    runs.gate.clear()
    group: GroupCommit[int, int] = GroupCommit(
        runs, window=0.005, in_flight=3, keys=lambda op: [op % 10]
    )
    first = asyncio.create_task(group.submit(1))  # key 1
    await asyncio.wait_for(runs.started.wait(), 5)
    later = [asyncio.create_task(group.submit(op)) for op in (11, 2, 21, 3)]
    await asyncio.sleep(0.05)
    # 11 and 21 share key 1 with the group in flight: they wait, in order; 2 and 3 go.
    assert runs.groups == [[1], [2, 3]]
    runs.gate.set()
    assert await first == 10
    assert [await t for t in later] == [110, 20, 210, 30]
    assert runs.groups == [[1], [2, 3], [11, 21]]
