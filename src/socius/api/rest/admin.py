"""/v1/admin: accounts as administrators see them, the actions they take, the audit log.

Every route needs an administrator (api/rest/admin_access.py); every action is written to
the audit log in its own transaction (services/admin.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.params import Body, QueryParameter

from socius.api.dependencies import container_of
from socius.api.rest.admin_access import AdminActor, admin_router
from socius.api.rest.params import AuditCursor, IdPath, Limit, UserCursor, user_id_or_404
from socius.api.rest.views import Page
from socius.domain.audit import ACTION_PATTERN, REASON_MAX, REASON_PATTERN, AuditEntry, Via
from socius.domain.ids import ID_PATTERN, parse_id
from socius.domain.users import UserStatus
from socius.services.admin import AdminUser
from socius.services.audit import AuditPage

__all__ = ["AdminUserOut", "AuditEntryOut", "router"]


class AdminUserOut(msgspec.Struct, kw_only=True):
    """An account as administrators see it."""

    id: str
    username: str
    email: str | None
    display_name: str
    status: str
    is_active: bool
    is_admin: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None = msgspec.field(default=None)
    """The newest session's start, while one is on record (ended sessions are purged a
    while after they end); null when none is."""


class AuditEntryOut(msgspec.Struct, kw_only=True):
    """One administrator action. Names are today's (null once the account is erased)."""

    id: str
    created_at: datetime
    action: str
    via: str
    actor_id: str | None
    actor_username: str | None
    target_type: str | None
    target_id: str | None
    target_username: str | None
    details: dict[str, Any]
    request_id: str | None
    ip: str | None


class ActionNote(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Optional: why. Kept with the action in the audit log."""

    reason: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=REASON_MAX,
                pattern=REASON_PATTERN,
                description=f"at most {REASON_MAX} characters, no control characters",
            ),
        ]
        | None
    ) = None


def _user_out(view: AdminUser) -> AdminUserOut:
    u = view.user
    return AdminUserOut(
        id=str(u.id),
        username=u.username,
        email=u.email,
        display_name=u.display_name,
        status=u.status.value,
        is_active=u.is_active,
        is_admin=u.is_admin,
        created_at=u.created_at,
        updated_at=u.updated_at,
        last_login_at=view.last_login_at,
    )


def _entry_out(e: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=str(e.id),
        created_at=e.created_at,
        action=e.action,
        via=e.via.value,
        actor_id=None if e.actor_id is None else str(e.actor_id),
        actor_username=e.actor_username,
        target_type=e.target_type,
        target_id=None if e.target_id is None else str(e.target_id),
        target_username=e.target_username,
        details=e.details,
        request_id=e.request_id,
        ip=e.ip,
    )


def _audit_out(page: AuditPage) -> Page[AuditEntryOut]:
    return Page(items=[_entry_out(e) for e in page.items], next_cursor=page.next_cursor)


Note = Annotated[ActionNote | None, Body(description="Optional; may be left out.")]

# ---------------------------------------------------------------------------- users


@get(
    "/users",
    summary="Accounts, newest first (admins only)",
    description="Every account, disabled ones too, with its email, status, admin flag and "
    "last login. `q` finds text in the username, email or display name, or an exact id. "
    "403 `admin_required` unless you are an administrator.",
)
async def list_users(
    state: State,
    q: Annotated[
        str | None,
        QueryParameter(max_length=64, description="text in the username, email or display name"),
    ] = None,
    status: Annotated[
        Literal["active", "disabled"] | None, QueryParameter(description="only these")
    ] = None,
    is_admin: Annotated[
        bool | None, QueryParameter(description="only administrators (true) or others (false)")
    ] = None,
    limit: Limit = None,
    cursor: UserCursor = None,
) -> Page[AdminUserOut]:
    page = await container_of(state).admin.list_users(
        query=q,
        status=UserStatus(status) if status else None,
        is_admin=is_admin,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[_user_out(u) for u in page.items], next_cursor=page.next_cursor)


@get("/users/{user_id:str}", summary="One account (admins only)")
async def get_user(user_id: IdPath, state: State) -> AdminUserOut:
    return _user_out(await container_of(state).admin.get_user(user_id_or_404(user_id)))


def _reason(data: ActionNote | None) -> str | None:
    return data.reason if data else None


@post(
    "/users/{user_id:str}/disable",
    status_code=200,
    summary="Disable an account (admins only)",
    description="Every session of the account ends at once, its sockets close on every node, "
    "and it can no longer log in. Idempotent: an account already disabled is answered as it "
    "is, and nothing is logged. 409 `last_admin` for the last active administrator, 422 "
    "`cannot_target_self` for your own account.",
)
async def disable_user(
    user_id: IdPath, state: State, admin: AdminActor, data: Note = None
) -> AdminUserOut:
    outcome = await container_of(state).admin.set_status(
        admin, user_id_or_404(user_id), UserStatus.DISABLED, reason=_reason(data)
    )
    return _user_out(outcome.user)


@post(
    "/users/{user_id:str}/enable",
    status_code=200,
    summary="Enable a disabled account (admins only)",
    description="Idempotent: an active account is answered as it is, and nothing is logged.",
)
async def enable_user(
    user_id: IdPath, state: State, admin: AdminActor, data: Note = None
) -> AdminUserOut:
    outcome = await container_of(state).admin.set_status(
        admin, user_id_or_404(user_id), UserStatus.ACTIVE, reason=_reason(data)
    )
    return _user_out(outcome.user)


@post(
    "/users/{user_id:str}/grant-admin",
    status_code=200,
    summary="Make an account an administrator (admins only)",
    description="Idempotent: nothing is logged when it already is one.",
)
async def grant_admin(
    user_id: IdPath, state: State, admin: AdminActor, data: Note = None
) -> AdminUserOut:
    outcome = await container_of(state).admin.set_admin(
        admin, user_id_or_404(user_id), True, reason=_reason(data)
    )
    return _user_out(outcome.user)


@post(
    "/users/{user_id:str}/revoke-admin",
    status_code=200,
    summary="Take the administrator flag back (admins only)",
    description="It takes effect on the account's next request. 409 `last_admin` for the "
    "last active administrator (make another one first). Idempotent: nothing is logged "
    "when the account is no administrator.",
)
async def revoke_admin(
    user_id: IdPath, state: State, admin: AdminActor, data: Note = None
) -> AdminUserOut:
    outcome = await container_of(state).admin.set_admin(
        admin, user_id_or_404(user_id), False, reason=_reason(data)
    )
    return _user_out(outcome.user)


# ---------------------------------------------------------------------------- audit

_NOBODY = AuditPage([], None)


@get(
    "/audit",
    summary="The audit log, newest first (admins only)",
    description="Every administrator action: who (`actor_id`, or `via: cli` for the "
    "command line), what (`action`), on what (`target_type`, `target_id`), `details`, "
    "when, and the request id and client address. Each filter given narrows the list.",
)
async def audit_log(
    state: State,
    actor: Annotated[
        str | None,
        QueryParameter(
            description="an administrator's id, or `cli` for the command line",
            pattern=f"^(?:cli|{ID_PATTERN[1:-1]})$",
        ),
    ] = None,
    action: Annotated[
        str | None,
        QueryParameter(
            max_length=64,
            description="an action, e.g. `user.disable`",
            pattern=ACTION_PATTERN,
        ),
    ] = None,
    target: Annotated[
        str | None,
        QueryParameter(description="the id the action was taken on", pattern=ID_PATTERN),
    ] = None,
    limit: Limit = None,
    cursor: AuditCursor = None,
) -> Page[AuditEntryOut]:
    audit = container_of(state).admin.audit
    filters: dict[str, Any] = {}
    if actor == "cli":
        filters["via"] = Via.CLI
    elif actor is not None:
        filters["actor_id"] = parse_id(actor)
    if target is not None:
        filters["target_id"] = parse_id(target)
    if any(value is None for value in filters.values()):  # an id no account can have
        return _audit_out(_NOBODY)
    if action is not None:
        filters["action"] = action
    return _audit_out(await audit.page(limit=limit, cursor=cursor, **filters))


router = admin_router(
    "/v1/admin",
    [list_users, get_user, disable_user, enable_user, grant_admin, revoke_admin, audit_log],
)
