"""Identity contract: register, login, refresh, logout, login throttling, rehash on login."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from clock import Clock
from conftest import PASSWORD, App, make_app, unique_name
from contract import api_error, assert_error, bearer
from socius.client import Client

PRIVATE_USER_KEYS = {
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
    "email",
    "dm_policy",
    "settings",
    "updated_at",
}


def register_raw(http, **body):
    body.setdefault("username", unique_name())
    body.setdefault("password", PASSWORD)
    return http.post("/v1/auth/register", json=body)


# ------------------------------------------------------------------------------- register


def test_register_answers_201_with_user_and_token_pair(http):
    response = register_raw(
        http, username="Reg_Shape_1", email="Shape1@Example.org", display_name="Shape One"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert {"user", "access_token", "refresh_token", "expires_in"} <= set(body)
    user = body["user"]
    assert set(user) >= PRIVATE_USER_KEYS
    assert "password_hash" not in user
    assert "password" not in user
    assert user["username"] == "reg_shape_1"
    assert user["email"] == "shape1@example.org"
    assert user["display_name"] == "Shape One"
    assert isinstance(user["id"], str)
    assert user["id"].isdigit()
    assert isinstance(body["expires_in"], int)
    assert body["expires_in"] > 0
    assert body["access_token"] != body["refresh_token"]
    me = http.get("/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


def test_display_name_defaults_to_the_username(register):
    alice = register(username="Default_Dn_1")
    assert alice.auth.user.display_name == "default_dn_1"


def test_username_is_unique_case_insensitively(register, sdk):
    register(username="Case_Taken_1")
    error = api_error(sdk().register, "CASE_TAKEN_1", PASSWORD)
    assert (error.status, error.code) == (409, "username_taken")
    error = api_error(sdk().register, "case_taken_1", PASSWORD)
    assert (error.status, error.code) == (409, "username_taken")


def test_taken_username_mentioning_email_is_still_username_taken(register, sdk):
    """The conflict must be told apart by constraint, not by the word "email" in the text."""
    register(username="email_fan_1", email="fan1@example.org")
    error = api_error(sdk().register, "email_fan_1", PASSWORD, email="other1@example.org")
    assert (error.status, error.code) == (409, "username_taken")


def test_email_is_unique_case_insensitively(register, sdk):
    register(email="Same.Mail@Example.org")
    error = api_error(sdk().register, unique_name(), PASSWORD, email="same.mail@EXAMPLE.org")
    assert (error.status, error.code) == (409, "email_taken")


def test_conflicting_register_creates_nothing(http, register):
    taken = register(email="keep@example.org")
    response = register_raw(http, username=taken.username.upper(), email="new@example.org")
    assert_error(response, 409, "username_taken")
    # The email of the refused attempt is still free.
    assert register_raw(http, email="new@example.org").status_code == 201


def test_invalid_usernames_are_422(http):
    for username in ["ab", "a" * 33, "has-dash", "has space", "dot.ted", "ünïcode", "", "   "]:
        error = assert_error(register_raw(http, username=username), 422)
        if username.strip():
            assert error["code"] == "invalid_username", username


def test_username_length_bounds_are_accepted(http):
    for length in (3, 32):
        name = (unique_name("u").replace("_", "") + "x" * 40)[:length]
        response = register_raw(http, username=name.upper())
        assert response.status_code == 201, response.text
        assert response.json()["user"]["username"] == name.lower()


def test_password_length_limits(http):
    for password, accepted in [
        ("Ab3$efg", False),  # 7 characters
        ("Ab3$efgh", True),  # 8
        (("Ab3$efgh" * 40)[:256], True),  # 256
        (("Ab3$efgh" * 40)[:257], False),  # 257
    ]:
        response = register_raw(http, password=password)
        if accepted:
            assert response.status_code == 201, (len(password), response.text)
        else:
            assert_error(response, 422)


def test_common_passwords_are_weak(http):
    for password in ["password123", "QWERTY123", "letmein1", "aaaaaaaaaaaa"]:
        assert_error(register_raw(http, password=password), 422, "weak_password")


def test_password_containing_the_username_is_weak(http):
    name = unique_name("zorro")
    response = register_raw(http, username=name, password=f"My{name.upper()}Pass!")
    assert_error(response, 422, "weak_password")
    # Nothing was created: the name is still free.
    assert register_raw(http, username=name).status_code == 201


def test_display_name_length(http):
    response = register_raw(http, display_name="d" * 64)
    assert response.status_code == 201, response.text
    assert response.json()["user"]["display_name"] == "d" * 64
    assert_error(register_raw(http, display_name="d" * 65), 422)


def test_invalid_email_is_422(http):
    assert_error(register_raw(http, email="not-an-email"), 422, "invalid_email")


# ---------------------------------------------------------------------------------- login


def test_login_by_username_and_by_email_case_insensitively(register, sdk):
    alice = register(username="Login_Ci_1", email="Login.Ci@Example.org")
    for login in ("login_ci_1", "LOGIN_CI_1", "login.ci@example.org", "LOGIN.CI@EXAMPLE.ORG"):
        client = sdk()
        result = client.login(login, PASSWORD)
        assert result.user.id == alice.id
        assert client.me().id == alice.id
    # Each login is a session of its own.
    assert len(alice.client.sessions()) == 5


def test_login_answer_has_the_register_shape(http, register):
    alice = register()
    response = http.post("/v1/auth/login", json={"username": alice.username, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert {"user", "access_token", "refresh_token", "expires_in"} <= set(body)
    assert set(body["user"]) >= PRIVATE_USER_KEYS
    assert body["user"]["id"] == alice.id


def test_unknown_user_and_wrong_password_get_the_same_401(http, register):
    alice = register(email="same401@example.org")
    attempts = [
        {"username": alice.username, "password": "wrong password 123"},
        {"username": "nobody_" + alice.username[:20], "password": "wrong password 123"},
        {"username": "nobody@example.org", "password": "wrong password 123"},
        {"username": "same401@example.org", "password": "wrong password 123"},
    ]
    bodies = []
    for attempt in attempts:
        response = http.post("/v1/auth/login", json=attempt)
        assert_error(response, 401, "invalid_credentials")
        bodies.append(response.json())
    assert all(body == bodies[0] for body in bodies)


# -------------------------------------------------------------------------------- refresh


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(settings, clock: Clock) -> App:
    """The module's app runs on a clock the tests move (the refresh grace window)."""
    return make_app(settings, clock=clock)


def test_refresh_gives_a_new_pair_and_spends_the_old_refresh_token(register, settings, clock):
    alice = register()
    first = alice.auth
    second = alice.client.refresh()
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token
    assert second.user.id == alice.id
    assert alice.client.me().id == alice.id  # the new access token works
    # The refresh token is single-use: once the grace window is over, it is refused.
    clock.advance(settings.refresh_grace_seconds + 1)
    error = api_error(alice.client.refresh, first.refresh_token)
    assert error.status == 401


def test_replaying_a_spent_refresh_token_revokes_the_whole_session(register, sdk, settings, clock):
    alice = register()
    other = sdk()
    other.login(alice.username, PASSWORD)  # another session, which must survive
    spent = alice.auth.refresh_token
    fresh = alice.client.refresh()
    assert alice.client.with_token(fresh.access_token).me().id == alice.id

    clock.advance(settings.refresh_grace_seconds + 1)
    error = api_error(sdk().refresh, spent)
    assert (error.status, error.code) == (401, "refresh_token_reused")

    # Everything of that session is dead: the access token and the latest refresh token.
    error = api_error(alice.client.with_token(fresh.access_token).me)
    assert error.status == 401
    error = api_error(sdk().refresh, fresh.refresh_token)
    assert error.status == 401
    # The other session is untouched.
    assert other.me().id == alice.id
    other.refresh()
    assert other.me().id == alice.id


def test_unknown_refresh_tokens_are_401(http):
    for token in ["x", "y" * 40, "z" * 256]:
        assert_error(http.post("/v1/auth/refresh", json={"refresh_token": token}), 401)


# --------------------------------------------------------------------------------- logout


def test_logout_ends_that_session_at_once(register, sdk, http):
    alice = register()
    other = sdk()
    other.login(alice.username, PASSWORD)
    access, refresh = alice.auth.access_token, alice.auth.refresh_token
    assert http.get("/v1/me", headers=bearer(access)).status_code == 200  # cached as valid

    response = http.post("/v1/auth/logout", headers=bearer(access))
    assert response.status_code == 204
    assert response.content == b""

    assert_error(http.get("/v1/me", headers=bearer(access)), 401)
    assert_error(http.get("/v1/me/sessions", headers=bearer(access)), 401)
    assert_error(http.post("/v1/auth/logout", headers=bearer(access)), 401)
    assert_error(http.post("/v1/auth/refresh", json={"refresh_token": refresh}), 401)
    # Other sessions are unaffected.
    assert other.me().id == alice.id
    sessions = other.sessions()
    assert len(sessions) == 1
    assert sessions[0].current


def test_logout_needs_a_token(http):
    assert_error(http.post("/v1/auth/logout"), 401)


# ------------------------------------------------------------------------------ throttling

ATTACKER = "203.0.113.9"
VICTIM = "198.51.100.7"


@pytest.fixture
def throttled(make_settings):
    """An app behind a (pretend) proxy: the client address is the rightmost entry of
    X-Forwarded-For, so one test client can speak from many addresses."""

    def start(**overrides):
        overrides.setdefault("trust_forwarded_for", True)
        app = make_app(make_settings(**overrides))
        return TestClient(app.asgi)

    return start


def _login(client, username, password, ip=None):
    # The entries left of the last are the client's own word; only the last one counts.
    headers = {"X-Forwarded-For": f"10.9.8.7, {ip}"} if ip else None
    body = {"username": username, "password": password}
    return client.post("/v1/auth/login", json=body, headers=headers)


def _assert_throttled(response) -> int:
    assert_error(response, 429, "too_many_attempts")
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    return int(retry_after)


def test_an_attacker_address_cannot_lock_the_victim_out(throttled):
    client = throttled(login_max_failures_per_ip_and_account=3)
    with client:
        name = Client(http=client).register(unique_name(), PASSWORD).user.username
        for _ in range(3):
            response = _login(client, name, "wrong password 123", ATTACKER)
            assert_error(response, 401, "invalid_credentials")
        # That address may not try this account any more, right password or not.
        retry_after = _assert_throttled(_login(client, name, PASSWORD, ATTACKER))
        assert retry_after <= 900  # the failure window
        _assert_throttled(_login(client, name.upper(), PASSWORD, ATTACKER))
        # The owner, from an address that has not failed, logs in; a typo of theirs is a
        # plain 401 (their own allowance is whole).
        assert _login(client, name, PASSWORD, VICTIM).status_code == 200
        assert_error(_login(client, name, "wrong password 9", VICTIM), 401)
        assert _login(client, name, PASSWORD, VICTIM).status_code == 200
        # The attacker's address is not barred from other accounts either.
        other = Client(http=client).register(unique_name(), PASSWORD).user.username
        assert _login(client, other, PASSWORD, ATTACKER).status_code == 200
        assert 'login_throttled_total{scope="ip_account"}' in client.get("/metrics").text


def test_forwarded_for_is_not_trusted_unless_configured(throttled):
    client = throttled(login_max_failures_per_ip_and_account=3, trust_forwarded_for=False)
    with client:
        name = Client(http=client).register(unique_name(), PASSWORD).user.username
        for k in range(3):  # a different forged address each time: all one client
            assert_error(_login(client, name, "wrong password 123", f"192.0.2.{k}"), 401)
        _assert_throttled(_login(client, name, PASSWORD, VICTIM))


def test_only_the_rightmost_forwarded_entry_counts(throttled):
    client = throttled(login_max_failures_per_ip_and_account=3)
    with client:
        name = Client(http=client).register(unique_name(), PASSWORD).user.username
        for k in range(3):
            headers = {"X-Forwarded-For": f"192.0.2.{k}, {ATTACKER}"}
            body = {"username": name, "password": "wrong password 123"}
            assert_error(client.post("/v1/auth/login", json=body, headers=headers), 401)
        _assert_throttled(_login(client, name, PASSWORD, ATTACKER))


def test_ipv6_clients_are_counted_per_64(throttled):
    client = throttled(login_max_failures_per_ip_and_account=3)
    with client:
        name = Client(http=client).register(unique_name(), PASSWORD).user.username
        for k in range(1, 4):  # three addresses of one /64
            assert_error(_login(client, name, "wrong password 123", f"2001:db8:1:2::{k}"), 401)
        _assert_throttled(_login(client, name, PASSWORD, "2001:db8:1:2:ffff::9"))
        assert _login(client, name, PASSWORD, "2001:db8:1:3::1").status_code == 200


def test_failures_by_email_and_by_username_count_for_the_same_account(throttled):
    client = throttled(login_max_failures_per_ip_and_account=3)
    with client:
        sdk = Client(http=client)
        name = sdk.register(unique_name(), PASSWORD, email=f"{unique_name()}@example.org")
        email = name.user.email
        assert_error(_login(client, name.user.username, "wrong password 1", ATTACKER), 401)
        assert_error(_login(client, name.user.username, "wrong password 2", ATTACKER), 401)
        assert_error(_login(client, email, "wrong password 3", ATTACKER), 401)
        # Three failures for this account, whichever login name they used.
        _assert_throttled(_login(client, name.user.username, PASSWORD, ATTACKER))


def test_success_forgives_the_address_its_failures(throttled):
    client = throttled(login_max_failures_per_ip_and_account=3)
    with client:
        name = Client(http=client).register(unique_name(), PASSWORD).user.username
        for _ in range(3):
            assert_error(_login(client, name, "wrong password 123", VICTIM), 401)
            assert_error(_login(client, name, "wrong password 456", VICTIM), 401)
            assert _login(client, name, PASSWORD, VICTIM).status_code == 200


def test_ip_locks_after_max_failures_across_accounts(throttled):
    client = throttled(login_max_failures_per_ip=3)
    with client:
        name = Client(http=client).register(unique_name(), PASSWORD).user.username
        for i in range(3):
            response = _login(client, f"nobody_{i}_{name}"[:32], "wrong password 123", ATTACKER)
            assert_error(response, 401, "invalid_credentials")
        _assert_throttled(_login(client, name, PASSWORD, ATTACKER))
        _assert_throttled(_login(client, "someone_else", "whatever pass 1", ATTACKER))
        assert _login(client, name, PASSWORD, VICTIM).status_code == 200


def test_the_account_ceiling_comes_far_later_and_spares_known_addresses(throttled):
    client = throttled(
        login_max_failures_per_ip_and_account=3,
        login_max_failures_per_account=12,
        # Long holds, so that the test never races one ending.
        login_account_backoff_seconds=600,
        login_account_backoff_max_seconds=900,
    )
    with client:
        name = Client(http=client).register(unique_name(), PASSWORD).user.username
        assert _login(client, name, PASSWORD, VICTIM).status_code == 200  # a known address
        attackers = [f"10.1.0.{k}" for k in range(4)]
        for ip in attackers:
            for _ in range(3):
                assert_error(_login(client, name, "wrong password 123", ip), 401)
            if ip != attackers[-1]:
                # Each address is stopped on its own; the account is not held yet, and a
                # new address with the right password logs in (and resets nothing).
                _assert_throttled(_login(client, name, PASSWORD, ip))
                fresh = f"10.2.0.{attackers.index(ip)}"
                assert _login(client, name, PASSWORD, fresh).status_code == 200
        # 12 failures from 4 addresses: the account is held, for the backoff, from every
        # address it has not logged in from...
        retry_after = _assert_throttled(_login(client, name, PASSWORD, "192.0.2.200"))
        assert 1 < retry_after <= 600
        # ...but its owner's known address gets in.
        assert _login(client, name, PASSWORD, VICTIM).status_code == 200
        assert 'login_throttled_total{scope="account"}' in client.get("/metrics").text


# ---------------------------------------------------------------------------------- rehash


def _stored_hash(client: TestClient, app, user_id: str) -> str:
    async def read() -> str:
        async with app.wiring.database() as uow:
            user = await uow.users.get(int(user_id))
        assert user is not None
        return user.password_hash

    return client.blocking_portal.call(read)


def test_login_rehashes_when_argon2_parameters_change(app, http, register, make_settings):
    alice = register()
    old_hash = _stored_hash(http, app, alice.id)
    assert "$argon2id$" in old_hash
    assert ",t=1," in old_hash

    stronger = make_app(make_settings(argon2_time_cost=2))
    with TestClient(stronger.asgi) as client:
        result = Client(http=client).login(alice.username, PASSWORD)
        assert result.user.id == alice.id
        new_hash = _stored_hash(client, stronger, alice.id)
    assert new_hash != old_hash
    assert "$argon2id$" in new_hash
    assert ",t=2," in new_hash
    # The new hash still verifies the same password, on either app.
    assert Client(http=http).login(alice.username, PASSWORD).user.id == alice.id
    assert api_error(Client(http=http).login, alice.username, "wrong password 1").status == 401


def test_login_does_not_rehash_when_parameters_are_unchanged(app, http, register):
    alice = register()
    before = _stored_hash(http, app, alice.id)
    Client(http=http).login(alice.username, PASSWORD)
    assert _stored_hash(http, app, alice.id) == before
