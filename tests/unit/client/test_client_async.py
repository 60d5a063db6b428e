"""AsyncClient against a fake transport: tokens, bodies, decoding, ownership of httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import msgspec
import pytest
from fake_socius_api import FakeApi

from socius.client import (
    ApiError,
    AsyncClient,
    AuthResult,
    Page,
    PrivateUser,
    PublicUser,
    SessionInfo,
)
from socius.client._http import USER_AGENT


def tokens(client: AsyncClient) -> tuple[str | None, str | None]:
    return client.access_token, client.refresh_token


@pytest.fixture
async def client(api: FakeApi) -> AsyncIterator[AsyncClient]:
    async with httpx.AsyncClient(base_url="http://test", transport=api.transport()) as http:
        yield AsyncClient(http=http)


async def test_login_stores_tokens_and_sends_bearer(api: FakeApi, client: AsyncClient) -> None:
    api.on("POST", "/v1/auth/login", api.auth_body("acc", "ref"))
    api.on("GET", "/v1/me", api.private_user())

    result = await client.login("ada", "password123")

    assert isinstance(result, AuthResult)
    assert (result.access_token, result.refresh_token, result.expires_in) == ("acc", "ref", 900)
    assert "authorization" not in api.last.headers
    assert api.last_json() == {"username": "ada", "password": "password123"}
    assert (client.access_token, client.refresh_token) == ("acc", "ref")

    me = await client.me()
    assert isinstance(me, PrivateUser)
    assert api.last.headers["authorization"] == "Bearer acc"


async def test_register_sends_only_given_fields(api: FakeApi, client: AsyncClient) -> None:
    api.on("POST", "/v1/auth/register", api.auth_body(), status=201)
    await client.register("ada", "password123")
    assert api.last_json() == {"username": "ada", "password": "password123"}
    await client.register("ada", "password123", email="a@b.io", display_name="Ada")
    assert api.last_json() == {
        "username": "ada",
        "password": "password123",
        "email": "a@b.io",
        "display_name": "Ada",
    }
    assert api.last.headers["content-type"] == "application/json"
    assert client.access_token == "access-1"


async def test_refresh_uses_stored_token_and_rotates(api: FakeApi, client: AsyncClient) -> None:
    api.on("POST", "/v1/auth/login", api.auth_body("acc-1", "ref-1"))
    api.on("POST", "/v1/auth/refresh", api.auth_body("acc-2", "ref-2"))
    await client.login("ada", "password123")

    await client.refresh()

    assert api.last_json() == {"refresh_token": "ref-1"}
    assert "authorization" not in api.last.headers
    assert (client.access_token, client.refresh_token) == ("acc-2", "ref-2")

    await client.refresh("explicit")
    assert api.last_json() == {"refresh_token": "explicit"}


async def test_refresh_without_token_is_a_caller_error(client: AsyncClient) -> None:
    with pytest.raises(ValueError, match="refresh token"):
        await client.refresh()


async def test_failed_refresh_keeps_tokens(api: FakeApi, client: AsyncClient) -> None:
    client.access_token, client.refresh_token = "acc", "spent"
    api.on(
        "POST",
        "/v1/auth/refresh",
        {"error": {"code": "invalid_refresh_token", "message": "no", "details": {}}},
        status=401,
    )
    with pytest.raises(ApiError) as caught:
        await client.refresh()
    assert caught.value.code == "invalid_refresh_token"
    assert (client.access_token, client.refresh_token) == ("acc", "spent")


async def test_logout_and_delete_forget_tokens(api: FakeApi, client: AsyncClient) -> None:
    api.on("POST", "/v1/auth/logout", status=204)
    api.on("DELETE", "/v1/me", status=204)
    client.access_token, client.refresh_token = "acc", "ref"
    await client.logout()
    assert api.last.headers["authorization"] == "Bearer acc"
    assert tokens(client) == (None, None)

    client.access_token = "acc"
    await client.delete_me("password123")
    assert api.last.method == "DELETE"
    assert api.last_json() == {"password": "password123"}
    assert tokens(client) == (None, None)


async def test_datetimes_are_decoded(api: FakeApi, client: AsyncClient) -> None:
    api.on("GET", "/v1/me", api.private_user())
    me = await client.me()
    assert me.created_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert me.updated_at == datetime(2024, 5, 2, 8, 30, 15, 250000, tzinfo=UTC)
    assert me.id == "1234567890123456789"
    assert me.settings == {"theme": "dark"}
    assert me.email == "ada@example.com"


async def test_unknown_fields_are_ignored(api: FakeApi, client: AsyncClient) -> None:
    api.on(
        "GET",
        "/v1/users/42",
        api.public_user(id="42", pronouns="she/her", badges=[{"kind": "early"}]),
    )
    user = await client.get_user("42")
    assert isinstance(user, PublicUser)
    assert user.id == "42"
    assert not hasattr(user, "pronouns")


async def test_missing_contract_field_fails_loudly(api: FakeApi, client: AsyncClient) -> None:
    body = api.public_user()
    del body["created_at"]
    api.on("GET", "/v1/users/42", body)
    with pytest.raises(msgspec.ValidationError, match="created_at"):
        await client.get_user("42")


async def test_update_me_sends_exactly_the_fields(api: FakeApi, client: AsyncClient) -> None:
    api.on("PATCH", "/v1/me", api.private_user(bio="hi"))
    me = await client.update_me(bio="hi", avatar_url=None, not_a_field=1)
    assert api.last_json() == {"bio": "hi", "avatar_url": None, "not_a_field": 1}
    assert me.bio == "hi"


async def test_sessions(api: FakeApi, client: AsyncClient) -> None:
    api.on(
        "GET",
        "/v1/me/sessions",
        {
            "items": [
                {
                    "id": "7",
                    "created_at": "2024-05-01T12:00:00Z",
                    "last_used_at": "2024-05-01T12:05:00Z",
                    "user_agent": "socius-python/0",
                    "ip": "127.0.0.1",
                    "current": True,
                }
            ]
        },
    )
    api.on("DELETE", "/v1/me/sessions/7", status=204)
    api.on("DELETE", "/v1/me/sessions", status=204)

    sessions = await client.sessions()
    assert sessions == [
        SessionInfo(
            id="7",
            created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
            last_used_at=datetime(2024, 5, 1, 12, 5, tzinfo=UTC),
            user_agent="socius-python/0",
            ip="127.0.0.1",
            current=True,
        )
    ]
    await client.revoke_session("7")
    assert (api.last.method, api.last.url.path) == ("DELETE", "/v1/me/sessions/7")
    await client.revoke_other_sessions()
    assert (api.last.method, api.last.url.path) == ("DELETE", "/v1/me/sessions")


async def test_change_password(api: FakeApi, client: AsyncClient) -> None:
    api.on("POST", "/v1/me/password", status=204)
    await client.change_password("old-password", "new-password")
    assert api.last_json() == {"current_password": "old-password", "new_password": "new-password"}


async def test_users_search_and_pages(api: FakeApi, client: AsyncClient) -> None:
    pages = {
        None: {"items": [api.public_user(id="1"), api.public_user(id="2")], "next_cursor": "c2"},
        "c2": {"items": [api.public_user(id="3")], "next_cursor": None},
    }

    def search(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    api.handle("GET", "/v1/users/search", search)

    page = await client.search_users("ad")
    assert isinstance(page, Page)
    assert [u.id for u in page.items] == ["1", "2"]
    assert page.next_cursor == "c2"
    assert dict(api.last.url.params) == {"q": "ad"}

    await client.search_users("ad", limit=2, cursor="c2")
    assert dict(api.last.url.params) == {"q": "ad", "limit": "2", "cursor": "c2"}

    assert [u.id async for u in client.iter_search_users("ad", limit=2)] == ["1", "2", "3"]


async def test_mute_and_unmute_a_conversation(api: FakeApi, client: AsyncClient) -> None:
    api.on("PUT", "/v1/conversations/77/mute", api.conversation(muted=True))
    api.on("DELETE", "/v1/conversations/77/mute", api.conversation(muted=False))
    client.access_token = "acc"
    muted = await client.mute_conversation("77")
    assert (api.last.method, muted.id, muted.muted, muted.unread_count) == ("PUT", "77", True, 2)
    assert api.last.content == b""
    assert (await client.unmute_conversation("77")).muted is False
    assert api.last.method == "DELETE"


async def test_a_conversation_without_muted_reads_as_not_muted(
    api: FakeApi, client: AsyncClient
) -> None:
    """A server from before conversation mutes leaves the field out."""
    older = api.conversation()
    del older["muted"]
    api.on("GET", "/v1/conversations/77", older)
    assert (await client.conversation("77")).muted is False


async def test_path_segments_are_quoted(api: FakeApi, client: AsyncClient) -> None:
    api.on("GET", "/v1/users/by-username/a/b", api.public_user())
    with pytest.raises(ApiError) as caught:
        await client.get_user_by_username("a/b")
    assert caught.value.status == 404
    assert api.last.url.raw_path == b"/v1/users/by-username/a%2Fb"


async def test_export_health_ready(api: FakeApi, client: AsyncClient) -> None:
    api.on("GET", "/v1/me/export", {"user": {"id": "1"}, "sessions": []})
    api.on("GET", "/healthz", {"status": "ok"})
    api.on("GET", "/readyz", {"status": "ok", "checks": {"database": "ok"}})
    client.access_token = "acc"
    assert await client.export() == {"user": {"id": "1"}, "sessions": []}
    assert await client.health() == {"status": "ok"}
    assert "authorization" not in api.last.headers
    assert (await client.ready())["checks"] == {"database": "ok"}


async def test_raw_request_options(api: FakeApi, client: AsyncClient) -> None:
    api.on("POST", "/v1/echo", {"ok": True})
    client.access_token = "acc"

    await client.raw("POST", "/v1/echo", content=b"{not json", headers={"X-Test": "1"})
    assert api.last.content == b"{not json"
    assert api.last.headers["x-test"] == "1"
    assert api.last.headers["authorization"] == "Bearer acc"

    await client.raw("POST", "/v1/echo", json={"a": 1}, auth=False)
    assert "authorization" not in api.last.headers
    assert api.last_json() == {"a": 1}

    response = await client.request("POST", "/v1/echo", params={"x": None, "y": 0})
    assert response.json() == {"ok": True}
    assert dict(api.last.url.params) == {"y": "0"}
    assert api.last.content == b""


async def test_with_token_shares_http(api: FakeApi, client: AsyncClient) -> None:
    api.on("GET", "/v1/me", api.private_user())
    client.access_token = "mine"
    other = client.with_token("theirs")
    assert other.http is client.http
    await other.me()
    assert api.last.headers["authorization"] == "Bearer theirs"
    assert client.access_token == "mine"
    await other.aclose()
    assert not client.http.is_closed


async def test_given_http_is_not_closed(api: FakeApi) -> None:
    api.on("GET", "/healthz", {"status": "ok"})
    async with httpx.AsyncClient(base_url="http://test", transport=api.transport()) as http:
        async with AsyncClient(http=http, user_agent="tests/1") as client:
            await client.health()
        assert not http.is_closed
        assert api.last.headers["user-agent"] == "tests/1"
        assert str(api.last.url) == "http://test/healthz"


async def test_given_http_without_base_url_uses_base_url(api: FakeApi) -> None:
    api.on("GET", "/api/healthz", {"status": "ok"})
    async with httpx.AsyncClient(transport=api.transport()) as http:
        client = AsyncClient("http://example.test/api/", http=http)
        await client.health()
    assert str(api.last.url) == "http://example.test/api/healthz"


async def test_owned_http_is_closed() -> None:
    async with AsyncClient("http://127.0.0.1:1", timeout=2.5) as client:
        http = client.http
        assert http.timeout == httpx.Timeout(2.5)
        assert http.headers["user-agent"] == USER_AGENT
        assert str(http.base_url) == "http://127.0.0.1:1"
    assert http.is_closed
