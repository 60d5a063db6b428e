"""A stopping server never hangs: a shutdown step that does not end is cut off after
its time, logged, and the steps after it still run."""

from __future__ import annotations

import asyncio
import time

import pytest
from litestar.testing import TestClient

from conftest import App
from socius.api import app as app_module
from socius.bootstrap import stop_tasks


def test_a_stop_step_that_never_ends_is_cut_off_and_the_rest_still_run(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "STOP_STEP_SECONDS", 0.2)
    ran: list[str] = []

    async def after() -> None:  # stops run in reverse: this one runs after the hanging one
        ran.append("after")

    async def hangs() -> None:
        await asyncio.Event().wait()

    app.wiring.container.on_stop.insert(0, after)
    app.wiring.container.on_stop.append(hangs)
    started = time.monotonic()
    with TestClient(app.asgi) as client:  # type: ignore[arg-type]
        assert client.get("/healthz").status_code == 200
    assert ran == ["after"]
    assert time.monotonic() - started < 8.0


async def test_a_background_task_that_lost_its_cancel_is_cancelled_again() -> None:
    """A loop can lose a cancel (Python 3.11's asyncio.wait_for returns a result that
    completed with the cancel and drops it): the shutdown cancels it again."""
    lost = asyncio.Event()

    async def loses_first_cancel() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            lost.set()  # swallowed, as that wait_for does
        await asyncio.Event().wait()  # and the loop goes on waiting

    task = asyncio.create_task(loses_first_cancel())
    await asyncio.sleep(0)
    async with asyncio.timeout(5.0):
        await stop_tasks([task], wait=0.05)
    assert lost.is_set()
    assert task.cancelled()
