"""Administration: who is an administrator, accounts as administrators see them, and the
actions they take, each written to the audit log in the action's own transaction.

The REST API (``/v1/admin``) and the command line (``socius admin``) call the same
methods; they differ only in the ``Actor`` they pass (services/audit.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from socius.domain.audit import AuditAction, TargetType, Via, check_reason
from socius.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from socius.domain.ids import parse_id
from socius.domain.pagination import UserPosition, check_limit, decode_cursor, encode_cursor
from socius.domain.text import has_control_chars
from socius.domain.users import User, UserStatus, normalize_login
from socius.services.accounts import AccountService
from socius.services.audit import Actor, AuditLog, Target
from socius.services.auth import Principal
from socius.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from socius.services.profiles import ProfileService
from socius.services.revocation import Revocations
from socius.services.tokens import AccessTokens

__all__ = ["AdminService", "AdminUser", "AdminUserPage", "Outcome"]

_QUERY_MAX = 64


@dataclass(frozen=True, slots=True)
class AdminUser:
    """An account as administrators see it."""

    user: User
    last_login_at: datetime | None  # None: no session on record


@dataclass(frozen=True, slots=True)
class AdminUserPage:
    items: list[AdminUser]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The account after an action; ``changed`` is False when it was already so (nothing
    was done, and nothing written to the audit log)."""

    user: AdminUser
    changed: bool


def _admin_required() -> Forbidden:
    return Forbidden("this needs an administrator", code="admin_required")


def _no_such_user() -> NotFound:
    return NotFound("no such user", code="user_not_found")


def _last_admin() -> Conflict:
    return Conflict("this is the last administrator: make another one first", code="last_admin")


def _target(user: User) -> Target:
    return Target(TargetType.USER.value, user.id)


class AdminService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        accounts: AccountService,
        revocations: Revocations,
        profiles: ProfileService,
        tokens: AccessTokens,
        audit: AuditLog,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._accounts = accounts
        self._revocations = revocations
        self._profiles = profiles
        self._tokens = tokens
        self._audit = audit

    @property
    def audit(self) -> AuditLog:
        return self._audit

    # the admin check -----------------------------------------------------------------

    async def require_admin(
        self, principal: Principal, *, request_id: str | None = None, ip: str | None = None
    ) -> Actor:
        """The one admin check: the caller's account is active and flagged ``is_admin``,
        else 403 ``admin_required``. It reads the account from the primary on every call,
        so a revoked or disabled administrator is refused from the next request on, on
        every node, with no cache to invalidate: one primary-key lookup per admin request.
        Each action checks again inside its own transaction (``_lock``)."""
        async with self._uow(write=False) as uow:
            user = await uow.users.get(principal.user_id)
        if user is None or not user.is_active or not user.is_admin:
            raise _admin_required()
        return Actor(Via.API, user.id, request_id, ip)

    async def begin_action(self, uow: UnitOfWork, actor: Actor) -> list[int]:
        """For other services' admin actions (resolving a report): ``_lock``."""
        return await self._lock(uow, actor)

    async def _lock(self, uow: UnitOfWork, actor: Actor) -> list[int]:
        """Start an action: lock the administrators (actions run one at a time, so the
        last-admin rule holds under concurrency) and check that an API actor still is
        one. The administrators' ids."""
        admins = await uow.users.lock_admins()
        if actor.via is Via.API and actor.user_id not in admins:
            raise _admin_required()
        return admins

    # reading -------------------------------------------------------------------------

    async def list_users(
        self,
        *,
        query: str | None = None,
        status: UserStatus | None = None,
        is_admin: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AdminUserPage:
        """Every account, disabled ones too, newest first."""
        size = check_limit(limit)
        position = decode_cursor(cursor, UserPosition)
        q = (query or "").strip()[:_QUERY_MAX]
        if has_control_chars(q):
            return AdminUserPage([], None)
        async with self._uow(write=False) as uow:
            found = await uow.users.admin_page(
                limit=size + 1,
                before_id=position.u if position else None,
                query=q or None,
                status=status,
                is_admin=is_admin,
            )
            shown = found[:size]
            logins = await uow.sessions.last_logins([u.id for u in shown])
        more = len(found) > size
        return AdminUserPage(
            [AdminUser(u, logins.get(u.id)) for u in shown],
            encode_cursor(UserPosition(u=shown[-1].id)) if more else None,
        )

    async def get_user(self, user_id: int) -> AdminUser:
        async with self._uow(write=False) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise _no_such_user()
            logins = await uow.sessions.last_logins([user.id])
        return AdminUser(user, logins.get(user.id))

    async def find_user(self, name_or_id: str) -> int:
        """The id of the account with this username or id (the command line names them)."""
        name = normalize_login(name_or_id)
        async with self._uow(write=False) as uow:
            user = await uow.users.get_by_username(name) if name else None
            if user is None and (user_id := parse_id(name_or_id.strip())) is not None:
                user = await uow.users.get(user_id)
        if user is None:
            raise _no_such_user()
        return user.id

    async def list_oldest_first(self, *, limit: int, after_id: int | None) -> list[User]:
        """Accounts by id, oldest first (``socius admin list-users``)."""
        async with self._uow(write=False) as uow:
            return await uow.users.list_page(limit=limit, after_id=after_id)

    # actions -------------------------------------------------------------------------

    async def create_user(
        self,
        actor: Actor,
        username: str,
        password: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
        is_admin: bool = False,
    ) -> User:
        user = await self._accounts.new_user(
            username, password, email=email, display_name=display_name, is_admin=is_admin
        )
        async with self._uow() as uow:
            await self._lock(uow, actor)
            await uow.users.add(user)
            await self._accounts.created(uow, user.id, via="admin")
            await self._audit.record(
                uow,
                actor,
                AuditAction.USER_CREATE,
                target=_target(user),
                details={"is_admin": is_admin},
            )
            await uow.commit()
        return user

    async def set_status(
        self, actor: Actor, user_id: int, status: UserStatus, *, reason: str | None = None
    ) -> Outcome:
        """Disable or enable an account. Disabling revokes every session at once (their
        sockets close on every node) and refuses the last active administrator and the
        caller's own account."""
        reason = check_reason(reason)
        async with self._uow() as uow:
            admins, user = await self._start(uow, actor, user_id)
            if user.status is status:
                return Outcome(await self._with_login(uow, user), changed=False)
            details: dict[str, object] = {"reason": reason}
            if status is UserStatus.DISABLED:
                if user.id == actor.user_id:
                    raise InvalidInput(
                        "you cannot disable your own account", code="cannot_target_self"
                    )
                if admins == [user.id]:
                    raise _last_admin()
            now = self._clock()
            user = await uow.users.update(user.id, {"status": status, "updated_at": now}) or user
            if status is UserStatus.DISABLED:
                ended = await uow.sessions.revoke_all(user.id, now)
                await self._revocations.record(uow, ended, user_id=user.id)
                details["sessions_revoked"] = len(ended)
            changed = user.id
            uow.after_commit(lambda: self._profiles.invalidate(changed))
            action = (
                AuditAction.USER_DISABLE
                if status is UserStatus.DISABLED
                else AuditAction.USER_ENABLE
            )
            return await self._finish(uow, actor, action, user, details)

    async def set_admin(
        self, actor: Actor, user_id: int, is_admin: bool, *, reason: str | None = None
    ) -> Outcome:
        """Grant or revoke the administrator flag. The last active administrator keeps
        it (409 ``last_admin``); an administrator may step down while others remain."""
        reason = check_reason(reason)
        async with self._uow() as uow:
            admins, user = await self._start(uow, actor, user_id)
            if user.is_admin is is_admin:
                return Outcome(await self._with_login(uow, user), changed=False)
            if not is_admin and admins == [user.id]:
                raise _last_admin()
            user = (
                await uow.users.update(user.id, {"is_admin": is_admin, "updated_at": self._clock()})
                or user
            )
            action = AuditAction.USER_GRANT_ADMIN if is_admin else AuditAction.USER_REVOKE_ADMIN
            return await self._finish(uow, actor, action, user, {"reason": reason})

    async def rotate_keys(self, actor: Actor) -> str:
        """A new token signing key (services/tokens.py); the new key's id."""

        async def audited(uow: UnitOfWork, kid: str) -> None:
            await self._lock(uow, actor)
            await self._audit.record(uow, actor, AuditAction.KEYS_ROTATE, details={"kid": kid})

        return await self._tokens.rotate(within=audited)

    async def _start(self, uow: UnitOfWork, actor: Actor, user_id: int) -> tuple[list[int], User]:
        """Lock the administrators (``_lock``) and read the account acted on."""
        admins = await self._lock(uow, actor)
        user = await uow.users.get(user_id)
        if user is None:
            raise _no_such_user()
        return admins, user

    async def _finish(
        self,
        uow: UnitOfWork,
        actor: Actor,
        action: AuditAction,
        user: User,
        details: Mapping[str, object],
    ) -> Outcome:
        """Write the action's audit entry and commit: the account as it now is."""
        await self._audit.record(uow, actor, action, target=_target(user), details=details)
        view = await self._with_login(uow, user)
        await uow.commit()
        return Outcome(view, changed=True)

    async def _with_login(self, uow: UnitOfWork, user: User) -> AdminUser:
        logins = await uow.sessions.last_logins([user.id])
        return AdminUser(user, logins.get(user.id))
