"""/v1/auth/verify-email and /v1/auth/password-reset: the flows that run through a link
mailed to the account's address."""

from __future__ import annotations

import msgspec
from litestar import MediaType, Router, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from socius.api.dependencies import Caller, Requester, container_of
from socius.api.options import with_options
from socius.api.rest.fields import EmailAddress, NewPassword, OneTimeTokenText

__all__ = ["router"]


class TokenIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    token: OneTimeTokenText


class ResetRequestIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: EmailAddress


class ResetIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    token: OneTimeTokenText
    password: NewPassword


@post(
    "/verify-email/request",
    status_code=HTTP_202_ACCEPTED,
    media_type=MediaType.TEXT,  # no body at all
    summary="Mail yourself a verification link",
    description="Mails a single-use link to your address (valid "
    "SOCIUS_EMAIL_VERIFICATION_TTL_SECONDS, 48 h by default); the link carries a token for "
    "POST /v1/auth/verify-email. 409 `no_email` or `email_already_verified`; 429 "
    "`too_many_attempts` past SOCIUS_VERIFY_EMAIL_MAX_PER_HOUR. The mail leaves after the "
    "answer: a mail server that is down delays it, never this request.",
    security=[{"bearer": []}],
)
async def request_verification(state: State, principal: Caller) -> None:
    await container_of(state).verification.request(principal.user_id)


@post(
    "/verify-email",
    status_code=HTTP_204_NO_CONTENT,
    summary="Verify an email address with the token from its link",
    description="No session needed (the link may be opened on another device). The token "
    "works once, and only while the account still has the address it was mailed to. 400 "
    "`invalid_token` (unknown, forged, used, or the address changed since) or "
    "`token_expired`. `email_verified` in /v1/me turns true.",
)
async def verify_email(data: JSONBody[TokenIn], state: State) -> None:
    await container_of(state).verification.verify(data.token)


@post(
    "/password-reset/request",
    status_code=HTTP_202_ACCEPTED,
    media_type=MediaType.TEXT,  # no body at all
    summary="Mail a password reset link",
    description="Answers 202 at once whether or not the address belongs to an account (the "
    "look-up and the mail happen afterwards), so the answer tells nothing. When it does, "
    "a single-use link valid 30 minutes (SOCIUS_PASSWORD_RESET_TTL_SECONDS) is mailed. 429 "
    "`too_many_attempts` with Retry-After past SOCIUS_PASSWORD_RESET_MAX_PER_ADDRESS_PER_HOUR "
    "requests for the address or SOCIUS_PASSWORD_RESET_MAX_PER_IP_PER_HOUR from the caller's "
    "address.",
)
async def request_reset(data: JSONBody[ResetRequestIn], state: State, client: Requester) -> None:
    await container_of(state).password_resets.request(data.email, client.ip)


@post(
    "/password-reset",
    status_code=HTTP_204_NO_CONTENT,
    summary="Set a new password with the token from a reset link",
    description="The password policy applies (422 `invalid_password`, `weak_password`; the "
    "link stays usable then). On success every session of the account ends at once (open "
    "sockets close), other reset links are void, and a notice is mailed. Two-factor "
    "sign-in stays on. 400 `invalid_token` (unknown, forged or used) or `token_expired`.",
)
async def reset_password(data: JSONBody[ResetIn], state: State) -> None:
    await container_of(state).password_resets.reset(data.token, data.password)


router = Router(
    path="/v1/auth",
    route_handlers=with_options(
        [request_verification, verify_email, request_reset, reset_password]
    ),
    tags=["identity"],
)
