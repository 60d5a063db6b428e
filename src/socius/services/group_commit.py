"""Group commit: concurrent operations of one kind share one transaction.

Each caller hands in its operation and waits; operations that arrive within ``window``
seconds of the first one (or while the previous group is still committing) go together
to ``run(ops)``, up to ``max_group`` at a time, which answers each one: a result, or the
exception that operation alone raises. ``run`` commits before it returns, so a caller is
answered only once its operation is durable. Groups run one after the other, in arrival
order: operations of one caller that waited for each other stay in that order.

Under no load an operation waits ``window`` and goes alone; under load a group is
whatever arrived while the last one committed, so the wait never grows beyond one
commit. ``run`` raising (rather than answering) fails every operation of its group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

O = TypeVar("O")  # noqa: E741 (an operation)
R = TypeVar("R")


class GroupCommit(Generic[O, R]):
    def __init__(
        self,
        run: Callable[[Sequence[O]], Awaitable[Sequence[R | Exception]]],
        *,
        max_group: int = 128,
        window: float = 0.002,
        on_group: Callable[[int], None] = lambda _size: None,
    ) -> None:
        """``run(ops)`` answers each operation, in order; ``on_group(size)`` is told the
        size of each group run (metrics)."""
        self._run = run
        self._max = max(1, max_group)
        self._window = max(0.0, window)
        self._on_group = on_group
        self._queue: list[tuple[O, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, op: O) -> R:
        """The answer to ``op`` once its group has committed; raises its error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((op, future))
        if self._runner is None:
            if len(self._queue) >= self._max:
                self._start()
            elif self._timer is None:
                self._timer = loop.call_later(self._window, self._start)
        return await future

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._runner is None and self._queue:
            self._runner = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue[: self._max], self._queue[self._max :]
                # A caller that gave up before its group started is not run.
                group = [(op, f) for op, f in group if not f.done()]
                if not group:
                    continue
                self._on_group(len(group))
                try:
                    answers = await self._run([op for op, _ in group])
                except Exception as exc:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), answer in zip(group, answers, strict=True):
                    if future.done():
                        continue
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            self._runner = None
            if self._queue:  # cancelled mid-way (shutdown): nobody hangs
                for _, future in self._queue:
                    future.cancel()
                self._queue.clear()
