"""The generated sync Client behaves like the async one."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from fake_socius_api import FakeApi

from socius.client import ApiError, Client, PrivateUser


def tokens(client: Client) -> tuple[str | None, str | None]:
    return client.access_token, client.refresh_token


def test_login_me_refresh_logout(api: FakeApi) -> None:
    api.on("POST", "/v1/auth/login", api.auth_body("acc-1", "ref-1"))
    api.on("POST", "/v1/auth/refresh", api.auth_body("acc-2", "ref-2"))
    api.on("GET", "/v1/me", api.private_user(unknown_field=True))
    api.on("POST", "/v1/auth/logout", status=204)

    with httpx.Client(base_url="http://test", transport=api.transport()) as http:
        with Client(http=http) as client:
            client.login("ada", "password123")
            assert client.access_token == "acc-1"

            me = client.me()
            assert isinstance(me, PrivateUser)
            assert me.created_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
            assert api.last.headers["authorization"] == "Bearer acc-1"

            client.refresh()
            assert api.last_json() == {"refresh_token": "ref-1"}
            assert (client.access_token, client.refresh_token) == ("acc-2", "ref-2")

            client.logout()
            assert tokens(client) == (None, None)
        assert not http.is_closed


def test_errors_and_pages(api: FakeApi) -> None:
    api.on(
        "GET",
        "/v1/users/search",
        {"items": [api.public_user(id="9")], "next_cursor": None},
    )
    api.on(
        "GET",
        "/v1/me",
        {"error": {"code": "unauthenticated", "message": "log in", "details": {}}},
        status=401,
    )
    with httpx.Client(base_url="http://test", transport=api.transport()) as http:
        client = Client(http=http)
        assert [u.id for u in client.iter_search_users("x")] == ["9"]
        with pytest.raises(ApiError) as caught:
            client.me()
        assert (caught.value.status, caught.value.code) == (401, "unauthenticated")


def test_mute_and_unmute_a_conversation(api: FakeApi) -> None:
    api.on("PUT", "/v1/conversations/7%2F7/mute", api.conversation(id="7/7", muted=True))
    api.on("DELETE", "/v1/conversations/7%2F7/mute", api.conversation(id="7/7"))
    with httpx.Client(base_url="http://test", transport=api.transport()) as http:
        client = Client(http=http, access_token="acc")
        assert client.mute_conversation("7/7").muted is True
        assert api.last.url.raw_path == b"/v1/conversations/7%2F7/mute"
        assert client.unmute_conversation("7/7").muted is False
        assert api.last.method == "DELETE"


def test_owned_http_is_closed() -> None:
    with Client("http://127.0.0.1:1") as client:
        http = client.http
    assert http.is_closed
