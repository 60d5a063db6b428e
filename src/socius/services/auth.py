"""Logging in and staying logged in: sessions, refresh rotation, authentication."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog

from socius.domain.errors import Forbidden, NotFound, Unauthenticated
from socius.domain.ids import IdGenerator
from socius.domain.sessions import RefreshSpend, Session, SpendOutcome
from socius.domain.users import User, normalize_login
from socius.services.email_verification import EmailVerification
from socius.services.group_commit import GroupCommit
from socius.services.login_throttle import LoginThrottle
from socius.services.mfa import MfaChallenge, MfaService
from socius.services.passwords import PasswordHasher
from socius.services.ports import Clock, RefreshRotation, UnitOfWork, UnitOfWorkFactory
from socius.services.profiles import Profile, ProfileService
from socius.services.revocation import Revocations
from socius.services.tokens import AccessTokens

__all__ = [
    "AuthService",
    "ClientInfo",
    "IssuedTokens",
    "Principal",
    "SignInMethod",
    "hash_refresh_token",
]

log = structlog.get_logger("socius.auth")


class SignInMethod(StrEnum):
    """How a user proved who they are, for ``AuthService.finish_login``."""

    PASSWORD = "password"  # noqa: S105 (a method's name, not a secret)
    OIDC = "oidc"
    PASSKEY = "passkey"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user and the session their token belongs to."""

    user_id: int
    session_id: int


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    user: User
    access_token: str
    refresh_token: str
    expires_in: int
    profile: Profile | None = None  # with the graph's counts; None for a brand-new account


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip: str
    user_agent: str


# A rotation to ask for: the token's hash, its successor's hash and salt, when.
_Rotation = tuple[bytes, bytes, bytes, datetime]


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _successor(presented: str, salt: bytes) -> str:
    """The refresh token that spending ``presented`` hands out. Without the salt (kept
    in the database, never sent) it cannot be computed from ``presented``."""
    digest = hmac.new(salt, presented.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _jti(refresh: str) -> str:
    """The access token's id, a function of its refresh token (a one-way, separate hash)."""
    digest = hashlib.sha256(b"jti:" + refresh.encode()).digest()[:9]
    return base64.urlsafe_b64encode(digest).decode()


def _usable(session: Session, user: User, now: datetime) -> bool:
    return session.is_live(now) and user.is_active


def _bad_credentials() -> Unauthenticated:
    return Unauthenticated("wrong username or password", code="invalid_credentials")


def _bad_refresh(code: str = "invalid_refresh_token") -> Unauthenticated:
    return Unauthenticated("the refresh token is not valid", code=code)


class AuthService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        hasher: PasswordHasher,
        tokens: AccessTokens,
        revocations: Revocations,
        profiles: ProfileService,
        *,
        login_throttle: LoginThrottle,
        mfa: MfaService,
        verification: EmailVerification,
        session_max_age_seconds: int,
        refresh_grace_seconds: int = 20,
        require_verified_email: bool = False,
        rotation: RefreshRotation | None = None,
        rotation_batch_max: int = 64,
        on_rotation_group: Callable[[int], None] = lambda _size: None,
    ) -> None:
        # Concurrent refreshes share one rotation statement (decision 0044): a batch is
        # what arrived while the previous one was in flight (no added wait: window 0).
        self._rotations: GroupCommit[_Rotation, tuple[Session, User] | None] | None = (
            None
            if rotation is None
            else GroupCommit(
                rotation.rotate_many,
                max_group=rotation_batch_max,
                window=0.0,
                on_group=on_rotation_group,
            )
        )
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._hasher = hasher
        self._tokens = tokens
        self._revocations = revocations
        self._profiles = profiles
        self._login_throttle = login_throttle
        self._mfa = mfa
        self._verification = verification
        self._require_verified_email = require_verified_email
        self._session_max_age = timedelta(seconds=session_max_age_seconds)
        self._refresh_grace = timedelta(seconds=refresh_grace_seconds)

    # sessions ------------------------------------------------------------------------

    async def start_session(self, uow: UnitOfWork, user: User, client: ClientInfo) -> IssuedTokens:
        """Inside a write unit of work: a new session and its first token pair."""
        now = self._clock()
        session = Session(
            id=self._ids.next_id(),
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            expires_at=now + self._session_max_age,
            revoked_at=None,
            user_agent=client.user_agent[:512],
            ip=client.ip[:64],
        )
        await uow.sessions.add(session)
        return await self._new_pair(uow, user, session.id, now, secrets.token_urlsafe(32))

    async def _new_pair(
        self, uow: UnitOfWork, user: User, session_id: int, now: datetime, refresh: str
    ) -> IssuedTokens:
        await uow.sessions.add_refresh_token(
            hash_refresh_token(refresh), session_id=session_id, user_id=user.id, when=now
        )
        return self._pair(user, session_id, now, refresh)

    def _pair(self, user: User, session_id: int, issued_at: datetime, refresh: str) -> IssuedTokens:
        """The pair of ``refresh``: its access token is a function of the arguments, so
        the grace path re-issues the very token the first refresh handed out."""
        return IssuedTokens(
            user=user,
            access_token=self._tokens.issue(user.id, session_id, at=issued_at, jti=_jti(refresh)),
            refresh_token=refresh,
            expires_in=self._tokens.ttl_seconds,
        )

    async def login(
        self, login: str, password: str, client: ClientInfo
    ) -> IssuedTokens | MfaChallenge:
        """Password login: tokens, or the challenge of a second factor to answer with
        ``login_mfa``."""
        name = normalize_login(login)
        async with self._uow(write=False) as uow:
            user = await uow.users.get_by_login(name) if name else None
        # Failures count against the account, whichever of its names was typed.
        account_key = f"user:{user.id}" if user is not None else f"name:{name}"
        await self._login_throttle.check(account_key, client.ip)
        if user is None:
            await self._hasher.burn(password)
            ok = False
        else:
            ok = await self._hasher.verify(user.password_hash, password) and user.is_active
        if user is None or not ok:
            await self._login_throttle.failed(account_key, client.ip)
            raise _bad_credentials()
        if self._hasher.needs_rehash(user.password_hash):
            new_hash = await self._hasher.hash(password)
            async with self._uow() as uow:
                changes = {"password_hash": new_hash, "updated_at": self._clock()}
                user = await uow.users.update(user.id, changes) or user
                await uow.commit()
        return await self.finish_login(user, client, method=SignInMethod.PASSWORD)

    async def finish_login(
        self, user: User, client: ClientInfo, *, method: SignInMethod
    ) -> IssuedTokens | MfaChallenge:
        """The one gate every way of signing in passes once it knows who the user is
        (a password, an OpenID Connect provider, a passkey): the account must be active
        (403 ``account_disabled``), its email verified when the server requires it (403
        ``email_not_verified``, and a new link is mailed), then the second factor when the
        account has one (the challenge is answered instead of tokens) — except after a
        passkey, which is two factors already (the device, and the PIN or biometric it
        verified) — then a new session."""
        if not user.is_active:
            raise Forbidden("this account is disabled", code="account_disabled")
        if self._require_verified_email and not user.email_verified:
            await self._verification.resend_quietly(user)
            raise Forbidden(
                "verify your email address first: a link was mailed to it",
                code="email_not_verified",
            )
        if method is not SignInMethod.PASSKEY:
            challenge = await self._mfa.challenge(user)
            if challenge is not None:
                return challenge
        if method is not SignInMethod.PASSWORD:
            log.info("signed in", user_id=user.id, method=method.value)
        return await self._signed_in(user, client)

    async def login_mfa(
        self,
        mfa_token: str,
        client: ClientInfo,
        *,
        code: str | None = None,
        recovery_code: str | None = None,
    ) -> IssuedTokens:
        """The second step of a login: the challenge's token and a code (or a recovery
        code) for a new session."""
        user = await self._mfa.redeem(mfa_token, code=code, recovery_code=recovery_code)
        return await self._signed_in(user, client)

    async def _signed_in(self, user: User, client: ClientInfo) -> IssuedTokens:
        await self._login_throttle.succeeded(f"user:{user.id}", client.ip)
        async with self._uow() as uow:
            issued = await self.start_session(uow, user, client)
            await uow.commit()
        return await self._with_profile(issued)

    async def _with_profile(self, issued: IssuedTokens) -> IssuedTokens:
        profile = await self._profiles.get(issued.user.id)
        return IssuedTokens(
            issued.user, issued.access_token, issued.refresh_token, issued.expires_in, profile
        )

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        if not 20 <= len(refresh_token) <= 128:
            raise _bad_refresh()
        now = self._clock()
        salt = secrets.token_bytes(16)
        successor = _successor(refresh_token, salt)
        if self._rotations is not None:
            # The common case in one atomic statement (PostgreSQL), shared by the refreshes
            # in flight together and answered once it has committed: it writes only when
            # the token is live and its session and user usable. Otherwise nothing was
            # written and the transaction below tells why (unknown, reuse, grace, ended);
            # a second refresh of a token in the same batch comes here too, once the
            # batch has committed, and meets the grace or the reuse as if it came after.
            rotated = await self._rotations.submit(
                (hash_refresh_token(refresh_token), hash_refresh_token(successor), salt, now)
            )
            if rotated is not None:
                session, user = rotated
                if not _usable(session, user, now):
                    # Only when a logout or a disabling committed during the statement:
                    # the session has ended all the same, its successor is refused too.
                    raise _bad_refresh("session_expired")
                return await self._with_profile(self._pair(user, session.id, now, successor))
        async with self._uow() as uow:
            spend = await uow.sessions.spend_refresh_token(
                hash_refresh_token(refresh_token), now, successor_salt=salt
            )
            if spend.outcome is SpendOutcome.UNKNOWN:
                raise _bad_refresh()
            assert spend.session_id is not None
            assert spend.user_id is not None
            if spend.outcome is SpendOutcome.REUSED:
                again = await self._grace(uow, refresh_token, spend, now)
                if again is None:
                    # A spent token came back: someone holds a copy. End the whole session.
                    await uow.sessions.revoke(spend.session_id, now)
                    await self._revocations.record(uow, [spend.session_id], user_id=spend.user_id)
                    await uow.commit()
                    log.warning("refresh token reuse", session_id=spend.session_id)
                    raise _bad_refresh("refresh_token_reused")
                issued = again
            else:
                # Touched and its successor stored before the checks, in one round trip:
                # raising rolls all of it back, the spend included, as before.
                renewed = await uow.sessions.renew(
                    spend.session_id, spend.user_id, hash_refresh_token(successor), now
                )
                if renewed is None or not _usable(*renewed, now):
                    raise _bad_refresh("session_expired")
                session, user = renewed
                issued = self._pair(user, session.id, now, successor)
                await uow.commit()
        return await self._with_profile(issued)

    async def _grace(
        self, uow: UnitOfWork, presented: str, spend: RefreshSpend, now: datetime
    ) -> IssuedTokens | None:
        """A token spent moments ago, presented again (two tabs refreshing at once): the
        pair its spending made, while that is still the session's newest and the session
        lives. None: a replay, as after the window."""
        if (
            spend.spent_at is None
            or spend.successor_salt is None
            or self._refresh_grace <= timedelta(0)
            or now - spend.spent_at > self._refresh_grace
        ):
            return None
        successor = _successor(presented, spend.successor_salt)
        row = await uow.sessions.get_refresh_token(hash_refresh_token(successor))
        if row is None or row.spent_at is not None or row.session_id != spend.session_id:
            return None
        session = await uow.sessions.get(row.session_id)
        user = await uow.users.get(row.user_id)
        if session is None or user is None or not _usable(session, user, now):
            return None
        log.info("refresh grace", session_id=row.session_id)
        return self._pair(user, row.session_id, row.created_at, successor)

    async def logout(self, principal: Principal) -> None:
        async with self._uow() as uow:
            await uow.sessions.revoke(principal.session_id, self._clock())
            await self._revocations.record(uow, [principal.session_id], user_id=principal.user_id)
            await uow.commit()

    async def list_sessions(self, principal: Principal) -> list[tuple[Session, bool]]:
        now = self._clock()
        async with self._uow(write=False) as uow:
            sessions = await uow.sessions.list_for_user(principal.user_id)
        return [(s, s.id == principal.session_id) for s in sessions if s.is_live(now)]

    async def revoke_session(self, principal: Principal, session_id: int) -> None:
        async with self._uow() as uow:
            session = await uow.sessions.get(session_id)
            if session is None or session.user_id != principal.user_id:
                raise NotFound("no such session", code="session_not_found")
            if await uow.sessions.revoke(session_id, self._clock()):
                await self._revocations.record(uow, [session_id], user_id=session.user_id)
            await uow.commit()

    async def revoke_other_sessions(self, principal: Principal) -> None:
        async with self._uow() as uow:
            ids = await uow.sessions.revoke_all(
                principal.user_id, self._clock(), except_id=principal.session_id
            )
            await self._revocations.record(uow, ids, user_id=principal.user_id)
            await uow.commit()

    # every request -------------------------------------------------------------------

    async def authenticate(self, token: str) -> Principal:
        claims = await self._tokens.verify(token)
        if await self._revocations.is_revoked(claims.session_id):
            self._tokens.forget(token)
            raise Unauthenticated("the session has ended", code="session_revoked")
        return Principal(user_id=claims.user_id, session_id=claims.session_id)
