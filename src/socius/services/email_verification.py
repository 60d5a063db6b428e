"""Email verification: a single-use link to the account's address proves it is theirs.

A token is bound to the address it was mailed to: once the account's email changes, the
links sent before are void, and the new address starts unverified. ``verify`` needs no
session (the link may be opened on another device); asking for a link needs one, and is
limited per account.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from socius.domain.errors import Conflict, InvalidToken, RateLimited, Unauthenticated
from socius.domain.mail import Mail, MailTemplate
from socius.domain.one_time_tokens import OneTimeToken, TokenPurpose, hash_token, issue_token
from socius.domain.users import User
from socius.services.mail_queue import MailQueue, duration_text, send_after_commit
from socius.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from socius.services.throttle import Throttle

__all__ = ["EmailVerification", "check_mailed_token", "invalid_token"]

log = structlog.get_logger("socius.identity")


def invalid_token() -> InvalidToken:
    return InvalidToken("the link is not valid (or was used already)")


def check_mailed_token(
    token: OneTimeToken | None, user: User | None, now: datetime
) -> tuple[OneTimeToken, User]:
    """The token and its user when the token may be spent: unused, unexpired, its user
    active and still at the address it was mailed to. Else 400 ``invalid_token`` or
    ``token_expired``."""
    if token is None or token.used_at is not None:
        raise invalid_token()
    if token.expires_at <= now:
        raise InvalidToken("the link has expired; ask for a new one", code="token_expired")
    if user is None or not user.is_active or user.email is None or user.email != token.email:
        raise invalid_token()
    return token, user


class EmailVerification:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        mail: MailQueue,
        *,
        throttle: Throttle,
        ttl_seconds: int,
        link_for: Callable[[str], str],
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._mail = mail
        self._throttle = throttle
        self._ttl = ttl_seconds
        self._link_for = link_for

    async def issue(self, uow: UnitOfWork, user: User) -> Mail | None:
        """Inside a write unit of work: a fresh link for the user's current address; the
        mail to send once it commits (None when there is no address, or it is verified)."""
        if user.email is None or user.email_verified:
            return None
        token, record = issue_token(
            TokenPurpose.VERIFY_EMAIL,
            user_id=user.id,
            email=user.email,
            now=self._clock(),
            ttl_seconds=self._ttl,
        )
        await uow.one_time_tokens.add(record)
        return Mail(
            to=user.email,
            template=MailTemplate.VERIFY_EMAIL,
            values={
                "username": user.username,
                "email": user.email,
                "link": self._link_for(token),
                "valid_for": duration_text(self._ttl),
            },
            secret=frozenset({"link"}),
        )

    async def request(self, user_id: int) -> None:
        """Mail the caller a new link. 409 ``no_email`` / ``email_already_verified``;
        429 past the per-account limit."""
        async with self._uow(write=False) as uow:
            user = await uow.users.get(user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("the account no longer exists", code="account_gone")
        if user.email is None:
            raise Conflict("the account has no email address", code="no_email")
        if user.email_verified:
            raise Conflict("the email address is verified already", code="email_already_verified")
        await self._throttle.check(str(user_id))
        await self._send(user)

    async def resend_quietly(self, user: User) -> None:
        """A new link for a user refused at login for want of one, unless they have had
        their share this hour (then nothing: the refusal says the same either way)."""
        if user.email is None:
            return
        try:
            await self._throttle.check(str(user.id))
        except RateLimited:  # they have links enough
            return
        await self._send(user)

    async def _send(self, user: User) -> None:
        await self._throttle.hit(str(user.id))
        async with self._uow() as uow:
            send_after_commit(self._mail, uow, await self.issue(uow, user))
            await uow.commit()

    async def verify(self, token: str) -> None:
        """Spend a link: the address it was sent to is verified. 400 ``invalid_token``
        (unknown, forged, used, or the account's address changed since) or
        ``token_expired``."""
        if not 20 <= len(token) <= 128:
            raise invalid_token()
        digest = hash_token(token)
        now = self._clock()
        async with self._uow() as uow:
            found = await uow.one_time_tokens.get(digest, TokenPurpose.VERIFY_EMAIL)
            user = await uow.users.get(found.user_id) if found is not None else None
            _, user = check_mailed_token(found, user, now)
            if not await uow.one_time_tokens.spend(digest, TokenPurpose.VERIFY_EMAIL, now):
                raise invalid_token()  # a concurrent use won
            await uow.users.update(user.id, {"email_verified_at": now, "updated_at": now})
            await uow.one_time_tokens.delete_for_user(user.id, [TokenPurpose.VERIFY_EMAIL])
            await uow.commit()
        log.info("email verified", user_id=user.id)
