"""Every operation of the OpenAPI document has a typed SDK method (docs/sdk.md).

``SDK_METHODS`` is the one table: (method, path) -> the Client method that calls it
(``admin.x`` for ``client.admin.x``). ``LEFT_OUT`` lists, with the reason, the few routes
the SDK deliberately has no method for. A new route fails
``test_every_operation_has_an_sdk_method`` until it is added to one of them; a route that
is gone fails it until its row is removed.

The table is checked, not trusted: each method is called with placeholder arguments over
a transport that records requests, and must send the request its row names. The async
client must have the same method (the sync one is generated from it).
"""

from __future__ import annotations

import contextlib
import inspect
import re
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from socius.api.app import build_litestar
from socius.bootstrap import build
from socius.client import AsyncAdmin, AsyncClient, Client
from socius.settings import load_settings

SDK_METHODS: dict[tuple[str, str], str] = {
    # operations
    ("GET", "/healthz"): "health",
    ("GET", "/readyz"): "ready",
    # sign-up, sign-in, sessions
    ("POST", "/v1/auth/register"): "register",
    ("POST", "/v1/auth/login"): "login",
    ("POST", "/v1/auth/login/mfa"): "login_mfa",
    ("POST", "/v1/auth/refresh"): "refresh",
    ("POST", "/v1/auth/logout"): "logout",
    ("POST", "/v1/auth/verify-email/request"): "request_email_verification",
    ("POST", "/v1/auth/verify-email"): "verify_email",
    ("POST", "/v1/auth/password-reset/request"): "request_password_reset",
    ("POST", "/v1/auth/password-reset"): "reset_password",
    ("GET", "/v1/auth/oidc"): "oidc_providers",
    ("POST", "/v1/auth/oidc/{provider}/start"): "oidc_authorization_url",
    ("POST", "/v1/auth/oidc/exchange"): "oidc_exchange",
    ("POST", "/v1/auth/passkey/begin"): "begin_passkey_login",
    ("POST", "/v1/auth/passkey/finish"): "finish_passkey_login",
    # me
    ("GET", "/v1/me"): "me",
    ("PATCH", "/v1/me"): "update_me",
    ("DELETE", "/v1/me"): "delete_me",
    ("POST", "/v1/me/password"): "change_password",
    ("POST", "/v1/me/email"): "change_email",
    ("GET", "/v1/me/sessions"): "sessions",
    ("DELETE", "/v1/me/sessions"): "revoke_other_sessions",
    ("DELETE", "/v1/me/sessions/{session_id}"): "revoke_session",
    ("GET", "/v1/me/export"): "export",
    ("GET", "/v1/me/mfa"): "mfa_status",
    ("POST", "/v1/me/mfa/totp"): "enroll_totp",
    ("DELETE", "/v1/me/mfa/totp"): "disable_totp",
    ("POST", "/v1/me/mfa/totp/confirm"): "confirm_totp",
    ("GET", "/v1/me/identities"): "identities",
    ("POST", "/v1/me/identities"): "link_identity",
    ("POST", "/v1/me/identities/confirm"): "confirm_identity_link",
    ("DELETE", "/v1/me/identities/{identity_id}"): "unlink_identity",
    ("GET", "/v1/me/passkeys"): "passkeys",
    ("POST", "/v1/me/passkeys/begin"): "begin_passkey_registration",
    ("POST", "/v1/me/passkeys/finish"): "finish_passkey_registration",
    ("PATCH", "/v1/me/passkeys/{passkey_id}"): "rename_passkey",
    ("DELETE", "/v1/me/passkeys/{passkey_id}"): "delete_passkey",
    # people and the graph
    ("GET", "/v1/users/search"): "search_users",
    ("GET", "/v1/users/by-username/{username}"): "get_user_by_username",
    ("GET", "/v1/users/{user_id}"): "get_user",
    ("GET", "/v1/users/{user_id}/friends"): "user_friends",
    ("GET", "/v1/users/{user_id}/followers"): "followers",
    ("GET", "/v1/users/{user_id}/following"): "following",
    ("GET", "/v1/users/{user_id}/mutual-friends"): "mutual_friends",
    ("POST", "/v1/users/{user_id}/follow"): "follow",
    ("DELETE", "/v1/users/{user_id}/follow"): "unfollow",
    ("POST", "/v1/users/{user_id}/block"): "block",
    ("DELETE", "/v1/users/{user_id}/block"): "unblock",
    ("POST", "/v1/users/{user_id}/mute"): "mute",
    ("DELETE", "/v1/users/{user_id}/mute"): "unmute",
    ("GET", "/v1/friends"): "friends",
    ("GET", "/v1/friends/suggestions"): "suggestions",
    ("GET", "/v1/friends/requests"): "friend_requests",
    ("POST", "/v1/friends/requests"): "send_friend_request",
    ("POST", "/v1/friends/requests/{user_id}/accept"): "accept_friend_request",
    ("POST", "/v1/friends/requests/{user_id}/decline"): "decline_friend_request",
    ("DELETE", "/v1/friends/requests/{user_id}"): "cancel_friend_request",
    ("DELETE", "/v1/friends/{user_id}"): "unfriend",
    ("GET", "/v1/relationships"): "relationships",
    ("GET", "/v1/blocks"): "blocks",
    ("GET", "/v1/follow-requests"): "follow_requests",
    ("POST", "/v1/follow-requests/{user_id}/approve"): "approve_follow_request",
    ("POST", "/v1/follow-requests/{user_id}/reject"): "reject_follow_request",
    # conversations and messages
    ("GET", "/v1/conversations"): "conversations",
    ("POST", "/v1/conversations"): "create_group",
    ("GET", "/v1/conversations/{conversation_id}"): "conversation",
    ("PATCH", "/v1/conversations/{conversation_id}"): "update_conversation",
    ("GET", "/v1/conversations/{conversation_id}/members"): "members",
    ("POST", "/v1/conversations/{conversation_id}/members"): "add_members",
    ("DELETE", "/v1/conversations/{conversation_id}/members/{user_id}"): "remove_member",
    ("PATCH", "/v1/conversations/{conversation_id}/members/{user_id}"): "set_member_role",
    ("GET", "/v1/conversations/{conversation_id}/messages"): "messages",
    ("POST", "/v1/conversations/{conversation_id}/messages"): "send_message",
    ("PATCH", "/v1/conversations/{conversation_id}/messages/{message_id}"): "edit_message",
    ("DELETE", "/v1/conversations/{conversation_id}/messages/{message_id}"): "delete_message",
    ("PUT", "/v1/conversations/{conversation_id}/messages/{message_id}/reactions/{emoji}"): (
        "react"
    ),
    ("DELETE", "/v1/conversations/{conversation_id}/messages/{message_id}/reactions/{emoji}"): (
        "unreact"
    ),
    ("POST", "/v1/conversations/{conversation_id}/read"): "mark_read",
    ("POST", "/v1/conversations/{conversation_id}/typing"): "typing",
    ("PUT", "/v1/conversations/{conversation_id}/mute"): "mute_conversation",
    ("DELETE", "/v1/conversations/{conversation_id}/mute"): "unmute_conversation",
    # threads, search, reports
    ("GET", "/v1/conversations/{conversation_id}/messages/{message_id}/thread"): "list_thread",
    ("POST", "/v1/conversations/{conversation_id}/messages/{message_id}/thread/read"): (
        "mark_thread_read"
    ),
    ("GET", "/v1/search/messages"): "search_messages",
    ("POST", "/v1/reports"): "report",
    # attachments
    ("POST", "/v1/uploads"): "upload",
    ("GET", "/v1/attachments/{attachment_id}"): "download_attachment",
    ("GET", "/v1/attachments/{attachment_id}/thumbnail"): "attachment_thumbnail",
    ("GET", "/v1/attachments/{attachment_id}/link"): "attachment_link",
    # inbox, sync, presence
    ("GET", "/v1/notifications"): "notifications",
    ("POST", "/v1/notifications/read"): "mark_notifications_read",
    ("GET", "/v1/me/notification-settings"): "notification_settings",
    ("PATCH", "/v1/me/notification-settings"): "update_notification_settings",
    ("GET", "/v1/push/vapid-public-key"): "vapid_public_key",
    ("GET", "/v1/me/devices"): "devices",
    ("POST", "/v1/me/devices"): "register_webpush_device",  # and register_gateway_device
    ("DELETE", "/v1/me/devices/{device_id}"): "delete_device",
    ("GET", "/v1/sync"): "sync",
    ("GET", "/v1/presence"): "presence",
    # administration (client.admin)
    ("GET", "/v1/admin/users"): "admin.users",
    ("GET", "/v1/admin/users/{user_id}"): "admin.user",
    ("POST", "/v1/admin/users/{user_id}/disable"): "admin.disable_user",
    ("POST", "/v1/admin/users/{user_id}/enable"): "admin.enable_user",
    ("POST", "/v1/admin/users/{user_id}/grant-admin"): "admin.grant_admin",
    ("POST", "/v1/admin/users/{user_id}/revoke-admin"): "admin.revoke_admin",
    ("GET", "/v1/admin/audit"): "admin.audit",
    ("GET", "/v1/admin/reports"): "admin.reports",
    ("GET", "/v1/admin/reports/{report_id}"): "admin.report",
    ("POST", "/v1/admin/reports/{report_id}/resolve"): "admin.resolve_report",
    ("GET", "/v1/admin/events"): "admin.events",
    ("GET", "/v1/admin/webhooks"): "admin.webhooks",
    ("POST", "/v1/admin/webhooks"): "admin.create_webhook",
    ("GET", "/v1/admin/webhooks/{webhook_id}"): "admin.webhook",
    ("PATCH", "/v1/admin/webhooks/{webhook_id}"): "admin.update_webhook",
    ("DELETE", "/v1/admin/webhooks/{webhook_id}"): "admin.delete_webhook",
    ("GET", "/v1/admin/webhooks/{webhook_id}/deliveries"): "admin.webhook_deliveries",
    ("POST", "/v1/admin/webhooks/{webhook_id}/ping"): "admin.ping_webhook",
}

# Routes without an SDK method, on purpose.
LEFT_OUT: dict[tuple[str, str], str] = {
    ("GET", "/metrics"): "Prometheus scrapes it; not an application call",
    ("GET", "/v1/auth/oidc/{provider}/start"): "a browser follows this redirect; the SDK "
    "starts with POST (oidc_authorization_url)",
    ("GET", "/v1/auth/oidc/{provider}/callback"): "the provider sends the browser back "
    "here; the SDK gets the outcome through oidc_exchange",
}

# Methods whose row names one route but that call others first or too.
EXTRA_METHODS = {"leave": ("DELETE", "/v1/conversations/{conversation_id}/members/{user_id}")}
# Other methods sending the same request as a row's: open_direct is POST /v1/conversations.
ALSO = {
    "open_direct": ("POST", "/v1/conversations"),
    "stream_attachment": ("GET", "/v1/attachments/{attachment_id}"),
    "iter_members": ("GET", "/v1/conversations/{conversation_id}/members"),
    "iter_search_users": ("GET", "/v1/users/search"),
    "admin.iter_users": ("GET", "/v1/admin/users"),
    "admin.iter_audit": ("GET", "/v1/admin/audit"),
}


def _operations() -> set[tuple[str, str]]:
    """Every (method, path) of the OpenAPI document (building an app opens nothing)."""
    wiring = build(load_settings({}, data_dir=tempfile.gettempdir()))
    document = build_litestar(wiring.container, wiring.metrics).openapi_schema.to_schema()
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "patch", "delete")
    }


def test_every_operation_has_an_sdk_method() -> None:
    operations = _operations()
    missing = sorted(operations - SDK_METHODS.keys() - LEFT_OUT.keys())
    assert not missing, f"routes without an SDK method (add them to SDK_METHODS): {missing}"
    stale = sorted((SDK_METHODS.keys() | LEFT_OUT.keys()) - operations)
    assert not stale, f"rows for routes that are gone: {stale}"
    assert not SDK_METHODS.keys() & LEFT_OUT.keys()


def _placeholder(parameter: inspect.Parameter) -> Any:
    annotation = str(parameter.annotation)
    if annotation.startswith("list"):
        return ["1"]
    if annotation.startswith("dict"):
        return {}
    if annotation.startswith("bytes"):
        return b"x"
    if annotation.startswith("int"):
        return 1
    return "1"


def _requests_of(name: str) -> list[tuple[str, str]]:
    """The (method, path) of every request `Client.<name>` sends, with placeholders."""
    sent: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append((request.method, request.url.path))
        if request.url.path == "/v1/me":  # leave() asks who it is first
            return httpx.Response(200, json={"id": "1"})
        return httpx.Response(418, json={"error": {"code": "recorded", "message": "x"}})

    with httpx.Client(transport=httpx.MockTransport(answer), base_url="http://sdk.test") as http:
        client = Client(http=http, access_token="t", refresh_token="r")
        owner: Any = client.admin if name.startswith("admin.") else client
        method = getattr(owner, name.removeprefix("admin."))
        arguments = {
            p.name: _placeholder(p)
            for p in inspect.signature(method).parameters.values()
            if p.default is inspect.Parameter.empty and p.kind != p.VAR_KEYWORD
        }
        # The recorded 418 raises, or the answer does not decode: the request was sent.
        with contextlib.suppress(Exception):
            result = method(**arguments)
            if isinstance(result, Iterator):
                next(result)
    return sent


def _matches(template: str, path: str) -> bool:
    return re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) is not None


ALL_METHODS = sorted({**{v: k for k, v in SDK_METHODS.items()}, **EXTRA_METHODS, **ALSO}.items())


@pytest.mark.parametrize(("name", "route"), ALL_METHODS, ids=[n for n, _ in ALL_METHODS])
def test_the_method_sends_its_route(name: str, route: tuple[str, str]) -> None:
    verb, template = route
    sent = _requests_of(name)
    assert any(m == verb and _matches(template, p) for m, p in sent), (name, route, sent)
    owner: Any = AsyncAdmin if name.startswith("admin.") else AsyncClient
    assert inspect.isfunction(getattr(owner, name.removeprefix("admin."), None)), name
