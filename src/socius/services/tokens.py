"""Access tokens: EdDSA (Ed25519) JWTs with a ``kid``, keys shared through the database.

The newest unretired key signs. Retired keys keep verifying until every token they
signed has expired. Verified tokens are cached until they expire, so the hot path is a
dictionary lookup; a revoked session is still refused because revocation is checked
separately on every request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from socius.domain.errors import Unauthenticated
from socius.domain.sessions import AccessClaims
from socius.domain.signing_keys import SigningKeyRecord
from socius.services.ports import Clock, UnitOfWork, UnitOfWorkFactory

__all__ = ["AccessTokens"]

_ALGORITHM = "EdDSA"
_REQUIRED = ["exp", "iat", "nbf", "iss", "aud", "sub", "sid"]
_LEEWAY = 5  # seconds of clock skew tolerated between nodes
_RELOAD_GAP = 0.1  # seconds between reloads of the keys for an unknown kid


_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _header_segment(kid: str) -> str:
    """The encoded JOSE header of a token signed with ``kid``, as PyJWT writes it (sorted
    keys, compact): computed once per key, not per token."""
    header = {"alg": _ALGORITHM, "kid": kid, "typ": "at+jwt"}
    return _b64encode(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())


_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _json_string(value: str) -> str:
    """``json.dumps(value)``, without the call for the usual URL-safe base64 ids."""
    return f'"{value}"' if _PLAIN.issuperset(value) else json.dumps(value)


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _invalid(reason: str) -> Unauthenticated:
    return Unauthenticated(
        "the access token is not valid", code="invalid_token", details={"reason": reason}
    )


class AccessTokens:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        cache_size: int = 100_000,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds
        # The constant start of every payload, as json.dumps writes it.
        self._claims_head = f'{{"iss":{json.dumps(issuer)},"aud":{json.dumps(audience)},'
        # The signing key: its kid, the key, and the encoded header of the tokens it signs.
        self._signing: tuple[str, Ed25519PrivateKey, str] | None = None
        self._verifying: dict[str, Ed25519PublicKey] = {}
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()
        self._cache_size = cache_size
        self._last_reload = 0.0
        self._reload_lock = asyncio.Lock()

    @property
    def ttl_seconds(self) -> int:
        return self._ttl

    # keys ----------------------------------------------------------------------------

    async def load_keys(self) -> None:
        """Read the keys from the database, creating the first one if there is none."""
        async with self._reload_lock:
            async with self._uow(write=False) as uow:
                records = await uow.signing_keys.list_all()
            if not any(r.retired_at is None for r in records):
                async with self._uow() as uow:
                    await uow.signing_keys.add(_new_key(self._clock()))
                    await uow.commit()
                # Read again: nodes that started together may each have made one; all of
                # them sign with the newest, and every one of those keys verifies.
                async with self._uow(write=False) as uow:
                    records = await uow.signing_keys.list_all()
            self._install(records)
            self._last_reload = time.monotonic()

    async def rotate(
        self, *, within: Callable[[UnitOfWork, str], Awaitable[None]] | None = None
    ) -> str:
        """Make a new signing key and retire the others; returns the new ``kid``.
        ``within(uow, kid)`` runs in the same transaction (the audit log's entry)."""
        now = self._clock()
        record = _new_key(now)
        async with self._uow() as uow:
            if within is not None:
                await within(uow, record.kid)
            await uow.signing_keys.add(record)
            await uow.signing_keys.retire_all_except(record.kid, now)
            await uow.signing_keys.delete_retired_before(now - timedelta(seconds=2 * self._ttl))
            await uow.commit()
        await self.load_keys()
        return record.kid

    def _install(self, records: list[SigningKeyRecord]) -> None:
        now = self._clock()
        verifying: dict[str, Ed25519PublicKey] = {}
        signing: tuple[str, Ed25519PrivateKey] | None = None
        for record in records:  # newest first
            if (
                record.retired_at is not None
                and record.retired_at + timedelta(seconds=self._ttl + _LEEWAY) < now
            ):
                continue  # every token it signed has expired
            private = serialization.load_pem_private_key(record.private_key_pem.encode(), None)
            assert isinstance(private, Ed25519PrivateKey)
            verifying[record.kid] = private.public_key()
            if signing is None and record.retired_at is None:
                signing = (record.kid, private)
        self._verifying = verifying
        self._signing = None if signing is None else (*signing, _header_segment(signing[0]))

    async def _reload_for(self, kid: str) -> bool:
        """Another node may have made a key: reload and retry. Reloads are at least
        ``_RELOAD_GAP`` apart (a stream of forged kids costs at most that many reads); a
        request that comes too early waits for its turn instead of being refused."""
        wait = _RELOAD_GAP - (time.monotonic() - self._last_reload)
        if wait > 0:
            await asyncio.sleep(wait)
        if kid not in self._verifying:
            await self.load_keys()
        return kid in self._verifying

    # tokens --------------------------------------------------------------------------

    def issue(
        self, user_id: int, session_id: int, *, at: datetime | None = None, jti: str | None = None
    ) -> str:
        """A signed access token, issued ``at`` (default: now). The same arguments give the
        same token while the signing key is the same: Ed25519 signatures are deterministic."""
        if self._signing is None:
            raise RuntimeError("signing keys not loaded: call load_keys() at start-up")
        _, key, header = self._signing
        now = int((at or self._clock()).timestamp())
        jti = jti or secrets.token_urlsafe(8)
        # What jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ":
        # "at+jwt"}) returns, byte for byte, without its generic machinery (a refresh
        # issues one): the cached header, the compact JSON payload (json.dumps of the
        # claims in this order, with iss and aud encoded once), one Ed25519 signature.
        payload = (
            f'{self._claims_head}"sub":"{user_id:d}","sid":"{session_id:d}",'
            f'"iat":{now},"nbf":{now},"exp":{now + self._ttl},"jti":{_json_string(jti)}}}'
        )
        body = _b64encode(payload.encode())
        signing_input = f"{header}.{body}"
        signature = key.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{_b64encode(signature)}"

    async def verify(self, token: str) -> AccessClaims:
        cached = self._verified.get(token)
        now = self._clock().timestamp()
        if cached is not None:
            if cached.expires_at + _LEEWAY > now:
                return cached
            self._verified.pop(token, None)
        claims = await self._verify_slow(token)
        self._verified[token] = claims
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return claims

    async def _verify_slow(self, token: str) -> AccessClaims:
        """Signature and claims, without PyJWT's generic machinery (a resuming herd of
        sockets verifies thousands of tokens a second): base64url + msgspec + one Ed25519
        check, then the same rules PyJWT applies with the options ``issue`` relies on."""
        parts = token.split(".")
        if len(parts) != 3:
            raise _invalid("malformed")
        head_b64, body_b64, signature_b64 = parts
        try:
            header = _decode_object(_b64decode(head_b64))
            payload = _decode_object(_b64decode(body_b64))
            signature = _b64decode(signature_b64)
        except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
            raise _invalid("malformed") from exc
        if header.get("alg") != _ALGORITHM:
            raise _invalid("algorithm")
        if header.get("typ") != "at+jwt":
            raise _invalid("type")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise _invalid("kid")
        key = self._verifying.get(kid)
        if key is None:
            if not await self._reload_for(kid):
                raise _invalid("kid")
            key = self._verifying[kid]
        try:
            key.verify(signature, f"{head_b64}.{body_b64}".encode("ascii"))
        except (InvalidSignature, UnicodeEncodeError) as exc:
            raise _invalid("InvalidSignatureError") from exc
        return self._claims(payload)

    def _claims(self, payload: dict[str, Any]) -> AccessClaims:
        for name in _REQUIRED:
            if name not in payload:
                raise _invalid("MissingRequiredClaimError")
        exp, nbf, iat = payload["exp"], payload["nbf"], payload["iat"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (exp, nbf, iat)):
            raise _invalid("DecodeError")
        now = self._clock().timestamp()
        if exp <= now - _LEEWAY:
            raise Unauthenticated("the access token has expired", code="token_expired")
        if nbf > now + _LEEWAY or iat > now + _LEEWAY:
            raise _invalid("ImmatureSignatureError")
        if payload["iss"] != self._issuer:
            raise _invalid("InvalidIssuerError")
        aud = payload["aud"]
        if not (aud == self._audience or (isinstance(aud, list) and self._audience in aud)):
            raise _invalid("InvalidAudienceError")
        sub, sid = payload["sub"], payload["sid"]
        if not isinstance(sub, str) or not isinstance(sid, str):
            raise _invalid("claims")
        try:
            return AccessClaims(
                user_id=int(sub), session_id=int(sid), expires_at=exp, issued_at=iat
            )
        except ValueError as exc:
            raise _invalid("claims") from exc

    def forget(self, token: str) -> None:
        self._verified.pop(token, None)


def _new_key(now: datetime) -> SigningKeyRecord:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return SigningKeyRecord(
        kid=secrets.token_hex(8), private_key_pem=pem, created_at=now, retired_at=None
    )
