"""/v1/me/mfa: two-factor sign-in (TOTP) and its recovery codes."""

from __future__ import annotations

import msgspec
from litestar import Router, delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from socius.api.dependencies import Caller, container_of
from socius.api.options import with_options
from socius.api.rest.fields import MfaCode, Password, RecoveryCodeText

__all__ = ["router"]


class MfaStatusOut(msgspec.Struct, kw_only=True):
    totp_enabled: bool
    totp_pending: bool  # enrolled, waiting for its first code
    recovery_codes_left: int


class TotpEnrollmentOut(msgspec.Struct, kw_only=True):
    secret: str  # base32, for typing into an authenticator app
    otpauth_uri: str  # the same as an otpauth:// URI, for a QR code


class CodeIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    code: MfaCode


class RecoveryCodesOut(msgspec.Struct, kw_only=True):
    recovery_codes: list[str]


class DisableIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The password, and exactly one of ``code`` and ``recovery_code``."""

    password: Password
    code: MfaCode | None = None
    recovery_code: RecoveryCodeText | None = None


@get(
    "/",
    summary="Your second factors",
    description="Whether TOTP is on (`totp_enabled`), enrolled but not yet confirmed "
    "(`totp_pending`), and how many unused recovery codes are left.",
)
async def mfa_status(state: State, principal: Caller) -> MfaStatusOut:
    status = await container_of(state).mfa.status(principal.user_id)
    return MfaStatusOut(
        totp_enabled=status.totp_enabled,
        totp_pending=status.totp_pending,
        recovery_codes_left=status.recovery_codes_left,
    )


@post(
    "/totp",
    status_code=200,
    summary="Start TOTP enrolment",
    description="A new secret for an authenticator app, as base32 and as an `otpauth://` URI "
    "(show it as a QR code). It does nothing until confirmed with a first code (POST "
    "/v1/me/mfa/totp/confirm); asking again replaces a pending secret. 409 "
    "`mfa_already_enabled`; 403 `mfa_not_configured` when the server has no encryption "
    "key for the secrets.",
)
async def enroll_totp(state: State, principal: Caller) -> TotpEnrollmentOut:
    enrollment = await container_of(state).mfa.enroll(principal.user_id)
    return TotpEnrollmentOut(secret=enrollment.secret, otpauth_uri=enrollment.otpauth_uri)


@post(
    "/totp/confirm",
    status_code=200,
    summary="Turn TOTP on with a first code",
    description="From now on a login needs a code too. Answers ten single-use recovery "
    "codes, shown this once (only their hashes are kept): each can stand in for a code. "
    "403 `invalid_mfa_code`; 409 `mfa_not_enrolled` or `mfa_already_enabled`; 429 "
    "`too_many_attempts` past the account's limit of wrong codes. A notice is mailed.",
)
async def confirm_totp(data: JSONBody[CodeIn], state: State, principal: Caller) -> RecoveryCodesOut:
    codes = await container_of(state).mfa.confirm(principal.user_id, data.code)
    return RecoveryCodesOut(recovery_codes=codes)


@delete(
    "/totp",
    status_code=HTTP_204_NO_CONTENT,
    summary="Turn TOTP off",
    description="Needs the password and a current code or an unused recovery code (exactly "
    "one: 422 `code_or_recovery_code`). The secret and the recovery codes are erased; a "
    "notice is mailed. 403 `invalid_password` or `invalid_mfa_code`; 409 `mfa_not_enabled`; "
    "429 `too_many_attempts`.",
)
async def disable_totp(data: JSONBody[DisableIn], state: State, principal: Caller) -> None:
    await container_of(state).mfa.disable(
        principal.user_id, data.password, code=data.code, recovery_code=data.recovery_code
    )


router = Router(
    path="/v1/me/mfa",
    route_handlers=with_options([mfa_status, enroll_totp, confirm_totp, disable_totp]),
    tags=["identity"],
    security=[{"bearer": []}],
)
