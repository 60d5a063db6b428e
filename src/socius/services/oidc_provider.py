"""Talking to one OpenID Connect provider: discovery, the authorization URL (PKCE, state,
nonce), the code-for-tokens exchange, and the ID token's verification.

The ID token is verified with PyJWT (already the library of socius's own tokens): the
signature with a key of the provider's JWKS (by ``kid``; an unknown ``kid`` fetches the
set again, for key rotation), an asymmetric algorithm the provider announces, ``iss``
the discovered issuer, ``aud`` holding the client id (and ``azp`` it, when there are
several audiences), ``exp`` in the future and ``iat`` not far in it (on socius's clock),
and the ``nonce`` of this sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import structlog

from socius.domain.errors import InvalidToken, Unavailable

__all__ = ["IdClaims", "OidcProviderClient", "ProviderConfig", "pkce_challenge"]

log = structlog.get_logger("socius.oidc")

_ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
_DISCOVERY_SECONDS = 3600.0
_LEEWAY_SECONDS = 60


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    issuer: str
    client_id: str
    client_secret: str
    scopes: list[str]
    display_name: str


@dataclass(frozen=True, slots=True)
class IdClaims:
    """What socius uses of a verified ID token."""

    subject: str
    email: str | None
    email_verified: bool
    preferred_username: str | None
    name: str | None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: list[str]
    auth_methods: list[str]
    fetched: float


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _unavailable(name: str, why: str) -> Unavailable:
    log.warning("oidc provider unavailable", provider=name, reason=why)
    return Unavailable(
        f"the sign-in provider {name} cannot be reached; try again later",
        code="oidc_provider_unavailable",
    )


def _bad_id_token(reason: str) -> InvalidToken:
    return InvalidToken(
        f"the provider's ID token is not valid ({reason})",
        code="invalid_id_token",
        details={"reason": reason},
    )


class OidcProviderClient:
    def __init__(
        self,
        config: ProviderConfig,
        http: Callable[[], httpx.AsyncClient],
        *,
        redirect_uri: str,
    ) -> None:
        self.config = config
        self.redirect_uri = redirect_uri
        self._http = http
        self._discovery: _Discovery | None = None
        self._jwks: jwt.PyJWKSet | None = None

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http().get(url)
        except httpx.HTTPError as exc:
            raise _unavailable(self.config.name, f"{url}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise _unavailable(self.config.name, f"{url}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise _unavailable(self.config.name, f"{url}: not JSON") from exc
        if not isinstance(body, dict):
            raise _unavailable(self.config.name, f"{url}: not a JSON object")
        return body

    async def discovery(self) -> _Discovery:
        found = self._discovery
        if found is not None and time.monotonic() - found.fetched < _DISCOVERY_SECONDS:
            return found
        issuer = self.config.issuer.rstrip("/")
        doc = await self._get_json(issuer + "/.well-known/openid-configuration")
        try:
            announced = str(doc["issuer"])
            found = _Discovery(
                issuer=announced,
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
                algorithms=[
                    a
                    for a in doc.get("id_token_signing_alg_values_supported", ["RS256"])
                    if a in _ASYMMETRIC
                ],
                auth_methods=list(
                    doc.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
                ),
                fetched=time.monotonic(),
            )
        except (KeyError, TypeError) as exc:
            raise _unavailable(self.config.name, f"discovery lacks {exc}") from exc
        if announced.rstrip("/") != issuer:
            raise _unavailable(self.config.name, f"discovery names issuer {announced}")
        self._discovery = found
        return found

    async def authorization_url(self, *, state: str, nonce: str, verifier: str) -> str:
        found = await self.discovery()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": " ".join(self.config.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in found.authorization_endpoint else "?"
        return found.authorization_endpoint + separator + query

    async def redeem(self, code: str, *, verifier: str, nonce: str, now: datetime) -> IdClaims:
        """Trade the callback's code for tokens and verify the ID token. 400
        ``oidc_code_rejected`` when the provider refuses the code (expired, used, not
        ours); 400 ``invalid_id_token``; 503 ``oidc_provider_unavailable``."""
        found = await self.discovery()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
            "client_id": self.config.client_id,
        }
        auth: tuple[str, str] | None = None
        if self.config.client_secret:
            if "client_secret_basic" in found.auth_methods:
                auth = (self.config.client_id, self.config.client_secret)
            else:
                form["client_secret"] = self.config.client_secret
        try:
            response = await self._http().post(
                found.token_endpoint,
                data=form,
                auth=auth or httpx.USE_CLIENT_DEFAULT,
                headers={"accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise _unavailable(self.config.name, f"token endpoint: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise _unavailable(self.config.name, f"token endpoint: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            log.info("oidc code rejected", provider=self.config.name, error=error)
            raise InvalidToken(
                "the provider refused the sign-in code (expired or used); sign in again",
                code="oidc_code_rejected",
                details={"provider_error": str(error)[:64] if error else None},
            )
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise _bad_id_token("missing")
        return await self.verify(id_token, nonce=nonce, now=now)

    async def _key(self, kid: str | None, *, refetch: bool) -> jwt.PyJWK | None:
        found = await self.discovery()
        if self._jwks is None or refetch:
            try:
                self._jwks = jwt.PyJWKSet.from_dict(await self._get_json(found.jwks_uri))
            except jwt.PyJWKSetError as exc:
                raise _unavailable(self.config.name, f"JWKS: {exc}") from exc
        keys = [k for k in self._jwks.keys if kid is None or k.key_id == kid]
        return keys[0] if keys else None

    async def verify(self, id_token: str, *, nonce: str, now: datetime) -> IdClaims:
        found = await self.discovery()
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise _bad_id_token("malformed") from exc
        alg = header.get("alg")
        if alg not in found.algorithms:
            raise _bad_id_token("algorithm")
        kid = header.get("kid")
        key = await self._key(kid, refetch=False) or await self._key(kid, refetch=True)
        if key is None:
            raise _bad_id_token("unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key.key,
                algorithms=[alg],
                audience=self.config.client_id,
                issuer=found.issuer,
                options={
                    "verify_exp": False,  # below, on socius's clock
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iss", "aud", "exp", "iat", "sub"],
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise _bad_id_token("signature") from exc
        except jwt.InvalidAudienceError as exc:
            raise _bad_id_token("audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise _bad_id_token("issuer") from exc
        except jwt.PyJWTError as exc:
            raise _bad_id_token("claims") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise _bad_id_token("audience")
        at = now.timestamp()
        try:
            expires, issued = float(claims["exp"]), float(claims["iat"])
        except (TypeError, ValueError) as exc:
            raise _bad_id_token("claims") from exc
        if expires + _LEEWAY_SECONDS <= at:
            raise _bad_id_token("expired")
        if issued - _LEEWAY_SECONDS > at:
            raise _bad_id_token("issued in the future")
        if claims.get("nonce") != nonce:
            raise _bad_id_token("nonce")
        subject = claims["sub"]
        if not isinstance(subject, str) or not 1 <= len(subject) <= 255:
            raise _bad_id_token("subject")
        email = claims.get("email")
        verified = claims.get("email_verified") is True or claims.get("email_verified") == "true"
        username = claims.get("preferred_username")
        name = claims.get("name")
        return IdClaims(
            subject=subject,
            email=email if isinstance(email, str) else None,
            email_verified=verified and isinstance(email, str),
            preferred_username=username if isinstance(username, str) else None,
            name=name if isinstance(name, str) else None,
            raw=claims,
        )
