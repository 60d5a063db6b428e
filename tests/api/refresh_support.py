"""Shared by the refresh tests (test_refresh_grace.py, test_refresh_batches.py): the app on
a clock the tests move, with a refresh grace of `GRACE` seconds, served in the test's own
event loop so that gathered refreshes really meet; and the checks both make.

The fixtures are imported by name into the test modules that use them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from clock import Clock
from conftest import App, make_app
from served import InFlight, serving
from socius.client import ApiError, AsyncClient
from socius.settings import Settings

GRACE = 20


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(make_settings: Callable[..., Settings], clock: Clock) -> App:
    return make_app(make_settings(database_pool_size=10, refresh_grace_seconds=GRACE), clock=clock)


@pytest.fixture
async def served(app: App) -> AsyncIterator[tuple[Callable[[], AsyncClient], InFlight]]:
    async with serving(app) as served:
        yield served


async def refused(call: Any) -> ApiError:
    with pytest.raises(ApiError) as raised:
        await call
    return raised.value


async def works(sdk: Callable[[], AsyncClient], access_token: str) -> bool:
    """Whether the access token is accepted (200) rather than refused (401)."""
    response = await sdk().with_token(access_token).raw("GET", "/v1/me")
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200
