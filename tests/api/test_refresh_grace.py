"""The refresh grace: two tabs refreshing with the same token both stay signed in, while a
replay after the window (or after the session moved on) still ends the session.

The app runs on a clock the tests move, and is served in the test's own event loop so
that gathered refreshes really race (on PostgreSQL they meet at the token's row lock;
SQLite runs one write at a time, which must give the same outcome).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import refresh_support
from refresh_support import GRACE, refused, works

from clock import Clock
from conftest import PASSWORD, App, make_app, unique_name
from served import lifespan
from socius.client import AsyncClient, AuthResult
from socius.domain.users import UserStatus
from socius.settings import Settings

# The fixtures this module uses (tests/api/refresh_support.py).
clock = refresh_support.clock
app = refresh_support.app
served = refresh_support.served


async def _signed_up(sdk: Callable[[], AsyncClient]) -> tuple[AsyncClient, AuthResult]:
    client = sdk()
    return client, await client.register(unique_name("tab"), PASSWORD)


async def test_tabs_refreshing_at_once_all_get_the_same_working_pair(served: Any) -> None:
    sdk, in_flight = served
    client, first = await _signed_up(sdk)
    tabs = [sdk() for _ in range(5)]
    results = await asyncio.gather(*(tab.refresh(first.refresh_token) for tab in tabs))
    in_flight.assert_overlapped()
    assert len({(r.access_token, r.refresh_token) for r in results}) == 1
    pair = results[0]
    assert pair.refresh_token != first.refresh_token
    assert await works(sdk, pair.access_token)
    # The session carries on: one session, refreshed again by any tab.
    assert len(await client.with_token(pair.access_token).sessions()) == 1
    following = await tabs[3].refresh(pair.refresh_token)
    assert await works(sdk, following.access_token)


async def test_a_replay_within_the_window_gets_the_same_pair(served: Any, clock: Clock) -> None:
    sdk, _ = served
    _, first = await _signed_up(sdk)
    pair = await sdk().refresh(first.refresh_token)
    clock.advance(GRACE - 1)
    again = await sdk().refresh(first.refresh_token)
    assert (again.access_token, again.refresh_token) == (pair.access_token, pair.refresh_token)
    assert await works(sdk, pair.access_token)
    assert await works(sdk, (await sdk().refresh(pair.refresh_token)).access_token)


async def test_a_replay_after_the_window_ends_the_session(served: Any, clock: Clock) -> None:
    sdk, _ = served
    _, first = await _signed_up(sdk)
    other = sdk()
    await other.login(first.user.username, PASSWORD)  # another session, which survives
    pair = await sdk().refresh(first.refresh_token)
    clock.advance(GRACE + 1)
    error = await refused(sdk().refresh(first.refresh_token))
    assert (error.status, error.code) == (401, "refresh_token_reused")
    assert not await works(sdk, pair.access_token)
    assert (await refused(sdk().refresh(pair.refresh_token))).status == 401
    assert (await other.me()).id == first.user.id


async def test_within_the_window_a_stale_token_cannot_follow_a_newer_refresh(
    served: Any,
) -> None:
    sdk, _ = served
    _, first = await _signed_up(sdk)
    pair = await sdk().refresh(first.refresh_token)
    newer = await sdk().refresh(pair.refresh_token)  # the session moved on
    error = await refused(sdk().refresh(first.refresh_token))
    assert (error.status, error.code) == (401, "refresh_token_reused")
    assert not await works(sdk, newer.access_token)
    assert (await refused(sdk().refresh(newer.refresh_token))).status == 401


async def test_the_grace_does_not_revive_an_ended_session(served: Any) -> None:
    sdk, _ = served
    _, first = await _signed_up(sdk)
    pair = await sdk().refresh(first.refresh_token)
    await sdk().with_token(pair.access_token).logout()
    assert (await refused(sdk().refresh(first.refresh_token))).status == 401
    assert not await works(sdk, pair.access_token)


async def test_no_grace_when_the_window_is_zero(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    app = make_app(make_settings(refresh_grace_seconds=0), clock=clock)
    async with lifespan(app.asgi):
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            client = AsyncClient(http=http)
            first = await client.register(unique_name("tab"), PASSWORD)
            pair = await AsyncClient(http=http).refresh(first.refresh_token)
            error = await refused(AsyncClient(http=http).refresh(first.refresh_token))
            assert (error.status, error.code) == (401, "refresh_token_reused")
            assert not await works(lambda: AsyncClient(http=http), pair.access_token)


async def test_a_live_token_of_an_ended_session_is_refused_and_nothing_is_kept(
    served: Any,
) -> None:
    """The refresh touches the session and stores the successor before it checks the
    session (one round trip): a refusal must roll all of it back, so the token is still
    unspent (refused again as an ended session, not as a reuse) and no successor works."""
    sdk, _ = served
    client, first = await _signed_up(sdk)
    await client.with_token(first.access_token).logout()
    for _ in range(2):
        error = await refused(sdk().refresh(first.refresh_token))
        assert (error.status, error.code) == (401, "session_expired")
    assert not await works(sdk, first.access_token)
    # A session that ends after a refresh: its newest token is refused the same way.
    other, second = await _signed_up(sdk)
    pair = await sdk().refresh(second.refresh_token)
    await other.with_token(pair.access_token).delete_me(PASSWORD)
    error = await refused(sdk().refresh(pair.refresh_token))
    assert error.status == 401


async def _set_status(app: App, user_id: str, status: UserStatus) -> None:
    """The account's status alone, as the row says (its sessions left as they are): what
    the refresh checks for itself, apart from the revocations a disabling also makes."""
    async with app.wiring.database() as uow:
        assert await uow.users.update(int(user_id), {"status": status})
        await uow.commit()


async def test_a_live_token_of_an_expired_session_is_refused_and_nothing_is_kept(
    app: App, served: Any, clock: Clock
) -> None:
    """The refresh writes only when the session is usable (one statement on PostgreSQL):
    past the session's end the token is refused, twice alike, and, the clock moved back,
    it still works: the refusal spent nothing."""
    sdk, _ = served
    _, first = await _signed_up(sdk)
    max_age = app.wiring.container.settings.session_max_age_seconds
    clock.advance(max_age + 1)
    for _ in range(2):
        error = await refused(sdk().refresh(first.refresh_token))
        assert (error.status, error.code) == (401, "session_expired")
    clock.advance(-(max_age + 1))
    pair = await sdk().refresh(first.refresh_token)
    assert await works(sdk, pair.access_token)


async def test_a_live_token_of_a_disabled_account_is_refused_and_nothing_is_kept(
    app: App, served: Any
) -> None:
    sdk, _ = served
    _, first = await _signed_up(sdk)
    await _set_status(app, first.user.id, UserStatus.DISABLED)
    for _ in range(2):
        error = await refused(sdk().refresh(first.refresh_token))
        assert (error.status, error.code) == (401, "session_expired")
    await _set_status(app, first.user.id, UserStatus.ACTIVE)
    pair = await sdk().refresh(first.refresh_token)
    assert await works(sdk, pair.access_token)


async def test_many_refreshes_of_one_token_at_once_spend_it_once(served: Any) -> None:
    """Twenty concurrent refreshes of one token: one rotation (the rest are the grace's
    copies of its pair), and the session goes on from that pair alone."""
    sdk, in_flight = served
    client, first = await _signed_up(sdk)
    results = await asyncio.gather(*(sdk().refresh(first.refresh_token) for _ in range(20)))
    in_flight.assert_overlapped()
    assert len({(r.access_token, r.refresh_token) for r in results}) == 1
    nxt = await sdk().refresh(results[0].refresh_token)
    assert await works(sdk, nxt.access_token)
    assert len(await client.with_token(nxt.access_token).sessions()) == 1
