"""API conventions on the identity surface: auth, the error envelope, limits, no leaks."""

from __future__ import annotations

import base64

from conftest import PASSWORD
from contract import assert_error, bearer

PROTECTED = [
    ("GET", "/v1/me"),
    ("PATCH", "/v1/me"),
    ("DELETE", "/v1/me"),
    ("POST", "/v1/me/password"),
    ("GET", "/v1/me/sessions"),
    ("DELETE", "/v1/me/sessions"),
    ("DELETE", "/v1/me/sessions/123"),
    ("GET", "/v1/me/export"),
    ("GET", "/v1/users/123"),
    ("GET", "/v1/users/by-username/someone"),
    ("GET", "/v1/users/search?q=a"),
    ("POST", "/v1/auth/logout"),
]


def test_protected_routes_need_a_token(http):
    for method, path in PROTECTED:
        response = http.request(method, path, json={})
        assert response.status_code == 401, (method, path, response.text)
        assert_error(response, 401)


def test_garbage_tokens_are_401(http, register):
    register()  # keys exist and a real session is live
    for authorization in [
        "Bearer garbage",
        "Bearer ",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJFZERTQSJ9.e30.AAAA",
        "Basic dXNlcjpwYXNz",
        "garbage",
        "Bearer\tgarbage",
    ]:
        for path in ("/v1/me", "/v1/users/search?q=a", "/v1/me/sessions"):
            response = http.get(path, headers={"Authorization": authorization})
            assert response.status_code == 401, (authorization, path, response.text)
            assert_error(response, 401)


def test_refresh_token_is_not_an_access_token(register, http):
    alice = register()
    assert_error(http.get("/v1/me", headers=bearer(alice.auth.refresh_token)), 401)


def test_unknown_routes_are_json_404(http):
    for path in ("/v1/nope", "/nope", "/v1/me/nope", "/v2/me"):
        assert_error(http.get(path), 404)


def test_wrong_method_is_an_error_envelope(http):
    response = http.put("/v1/auth/login", json={})
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)


def test_malformed_json_is_400_invalid_json(register, http):
    alice = register()
    for method, path, authed in [
        ("POST", "/v1/auth/register", False),
        ("POST", "/v1/auth/login", False),
        ("POST", "/v1/auth/refresh", False),
        ("PATCH", "/v1/me", True),
        ("POST", "/v1/me/password", True),
    ]:
        headers = {"Content-Type": "application/json"}
        if authed:
            headers |= bearer(alice.auth.access_token)
        for body in (b"{not json", b'{"username": "x",', b"\xff\xfe", b'{"a": 1} trailing'):
            response = http.request(method, path, content=body, headers=headers)
            assert response.status_code == 400, (path, body, response.text)
            assert_error(response, 400, "invalid_json")
    assert alice.client.me().id == alice.id


def test_json_of_the_wrong_shape_is_a_4xx(http):
    for body in (b"[]", b'"text"', b"42", b"null"):
        response = http.post(
            "/v1/auth/register", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code in (400, 422), (body, response.text)
        assert_error(response, response.status_code)


def test_body_over_64_kib_is_413(register, http):
    alice = register()
    big = b'{"username": "' + b"a" * (64 * 1024) + b'", "password": "x"}'
    response = http.post(
        "/v1/auth/register", content=big, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413)
    response = http.patch(
        "/v1/me",
        content=b'{"bio": "' + b"b" * (65 * 1024) + b'"}',
        headers={"Content-Type": "application/json"} | bearer(alice.auth.access_token),
    )
    assert_error(response, 413)
    assert alice.client.me().bio == ""


def test_body_just_under_the_limit_is_not_413(register, http):
    alice = register()
    body = b'{"bio": "' + b"b" * (60 * 1024) + b'"}'
    response = http.patch(
        "/v1/me",
        content=body,
        headers={"Content-Type": "application/json"} | bearer(alice.auth.access_token),
    )
    assert_error(response, 422)  # too long a bio, but read and judged


def test_validation_errors_use_the_envelope(http):
    assert_error(http.post("/v1/auth/register", json={"password": PASSWORD}), 422)
    assert_error(http.post("/v1/auth/register", json={"username": 5, "password": PASSWORD}), 422)
    assert_error(http.post("/v1/auth/login", json={"username": "a"}), 422)
    error = assert_error(
        http.post("/v1/auth/login", json={"username": "a", "password": "b", "x": 1}), 422
    )
    assert error["code"] == "unknown_field"


def test_health_and_docs_need_no_token(http):
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200
    assert http.get("/openapi.json").status_code == 200
    assert http.get("/metrics").status_code == 200


def _secrets_of(http, app) -> list[str]:
    """Every password hash and every refresh-token hash stored, in any likely encoding."""
    from sqlalchemy import select

    from socius.storage.tables import refresh_tokens, users

    async def read() -> list[str]:
        async with app.wiring.database.primary.connect() as conn:
            hashes = [row[0] for row in await conn.execute(select(users.c.password_hash))]
            digests = [row[0] for row in await conn.execute(select(refresh_tokens.c.token_hash))]
        out = list(hashes)
        for digest in digests:
            out += [
                digest.hex(),
                base64.b64encode(digest).decode(),
                base64.urlsafe_b64encode(digest).decode().rstrip("="),
            ]
        return out

    return http.blocking_portal.call(read)


def test_responses_never_leak_hashes_or_other_users_emails(app, register, http, sdk):
    seen: list[str] = []

    def keep(response):
        response.read()
        seen.append(response.text)

    http.event_hooks["response"].append(keep)
    try:
        alice = register(email="alice.private@example.org", display_name="Alice Leak")
        bob = register(email="bob.private@example.org", display_name="Bob Leak")
        bob.client.update_me(bio="bob bio")
        phone = sdk()
        phone.login("bob.private@example.org", PASSWORD)
        phone.refresh()
        start = len(seen)  # from here on, everything is what Alice sees
        a = alice.client
        a.me()
        a.get_user(bob.id)
        a.get_user_by_username(bob.username)
        a.search_users("leak")
        a.search_users(bob.username)
        a.sessions()
        a.export()
        a.raw("GET", "/v1/users/search", params={"q": "private@example"})
        a.raw("PATCH", "/v1/me", json={"email": "x@example.org"})
        a.raw(
            "POST",
            "/v1/auth/login",
            json={"username": bob.username, "password": "nope1234"},
            auth=False,
        )
        a.raw(
            "POST",
            "/v1/auth/register",
            json={
                "username": bob.username,
                "password": PASSWORD,
                "email": "bob.private@example.org",
            },
            auth=False,
        )
        a.raw(
            "POST",
            "/v1/auth/register",
            json={
                "username": "fresh_name_zz",
                "password": PASSWORD,
                "email": "bob.private@example.org",
            },
            auth=False,
        )
    finally:
        http.event_hooks["response"].remove(keep)

    assert len(seen) >= 15
    secrets = _secrets_of(http, app)
    assert len(secrets) >= 2 + 3 * 3
    alice_view = seen[start:]
    assert len(alice_view) >= 10
    for text in seen:
        assert "password_hash" not in text
        assert "token_hash" not in text
        assert "$argon2" not in text
        for secret in secrets:
            assert secret not in text
    for text in alice_view:
        assert "bob.private@example.org" not in text
