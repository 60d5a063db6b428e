"""Identity contract: /v1/me (profile, password, sessions, erasure, export)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

from sqlalchemy import func, select

from conftest import PASSWORD
from contract import api_error, assert_error, bearer
from schema_walk import tables_holding
from socius.storage.tables import metadata, users

NEW_PASSWORD = "a completely different phrase 42"
USER_REFERENCE_NAMES = {"user_id", "owner_id", "sender_id", "src", "dst"}


def login_raw(http, username: str, password: str = PASSWORD, user_agent: str | None = None):
    headers = {"User-Agent": user_agent} if user_agent else {}
    response = http.post(
        "/v1/auth/login", json={"username": username, "password": password}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------------------- GET /v1/me


def test_me_is_the_private_profile(register, http):
    alice = register(email="Me.Private@Example.org", display_name="Alice Private")
    response = http.get("/v1/me", headers=bearer(alice.auth.access_token))
    assert response.status_code == 200
    me = response.json()
    assert me["id"] == alice.id
    assert me["username"] == alice.username
    assert me["email"] == "me.private@example.org"
    assert me["display_name"] == "Alice Private"
    assert me["dm_policy"] == "everyone"
    assert me["is_private"] is False
    assert me["avatar_url"] is None
    assert me["bio"] == ""
    assert isinstance(me["settings"], dict)
    assert "password_hash" not in response.text
    assert "$argon2" not in response.text


# -------------------------------------------------------------------------- PATCH /v1/me


def test_patch_changes_only_the_given_fields(register):
    alice = register(display_name="Original Name")
    before = alice.client.me()
    after = alice.client.update_me(bio="hello there")
    assert after.bio == "hello there"
    assert after.display_name == "Original Name"
    assert (after.is_private, after.dm_policy, after.avatar_url) == (False, "everyone", None)
    assert after.updated_at >= before.updated_at

    after = alice.client.update_me(
        display_name="New Name",
        is_private=True,
        dm_policy="friends",
        avatar_url="https://img.example.org/a.png",
    )
    assert after.bio == "hello there"
    assert after.display_name == "New Name"
    assert after.is_private is True
    assert after.dm_policy == "friends"
    assert after.avatar_url == "https://img.example.org/a.png"
    assert after.username == before.username
    assert after.email == before.email
    assert alice.client.me() == after


def test_patch_with_no_fields_changes_nothing(register):
    alice = register()
    before = alice.client.me()
    assert alice.client.update_me() == before


def test_avatar_url_null_clears_it(register):
    alice = register()
    alice.client.update_me(avatar_url="https://img.example.org/b.png")
    assert alice.client.me().avatar_url == "https://img.example.org/b.png"
    assert alice.client.update_me(avatar_url=None).avatar_url is None
    assert alice.client.me().avatar_url is None


def test_patch_unknown_or_read_only_fields_are_422_and_change_nothing(register, http):
    alice = register(email="ro@example.org")
    headers = bearer(alice.auth.access_token)
    before = http.get("/v1/me", headers=headers).json()
    for body in [
        {"username": "someone_else"},
        {"email": "new@example.org"},
        {"id": "1"},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"password_hash": "x"},
        {"is_admin": True},
        {"status": "active"},
        {"favourite_colour": "blue"},
        {"bio": "sneaky", "username": "someone_else"},
    ]:
        response = http.patch("/v1/me", json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
        assert_error(response, 422, "unknown_field")
        assert http.get("/v1/me", headers=headers).json() == before, body


def test_patch_invalid_values_are_422_and_change_nothing(register, http):
    alice = register()
    headers = bearer(alice.auth.access_token)
    before = http.get("/v1/me", headers=headers).json()
    for body in [
        {"dm_policy": "nobody"},
        {"dm_policy": None},
        {"is_private": "yes"},
        {"display_name": "x" * 65},
        {"display_name": ""},
        {"bio": 42},
        {"avatar_url": "javascript:alert(1)"},
        {"bio": "sneaky", "dm_policy": "nobody"},
    ]:
        response = http.patch("/v1/me", json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
        assert_error(response, 422)
        assert http.get("/v1/me", headers=headers).json() == before, body


def test_patch_is_visible_in_the_public_profile(register):
    alice, bob = register(), register()
    alice.client.update_me(display_name="Public Alice", bio="bio text", is_private=True)
    seen = bob.client.get_user(alice.id)
    assert (seen.display_name, seen.bio, seen.is_private) == ("Public Alice", "bio text", True)


# ------------------------------------------------------------------- POST /v1/me/password


def test_change_password_with_wrong_current_is_403(register, sdk):
    alice = register()
    error = api_error(alice.client.change_password, "not my password 1", NEW_PASSWORD)
    assert (error.status, error.code) == (403, "invalid_password")
    assert sdk().login(alice.username, PASSWORD).user.id == alice.id
    assert api_error(sdk().login, alice.username, NEW_PASSWORD).status == 401


def test_change_password_to_a_weak_one_is_422(register, sdk):
    alice = register()
    for new in ["password123", "short1!", "x" * 257]:
        error = api_error(alice.client.change_password, PASSWORD, new)
        assert error.status == 422, new
    assert sdk().login(alice.username, PASSWORD).user.id == alice.id


def test_change_password_containing_the_username_is_weak(register):
    alice = register()
    error = api_error(alice.client.change_password, PASSWORD, f"x{alice.username}Y!")
    assert (error.status, error.code) == (422, "weak_password")


def test_change_password_revokes_other_sessions_and_keeps_this_one(register, sdk, http):
    alice = register()
    other = sdk()
    other.login(alice.username, PASSWORD)
    other_refresh = other.refresh_token
    assert other.me().id == alice.id

    response = http.post(
        "/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(alice.auth.access_token),
    )
    assert response.status_code == 204

    assert alice.client.me().id == alice.id  # this session stays
    assert api_error(other.me).status == 401  # the other one ends at once
    assert api_error(sdk().refresh, other_refresh).status == 401
    assert [s.current for s in alice.client.sessions()] == [True]
    # This session's refresh token keeps working.
    alice.client.refresh()
    assert alice.client.me().id == alice.id

    assert sdk().login(alice.username, NEW_PASSWORD).user.id == alice.id
    error = api_error(sdk().login, alice.username, PASSWORD)
    assert (error.status, error.code) == (401, "invalid_credentials")


# ---------------------------------------------------------------------- /v1/me/sessions


def test_sessions_list_marks_the_current_one_and_records_the_user_agent(register, http):
    alice = register()
    phone = login_raw(http, alice.username, user_agent="PhoneApp/1.0 (test)")
    laptop = login_raw(http, alice.username, user_agent="LaptopBrowser/2.0")

    response = http.get("/v1/me/sessions", headers=bearer(phone["access_token"]))
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 3
    assert len({s["id"] for s in items}) == 3
    for item in items:
        assert {"id", "created_at", "last_used_at", "user_agent", "ip", "current"} <= set(item)
    current = [s for s in items if s["current"]]
    assert len(current) == 1
    assert current[0]["user_agent"] == "PhoneApp/1.0 (test)"
    assert "LaptopBrowser/2.0" in {s["user_agent"] for s in items}
    # From the laptop, the laptop is current.
    items = http.get("/v1/me/sessions", headers=bearer(laptop["access_token"])).json()["items"]
    assert [s["user_agent"] for s in items if s["current"]] == ["LaptopBrowser/2.0"]
    assert "token" not in json.dumps(items).lower()


def test_revoke_one_session(register, sdk):
    alice = register()
    other = sdk()
    other.login(alice.username, PASSWORD)
    sessions = alice.client.sessions()
    target = next(s for s in sessions if not s.current)

    alice.client.revoke_session(target.id)
    assert api_error(other.me).status == 401
    assert api_error(sdk().refresh, other.refresh_token).status == 401
    assert alice.client.me().id == alice.id
    assert [s.id for s in alice.client.sessions()] == [s.id for s in sessions if s.current]


def test_revoke_current_session_ends_it(register):
    alice = register()
    current = alice.client.sessions()[0]
    alice.client.revoke_session(current.id)
    assert api_error(alice.client.me).status == 401


def test_revoke_unknown_or_malformed_session_is_404(register, http):
    alice = register()
    for bad in ["abc", "0", "-5", "99999999999999999999", "1", alice.id]:
        response = http.delete(f"/v1/me/sessions/{bad}", headers=bearer(alice.auth.access_token))
        assert response.status_code == 404, (bad, response.text)
        assert_error(response, 404)
    assert http.get("/v1/me", headers=bearer(alice.auth.access_token)).status_code == 200


def test_user_b_cannot_see_or_revoke_user_a_sessions(register, http):
    alice, bob = register(), register()
    alice_session = alice.client.sessions()[0]
    bob_sessions = bob.client.sessions()
    assert alice_session.id not in {s.id for s in bob_sessions}

    response = http.delete(
        f"/v1/me/sessions/{alice_session.id}", headers=bearer(bob.auth.access_token)
    )
    assert_error(response, 404)
    assert alice.client.me().id == alice.id
    assert [s.id for s in alice.client.sessions()] == [alice_session.id]
    alice.client.refresh()  # the refresh token is still good too
    assert alice.client.me().id == alice.id
    # Revoking all others from B leaves A alone as well.
    bob.client.revoke_other_sessions()
    assert alice.client.me().id == alice.id


def test_revoke_all_other_sessions(register, sdk, http):
    alice = register()
    others = [sdk() for _ in range(3)]
    for client in others:
        client.login(alice.username, PASSWORD)
    assert len(alice.client.sessions()) == 4

    response = http.delete("/v1/me/sessions", headers=bearer(alice.auth.access_token))
    assert response.status_code == 204
    for client in others:
        assert api_error(client.me).status == 401
        assert api_error(sdk().refresh, client.refresh_token).status == 401
    sessions = alice.client.sessions()
    assert len(sessions) == 1
    assert sessions[0].current
    assert alice.client.me().id == alice.id


# ------------------------------------------------------------------------- DELETE /v1/me


def test_delete_me_with_wrong_password_is_403_and_keeps_the_account(register, http, sdk):
    alice = register()
    response = http.request(
        "DELETE",
        "/v1/me",
        json={"password": "not my password 1"},
        headers=bearer(alice.auth.access_token),
    )
    assert_error(response, 403, "invalid_password")
    assert alice.client.me().id == alice.id
    assert sdk().login(alice.username, PASSWORD).user.id == alice.id


def test_delete_me_needs_the_password_field(register, http):
    alice = register()
    response = http.request("DELETE", "/v1/me", json={}, headers=bearer(alice.auth.access_token))
    assert_error(response, 422)
    assert alice.client.me().id == alice.id


def test_delete_me_ends_every_session_and_frees_the_username(register, sdk, http):
    alice = register(email="gone@example.org")
    bob = register()
    phone = sdk()
    phone.login(alice.username, PASSWORD)
    tokens = [
        (alice.auth.access_token, alice.auth.refresh_token),
        (phone.access_token, phone.refresh_token),
    ]
    for access, _ in tokens:  # both tokens known-good (and so in the verification cache)
        assert http.get("/v1/me", headers=bearer(access)).status_code == 200

    response = http.request(
        "DELETE", "/v1/me", json={"password": PASSWORD}, headers=bearer(alice.auth.access_token)
    )
    assert response.status_code == 204

    for access, refresh in tokens:
        for method, path in (
            ("GET", "/v1/me"),
            ("GET", "/v1/me/sessions"),
            ("GET", "/v1/me/export"),
            ("GET", f"/v1/users/{bob.id}"),
            ("POST", "/v1/auth/logout"),
        ):
            assert_error(http.request(method, path, headers=bearer(access)), 401)
        assert_error(http.post("/v1/auth/refresh", json={"refresh_token": refresh}), 401)
    error = api_error(sdk().login, alice.username, PASSWORD)
    assert (error.status, error.code) == (401, "invalid_credentials")
    assert api_error(sdk().login, "gone@example.org", PASSWORD).status == 401
    assert api_error(bob.client.get_user, alice.id).status == 404
    assert api_error(bob.client.get_user_by_username, alice.username).status == 404

    again = sdk().register(alice.username, PASSWORD, email="gone@example.org")
    assert again.user.username == alice.username
    assert again.user.id != alice.id


def _user_reference_columns():
    """Every (table, column) that can hold a user id, read from the live metadata."""
    found = []
    for table in metadata.sorted_tables:
        for column in table.columns:
            points_at_users = any(fk.column is users.c.id for fk in column.foreign_keys)
            if points_at_users or column.name in USER_REFERENCE_NAMES:
                found.append((table, column))
    return found


def _count_references(http, app, user_id: int) -> dict[str, int]:
    async def count() -> dict[str, int]:
        counts: dict[str, int] = {}
        async with app.wiring.database.primary.connect() as conn:
            for table, column in _user_reference_columns():
                stmt = select(func.count()).select_from(table).where(column == user_id)
                counts[f"{table.name}.{column.name}"] = (await conn.execute(stmt)).scalar_one()
            stmt = select(func.count()).select_from(users).where(users.c.id == user_id)
            counts["users.id"] = (await conn.execute(stmt)).scalar_one()
        return counts

    return http.blocking_portal.call(count)


def test_account_deletion_erases_every_row_that_references_the_user(app, http, register, sdk):
    columns = _user_reference_columns()
    names = {f"{t.name}.{c.name}" for t, c in columns}
    assert {"sessions.user_id", "refresh_tokens.user_id"} <= names  # the walk finds them

    alice, bob = register(), register()
    for client in (alice.client, bob.client):
        client.refresh()  # a spent and a live refresh token
        client.update_me(bio="something to erase")
    phone = sdk()
    phone.login(alice.username, PASSWORD)
    phone.logout()  # a revoked session too
    # Content of hers, in rows that need not name her: a profile, a message, a reaction.
    name, words, emoji = (f"{kind}{secrets.token_hex(5)}" for kind in ("nm", "wd", "em"))
    alice.client.update_me(display_name=name)
    direct = alice.client.open_direct(bob.id)
    bobs = bob.client.send_message(direct.id, "hello", client_msg_id="b1")
    alice.client.send_message(direct.id, f"my words {words}", client_msg_id="a1")
    alice.client.request(
        "PUT", f"/v1/conversations/{direct.id}/messages/{bobs.id}/reactions/{emoji}"
    )
    assert tables_holding(http, app, name, words, emoji).keys() == {name, words, emoji}

    before = _count_references(http, app, int(alice.id))
    bob_before = _count_references(http, app, int(bob.id))
    assert before["users.id"] == 1
    assert before["sessions.user_id"] >= 2
    assert before["refresh_tokens.user_id"] >= 3

    alice.client.delete_me(PASSWORD)

    after = _count_references(http, app, int(alice.id))
    assert after == dict.fromkeys(before, 0), {k: v for k, v in after.items() if v}
    # And nothing she wrote is left in any row of any table.
    assert tables_holding(http, app, name, words, emoji) == {}
    # Only Alice's rows went: Bob's are all still there (his log only grew: he was told
    # her message went and she left the conversation).
    bob_after = _count_references(http, app, int(bob.id))
    assert bob_after.pop("user_events.user_id") > bob_before.pop("user_events.user_id")
    assert bob_after == bob_before
    assert bob.client.me().bio == "something to erase"


# ------------------------------------------------------------------------ /v1/me/export


def test_export_contains_profile_and_sessions_but_no_secrets(register, sdk, http):
    alice = register(email="export@example.org", display_name="Export Me")
    alice.client.update_me(bio="exported bio")
    phone = sdk()
    phone.login(alice.username, PASSWORD)
    spent = alice.auth.refresh_token
    alice.client.refresh()
    refresh_tokens = [spent, alice.client.refresh_token, phone.refresh_token]

    response = http.get("/v1/me/export", headers=bearer(alice.client.access_token))
    assert response.status_code == 200
    archive = response.json()
    text = response.text

    profile = archive["profile"]
    assert str(profile["id"]) == alice.id
    assert profile["username"] == alice.username
    assert profile["email"] == "export@example.org"
    assert profile["display_name"] == "Export Me"
    assert profile["bio"] == "exported bio"
    exported_sessions = {str(s["id"]) for s in archive["sessions"]}
    assert {s.id for s in alice.client.sessions()} <= exported_sessions

    assert "password_hash" not in text
    assert "$argon2" not in text
    assert "token_hash" not in text
    for token in refresh_tokens:
        digest = hashlib.sha256(token.encode()).digest()
        for form in (
            token,
            digest.hex(),
            base64.b64encode(digest).decode(),
            base64.urlsafe_b64encode(digest).decode().rstrip("="),
        ):
            assert form not in text
    assert alice.client.access_token not in text


def test_export_needs_a_token(http):
    assert_error(http.get("/v1/me/export"), 401)


def test_export_is_only_about_the_caller(register):
    alice = register(email="exp_a@example.org")
    bob = register(email="exp_b@example.org")
    text = json.dumps(alice.client.export())
    assert "exp_a@example.org" in text
    assert "exp_b@example.org" not in text
    assert bob.id not in text
