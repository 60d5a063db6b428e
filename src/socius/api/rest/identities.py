"""/v1/me/identities: the OpenID Connect identities linked to your account."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Router, delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from socius.api.dependencies import Caller, container_of, require_auth
from socius.api.options import with_options
from socius.api.rest.oidc import AuthorizationOut, ProviderPath, ReturnTo
from socius.domain.federation import PROVIDER_PATTERN

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


class LinkIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    provider: Annotated[str, msgspec.Meta(pattern=PROVIDER_PATTERN, max_length=32)]
    return_to: ReturnTo | None = None


@get("/", summary="Your linked sign-in providers")
async def list_identities(state: State, principal: Caller) -> IdentitiesOut:
    found = await container_of(state).oidc.identities(principal.user_id)
    return IdentitiesOut(
        items=[
            IdentityOut(
                id=i.provider,
                provider=i.provider,
                subject=i.subject,
                email=i.email,
                created_at=i.created_at,
                last_used_at=i.last_used_at,
            )
            for i in found
        ]
    )


@post(
    "/",
    status_code=200,
    summary="Link a provider to your account",
    description="Answers the provider's authorization URL: open it; the callback links the "
    "identity the provider vouches for to this account and redirects to `return_to` with "
    "`#oidc_linked=<provider>`. From then on that identity signs in to this account. One "
    "identity per provider. The callback answers 409 `identity_already_linked` (it is "
    "another account's) or `provider_already_linked`. 404 `unknown_provider`; 422 "
    "`invalid_return_to`.",
)
async def link_identity(
    data: JSONBody[LinkIn], state: State, principal: Caller
) -> AuthorizationOut:
    url = await container_of(state).oidc.start(
        data.provider, data.return_to, link_user_id=principal.user_id
    )
    return AuthorizationOut(authorization_url=url)


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
    route_handlers=with_options([list_identities, link_identity, unlink_identity]),
    tags=["identity"],
    security=[{"bearer": []}],
    guards=[require_auth],
)
