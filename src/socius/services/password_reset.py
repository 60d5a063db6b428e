"""Password reset by mail (OWASP ASVS V6): a single-use link, valid 30 minutes.

Asking for a link answers the same, at once, whether or not the address belongs to an
account: the answer comes before the look-up, which runs in the mail queue's background
job (``MailQueue.run_later``), so neither the body nor the timing tells. Asking is
limited per address and per client address, counted alike for every address.

Spending a link sets the new password (the password policy applies), ends every session
(their sockets close: ``Revocations.record``), voids the other links and any login
waiting for its second factor, and mails the owner a notice. It does not turn off the
second factor: a reset account with TOTP still needs a code to sign in. The address the
link went to counts as verified, since the link was opened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from socius.domain.mail import Mail, MailTemplate
from socius.domain.one_time_tokens import TokenPurpose, hash_token, issue_token
from socius.domain.users import check_email, normalize_login
from socius.services.email_verification import check_mailed_token, invalid_token
from socius.services.mail_queue import MailQueue, duration_text, send_after_commit, when_text
from socius.services.passwords import PasswordHasher, check_password_policy
from socius.services.ports import Clock, UnitOfWorkFactory
from socius.services.revocation import Revocations
from socius.services.throttle import Throttle

__all__ = ["PasswordResets"]

log = structlog.get_logger("socius.identity")


class PasswordResets:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        hasher: PasswordHasher,
        revocations: Revocations,
        mail: MailQueue,
        *,
        per_address: Throttle,
        per_ip: Throttle,
        ttl_seconds: int,
        link_for: Callable[[str], str],
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._hasher = hasher
        self._revocations = revocations
        self._mail = mail
        self._per_address = per_address
        self._per_ip = per_ip
        self._ttl = ttl_seconds
        self._link_for = link_for

    async def request(self, email: str, ip: str) -> None:
        """Mail a reset link if ``email`` is an active account's. 429 past the limits."""
        address = normalize_login(check_email(email))
        await self._per_ip.check(ip)
        await self._per_address.check(address)
        await self._per_ip.hit(ip)
        await self._per_address.hit(address)
        self._mail.run_later(lambda: self._issue(address))

    async def _issue(self, address: str) -> Sequence[Mail]:
        """In the background: the link, if the address is an active account's."""
        async with self._uow(write=False) as uow:
            user = await uow.users.get_by_login(address)
        if user is None or not user.is_active or user.email != address:
            return []
        token, record = issue_token(
            TokenPurpose.RESET_PASSWORD,
            user_id=user.id,
            email=address,
            now=self._clock(),
            ttl_seconds=self._ttl,
        )
        async with self._uow() as uow:
            await uow.one_time_tokens.add(record)
            await uow.commit()
        log.info("password reset link issued", user_id=user.id)
        return [
            Mail(
                to=address,
                template=MailTemplate.PASSWORD_RESET,
                values={
                    "username": user.username,
                    "link": self._link_for(token),
                    "valid_for": duration_text(self._ttl),
                },
                secret=frozenset({"link"}),
            )
        ]

    async def reset(self, token: str, password: str) -> None:
        """Spend a link and set ``password``. 400 ``invalid_token`` / ``token_expired``;
        422 for a weak password (the link stays usable then)."""
        if not 20 <= len(token) <= 128:
            raise invalid_token()
        digest = hash_token(token)
        async with self._uow(write=False) as uow:
            found = await uow.one_time_tokens.get(digest, TokenPurpose.RESET_PASSWORD)
            user = await uow.users.get(found.user_id) if found is not None else None
        found, user = check_mailed_token(found, user, self._clock())
        check_password_policy(password, username=user.username)
        new_hash = await self._hasher.hash(password)  # slow: outside the transaction
        now = self._clock()
        async with self._uow() as uow:
            if not await uow.one_time_tokens.spend(digest, TokenPurpose.RESET_PASSWORD, now):
                raise invalid_token()  # used meanwhile, or expired while hashing
            current = await uow.users.get(user.id)
            _, current = check_mailed_token(found, current, now)
            changes = {"password_hash": new_hash, "updated_at": now}
            if current.email_verified_at is None:
                changes["email_verified_at"] = now
            await uow.users.update(user.id, changes)
            ended = await uow.sessions.revoke_all(user.id, now)
            await self._revocations.record(uow, ended, user_id=user.id)
            await uow.one_time_tokens.delete_for_user(
                user.id, [TokenPurpose.RESET_PASSWORD, TokenPurpose.MFA_LOGIN]
            )
            send_after_commit(
                self._mail,
                uow,
                Mail(
                    to=current.email or "",
                    template=MailTemplate.PASSWORD_CHANGED,
                    values={"username": current.username, "when": when_text(now)},
                ),
            )
            await uow.commit()
        log.info("password reset", user_id=user.id, sessions_ended=len(ended))
