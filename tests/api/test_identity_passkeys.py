"""Passkeys (issue 12): registration and sign-in ceremonies with a software authenticator
that makes real attestations and ES256 signatures (tests/webauthn_authenticator.py);
one-time challenges, the signature counter, management, and the sign-in gate. Both
stacks, through the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from api_support import error
from federation_support import PUBLIC, disable
from litestar.testing import TestClient
from totp_support import enable_totp

from clock import Clock
from conftest import PASSWORD, Account, App, make_app, unique_name
from contract import api_error
from socius.client import ApiError, AsyncClient, AuthResult, Client, MfaRequired
from socius.settings import Settings
from webauthn_authenticator import SoftAuthenticator

KEY = "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE="


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(public_url=PUBLIC, mfa_encryption_key=KEY)


@pytest.fixture
def app(settings: Settings, clock: Clock) -> App:
    return make_app(settings, clock=clock)


def with_passkey(account: Account, name: str = "laptop") -> SoftAuthenticator:
    device = SoftAuthenticator(origin=PUBLIC)
    options = account.client.begin_passkey_registration()
    account.client.finish_passkey_registration(device.create(options), name=name)
    return device


def test_register_and_sign_in_with_a_passkey(
    register: Callable[..., Account], sdk: Callable[[], Client]
) -> None:
    alice = register()
    options = alice.client.begin_passkey_registration()
    assert options["rp"]["id"] == "testserver.local"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    device = SoftAuthenticator(origin=PUBLIC)
    added = alice.client.finish_passkey_registration(device.create(options), name="laptop")
    assert (added.name, added.last_used_at) == ("laptop", None)
    assert [p.id for p in alice.client.passkeys()] == [added.id]

    client = sdk()
    login = client.begin_passkey_login()
    assert login["userVerification"] == "required"
    assert login.get("allowCredentials", []) == []  # discoverable: no username first
    signed_in = client.finish_passkey_login(device.get(login))
    assert signed_in.user.id == alice.id
    assert client.me().id == alice.id
    assert alice.client.passkeys()[0].last_used_at is not None
    # The same key again is refused (its credential id is registered).
    again = alice.client.begin_passkey_registration()
    assert [c["id"] for c in again["excludeCredentials"]] == [device.create(again)["id"]]


def test_a_challenge_works_once_and_not_for_long(
    register: Callable[..., Account], sdk: Callable[[], Client], clock: Clock
) -> None:
    alice = register()
    device = with_passkey(alice)
    client = sdk()
    assertion = device.get(client.begin_passkey_login())
    client.finish_passkey_login(assertion)
    replayed = api_error(sdk().finish_passkey_login, assertion)
    assert (replayed.status, replayed.code) == (400, "invalid_challenge")
    # A challenge the server never made.
    forged = device.get({"challenge": "A" * 43, "rpId": "testserver.local"})
    assert api_error(sdk().finish_passkey_login, forged).code == "invalid_challenge"
    # An expired one.
    late = sdk()
    options = late.begin_passkey_login()
    clock.advance(301)
    assert api_error(late.finish_passkey_login, device.get(options)).code == "invalid_challenge"
    # Registration challenges too, and they are bound to their account.
    bob = register()
    options = alice.client.begin_passkey_registration()
    other = SoftAuthenticator(origin=PUBLIC)
    stolen = api_error(bob.client.finish_passkey_registration, other.create(options))
    assert (stolen.status, stolen.code) == (400, "invalid_challenge")


def test_a_counter_that_does_not_grow_is_refused(
    register: Callable[..., Account], sdk: Callable[[], Client]
) -> None:
    alice = register()
    device = with_passkey(alice)
    client = sdk()
    client.finish_passkey_login(device.get(client.begin_passkey_login(), count=5))
    for count in (5, 3):  # the same count, or a smaller one: a cloned authenticator
        clone = sdk()
        refused = api_error(
            clone.finish_passkey_login, device.get(clone.begin_passkey_login(), count=count)
        )
        assert (refused.status, refused.code) == (401, "passkey_counter_regressed")
    grown = sdk()
    assert (
        grown.finish_passkey_login(device.get(grown.begin_passkey_login(), count=6)).user.id
        == alice.id
    )


def test_forged_answers_are_refused(
    register: Callable[..., Account], sdk: Callable[[], Client]
) -> None:
    alice = register()
    device = with_passkey(alice)
    client = sdk()
    wrong_origin = device.get(client.begin_passkey_login(), origin="https://evil.example")
    refused = api_error(client.finish_passkey_login, wrong_origin)
    assert (refused.status, refused.code) == (422, "invalid_passkey_response")
    stranger = SoftAuthenticator(origin=PUBLIC, rp_id="testserver.local")
    unknown = api_error(client.finish_passkey_login, stranger.get(client.begin_passkey_login()))
    assert (unknown.status, unknown.code) == (401, "unknown_passkey")
    # A signature by another key over a registered credential id.
    impostor = SoftAuthenticator(
        origin=PUBLIC,
        credential_id=device.credential_id,
        user_handle=device.user_handle,
        rp_id="testserver.local",
        sign_count=100,
    )
    forged = api_error(client.finish_passkey_login, impostor.get(client.begin_passkey_login()))
    assert (forged.status, forged.code) == (422, "invalid_passkey_response")
    # No user verification (no PIN, no biometric): not two factors, refused.
    device.verify_user = False
    unverified = api_error(client.finish_passkey_login, device.get(client.begin_passkey_login()))
    assert unverified.code == "invalid_passkey_response"
    bob = register()
    options = bob.client.begin_passkey_registration()
    lazy = SoftAuthenticator(origin=PUBLIC, verify_user=False)
    assert api_error(bob.client.finish_passkey_registration, lazy.create(options)).code == (
        "invalid_passkey_response"
    )
    malformed = bob.client.raw("POST", "/v1/auth/passkey/finish", json={"credential": {}})
    assert error(malformed) == (422, "invalid_passkey_response")


def test_a_passkey_skips_totp_and_a_disabled_account_is_refused(
    app: App,
    http: TestClient[Any],
    register: Callable[..., Account],
    sdk: Callable[[], Client],
    clock: Clock,
) -> None:
    alice = register()
    enable_totp(alice, clock)
    device = with_passkey(alice)
    with pytest.raises(MfaRequired):
        sdk().login(alice.username, PASSWORD)
    client = sdk()
    assert client.finish_passkey_login(device.get(client.begin_passkey_login())).user.id == alice.id
    disable(app, http, alice.id)
    late = sdk()
    refused = api_error(late.finish_passkey_login, device.get(late.begin_passkey_login()))
    assert (refused.status, refused.code) == (403, "account_disabled")


def test_rename_and_delete(register: Callable[..., Account], sdk: Callable[[], Client]) -> None:
    alice, bob = register(), register()
    device = with_passkey(alice)
    [key] = alice.client.passkeys()
    assert alice.client.rename_passkey(key.id, "phone").name == "phone"
    assert api_error(alice.client.rename_passkey, key.id, "\x00").code == "invalid_passkey_name"
    # Another account sees none of it.
    assert bob.client.passkeys() == []
    assert api_error(bob.client.rename_passkey, key.id, "mine").code == "passkey_not_found"
    assert api_error(bob.client.delete_passkey, key.id).code == "passkey_not_found"
    assert api_error(alice.client.delete_passkey, "nope").code == "passkey_not_found"
    alice.client.delete_passkey(key.id)  # she has a password still
    assert alice.client.passkeys() == []
    client = sdk()
    gone = api_error(client.finish_passkey_login, device.get(client.begin_passkey_login()))
    assert gone.code == "unknown_passkey"
    unauthenticated = bob.client.raw("GET", "/v1/me/passkeys", auth=False)
    assert error(unauthenticated) == (401, "missing_token")


def test_passkeys_are_in_the_export_and_go_with_the_account(
    register: Callable[..., Account], sdk: Callable[[], Client]
) -> None:
    alice = register()
    device = with_passkey(alice, "yubikey")
    [entry] = alice.client.export()["passkeys"]
    assert entry["name"] == "yubikey"
    assert set(entry) == {"id", "name", "created_at", "last_used_at"}  # no key material
    alice.client.delete_me(PASSWORD)
    client = sdk()
    gone = api_error(client.finish_passkey_login, device.get(client.begin_passkey_login()))
    assert gone.code == "unknown_passkey"


async def test_the_async_sdk_and_one_assertion_sent_twice_at_once(
    async_sdk: Callable[[], AsyncClient],
) -> None:
    client = async_sdk()
    alice = await client.register(unique_name("pk"), PASSWORD)
    device = SoftAuthenticator(origin=PUBLIC)
    options = await client.begin_passkey_registration()
    await client.finish_passkey_registration(device.create(options), name="key")
    fresh = async_sdk()
    assertion = device.get(await fresh.begin_passkey_login())
    results = await asyncio.gather(
        fresh.finish_passkey_login(assertion),
        async_sdk().finish_passkey_login(assertion),
        return_exceptions=True,
    )
    signed_in = [r for r in results if isinstance(r, AuthResult)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert [r.user.id for r in signed_in] == [alice.user.id], results
    assert [(r.status, r.code) for r in refused] == [(400, "invalid_challenge")]
    [key] = await client.passkeys()
    assert (await client.rename_passkey(key.id, "renamed")).name == "renamed"


def test_ceremonies_begun_are_limited_per_address(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    app = make_app(
        make_settings(public_url=PUBLIC, sign_in_starts_max_per_ip_per_minute=3), clock=clock
    )
    with TestClient(app.asgi) as http:  # type: ignore[arg-type]
        for _ in range(3):
            assert http.post("/v1/auth/passkey/begin").status_code == 200
        assert error(http.post("/v1/auth/passkey/begin")) == (429, "too_many_attempts")
