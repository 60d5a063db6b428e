"""AccessTokens.issue writes tokens by hand: they must be exactly what PyJWT writes for the
same claims, key and headers, and verify both ways (its own verifier and PyJWT's)."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt
import pytest

from socius.services.tokens import AccessTokens, _new_key

NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


def _unused_uow(*args: object, **kwargs: object) -> object:
    raise AssertionError("no database here")


@pytest.mark.parametrize("jti", ["abc", "Zm9v-_Ab12", 'a "quoted"\\ é'])
@pytest.mark.parametrize("issuer", ["https://socius.example", "sócius ☃"])
async def test_issued_tokens_are_pyjwts_byte_for_byte_and_verify(issuer: str, jti: str) -> None:
    tokens = AccessTokens(
        _unused_uow,  # type: ignore[arg-type]
        lambda: NOW,
        issuer=issuer,
        audience="socius",
        ttl_seconds=900,
    )
    record = _new_key(NOW)
    tokens._install([record])
    assert tokens._signing is not None
    _, key, _ = tokens._signing
    token = tokens.issue(42, 7, at=NOW, jti=jti)
    claims = {
        "iss": issuer,
        "aud": "socius",
        "sub": "42",
        "sid": "7",
        "iat": int(NOW.timestamp()),
        "nbf": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 900,
        "jti": jti,
    }
    expected = jwt.encode(
        claims, key, algorithm="EdDSA", headers={"kid": record.kid, "typ": "at+jwt"}
    )
    assert token == expected
    assert tokens.issue(42, 7, at=NOW, jti=jti) == token  # deterministic (refresh grace)
    verified = await tokens.verify(token)
    assert (verified.user_id, verified.session_id) == (42, 7)
    decoded = jwt.decode(
        token,
        key.public_key(),
        algorithms=["EdDSA"],
        audience="socius",
        issuer=issuer,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert decoded == claims
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": record.kid, "typ": "at+jwt"}
