"""/v1/me: the caller's own account, password, sessions, erasure and export."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Response, Router, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from socius.api.body import decode_body
from socius.api.dependencies import Caller, container_of
from socius.api.fast import fast, fast_write
from socius.api.options import with_options
from socius.api.rest.bodies import encode, json_response, renderer
from socius.api.rest.fields import (
    AvatarUrl,
    Bio,
    DisplayName,
    EmailAddress,
    NewPassword,
    Password,
)
from socius.api.rest.params import IdPath
from socius.api.rest.views import (
    PrivateUserOut,
    SessionsOut,
    private_user_out,
    session_out,
)
from socius.domain.errors import NotFound
from socius.domain.ids import parse_id
from socius.services.accounts import OwnAccount
from socius.services.auth import Principal
from socius.services.container import Container

__all__ = ["router"]

UNSET = msgspec.UNSET


def _own_view(account: OwnAccount) -> PrivateUserOut:
    return private_user_out(account.user, account.profile)


_render_me = renderer(_own_view)


class ProfilePatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields present change. Unknown or read-only fields: 422 `unknown_field`."""

    display_name: DisplayName | msgspec.UnsetType = UNSET
    bio: Bio | msgspec.UnsetType = UNSET
    avatar_url: AvatarUrl | msgspec.UnsetType | None = UNSET
    is_private: bool | msgspec.UnsetType = UNSET
    dm_policy: Literal["everyone", "friends"] | msgspec.UnsetType = UNSET


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    current_password: Password
    new_password: NewPassword


class EmailChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: EmailAddress
    password: Password


class PasswordConfirm(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    password: Password


async def _me_body(
    container: Container, principal: Principal, _params: tuple[str, ...], _query: bytes
) -> bytes:
    return await container.accounts.me_body(principal, _render_me)


@get("/", summary="Your private profile", opt=fast(_me_body))  # answered by the front
async def read_me(state: State, principal: Caller) -> Response[PrivateUserOut]:
    return json_response(await _me_body(container_of(state), principal, (), b""))


async def _update_me(
    container: Container, principal: Principal, data: ProfilePatch
) -> PrivateUserOut:
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
    account = await container.accounts.update_me(principal, changes)
    return private_user_out(account.user, account.profile)


async def _fast_update_me(
    container: Container, principal: Principal, _params: tuple[str, ...], body: bytes
) -> bytes:
    data = decode_body(body, ProfilePatch)  # as Litestar's StrictRequest decodes it
    return encode(await _update_me(container, principal, data))


@patch(
    "/",
    summary="Update your profile",
    description="Send only the fields to change. Unknown or read-only fields get 422.",
    opt=fast_write(_fast_update_me, body=True),  # answered by the front (api/fast.py)
)
async def update_me(
    data: JSONBody[ProfilePatch], state: State, principal: Caller
) -> PrivateUserOut:
    return await _update_me(container_of(state), principal, data)


@delete(
    "/",
    status_code=HTTP_204_NO_CONTENT,
    summary="Erase your account",
    description="Needs your password. Erases the profile, credentials, sessions and "
    "everything else the account owns; every session ends at once.",
)
async def delete_me(data: JSONBody[PasswordConfirm], state: State, principal: Caller) -> None:
    await container_of(state).accounts.delete_account(principal, data.password)


@post(
    "/password",
    status_code=HTTP_204_NO_CONTENT,
    summary="Change your password",
    description="Every other session is revoked; this one stays. 403 `invalid_password` "
    "when the current password is wrong.",
)
async def change_password(data: JSONBody[PasswordChange], state: State, principal: Caller) -> None:
    await container_of(state).accounts.change_password(
        principal, data.current_password, data.new_password
    )


@post(
    "/email",
    status_code=200,
    summary="Change your email address",
    description="Needs your password (403 `invalid_password`). The new address is unverified "
    "(`email_verified: false`) until the link mailed to it is followed; links sent before "
    "are void, and the old address gets a notice. 409 `email_taken`. The same address "
    "again changes nothing.",
)
async def change_email(
    data: JSONBody[EmailChange], state: State, principal: Caller
) -> PrivateUserOut:
    account = await container_of(state).accounts.change_email(principal, data.email, data.password)
    return private_user_out(account.user, account.profile)


@get("/sessions", summary="Your live sessions, newest first")
async def list_sessions(state: State, principal: Caller) -> SessionsOut:
    sessions = await container_of(state).auth.list_sessions(principal)
    return SessionsOut(items=[session_out(s, current) for s, current in sessions])


@delete(
    "/sessions/{session_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    summary="Revoke one of your sessions",
)
async def revoke_session(session_id: IdPath, state: State, principal: Caller) -> None:
    sid = parse_id(session_id)
    if sid is None:
        raise NotFound("no such session", code="session_not_found")
    await container_of(state).auth.revoke_session(principal, sid)


@delete("/sessions", status_code=HTTP_204_NO_CONTENT, summary="Revoke every session but this one")
async def revoke_other_sessions(state: State, principal: Caller) -> None:
    await container_of(state).auth.revoke_other_sessions(principal)


@get("/export", summary="Everything stored about you, as JSON")
async def export(state: State, principal: Caller) -> dict[str, Any]:
    return await container_of(state).accounts.export(principal)


router = Router(
    path="/v1/me",
    route_handlers=with_options(
        [
            read_me,
            update_me,
            delete_me,
            change_password,
            change_email,
            list_sessions,
            revoke_session,
            revoke_other_sessions,
            export,
        ]
    ),
    tags=["identity"],
    security=[{"bearer": []}],
)
