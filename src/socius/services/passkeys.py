"""Passkeys (WebAuthn): registering them, signing in with them, managing them.

Built on py_webauthn (the ``webauthn`` package, in the ``socius[federation]`` extra);
without it the endpoints answer 403 ``passkeys_unavailable``.

Each ceremony's challenge (32 random bytes) is stored by its hash with a short life and
spent by the ceremony that answers it, found from the ``clientDataJSON`` the
authenticator signed: a challenge works once. Registration requires user verification
(a PIN or biometric) as sign-in does, so a passkey is two factors and a passkey sign-in
skips TOTP (``AuthService.finish_login``). Sign-in asks for a discoverable credential
(no username first). The authenticator's signature counter must grow between uses
(when it counts at all): a counter that does not is a cloned key, refused with 401
``passkey_counter_regressed`` and logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from socius.domain.errors import Forbidden, InvalidInput, InvalidToken, NotFound, Unauthenticated
from socius.domain.federation import (
    AuthChallenge,
    ChallengePurpose,
    Passkey,
    check_passkey_name,
    hash_challenge,
)
from socius.domain.ids import IdGenerator
from socius.services.auth import AuthService, ClientInfo, IssuedTokens, SignInMethod
from socius.services.mfa import MfaChallenge
from socius.services.ports import Clock, UnitOfWorkFactory
from socius.services.sign_in_methods import keep_one_way_in
from socius.services.throttle import Throttle

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["PasskeyService", "user_handle"]

log = structlog.get_logger("socius.passkeys")

_MAX_PASSKEYS = 20


def user_handle(user_id: int) -> bytes:
    """The WebAuthn user handle of an account: its id, 8 bytes big-endian (no personal
    data, as the spec asks)."""
    return user_id.to_bytes(8, "big")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _bad_response(why: str) -> InvalidInput:
    return InvalidInput(
        f"the authenticator's answer is not valid: {why}",
        code="invalid_passkey_response",
        details={"field": "credential"},
    )


def _challenge_of(credential: dict[str, Any]) -> bytes:
    """The challenge the authenticator signed, from its clientDataJSON (checked again,
    with the rest, by the library)."""
    try:
        response = credential["response"]
        client_data = json.loads(_b64url_decode(str(response["clientDataJSON"])))
        return _b64url_decode(str(client_data["challenge"]))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise _bad_response("clientDataJSON is malformed") from exc


def _bad_challenge() -> InvalidToken:
    return InvalidToken(
        "the passkey challenge is not valid (unknown, used or expired): start again",
        code="invalid_challenge",
    )


def _library() -> ModuleType:
    try:
        import webauthn
    except ImportError as exc:
        raise Forbidden(
            "passkeys need the webauthn package: install socius[federation]",
            code="passkeys_unavailable",
        ) from exc
    return webauthn


def available() -> bool:
    try:
        _library()
    except Forbidden:
        return False
    return True


class PasskeyService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        auth: AuthService,
        *,
        starts: Throttle,
        rp_id: str,
        rp_name: str,
        origins: list[str],
        challenge_ttl_seconds: int,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._auth = auth
        self._starts = starts
        self._rp_id = rp_id
        self._rp_name = rp_name
        self._origins = origins
        self._ttl = timedelta(seconds=challenge_ttl_seconds)

    async def _store(self, purpose: ChallengePurpose, user_id: int | None) -> bytes:
        challenge = secrets.token_bytes(32)
        now = self._clock()
        async with self._uow() as uow:
            await uow.challenges.add(
                AuthChallenge(hash_challenge(challenge), purpose, user_id, {}, now, now + self._ttl)
            )
            await uow.commit()
        return challenge

    async def _spend(self, challenge: bytes, purpose: ChallengePurpose) -> AuthChallenge:
        async with self._uow() as uow:
            spent = await uow.challenges.spend(hash_challenge(challenge), (purpose,), self._clock())
            await uow.commit()
        if spent is None:
            raise _bad_challenge()
        return spent

    # registering -----------------------------------------------------------------------

    async def register_begin(self, user_id: int) -> dict[str, Any]:
        """The options for ``navigator.credentials.create()`` (as JSON)."""
        lib = _library()
        from webauthn.helpers import options_to_json_dict
        from webauthn.helpers.structs import (
            AuthenticatorSelectionCriteria,
            PublicKeyCredentialDescriptor,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        async with self._uow(write=False) as uow:
            user = await uow.users.get(user_id)
            existing = await uow.passkeys.for_user(user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("the account no longer exists", code="account_gone")
        await self._starts.check(f"user:{user_id}")
        await self._starts.hit(f"user:{user_id}")
        if len(existing) >= _MAX_PASSKEYS:
            raise InvalidInput(
                f"an account has at most {_MAX_PASSKEYS} passkeys", code="too_many_passkeys"
            )
        challenge = await self._store(ChallengePurpose.PASSKEY_REGISTER, user_id)
        options = lib.generate_registration_options(
            rp_id=self._rp_id,
            rp_name=self._rp_name,
            user_name=user.username,
            user_id=user_handle(user.id),
            user_display_name=user.display_name,
            challenge=challenge,
            timeout=int(self._ttl.total_seconds() * 1000),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=p.credential_id) for p in existing
            ],
        )
        result: dict[str, Any] = options_to_json_dict(options)
        return result

    async def register_finish(
        self, user_id: int, credential: dict[str, Any], name: str | None
    ) -> Passkey:
        """Verify the authenticator's answer and keep the passkey. 400
        ``invalid_challenge``; 422 ``invalid_passkey_response``; 409
        ``passkey_already_registered``."""
        lib = _library()
        from webauthn.helpers.exceptions import WebAuthnException

        label = check_passkey_name(name) if name is not None else "passkey"
        challenge = _challenge_of(credential)
        spent = await self._spend(challenge, ChallengePurpose.PASSKEY_REGISTER)
        if spent.user_id != user_id:
            raise _bad_challenge()
        try:
            verified = lib.verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origins,
                require_user_verification=True,
            )
        except WebAuthnException as exc:
            raise _bad_response(str(exc)[:200]) from exc
        transports = credential.get("response", {}).get("transports") or []
        passkey = Passkey(
            id=self._ids.next_id(),
            user_id=user_id,
            credential_id=bytes(verified.credential_id),
            public_key=bytes(verified.credential_public_key),
            sign_count=int(verified.sign_count),
            name=label,
            created_at=self._clock(),
            last_used_at=None,
            transports=[str(t)[:16] for t in transports if isinstance(t, str)][:8],
        )
        async with self._uow() as uow:
            await uow.passkeys.add(passkey)
            await uow.commit()
        log.info("passkey registered", user_id=user_id, passkey_id=passkey.id)
        return passkey

    # signing in ------------------------------------------------------------------------

    async def login_begin(self, ip: str) -> dict[str, Any]:
        """The options for ``navigator.credentials.get()``: any of this site's
        discoverable passkeys, the user verified. 429 ``too_many_attempts`` (per client
        address)."""
        lib = _library()
        await self._starts.check(ip)
        await self._starts.hit(ip)
        from webauthn.helpers import options_to_json_dict
        from webauthn.helpers.structs import UserVerificationRequirement

        challenge = await self._store(ChallengePurpose.PASSKEY_LOGIN, None)
        options = lib.generate_authentication_options(
            rp_id=self._rp_id,
            challenge=challenge,
            timeout=int(self._ttl.total_seconds() * 1000),
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        result: dict[str, Any] = options_to_json_dict(options)
        return result

    async def login_finish(
        self, credential: dict[str, Any], client: ClientInfo
    ) -> IssuedTokens | MfaChallenge:
        """Verify the assertion and sign in (``finish_login``, TOTP skipped). 400
        ``invalid_challenge``; 401 ``unknown_passkey``, ``passkey_counter_regressed``;
        422 ``invalid_passkey_response``."""
        lib = _library()
        from webauthn.helpers.exceptions import WebAuthnException

        challenge = _challenge_of(credential)
        await self._spend(challenge, ChallengePurpose.PASSKEY_LOGIN)
        try:
            raw_id = _b64url_decode(str(credential["rawId"]))
        except (KeyError, ValueError, binascii.Error) as exc:
            raise _bad_response("rawId is malformed") from exc
        async with self._uow(write=False) as uow:
            passkey = await uow.passkeys.by_credential(raw_id)
        if passkey is None:
            raise Unauthenticated("this passkey is not registered here", code="unknown_passkey")
        handle = credential.get("response", {}).get("userHandle")
        if handle and _b64url_decode(str(handle)) != user_handle(passkey.user_id):
            raise _bad_response("userHandle is not the passkey's account")
        try:
            verified = lib.verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origins,
                credential_public_key=passkey.public_key,
                credential_current_sign_count=0,  # checked below, once the signature is
                require_user_verification=True,
            )
        except WebAuthnException as exc:
            raise _bad_response(str(exc)[:200]) from exc
        counted = int(verified.new_sign_count)
        if (counted > 0 or passkey.sign_count > 0) and counted <= passkey.sign_count:
            raise _regressed(passkey)
        async with self._uow() as uow:
            used = await uow.passkeys.use(
                passkey.id,
                old_count=passkey.sign_count,
                new_count=counted,
                when=self._clock(),
            )
            user = await uow.users.get(passkey.user_id)
            await uow.commit()
        if not used:
            raise _regressed(passkey)  # a concurrent use of the same counter won
        if user is None:
            raise Unauthenticated("the account no longer exists", code="account_gone")
        return await self._auth.finish_login(user, client, method=SignInMethod.PASSKEY)

    # managing --------------------------------------------------------------------------

    async def list(self, user_id: int) -> list[Passkey]:
        async with self._uow(write=False) as uow:
            return await uow.passkeys.for_user(user_id)

    async def rename(self, user_id: int, passkey_id: int, name: str) -> Passkey:
        label = check_passkey_name(name)
        async with self._uow() as uow:
            if not await uow.passkeys.rename(user_id, passkey_id, label):
                raise NotFound("no such passkey", code="passkey_not_found")
            found = await uow.passkeys.get(user_id, passkey_id)
            await uow.commit()
        assert found is not None
        return found

    async def delete(self, user_id: int, passkey_id: int) -> None:
        """404 ``passkey_not_found``; 409 ``last_sign_in_method``."""
        async with self._uow() as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise Unauthenticated("the account no longer exists", code="account_gone")
            if await uow.passkeys.get(user_id, passkey_id) is None:
                raise NotFound("no such passkey", code="passkey_not_found")
            await keep_one_way_in(uow, user)
            await uow.passkeys.delete(user_id, passkey_id)
            await uow.commit()
        log.info("passkey deleted", user_id=user_id, passkey_id=passkey_id)


def _regressed(passkey: Passkey) -> Unauthenticated:
    log.warning("passkey counter regressed", user_id=passkey.user_id, passkey_id=passkey.id)
    return Unauthenticated(
        "this passkey's signature counter went backwards (a cloned authenticator?)",
        code="passkey_counter_regressed",
    )
