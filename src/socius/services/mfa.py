"""The second factor: TOTP enrolment, recovery codes, and the login's second step.

Enrolment is two steps: ``enroll`` makes a secret (kept encrypted, ``SecretBox``) and
answers it with its ``otpauth://`` URI; ``confirm`` with a first code turns it on and
answers ten recovery codes, shown this once and kept as salted hashes. ``disable``
needs the password and a code.

With the factor on, a correct password does not start a session: ``challenge`` answers
an ``mfa_token`` (a one-time token, bound to the user, short-lived), and ``redeem``
trades it with a code or a recovery code for the user, whom the caller then signs in.
A code works once (the account's last used time step is remembered, and only later ones
pass); a recovery code works once. Wrong codes are counted per ``mfa_token`` (5 kill it)
and per account (``Throttle``: past its limit, 429 until the window ends).

This is the gate every way of signing in goes through once it knows who the user is
(``AuthService.finish_login``): a password or an OpenID Connect provider (a passkey
is two factors already and skips it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import structlog

from socius.domain.errors import Conflict, Forbidden, InvalidInput, Unauthenticated
from socius.domain.mail import Mail, MailTemplate
from socius.domain.mfa import (
    RecoveryCode,
    TotpFactor,
    hash_recovery_code,
    matching_step,
    new_recovery_codes,
    new_totp_secret,
    normalize_recovery_code,
    provisioning_uri,
    recovery_code_matches,
)
from socius.domain.one_time_tokens import TokenPurpose, hash_token, issue_token
from socius.domain.users import User
from socius.services.mail_queue import MailQueue, send_after_commit, when_text
from socius.services.passwords import PasswordHasher
from socius.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from socius.services.secret_box import SecretBox
from socius.services.throttle import Throttle

__all__ = ["MfaChallenge", "MfaService", "MfaStatus", "TotpEnrollment"]

log = structlog.get_logger("socius.mfa")

_MAX_ATTEMPTS_PER_CHALLENGE = 5


@dataclass(frozen=True, slots=True)
class TotpEnrollment:
    secret: str
    otpauth_uri: str


@dataclass(frozen=True, slots=True)
class MfaStatus:
    totp_enabled: bool
    totp_pending: bool
    recovery_codes_left: int


@dataclass(frozen=True, slots=True)
class MfaChallenge:
    """A login waiting for its second factor."""

    mfa_token: str
    expires_in: int


def _context(user_id: int) -> bytes:
    return b"totp:%d" % user_id


def _wrong_code() -> Forbidden:
    return Forbidden("the code is not valid", code="invalid_mfa_code")


def _bad_challenge() -> Unauthenticated:
    return Unauthenticated(
        "the mfa_token is not valid (expired, used, or too many wrong codes); log in again",
        code="invalid_mfa_token",
    )


def _one_of(code: str | None, recovery_code: str | None) -> None:
    if (code is None) == (recovery_code is None):
        raise InvalidInput(
            "send exactly one of code and recovery_code",
            code="code_or_recovery_code",
            details={"field": "code"},
        )


class MfaService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        hasher: PasswordHasher,
        box: SecretBox,
        mail: MailQueue,
        *,
        throttle: Throttle,
        issuer: str,
        challenge_ttl_seconds: int,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._hasher = hasher
        self._box = box
        self._mail = mail
        self._throttle = throttle
        self._issuer = issuer
        self._challenge_ttl = challenge_ttl_seconds

    async def _user(self, user_id: int) -> User:
        async with self._uow(write=False) as uow:
            user = await uow.users.get(user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("the account no longer exists", code="account_gone")
        return user

    def _notice(self, user: User, template: str) -> Mail | None:
        if user.email is None:
            return None
        values = {"username": user.username, "when": when_text(self._clock())}
        return Mail(to=user.email, template=template, values=values)

    # enrolment -------------------------------------------------------------------------

    async def status(self, user_id: int) -> MfaStatus:
        async with self._uow(write=False) as uow:
            factor = await uow.mfa.factor(user_id)
            left = await uow.mfa.unused_recovery_codes(user_id) if factor else []
        return MfaStatus(
            totp_enabled=factor is not None and factor.enabled,
            totp_pending=factor is not None and not factor.enabled,
            recovery_codes_left=len(left) if factor is not None and factor.enabled else 0,
        )

    async def enroll(self, user_id: int) -> TotpEnrollment:
        """A new secret, pending until confirmed (replacing a pending one). 409
        ``mfa_already_enabled``; 403 ``mfa_not_configured`` without an encryption key."""
        user = await self._user(user_id)
        secret = new_totp_secret()
        box = self._box.seal(secret.encode(), context=_context(user.id))
        async with self._uow() as uow:
            factor = await uow.mfa.factor(user.id)
            if factor is not None and factor.enabled:
                raise Conflict("two-factor sign-in is on already", code="mfa_already_enabled")
            await uow.mfa.put_factor(TotpFactor(user.id, box, self._clock(), None, None))
            await uow.commit()
        account = user.email or user.username
        return TotpEnrollment(
            secret, provisioning_uri(secret, account=account, issuer=self._issuer)
        )

    async def confirm(self, user_id: int, code: str) -> list[str]:
        """Turn the pending factor on with a first code; the recovery codes (shown once).
        409 ``mfa_not_enrolled`` / ``mfa_already_enabled``; 403 ``invalid_mfa_code``."""
        user = await self._user(user_id)
        async with self._uow(write=False) as uow:
            factor = await uow.mfa.factor(user.id)
        if factor is None:
            raise Conflict("start with POST /v1/me/mfa/totp", code="mfa_not_enrolled")
        if factor.enabled:
            raise Conflict("two-factor sign-in is on already", code="mfa_already_enabled")
        key = f"user:{user.id}"
        await self._throttle.check(key)
        secret = self._box.open(factor.secret_box, context=_context(user.id)).decode()
        step = matching_step(secret, code, at=self._clock(), after=None)
        if step is None:
            await self._throttle.hit(key)
            raise _wrong_code()
        codes = new_recovery_codes()
        async with self._uow() as uow:
            if not await uow.mfa.confirm_factor(user.id, self._clock(), step):
                raise Conflict(
                    "the enrolment changed meanwhile; start again", code="mfa_not_enrolled"
                )
            await uow.mfa.replace_recovery_codes(user.id, self._hashed(user.id, codes))
            send_after_commit(self._mail, uow, self._notice(user, MailTemplate.MFA_ENABLED))
            await uow.commit()
        log.info("mfa enabled", user_id=user.id)
        return codes

    @staticmethod
    def _hashed(user_id: int, codes: list[str]) -> list[RecoveryCode]:
        stored = []
        for code in codes:
            normalized = normalize_recovery_code(code)
            assert normalized is not None
            salt = secrets.token_bytes(16)
            stored.append(RecoveryCode(user_id, salt, hash_recovery_code(normalized, salt), None))
        return stored

    async def disable(
        self, user_id: int, password: str, *, code: str | None, recovery_code: str | None
    ) -> None:
        """Turn the factor off: the password and a code (or a recovery code). 403
        ``invalid_password`` / ``invalid_mfa_code``; 409 ``mfa_not_enabled``."""
        _one_of(code, recovery_code)
        user = await self._user(user_id)
        key = f"user:{user.id}"
        await self._throttle.check(key)
        if not await self._hasher.verify(user.password_hash, password):
            await self._throttle.hit(key)
            raise Forbidden("the password is wrong", code="invalid_password")
        async with self._uow() as uow:
            factor = await uow.mfa.factor(user.id)
            if factor is None or not factor.enabled:
                raise Conflict("two-factor sign-in is off", code="mfa_not_enabled")
            passed = await self._second_factor(uow, factor, code, recovery_code)
            if passed:
                await uow.mfa.delete_factor(user.id)
                await uow.one_time_tokens.delete_for_user(user.id, [TokenPurpose.MFA_LOGIN])
                send_after_commit(self._mail, uow, self._notice(user, MailTemplate.MFA_DISABLED))
                await uow.commit()
        if not passed:
            await self._throttle.hit(key)
            raise _wrong_code()
        log.info("mfa disabled", user_id=user.id)

    async def _second_factor(
        self, uow: UnitOfWork, factor: TotpFactor, code: str | None, recovery_code: str | None
    ) -> bool:
        """Inside a write unit of work: check and spend a code or a recovery code."""
        if code is not None:
            secret = self._box.open(factor.secret_box, context=_context(factor.user_id)).decode()
            step = matching_step(secret, code, at=self._clock(), after=factor.last_step)
            return step is not None and await uow.mfa.use_step(factor.user_id, step)
        normalized = normalize_recovery_code(recovery_code or "")
        if normalized is None:
            return False
        for stored in await uow.mfa.unused_recovery_codes(factor.user_id):
            if recovery_code_matches(normalized, stored):
                return await uow.mfa.use_recovery_code(
                    factor.user_id, stored.code_hash, self._clock()
                )
        return False

    # the login's second step -----------------------------------------------------------

    async def challenge(self, user: User) -> MfaChallenge | None:
        """A second step for ``user``'s login, or None when they have no second factor."""
        async with self._uow(write=False) as uow:
            factor = await uow.mfa.factor(user.id)
        if factor is None or not factor.enabled:
            return None
        token, record = issue_token(
            TokenPurpose.MFA_LOGIN,
            user_id=user.id,
            now=self._clock(),
            ttl_seconds=self._challenge_ttl,
        )
        async with self._uow() as uow:
            await uow.one_time_tokens.add(record)
            await uow.commit()
        return MfaChallenge(token, self._challenge_ttl)

    async def redeem(self, mfa_token: str, *, code: str | None, recovery_code: str | None) -> User:
        """The user whose login ``mfa_token`` holds, once a code (or a recovery code)
        passes; the token is spent. 401 ``invalid_mfa_token`` / ``invalid_mfa_code``;
        429 ``too_many_attempts``."""
        _one_of(code, recovery_code)
        if not 20 <= len(mfa_token) <= 128:
            raise _bad_challenge()
        digest = hash_token(mfa_token)
        now = self._clock()
        async with self._uow(write=False) as uow:
            found = await uow.one_time_tokens.get(digest, TokenPurpose.MFA_LOGIN)
        if found is None or found.used_at is not None or found.expires_at <= now:
            raise _bad_challenge()
        key = f"user:{found.user_id}"
        await self._throttle.check(key)
        async with self._uow() as uow:
            user = await uow.users.get(found.user_id)
            factor = await uow.mfa.factor(found.user_id)
            if user is None or not user.is_active or factor is None or not factor.enabled:
                raise _bad_challenge()
            if await self._second_factor(uow, factor, code, recovery_code):
                if not await uow.one_time_tokens.spend(digest, TokenPurpose.MFA_LOGIN, now):
                    raise _bad_challenge()  # a concurrent attempt spent it first
                await uow.commit()
                if recovery_code is not None:
                    log.info("recovery code used", user_id=user.id)
                return user
            await uow.one_time_tokens.count_failure(
                digest, max_attempts=_MAX_ATTEMPTS_PER_CHALLENGE, when=now
            )
            await uow.commit()
        await self._throttle.hit(key)
        raise Unauthenticated("the code is not valid", code="invalid_mfa_code")
