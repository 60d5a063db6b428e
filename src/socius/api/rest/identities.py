"""/v1/me/identities: the OpenID Connect identities linked to your account."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Router, delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from socius.api.dependencies import Caller, Requester, container_of
from socius.api.options import with_options
from socius.api.rest.oidc import AuthorizationOut, ProviderPath, ReturnTo
from socius.domain.federation import PROVIDER_PATTERN, FederatedIdentity

__all__ = ["router"]


class IdentityOut(msgspec.Struct, kw_only=True):
    id: str  # the provider's name: an account has at most one identity per provider
    provider: str
    subject: str  # the provider's id for you
    email: str | None  # as the provider last said
    created_at: datetime
    last_used_at: datetime | None


class IdentitiesOut(msgspec.Struct, kw_only=True):
    items: list[IdentityOut]


class ConfirmIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


def identity_out(i: FederatedIdentity) -> IdentityOut:
    return IdentityOut(
        id=i.provider,
        provider=i.provider,
        subject=i.subject,
        email=i.email,
        created_at=i.created_at,
        last_used_at=i.last_used_at,
    )


class LinkIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    provider: Annotated[str, msgspec.Meta(pattern=PROVIDER_PATTERN, max_length=32)]
    return_to: ReturnTo | None = None


@get("/", summary="Your linked sign-in providers")
async def list_identities(state: State, principal: Caller) -> IdentitiesOut:
    found = await container_of(state).oidc.identities(principal.user_id)
    return IdentitiesOut(items=[identity_out(i) for i in found])


@post(
    "/",
    status_code=200,
    summary="Link a provider to your account",
    description="Answers the provider's authorization URL: open it; once signed in there, "
    "the callback redirects to `return_to` with `#oidc_link_code=<code>`, which this account "
    "confirms with POST /v1/me/identities/confirm (within SOCIUS_OIDC_EXCHANGE_TTL_SECONDS). "
    "From then on that identity signs in to this account. One identity per provider. 404 "
    "`unknown_provider`; 422 `invalid_return_to`; 503 `oidc_provider_unavailable`.",
)
async def link_identity(
    data: JSONBody[LinkIn], state: State, principal: Caller, client: Requester
) -> AuthorizationOut:
    started = await container_of(state).oidc.start(
        data.provider, data.return_to, via="app", ip=client.ip, link_user_id=principal.user_id
    )
    return AuthorizationOut(authorization_url=started.authorization_url)


@post(
    "/confirm",
    status_code=201,
    summary="Finish linking a provider",
    description="The `oidc_link_code` the callback redirected with, once, by the account that "
    "started linking (400 `invalid_code` otherwise, expired or used). 409 "
    "`identity_already_linked` (the identity signs in to another account), "
    "`provider_already_linked` (this account has an identity at that provider).",
)
async def confirm_link(data: JSONBody[ConfirmIn], state: State, principal: Caller) -> IdentityOut:
    linked = await container_of(state).oidc.confirm_link(principal.user_id, data.code)
    return identity_out(linked)


@delete(
    "/{identity_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    summary="Unlink a provider",
    description="The id is the provider's name (as listed). 404 `identity_not_found`; 409 "
    "`last_sign_in_method` when it is the "
    "account's only way to sign in (no password, no other identity, no passkey).",
)
async def unlink_identity(identity_id: ProviderPath, state: State, principal: Caller) -> None:
    await container_of(state).oidc.unlink(principal.user_id, identity_id)


router = Router(
    path="/v1/me/identities",
    route_handlers=with_options([list_identities, link_identity, confirm_link, unlink_identity]),
    tags=["identity"],
    security=[{"bearer": []}],
)
