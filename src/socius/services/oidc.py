"""Sign-in with OpenID Connect providers, and linking their identities to accounts.

The flow (docs/identity.md#sign-in-with-openid-connect): ``start`` stores a single-use
state (with the sign-in's nonce, PKCE verifier and where the app wants the browser back)
and answers the provider's authorization URL; the provider sends the browser to the
callback, which spends the state, trades the code for an ID token, verifies it, finds
(or makes, or links) the account, and sends the browser back to the app with a one-time
``oidc_code``; the app trades that for tokens with ``exchange``, which goes through
``AuthService.finish_login`` like every sign-in (a second factor, when the account has
one, is asked there).

Login CSRF (someone else's sign-in finished in your browser or app) is closed by a
binding: a secret the start hands only to the client that started — as a cookie to a
browser (checked by the callback), or in the answer to an app (checked by ``exchange``).
Linking finishes with ``confirm_link`` by the very account that started it.

Which account an identity signs in to:

1. the account it is linked to (``federated_identities``);
2. else, when the provider says the email is verified and an account has that address
   verified too, that account (the identity is linked to it);
3. else, when an account has the address but not verified: refused (409
   ``oidc_account_exists``): whoever holds that account links the provider themselves,
   signed in (``POST /v1/me/identities``) — the address alone proves nothing;
4. else, with a verified email, a new account (no password; its email verified);
5. else (no verified email): refused, 403 ``oidc_email_unverified``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal
from urllib.parse import urlencode

import structlog

from socius.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidToken,
    NotFound,
    Unauthenticated,
)
from socius.domain.federation import (
    AuthChallenge,
    ChallengePurpose,
    FederatedIdentity,
    hash_challenge,
    new_secret,
    unusable_password_hash,
)
from socius.domain.ids import IdGenerator
from socius.domain.users import DmPolicy, User, UserStatus, check_email
from socius.services.auth import AuthService, ClientInfo, IssuedTokens, SignInMethod
from socius.services.events import DomainEvents
from socius.services.mfa import MfaChallenge
from socius.services.oidc_provider import IdClaims, OidcProviderClient
from socius.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from socius.services.sign_in_methods import keep_one_way_in
from socius.services.throttle import Throttle

__all__ = ["OidcService", "Provider", "StartedSignIn", "Via"]

log = structlog.get_logger("socius.oidc")

_NOT_NAME = re.compile(r"[^a-z0-9_]+")
_LOGIN_PURPOSES = (ChallengePurpose.OIDC_LOGIN, ChallengePurpose.OIDC_LINK)


Via = Literal["browser", "app"]


@dataclass(frozen=True, slots=True)
class StartedSignIn:
    authorization_url: str
    binding: str  # for the starting client only: a cookie, or kept by the app


def _binding_hash(binding: str) -> str:
    return hashlib.sha256(b"oidc-binding:" + binding.encode()).hexdigest()


def _binding_matches(presented: str | None, expected: object) -> bool:
    if not presented or not isinstance(expected, str) or len(presented) > 128:
        return False
    return hmac.compare_digest(_binding_hash(presented), expected)


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    display_name: str


def _bad_state() -> InvalidToken:
    return InvalidToken(
        "the sign-in's state is not valid (unknown, used or expired): start again",
        code="invalid_state",
    )


def _username_base(claims: IdClaims) -> str:
    for candidate in (
        claims.preferred_username,
        claims.email.split("@", 1)[0] if claims.email else None,
        claims.name,
    ):
        if candidate:
            name = _NOT_NAME.sub("_", candidate.lower()).strip("_")[:24]
            if len(name) >= 3:
                return name
    return "user"


def _back_to(return_to: str, values: dict[str, str]) -> str:
    """``return_to`` with ``values`` in its fragment (never sent to servers, nor in
    ``Referer``)."""
    return return_to + ("&" if "#" in return_to else "#") + urlencode(values)


class OidcService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        auth: AuthService,
        providers: dict[str, OidcProviderClient],
        *,
        starts: Throttle,
        public_url: str,
        return_urls: list[str],
        state_ttl_seconds: int,
        exchange_ttl_seconds: int,
        events: DomainEvents | None = None,
    ) -> None:
        self._uow = uow
        self._events = events
        self._clock = clock
        self._ids = ids
        self._auth = auth
        self._providers = providers
        self._starts = starts
        self._public_url = public_url.rstrip("/")
        self._return_urls = [self._public_url, *return_urls]
        self._state_ttl = timedelta(seconds=state_ttl_seconds)
        self._exchange_ttl = timedelta(seconds=exchange_ttl_seconds)

    def providers(self) -> list[Provider]:
        return [
            Provider(name, client.config.display_name or name)
            for name, client in sorted(self._providers.items())
        ]

    def _provider(self, name: str) -> OidcProviderClient:
        client = self._providers.get(name)
        if client is None:
            raise NotFound(f"no sign-in provider named {name!r}", code="unknown_provider")
        return client

    def _return_to(self, value: str | None) -> str:
        if not value:
            return self._public_url + "/"
        for allowed in self._return_urls:
            prefix = allowed if allowed.endswith(("/", "?", "#")) else allowed + "/"
            if value == allowed or value.startswith(prefix):
                return value
        raise InvalidInput(
            "return_to must start with SOCIUS_PUBLIC_URL or one of SOCIUS_OIDC_RETURN_URLS",
            code="invalid_return_to",
            details={"field": "return_to"},
        )

    async def _challenge(
        self, purpose: ChallengePurpose, user_id: int | None, data: dict[str, str], ttl: timedelta
    ) -> str:
        secret = new_secret()
        now = self._clock()
        async with self._uow() as uow:
            await uow.challenges.add(
                AuthChallenge(hash_challenge(secret), purpose, user_id, data, now, now + ttl)
            )
            await uow.commit()
        return secret

    # signing in ------------------------------------------------------------------------

    async def start(
        self,
        provider: str,
        return_to: str | None,
        *,
        via: Via,
        ip: str,
        link_user_id: int | None = None,
    ) -> StartedSignIn:
        """The provider's authorization URL for a new sign-in (or, with ``link_user_id``,
        for linking an identity to that account), and the sign-in's binding: a secret
        that proves, later, that whoever finishes the sign-in started it (no login CSRF).
        ``via`` says where it is proved: ``browser`` — the start's browser shows it to the
        callback (a cookie); ``app`` — the app shows it to ``exchange``. 404
        ``unknown_provider``; 422 ``invalid_return_to``; 429 ``too_many_attempts`` (per
        client address); 503 ``oidc_provider_unavailable``."""
        client = self._provider(provider)
        back = self._return_to(return_to)
        await self._starts.check(ip)
        await self._starts.hit(ip)
        nonce = new_secret()
        verifier = secrets.token_urlsafe(48)
        binding = new_secret()
        purpose = (
            ChallengePurpose.OIDC_LOGIN if link_user_id is None else ChallengePurpose.OIDC_LINK
        )
        await client.discovery()  # first: an unreachable provider stores no state
        state = await self._challenge(
            purpose,
            link_user_id,
            {
                "provider": provider,
                "nonce": nonce,
                "verifier": verifier,
                "return_to": back,
                "via": via,
                "binding": _binding_hash(binding),
            },
            self._state_ttl,
        )
        url = await client.authorization_url(state=state, nonce=nonce, verifier=verifier)
        return StartedSignIn(url, binding)

    async def callback(
        self,
        provider: str,
        *,
        code: str | None,
        state: str | None,
        error: str | None = None,
        browser_binding: str | None = None,
    ) -> str:
        """Where the callback sends the browser: the sign-in's ``return_to`` with
        ``oidc_code`` (trade it with ``exchange``) or, when linking, ``oidc_link_code``
        (confirm it with ``confirm_link``). ``browser_binding``: the binding the start
        gave the browser (its cookie). 400 ``invalid_state``, ``oidc_provider_error``,
        ``oidc_code_rejected``, ``invalid_id_token``; 403 ``oidc_email_unverified``; 409
        ``oidc_account_exists``, ``identity_already_linked``, ``provider_already_linked``."""
        client = self._provider(provider)
        if not state or not 20 <= len(state) <= 128:
            raise _bad_state()
        now = self._clock()
        async with self._uow() as uow:
            spent = await uow.challenges.spend(hash_challenge(state), _LOGIN_PURPOSES, now)
            await uow.commit()
        if spent is None or spent.data.get("provider") != provider:
            raise _bad_state()
        if spent.data.get("via") == "browser" and not _binding_matches(
            browser_binding, spent.data.get("binding")
        ):
            raise InvalidToken(
                "this sign-in was started in another browser (or its cookie is gone): start again",
                code="invalid_state",
            )
        if error or not code:
            raise InvalidToken(
                "the provider did not sign you in",
                code="oidc_provider_error",
                details={"provider_error": (error or "no code")[:64]},
            )
        claims = await client.redeem(
            code, verifier=spent.data["verifier"], nonce=spent.data["nonce"], now=now
        )
        back = spent.data["return_to"]
        if spent.purpose is ChallengePurpose.OIDC_LINK:
            pending = await self._challenge(
                ChallengePurpose.OIDC_LINK_CONFIRM,
                spent.user_id,
                {"provider": provider, "subject": claims.subject, "email": claims.email or ""},
                self._exchange_ttl,
            )
            return _back_to(back, {"oidc_link_code": pending})
        user = await self._account_for(provider, claims)
        carried = {"provider": provider}
        if spent.data.get("via") == "app":
            carried["binding"] = spent.data["binding"]
        exchange = await self._challenge(
            ChallengePurpose.OIDC_EXCHANGE, user.id, carried, self._exchange_ttl
        )
        return _back_to(back, {"oidc_code": exchange})

    async def _spend_code(self, code: str, purpose: ChallengePurpose) -> AuthChallenge:
        if 20 <= len(code) <= 128:
            async with self._uow() as uow:
                spent = await uow.challenges.spend(hash_challenge(code), (purpose,), self._clock())
                await uow.commit()
            if spent is not None and spent.user_id is not None:
                return spent
        raise InvalidToken("the code is not valid (unknown, used or expired)", code="invalid_code")

    async def exchange(
        self, code: str, client: ClientInfo, *, binding: str | None = None
    ) -> IssuedTokens | MfaChallenge:
        """Trade the callback's one-time code for tokens (or the second factor's
        challenge). A sign-in an app started needs the ``binding`` its start answered.
        400 ``invalid_code``, ``invalid_binding``; then as every sign-in
        (``finish_login``)."""
        spent = await self._spend_code(code, ChallengePurpose.OIDC_EXCHANGE)
        expected = spent.data.get("binding")
        if expected is not None and not _binding_matches(binding, expected):
            raise InvalidToken(
                "this sign-in was started by another client: send the binding its start answered",
                code="invalid_binding",
            )
        async with self._uow(write=False) as uow:
            user = await uow.users.get(spent.user_id or 0)
        if user is None:
            raise Unauthenticated("the account no longer exists", code="account_gone")
        return await self._auth.finish_login(user, client, method=SignInMethod.OIDC)

    async def _account_for(self, provider: str, claims: IdClaims) -> User:
        now = self._clock()
        async with self._uow() as uow:
            linked = await uow.identities.get(provider, claims.subject)
            if linked is not None:
                user = await uow.users.get(linked.user_id)
                if user is None:  # pragma: no cover - the row goes with the account
                    raise Unauthenticated("the account no longer exists", code="account_gone")
                await uow.identities.touch(provider, claims.subject, now, claims.email)
                await uow.commit()
                return user
            if claims.email is None or not claims.email_verified:
                raise _email_unverified()
            address = check_email(claims.email.strip().lower())
            owner = await uow.users.get_by_login(address)
            if owner is not None:
                if not owner.email_verified:
                    raise Conflict(
                        "an account has this email address but has not verified it: sign in "
                        "to it and link the provider from its settings",
                        code="oidc_account_exists",
                    )
                await self._add_identity(uow, owner, provider, claims.subject, claims.email)
                await uow.commit()
                log.info(
                    "oidc identity linked by verified email", user_id=owner.id, provider=provider
                )
                return owner
            user = await self._new_account(uow, claims, address)
            await self._add_identity(uow, user, provider, claims.subject, claims.email)
            await uow.commit()
        log.info("account made by oidc sign-in", user_id=user.id, provider=provider)
        return user

    async def _new_account(self, uow: UnitOfWork, claims: IdClaims, address: str) -> User:
        base = _username_base(claims)
        now = self._clock()
        for attempt in range(6):
            name = base if attempt == 0 else f"{base[:24]}_{secrets.randbelow(10**6):06d}"
            if await uow.users.get_by_login(name) is not None:
                continue
            user = User(
                id=self._ids.next_id(),
                username=name,
                email=address,
                display_name=(claims.name or name)[:64].strip() or name,
                bio="",
                avatar_url=None,
                is_private=False,
                dm_policy=DmPolicy.EVERYONE,
                password_hash=unusable_password_hash(),
                status=UserStatus.ACTIVE,
                is_admin=False,
                created_at=now,
                updated_at=now,
                settings={},
                email_verified_at=now,
            )
            await uow.users.add(user)
            if self._events is not None:  # the stream's account.created, as a registration's
                await self._events.append(
                    uow, "account.created", {"user_id": user.id, "via": "oidc"}
                )
            return user
        raise Conflict("no free username could be found; try again", code="username_taken")

    async def _add_identity(
        self, uow: UnitOfWork, user: User, provider: str, subject: str, email: str | None
    ) -> None:
        for existing in await uow.identities.for_user(user.id):
            if existing.provider == provider:
                raise Conflict(
                    f"the account is linked to another {provider} identity already",
                    code="provider_already_linked",
                )
        now = self._clock()
        await uow.identities.add(FederatedIdentity(provider, subject, user.id, email, now, now))

    # linking ---------------------------------------------------------------------------

    async def confirm_link(self, user_id: int, code: str) -> FederatedIdentity:
        """Link the identity the callback's ``oidc_link_code`` holds to the caller, who
        must be the account that started linking (else 400 ``invalid_code``: a link a
        stranger started never lands in this account, nor this one's in theirs). 409
        ``identity_already_linked``, ``provider_already_linked``."""
        spent = await self._spend_code(code, ChallengePurpose.OIDC_LINK_CONFIRM)
        if spent.user_id != user_id:
            raise InvalidToken(
                "the code is not valid (unknown, used or expired)", code="invalid_code"
            )
        provider, subject = spent.data["provider"], spent.data["subject"]
        email = spent.data.get("email") or None
        async with self._uow() as uow:
            user = await uow.users.get(user_id)
            if user is None or not user.is_active:
                raise Unauthenticated("the account no longer exists", code="account_gone")
            linked = await uow.identities.get(provider, subject)
            if linked is not None:
                if linked.user_id == user_id:
                    return linked
                raise Conflict(
                    "this identity is linked to another account", code="identity_already_linked"
                )
            await self._add_identity(uow, user, provider, subject, email)
            stored = await uow.identities.get(provider, subject)
            await uow.commit()
        log.info("oidc identity linked", user_id=user_id, provider=provider)
        assert stored is not None
        return stored

    async def identities(self, user_id: int) -> list[FederatedIdentity]:
        async with self._uow(write=False) as uow:
            return await uow.identities.for_user(user_id)

    async def unlink(self, user_id: int, provider: str) -> None:
        """Unlink the account's identity at ``provider``. 404 ``identity_not_found``; 409
        ``last_sign_in_method``."""
        async with self._uow() as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise Unauthenticated("the account no longer exists", code="account_gone")
            found = [i for i in await uow.identities.for_user(user_id) if i.provider == provider]
            if not found:
                raise NotFound("no identity at that provider is linked", code="identity_not_found")
            await keep_one_way_in(uow, user)
            await uow.identities.delete(user_id, provider, found[0].subject)
            await uow.commit()
        log.info("oidc identity unlinked", user_id=user_id, provider=provider)


def _email_unverified() -> Forbidden:
    return Forbidden(
        "the provider did not vouch for a verified email address, which a new account needs",
        code="oidc_email_unverified",
    )
