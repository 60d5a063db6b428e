"""/v1/auth: register, login (and its second step), refresh, logout."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from socius.api.dependencies import Caller, Requester, container_of
from socius.api.options import with_options
from socius.api.rest.fields import (
    DisplayNameOrEmpty,
    Email,
    MfaCode,
    NewPassword,
    Password,
    RecoveryCodeText,
    Username,
)
from socius.api.rest.views import (
    AuthOut,
    MfaRequiredOut,
    VerificationRequiredOut,
    auth_out,
    login_out,
    private_user_out,
)
from socius.services.accounts import PendingVerification

__all__ = ["router"]


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    username: Username
    password: NewPassword
    email: Email | None = None
    display_name: DisplayNameOrEmpty | None = None


class LoginIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=254)]
    password: Password


class LoginMfaIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The challenge's token and exactly one of ``code`` and ``recovery_code``."""

    mfa_token: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    code: MfaCode | None = None
    recovery_code: RecoveryCodeText | None = None


class RefreshIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


@post(
    "/register",
    status_code=HTTP_201_CREATED,
    summary="Create an account",
    description="Creates the account and its first session; with an email, a verification "
    "link is mailed to it. 409 `username_taken` or `email_taken`; 422 for a bad username or "
    "a weak password. When the server requires verified email (SOCIUS_REQUIRE_VERIFIED_EMAIL) "
    "the email is required (422 `email_required`) and the answer is "
    "`{user, email_verification_required: true}` without tokens: log in once verified.",
)
async def register(
    data: JSONBody[RegisterIn], state: State, client: Requester
) -> AuthOut | VerificationRequiredOut:
    result = await container_of(state).accounts.register(
        data.username,
        data.password,
        email=data.email,
        display_name=data.display_name,
        client=client,
    )
    if isinstance(result, PendingVerification):
        return VerificationRequiredOut(
            user=private_user_out(result.user), email_verification_required=True
        )
    return auth_out(result)


@post(
    "/login",
    status_code=200,
    summary="Log in with username or email",
    description="401 `invalid_credentials` for an unknown user or a wrong password alike; "
    "429 `too_many_attempts` with Retry-After after repeated failures from the caller's "
    "address (on this account, or on any), or while the account is held after very many "
    "failures from everywhere (a short, growing hold that addresses the account logged in "
    "from before are spared). A refusal does not say whether the password was right. "
    "With two-factor sign-in on, a right password answers `{mfa_required: true, mfa_token, "
    "expires_in}` instead of tokens: finish with POST /v1/auth/login/mfa. When the server "
    "requires verified email and the account's is not, 403 `email_not_verified` (after the "
    "password was checked; a new link is mailed).",
)
async def login(
    data: JSONBody[LoginIn], state: State, client: Requester
) -> AuthOut | MfaRequiredOut:
    return login_out(await container_of(state).auth.login(data.username, data.password, client))


@post(
    "/login/mfa",
    status_code=200,
    summary="Finish a login with the second factor",
    description="Send the `mfa_token` the login answered and exactly one of `code` (the "
    "authenticator's current 6 digits) or `recovery_code` (one of the ten shown at "
    "enrolment); 422 `code_or_recovery_code` otherwise. Answers tokens as login does. A "
    "code works once: the same or an older code again is refused. 401 `invalid_mfa_code` "
    "for a wrong code; after 5 wrong codes, or once expired or used, the token is dead: "
    "401 `invalid_mfa_token` (log in again). 429 `too_many_attempts` with Retry-After past "
    "SOCIUS_MFA_MAX_FAILURES_PER_ACCOUNT wrong codes on the account in the login window.",
)
async def login_mfa(data: JSONBody[LoginMfaIn], state: State, client: Requester) -> AuthOut:
    issued = await container_of(state).auth.login_mfa(
        data.mfa_token, client, code=data.code, recovery_code=data.recovery_code
    )
    return auth_out(issued)


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
)
async def logout(state: State, principal: Caller) -> None:
    await container_of(state).auth.logout(principal)


router = Router(
    path="/v1/auth",
    route_handlers=with_options([register, login, login_mfa, refresh, logout]),
    tags=["identity"],
)
