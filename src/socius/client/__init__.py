"""The socius Python SDK: an async and a sync client for the public HTTP API.

    async with AsyncClient("http://127.0.0.1:8080") as client:
        await client.login("ada", "correct horse")
        me = await client.me()

It depends only on httpx and msgspec, never on the server's packages.
"""

from socius.client._async import AsyncClient
from socius.client._async_admin import AsyncAdmin
from socius.client._errors import (
    ApiError,
    EmailVerificationRequired,
    GraphQLError,
    MfaRequired,
)
from socius.client._models import (
    AdminUser,
    Attachment,
    AttachmentLink,
    AuditEntry,
    AuthResult,
    Conversation,
    EventPage,
    LinkedIdentity,
    ListedUser,
    Message,
    MfaStatus,
    Notification,
    NotificationPage,
    NotificationSettings,
    OidcProvider,
    Page,
    PasskeyInfo,
    PrivateUser,
    PublicUser,
    PushDevice,
    Relationship,
    SessionInfo,
    StreamEvent,
    Suggestion,
    SyncItem,
    SyncPage,
    TokenPair,
    TotpEnrollment,
    Webhook,
    WebhookDelivery,
)
from socius.client._realtime import RealtimeClient, RealtimeClosed
from socius.client._sync import Client
from socius.client._sync_admin import Admin

__all__ = [
    "Admin",
    "AdminUser",
    "ApiError",
    "AsyncAdmin",
    "AsyncClient",
    "Attachment",
    "AttachmentLink",
    "AuditEntry",
    "AuthResult",
    "Client",
    "Conversation",
    "EmailVerificationRequired",
    "EventPage",
    "GraphQLError",
    "LinkedIdentity",
    "ListedUser",
    "Message",
    "MfaRequired",
    "MfaStatus",
    "Notification",
    "NotificationPage",
    "NotificationSettings",
    "OidcProvider",
    "Page",
    "PasskeyInfo",
    "PrivateUser",
    "PublicUser",
    "PushDevice",
    "RealtimeClient",
    "RealtimeClosed",
    "Relationship",
    "SessionInfo",
    "StreamEvent",
    "Suggestion",
    "SyncItem",
    "SyncPage",
    "TokenPair",
    "TotpEnrollment",
    "Webhook",
    "WebhookDelivery",
]
