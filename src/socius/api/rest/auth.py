"""/v1/auth: register, login, refresh, logout."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from socius.api.dependencies import Caller, Requester, container_of, require_auth
from socius.api.options import with_options
from socius.api.rest.fields import (
    DisplayNameOrEmpty,
    Email,
    NewPassword,
    Password,
    Username,
)
from socius.api.rest.views import AuthOut, auth_out

__all__ = ["router"]


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    username: Username
    password: NewPassword
    email: Email | None = None
    display_name: DisplayNameOrEmpty | None = None


class LoginIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=254)]
    password: Password


class RefreshIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


@post(
    "/register",
    status_code=HTTP_201_CREATED,
    summary="Create an account",
    description="Creates the account and its first session. 409 `username_taken` or "
    "`email_taken`; 422 for a bad username or a weak password.",
)
async def register(data: JSONBody[RegisterIn], state: State, client: Requester) -> AuthOut:
    issued = await container_of(state).accounts.register(
        data.username,
        data.password,
        email=data.email,
        display_name=data.display_name,
        client=client,
    )
    return auth_out(issued)


@post(
    "/login",
    status_code=200,
    summary="Log in with username or email",
    description="401 `invalid_credentials` for an unknown user or a wrong password alike; "
    "429 `too_many_attempts` with Retry-After after repeated failures from the caller's "
    "address (on this account, or on any), or while the account is held after very many "
    "failures from everywhere (a short, growing hold that addresses the account logged in "
    "from before are spared). A refusal does not say whether the password was right.",
)
async def login(data: JSONBody[LoginIn], state: State, client: Requester) -> AuthOut:
    return auth_out(await container_of(state).auth.login(data.username, data.password, client))


@post(
    "/refresh",
    status_code=200,
    summary="Trade a refresh token for a new pair",
    description="The refresh token is spent. Presented again within a short grace "
    "(SOCIUS_REFRESH_GRACE_SECONDS, 20 s) while its new pair is still the session's newest, "
    "it returns that same pair (two tabs refreshing at once); otherwise presenting a spent "
    "one revokes the whole session (401 `refresh_token_reused`).",
)
async def refresh(data: JSONBody[RefreshIn], state: State) -> AuthOut:
    return auth_out(await container_of(state).auth.refresh(data.refresh_token))


@post(
    "/logout",
    status_code=HTTP_204_NO_CONTENT,
    summary="End this session",
    description="The session's access and refresh tokens stop working at once.",
    security=[{"bearer": []}],
    guards=[require_auth],
)
async def logout(state: State, principal: Caller) -> None:
    await container_of(state).auth.logout(principal)


router = Router(
    path="/v1/auth",
    route_handlers=with_options([register, login, refresh, logout]),
    tags=["identity"],
)
