"""Refreshes in flight together share one rotation statement on PostgreSQL (decision 0044):
rotation stays single-use, a replayed token still ends its session, a token of an ended
session is still refused, whether the other refreshes are in the same batch or not.

The app is served in the test's own event loop so that gathered refreshes really meet
(on PostgreSQL they are batched; SQLite runs one write at a time, which must give the
same outcomes). The ``refresh_group_size`` histogram shows batches formed on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import refresh_support
from refresh_support import GRACE, refused, works

from clock import Clock
from conftest import PASSWORD, App, unique_name
from socius.client import ApiError, AsyncClient, AuthResult

# The fixtures this module uses (tests/api/refresh_support.py).
clock = refresh_support.clock
app = refresh_support.app
served = refresh_support.served


def _grouped(app: App) -> tuple[float, float]:
    """(rotations, batches) run so far by the batched statement (PostgreSQL)."""
    rotations = batches = 0.0
    for metric in app.wiring.metrics.refresh_group_size.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                rotations = sample.value
            elif sample.name.endswith("_count"):
                batches = sample.value
    return rotations, batches


def _batched(app: App, before: tuple[float, float]) -> bool:
    """Whether some batch since ``before`` held more than one refresh (PostgreSQL only)."""
    rotations, batches = _grouped(app)
    return rotations - before[0] > batches - before[1]


def _postgres(app: App) -> bool:
    return app.wiring.container.settings.database_url.startswith("postgres")


async def _sessions(sdk: Callable[[], AsyncClient], n: int) -> list[AuthResult]:
    return [await sdk().register(unique_name("bat"), PASSWORD) for _ in range(n)]


async def _outcome(call: Any) -> AuthResult | ApiError:
    try:
        result: AuthResult = await call
    except ApiError as error:
        return error
    return result


async def test_concurrent_refreshes_of_many_sessions_each_rotate_once(
    app: App, served: Any, clock: Clock
) -> None:
    """Many sessions refreshing at once: each gets a new pair that works, each presented
    token is spent (a replay after the grace ends that session alone)."""
    sdk, in_flight = served
    firsts = await _sessions(sdk, 12)
    before = _grouped(app)
    pairs = await asyncio.gather(*(sdk().refresh(f.refresh_token) for f in firsts))
    in_flight.assert_overlapped()
    if _postgres(app):
        assert _batched(app, before)
    assert len({p.refresh_token for p in pairs}) == len(firsts)
    for first, pair in zip(firsts, pairs, strict=True):
        assert pair.refresh_token != first.refresh_token
        assert pair.user.id == first.user.id
        assert await works(sdk, pair.access_token)
    clock.advance(GRACE + 1)
    error = await refused(sdk().refresh(firsts[0].refresh_token))
    assert (error.status, error.code) == (401, "refresh_token_reused")
    assert not await works(sdk, pairs[0].access_token)
    # The other sessions go on, again all at once.
    nexts = await asyncio.gather(*(sdk().refresh(p.refresh_token) for p in pairs[1:]))
    for nxt in nexts:
        assert await works(sdk, nxt.access_token)


async def test_the_same_token_twice_in_one_batch_rotates_once(app: App, served: Any) -> None:
    """Refreshes of one token among refreshes of others: the token is rotated once (every
    copy gets the same pair, the grace's), the others are rotated too."""
    sdk, in_flight = served
    firsts = await _sessions(sdk, 6)
    target = firsts[0].refresh_token
    before = _grouped(app)
    calls = [sdk().refresh(target) for _ in range(5)]
    calls += [sdk().refresh(f.refresh_token) for f in firsts[1:]]
    results = await asyncio.gather(*calls)
    in_flight.assert_overlapped()
    if _postgres(app):
        assert _batched(app, before)
    same = results[:5]
    assert len({(r.access_token, r.refresh_token) for r in same}) == 1
    assert same[0].refresh_token != target
    assert all(r.refresh_token not in {f.refresh_token for f in firsts} for r in results)
    assert len({r.refresh_token for r in results[5:]} | {same[0].refresh_token}) == 6
    # One session, going on from that one pair.
    nxt = await sdk().refresh(same[0].refresh_token)
    assert await works(sdk, nxt.access_token)
    sessions = await sdk().with_token(nxt.access_token).sessions()
    assert len(sessions) == 1


async def test_a_replay_in_a_batch_ends_its_session_and_only_it(
    app: App, served: Any, clock: Clock
) -> None:
    """A token spent before the grace window, replayed while its session's live token and
    other sessions' tokens refresh at once: its session ends (whatever the order inside
    the batch, no token of it works afterwards), the other sessions are rotated."""
    sdk, in_flight = served
    firsts = await _sessions(sdk, 6)
    victim = firsts[0]
    live = await sdk().refresh(victim.refresh_token)
    clock.advance(GRACE + 1)
    calls = [sdk().refresh(victim.refresh_token), sdk().refresh(live.refresh_token)]
    calls += [sdk().refresh(f.refresh_token) for f in firsts[1:]]
    results = await asyncio.gather(*(_outcome(c) for c in calls))
    in_flight.assert_overlapped()
    replay, current, others = results[0], results[1], results[2:]
    assert isinstance(replay, ApiError)
    assert (replay.status, replay.code) == (401, "refresh_token_reused")
    # The live token either went first (its pair is then revoked) or was refused.
    if isinstance(current, ApiError):
        assert current.status == 401
    else:
        assert not await works(sdk, current.access_token)
        assert (await refused(sdk().refresh(current.refresh_token))).status == 401
    assert not await works(sdk, live.access_token)
    assert (await refused(sdk().refresh(live.refresh_token))).status == 401
    for other in others:
        assert isinstance(other, AuthResult)
        assert await works(sdk, other.access_token)


async def test_replays_across_batches_end_the_session(app: App, served: Any, clock: Clock) -> None:
    """A token rotated in one batch and presented again in a later one (after the grace)
    ends its session; presented again within the grace it gets the same pair."""
    sdk, _ = served
    firsts = await _sessions(sdk, 4)
    pairs = await asyncio.gather(*(sdk().refresh(f.refresh_token) for f in firsts))
    again = await asyncio.gather(*(sdk().refresh(f.refresh_token) for f in firsts[:2]))
    for pair, copy in zip(pairs, again, strict=False):
        assert (copy.access_token, copy.refresh_token) == (pair.access_token, pair.refresh_token)
    clock.advance(GRACE + 1)
    replays = await asyncio.gather(*(_outcome(sdk().refresh(f.refresh_token)) for f in firsts[2:]))
    for replay in replays:
        assert isinstance(replay, ApiError)
        assert (replay.status, replay.code) == (401, "refresh_token_reused")
    for pair in pairs[2:]:
        assert not await works(sdk, pair.access_token)
        assert (await refused(sdk().refresh(pair.refresh_token))).status == 401
    for pair in pairs[:2]:
        assert await works(sdk, (await sdk().refresh(pair.refresh_token)).access_token)


async def test_a_token_of_an_ended_session_is_refused_in_a_batch(app: App, served: Any) -> None:
    """A live token of a logged-out session, refreshed beside others: refused as an ended
    session (twice alike: nothing of it was spent), the others rotated."""
    sdk, in_flight = served
    firsts = await _sessions(sdk, 6)
    ended = firsts[0]
    await sdk().with_token(ended.access_token).logout()
    for _ in range(2):
        calls = [sdk().refresh(ended.refresh_token)]
        calls += [sdk().refresh(f.refresh_token) for f in firsts[1:]]
        results = await asyncio.gather(*(_outcome(c) for c in calls))
        in_flight.assert_overlapped()
        refusal = results[0]
        assert isinstance(refusal, ApiError)
        assert (refusal.status, refusal.code) == (401, "session_expired")
        for i, other in enumerate(results[1:], start=1):
            assert isinstance(other, AuthResult)
            assert await works(sdk, other.access_token)
            firsts[i] = other
    assert not await works(sdk, ended.access_token)


async def test_unknown_tokens_in_a_batch_are_refused(app: App, served: Any) -> None:
    sdk, _ = served
    firsts = await _sessions(sdk, 3)
    calls = [sdk().refresh("x" * 43), sdk().refresh("y" * 43)]
    calls += [sdk().refresh(f.refresh_token) for f in firsts]
    results = await asyncio.gather(*(_outcome(c) for c in calls))
    for bad in results[:2]:
        assert isinstance(bad, ApiError)
        assert (bad.status, bad.code) == (401, "invalid_refresh_token")
    for good in results[2:]:
        assert isinstance(good, AuthResult)
        assert await works(sdk, good.access_token)
