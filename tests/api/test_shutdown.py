"""A stopping server never hangs: a shutdown step that does not end is cut off after
its time, logged, and the steps after it still run."""

from __future__ import annotations

import asyncio
import time

import pytest
from litestar.testing import TestClient

from conftest import App
from socius.api import app as app_module


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
