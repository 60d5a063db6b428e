"""Many simultaneous graph actions between the same two users leave a consistent graph.

Each burst fires 50 requests at once (friend requests both ways, accept, decline, block,
unblock, follow, unfollow, from both sides) through the async SDK on one app. The app is
served in the test's own event loop (httpx's ASGI transport, lifespan run here), so the
gathered requests really interleave: Litestar's AsyncTestClient (``ahttp``) hands each
request to its portal thread and blocks the caller until it is done, which would run
them one after another. A counter of requests in flight shows the overlap. After it:
no 5xx; the relationship each side sees is the mirror of the other's and obeys the
rules (no request between friends, nothing across a block); every stored edge has its
inverse; and every count in ``edge_counts`` equals the length of its list, read both
through the API and straight from the database.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conftest import PASSWORD, unique_name
from served import InFlight, lifespan
from socius.client import AsyncClient
from socius.domain.graph import INVERSE, EdgeType
from socius.storage.edges import SqlEdgeRepository

ACTIONS = [
    ("friend_request", "POST", "/v1/friends/requests"),
    ("accept", "POST", "/v1/friends/requests/{id}/accept"),
    ("decline", "POST", "/v1/friends/requests/{id}/decline"),
    ("cancel", "DELETE", "/v1/friends/requests/{id}"),
    ("unfriend", "DELETE", "/v1/friends/{id}"),
    ("block", "POST", "/v1/users/{id}/block"),
    ("unblock", "DELETE", "/v1/users/{id}/block"),
    ("follow", "POST", "/v1/users/{id}/follow"),
    ("unfollow", "DELETE", "/v1/users/{id}/follow"),
]
# What each action may answer besides 200, whatever the interleaving.
ALLOWED_ERRORS = {
    "friend_request": {(403, "blocked"), (404, "user_not_found")},
    "follow": {(403, "blocked"), (404, "user_not_found")},
    "accept": {(404, "friend_request_not_found")},
}
# Weights: the actions that build the graph come up more often than block.
WEIGHTS = [5, 4, 2, 1, 1, 1, 2, 4, 2]
BURST = 50


@pytest.fixture
async def served(app: Any) -> AsyncIterator[tuple[Any, InFlight]]:
    """SDK clients on the app, served in this event loop; and the in-flight counter."""
    counter = InFlight(app.asgi, serial=app.wiring.database.primary.dialect.name == "sqlite")
    async with lifespan(app.asgi):
        transport = httpx.ASGITransport(app=counter)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield (lambda: AsyncClient(http=http)), counter


async def burst(
    a: AsyncClient, b: AsyncClient, ids: dict[AsyncClient, str], seed: int
) -> list[tuple[str, Any]]:
    rng = random.Random(seed)
    calls = []
    for _ in range(BURST):
        actor = rng.choice([a, b])
        other = ids[b if actor is a else a]
        name, method, path = rng.choices(ACTIONS, weights=WEIGHTS)[0]
        if name == "friend_request":
            calls.append((name, actor.raw(method, path, json={"user_id": other})))
        else:
            calls.append((name, actor.raw(method, path.format(id=other))))
    responses = await asyncio.gather(*(call for _, call in calls))
    return [(name, r) for (name, _), r in zip(calls, responses, strict=True)]


async def relationship(client: AsyncClient, other: str) -> dict[str, Any]:
    response = await client.request("GET", "/v1/relationships", params={"ids": other})
    (item,) = response.json()["items"]
    return item


async def list_ids(client: AsyncClient, path: str) -> list[str]:
    response = await client.request("GET", path, params={"limit": 100})
    body = response.json()
    assert body["next_cursor"] is None
    return [item["id"] for item in body["items"]]


async def check_consistent(app: Any, a: AsyncClient, b: AsyncClient, a_id: str, b_id: str) -> None:
    ra, rb = await relationship(a, b_id), await relationship(b, a_id)
    # Each side sees the mirror of the other.
    assert ra["friend"] == rb["friend"]
    assert ra["request_sent"] == rb["request_received"]
    assert ra["request_received"] == rb["request_sent"]
    assert ra["following"] == rb["followed_by"]
    assert ra["followed_by"] == rb["following"]
    assert ra["blocking"] == rb["blocked_by"]
    assert ra["blocked_by"] == rb["blocking"]
    for r in (ra, rb):
        # Two pending requests the opposite ways would have made friends.
        assert not (r["request_sent"] and r["request_received"]), r
        assert not (r["friend"] and (r["request_sent"] or r["request_received"])), r
        if r["blocking"] or r["blocked_by"]:
            assert not any(
                r[f]
                for f in (
                    "friend",
                    "request_sent",
                    "request_received",
                    "following",
                    "followed_by",
                    "follow_requested",
                )
            ), r

    # Counts on the profile equal the lists, through the API.
    for client, uid in ((a, a_id), (b, b_id)):
        profile = (await client.request("GET", f"/v1/users/{uid}")).json()
        friends = await list_ids(client, "/v1/friends")
        followers = await list_ids(client, f"/v1/users/{uid}/followers")
        following = await list_ids(client, f"/v1/users/{uid}/following")
        assert profile["friends_count"] == len(friends)
        assert profile["followers_count"] == len(followers)
        assert profile["following_count"] == len(following)
    assert (b_id in await list_ids(a, "/v1/friends")) == ra["friend"]
    assert (a_id in await list_ids(b, "/v1/friends")) == rb["friend"]
    assert (b_id in await list_ids(a, f"/v1/users/{a_id}/following")) == ra["following"]
    assert (a_id in await list_ids(b, "/v1/blocks")) == rb["blocking"]
    assert (a_id in await list_ids(b, "/v1/friends/requests?direction=incoming")) == (
        rb["request_received"]
    )

    # And in the database: every edge has its inverse, every count is its list's length.
    users = [int(a_id), int(b_id)]
    async with app.wiring.database(write=False) as uow:
        counts = await uow.edges.counts(users, list(EdgeType))
        for src in users:
            dst = users[1] if src == users[0] else users[0]
            types = await uow.edges.types_between(src, dst)
            back = await uow.edges.types_between(dst, src)
            for t in types:
                inverse = INVERSE[t]
                assert inverse is None or inverse in back, (src, t, back)
            for t in EdgeType:
                rows = await uow.edges.range(src, t, limit=1000)
                assert counts[src][t] == len(rows), (src, t, counts[src][t], rows)
                assert {r.dst for r in rows} <= {dst}
                assert ({dst} if t in types else set()) == {r.dst for r in rows}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_simultaneous_actions_between_two_users_stay_consistent(
    app: Any, served: Any, seed: int
) -> None:
    sdk, in_flight = served
    a, b = sdk(), sdk()
    a_id = (await a.register(unique_name("conc"), PASSWORD)).user.id
    b_id = (await b.register(unique_name("conc"), PASSWORD)).user.id
    ids = {a: a_id, b: b_id}
    seen: set[tuple[str, int]] = set()
    for round_ in range(4):
        results = await burst(a, b, ids, seed * 100 + round_)
        for name, response in results:
            assert response.status_code < 500, (name, response.status_code, response.text)
            seen.add((name, response.status_code))
            if response.status_code != 200:
                code = response.json()["error"]["code"]
                assert (response.status_code, code) in ALLOWED_ERRORS.get(name, set()), (
                    name,
                    response.text,
                )
        await check_consistent(app, a, b, a_id, b_id)
    assert ("friend_request", 200) in seen
    assert ("block", 200) in seen
    in_flight.assert_overlapped()


async def test_simultaneous_mutual_requests_make_one_friendship(app: Any, served: Any) -> None:
    """Both ask at the same moment, 25 times each: they end up friends, once."""
    sdk, in_flight = served
    a, b = sdk(), sdk()
    a_id = (await a.register(unique_name("conc"), PASSWORD)).user.id
    b_id = (await b.register(unique_name("conc"), PASSWORD)).user.id
    calls = []
    for i in range(BURST):
        actor, other = (a, b_id) if i % 2 else (b, a_id)
        calls.append(actor.raw("POST", "/v1/friends/requests", json={"user_id": other}))
    responses = await asyncio.gather(*calls)
    in_flight.assert_overlapped()
    assert {r.status_code for r in responses} == {200}
    assert (await relationship(a, b_id))["friend"] is True
    assert await list_ids(a, "/v1/friends") == [b_id]
    assert await list_ids(b, "/v1/friends") == [a_id]
    assert await list_ids(a, "/v1/friends/requests?direction=incoming") == []
    assert await list_ids(a, "/v1/friends/requests?direction=outgoing") == []
    for client, uid in ((a, a_id), (b, b_id)):
        assert (await client.request("GET", f"/v1/users/{uid}")).json()["friends_count"] == 1
    await check_consistent(app, a, b, a_id, b_id)
    # Exactly one "friend.accepted" and at most one "friend.request" were written.
    async with app.wiring.database(write=False) as uow:
        events = [
            e
            for uid in (int(a_id), int(b_id))
            for e in await uow.outbox.for_user(uid, after_seq=0, limit=100)
        ]
    types = sorted(e.type for e in events if e.type != "notification")
    assert types == ["friend.accepted", "friend.request"], types
    # Each graph event also lands in its recipient's inbox, once.
    assert sum(e.type == "notification" for e in events) == len(types)


@pytest.mark.parametrize("path", ["locked", "checked"])
@pytest.mark.parametrize("side", ["target", "actor"])
async def test_account_erased_during_a_graph_write_leaves_no_edges(
    stack: str, app: Any, served: Any, monkeypatch: pytest.MonkeyPatch, side: str, path: str
) -> None:
    """A follow that has read its users when the account is erased must not leave edges
    pointing at the erased account (counts that no list shows, a ghost in the lists).

    The interleaving is forced: the follow's transaction is held just after it took the
    pair lock ("locked": the path under the pair's lock, read then written), or just
    before its one checked statement goes (decision 0053: planned, not read yet), the
    erasure runs to its commit, then the follow goes on.
    """
    if stack == "sqlite":
        pytest.skip("SQLite runs one write transaction at a time: this cannot interleave")
    sdk, _ = served
    leaving, staying = sdk(), sdk()
    leaving_id = (await leaving.register(unique_name("gone"), PASSWORD)).user.id
    staying_id = (await staying.register(unique_name("stay"), PASSWORD)).user.id
    await leaving.request("GET", f"/v1/users/{staying_id}")  # warm the caches both ways
    await staying.request("GET", f"/v1/users/{leaving_id}")

    held, release = asyncio.Event(), asyncio.Event()
    if path == "locked":
        monkeypatch.setattr(SqlEdgeRepository, "checks_pairs", property(lambda _self: False))
        name, original = "lock_pair", SqlEdgeRepository.lock_pair

        async def hold(self: SqlEdgeRepository, *args: Any) -> Any:
            found = await original(self, *args)
            held.set()
            await release.wait()
            return found

    else:
        name, original = "write_pair_checked", SqlEdgeRepository.write_pair_checked

        async def hold(self: SqlEdgeRepository, *args: Any) -> Any:
            held.set()
            await release.wait()
            return await original(self, *args)

    monkeypatch.setattr(SqlEdgeRepository, name, hold)
    if side == "target":  # staying follows leaving, who erases their account meanwhile
        follow = asyncio.create_task(staying.raw("POST", f"/v1/users/{leaving_id}/follow"))
    else:  # leaving follows staying, and erases their account meanwhile
        follow = asyncio.create_task(leaving.raw("POST", f"/v1/users/{staying_id}/follow"))
    await held.wait()
    monkeypatch.setattr(SqlEdgeRepository, name, original)
    erase = asyncio.create_task(leaving.raw("DELETE", "/v1/me", json={"password": PASSWORD}))
    # Give the erasure the chance to commit first (as it does today); a fixed version may
    # instead wait for the follow's transaction. Either order must end without edges.
    await asyncio.wait({erase}, timeout=1)
    release.set()
    responses = [await follow, await erase]
    assert all(r.status_code < 500 for r in responses), [r.text for r in responses]
    assert responses[1].status_code == 204

    profile = (await staying.request("GET", f"/v1/users/{staying_id}")).json()
    following = await list_ids(staying, f"/v1/users/{staying_id}/following")
    followers = await list_ids(staying, f"/v1/users/{staying_id}/followers")
    assert (profile["following_count"], profile["followers_count"]) == (
        len(following),
        len(followers),
    )
    async with app.wiring.database(write=False) as uow:
        left = await uow.edges.types_between(int(staying_id), int(leaving_id))
        back = await uow.edges.types_between(int(leaving_id), int(staying_id))
        counts = await uow.edges.counts([int(staying_id), int(leaving_id)], list(EdgeType))
    assert left == frozenset(), left
    assert back == frozenset(), back
    assert all(n == 0 for n in counts[int(staying_id)].values()), counts
    assert all(n == 0 for n in counts[int(leaving_id)].values()), counts


async def test_a_checked_write_whose_pair_keeps_moving_is_written_under_the_lock(
    stack: str, app: Any, served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision 0053: a write whose pair is never as planned (here: no state accepted)
    is tried a few times, then sent under the pair's lock, read then written: the same
    answer, edges and counts."""
    if stack == "sqlite":
        pytest.skip("SQLite writes under its one write lock: no checked writes")
    sdk, _ = served
    a, b = sdk(), sdk()
    a_id = (await a.register(unique_name("move"), PASSWORD)).user.id
    b_id = (await b.register(unique_name("move"), PASSWORD)).user.id
    original = SqlEdgeRepository.write_pair_checked
    tries: list[int] = []

    async def never(self: SqlEdgeRepository, change: Any, states: bytes) -> Any:
        tries.append(1)
        return await original(self, change, bytes(len(states)))

    monkeypatch.setattr(SqlEdgeRepository, "write_pair_checked", never)
    response = await a.raw("POST", f"/v1/users/{b_id}/follow")
    assert response.status_code == 200, response.text
    assert response.json()["following"] is True
    assert len(tries) == 3
    monkeypatch.setattr(SqlEdgeRepository, "write_pair_checked", original)
    assert await list_ids(b, f"/v1/users/{b_id}/followers") == [a_id]
    profile = (await a.request("GET", f"/v1/users/{b_id}")).json()
    assert profile["followers_count"] == 1
    # Nothing was written by the refused tries: a repeat changes nothing.
    again = await a.raw("POST", f"/v1/users/{b_id}/follow")
    assert again.json() == response.json()
    assert (await a.request("GET", f"/v1/users/{b_id}")).json()["followers_count"] == 1
