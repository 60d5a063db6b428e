"""Access tokens under attack (forged, expired, misdirected) and signing-key rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar.testing import TestClient

import socius.services.tokens as tokens_module
from conftest import PASSWORD, make_app
from contract import assert_error, bearer
from socius.client import Client


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: dict) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def header_of(token: str) -> dict:
    return jwt.get_unverified_header(token)


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def live_signing_key(http, app) -> tuple[str, Ed25519PrivateKey]:
    """The key the app signs with, read from the shared database."""

    async def read():
        async with app.wiring.database() as uow:
            records = await uow.signing_keys.list_all()
        return [r for r in records if r.retired_at is None]

    live = http.blocking_portal.call(read)
    assert len(live) == 1
    key = serialization.load_pem_private_key(live[0].private_key_pem.encode(), None)
    assert isinstance(key, Ed25519PrivateKey)
    return live[0].kid, key


def sign(claims: dict, key, *, kid: str, alg: str = "EdDSA", typ: str = "at+jwt") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": typ})


@pytest.fixture
def victim(register, sdk):
    """Two accounts: the victim (whose token is forged) and a bystander."""
    alice = register()
    bob = register()
    return SimpleNamespace(alice=alice, bob=bob, token=alice.auth.access_token)


def accepted(http, token: str) -> bool:
    response = http.get("/v1/me", headers=bearer(token))
    if response.status_code == 200:
        return True
    assert_error(response, 401)
    # The same token is refused everywhere, not only on /v1/me.
    assert_error(http.get("/v1/me/sessions", headers=bearer(token)), 401)
    assert_error(http.get("/v1/users/search", params={"q": "a"}, headers=bearer(token)), 401)
    return False


def test_a_token_signed_with_the_live_key_is_accepted(app, http, victim):
    """The control for the forgeries below: the harness can make a token the app takes."""
    kid, key = live_signing_key(http, app)
    assert header_of(victim.token)["kid"] == kid
    claims = claims_of(victim.token) | {"jti": "control"}
    assert accepted(http, sign(claims, key, kid=kid))
    assert accepted(http, victim.token)


def test_alg_none_is_refused(app, http, victim):
    kid, _ = live_signing_key(http, app)
    claims = claims_of(victim.token)
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64json({'alg': alg, 'typ': 'at+jwt', 'kid': kid})}.{b64json(claims)}."
        assert not accepted(http, unsigned)
        assert not accepted(http, unsigned + b64(b"sig"))


def test_a_token_signed_with_another_ed25519_key_is_refused(app, http, victim):
    kid, _ = live_signing_key(http, app)
    forged = sign(claims_of(victim.token), Ed25519PrivateKey.generate(), kid=kid)
    assert header_of(forged) == header_of(victim.token)
    assert not accepted(http, forged)


def test_hs256_with_the_public_key_as_secret_is_refused(app, http, victim):
    kid, key = live_signing_key(http, app)
    public = key.public_key()
    secrets_to_try = [
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    ]
    claims = claims_of(victim.token)
    for secret in secrets_to_try:
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            head = b64json({"alg": alg, "typ": "at+jwt", "kid": kid})
            signing_input = f"{head}.{b64json(claims)}"
            mac = hmac.new(secret, signing_input.encode(), digest).digest()
            assert not accepted(http, f"{signing_input}.{b64(mac)}")


def test_expired_token_is_refused(app, http, victim):
    kid, key = live_signing_key(http, app)
    now = int(time.time())
    claims = claims_of(victim.token) | {"iat": now - 3600, "nbf": now - 3600, "exp": now - 60}
    assert not accepted(http, sign(claims, key, kid=kid))
    # The control: the same token with a future expiry is accepted.
    claims |= {"exp": now + 60}
    assert accepted(http, sign(claims, key, kid=kid))


def test_token_from_the_future_is_refused(app, http, victim):
    kid, key = live_signing_key(http, app)
    now = int(time.time())
    for field in ("nbf", "iat"):
        claims = claims_of(victim.token) | {field: now + 120, "exp": now + 900}
        assert not accepted(http, sign(claims, key, kid=kid)), field


def test_wrong_or_missing_claims_are_refused(app, http, victim):
    kid, key = live_signing_key(http, app)
    for change in [
        {"aud": "someone-else"},
        {"aud": ["other-api"]},
        {"iss": "evil"},
        {"iss": None},
        {"sid": None},
        {"sub": None},
        {"exp": None},
        {"iat": None},
        {"sid": "not-a-number"},
        {"sub": "not-a-number"},
    ]:
        claims = claims_of(victim.token)
        for name, value in change.items():
            if value is None:
                claims.pop(name)
            else:
                claims[name] = value
        assert not accepted(http, sign(claims, key, kid=kid)), change


def test_token_of_another_type_is_refused(app, http, victim):
    kid, key = live_signing_key(http, app)

    def signed(header: dict) -> str:
        signing_input = f"{b64json(header)}.{b64json(claims_of(victim.token))}"
        return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"

    for typ in ("JWT", "refresh+jwt", None):
        header = {"alg": "EdDSA", "kid": kid} | ({} if typ is None else {"typ": typ})
        assert not accepted(http, signed(header)), typ
    # The same, typed as an access token, is accepted: only the type was wrong.
    assert accepted(http, signed({"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}))


def test_unknown_kid_is_refused(app, http, victim):
    _, key = live_signing_key(http, app)
    assert not accepted(http, sign(claims_of(victim.token), key, kid="0123456789abcdef"))
    assert not accepted(http, sign(claims_of(victim.token), key, kid="../../etc/passwd"))


def test_refresh_token_used_as_access_token_is_refused(http, victim):
    assert not accepted(http, victim.alice.auth.refresh_token)


def test_tampered_payload_is_refused(http, victim):
    head, payload, signature = victim.token.split(".")
    claims = claims_of(victim.token)
    for change in ({"sub": victim.bob.id}, {"exp": claims["exp"] + 3600}, {"jti": "other"}):
        tampered = f"{head}.{b64json(claims | change)}.{signature}"
        assert not accepted(http, tampered)
    # A flipped bit in the signature, too.
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[0] ^= 1
    assert not accepted(http, f"{head}.{payload}.{b64(bytes(raw))}")
    assert accepted(http, victim.token)  # the original is untouched


def test_token_of_a_deleted_user_is_refused(http, victim):
    token = victim.token
    assert accepted(http, token)
    victim.alice.client.delete_me(PASSWORD)
    assert not accepted(http, token)
    assert_error(http.get(f"/v1/users/{victim.bob.id}", headers=bearer(token)), 401)


# ---------------------------------------------------------------------------- key rotation


def rotate(http, app) -> str:
    return http.blocking_portal.call(app.wiring.container.tokens.rotate)


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(app, http, register, sdk):
    alice = register()
    old_token = alice.auth.access_token
    old_kid = header_of(old_token)["kid"]

    new_kid = rotate(http, app)
    assert new_kid != old_kid

    assert accepted(http, old_token)  # issued before the rotation: still verifies
    fresh = alice.client.refresh()
    assert header_of(fresh.access_token)["kid"] == new_kid
    assert accepted(http, fresh.access_token)
    assert header_of(sdk().login(alice.username, PASSWORD).access_token)["kid"] == new_kid
    assert live_signing_key(http, app)[0] == new_kid
    # A second rotation: tokens of both earlier keys still verify.
    third_kid = rotate(http, app)
    assert len({old_kid, new_kid, third_kid}) == 3
    assert accepted(http, old_token)
    assert accepted(http, fresh.access_token)


def test_another_node_verifies_tokens_of_a_key_made_after_it_started(
    app, http, register, make_settings, monkeypatch
):
    alice = register()
    node_b = make_app(make_settings())
    with TestClient(node_b.asgi) as b:
        assert accepted(b, alice.auth.access_token)  # B knows the first key
        # Time passes on B since it loaded its keys (its reload is rate-limited).
        clock = SimpleNamespace(monotonic=lambda: time.monotonic() + 30)
        monkeypatch.setattr(tokens_module, "time", clock)

        new_kid = rotate(http, app)  # on node A
        fresh = Client(http=http).login(alice.username, PASSWORD)
        assert header_of(fresh.access_token)["kid"] == new_kid
        assert accepted(b, fresh.access_token)
        assert accepted(b, alice.auth.access_token)
        # B now signs with the new key as well, and A accepts B's tokens.
        from_b = Client(http=b).login(alice.username, PASSWORD)
        assert header_of(from_b.access_token)["kid"] == new_kid
        assert accepted(http, from_b.access_token)
