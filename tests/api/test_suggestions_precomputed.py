"""Suggestions are precomputed off the request path (decision 0028): a request reads the
stored list and filters it by the viewer's relationships now; the refresher recomputes a
list when its user's own friendships, requests or blocks change, and every list once it
is ``SOCIUS_SUGGESTIONS_MAX_AGE_SECONDS`` old."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import TestClient

from conftest import PASSWORD, Account, App, make_app
from socius.client import Client
from socius.services.suggestions import _Candidate, _encode
from socius.settings import Settings

DEADLINE = 20.0  # background work: waited for, bounded (never a timed assertion)


def befriend(a: Account, b: Account) -> None:
    a.client.send_friend_request(b.id)
    b.client.accept_friend_request(a.id)


def suggested(viewer: Account, limit: int = 20) -> list[str]:
    return [s.user.id for s in viewer.client.suggestions(limit=limit)]


def wait_for(found: Callable[[], Any], what: str) -> Any:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {DEADLINE} s: {what}")


def _store(app: App, http: TestClient[Any], user: str, candidates: list[str]) -> None:
    """Put a stored list in place, as an old refresh would have left it."""

    async def put() -> None:
        now = datetime.now(UTC)
        rows = [(int(user), _encode([_Candidate(int(c), 1, 1.0) for c in candidates]))]
        async with app.wiring.database() as uow:
            await uow.suggestion_lists.put(rows, now=now, due=now)
            await uow.commit()
        await app.wiring.container.suggestions.invalidate([int(user)])

    http.blocking_portal.call(put)


def test_a_stored_list_is_filtered_by_the_viewers_relationships_now(
    app: App, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    """The stored list may predate the viewer's friendships, requests and blocks: none of
    those users, nor the viewer, is ever shown from it."""
    me, friend, blocked, blocker, asked, asker, fine = (register() for _ in range(7))
    befriend(me, friend)
    me.client.block(blocked.id)
    blocker.client.block(me.id)
    me.client.send_friend_request(asked.id)
    asker.client.send_friend_request(me.id)
    everyone = [me, friend, blocked, blocker, asked, asker, fine]
    _store(app, http, me.id, [u.id for u in everyone])

    assert suggested(me) == [fine.id]
    assert suggested(me, limit=1) == [fine.id]  # the filter looks past the first page
    # Unblocked: shown again from the same stored list.
    me.client.unblock(blocked.id)
    assert suggested(me) == [blocked.id, fine.id]


def test_a_stored_list_of_a_user_who_is_gone_shows_nothing_of_them(
    app: App, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    me, gone, fine = register(), register(), register()
    _store(app, http, me.id, [gone.id, fine.id])
    assert suggested(me) == [gone.id, fine.id]
    gone.client.delete_me(gone.password)
    assert suggested(me) == [fine.id]


def test_only_a_first_request_computes_the_list(
    app: App, register: Callable[..., Account], count_queries: Callable[[], Any]
) -> None:
    """The friends-of-friends query runs on the request path once per user, ever; later
    requests read the stored list (here: after the viewer's own block dropped its cached
    copy)."""
    me, friend, fof, other = (register() for _ in range(4))
    befriend(me, friend)
    befriend(friend, fof)
    befriend(friend, other)
    with count_queries() as first:
        assert set(suggested(me)) == {fof.id, other.id}
    assert any("WITH w(f, wt)" in q for q in first)
    me.client.block(other.id)
    with count_queries() as later:
        assert suggested(me) == [fof.id]
        assert suggested(me) == [fof.id]
    assert not any("WITH w(f, wt)" in q for q in later), later
    assert sum("suggestion_lists" in q for q in later) == 1  # then the cache


@pytest.fixture
def live(make_settings: Callable[..., Settings]) -> Iterator[Callable[[], Account]]:
    """An app whose background work runs (the relay and the refresher), lists due again
    after 1 s; makes signed-in accounts."""
    served = make_app(make_settings(event_relay_in_server=True, suggestions_max_age_seconds=1))
    with TestClient(served.asgi) as http:  # type: ignore[arg-type]

        def account() -> Account:
            client = Client(http=http)
            name = f"s{time.monotonic_ns() % 10**12}"
            return Account(client, client.register(name, PASSWORD), PASSWORD)

        yield account


def test_a_list_is_refreshed_after_its_users_own_friendships_change(
    live: Callable[[], Account],
) -> None:
    me, friend, fof, newfriend, theirs = (live() for _ in range(5))
    befriend(me, friend)
    befriend(friend, fof)
    befriend(newfriend, theirs)
    assert suggested(me) == [fof.id]
    befriend(me, newfriend)
    wait_for(lambda: set(suggested(me)) == {fof.id, theirs.id}, "the new friend's friend")
    me.client.unfriend(friend.id)
    wait_for(lambda: suggested(me) == [theirs.id], "the old friend's friend gone")


def test_friends_of_friends_changes_are_picked_up_by_age(
    live: Callable[[], Account],
) -> None:
    """A friend's new friendship is no event of mine: my list catches up when it is
    due by age (here after 1 s)."""
    me, friend, later = live(), live(), live()
    befriend(me, friend)
    assert suggested(me) == []
    befriend(friend, later)
    wait_for(lambda: suggested(me) == [later.id], "a friend's new friend")


def test_a_first_request_may_be_queued(make_settings: Callable[..., Settings]) -> None:
    """``SOCIUS_SUGGESTIONS_FIRST_REQUEST=queue``: the first answer is empty and the
    refresher computes the list next."""
    served = make_app(make_settings(event_relay_in_server=True, suggestions_first_request="queue"))
    with TestClient(served.asgi) as http:  # type: ignore[arg-type]

        def account() -> Account:
            client = Client(http=http)
            name = f"q{time.monotonic_ns() % 10**12}"
            return Account(client, client.register(name, PASSWORD), PASSWORD)

        me, friend, fof = account(), account(), account()
        befriend(me, friend)
        befriend(friend, fof)
        assert suggested(me) == []
        wait_for(lambda: suggested(me) == [fof.id], "the queued list")


def test_erasure_deletes_the_stored_list(
    app: App, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    me, friend, fof = register(), register(), register()
    befriend(me, friend)
    befriend(friend, fof)
    assert suggested(me) == [fof.id]

    async def stored() -> bytes | None:
        async with app.wiring.database(write=False) as uow:
            return await uow.suggestion_lists.get(int(me.id))

    assert http.blocking_portal.call(stored) is not None
    me.client.delete_me(me.password)
    assert http.blocking_portal.call(stored) is None


def test_a_rounds_batched_computation_equals_the_per_user_one(
    app: App, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    """``friends_of_friends`` (the refresher's one read for a round's lists, decision 0034)
    ranks as ``newest_with_degree`` + ``second_degree`` do for each user alone."""
    import math
    import random

    from socius.domain.graph import EdgeType
    from socius.services.suggestions import _EXCLUDED

    people = [register() for _ in range(9)]
    rng = random.Random(3)
    for i, a in enumerate(people):
        for b in rng.sample(people[i + 1 :], min(3, len(people) - i - 1)):
            befriend(a, b)
    people[0].client.block(people[8].id)
    people[1].client.send_friend_request(people[7].id)
    ids = [int(p.id) for p in people]

    async def both() -> tuple[dict[int, list[tuple[int, int, float]]], dict[int, Any]]:
        async with app.wiring.database(write=False) as uow:
            batched = await uow.edges.friends_of_friends(
                ids, EdgeType.FRIEND, fanout=2, exclude=_EXCLUDED, rank_limit=6, limit=3
            )
            alone: dict[int, Any] = {}
            for v in ids:
                friends = await uow.edges.newest_with_degree(v, EdgeType.FRIEND, limit=2)
                weights = [(f, 1.0 / math.log(max(d or 2, 2))) for f, d in friends]
                alone[v] = await uow.edges.second_degree(
                    v, EdgeType.FRIEND, weights, fanout=2, exclude=_EXCLUDED, rank_limit=6, limit=3
                )
        return batched, alone

    batched, alone = http.blocking_portal.call(both)
    assert set(batched) == set(ids)
    assert any(batched.values())
    for v in ids:
        assert [(c, m) for c, m, _ in batched[v]] == [(c, m) for c, m, _ in alone[v]], v
        assert [s for *_, s in batched[v]] == pytest.approx([s for *_, s in alone[v]]), v


def test_a_new_request_makes_no_list_due_its_acceptance_does(
    app: App, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    """A request (or block) only hides a user, which the read-time filter does at once: it
    makes no list due; the friendship it ends in does (decision 0034)."""
    from datetime import timedelta

    from sqlalchemy import select

    from socius.storage.tables import suggestion_lists

    me, other = register(), register()
    c = app.wiring.container

    async def store() -> None:
        now = datetime.now(UTC)
        rows = [(int(u.id), _encode([])) for u in (me, other)]
        async with app.wiring.database() as uow:
            await uow.suggestion_lists.put(rows, now=now, due=now + timedelta(hours=1))
            await uow.commit()

    async def refreshed() -> set[str]:
        """Run the relay and the refresher; whose lists they recomputed."""
        query = select(suggestion_lists.c.user_id, suggestion_lists.c.computed_at)
        async with app.wiring.database.primary.connect() as conn:
            before = {r.user_id: r.computed_at for r in await conn.execute(query)}
        while await c.relay.run_once():
            pass
        while await c.refresher.run_once():
            pass
        async with app.wiring.database.primary.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {str(r.user_id) for r in rows if r.computed_at != before.get(r.user_id)}

    http.blocking_portal.call(store)
    http.blocking_portal.call(refreshed)  # the registrations' events
    me.client.send_friend_request(other.id)
    assert http.blocking_portal.call(refreshed) == set()
    other.client.accept_friend_request(me.id)
    assert http.blocking_portal.call(refreshed) == {me.id, other.id}


def test_a_refresher_on_standby_reads_nothing_for_a_third_of_a_lease(
    app: App,
    http: TestClient[Any],
    register: Callable[..., Account],
    count_queries: Callable[[], Any],
) -> None:
    """While another node holds the lease, a refresher fails to take it once, then runs
    no round (no statement) until a third of a lease has passed (decision 0034)."""
    from clock import Clock
    from socius.services.suggestions import SuggestionRefresher

    c = app.wiring.container
    clock = Clock()  # the other node's clock: now, movable
    other = SuggestionRefresher(app.wiring.database, clock, c.refresher._stream, c.suggestions)
    me, friend = register(), register()

    async def drain() -> None:
        while await c.relay.run_once():
            pass

    async def take() -> None:
        await drain()
        assert await c.refresher._reader.hold()  # this node's refresher takes the lease

    async def standby() -> tuple[int | None, int | None]:
        await drain()
        first = await other.run_once()  # the friendship's events: refused the lease
        with count_queries() as seen:
            again = await other.run_once()
        assert seen == []
        return first, again

    suggested(me)  # a stored list, due
    http.blocking_portal.call(take)
    befriend(me, friend)
    assert http.blocking_portal.call(standby) == (None, None)
    clock.advance(5.1)  # a third of a lease later: it tries again, still refused
    assert http.blocking_portal.call(other.run_once) is None


def _rounds_of(
    app: App, http: TestClient[Any], register: Callable[..., Account], **kwargs: Any
) -> list[int | None]:
    """A refresher of its own (``kwargs``): three users' lists made due, a round; made due
    again, two rounds. What each round did (lists recomputed plus events read)."""
    from socius.services.suggestions import SuggestionRefresher

    c = app.wiring.container
    people = [int(register().id) for _ in range(3)]
    refresher = SuggestionRefresher(
        app.wiring.database, c.refresher._clock, c.refresher._stream, c.suggestions, **kwargs
    )

    async def due_all() -> None:
        now = datetime.now(UTC)
        async with app.wiring.database() as uow:
            await uow.suggestion_lists.put([(p, _encode([])) for p in people], now=now, due=now)
            await uow.commit()
        while await c.relay.run_once():
            pass

    async def rounds() -> list[int | None]:
        await due_all()
        made = [await refresher.run_once()]
        await due_all()
        return [*made, await refresher.run_once(), await refresher.run_once()]

    return http.blocking_portal.call(rounds)


def test_a_cpu_share_bounds_the_lists_a_round_recomputes(
    app: App, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    """With a CPU share (SQLite's default, decision 0048) the refresher recomputes no more
    lists than the share buys at the CPU it measured per list."""
    spent = iter(range(1000))  # a CPU clock whose every reading is one second later
    first, second, third = _rounds_of(
        app, http, register, cpu_share=0.05, cpu_time=lambda: float(next(spent))
    )
    # First round: the 3 lists (and the registrations' events) for 1 CPU second, 1/3 s a
    # list: the share buys 0.15 lists a second and the bucket holds one. Then one list,
    # then none until it refills (~6.7 s).
    assert first is not None
    assert first >= 3
    assert (second, third) == (1, 0)


def test_without_a_cpu_share_the_count_budget_alone(
    app: App, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    first, second, third = _rounds_of(app, http, register)
    assert first is not None
    assert first >= 3
    assert (second, third) == (3, 0)
