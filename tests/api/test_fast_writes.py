"""The fast writes (api/fast.py ``fast_write``, decision 0046): the hot graph writes and
``PATCH /v1/me``, answered by the front, answer exactly as Litestar answers them (status,
body, headers) for good and bad requests alike, and a body the front does not take is
left to Litestar."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fast_support import SLOW, both_lanes, register
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contract import assert_error, bearer
from socius.api.front import auth_table
from socius.settings import Settings


class Pair:
    """The served app (fast lane on) and the same Litestar app behind a front without it,
    in one event loop (the test client's): a request with the ``x-test-lane`` header goes
    to the second."""

    def __init__(self, client: AsyncTestClient[Any], litestar: Litestar):
        self.fast = client
        self.litestar = litestar

    async def same(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        changing: tuple[str, ...] = (),
    ) -> httpx.Response:
        """The request sent through both (fast first); the answers must be the same but
        the request id, and the body fields named in `changing` (a timestamp)."""
        sent = {**(bearer(token) if token else {}), **(headers or {})}
        fast = await self.fast.request(method, path, headers=sent, content=content)
        slow = await self.fast.request(method, path, headers=sent | SLOW, content=content)
        assert fast.status_code == slow.status_code, (path, fast.text, slow.text)
        if changing:
            f, s = fast.json(), slow.json()
            for name in changing:
                assert f.pop(name)
                assert s.pop(name)
            assert f == s, path
        else:
            assert fast.content == slow.content, (path, fast.text, slow.text)

        def kept(r: httpx.Response) -> list[tuple[str, str]]:
            skip = {"x-request-id", "content-length"} if changing else {"x-request-id"}
            return sorted((k, v) for k, v in r.headers.items() if k not in skip)

        assert kept(fast) == kept(slow), path
        assert fast.headers["x-request-id"]
        assert int(fast.headers["content-length"]) == len(fast.content)
        return fast


@pytest.fixture
async def pair(settings: Settings) -> AsyncIterator[Pair]:
    async with both_lanes(settings) as (client, litestar, _wiring):
        yield Pair(client, litestar)


def _json(value: str) -> bytes:
    return value.encode()


async def test_follow_and_unfollow_answer_as_litestar_does(pair: Pair) -> None:
    client = pair.fast
    _alice, a_token = await register(client, "fw_alice")
    bob, b_token = await register(client, "fw_bob")
    carol, _c_token = await register(client, "fw_carol")
    # The fast write happens, then Litestar's repeat of it is the idempotent no-op.
    r = await pair.same("POST", f"/v1/users/{bob}/follow", a_token)
    assert r.status_code == 200
    assert r.json()["following"] is True
    rel = await client.get("/v1/relationships", params={"ids": bob}, headers=bearer(a_token))
    assert rel.json()["items"][0]["following"] is True
    followers = await client.get(f"/v1/users/{bob}/followers", headers=bearer(b_token))
    assert len(followers.json()["items"]) == 1
    # A body on a route that reads none changes nothing.
    r = await pair.same("POST", f"/v1/users/{bob}/follow", a_token, content=b"garbage")
    assert r.json()["following"] is True
    r = await pair.same("DELETE", f"/v1/users/{bob}/follow", a_token)
    assert r.json()["following"] is False
    followers = await client.get(f"/v1/users/{bob}/followers", headers=bearer(b_token))
    assert followers.json()["items"] == []
    # Errors: the same status, code, body and headers.
    assert_error(await pair.same("POST", "/v1/users/not-an-id/follow", a_token), 404)
    assert_error(await pair.same("POST", "/v1/users/999999999999/follow", a_token), 404)
    assert_error(await pair.same("DELETE", "/v1/users/999999999999/follow", a_token), 404)
    r = await client.post(f"/v1/users/{bob}/follow", headers=bearer(b_token))  # self
    assert_error(await pair.same("POST", f"/v1/users/{bob}/follow", b_token), r.status_code)
    assert_error(await pair.same("POST", f"/v1/users/{bob}/follow", None), 401, "missing_token")
    assert_error(await pair.same("DELETE", f"/v1/users/{bob}/follow", "garbage"), 401)
    # Blocks: the blocked side sees the blocker as gone.
    r = await client.post(f"/v1/users/{carol}/block", headers=bearer(b_token))
    assert r.status_code == 200, r.text
    assert_error(
        await pair.same("POST", f"/v1/users/{bob}/follow", _c_token), 404, "user_not_found"
    )
    assert_error(await pair.same("POST", f"/v1/users/{carol}/follow", b_token), 403)


async def test_friend_request_and_accept_answer_as_litestar_does(pair: Pair) -> None:
    client = pair.fast
    alice, a_token = await register(client, "fw_dave")
    bob, b_token = await register(client, "fw_erin")
    body = _json(f'{{"user_id": "{bob}"}}')
    json = {"content-type": "application/json"}
    r = await pair.same("POST", "/v1/friends/requests", a_token, content=body, headers=json)
    assert r.json()["request_sent"] is True
    # No content type: Litestar reads the JSON body all the same.
    r = await pair.same("POST", "/v1/friends/requests", a_token, content=body)
    assert r.json()["request_sent"] is True
    incoming = await client.get("/v1/friends/requests", headers=bearer(b_token))
    assert [i["id"] for i in incoming.json()["items"]] == [alice]
    r = await pair.same("POST", f"/v1/friends/requests/{alice}/accept", b_token)
    assert r.json()["friend"] is True
    friends = await client.get("/v1/friends", headers=bearer(a_token))
    assert [i["id"] for i in friends.json()["items"]] == [bob]
    # Bodies the fast write decodes as Litestar does: the same errors.
    bad = {
        b"{": 400,
        b"[]": 422,
        b'{"user_id": 5}': 422,
        b'{"user_id": "5", "extra": 1}': 422,
        b'{"user_id": "abc"}': 404,
        b'{"user_id": "999999999999"}': 404,
        b"null": 422,
    }
    for content, status in bad.items():
        assert_error(
            await pair.same("POST", "/v1/friends/requests", a_token, content=content), status
        )
    # Bodies left to Litestar (replayed to it): none at all, one over the size limit.
    r = await pair.same("POST", "/v1/friends/requests", a_token, content=b"")
    assert_error(r, 422, "validation_error")
    limit = pair.litestar.request_max_body_size or 0
    over = b" " * limit + body
    assert_error(await pair.same("POST", "/v1/friends/requests", a_token, content=over), 413)
    assert_error(await pair.same("POST", "/v1/friends/requests/999999999999/accept", b_token), 404)
    assert_error(await pair.same("POST", "/v1/friends/requests", None, content=body), 401)


async def test_profile_edit_answers_as_litestar_does(pair: Pair) -> None:
    client = pair.fast
    alice, token = await register(client, "fw_frank")
    r = await pair.same(
        "PATCH", "/v1/me", token, content=b'{"bio": "hello"}', changing=("updated_at",)
    )
    assert r.json()["bio"] == "hello"
    assert r.json()["id"] == alice
    me = await client.get("/v1/me", headers=bearer(token))
    assert me.json()["bio"] == "hello"
    r = await pair.same(
        "PATCH", "/v1/me/", token, content=b'{"display_name": "F"}', changing=("updated_at",)
    )
    assert r.json()["display_name"] == "F"
    for content, status, code in (
        (b'{"bio": 5}', 422, "validation_error"),
        (b'{"username": "x"}', 422, "unknown_field"),
        (b'{"bio": "' + b"x" * 10_000 + b'"}', 422, "invalid_bio"),
        (b"{nope", 400, "invalid_json"),
    ):
        assert_error(await pair.same("PATCH", "/v1/me", token, content=content), status, code)
    r = await pair.same("PATCH", "/v1/me", token, content=b"")
    assert r.status_code >= 400
    assert_error(await pair.same("PATCH", "/v1/me", None, content=b"{}"), 401, "missing_token")


def test_the_hot_writes_are_on_the_fast_lane(pair: Pair) -> None:
    table = auth_table(pair.litestar)
    for method, path in (
        ("POST", "/v1/users/12/follow"),
        ("DELETE", "/v1/users/12/follow"),
        ("POST", "/v1/friends/requests"),
        ("POST", "/v1/friends/requests/12/accept"),
        ("PATCH", "/v1/me"),
    ):
        found = table.route(path)
        assert found is not None, path
        assert found[0].writes is not None, path
        assert method in found[0].writes, (method, path)
    # Others go through Litestar.
    for method, path in (("POST", "/v1/users/12/block"), ("DELETE", "/v1/me")):
        found = table.route(path)
        assert found is not None, path
        assert found[0].writes is None or method not in found[0].writes, (method, path)
    plain = auth_table(pair.litestar, fast_reads=False)
    assert plain.route("/v1/users/12/follow")[0].writes is None  # type: ignore[index]
