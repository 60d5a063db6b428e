"""Group commit: concurrent operations of one kind share one transaction.

Each caller hands in its operation and waits; operations that arrive within ``window``
seconds of the first one (or while the groups in flight are still committing) go
together to ``run(ops)``, up to ``max_group`` at a time, which answers each one: a
result, or the exception that operation alone raises. ``run`` commits before it returns,
so a caller is answered only once its operation is durable.

Up to ``in_flight`` groups run at once (decision 0055; 1: one after the other). With
``keys`` (what an operation locks, e.g. its conversation), a group takes no operation
whose keys a group in flight holds: that one waits, with every later operation sharing
a key with it, for a later group, so that groups in flight at once never wait for each
other's locks on those keys, and operations of one key run in arrival order, one group
after the other. A group starts when a slot is free and the oldest operation it may take
has waited ``window`` (or ``max_group`` of them wait); a group that ends starts the next
at once with what waited for it. An operation submitted after another was answered goes
in a later group: a caller that waits for each answer keeps its order.

Under no load an operation waits ``window`` and goes alone; under load a group is
whatever arrived while the groups before it committed, so the wait never grows beyond
one commit. ``run`` raising (rather than answering) fails every operation of its group.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

O = TypeVar("O")  # noqa: E741 (an operation)
R = TypeVar("R")


class _Waiting(Generic[O, R]):
    __slots__ = ("future", "keys", "op", "since")

    def __init__(
        self, op: O, future: asyncio.Future[R], since: float, keys: tuple[Hashable, ...]
    ) -> None:
        self.op = op
        self.future = future
        self.since = since
        self.keys = keys


class GroupCommit(Generic[O, R]):
    def __init__(
        self,
        run: Callable[[Sequence[O]], Awaitable[Sequence[R | Exception]]],
        *,
        max_group: int = 128,
        window: float = 0.002,
        in_flight: int = 1,
        keys: Callable[[O], Iterable[Hashable]] | None = None,
        on_group: Callable[[int], None] = lambda _size: None,
        on_done: Callable[[float], None] = lambda _seconds: None,
    ) -> None:
        """``run(ops)`` answers each operation, in order; ``on_group(size)`` is told the
        size of each group run, ``on_done(seconds)`` how long its run took (metrics)."""
        self._run = run
        self._max = max(1, max_group)
        self._window = max(0.0, window)
        self._slots = max(1, in_flight)
        self._keys = keys
        self._on_group = on_group
        self._on_done = on_done
        self._queue: list[_Waiting[O, R]] = []
        self._active = 0  # groups in flight (slots taken)
        self._tasks: set[asyncio.Task[None]] = set()  # (a task must be referenced)
        self._held: Counter[Hashable] = Counter()  # keys of the groups in flight
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, op: O) -> R:
        """The answer to ``op`` once its group has committed; raises its error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        keys = tuple(self._keys(op)) if self._keys is not None else ()
        self._queue.append(_Waiting(op, future, loop.time(), keys))
        self._consider(loop)
        return await future

    def _consider(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the groups that may start; else wake up when the oldest operation that
        may go has waited its window (a group ending takes the next by itself)."""
        while self._queue and self._active < self._slots:
            ready = self._ready()
            if not ready:
                return
            waited = loop.time() - ready[0].since
            if len(ready) < self._max and waited < self._window:
                if self._timer is None:
                    self._timer = loop.call_later(self._window - waited, self._due)
                return
            self._active += 1
            task = loop.create_task(self._slot(self._take(ready)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _ready(self) -> list[_Waiting[O, R]]:
        """The operations a group starting now takes, in arrival order."""
        if self._keys is None:
            return self._queue[: self._max]
        ready: list[_Waiting[O, R]] = []
        held, left = self._held, set[Hashable]()
        for w in self._queue:
            if any(k in held or k in left for k in w.keys):
                left.update(w.keys)  # later operations of these keys wait behind it
                continue
            ready.append(w)
            if len(ready) == self._max:
                break
        return ready

    def _due(self) -> None:
        self._timer = None
        self._consider(asyncio.get_running_loop())

    def _take(self, group: list[_Waiting[O, R]]) -> list[_Waiting[O, R]]:
        """Take ``group`` out of the queue; its keys are held until it ends."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if len(group) == len(self._queue):
            self._queue = []
        else:
            taken = {id(w) for w in group}
            self._queue = [w for w in self._queue if id(w) not in taken]
        for w in group:
            self._held.update(w.keys)
        return group

    async def _slot(self, group: list[_Waiting[O, R]]) -> None:
        """One slot: its group, then at once (no turn of the loop in between) each next
        group of what waited meanwhile and may go, until none may."""
        try:
            while group:
                try:
                    await self._group(group)
                finally:
                    for w in group:
                        self._held.subtract(w.keys)
                    self._held = +self._held  # (drops the keys at zero)
                group = self._take(ready) if (ready := self._ready()) else []
        except BaseException:
            for w in self._queue:  # cancelled (shutdown): nobody waits for ever
                w.future.cancel()
            self._queue.clear()
            raise
        finally:
            self._active -= 1
        if self._queue:
            self._consider(asyncio.get_running_loop())

    async def _group(self, group: list[_Waiting[O, R]]) -> None:
        try:
            # A caller that gave up before its group started is not run.
            live = [w for w in group if not w.future.done()]
            if not live:
                return
            self._on_group(len(live))
            began = time.perf_counter()
            try:
                answers = await self._run([w.op for w in live])
            except Exception as exc:
                for w in live:
                    if not w.future.done():
                        w.future.set_exception(exc)
                return
            finally:
                self._on_done(time.perf_counter() - began)
            for w, answer in zip(live, answers, strict=True):
                if w.future.done():
                    continue
                if isinstance(answer, Exception):
                    w.future.set_exception(answer)
                else:
                    w.future.set_result(answer)
        except BaseException:
            for w in group:
                w.future.cancel()
            raise
