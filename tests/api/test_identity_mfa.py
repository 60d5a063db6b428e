"""Two-factor sign-in: TOTP enrolment, the login's second step, recovery codes, replay
and throttling, secrets encrypted at rest (issue 12). Both stacks, through the SDK."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from api_support import error
from litestar.testing import TestClient
from sqlalchemy import select
from totp_support import code_at, enable_totp

from clock import Clock
from conftest import PASSWORD, Account, App, make_app
from contract import api_error
from socius.client import AsyncClient, Client, MfaRequired
from socius.settings import Settings
from socius.storage.engine import make_engine
from socius.storage.tables import totp_factors

KEY = base64.b64encode(b"1" * 32).decode()
OTHER_KEY = base64.b64encode(b"2" * 32).decode()


@pytest.fixture
def mfa_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(mfa_encryption_key=KEY, mfa_max_failures_per_account=8)


@pytest.fixture
def app(mfa_settings: Settings, clock: Clock) -> App:
    return make_app(mfa_settings, clock=clock)


def challenge(client: Client, username: str, password: str = PASSWORD) -> MfaRequired:
    with pytest.raises(MfaRequired) as raised:
        client.login(username, password)
    assert client.access_token is None
    return raised.value


def other_than(code: str) -> str:
    """A well-formed code that is not ``code``."""
    return "000000" if code != "000000" else "111111"


# ------------------------------------------------------------------------------ enrolment


def test_enrolment_needs_a_first_code_and_answers_recovery_codes_once(
    register: Callable[..., Account], clock: Clock
) -> None:
    alice = register(email="mfa.alice@example.org")
    assert alice.client.mfa_status().totp_enabled is False
    enrollment = alice.client.enroll_totp()
    uri = urlsplit(enrollment.otpauth_uri)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    query = parse_qs(uri.query)
    assert query["secret"] == [enrollment.secret]
    assert query["issuer"] == ["socius"]
    assert "mfa.alice%40example.org" in uri.path
    status = alice.client.mfa_status()
    assert (status.totp_enabled, status.totp_pending) == (False, True)
    # Pending: a login needs no code yet.
    assert Client(http=alice.client.http).login(alice.username, PASSWORD).user.id == alice.id

    wrong = api_error(alice.client.confirm_totp, other_than(code_at(enrollment.secret, clock.now)))
    assert (wrong.status, wrong.code) == (403, "invalid_mfa_code")
    malformed = alice.client.raw("POST", "/v1/me/mfa/totp/confirm", json={"code": "12345"})
    assert malformed.status_code == 422

    codes = alice.client.confirm_totp(code_at(enrollment.secret, clock.now))
    assert len(codes) == len(set(codes)) == 10
    assert all(len(c) == 19 and c.count("-") == 3 for c in codes)
    status = alice.client.mfa_status()
    assert (status.totp_enabled, status.totp_pending, status.recovery_codes_left) == (
        True,
        False,
        10,
    )
    again = api_error(alice.client.enroll_totp)
    assert (again.status, again.code) == (409, "mfa_already_enabled")
    assert api_error(alice.client.confirm_totp, "123456").code == "mfa_already_enabled"


def test_confirm_without_enrolment_is_a_conflict(register: Callable[..., Account]) -> None:
    bob = register()
    failure = api_error(bob.client.confirm_totp, "123456")
    assert (failure.status, failure.code) == (409, "mfa_not_enrolled")


# ------------------------------------------------------------------------------ login


def test_login_asks_for_the_second_factor_and_a_code_finishes_it(
    register: Callable[..., Account], sdk: Callable[[], Client], http: TestClient[Any], clock: Clock
) -> None:
    carol = register()
    secret, _ = enable_totp(carol, clock)
    raw = http.post("/v1/auth/login", json={"username": carol.username, "password": PASSWORD})
    assert raw.status_code == 200
    assert set(raw.json()) == {"mfa_required", "mfa_token", "expires_in"}
    assert raw.json()["mfa_required"] is True
    # A wrong password is refused as ever: the challenge comes only after a right one.
    assert api_error(sdk().login, carol.username, "wrong password!").code == "invalid_credentials"

    client = sdk()
    pending = challenge(client, carol.username)
    assert 0 < pending.expires_in <= 300
    auth = client.login_mfa(pending.mfa_token, code=code_at(secret, clock.now))
    assert auth.user.id == carol.id
    assert client.me().id == carol.id
    # The token was spent.
    reused = api_error(sdk().login_mfa, pending.mfa_token, code=code_at(secret, clock.now))
    assert (reused.status, reused.code) == (401, "invalid_mfa_token")


def test_a_code_works_once_and_older_codes_never(
    register: Callable[..., Account], sdk: Callable[[], Client], clock: Clock
) -> None:
    dave = register()
    secret, _ = enable_totp(dave, clock)
    confirming = code_at(secret, clock.now - timedelta(seconds=30))
    code = code_at(secret, clock.now)
    sdk_one = sdk()
    sdk_one.login_mfa(challenge(sdk_one, dave.username).mfa_token, code=code)

    for replayed in (code, confirming):  # the same window, and the step before it
        client = sdk()
        failure = api_error(
            client.login_mfa, challenge(client, dave.username).mfa_token, code=replayed
        )
        assert (failure.status, failure.code) == (401, "invalid_mfa_code")
    clock.advance(30)
    client = sdk()
    assert client.login_mfa(
        challenge(client, dave.username).mfa_token, code=code_at(secret, clock.now)
    )


def test_wrong_codes_kill_the_token_and_then_hold_the_account(
    register: Callable[..., Account], sdk: Callable[[], Client], clock: Clock
) -> None:
    erin = register()
    secret, _ = enable_totp(erin, clock)
    right = code_at(secret, clock.now)
    wrong = other_than(right)
    client = sdk()
    token = challenge(client, erin.username).mfa_token
    for _ in range(5):
        assert api_error(client.login_mfa, token, code=wrong).code == "invalid_mfa_code"
    dead = api_error(client.login_mfa, token, code=right)
    assert (dead.status, dead.code) == (401, "invalid_mfa_token")

    token = challenge(client, erin.username).mfa_token
    for _ in range(3):  # 8 wrong codes on the account (the app's limit)
        assert api_error(client.login_mfa, token, code=wrong).code == "invalid_mfa_code"
    held = api_error(client.login_mfa, token, code=right)
    assert (held.status, held.code) == (429, "too_many_attempts")
    assert held.retry_after is not None
    assert held.retry_after > 0


def test_forged_malformed_and_expired_mfa_tokens(
    register: Callable[..., Account], sdk: Callable[[], Client], http: TestClient[Any], clock: Clock
) -> None:
    fay = register()
    secret, codes = enable_totp(fay, clock)
    forged = http.post("/v1/auth/login/mfa", json={"mfa_token": "A" * 43, "code": "123456"})
    assert error(forged) == (401, "invalid_mfa_token")
    client = sdk()
    token = challenge(client, fay.username).mfa_token
    for body in (
        {"mfa_token": token},
        {"mfa_token": token, "code": code_at(secret, clock.now), "recovery_code": codes[0]},
    ):
        assert error(http.post("/v1/auth/login/mfa", json=body)) == (422, "code_or_recovery_code")
    for body in (
        {"mfa_token": token, "code": "12a456"},
        {"mfa_token": token, "recovery_code": "x"},
    ):
        assert error(http.post("/v1/auth/login/mfa", json=body)) == (422, "validation_error")
    clock.advance(301)
    expired = api_error(client.login_mfa, token, code=code_at(secret, clock.now))
    assert (expired.status, expired.code) == (401, "invalid_mfa_token")


def test_recovery_codes_sign_in_once_each(
    register: Callable[..., Account], sdk: Callable[[], Client], clock: Clock
) -> None:
    gina = register()
    _, codes = enable_totp(gina, clock)
    client = sdk()
    typed = codes[0].replace("-", "").upper()  # as a person may type it
    assert client.login_mfa(challenge(client, gina.username).mfa_token, recovery_code=typed)
    assert client.mfa_status().recovery_codes_left == 9
    other = sdk()
    spent = api_error(
        other.login_mfa, challenge(other, gina.username).mfa_token, recovery_code=codes[0]
    )
    assert (spent.status, spent.code) == (401, "invalid_mfa_code")
    made_up = "abcd-efgh-jkmn-pqrs"
    assert (
        api_error(
            other.login_mfa, challenge(other, gina.username).mfa_token, recovery_code=made_up
        ).code
        == "invalid_mfa_code"
    )
    assert other.login_mfa(challenge(other, gina.username).mfa_token, recovery_code=codes[1])


# ------------------------------------------------------------------------------ disable


def test_disable_needs_the_password_and_a_code(
    register: Callable[..., Account], sdk: Callable[[], Client], clock: Clock
) -> None:
    hana = register()
    secret, codes = enable_totp(hana, clock)
    code = code_at(secret, clock.now)
    wrong_password = api_error(hana.client.disable_totp, "not the password", code=code)
    assert (wrong_password.status, wrong_password.code) == (403, "invalid_password")
    wrong = other_than(code)
    wrong_code = api_error(hana.client.disable_totp, PASSWORD, code=wrong)
    assert (wrong_code.status, wrong_code.code) == (403, "invalid_mfa_code")
    neither = hana.client.raw("DELETE", "/v1/me/mfa/totp", json={"password": PASSWORD})
    assert error(neither) == (422, "code_or_recovery_code")
    assert hana.client.mfa_status().totp_enabled

    hana.client.disable_totp(PASSWORD, recovery_code=codes[3])
    status = hana.client.mfa_status()
    assert (status.totp_enabled, status.recovery_codes_left) == (False, 0)
    assert sdk().login(hana.username, PASSWORD).user.id == hana.id  # no second step now
    off = api_error(hana.client.disable_totp, PASSWORD, code=code_at(secret, clock.now))
    assert (off.status, off.code) == (409, "mfa_not_enabled")
    # On again with a new secret: the old one's codes mean nothing.
    new_secret, _ = enable_totp(hana, clock)
    assert new_secret != secret


async def test_the_async_sdk_signs_in_with_a_second_factor(
    mfa_settings: Settings, clock: Clock
) -> None:
    from litestar.testing import AsyncTestClient

    app = make_app(mfa_settings, clock=clock)
    async with AsyncTestClient(app.asgi) as http:  # type: ignore[arg-type]
        client = AsyncClient(http=http)
        await client.register("async_mfa_user", PASSWORD)
        enrollment = await client.enroll_totp()
        codes = await client.confirm_totp(code_at(enrollment.secret, clock.now))
        clock.advance(30)
        fresh = AsyncClient(http=http)
        with pytest.raises(MfaRequired) as pending:
            await fresh.login("async_mfa_user", PASSWORD)
        auth = await fresh.login_mfa(
            pending.value.mfa_token, code=code_at(enrollment.secret, clock.now)
        )
        assert (await fresh.me()).id == auth.user.id
        await fresh.disable_totp(PASSWORD, recovery_code=codes[0])
        assert (await fresh.mfa_status()).totp_enabled is False


# ------------------------------------------------------------------------------ at rest


def _stored_boxes(settings: Settings) -> list[bytes]:
    async def read() -> list[bytes]:
        engine = make_engine(settings.effective_database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return [bytes(r[0]) for r in await conn.execute(select(totp_factors.c.secret_box))]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_secrets_are_encrypted_at_rest_and_keys_rotate(
    register: Callable[..., Account],
    mfa_settings: Settings,
    clock: Clock,
    http: TestClient[Any],
) -> None:
    ivan = register()
    secret, _ = enable_totp(ivan, clock)
    boxes = _stored_boxes(mfa_settings)
    assert len(boxes) == 1
    assert secret.encode() not in boxes[0]
    assert base64.b32decode(secret) not in boxes[0]

    # A new key, the old one kept for decryption: codes still pass.
    rotated = mfa_settings.replace(mfa_encryption_key=OTHER_KEY, mfa_encryption_old_keys=[KEY])
    with TestClient(make_app(rotated, clock=clock).asgi) as other:  # type: ignore[arg-type]
        client = Client(http=other)
        client.login_mfa(
            challenge(client, ivan.username).mfa_token, code=code_at(secret, clock.now)
        )
    clock.advance(30)
    # Without the key that sealed it, the second step is unavailable, not a way in.
    lost = mfa_settings.replace(mfa_encryption_key=OTHER_KEY)
    with TestClient(make_app(lost, clock=clock).asgi) as other:  # type: ignore[arg-type]
        client = Client(http=other)
        failure = api_error(
            client.login_mfa,
            challenge(client, ivan.username).mfa_token,
            code=code_at(secret, clock.now),
        )
        assert (failure.status, failure.code) == (503, "mfa_unavailable")


def test_without_a_key_the_cluster_refuses_enrolment_and_embedded_makes_one(
    make_settings: Callable[..., Settings], stack: str, tmp_path: Path
) -> None:
    settings = make_settings()
    with TestClient(make_app(settings).asgi) as http:  # type: ignore[arg-type]
        client = Client(http=http)
        client.register("keyless_user", PASSWORD)
        if stack == "sqlite":
            assert client.enroll_totp().secret
            key_file = tmp_path / "mfa.key"
            assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
            assert len(base64.b64decode(key_file.read_text().strip())) == 32
        else:
            failure = api_error(client.enroll_totp)
            assert (failure.status, failure.code) == (403, "mfa_not_configured")


async def test_one_code_sent_twice_at_once_signs_in_once(
    mfa_settings: Settings, clock: Clock
) -> None:
    from litestar.testing import AsyncTestClient

    from socius.client import ApiError

    app = make_app(mfa_settings, clock=clock)
    async with AsyncTestClient(app.asgi) as http:  # type: ignore[arg-type]
        owner = AsyncClient(http=http)
        await owner.register("racing_mfa_user", PASSWORD)
        enrollment = await owner.enroll_totp()
        await owner.confirm_totp(code_at(enrollment.secret, clock.now))
        clock.advance(30)
        clients = [AsyncClient(http=http) for _ in range(4)]
        tokens = []
        for client in clients:
            with pytest.raises(MfaRequired) as pending:
                await client.login("racing_mfa_user", PASSWORD)
            tokens.append(pending.value.mfa_token)
        code = code_at(enrollment.secret, clock.now)
        results = await asyncio.gather(
            *(c.login_mfa(t, code=code) for c, t in zip(clients, tokens, strict=True)),
            return_exceptions=True,
        )
    signed_in = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(signed_in) == 1
    assert [(e.status, e.code) for e in refused] == [(401, "invalid_mfa_code")] * 3
