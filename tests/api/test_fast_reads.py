"""The fast lane (api/fast.py): the hot GET routes the front answers itself answer exactly
as Litestar answers them (status, body, headers), for good and bad requests alike, and a
query it does not read as simply as Litestar is left to Litestar."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fast_support import SLOW, both_lanes, register
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contract import assert_error, bearer
from socius.api.fast import NOT_SIMPLE, id_list_query, limit_query, page_query, simple_query
from socius.api.front import auth_table
from socius.bootstrap import Wiring
from socius.domain.pagination import MAX_LIMIT
from socius.services.suggestions import _Candidate, _encode
from socius.settings import Settings


class Pair:
    """The served app (fast lane on) and the same Litestar app behind a front without it."""

    def __init__(self, fast: AsyncTestClient[Any], litestar: Litestar, wiring: Wiring):
        self.fast = fast
        self.litestar = litestar
        self.wiring = wiring

    async def both(self, path: str, token: str | None) -> tuple[httpx.Response, httpx.Response]:
        headers = bearer(token) if token else {}
        return await self.fast.get(path, headers=headers), await self.fast.get(
            path, headers=headers | SLOW
        )

    async def same(self, path: str, token: str | None) -> httpx.Response:
        fast, slow = await self.both(path, token)
        assert fast.status_code == slow.status_code, (path, fast.text, slow.text)
        assert fast.content == slow.content, path

        def kept(r: httpx.Response) -> list[tuple[str, str]]:
            return sorted((k, v) for k, v in r.headers.items() if k != "x-request-id")

        assert kept(fast) == kept(slow), path
        assert fast.headers["x-request-id"]
        return fast


@pytest.fixture
async def pair(settings: Settings) -> AsyncIterator[Pair]:
    async with both_lanes(settings) as (client, litestar, wiring):
        yield Pair(client, litestar, wiring)


async def _befriend(client: Any, asker: tuple[str, str], other: tuple[str, str]) -> None:
    """``(id, token)`` of each: a friend request from `asker`, accepted by `other`."""
    r = await client.post(
        "/v1/friends/requests", json={"user_id": other[0]}, headers=bearer(asker[1])
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/friends/requests/{asker[0]}/accept", headers=bearer(other[1]))
    assert r.status_code == 200, r.text


async def test_fast_reads_answer_as_litestar_does(pair: Pair) -> None:
    client = pair.fast
    alice, a_token = await register(client, "fast_alice")
    bob, b_token = await register(client, "fast_bob")
    carol, c_token = await register(client, "fast_carol")
    for other, token in ((bob, b_token), (carol, c_token)):
        await _befriend(client, (alice, a_token), (other, token))

    me = await pair.same("/v1/me", a_token)
    assert me.status_code == 200
    assert me.json()["id"] == alice
    assert (await pair.same("/v1/me/", a_token)).status_code == 200
    assert (await pair.same(f"/v1/users/{bob}", a_token)).json()["id"] == bob
    assert (await pair.same(f"/v1/users/{alice}?anything=1", a_token)).json()["id"] == alice
    friends = await pair.same("/v1/friends?limit=1", a_token)
    page = friends.json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    rest = await pair.same(f"/v1/friends?limit=1&cursor={page['next_cursor']}", a_token)
    assert len(rest.json()["items"]) == 1
    assert {i["id"] for i in page["items"] + rest.json()["items"]} == {bob, carol}
    assert (await pair.same("/v1/friends", a_token)).status_code == 200
    theirs = await pair.same(f"/v1/users/{bob}/friends?limit=50", b_token)
    assert [i["id"] for i in theirs.json()["items"]] == [alice]
    # Errors: the same status, code, body and headers.
    r = await client.post(f"/v1/users/{alice}/block", headers=bearer(c_token))
    assert r.status_code == 200, r.text
    assert_error(await pair.same("/v1/users/not-an-id", a_token), 404, "user_not_found")
    assert_error(await pair.same("/v1/users/999999999999", a_token), 404, "user_not_found")
    assert_error(await pair.same(f"/v1/users/{alice}", c_token), 404, "user_not_found")
    assert_error(await pair.same(f"/v1/users/{alice}/friends", c_token), 404)
    assert_error(await pair.same("/v1/friends?cursor=garbage", a_token), 400, "invalid_cursor")
    assert_error(await pair.same("/v1/me", None), 401, "missing_token")
    assert_error(await pair.same("/v1/friends", "garbage"), 401)
    # Queries the fast lane leaves to Litestar: validated (or decoded) there.
    assert_error(await pair.same("/v1/friends?limit=0", a_token), 422, "validation_error")
    assert_error(await pair.same(f"/v1/friends?limit={MAX_LIMIT + 1}", a_token), 422)
    assert_error(await pair.same("/v1/friends?limit=x", a_token), 422, "validation_error")
    encoded = await pair.same("/v1/friends?limit=%31", a_token)  # "1", percent-encoded
    assert len(encoded.json()["items"]) == 1
    assert (await pair.same("/v1/friends?unknown=1", a_token)).status_code == 200


def _store_suggestions(pair: Pair, user: str, candidates: list[str]) -> None:
    """A stored suggestion list (as the refresher leaves one), scores with many digits;
    written on the app's loop (the client's portal: the driver's connections belong to it)."""

    async def put() -> None:
        now = datetime.now(UTC)
        found = [_Candidate(int(c), n + 1, 1.0 / (n + 3)) for n, c in enumerate(candidates)]
        async with pair.wiring.database() as uow:
            await uow.suggestion_lists.put([(int(user), _encode(found))], now=now, due=now)
            await uow.commit()
        await pair.wiring.container.suggestions.invalidate([int(user)])

    pair.fast.blocking_portal.call(put)


async def test_relationships_mutual_friends_and_suggestions_answer_as_litestar_does(
    pair: Pair,
) -> None:
    client = pair.fast
    alice, a_token = await register(client, "fast_rms_alice")
    bob, b_token = await register(client, "fast_rms_bob")
    carol, c_token = await register(client, "fast_rms_carol")
    dave, d_token = await register(client, "fast_rms_dave")
    for other, token in ((bob, b_token), (carol, c_token)):
        await _befriend(client, (alice, a_token), (other, token))
    r = await client.post(f"/v1/users/{alice}/follow", headers=bearer(d_token))
    assert r.status_code == 200, r.text

    # R: relationship objects.
    rels = await pair.same(f"/v1/relationships?ids={bob},{dave},{carol},{bob},999999", a_token)
    assert [(i["user_id"], i["friend"], i["followed_by"]) for i in rels.json()["items"]] == [
        (bob, True, False),
        (dave, False, True),
        (carol, True, False),
        ("999999", False, False),
    ]
    assert (await pair.same(f"/v1/relationships?ids={alice}", a_token)).status_code == 200
    assert_error(await pair.same("/v1/relationships?ids=1,,2", a_token), 422, "invalid_id")
    ids = ",".join(str(n) for n in range(1, 102))
    assert_error(await pair.same(f"/v1/relationships?ids={ids}", a_token), 422, "too_many_ids")
    # Left to Litestar: decoded, or validated there.
    encoded = await pair.same(f"/v1/relationships?ids={bob}%2C{carol}", a_token)
    assert [i["user_id"] for i in encoded.json()["items"]] == [bob, carol]
    for query in ("", "?ids=", "?ids=x", "?ids=1&ids=2", f"?ids={'1,' * 1100}1", "?other=1"):
        await pair.same(f"/v1/relationships{query}", a_token)
    assert_error(await pair.same("/v1/relationships?ids=1", None), 401, "missing_token")

    # M: mutual friends (carol and bob share alice).
    mutual = await pair.same(f"/v1/users/{bob}/mutual-friends", c_token)
    assert [i["id"] for i in mutual.json()["items"]] == [alice]
    assert (await pair.same(f"/v1/users/{carol}/mutual-friends?limit=1", a_token)).json() == {
        "items": [],
        "next_cursor": None,
    }
    await _befriend(client, (bob, b_token), (dave, d_token))
    await _befriend(client, (dave, d_token), (carol, c_token))
    first = await pair.same(f"/v1/users/{carol}/mutual-friends?limit=1", b_token)
    assert first.json()["next_cursor"]
    rest = await pair.same(
        f"/v1/users/{carol}/mutual-friends?limit=1&cursor={first.json()['next_cursor']}", b_token
    )
    assert {i["id"] for i in first.json()["items"] + rest.json()["items"]} == {alice, dave}
    assert_error(await pair.same(f"/v1/users/{alice}/mutual-friends", a_token), 422)
    assert_error(await pair.same("/v1/users/nobody/mutual-friends", a_token), 404)
    assert_error(await pair.same("/v1/users/999999/mutual-friends", a_token), 404)
    assert_error(
        await pair.same(f"/v1/users/{bob}/mutual-friends?cursor=garbage", c_token),
        400,
        "invalid_cursor",
    )
    for query in ("?limit=0", f"?limit={MAX_LIMIT + 1}", "?limit=%31", "?unknown=1"):
        await pair.same(f"/v1/users/{bob}/mutual-friends{query}", c_token)

    # S: suggestions, as stored (with the viewer's relationships applied now).
    _store_suggestions(pair, alice, [dave, bob, carol])
    found = await pair.same("/v1/friends/suggestions", a_token)
    assert [(i["user"]["id"], i["mutual_count"]) for i in found.json()["items"]] == [(dave, 1)]
    _store_suggestions(pair, bob, [carol])
    assert (await pair.same("/v1/friends/suggestions?limit=1", b_token)).json()["items"]
    for query in ("?limit=0", "?limit=101", "?limit=x", "?limit=%31", "?other=1"):
        await pair.same(f"/v1/friends/suggestions{query}", a_token)
    assert_error(await pair.same("/v1/friends/suggestions", "garbage"), 401)

    # Across a block: hidden the same way on both.
    r = await client.post(f"/v1/users/{alice}/block", headers=bearer(c_token))
    assert r.status_code == 200, r.text
    assert_error(await pair.same(f"/v1/users/{alice}/mutual-friends", c_token), 404)
    blocked = await pair.same(f"/v1/relationships?ids={alice}", c_token)
    assert blocked.json()["items"][0]["blocking"] is True
    await pair.same("/v1/friends/suggestions", c_token)


async def test_a_revoked_session_is_refused_on_the_fast_lane(pair: Pair) -> None:
    client = pair.fast
    _alice, token = await register(client, "fast_dave")
    assert (await client.get("/v1/me", headers=bearer(token))).status_code == 200
    r = await client.post("/v1/auth/logout", headers=bearer(token))
    assert r.status_code in {200, 204}, r.text
    assert_error(await client.get("/v1/me", headers=bearer(token)), 401, "session_revoked")
    assert_error(await client.get("/v1/friends", headers=bearer(token)), 401, "session_revoked")


def test_the_hot_routes_have_fast_reads_and_need_the_token(pair: Pair) -> None:
    table = auth_table(pair.litestar)
    for path in (
        "/v1/me",
        "/v1/users/12",
        "/v1/friends",
        "/v1/users/12/friends",
        "/v1/relationships",
        "/v1/users/12/mutual-friends",
        "/v1/friends/suggestions",
    ):
        found = table.route(path)
        assert found is not None, path
        assert found[0].fast is not None, path
        assert "GET" in found[0].methods
    # Others go through Litestar.
    for path in ("/v1/users/search", "/v1/users/12/followers", "/v1/conversations"):
        found = table.route(path)
        assert found is not None, path
        assert found[0].fast is None, path
    plain = auth_table(pair.litestar, fast_reads=False)
    assert all(plain.route(p)[0].fast is None for p in ("/v1/me", "/v1/users/12"))  # type: ignore[index]


def test_only_simple_queries_are_read() -> None:
    names = frozenset({"limit", "cursor"})
    assert simple_query(b"", names) == {}
    assert simple_query(b"limit=5&cursor=ab-_.~9", names) == {"limit": "5", "cursor": "ab-_.~9"}
    for query in (b"limit=5&limit=6", b"limit", b"other=1", b"cursor=a%20b", b"cursor=a+b", b"&"):
        assert simple_query(query, names) is None, query
    assert page_query(b"", MAX_LIMIT) == (None, None)
    assert page_query(b"limit=50&cursor=xyz", MAX_LIMIT) == (50, "xyz")
    for query in (
        b"limit=0",
        b"limit=05",
        b"limit=-1",
        f"limit={MAX_LIMIT + 1}".encode(),
        b"cursor=",
    ):
        assert page_query(query, MAX_LIMIT) == NOT_SIMPLE, query


def test_only_plain_limits_and_id_lists_are_read() -> None:
    assert limit_query(b"", 100, 20) == 20
    assert limit_query(b"limit=100", 100, 20) == 100
    for query in (b"limit=0", b"limit=101", b"limit=05", b"limit=%31", b"cursor=x", b"limit=1&x=2"):
        assert limit_query(query, 100, 20) == -1, query
    assert id_list_query(b"ids=1,22,333", 2200) == "1,22,333"
    assert id_list_query(b"ids=1,,2", 2200) == "1,,2"  # judged by the route (422 invalid_id)
    for query in (b"", b"ids=", b"ids=1%2C2", b"ids=1&ids=2", b"ids=a", b"x=1&ids=1", b"ids=12"):
        assert id_list_query(query, 1 if query == b"ids=12" else 2200) is None, query


def test_routes_matched_again_are_the_same_and_the_memory_is_bounded(pair: Pair) -> None:
    table = auth_table(pair.litestar)
    first = table.route("/v1/users/7/friends")
    assert first is not None
    assert first[0].template == "/v1/users/{user_id}/friends"
    for k in range(5000):  # more distinct paths than are remembered
        found = table.route(f"/v1/users/{k}")
        assert found is not None
        assert found[0].template == "/v1/users/{user_id}"
        assert table.route(f"/v1/nowhere/{k}") is None
    assert table.route("/v1/users/7/friends") == first
    assert len(table._seen) <= 4096  # the bound itself
