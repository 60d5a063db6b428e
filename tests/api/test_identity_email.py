"""Email verification and password reset, end to end: a real SMTP server receives the
mails, and the tests follow the links in them (issue 12). Both stacks."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_support import error
from litestar.testing import TestClient
from totp_support import enable_totp
from ws_support import connected, expect_close

from clock import Clock
from conftest import PASSWORD, Account, App, make_app, unique_name
from contract import api_error, assert_error
from mail_server import SmtpServer, link_token
from socius.client import Client, EmailVerificationRequired, MfaRequired

NEW_PASSWORD = "a completely new passphrase"
KEY = base64.b64encode(b"k" * 32).decode()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def app(make_settings: Callable[..., Any], clock: Clock, smtp: SmtpServer) -> App:
    settings = make_settings(
        smtp_url=smtp.url,
        public_url="https://chat.example.org/",
        mfa_encryption_key=KEY,
        verify_email_max_per_hour=3,
        password_reset_max_per_address_per_hour=3,
        password_reset_max_per_ip_per_hour=6,
    )
    return make_app(settings, clock=clock)


def address() -> str:
    return f"{unique_name('mail')}@example.org"


def verification_token(smtp: SmtpServer, to: str, *, count: int = 1) -> str:
    mail = smtp.wait_for(to, count=count, subject="Confirm your email")[-1]
    assert mail.message["From"] == "socius <no-reply@localhost>"
    return link_token(mail, "verify-email")


def reset_token(smtp: SmtpServer, to: str, *, count: int = 1) -> str:
    mail = smtp.wait_for(to, count=count, subject="Reset your")[-1]
    return link_token(mail, "reset-password")


# ---------------------------------------------------------------------- verification


def test_register_mails_a_link_that_verifies_the_address(
    register: Callable[..., Account], smtp: SmtpServer, sdk: Callable[[], Client]
) -> None:
    to = address()
    alice = register(email=to.upper())
    assert alice.auth.user.email_verified is False
    assert alice.client.me().email_verified is False
    mail = smtp.wait_for(to, subject="Confirm your email")[0]
    assert alice.username in mail.text
    assert to in mail.text
    assert "https://chat.example.org/#verify-email=" in mail.text  # SOCIUS_PUBLIC_URL
    token = link_token(mail, "verify-email")

    sdk().verify_email(token)  # no session needed: the link may open on another device

    me = alice.client.me()
    assert me.email == to
    assert me.email_verified is True
    assert alice.client.raw("GET", "/v1/me").json()["email_verified"] is True
    # Verified: asking again is a conflict, and the spent link does nothing more.
    assert api_error(alice.client.request_email_verification).code == "email_already_verified"
    reused = api_error(sdk().verify_email, token)
    assert (reused.status, reused.code) == (400, "invalid_token")


def test_a_requested_link_verifies_too_and_the_request_is_limited(
    register: Callable[..., Account], smtp: SmtpServer, http: TestClient[Any]
) -> None:
    to = address()
    bob = register(email=to)
    verification_token(smtp, to)  # the one register sent
    response = bob.client.raw("POST", "/v1/auth/verify-email/request")
    assert response.status_code == 202, response.text
    token = verification_token(smtp, to, count=2)
    for _ in range(2):  # three an hour (the app's setting), register's not counted
        bob.client.request_email_verification()
    limited = bob.client.raw("POST", "/v1/auth/verify-email/request")
    assert error(limited) == (429, "too_many_attempts")
    assert int(limited.headers["retry-after"]) > 0

    assert http.post("/v1/auth/verify-email", json={"token": token}).status_code == 204
    assert bob.client.me().email_verified


def test_verification_needs_an_address_and_a_session(
    register: Callable[..., Account], http: TestClient[Any]
) -> None:
    carol = register()
    assert carol.client.me().email is None
    failure = api_error(carol.client.request_email_verification)
    assert (failure.status, failure.code) == (409, "no_email")
    assert_error(http.post("/v1/auth/verify-email/request"), 401, "missing_token")


def test_forged_reused_and_expired_verification_links_are_refused(
    register: Callable[..., Account], smtp: SmtpServer, http: TestClient[Any], clock: Clock
) -> None:
    for forged in ["x", secrets.token_urlsafe(32), "A" * 200]:
        response = http.post("/v1/auth/verify-email", json={"token": forged})
        assert error(response) == (400, "invalid_token")
    to = address()
    dave = register(email=to)
    token = verification_token(smtp, to)
    clock.advance(48 * 3600 + 1)
    response = http.post("/v1/auth/verify-email", json={"token": token})
    assert error(response) == (400, "token_expired")
    assert_error(http.post("/v1/auth/verify-email", json={}), 422, "validation_error")
    dave.client.login(dave.username, PASSWORD)  # the old access token has expired
    assert dave.client.me().email_verified is False


def test_changing_the_email_needs_a_password_and_a_new_verification(
    register: Callable[..., Account], smtp: SmtpServer, sdk: Callable[[], Client]
) -> None:
    old, new = address(), address()
    erin = register(email=old)
    sdk().verify_email(verification_token(smtp, old))
    assert erin.client.me().email_verified

    wrong = api_error(erin.client.change_email, new, "not the password")
    assert (wrong.status, wrong.code) == (403, "invalid_password")
    assert erin.client.me().email == old

    me = erin.client.change_email(new.upper(), PASSWORD)
    assert (me.email, me.email_verified) == (new, False)
    assert erin.client.me().email_verified is False
    notice = smtp.wait_for(old, subject="email address was changed")[0]
    assert new in notice.text
    token = verification_token(smtp, new)
    sdk().verify_email(token)
    assert erin.client.me().email_verified
    # The same address again changes nothing; an address someone has is a conflict.
    assert erin.client.change_email(new, PASSWORD).email_verified
    taken = register(email=address())
    clash = api_error(erin.client.change_email, taken.auth.user.email, PASSWORD)
    assert (clash.status, clash.code) == (409, "email_taken")


def test_links_mailed_to_an_old_address_are_void(
    register: Callable[..., Account], smtp: SmtpServer, sdk: Callable[[], Client]
) -> None:
    old = address()
    frank = register(email=old)
    stale = verification_token(smtp, old)
    frank.client.change_email(address(), PASSWORD)
    failure = api_error(sdk().verify_email, stale)
    assert (failure.status, failure.code) == (400, "invalid_token")
    assert frank.client.me().email_verified is False


def test_a_server_can_require_verified_email_to_sign_in(
    make_settings: Callable[..., Any], smtp: SmtpServer
) -> None:
    settings = make_settings(smtp_url=smtp.url, require_verified_email=True)
    with TestClient(make_app(settings).asgi) as http:  # type: ignore[arg-type]
        client = Client(http=http)
        name, to = unique_name(), address()
        missing = api_error(client.register, name, PASSWORD)
        assert (missing.status, missing.code) == (422, "email_required")

        with pytest.raises(EmailVerificationRequired) as pending:
            client.register(name, PASSWORD, email=to)
        assert pending.value.user.username == name
        assert pending.value.user.email_verified is False
        assert client.access_token is None
        raw = http.post(
            "/v1/auth/register",
            json={"username": unique_name(), "password": PASSWORD, "email": address()},
        )
        assert raw.status_code == 201
        assert set(raw.json()) == {"user", "email_verification_required"}

        first = verification_token(smtp, to)
        refused = api_error(client.login, name, PASSWORD)
        assert (refused.status, refused.code) == (403, "email_not_verified")
        wrong = api_error(client.login, name, "not the password")
        assert (wrong.status, wrong.code) == (401, "invalid_credentials")
        second = verification_token(smtp, to, count=2)  # the refusal mailed a new link
        assert second != first

        client.verify_email(second)
        auth = client.login(name, PASSWORD)
        assert auth.user.email_verified
        assert client.me().email == to


# -------------------------------------------------------------------------- password reset


def test_a_reset_link_sets_the_password_and_ends_every_session(
    register: Callable[..., Account],
    smtp: SmtpServer,
    sdk: Callable[[], Client],
    http: TestClient[Any],
) -> None:
    to = address()
    gina = register(email=to)
    other = sdk()
    other.login(gina.username, PASSWORD)
    assert other.access_token is not None
    with connected(http, other.access_token) as (ws, _, _):
        anonymous = sdk()
        response = anonymous.raw(
            "POST", "/v1/auth/password-reset/request", json={"email": to.upper()}
        )
        assert (response.status_code, response.content) == (202, b"")
        mail = smtp.wait_for(to, subject="Reset your")[0]
        assert "30 minutes" in mail.text
        token = link_token(mail, "reset-password")

        anonymous.reset_password(token, NEW_PASSWORD)
        expect_close(ws, 4401)  # the socket of a revoked session closes at once

    for client in (gina.client, other):
        assert api_error(client.me).status == 401
        assert api_error(client.refresh).status == 401
    assert api_error(sdk().login, gina.username, PASSWORD).code == "invalid_credentials"
    assert sdk().login(gina.username, NEW_PASSWORD).user.id == gina.id
    notice = smtp.wait_for(to, subject="password was reset")[0]
    assert gina.username in notice.text
    # The link worked once; following it proved the address too.
    again = api_error(sdk().reset_password, token, "yet another passphrase")
    assert (again.status, again.code) == (400, "invalid_token")
    assert sdk().login(to, NEW_PASSWORD).user.email_verified


def test_forged_expired_and_weak_resets_are_refused(
    register: Callable[..., Account], smtp: SmtpServer, http: TestClient[Any], clock: Clock
) -> None:
    for forged in ["short", secrets.token_urlsafe(32)]:
        response = http.post(
            "/v1/auth/password-reset", json={"token": forged, "password": NEW_PASSWORD}
        )
        assert error(response) == (400, "invalid_token")
    to = address()
    hana = register(email=to)
    hana.client.request_password_reset(to)
    token = reset_token(smtp, to)

    weak = http.post("/v1/auth/password-reset", json={"token": token, "password": "password"})
    assert error(weak) == (422, "weak_password")
    short = http.post("/v1/auth/password-reset", json={"token": token, "password": "short"})
    assert short.status_code == 422
    assert hana.client.me().id == hana.id  # nothing changed: the session lives

    clock.advance(30 * 60 + 1)
    expired = http.post("/v1/auth/password-reset", json={"token": token, "password": NEW_PASSWORD})
    assert error(expired) == (400, "token_expired")
    # The password is the old one still.
    assert Client(http=http).login(hana.username, PASSWORD).user.id == hana.id


def test_a_reset_request_answers_the_same_for_unknown_addresses(
    register: Callable[..., Account], smtp: SmtpServer, http: TestClient[Any]
) -> None:
    known = address()
    register(email=known)
    smtp.wait_for(known, subject="Confirm your email")
    before = len(smtp.received)
    unknown = address()
    answers = [
        http.post("/v1/auth/password-reset/request", json={"email": email})
        for email in (unknown, known)
    ]
    assert [(a.status_code, a.content, a.headers.get("content-type")) for a in answers] == [
        (202, b"", answers[1].headers.get("content-type"))
    ] * 2
    # Mails go out in order: once the known address has its link, the unknown one's
    # request has been handled, and it mailed nothing.
    reset_token(smtp, known)
    received = smtp.received[before:]
    assert [r.recipients for r in received] == [[known]]
    bad = http.post("/v1/auth/password-reset/request", json={"email": "not an address"})
    assert bad.status_code == 422


def test_reset_requests_are_limited_per_address_and_per_client_address(
    make_settings: Callable[..., Any], smtp: SmtpServer
) -> None:
    settings = make_settings(
        smtp_url=smtp.url,
        trust_forwarded_for=True,
        password_reset_max_per_address_per_hour=2,
        password_reset_max_per_ip_per_hour=3,
    )
    with TestClient(make_app(settings).asgi) as http:  # type: ignore[arg-type]

        def ask(email: str, ip: str) -> Any:
            headers = {"X-Forwarded-For": ip}
            return http.post(
                "/v1/auth/password-reset/request", json={"email": email}, headers=headers
            )

        target = address()  # no account: counted all the same
        assert [ask(target, f"192.0.2.{i}").status_code for i in (1, 2)] == [202, 202]
        limited = ask(target.upper(), "192.0.2.3")
        assert error(limited) == (429, "too_many_attempts")
        assert int(limited.headers["retry-after"]) > 0
        assert ask(address(), "192.0.2.3").status_code == 202  # another address is fine

        assert [ask(address(), "198.51.100.1").status_code for _ in range(3)] == [202] * 3
        assert error(ask(address(), "198.51.100.1")) == (429, "too_many_attempts")


def test_a_reset_does_not_turn_off_the_second_factor(
    register: Callable[..., Account], smtp: SmtpServer, sdk: Callable[[], Client], clock: Clock
) -> None:
    to = address()
    ivan = register(email=to)
    enable_totp(ivan, clock)
    ivan.client.request_password_reset(to)
    sdk().reset_password(reset_token(smtp, to), NEW_PASSWORD)
    with pytest.raises(MfaRequired):
        sdk().login(ivan.username, NEW_PASSWORD)
