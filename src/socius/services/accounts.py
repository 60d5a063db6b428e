"""Accounts: registration, the caller's own profile, password, erasure, export."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from socius.domain.errors import Forbidden, InvalidInput, Unauthenticated
from socius.domain.graph import EdgeType
from socius.domain.ids import IdGenerator
from socius.domain.mail import Mail, MailTemplate
from socius.domain.one_time_tokens import TokenPurpose
from socius.domain.push import NotificationSettings
from socius.domain.users import (
    DmPolicy,
    User,
    UserStatus,
    check_avatar_url,
    check_bio,
    check_display_name,
    check_email,
    check_username,
)
from socius.services.auth import AuthService, ClientInfo, IssuedTokens, Principal
from socius.services.email_verification import EmailVerification
from socius.services.events import DomainEvents
from socius.services.graph_cache import GraphCache
from socius.services.mail_queue import MailQueue, send_after_commit, when_text
from socius.services.messaging import MessagingService
from socius.services.near_cache import NearCache, own_user_key
from socius.services.passwords import PasswordHasher, check_password_policy
from socius.services.ports import Clock, HotReads, UnitOfWork, UnitOfWorkFactory
from socius.services.profiles import COUNTED, Profile, ProfileService, profile_key, profile_of
from socius.services.rendered import RenderedBodies
from socius.services.revocation import Revocations
from socius.services.throttle import Throttle

__all__ = ["AccountService", "OwnAccount", "PendingVerification", "ProfileChanges"]

ProfileChanges = Mapping[str, Any]
_EXPORT_MAX = 1_000_000  # no real account comes near; bounds the query all the same
_EDITABLE = {"display_name", "bio", "avatar_url", "is_private", "dm_policy"}


@dataclass(frozen=True, slots=True)
class OwnAccount:
    """The caller's account: private fields from ``user``, counts from ``profile``."""

    user: User
    profile: Profile


@dataclass(frozen=True, slots=True)
class PendingVerification:
    """A new account that may sign in once its email is verified (the link is mailed)."""

    user: User


def _wrong_password() -> Forbidden:
    return Forbidden("the password is wrong", code="invalid_password")


class AccountService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        hasher: PasswordHasher,
        auth: AuthService,
        revocations: Revocations,
        profiles: ProfileService,
        graph_cache: GraphCache,
        messaging: MessagingService,
        verification: EmailVerification,
        mail: MailQueue,
        *,
        register_throttle: Throttle,
        require_verified_email: bool = False,
        reads: HotReads | None = None,
        near: NearCache | None = None,
        events: DomainEvents | None = None,
    ) -> None:
        """``near``: this node's L1, which holds own users (``u:<id>``) for ``me``; any
        commit that changes a user drops theirs on every node (bootstrap wires it)."""
        self._near = near
        self._bodies = RenderedBodies(near)
        self._events = events
        self._uow = uow
        self._reads = reads if reads is not None and reads.available else None
        self._clock = clock
        self._ids = ids
        self._hasher = hasher
        self._auth = auth
        self._revocations = revocations
        self._register_throttle = register_throttle
        self._profiles = profiles
        self._graph_cache = graph_cache
        self._messaging = messaging
        self._verification = verification
        self._mail = mail
        self._require_verified_email = require_verified_email

    async def new_user(
        self,
        username: str,
        password: str,
        *,
        email: str | None,
        display_name: str | None,
        is_admin: bool = False,
    ) -> User:
        """A new account's record, its fields checked and its password hashed (stored by
        the caller)."""
        name = check_username(username)
        check_password_policy(password, username=name)
        now = self._clock()
        return User(
            id=self._ids.next_id(),
            username=name,
            email=check_email(email) if email else None,
            display_name=check_display_name(display_name) if display_name else name,
            bio="",
            avatar_url=None,
            is_private=False,
            dm_policy=DmPolicy.EVERYONE,
            password_hash=await self._hasher.hash(password),
            status=UserStatus.ACTIVE,
            is_admin=is_admin,
            created_at=now,
            updated_at=now,
            settings={},
        )

    async def register(
        self,
        username: str,
        password: str,
        *,
        email: str | None,
        display_name: str | None,
        client: ClientInfo,
    ) -> IssuedTokens | PendingVerification:
        """A new account, its first session, and a verification link mailed to its
        email. When the server requires verified email, the account needs one (422
        ``email_required``) and gets no session until it is verified."""
        await self._register_throttle.check(client.ip)
        if self._require_verified_email and not email:
            raise InvalidInput(
                "an email address is required", code="email_required", details={"field": "email"}
            )
        user = await self.new_user(username, password, email=email, display_name=display_name)
        async with self._uow() as uow:
            await uow.users.add(user)
            await self.created(uow, user.id, via="register")
            send_after_commit(self._mail, uow, await self._verification.issue(uow, user))
            issued = (
                None
                if self._require_verified_email
                else await self._auth.start_session(uow, user, client)
            )
            await uow.commit()
        await self._register_throttle.hit(client.ip)
        return issued or PendingVerification(user)

    async def created(self, uow: UnitOfWork, user_id: int, *, via: str) -> None:
        """The ``account.created`` event of a new account, however it was made
        (``via``: ``register``, ``oidc`` or ``admin``), in the unit of work adding it."""
        await self._event(uow, "account.created", user_id, via=via)

    async def _event(self, uow: UnitOfWork, type_: str, user_id: int, **data: Any) -> None:
        """The write's one event in the durable stream (services/events.py)."""
        if self._events is not None:
            await self._events.append(uow, type_, {"user_id": user_id, **data})

    async def _user(self, principal: Principal) -> User:
        if self._reads is not None:  # one row, on the driver (storage/reads.py)
            user = await self._reads.user(principal.user_id)
        else:
            async with self._uow(write=False) as uow:
                user = await uow.users.get(principal.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("the account no longer exists", code="account_gone")
        return user

    async def me(self, principal: Principal) -> OwnAccount:
        near = self._near
        if near is None:
            user = await self._user(principal)
        else:
            key = own_user_key(principal.user_id)
            held = near.get(key)
            if isinstance(held, User):
                user = held
            else:
                ticket = near.begin()
                user = await self._user(principal)
                near.put(key, user, ticket)
            if not user.is_active:
                raise Unauthenticated("the account no longer exists", code="account_gone")
        return OwnAccount(user, await self._profiles.get(user.id))

    async def me_body(self, principal: Principal, render: Callable[[OwnAccount], bytes]) -> bytes:
        """``render(me(principal))``, kept while the user's row and profile are."""
        uid = principal.user_id

        async def build() -> tuple[bytes, list[str]]:
            return render(await self.me(principal)), [own_user_key(uid), profile_key(uid)]

        return await self._bodies.body(f"b:me:{uid}", build)

    async def update_me(self, principal: Principal, changes: ProfileChanges) -> OwnAccount:
        unknown = set(changes) - _EDITABLE
        if unknown:
            raise InvalidInput(
                "these fields cannot be changed here",
                code="unknown_fields",
                details={"fields": sorted(unknown)},
            )
        values: dict[str, Any] = {}
        if "display_name" in changes:
            values["display_name"] = check_display_name(str(changes["display_name"]))
        if "bio" in changes:
            values["bio"] = check_bio(str(changes["bio"]))
        if "avatar_url" in changes:
            values["avatar_url"] = check_avatar_url(changes["avatar_url"])
        if "is_private" in changes:
            values["is_private"] = bool(changes["is_private"])
        if "dm_policy" in changes:
            values["dm_policy"] = DmPolicy(changes["dm_policy"])
        if not values:
            return await self.me(principal)
        values["updated_at"] = self._clock()
        uid = principal.user_id
        async with self._uow(driver=True) as uow:  # one statement, on the driver
            # The profile and this node's copy of the own row, in one invalidation (one
            # cache command, one broadcast), before the relay is woken.
            uow.after_commit(lambda: self._profiles.invalidate(uid, near_only=[own_user_key(uid)]))
            fields = sorted(k for k in values if k != "updated_at")
            domain = (
                []
                if self._events is None
                else self._events.prepare(
                    uow, [("account.updated", {"user_id": uid, "fields": fields}, None)]
                )
            )
            # One write: the row, the stream's event, and the row back with its counts
            # (the answer's profile: no read after the commit; decision 0027).
            found = await uow.users.update_profile(uid, values, COUNTED, domain, alone=True)
            if found is None:
                raise Unauthenticated("the account no longer exists", code="account_gone")
            user, counts = found
            await uow.commit()
        return OwnAccount(user, profile_of(user, counts))

    async def change_password(
        self, principal: Principal, current_password: str, new_password: str
    ) -> None:
        user = await self._user(principal)
        if not await self._hasher.verify(user.password_hash, current_password):
            raise _wrong_password()
        check_password_policy(new_password, username=user.username)
        new_hash = await self._hasher.hash(new_password)
        async with self._uow() as uow:
            await uow.users.update(
                user.id, {"password_hash": new_hash, "updated_at": self._clock()}
            )
            ended = await uow.sessions.revoke_all(
                user.id, self._clock(), except_id=principal.session_id
            )
            await self._revocations.record(uow, ended, user_id=user.id)
            await uow.commit()

    async def change_email(self, principal: Principal, email: str, password: str) -> OwnAccount:
        """A new address, unverified until its link is followed (it is mailed; the old
        address gets a notice). Needs the password: 403 ``invalid_password``; 409
        ``email_taken``. The same address again changes nothing."""
        user = await self._user(principal)
        address = check_email(email)
        if not await self._hasher.verify(user.password_hash, password):
            raise _wrong_password()
        if address == user.email:
            return await self.me(principal)
        now = self._clock()
        async with self._uow() as uow:
            changed = await uow.users.update(
                user.id, {"email": address, "email_verified_at": None, "updated_at": now}
            )
            if changed is None:
                raise Unauthenticated("the account no longer exists", code="account_gone")
            await uow.one_time_tokens.delete_for_user(
                user.id, [TokenPurpose.VERIFY_EMAIL, TokenPurpose.RESET_PASSWORD]
            )
            await self._event(uow, "account.updated", user.id, fields=["email"])
            notice = (
                Mail(
                    to=user.email,
                    template=MailTemplate.EMAIL_CHANGED,
                    values={
                        "username": user.username,
                        "new_email": address,
                        "when": when_text(now),
                    },
                )
                if user.email
                else None
            )
            send_after_commit(self._mail, uow, notice, await self._verification.issue(uow, changed))
            await uow.commit()
        return OwnAccount(changed, await self._profiles.get(changed.id))

    async def delete_account(self, principal: Principal, password: str) -> None:
        user = await self._user(principal)
        if not await self._hasher.verify(user.password_hash, password):
            raise _wrong_password()
        await self._erase(user.id)

    async def _erase(self, user_id: int) -> None:
        async with self._uow() as uow:
            await uow.users.lock([user_id], exclusive=True)  # graph writes finish first
            ended = await uow.sessions.revoke_all(user_id, self._clock())
            await self._revocations.record(uow, [*ended], user_id=user_id)
            neighbors = await uow.edges.erase(user_id)
            # Conversations before the event log: a concurrent send holds its conversation
            # and then wants this user's log counter; this order never waits on the reverse.
            await self._messaging.erase_user(uow, user_id)
            await uow.notifications.erase_user(user_id)
            await uow.push.erase_user(user_id)  # devices and notification settings
            await uow.suggestion_lists.drop([user_id])  # their precomputed suggestions
            await uow.outbox.erase_user(user_id)
            await uow.audit.erase_user(user_id)
            await uow.reports.erase_user(user_id)  # the notes by and about them
            await uow.users.delete(user_id)
            await self._event(uow, "account.erased", user_id)  # a redaction: consumers forget
            uow.after_commit(lambda: self._graph_cache.user_erased(user_id, neighbors))
            await uow.commit()

    async def export(self, principal: Principal) -> dict[str, Any]:
        """Everything stored about the caller, as plain JSON-able data."""
        async with self._uow(write=False) as uow:
            user = await uow.users.get(principal.user_id)
            if user is None:
                raise Unauthenticated("the account no longer exists", code="account_gone")
            sessions = await uow.sessions.list_for_user(user.id)
            edges: dict[str, list[dict[str, Any]]] = {}
            for type_ in EdgeType:
                rows = await uow.edges.range(user.id, type_, limit=_EXPORT_MAX)
                if rows:
                    edges[type_.name.lower()] = [
                        {"user_id": str(r.dst), "since": r.created_at} for r in rows
                    ]
            memberships = await uow.conversations.for_user(user.id, limit=_EXPORT_MAX, before=None)
            written = await uow.conversations.messages_by(user.id)
            inbox = await uow.notifications.page(user.id, limit=_EXPORT_MAX, before_id=None)
            identities = await uow.identities.for_user(user.id)
            passkeys = await uow.passkeys.for_user(user.id)
            devices = await uow.push.devices([user.id])
            push_settings = await uow.push.settings([user.id])
            made_reports = await uow.reports.by_reporter(user.id, limit=_EXPORT_MAX)
        profile = asdict(user)
        profile.pop("password_hash")
        return {
            "format": "socius-export/2",
            "exported_at": self._clock(),
            "profile": profile,
            "sessions": [asdict(s) for s in sessions],
            "identities": [
                {
                    "provider": i.provider,
                    "subject": i.subject,
                    "email": i.email,
                    "created_at": i.created_at,
                    "last_used_at": i.last_used_at,
                }
                for i in identities
            ],
            "passkeys": [
                {
                    "id": str(p.id),
                    "name": p.name,
                    "created_at": p.created_at,
                    "last_used_at": p.last_used_at,
                }
                for p in passkeys
            ],
            "relationships": edges,
            "conversations": [
                {
                    "id": str(c.id),
                    "kind": c.kind.value,
                    "title": c.title,
                    "role": m.role.value,
                    "joined_at": m.joined_at,
                    "last_read_seq": m.last_read_seq,
                    "muted": m.muted,
                }
                for c, m in memberships
            ],
            "messages": [
                {
                    "id": str(m.id),
                    "conversation_id": str(m.conversation_id),
                    "seq": m.seq,
                    "body": m.body,
                    "created_at": m.created_at,
                    "edited_at": m.edited_at,
                    "deleted": m.deleted,
                    "attachments": [a.snapshot() for a in m.attachments],
                    "thread_root_id": None if m.thread_root_id is None else str(m.thread_root_id),
                }
                for m in written
            ],
            "notifications": [
                {
                    "id": str(n.id),
                    "type": n.type,
                    "payload": n.payload,
                    "created_at": n.created_at,
                    "read": n.read,
                }
                for n in inbox
            ],
            "push_devices": [
                {
                    "id": str(d.id),
                    "kind": d.kind.value,
                    "endpoint": d.endpoint,
                    "platform": d.platform,
                    "created_at": d.created_at,
                    "last_pushed_at": d.last_pushed_at,
                }
                for d in devices
            ],
            "notification_settings": asdict(push_settings.get(user.id, NotificationSettings())),
            # The reports the caller made, as they see them; not the administrators'
            # resolution notes, and not reports about the caller (their reporters stay private).
            "reports": [
                {
                    "id": str(r.id),
                    "target": r.target_type.value,
                    "target_id": str(r.target_id),
                    "reason": r.reason.value,
                    "note": r.note,
                    "status": r.status.value,
                    "created_at": r.created_at,
                    "resolved_at": r.resolved_at,
                }
                for r in made_reports
            ],
        }
