"""Identity contract: public profiles and user search."""

from __future__ import annotations

import secrets

from conftest import PASSWORD
from contract import api_error, assert_error, bearer
from socius.domain.users import UserStatus
from socius.services.audit import Actor

PUBLIC_USER_KEYS = {
    "id",
    "username",
    "display_name",
    "bio",
    "avatar_url",
    "is_private",
    "friends_count",
    "followers_count",
    "following_count",
    "created_at",
}


def disable(http, app, username: str) -> None:
    async def run() -> None:
        admin = app.wiring.container.admin
        await admin.set_status(
            Actor.command_line(), await admin.find_user(username), UserStatus.DISABLED
        )

    http.blocking_portal.call(run)


# ------------------------------------------------------------------------ public profiles


def test_public_profile_by_id_and_by_username_has_no_private_fields(register, http):
    alice = register(email="hidden.alice@example.org", display_name="Alice A")
    bob = register()
    for path in (f"/v1/users/{alice.id}", f"/v1/users/by-username/{alice.username}"):
        response = http.get(path, headers=bearer(bob.auth.access_token))
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == PUBLIC_USER_KEYS
        assert body["id"] == alice.id
        assert body["username"] == alice.username
        assert body["display_name"] == "Alice A"
        assert (body["friends_count"], body["followers_count"], body["following_count"]) == (
            0,
            0,
            0,
        )
        assert "hidden.alice@example.org" not in response.text
        assert "dm_policy" not in response.text
        assert "settings" not in response.text


def test_by_username_is_case_insensitive(register):
    alice, bob = register(), register()
    assert bob.client.get_user_by_username(alice.username.upper()).id == alice.id


def test_own_public_profile(register):
    alice = register()
    assert alice.client.get_user(alice.id).username == alice.username


def test_unknown_or_malformed_user_is_404(register, http):
    alice = register()
    for path in [
        "/v1/users/1",
        "/v1/users/999999999999999999",
        "/v1/users/abc",
        "/v1/users/-1",
        "/v1/users/0",
        "/v1/users/1.5",
        "/v1/users/99999999999999999999999",
        "/v1/users/by-username/no_such_user_here",
        "/v1/users/by-username/x",
    ]:
        response = http.get(path, headers=bearer(alice.auth.access_token))
        assert response.status_code == 404, (path, response.text)
        assert_error(response, 404, "user_not_found")


def test_disabled_user_is_404_and_not_searchable(app, register, http):
    alice = register(display_name="Disabled Person")
    bob = register()
    assert bob.client.get_user(alice.id).id == alice.id
    disable(http, app, alice.username)
    for path in (f"/v1/users/{alice.id}", f"/v1/users/by-username/{alice.username}"):
        assert_error(http.get(path, headers=bearer(bob.auth.access_token)), 404, "user_not_found")
    assert bob.client.search_users(alice.username).items == []
    # A disabled account cannot log in, nor use its old tokens.
    assert api_error(bob.client.login, alice.username, PASSWORD).status == 401
    assert api_error(alice.client.me).status == 401
    assert api_error(alice.client.refresh).status == 401


def test_deleted_user_is_404(register):
    alice, bob = register(), register()
    alice.client.delete_me(PASSWORD)
    assert api_error(bob.client.get_user, alice.id).code == "user_not_found"


# --------------------------------------------------------------------------------- search


def test_search_ranks_exact_then_prefix_then_display_name(register):
    stem = "q" + secrets.token_hex(4)
    contains = register(username=f"z_{stem}")  # username contains the text
    display = register(username="dn_" + secrets.token_hex(4), display_name=f"{stem.upper()} Fan")
    prefix_long = register(username=f"{stem}_longer")
    prefix = register(username=f"{stem}_a")
    exact = register(username=stem)
    register(username="unrelated_" + secrets.token_hex(3), display_name="Nobody")

    page = exact.client.search_users(stem)
    ids = [u.id for u in page.items]
    assert ids[0] == exact.id
    assert set(ids[1:3]) == {prefix.id, prefix_long.id}
    assert ids[3:] == [display.id, contains.id]
    assert page.next_cursor is None
    # Case-insensitive on both sides.
    assert [u.id for u in exact.client.search_users(stem.upper()).items] == ids


def test_search_result_has_the_public_shape(register, http):
    stem = "s" + secrets.token_hex(4)
    alice = register(username=f"{stem}_a", email=f"{stem}@example.org")
    response = http.get(
        "/v1/users/search", params={"q": stem}, headers=bearer(alice.auth.access_token)
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    assert [set(item) for item in body["items"]] == [PUBLIC_USER_KEYS]
    assert f"{stem}@example.org" not in response.text


def test_search_pages_with_cursor_without_duplicates(register):
    stem = "p" + secrets.token_hex(4)
    made = {register(username=f"{stem}_{i:02d}").id for i in range(7)}
    searcher = register()

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = searcher.client.search_users(stem, limit=3, cursor=cursor)
        assert len(page.items) <= 3
        seen += [u.id for u in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        assert pages < 10
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == made
    assert [u.id for u in searcher.client.iter_search_users(stem, limit=2)] == seen


def test_search_limit_bounds(register, http):
    alice = register()
    for limit in (0, 101, -1):
        response = http.get(
            "/v1/users/search",
            params={"q": "a", "limit": limit},
            headers=bearer(alice.auth.access_token),
        )
        assert_error(response, 422)
    for params in ({"q": "a" * 65}, {}, {"q": "a", "limit": "ten"}):
        response = http.get(
            "/v1/users/search", params=params, headers=bearer(alice.auth.access_token)
        )
        assert response.status_code in (400, 422), (params, response.text)
        assert_error(response, response.status_code)
    for limit in (1, 100):
        response = http.get(
            "/v1/users/search",
            params={"q": "a", "limit": limit},
            headers=bearer(alice.auth.access_token),
        )
        assert response.status_code == 200


def test_search_with_no_match_or_blank_query_is_empty(register):
    alice = register()
    assert alice.client.search_users("zzz_" + secrets.token_hex(6)).items == []
    assert alice.client.search_users("   ").items == []


def test_search_treats_like_wildcards_literally(register):
    stem = "w" + secrets.token_hex(4)
    alice = register(username=f"{stem}_x")
    register(username=f"{stem}ax")
    # "_" must match only an underscore, "%" nothing at all.
    assert [u.id for u in alice.client.search_users(f"{stem}_").items] == [alice.id]
    assert alice.client.search_users("%").items == []


def test_search_needs_a_token(http):
    assert_error(http.get("/v1/users/search", params={"q": "a"}), 401)


def test_garbage_cursor_is_400_invalid_cursor(register, http):
    alice = register()
    # Not base64, not JSON, not an object, a negative offset.
    for cursor in ("!!!", "bm90IGpzb24", "W10", "eyJvIjotNX0"):
        response = http.get(
            "/v1/users/search",
            params={"q": "a", "cursor": cursor},
            headers=bearer(alice.auth.access_token),
        )
        assert_error(response, 400, "invalid_cursor")
