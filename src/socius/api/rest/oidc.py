"""/v1/auth/oidc: sign in with an OpenID Connect provider."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get, post
from litestar.datastructures import Cookie, State
from litestar.params import JSONBody, Parameter, QueryParameter
from litestar.response import Redirect

from socius.api.dependencies import Requester, container_of
from socius.api.options import with_options
from socius.api.rest.views import AuthOut, MfaRequiredOut, login_out
from socius.domain.federation import PROVIDER_PATTERN

__all__ = ["AuthorizationOut", "ProviderPath", "ReturnTo", "binding_cookie", "router"]

ProviderPath = Annotated[
    str,
    Parameter(
        description="A provider's name, as GET /v1/auth/oidc lists them (404 otherwise).",
        max_length=32,
        schema_extra={"pattern": PROVIDER_PATTERN},
    ),
]
ReturnTo = Annotated[
    str,
    msgspec.Meta(
        max_length=2048,
        description="Where the callback sends the browser back: SOCIUS_PUBLIC_URL or a URL "
        "under one of SOCIUS_OIDC_RETURN_URLS (a native app's own scheme, say). Default: "
        "SOCIUS_PUBLIC_URL/.",
    ),
]
_Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class ProviderOut(msgspec.Struct, kw_only=True):
    name: str
    display_name: str
    start_url: str  # GET it in a browser: it redirects to the provider


class ProvidersOut(msgspec.Struct, kw_only=True):
    items: list[ProviderOut]


class StartIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    return_to: ReturnTo | None = None


class AuthorizationOut(msgspec.Struct, kw_only=True):
    authorization_url: str  # open it in a browser (or an in-app browser tab)
    # Keep it: POST /v1/auth/oidc/exchange needs it (it proves you started the sign-in).
    # None when linking (the confirmation is the signed-in account's own).
    binding: str | None = None


class ExchangeIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    code: _Secret
    binding: _Secret | None = None  # from POST .../start (an app's sign-in)


def binding_cookie(provider: str) -> str:
    return f"socius_oidc_{provider.replace('-', '_')}"


@get(
    "/",
    summary="The sign-in providers",
    description="The OpenID Connect providers this server is configured with "
    '(SOCIUS_OIDC_PROVIDERS): show a "Sign in with <display_name>" button for each.',
)
async def list_providers(state: State) -> ProvidersOut:
    return ProvidersOut(
        items=[
            ProviderOut(
                name=p.name,
                display_name=p.display_name,
                start_url=f"/v1/auth/oidc/{p.name}/start",
            )
            for p in container_of(state).oidc.providers()
        ]
    )


_START = (
    "A single-use state (valid SOCIUS_OIDC_STATE_TTL_SECONDS), a nonce and a PKCE verifier "
    "are kept for the sign-in. 404 `unknown_provider`; 422 `invalid_return_to`; 429 "
    "`too_many_attempts` past SOCIUS_SIGN_IN_STARTS_MAX_PER_IP_PER_MINUTE; 503 "
    "`oidc_provider_unavailable` when the provider's discovery cannot be read."
)


@get(
    "/{provider:str}/start",
    status_code=302,
    summary="Start signing in with a provider (browser)",
    description="Redirects the browser to the provider's authorization page (authorization "
    "code flow with PKCE, state and nonce), setting an HttpOnly cookie the callback checks "
    "(only the browser that started a sign-in can finish it). " + _START,
)
async def start_redirect(
    provider: ProviderPath,
    state: State,
    client: Requester,
    return_to: Annotated[
        str | None, QueryParameter(max_length=2048, description="as in the POST form")
    ] = None,
) -> Redirect:
    container = container_of(state)
    started = await container.oidc.start(provider, return_to, via="browser", ip=client.ip)
    cookie = Cookie(
        key=binding_cookie(provider),
        value=started.binding,
        path=f"/v1/auth/oidc/{provider}/callback",
        max_age=container.settings.oidc_state_ttl_seconds,
        httponly=True,
        secure=container.settings.effective_public_url.startswith("https://"),
        samesite="lax",
    )
    return Redirect(started.authorization_url, status_code=302, cookies=[cookie])


@post(
    "/{provider:str}/start",
    status_code=200,
    summary="Start signing in with a provider (apps)",
    description="Answers the provider's authorization URL for the app to open in a browser, "
    "and a `binding` the app keeps and sends with the exchange (so that only the client that "
    "started a sign-in can finish it: 400 `invalid_binding`). " + _START,
)
async def start_json(
    provider: ProviderPath, data: JSONBody[StartIn], state: State, client: Requester
) -> AuthorizationOut:
    started = await container_of(state).oidc.start(
        provider, data.return_to, via="app", ip=client.ip
    )
    return AuthorizationOut(authorization_url=started.authorization_url, binding=started.binding)


@get(
    "/{provider:str}/callback",
    status_code=303,
    summary="The provider sends the browser back here",
    description="Register `<SOCIUS_PUBLIC_URL>/v1/auth/oidc/<provider>/callback` as the "
    "redirect URI at the provider. Spends the state, trades the code for an ID token at the "
    "provider and verifies it (signature by the provider's JWKS, iss, aud, exp, nonce), "
    "then redirects to the sign-in's `return_to` with `#oidc_code=<code>` (trade it with "
    "POST /v1/auth/oidc/exchange within SOCIUS_OIDC_EXCHANGE_TTL_SECONDS) or, when linking "
    "(POST /v1/me/identities), `#oidc_link_code=<code>` (POST /v1/me/identities/confirm). "
    "Errors answer the error envelope: 400 `invalid_state` (unknown, used, expired, another "
    "provider's, or a browser sign-in without its start's cookie: no CSRF), "
    "`oidc_provider_error` (the provider answered an error, e.g. the user declined), "
    "`oidc_code_rejected` (the provider refused the code), `invalid_id_token` (with "
    "`details.reason`: signature, audience, issuer, expired, nonce, ...); 403 "
    "`oidc_email_unverified` (a new account needs an email the provider verified); 409 "
    "`oidc_account_exists` (an account has the address unverified: sign in and link), "
    "`identity_already_linked`, `provider_already_linked`; 503 `oidc_provider_unavailable`.",
)
async def callback(
    provider: ProviderPath,
    state: State,
    request: Request[Any, Any, Any],
    code: Annotated[str | None, QueryParameter(max_length=2048)] = None,
    oidc_state: Annotated[str | None, QueryParameter(name="state", max_length=256)] = None,
    error: Annotated[str | None, QueryParameter(max_length=256)] = None,
) -> Redirect:
    name = binding_cookie(provider)
    url = await container_of(state).oidc.callback(
        provider,
        code=code,
        state=oidc_state,
        error=error,
        browser_binding=request.cookies.get(name),
    )
    spent = Cookie(key=name, value="", path=f"/v1/auth/oidc/{provider}/callback", max_age=0)
    return Redirect(url, status_code=303, cookies=[spent])


@post(
    "/exchange",
    status_code=200,
    summary="Trade the callback's one-time code for tokens",
    description="The `oidc_code` from the callback's redirect, once, within "
    "SOCIUS_OIDC_EXCHANGE_TTL_SECONDS: 400 `invalid_code` otherwise; with the `binding` "
    "POST .../start answered when the sign-in was an app's (400 `invalid_binding`). "
    "Answers as login does: "
    "tokens, or `{mfa_required: true, mfa_token, expires_in}` when the account has "
    "two-factor sign-in on (finish with POST /v1/auth/login/mfa); 403 `account_disabled`, "
    "`email_not_verified`.",
)
async def exchange(
    data: JSONBody[ExchangeIn], state: State, client: Requester
) -> AuthOut | MfaRequiredOut:
    result = await container_of(state).oidc.exchange(data.code, client, binding=data.binding)
    return login_out(result)


router = Router(
    path="/v1/auth/oidc",
    route_handlers=with_options([list_providers, start_redirect, start_json, callback, exchange]),
    tags=["identity"],
)
