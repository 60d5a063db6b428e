"""Passkeys (WebAuthn): /v1/me/passkeys to register and manage yours, /v1/auth/passkey
to sign in with one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Router, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from socius.api.dependencies import Caller, Requester, container_of
from socius.api.options import with_options
from socius.api.rest.params import IdPath
from socius.api.rest.views import AuthOut, MfaRequiredOut, login_out
from socius.domain.errors import NotFound
from socius.domain.federation import Passkey
from socius.domain.ids import parse_id
from socius.domain.users import DISPLAY_NAME_MAX, DISPLAY_NAME_PATTERN

__all__ = ["auth_router", "me_router"]

PasskeyName = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={
            "maxLength": DISPLAY_NAME_MAX,
            "pattern": DISPLAY_NAME_PATTERN,
            "description": "As a display name: no control characters or line breaks; "
            "surrounding spaces are trimmed (422 `invalid_passkey_name`)",
        }
    ),
]


class OptionsOut(msgspec.Struct, kw_only=True):
    """WebAuthn options in their JSON form (``PublicKeyCredentialCreationOptionsJSON`` or
    ``PublicKeyCredentialRequestOptionsJSON``): binary fields in base64url."""

    options: dict[str, Any]


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    credential: dict[str, Any]  # the PublicKeyCredential, as its toJSON() gives it
    name: PasskeyName | None = None


class AssertionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    credential: dict[str, Any]


class RenameIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: PasskeyName


class PasskeyOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


class PasskeysOut(msgspec.Struct, kw_only=True):
    items: list[PasskeyOut]


def passkey_out(p: Passkey) -> PasskeyOut:
    return PasskeyOut(
        id=str(p.id), name=p.name, created_at=p.created_at, last_used_at=p.last_used_at
    )


def _passkey_id(text: str) -> int:
    found = parse_id(text)
    if found is None:
        raise NotFound("no such passkey", code="passkey_not_found")
    return found


_UNAVAILABLE = "403 `passkeys_unavailable` when the server lacks the webauthn package."


@get("/", summary="Your passkeys")
async def list_passkeys(state: State, principal: Caller) -> PasskeysOut:
    found = await container_of(state).passkeys.list(principal.user_id)
    return PasskeysOut(items=[passkey_out(p) for p in found])


@post(
    "/begin",
    status_code=200,
    summary="Start registering a passkey",
    description="Options for `navigator.credentials.create()`: a discoverable credential "
    "(resident key) with user verification required, your other passkeys excluded. The "
    "challenge is single-use and valid SOCIUS_PASSKEY_CHALLENGE_TTL_SECONDS. 422 "
    "`too_many_passkeys` (20); 429 `too_many_attempts` past "
    "SOCIUS_SIGN_IN_STARTS_MAX_PER_IP_PER_MINUTE ceremonies a minute. " + _UNAVAILABLE,
)
async def register_begin(state: State, principal: Caller) -> OptionsOut:
    return OptionsOut(options=await container_of(state).passkeys.register_begin(principal.user_id))


@post(
    "/finish",
    status_code=201,
    summary="Finish registering a passkey",
    description="Send the credential `navigator.credentials.create()` answered (its JSON "
    'form) and a name for it. The attestation is checked ("none" and the usual formats), '
    "the origin against SOCIUS_WEBAUTHN_ORIGINS, the RP id, user presence and "
    "verification. 400 `invalid_challenge` (unknown, used, expired, or another account's); "
    "422 `invalid_passkey_response`, `invalid_passkey_name`; 409 "
    "`passkey_already_registered`. " + _UNAVAILABLE,
)
async def register_finish(
    data: JSONBody[RegisterIn], state: State, principal: Caller
) -> PasskeyOut:
    passkey = await container_of(state).passkeys.register_finish(
        principal.user_id, data.credential, data.name
    )
    return passkey_out(passkey)


@patch(
    "/{passkey_id:str}",
    summary="Rename a passkey",
    description="404 `passkey_not_found`; 422 `invalid_passkey_name`.",
)
async def rename_passkey(
    passkey_id: IdPath, data: JSONBody[RenameIn], state: State, principal: Caller
) -> PasskeyOut:
    found = await container_of(state).passkeys.rename(
        principal.user_id, _passkey_id(passkey_id), data.name
    )
    return passkey_out(found)


@delete(
    "/{passkey_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    summary="Delete a passkey",
    description="It no longer signs in. 404 `passkey_not_found`; 409 `last_sign_in_method` "
    "when it is the account's only way to sign in.",
)
async def delete_passkey(passkey_id: IdPath, state: State, principal: Caller) -> None:
    await container_of(state).passkeys.delete(principal.user_id, _passkey_id(passkey_id))


@post(
    "/begin",
    status_code=200,
    summary="Start signing in with a passkey",
    description="Options for `navigator.credentials.get()`: no username needed (discoverable "
    "credentials), user verification required. The challenge is single-use and valid "
    "SOCIUS_PASSKEY_CHALLENGE_TTL_SECONDS. 429 `too_many_attempts` past "
    "SOCIUS_SIGN_IN_STARTS_MAX_PER_IP_PER_MINUTE. " + _UNAVAILABLE,
)
async def login_begin(state: State, client: Requester) -> OptionsOut:
    return OptionsOut(options=await container_of(state).passkeys.login_begin(client.ip))


@post(
    "/finish",
    status_code=200,
    summary="Sign in with a passkey",
    description="Send the credential `navigator.credentials.get()` answered (its JSON form). "
    "Answers tokens as login does. A passkey is two factors (the device and the PIN or "
    "biometric it checked), so two-factor sign-in (TOTP) is not asked. 400 "
    "`invalid_challenge` (unknown, used or expired: a challenge works once); 401 "
    "`unknown_passkey`, `passkey_counter_regressed` (the authenticator's signature counter "
    "did not grow: a cloned key?); 403 `account_disabled`, `email_not_verified`; 422 "
    "`invalid_passkey_response`. " + _UNAVAILABLE,
)
async def login_finish(
    data: JSONBody[AssertionIn], state: State, client: Requester
) -> AuthOut | MfaRequiredOut:
    return login_out(await container_of(state).passkeys.login_finish(data.credential, client))


me_router = Router(
    path="/v1/me/passkeys",
    route_handlers=with_options(
        [list_passkeys, register_begin, register_finish, rename_passkey, delete_passkey]
    ),
    tags=["identity"],
    security=[{"bearer": []}],
)

auth_router = Router(
    path="/v1/auth/passkey",
    route_handlers=with_options([login_begin, login_finish]),
    tags=["identity"],
)
