"""Sign-in with OpenID Connect (issue 12): a real provider over HTTP (tests/oidc_provider.py),
the whole redirect flow, linking, and the failure paths. Both stacks, through the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from admin_support import grant_admin_from_cli
from api_support import error
from federation_support import PUBLIC, back_from_provider, disable, fragment, mark_email_verified
from litestar.testing import TestClient
from totp_support import code_at, enable_totp

from clock import Clock
from conftest import PASSWORD, Account, App, make_app, unique_name
from contract import api_error
from event_support import read_events, relay
from oidc_provider import OidcProvider, running_provider
from socius.client import ApiError, AsyncClient, AuthResult, Client, MfaRequired
from socius.settings import Settings

KEY = "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE="  # 32 bytes of "1", base64


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with running_provider() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_knobs(provider: OidcProvider) -> None:
    provider.id_token_overrides = {}
    provider.sign_with_stranger = False
    provider.symmetric = False
    provider.code_ttl = 60.0
    provider.deny = False


@pytest.fixture
def settings(make_settings: Callable[..., Settings], provider: OidcProvider) -> Settings:
    config = {
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
    }
    return make_settings(
        public_url=PUBLIC,
        oidc_providers={
            "acme": {**config, "display_name": "Acme ID"},
            "other": config,  # the same provider under a second name
            "down": {**config, "issuer": "http://127.0.0.1:9"},  # nothing listens there
        },
        oidc_return_urls=["myapp://signed-in"],
        mfa_encryption_key=KEY,
    )


@pytest.fixture
def app(settings: Settings, clock: Clock) -> App:
    return make_app(settings, clock=clock)


def sign_in(
    http: TestClient[Any], provider: OidcProvider, sub: str, **claims: Any
) -> httpx.Response:
    """A browser signing in at the provider as ``sub``: the callback's answer."""
    provider.sign_in_as(sub, **claims)
    start = http.get("/v1/auth/oidc/acme/start", follow_redirects=False)
    assert start.status_code == 302, start.text
    return back_from_provider(http, start.headers["location"])


def verified(name: str) -> dict[str, Any]:
    return {"email": f"{name}@example.org", "email_verified": True, "preferred_username": name}


# ------------------------------------------------------------------------------ signing in


def test_the_providers_are_listed(sdk: Callable[[], Client]) -> None:
    listed = {p.name: p for p in sdk().oidc_providers()}
    assert set(listed) == {"acme", "other", "down"}
    assert listed["acme"].display_name == "Acme ID"
    assert listed["other"].display_name == "other"
    assert listed["acme"].start_url == "/v1/auth/oidc/acme/start"


def test_the_authorization_url_carries_pkce_state_and_nonce(
    sdk: Callable[[], Client], provider: OidcProvider
) -> None:
    url = urlsplit(sdk().oidc_authorization_url("acme"))
    assert f"{url.scheme}://{url.netloc}{url.path}" == provider.issuer + "/authorize"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["client_id"] == provider.client_id
    assert query["redirect_uri"] == f"{PUBLIC}/v1/auth/oidc/acme/callback"
    assert query["code_challenge_method"] == "S256"
    assert query["scope"] == "openid email profile"
    assert len(query["state"]) >= 40
    assert len(query["nonce"]) >= 40
    assert len(query["code_challenge"]) == 43


def test_a_first_sign_in_makes_an_account_and_the_next_finds_it(
    app: App,
    http: TestClient[Any],
    sdk: Callable[[], Client],
    provider: OidcProvider,
    register: Callable[..., Account],
) -> None:
    name = unique_name("oidc")
    back = fragment(sign_in(http, provider, f"sub-{name}", **verified(name), name="Ada L."))
    assert set(back) == {"oidc_code"}
    client = sdk()
    first = client.oidc_exchange(back["oidc_code"])
    assert first.user.username == name
    me = client.me()
    assert (me.email, me.email_verified, me.display_name) == (f"{name}@example.org", True, "Ada L.")
    [linked] = client.identities()
    assert (linked.provider, linked.subject) == ("acme", f"sub-{name}")
    # The code works once.
    again = api_error(sdk().oidc_exchange, back["oidc_code"])
    assert (again.status, again.code) == (400, "invalid_code")
    # The next sign-in finds the same account.
    second = sdk().oidc_exchange(fragment(sign_in(http, provider, f"sub-{name}"))["oidc_code"])
    assert second.user.id == first.user.id
    # An account made by a provider has no password.
    refused = api_error(sdk().login, name, "")
    assert refused.status in (401, 422)
    # The durable stream has its account.created, once, as a registration's.
    admin = register()
    grant_admin_from_cli(app, http, admin.id)
    relay(app, http)
    created = [
        e["data"]
        for e in read_events(http, admin.client.access_token or "", types="account.created")
    ]
    assert {"user_id": first.user.id, "via": "oidc"} in created
    assert [d["user_id"] for d in created].count(first.user.id) == 1


def test_a_taken_username_gets_a_suffix(
    http: TestClient[Any],
    sdk: Callable[[], Client],
    register: Callable[..., Account],
    provider: OidcProvider,
) -> None:
    taken = register()
    back = fragment(sign_in(http, provider, unique_name("sub"), **verified(taken.username)))
    made = sdk().oidc_exchange(back["oidc_code"])
    assert made.user.username.startswith(taken.username[:24] + "_")
    assert made.user.id != taken.id


def test_no_verified_email_no_account(http: TestClient[Any], provider: OidcProvider) -> None:
    name = unique_name("oidc")
    unverified = {**verified(name), "email_verified": False}
    assert error(sign_in(http, provider, name, **unverified)) == (403, "oidc_email_unverified")
    assert error(sign_in(http, provider, name)) == (403, "oidc_email_unverified")  # no email


def test_a_password_account_is_joined_only_when_both_sides_verified_the_address(
    app: App,
    http: TestClient[Any],
    sdk: Callable[[], Client],
    register: Callable[..., Account],
    provider: OidcProvider,
) -> None:
    name = unique_name("pw")
    owner = register(name, email=f"{name}@example.org")
    # Its address is not verified: the provider's word alone does not take the account.
    assert error(sign_in(http, provider, f"sub-{name}", **verified(name))) == (
        409,
        "oidc_account_exists",
    )
    assert owner.client.identities() == []
    # Verified on both sides: the identity is linked to it, and signs in to it.
    mark_email_verified(app, http, owner.id)
    back = fragment(sign_in(http, provider, f"sub-{name}", **verified(name)))
    assert sdk().oidc_exchange(back["oidc_code"]).user.id == owner.id
    assert [i.provider for i in owner.client.identities()] == ["acme"]
    # The password still works.
    assert sdk().login(name, PASSWORD).user.id == owner.id


# ------------------------------------------------------------------------------ failures


def test_a_forged_used_or_foreign_state_is_refused(
    http: TestClient[Any], provider: OidcProvider
) -> None:
    provider.sign_in_as(unique_name("sub"), **verified(unique_name("x")))
    forged = http.get("/v1/auth/oidc/acme/callback", params={"code": "c", "state": "x" * 43})
    assert error(forged) == (400, "invalid_state")
    assert error(http.get("/v1/auth/oidc/acme/callback", params={"code": "c"})) == (
        400,
        "invalid_state",
    )
    start = http.get("/v1/auth/oidc/acme/start", follow_redirects=False)
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    back = urlsplit(at_provider.headers["location"])
    # Another provider's callback with acme's state: refused (and the state is spent).
    foreign = http.get(f"/v1/auth/oidc/other/callback?{back.query}", follow_redirects=False)
    assert error(foreign) == (400, "invalid_state")
    replay = http.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert error(replay) == (400, "invalid_state")
    assert error(http.get("/v1/auth/oidc/nope/callback", params={"state": "x" * 43})) == (
        404,
        "unknown_provider",
    )


def test_an_expired_state_is_refused(
    http: TestClient[Any], provider: OidcProvider, clock: Clock
) -> None:
    provider.sign_in_as(unique_name("sub"), **verified(unique_name("x")))
    start = http.get("/v1/auth/oidc/acme/start", follow_redirects=False)
    clock.advance(601)
    assert error(back_from_provider(http, start.headers["location"])) == (400, "invalid_state")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "someone-else"}, "audience"),
        ({"nonce": "not-the-nonce"}, "nonce"),
        ({"exp": 1_000_000_000, "iat": 999_999_000}, "expired"),
        ({"iss": "https://impostor.example"}, "issuer"),
    ],
)
def test_an_id_token_that_does_not_check_out_is_refused(
    http: TestClient[Any], provider: OidcProvider, overrides: dict[str, Any], reason: str
) -> None:
    provider.id_token_overrides = overrides
    answer = sign_in(http, provider, unique_name("sub"), **verified(unique_name("x")))
    assert error(answer) == (400, "invalid_id_token")
    assert answer.json()["error"]["details"]["reason"] == reason


def test_an_id_token_signed_by_another_key_is_refused(
    http: TestClient[Any], provider: OidcProvider
) -> None:
    provider.sign_with_stranger = True
    answer = sign_in(http, provider, unique_name("sub"), **verified(unique_name("x")))
    assert error(answer) == (400, "invalid_id_token")
    assert answer.json()["error"]["details"]["reason"] == "signature"


def test_an_id_token_signed_with_the_client_secret_is_refused(
    http: TestClient[Any], provider: OidcProvider
) -> None:
    """Only the provider's asymmetric keys sign: an HS256 token (the client secret, which
    socius holds too) is refused, whatever its claims."""
    provider.symmetric = True
    answer = sign_in(http, provider, unique_name("sub"), **verified(unique_name("x")))
    assert error(answer) == (400, "invalid_id_token")
    assert answer.json()["error"]["details"]["reason"] == "algorithm"


def test_an_expired_code_or_a_declined_sign_in_is_refused(
    http: TestClient[Any], provider: OidcProvider
) -> None:
    provider.code_ttl = 0
    answer = sign_in(http, provider, unique_name("sub"), **verified(unique_name("x")))
    assert error(answer) == (400, "oidc_code_rejected")
    provider.code_ttl = 60
    provider.deny = True
    answer = sign_in(http, provider, unique_name("sub"), **verified(unique_name("x")))
    assert error(answer) == (400, "oidc_provider_error")


def test_bad_starts(http: TestClient[Any], sdk: Callable[[], Client]) -> None:
    assert error(http.get("/v1/auth/oidc/nope/start")) == (404, "unknown_provider")
    evil = http.get("/v1/auth/oidc/acme/start", params={"return_to": "https://evil.example/"})
    assert error(evil) == (422, "invalid_return_to")
    lookalike = http.get(
        "/v1/auth/oidc/acme/start", params={"return_to": PUBLIC + ".evil.example/"}
    )
    assert error(lookalike) == (422, "invalid_return_to")
    down = api_error(sdk().oidc_authorization_url, "down")
    assert (down.status, down.code) == (503, "oidc_provider_unavailable")


def test_a_native_app_gets_the_code_at_its_own_address(
    http: TestClient[Any], sdk: Callable[[], Client], provider: OidcProvider
) -> None:
    name = unique_name("app")
    provider.sign_in_as(f"sub-{name}", **verified(name))
    client = sdk()
    url = client.oidc_authorization_url("acme", return_to="myapp://signed-in/done")
    answer = back_from_provider(http, url)
    location = answer.headers["location"]
    assert location.startswith("myapp://signed-in/done#oidc_code=")
    assert client.oidc_exchange(fragment(answer)["oidc_code"]).user.username == name


# ------------------------------------------------------------------------------ the gate


def test_a_second_factor_is_asked_after_the_provider(
    http: TestClient[Any], sdk: Callable[[], Client], provider: OidcProvider, clock: Clock
) -> None:
    name = unique_name("mfa")
    client = sdk()
    auth = client.oidc_exchange(
        fragment(sign_in(http, provider, f"sub-{name}", **verified(name)))["oidc_code"]
    )
    secret, _ = enable_totp(Account(client, auth, ""), clock)
    fresh = sdk()
    code = fragment(sign_in(http, provider, f"sub-{name}"))["oidc_code"]
    with pytest.raises(MfaRequired) as raised:
        fresh.oidc_exchange(code)
    assert fresh.access_token is None
    signed_in = fresh.login_mfa(raised.value.mfa_token, code=code_at(secret, clock.now))
    assert signed_in.user.id == auth.user.id


def test_a_disabled_account_cannot_sign_in_with_a_provider(
    app: App, http: TestClient[Any], sdk: Callable[[], Client], provider: OidcProvider
) -> None:
    name = unique_name("off")
    made = sdk().oidc_exchange(
        fragment(sign_in(http, provider, f"sub-{name}", **verified(name)))["oidc_code"]
    )
    disable(app, http, made.user.id)
    refused = api_error(
        sdk().oidc_exchange, fragment(sign_in(http, provider, f"sub-{name}"))["oidc_code"]
    )
    assert (refused.status, refused.code) == (403, "account_disabled")


# ------------------------------------------------------------------------------ linking


def test_linking_and_unlinking_a_provider(
    http: TestClient[Any],
    sdk: Callable[[], Client],
    register: Callable[..., Account],
    provider: OidcProvider,
) -> None:
    alice, bob = register(), register()
    provider.sign_in_as(f"sub-{alice.username}")  # no email needed to link
    answer = back_from_provider(http, alice.client.link_identity("acme"))
    code = fragment(answer)["oidc_link_code"]
    # Only the account that started linking can confirm it.
    stranger = api_error(bob.client.confirm_identity_link, code)
    assert (stranger.status, stranger.code) == (400, "invalid_code")
    answer = back_from_provider(http, alice.client.link_identity("acme"))
    linked = alice.client.confirm_identity_link(fragment(answer)["oidc_link_code"])
    assert (linked.id, linked.provider, linked.subject) == ("acme", "acme", f"sub-{alice.username}")
    assert alice.client.identities() == [linked]
    [exported] = alice.client.export()["identities"]
    assert (exported["provider"], exported["subject"]) == ("acme", f"sub-{alice.username}")
    # That identity now signs in to alice.
    back = fragment(sign_in(http, provider, f"sub-{alice.username}"))
    assert sdk().oidc_exchange(back["oidc_code"]).user.id == alice.id
    # Bob cannot take it; alice cannot link a second acme identity.
    taken = fragment(back_from_provider(http, bob.client.link_identity("acme")))
    refused = api_error(bob.client.confirm_identity_link, taken["oidc_link_code"])
    assert (refused.status, refused.code) == (409, "identity_already_linked")
    provider.sign_in_as(f"another-{alice.username}")
    second = fragment(back_from_provider(http, alice.client.link_identity("acme")))
    refused = api_error(alice.client.confirm_identity_link, second["oidc_link_code"])
    assert (refused.status, refused.code) == (409, "provider_already_linked")
    # Alice has a password: she may unlink.
    alice.client.unlink_identity("acme")
    assert alice.client.identities() == []
    gone = api_error(alice.client.unlink_identity, "acme")
    assert (gone.status, gone.code) == (404, "identity_not_found")
    unauthenticated = http.post("/v1/me/identities", json={"provider": "acme"})
    assert error(unauthenticated) == (401, "missing_token")


def test_only_the_client_that_started_a_sign_in_finishes_it(
    http: TestClient[Any], sdk: Callable[[], Client], provider: OidcProvider
) -> None:
    """No login CSRF: a sign-in someone else started cannot be finished in your browser
    (it lacks the start's cookie) or your app (it lacks the start's binding)."""
    name = unique_name("csrf")
    provider.sign_in_as(f"sub-{name}", **verified(name))
    start = http.get("/v1/auth/oidc/acme/start", follow_redirects=False)
    assert "httponly" in start.headers["set-cookie"].lower()
    http.cookies.clear()  # the victim's browser never started it
    refused = back_from_provider(http, start.headers["location"])
    assert error(refused) == (400, "invalid_state")
    attacker = sdk()
    url = attacker.oidc_authorization_url("acme")
    code = fragment(back_from_provider(http, url))["oidc_code"]
    victim = sdk()
    wrong = api_error(victim.oidc_exchange, code)
    assert (wrong.status, wrong.code) == (400, "invalid_binding")
    # The binding alone is no code: the code was spent by the refused attempt.
    spent = api_error(attacker.oidc_exchange, code)
    assert spent.code == "invalid_code"


def test_the_last_way_to_sign_in_cannot_be_unlinked(
    http: TestClient[Any], sdk: Callable[[], Client], provider: OidcProvider
) -> None:
    name = unique_name("only")
    client = sdk()
    client.oidc_exchange(
        fragment(sign_in(http, provider, f"sub-{name}", **verified(name)))["oidc_code"]
    )
    refused = api_error(client.unlink_identity, "acme")
    assert (refused.status, refused.code) == (409, "last_sign_in_method")
    assert [i.provider for i in client.identities()] == ["acme"]


def test_a_rotated_provider_key_is_fetched_once(
    http: TestClient[Any], sdk: Callable[[], Client], provider: OidcProvider
) -> None:
    name = unique_name("rot")
    sdk().oidc_exchange(
        fragment(sign_in(http, provider, f"sub-{name}", **verified(name)))["oidc_code"]
    )
    fetched = provider.jwks_requests
    sdk().oidc_exchange(fragment(sign_in(http, provider, f"sub-{name}"))["oidc_code"])
    assert provider.jwks_requests == fetched  # cached
    provider.rotate_key()
    again = sdk().oidc_exchange(fragment(sign_in(http, provider, f"sub-{name}"))["oidc_code"])
    assert again.user.username == name
    assert provider.jwks_requests == fetched + 1


async def test_the_async_sdk_signs_in_with_a_provider_and_a_code_works_once(
    ahttp: Any, async_sdk: Callable[[], AsyncClient], provider: OidcProvider
) -> None:
    name = unique_name("async")
    provider.sign_in_as(f"sub-{name}", **verified(name))
    client = async_sdk()
    url = await client.oidc_authorization_url("acme")
    at_provider = await asyncio.to_thread(httpx.get, url, follow_redirects=False)
    back = urlsplit(at_provider.headers["location"])
    answer = await ahttp.get(f"{back.path}?{back.query}", follow_redirects=False)
    code = fragment(answer)["oidc_code"]
    results = await asyncio.gather(
        client.oidc_exchange(code), client.oidc_exchange(code), return_exceptions=True
    )
    signed_in = [r for r in results if isinstance(r, AuthResult)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(signed_in) == 1, results
    assert [(r.status, r.code) for r in refused] == [(400, "invalid_code")]
    assert signed_in[0].user.username == name
    assert [i.provider for i in await client.identities()] == ["acme"]
