"""The SDK's public surface, and the generated sync client kept in step with the async one."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import socius.client

ROOT = Path(__file__).resolve().parents[3]
CLIENT = ROOT / "src" / "socius" / "client"


def test_all() -> None:
    assert socius.client.__all__ == [
        "Admin",
        "AdminReport",
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
        "Member",
        "Message",
        "MfaRequired",
        "MfaStatus",
        "Notification",
        "NotificationPage",
        "NotificationSettings",
        "OidcProvider",
        "Page",
        "PasskeyInfo",
        "Presence",
        "PrivateUser",
        "PublicUser",
        "PushDevice",
        "RealtimeClient",
        "RealtimeClosed",
        "Relationship",
        "Report",
        "ReportedMessage",
        "SearchHit",
        "SessionInfo",
        "StreamEvent",
        "Suggestion",
        "SyncItem",
        "SyncPage",
        "Thread",
        "ThreadPage",
        "ThreadRead",
        "TokenPair",
        "TotpEnrollment",
        "Webhook",
        "WebhookDelivery",
    ]
    for name in socius.client.__all__:
        assert getattr(socius.client, name).__module__.startswith("socius.client.")


def test_sync_client_is_generated_from_async() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_sdk_imports_only_itself_stdlib_httpx_msgspec_websockets() -> None:
    allowed = {"httpx", "msgspec", "websockets", *sys.stdlib_module_names}
    for path in CLIENT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                ok = name.startswith("socius.client") or name.split(".")[0] in allowed
                assert ok, f"{path.name} imports {name}"
