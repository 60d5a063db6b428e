"""The asynchronous client. `_sync.py` is generated from this file by scripts/unasync."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any, Self, TypeVar

import httpx
import msgspec

from socius.client._async_admin import AsyncAdmin
from socius.client._codec import decode, encode
from socius.client._errors import (
    ApiError,
    EmailVerificationRequired,
    GraphQLError,
    MfaRequired,
    parse_retry_after,
)
from socius.client._http import (
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    UNSET,
    USER_AGENT,
    Unset,
    clean_params,
    segment,
)
from socius.client._models import (
    Attachment,
    AttachmentLink,
    AuthResult,
    Conversation,
    LinkedIdentity,
    ListedUser,
    Member,
    Message,
    MfaStatus,
    NotificationPage,
    NotificationSettings,
    OidcProvider,
    Page,
    PasskeyInfo,
    Presence,
    PrivateUser,
    PublicUser,
    PushDevice,
    Relationship,
    Report,
    SearchHit,
    SessionInfo,
    Suggestion,
    SyncPage,
    ThreadPage,
    ThreadRead,
    TotpEnrollment,
)

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """A socius API client that keeps the caller's current tokens.

    `http`: an existing httpx.AsyncClient (for example Litestar's AsyncTestClient) to send
    through; it is used as it is (its base_url, if it has one, wins over `base_url`) and is
    never closed by this client. Without it the client creates, and closes, its own.
    """

    access_token: str | None
    refresh_token: str | None
    oidc_binding: str | None  # of the OpenID Connect sign-in this client started last

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        http: httpx.AsyncClient | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.oidc_binding = None
        self._base_url = base_url
        self._timeout = timeout
        self._user_agent = user_agent
        self._owns_http = http is None
        if http is None:
            http = httpx.AsyncClient(
                base_url=base_url,
                timeout=timeout,
                headers={"User-Agent": user_agent},
            )
            self._prefix = ""
        else:
            # A client without a base_url needs absolute URLs.
            self._prefix = "" if str(http.base_url) else base_url.rstrip("/")
        self._http = http

    @property
    def http(self) -> httpx.AsyncClient:
        """The underlying httpx client."""
        return self._http

    @property
    def admin(self) -> AsyncAdmin:
        """The administrator's calls (`/v1/admin`), with this client's tokens."""
        return AsyncAdmin(self)

    def with_token(self, access_token: str | None) -> AsyncClient:
        """Another client acting as `access_token`, sending through the same httpx client."""
        return AsyncClient(
            self._base_url,
            http=self._http,
            access_token=access_token,
            timeout=self._timeout,
            user_agent=self._user_agent,
        )

    async def aclose(self) -> None:
        """Close the httpx client if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- low level ---------------------------------------------------------------------------

    async def raw(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
        content: bytes | AsyncIterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request and return the response whatever its status.

        `json` is encoded with msgspec (None: no body); `content` sends bytes as they are
        (or as an iterable yields them: a streamed body).
        Parameters set to None are left out. The Bearer header is sent when `auth` is true
        and the client has an access token; `headers` are added last.
        """
        request_headers: dict[str, str] = {}
        if not self._owns_http:
            request_headers["User-Agent"] = self._user_agent
        if auth and self.access_token is not None:
            request_headers["Authorization"] = f"Bearer {self.access_token}"
        if json is not None and content is None:
            content = encode(json)
            request_headers["Content-Type"] = "application/json"
        if headers is not None:
            request_headers.update(headers)
        return await self._http.request(
            method,
            self._prefix + path,
            content=content,
            params=clean_params(params),
            headers=request_headers,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
        content: bytes | AsyncIterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Like `raw`, but raise ApiError when the status is 400 or more."""
        response = await self.raw(
            method,
            path,
            json=json,
            params=params,
            auth=auth,
            content=content,
            headers=headers,
        )
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response

    async def _get(
        self,
        tp: type[T],
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
    ) -> T:
        response = await self.request("GET", path, params=params, auth=auth)
        return decode(tp, response.content)

    async def _authenticate(self, path: str, body: dict[str, Any]) -> AuthResult:
        response = await self.request("POST", path, json=body, auth=False)
        answer = decode(dict[str, Any], response.content)
        if answer.get("mfa_required") is True:
            raise MfaRequired(str(answer["mfa_token"]), int(answer["expires_in"]))
        if answer.get("email_verification_required") is True:
            raise EmailVerificationRequired(msgspec.convert(answer["user"], PrivateUser))
        result = decode(AuthResult, response.content)
        self.access_token = result.access_token
        self.refresh_token = result.refresh_token
        return result

    async def graphql(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        operation_name: str | None = None,
    ) -> dict[str, Any]:
        """Run a GraphQL query or mutation at /graphql; the answer's `data`.

        Raises GraphQLError (an ApiError with the first error's code, and every error in
        `errors`) when the answer has errors, and ApiError for an answer that is not
        GraphQL at all.
        """
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = dict(variables)
        if operation_name is not None:
            body["operationName"] = operation_name
        response = await self.raw("POST", "/graphql", json=body)
        try:
            answer = decode(dict[str, Any], response.content)
        except ValueError:
            raise ApiError.from_response(response) from None
        errors = answer.get("errors")
        data = answer.get("data")
        if errors:
            raise GraphQLError(
                response.status_code,
                list(errors),
                data if isinstance(data, dict) else None,
                parse_retry_after(response.headers.get("retry-after")),
            )
        if response.status_code >= 400 or not isinstance(data, dict):
            raise ApiError.from_response(response)
        return data

    # -- auth --------------------------------------------------------------------------------

    async def register(
        self,
        username: str,
        password: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
    ) -> AuthResult:
        """Create an account and keep its tokens (with an email, a verification link is
        mailed to it). Raises EmailVerificationRequired when the server signs accounts in
        only once their email is verified."""
        body: dict[str, Any] = {"username": username, "password": password}
        if email is not None:
            body["email"] = email
        if display_name is not None:
            body["display_name"] = display_name
        return await self._authenticate("/v1/auth/register", body)

    async def login(self, username: str, password: str) -> AuthResult:
        """Log in with a username or email and keep the new tokens.

        Raises MfaRequired when the account has a second factor (finish with `login_mfa`),
        and ApiError 403 `email_not_verified` when the server requires a verified email.
        """
        return await self._authenticate(
            "/v1/auth/login",
            {"username": username, "password": password},
        )

    async def login_mfa(
        self,
        mfa_token: str,
        *,
        code: str | None = None,
        recovery_code: str | None = None,
    ) -> AuthResult:
        """Finish a login that raised MfaRequired, with the authenticator's current code or
        one of the recovery codes (exactly one), and keep the new tokens."""
        body: dict[str, Any] = {"mfa_token": mfa_token}
        if code is not None:
            body["code"] = code
        if recovery_code is not None:
            body["recovery_code"] = recovery_code
        return await self._authenticate("/v1/auth/login/mfa", body)

    async def refresh(self, refresh_token: str | None = None) -> AuthResult:
        """Spend a refresh token (the stored one by default) and keep the new pair."""
        token = refresh_token if refresh_token is not None else self.refresh_token
        if token is None:
            raise ValueError("no refresh token: log in first or pass one")
        return await self._authenticate("/v1/auth/refresh", {"refresh_token": token})

    async def logout(self) -> None:
        """End this session; the stored tokens are forgotten."""
        await self.request("POST", "/v1/auth/logout")
        self.access_token = None
        self.refresh_token = None

    # -- email links -------------------------------------------------------------------------

    async def request_email_verification(self) -> None:
        """Mail a verification link to your address (the link carries the token)."""
        await self.request("POST", "/v1/auth/verify-email/request")

    async def verify_email(self, token: str) -> None:
        """Verify an address with the token from its link (no session needed)."""
        await self.request("POST", "/v1/auth/verify-email", json={"token": token}, auth=False)

    async def request_password_reset(self, email: str) -> None:
        """Ask for a reset link; the answer is the same whether or not the address exists."""
        await self.request(
            "POST", "/v1/auth/password-reset/request", json={"email": email}, auth=False
        )

    async def reset_password(self, token: str, password: str) -> None:
        """Set a new password with the token from a reset link; every session ends."""
        await self.request(
            "POST",
            "/v1/auth/password-reset",
            json={"token": token, "password": password},
            auth=False,
        )

    # -- me ----------------------------------------------------------------------------------

    async def me(self) -> PrivateUser:
        return await self._get(PrivateUser, "/v1/me")

    async def update_me(self, **fields: Any) -> PrivateUser:
        """PATCH exactly the given fields (the server answers 422 to unknown ones)."""
        response = await self.request("PATCH", "/v1/me", json=fields)
        return decode(PrivateUser, response.content)

    async def change_password(self, current_password: str, new_password: str) -> None:
        """Change the password; the server revokes every other session."""
        await self.request(
            "POST",
            "/v1/me/password",
            json={"current_password": current_password, "new_password": new_password},
        )

    async def change_email(self, email: str, password: str) -> PrivateUser:
        """A new address, unverified until the link mailed to it is followed."""
        response = await self.request(
            "POST", "/v1/me/email", json={"email": email, "password": password}
        )
        return decode(PrivateUser, response.content)

    # -- second factor -----------------------------------------------------------------------

    async def mfa_status(self) -> MfaStatus:
        return await self._get(MfaStatus, "/v1/me/mfa")

    async def enroll_totp(self) -> TotpEnrollment:
        """Start TOTP enrolment: a secret for an authenticator app, pending until confirmed."""
        response = await self.request("POST", "/v1/me/mfa/totp")
        return decode(TotpEnrollment, response.content)

    async def confirm_totp(self, code: str) -> list[str]:
        """Turn TOTP on with a first code; the ten recovery codes, shown this once."""
        response = await self.request("POST", "/v1/me/mfa/totp/confirm", json={"code": code})
        return decode(dict[str, list[str]], response.content)["recovery_codes"]

    async def disable_totp(
        self,
        password: str,
        *,
        code: str | None = None,
        recovery_code: str | None = None,
    ) -> None:
        """Turn TOTP off: the password and a current code or a recovery code (exactly one)."""
        body: dict[str, Any] = {"password": password}
        if code is not None:
            body["code"] = code
        if recovery_code is not None:
            body["recovery_code"] = recovery_code
        await self.request("DELETE", "/v1/me/mfa/totp", json=body)

    # -- OpenID Connect providers -----------------------------------------------------------

    async def oidc_providers(self) -> list[OidcProvider]:
        """The providers the server offers ("Sign in with ...")."""
        page = await self._get(Page[OidcProvider], "/v1/auth/oidc", auth=False)
        return page.items

    async def oidc_authorization_url(self, provider: str, *, return_to: str | None = None) -> str:
        """Start signing in with ``provider``: the URL to open in a browser. Once signed
        in there, the browser comes back to ``return_to`` with ``#oidc_code=...``: pass it
        to `oidc_exchange` (this client keeps the sign-in's binding for it)."""
        body = {} if return_to is None else {"return_to": return_to}
        response = await self.request(
            "POST", f"/v1/auth/oidc/{segment(provider)}/start", json=body, auth=False
        )
        answer = decode(dict[str, Any], response.content)
        self.oidc_binding = answer.get("binding")
        return str(answer["authorization_url"])

    async def oidc_exchange(self, code: str, *, binding: str | None = None) -> AuthResult:
        """Trade the callback's one-time ``oidc_code`` for tokens (kept by this client),
        with the binding of the sign-in this client started (or ``binding``, for one
        started elsewhere by `oidc_authorization_url`). Raises MfaRequired when the account
        has a second factor (finish with `login_mfa`)."""
        body: dict[str, Any] = {"code": code}
        if (binding or self.oidc_binding) is not None:
            body["binding"] = binding or self.oidc_binding
        return await self._authenticate("/v1/auth/oidc/exchange", body)

    async def identities(self) -> list[LinkedIdentity]:
        page = await self._get(Page[LinkedIdentity], "/v1/me/identities")
        return page.items

    async def link_identity(self, provider: str, *, return_to: str | None = None) -> str:
        """Start linking ``provider`` to this account: the URL to open in a browser. It
        comes back to ``return_to`` with ``#oidc_link_code=...``: pass it to
        `confirm_identity_link`."""
        body: dict[str, Any] = {"provider": provider}
        if return_to is not None:
            body["return_to"] = return_to
        response = await self.request("POST", "/v1/me/identities", json=body)
        return str(decode(dict[str, Any], response.content)["authorization_url"])

    async def confirm_identity_link(self, code: str) -> LinkedIdentity:
        """Finish linking with the callback's ``oidc_link_code``."""
        response = await self.request("POST", "/v1/me/identities/confirm", json={"code": code})
        return decode(LinkedIdentity, response.content)

    async def unlink_identity(self, provider: str) -> None:
        await self.request("DELETE", f"/v1/me/identities/{segment(provider)}")

    # -- passkeys ------------------------------------------------------------------------------

    async def passkeys(self) -> list[PasskeyInfo]:
        page = await self._get(Page[PasskeyInfo], "/v1/me/passkeys")
        return page.items

    async def begin_passkey_registration(self) -> dict[str, Any]:
        """Options for ``navigator.credentials.create()`` (JSON form)."""
        response = await self.request("POST", "/v1/me/passkeys/begin")
        return decode(dict[str, dict[str, Any]], response.content)["options"]

    async def finish_passkey_registration(
        self, credential: dict[str, Any], *, name: str | None = None
    ) -> PasskeyInfo:
        """Register the credential ``navigator.credentials.create()`` answered."""
        body: dict[str, Any] = {"credential": credential}
        if name is not None:
            body["name"] = name
        response = await self.request("POST", "/v1/me/passkeys/finish", json=body)
        return decode(PasskeyInfo, response.content)

    async def rename_passkey(self, passkey_id: str, name: str) -> PasskeyInfo:
        response = await self.request(
            "PATCH", f"/v1/me/passkeys/{segment(passkey_id)}", json={"name": name}
        )
        return decode(PasskeyInfo, response.content)

    async def delete_passkey(self, passkey_id: str) -> None:
        await self.request("DELETE", f"/v1/me/passkeys/{segment(passkey_id)}")

    async def begin_passkey_login(self) -> dict[str, Any]:
        """Options for ``navigator.credentials.get()`` (JSON form): no username needed."""
        response = await self.request("POST", "/v1/auth/passkey/begin", auth=False)
        return decode(dict[str, dict[str, Any]], response.content)["options"]

    async def finish_passkey_login(self, credential: dict[str, Any]) -> AuthResult:
        """Sign in with the credential ``navigator.credentials.get()`` answered; tokens
        are kept by this client. A passkey needs no second factor."""
        return await self._authenticate("/v1/auth/passkey/finish", {"credential": credential})

    async def sessions(self) -> list[SessionInfo]:
        page = await self._get(Page[SessionInfo], "/v1/me/sessions")
        return page.items

    async def revoke_session(self, session_id: str) -> None:
        await self.request("DELETE", f"/v1/me/sessions/{segment(session_id)}")

    async def revoke_other_sessions(self) -> None:
        """Revoke every session but the current one."""
        await self.request("DELETE", "/v1/me/sessions")

    async def delete_me(self, password: str) -> None:
        """Erase the account and everything it owns; the stored tokens are forgotten."""
        await self.request("DELETE", "/v1/me", json={"password": password})
        self.access_token = None
        self.refresh_token = None

    async def export(self) -> dict[str, Any]:
        """A JSON archive of everything stored about the caller."""
        return await self._get(dict[str, Any], "/v1/me/export")

    # -- users -------------------------------------------------------------------------------

    async def get_user(self, user_id: str) -> PublicUser:
        return await self._get(PublicUser, f"/v1/users/{segment(user_id)}")

    async def get_user_by_username(self, username: str) -> PublicUser:
        return await self._get(PublicUser, f"/v1/users/by-username/{segment(username)}")

    async def search_users(
        self,
        q: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[PublicUser]:
        """Users whose username or display name matches `q`, best first."""
        return await self._get(
            Page[PublicUser],
            "/v1/users/search",
            params={"q": q, "limit": limit, "cursor": cursor},
        )

    async def iter_search_users(
        self,
        q: str,
        *,
        limit: int | None = None,
    ) -> AsyncIterator[PublicUser]:
        """Every match of `search_users`, following the cursors page by page."""
        cursor: str | None = None
        while True:
            page = await self.search_users(q, limit=limit, cursor=cursor)
            for user in page.items:
                yield user
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- graph ---------------------------------------------------------------------------------

    async def _relate(self, method: str, path: str, body: Any = None) -> Relationship:
        response = await self.request(method, path, json=body)
        return decode(Relationship, response.content)

    async def _list(
        self, path: str, *, limit: int | None, cursor: str | None, **params: Any
    ) -> Page[ListedUser]:
        return await self._get(
            Page[ListedUser], path, params={"limit": limit, "cursor": cursor, **params}
        )

    async def send_friend_request(self, user_id: str) -> Relationship:
        """Ask to be friends; if they already asked you, you become friends."""
        return await self._relate("POST", "/v1/friends/requests", {"user_id": user_id})

    async def accept_friend_request(self, user_id: str) -> Relationship:
        return await self._relate("POST", f"/v1/friends/requests/{segment(user_id)}/accept")

    async def decline_friend_request(self, user_id: str) -> Relationship:
        return await self._relate("POST", f"/v1/friends/requests/{segment(user_id)}/decline")

    async def cancel_friend_request(self, user_id: str) -> Relationship:
        return await self._relate("DELETE", f"/v1/friends/requests/{segment(user_id)}")

    async def friend_requests(
        self,
        direction: str = "incoming",
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[ListedUser]:
        return await self._list(
            "/v1/friends/requests", limit=limit, cursor=cursor, direction=direction
        )

    async def friends(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ListedUser]:
        """Your friends, newest first."""
        return await self._list("/v1/friends", limit=limit, cursor=cursor)

    async def unfriend(self, user_id: str) -> Relationship:
        return await self._relate("DELETE", f"/v1/friends/{segment(user_id)}")

    async def user_friends(
        self, user_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ListedUser]:
        return await self._list(f"/v1/users/{segment(user_id)}/friends", limit=limit, cursor=cursor)

    async def followers(
        self, user_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ListedUser]:
        return await self._list(
            f"/v1/users/{segment(user_id)}/followers", limit=limit, cursor=cursor
        )

    async def following(
        self, user_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ListedUser]:
        return await self._list(
            f"/v1/users/{segment(user_id)}/following", limit=limit, cursor=cursor
        )

    async def mutual_friends(
        self, user_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ListedUser]:
        return await self._list(
            f"/v1/users/{segment(user_id)}/mutual-friends", limit=limit, cursor=cursor
        )

    async def follow(self, user_id: str) -> Relationship:
        """Follow; a follow request when they are private."""
        return await self._relate("POST", f"/v1/users/{segment(user_id)}/follow")

    async def unfollow(self, user_id: str) -> Relationship:
        return await self._relate("DELETE", f"/v1/users/{segment(user_id)}/follow")

    async def follow_requests(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ListedUser]:
        return await self._list("/v1/follow-requests", limit=limit, cursor=cursor)

    async def approve_follow_request(self, user_id: str) -> Relationship:
        return await self._relate("POST", f"/v1/follow-requests/{segment(user_id)}/approve")

    async def reject_follow_request(self, user_id: str) -> Relationship:
        return await self._relate("POST", f"/v1/follow-requests/{segment(user_id)}/reject")

    async def block(self, user_id: str) -> Relationship:
        return await self._relate("POST", f"/v1/users/{segment(user_id)}/block")

    async def unblock(self, user_id: str) -> Relationship:
        return await self._relate("DELETE", f"/v1/users/{segment(user_id)}/block")

    async def blocks(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ListedUser]:
        return await self._list("/v1/blocks", limit=limit, cursor=cursor)

    async def mute(self, user_id: str) -> Relationship:
        return await self._relate("POST", f"/v1/users/{segment(user_id)}/mute")

    async def unmute(self, user_id: str) -> Relationship:
        return await self._relate("DELETE", f"/v1/users/{segment(user_id)}/mute")

    async def relationships(self, user_ids: list[str]) -> list[Relationship]:
        """Relationship objects for up to 100 users."""
        page = await self._get(
            dict[str, list[Relationship]], "/v1/relationships", params={"ids": ",".join(user_ids)}
        )
        return page["items"]

    async def suggestions(self, *, limit: int | None = None) -> list[Suggestion]:
        """People you may know."""
        page = await self._get(
            dict[str, list[Suggestion]], "/v1/friends/suggestions", params={"limit": limit}
        )
        return page["items"]

    # -- conversations -------------------------------------------------------------------------

    async def open_direct(self, user_id: str) -> Conversation:
        """The one direct conversation with `user_id` (created on first use)."""
        response = await self.request(
            "POST", "/v1/conversations", json={"kind": "direct", "member_ids": [user_id]}
        )
        return decode(Conversation, response.content)

    async def report(
        self, target: str, target_id: str, reason: str, *, note: str | None = None
    ) -> Report:
        """Report a user (`target="user"`) or a message (`target="message"`) to the
        administrators; `reason` one of spam, harassment, hate, sexual, violence,
        self_harm, illegal, impersonation, other. While your report on the same target is
        open, this answers that report (docs/moderation.md)."""
        body: dict[str, Any] = {"target": target, "id": target_id, "reason": reason}
        if note is not None:
            body["note"] = note
        response = await self.request("POST", "/v1/reports", json=body)
        return decode(Report, response.content)

    async def create_group(self, title: str, member_ids: list[str]) -> Conversation:
        response = await self.request(
            "POST",
            "/v1/conversations",
            json={"kind": "group", "title": title, "member_ids": member_ids},
        )
        return decode(Conversation, response.content)

    async def conversations(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Conversation]:
        """Yours, most recently active first."""
        return await self._get(
            Page[Conversation], "/v1/conversations", params={"limit": limit, "cursor": cursor}
        )

    async def conversation(self, conversation_id: str) -> Conversation:
        return await self._get(Conversation, f"/v1/conversations/{segment(conversation_id)}")

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = None,
        message_ttl_seconds: int | Unset | None = UNSET,
    ) -> Conversation:
        """Owner or admin: change the title, or make new messages disappear after
        `message_ttl_seconds` (0 or None turns it off). Fields left out do not change."""
        body: dict[str, Any] = {}
        if title is not None:
            body["title"] = title
        if not isinstance(message_ttl_seconds, Unset):
            body["message_ttl_seconds"] = message_ttl_seconds
        response = await self.request(
            "PATCH", f"/v1/conversations/{segment(conversation_id)}", json=body
        )
        return decode(Conversation, response.content)

    async def members(
        self, conversation_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Member]:
        """The members of a conversation you are in."""
        return await self._get(
            Page[Member],
            f"/v1/conversations/{segment(conversation_id)}/members",
            params={"limit": limit, "cursor": cursor},
        )

    async def iter_members(
        self, conversation_id: str, *, limit: int | None = None
    ) -> AsyncIterator[Member]:
        """Every member, following the cursors page by page."""
        cursor: str | None = None
        while True:
            page = await self.members(conversation_id, limit=limit, cursor=cursor)
            for member in page.items:
                yield member
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def add_members(self, conversation_id: str, user_ids: list[str]) -> Conversation:
        """Owner or admin: add people to a group."""
        response = await self.request(
            "POST",
            f"/v1/conversations/{segment(conversation_id)}/members",
            json={"user_ids": user_ids},
        )
        return decode(Conversation, response.content)

    async def remove_member(self, conversation_id: str, user_id: str) -> None:
        """Owner or admin: take someone out of a group (your own id: `leave`)."""
        await self.request(
            "DELETE",
            f"/v1/conversations/{segment(conversation_id)}/members/{segment(user_id)}",
        )

    async def leave(self, conversation_id: str) -> None:
        """Leave a group (this client's own user; its id is read from `me` once)."""
        me = await self._get(dict[str, Any], "/v1/me")
        await self.remove_member(conversation_id, str(me["id"]))

    async def set_member_role(self, conversation_id: str, user_id: str, role: str) -> Member:
        """The owner only: make a member `admin`, or `member` again."""
        response = await self.request(
            "PATCH",
            f"/v1/conversations/{segment(conversation_id)}/members/{segment(user_id)}",
            json={"role": role},
        )
        return decode(Member, response.content)

    async def mute_conversation(self, conversation_id: str) -> Conversation:
        """Mute the conversation's notifications, for you alone (unread counts go on)."""
        response = await self.request("PUT", f"/v1/conversations/{segment(conversation_id)}/mute")
        return decode(Conversation, response.content)

    async def unmute_conversation(self, conversation_id: str) -> Conversation:
        response = await self.request(
            "DELETE", f"/v1/conversations/{segment(conversation_id)}/mute"
        )
        return decode(Conversation, response.content)

    async def send_message(
        self,
        conversation_id: str,
        body: str,
        *,
        client_msg_id: str,
        reply_to: str | None = None,
        attachment_ids: list[str] | None = None,
        thread_root_id: str | None = None,
    ) -> Message:
        """Send; the same `client_msg_id` again returns the original message.
        `attachment_ids`: up to 10 of your uploads (`upload`) not sent yet.
        `thread_root_id`: reply in that message's thread (`list_thread`)."""
        payload: dict[str, Any] = {"client_msg_id": client_msg_id, "body": body}
        if reply_to is not None:
            payload["reply_to"] = reply_to
        if thread_root_id is not None:
            payload["thread_root_id"] = thread_root_id
        if attachment_ids:
            payload["attachment_ids"] = attachment_ids
        response = await self.request(
            "POST", f"/v1/conversations/{segment(conversation_id)}/messages", json=payload
        )
        return decode(Message, response.content)

    async def messages(
        self,
        conversation_id: str,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """History, oldest first."""
        page = await self._get(
            Page[Message],
            f"/v1/conversations/{segment(conversation_id)}/messages",
            params={"before_seq": before_seq, "after_seq": after_seq, "limit": limit},
        )
        return page.items

    # -- threads (docs/threads.md) ----------------------------------------------------------

    async def list_thread(
        self,
        conversation_id: str,
        root_id: str,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> ThreadPage:
        """The root (with your unread count in its thread) and a page of its replies,
        oldest first; paged like `messages`."""
        return await self._get(
            ThreadPage,
            f"/v1/conversations/{segment(conversation_id)}/messages/{segment(root_id)}/thread",
            params={"before_seq": before_seq, "after_seq": after_seq, "limit": limit},
        )

    async def mark_thread_read(self, conversation_id: str, root_id: str, seq: int) -> ThreadRead:
        """Move your read pointer in the thread forward (never back) to `seq`."""
        response = await self.request(
            "POST",
            f"/v1/conversations/{segment(conversation_id)}/messages/{segment(root_id)}/thread/read",
            json={"seq": seq},
        )
        return decode(ThreadRead, response.content)

    async def search_messages(
        self,
        q: str,
        *,
        conversation_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[SearchHit]:
        """Messages holding every word of `q` in your conversations (or in
        `conversation_id` alone), best first, each with a highlighted snippet."""
        return await self._get(
            Page[SearchHit],
            "/v1/search/messages",
            params={
                "q": q,
                "conversation_id": conversation_id,
                "limit": limit,
                "cursor": cursor,
            },
        )

    async def iter_search_messages(
        self,
        q: str,
        *,
        conversation_id: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[SearchHit]:
        """Every hit of `search_messages`, following the cursors page by page."""
        cursor: str | None = None
        while True:
            page = await self.search_messages(
                q, conversation_id=conversation_id, limit=limit, cursor=cursor
            )
            for hit in page.items:
                yield hit
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def edit_message(self, conversation_id: str, message_id: str, body: str) -> Message:
        """Change the text of your message (its `edited_at` is set)."""
        response = await self.request(
            "PATCH",
            f"/v1/conversations/{segment(conversation_id)}/messages/{segment(message_id)}",
            json={"body": body},
        )
        return decode(Message, response.content)

    async def delete_message(self, conversation_id: str, message_id: str) -> Message:
        """Delete for everyone (sender, or a group's owner or admin): the content and its
        attachments are erased; the tombstone (`deleted`, `body` None) is returned."""
        response = await self.request(
            "DELETE",
            f"/v1/conversations/{segment(conversation_id)}/messages/{segment(message_id)}",
        )
        return decode(Message, response.content)

    async def react(self, conversation_id: str, message_id: str, emoji: str) -> Message:
        """Add your reaction (idempotent); the message with its counts."""
        response = await self.request(
            "PUT", self._reaction_path(conversation_id, message_id, emoji)
        )
        return decode(Message, response.content)

    async def unreact(self, conversation_id: str, message_id: str, emoji: str) -> Message:
        """Take your reaction back (idempotent)."""
        response = await self.request(
            "DELETE", self._reaction_path(conversation_id, message_id, emoji)
        )
        return decode(Message, response.content)

    @staticmethod
    def _reaction_path(conversation_id: str, message_id: str, emoji: str) -> str:
        return (
            f"/v1/conversations/{segment(conversation_id)}/messages/"
            f"{segment(message_id)}/reactions/{segment(emoji)}"
        )

    async def typing(self, conversation_id: str) -> None:
        """Tell the others you are typing (ephemeral: a `typing` event, nothing stored)."""
        await self.request("POST", f"/v1/conversations/{segment(conversation_id)}/typing")

    # -- attachments -------------------------------------------------------------------------

    async def upload(
        self, data: bytes | AsyncIterable[bytes], *, filename: str | None = None
    ) -> Attachment:
        """Upload a file (its type is read from its bytes); send it with a message within
        a day (`send_message(..., attachment_ids=[...])`). `data`: the bytes, or an
        iterable of chunks, streamed (a large file need not be read into memory)."""
        response = await self.request(
            "POST",
            "/v1/uploads",
            content=data,
            params={"filename": filename},
            headers={"Content-Type": "application/octet-stream"},
        )
        return decode(Attachment, response.content)

    async def download_attachment(
        self, attachment_id: str, *, start: int | None = None, end: int | None = None
    ) -> bytes:
        """The bytes of an attachment (those from `start` to `end`, both included, when
        given: a Range request)."""
        headers = None
        if start is not None or end is not None:
            first = "" if start is None else str(start)
            last = "" if end is None else str(end)
            headers = {"Range": f"bytes={first}-{last}"}
        response = await self.request(
            "GET", f"/v1/attachments/{segment(attachment_id)}", headers=headers
        )
        return response.content

    async def stream_attachment(
        self, attachment_id: str, *, chunk_size: int | None = 65536
    ) -> AsyncIterator[bytes]:
        """The bytes of an attachment, chunk by chunk as they arrive (never all in memory):
        `async for chunk in client.stream_attachment(id): ...`. Raises ApiError before
        the first chunk when the attachment cannot be read."""
        headers: dict[str, str] = {}
        if not self._owns_http:
            headers["User-Agent"] = self._user_agent
        if self.access_token is not None:
            headers["Authorization"] = f"Bearer {self.access_token}"
        async with self._http.stream(
            "GET",
            f"{self._prefix}/v1/attachments/{segment(attachment_id)}",
            headers=headers,
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise ApiError.from_response(response)
            async for chunk in response.aiter_bytes(chunk_size):
                yield chunk

    async def attachment_thumbnail(self, attachment_id: str, *, size: int = 256) -> bytes:
        """A WebP thumbnail of an image attachment, no larger than `size` on each side."""
        response = await self.request(
            "GET",
            f"/v1/attachments/{segment(attachment_id)}/thumbnail",
            params={"size": size},
        )
        return response.content

    async def attachment_link(self, attachment_id: str) -> AttachmentLink:
        """A presigned download URL, where the server's object store makes them."""
        return await self._get(AttachmentLink, f"/v1/attachments/{segment(attachment_id)}/link")

    async def mark_read(self, conversation_id: str, seq: int) -> int:
        response = await self.request(
            "POST", f"/v1/conversations/{segment(conversation_id)}/read", json={"seq": seq}
        )
        return int(decode(dict[str, Any], response.content)["last_read_seq"])

    async def sync(self, cursor: str | None = None, *, limit: int | None = None) -> SyncPage:
        """Events after `cursor`, oldest first (the same the WebSocket delivers). A cursor
        older than the events kept raises ApiError 410 `cursor_expired`: re-read the state,
        then sync again with no cursor."""
        return await self._get(SyncPage, "/v1/sync", params={"cursor": cursor, "limit": limit})

    # -- notifications, push and presence ---------------------------------------------------

    async def notifications(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> NotificationPage:
        """Your notification inbox, newest first, with the count of unread ones."""
        return await self._get(
            NotificationPage, "/v1/notifications", params={"limit": limit, "cursor": cursor}
        )

    async def mark_notifications_read(self, up_to_id: str) -> int:
        """Mark read every notification up to and including `up_to_id`; how many were
        unread."""
        response = await self.request("POST", "/v1/notifications/read", json={"up_to_id": up_to_id})
        return int(decode(dict[str, Any], response.content)["marked"])

    async def presence(self, user_ids: list[str]) -> list[Presence]:
        """Whether these users (up to 100) are online; only your friends are reported."""
        page = await self._get(
            dict[str, list[Presence]], "/v1/presence", params={"ids": ",".join(user_ids)}
        )
        return page["items"]

    async def notification_settings(self) -> NotificationSettings:
        return await self._get(NotificationSettings, "/v1/me/notification-settings")

    async def update_notification_settings(
        self,
        *,
        message: bool | None = None,
        mention: bool | None = None,
        reply: bool | None = None,
        reaction: bool | None = None,
    ) -> NotificationSettings:
        """Turn kinds on or off (those left None stay as they are)."""
        given = {"message": message, "mention": mention, "reply": reply, "reaction": reaction}
        response = await self.request(
            "PATCH",
            "/v1/me/notification-settings",
            json={k: v for k, v in given.items() if v is not None},
        )
        return decode(NotificationSettings, response.content)

    async def vapid_public_key(self) -> str:
        """The `applicationServerKey` for a browser's `PushManager.subscribe`."""
        found = await self._get(dict[str, str], "/v1/push/vapid-public-key")
        return found["public_key"]

    async def devices(self) -> list[PushDevice]:
        page = await self._get(dict[str, list[PushDevice]], "/v1/me/devices")
        return page["items"]

    async def register_webpush_device(self, endpoint: str, p256dh: str, auth: str) -> PushDevice:
        """Register a browser's PushSubscription (its endpoint and keys)."""
        response = await self.request(
            "POST",
            "/v1/me/devices",
            json={
                "kind": "webpush",
                "endpoint": endpoint,
                "keys": {"p256dh": p256dh, "auth": auth},
            },
        )
        return decode(PushDevice, response.content)

    async def register_gateway_device(
        self, token: str, *, platform: str | None = None
    ) -> PushDevice:
        """Register a device of the operator's push gateway by its token."""
        body: dict[str, Any] = {"kind": "gateway", "token": token}
        if platform is not None:
            body["platform"] = platform
        response = await self.request("POST", "/v1/me/devices", json=body)
        return decode(PushDevice, response.content)

    async def delete_device(self, device_id: str) -> None:
        await self.request("DELETE", f"/v1/me/devices/{segment(device_id)}")

    # -- operations --------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """GET /healthz: the process is up."""
        return await self._get(dict[str, Any], "/healthz", auth=False)

    async def ready(self) -> dict[str, Any]:
        """GET /readyz: the dependencies are reachable (ApiError 503 when they are not)."""
        return await self._get(dict[str, Any], "/readyz", auth=False)
