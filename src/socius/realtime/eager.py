"""Run a coroutine at once, in the caller's call, until it first has to wait.

A WebSocket send usually completes without waiting (the server takes the frame into its
buffer). Starting a task for it costs more than the send: the task, its scheduling and
one more loop iteration per frame. ``start`` runs the coroutine right away; only when it
really waits does the rest go to a task (``finish``), which goes on exactly where the
coroutine stopped, as the task running it would have (the same protocol as
``asyncio.Task``: a bare ``yield`` gives the loop one turn, a future is waited for).
Python 3.12's eager tasks do this for any task; this is the one place that needs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["Pending", "finish", "start"]

Pending = tuple[Coroutine[Any, Any, Any], Any]  # the coroutine, and what it waits for


def start(coro: Coroutine[Any, Any, Any]) -> Pending | None:
    """Run ``coro`` until it completes (None) or waits (what ``finish`` needs). Raises
    what it raises before waiting."""
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return coro, waiting


async def finish(pending: Pending) -> None:
    """Drive a started coroutine to its end; raises what it raises."""
    coro, waiting = pending
    loop = asyncio.get_running_loop()
    while True:
        try:
            if waiting is None:  # a bare yield: one turn of the loop
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False
                woken = loop.create_future()

                def wake(_: Any, woken: asyncio.Future[None] = woken) -> None:
                    if not woken.done():
                        woken.set_result(None)

                waiting.add_done_callback(wake)
                try:
                    await woken
                except asyncio.CancelledError:
                    waiting.cancel()
                    raise
        except BaseException as exc:
            try:
                waiting = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
