"""Administrator calls (`/v1/admin`), reached as `AsyncClient.admin`.

Every call needs an administrator's token: others get ApiError 403 `admin_required`.
`_sync_admin.py` is generated from this file by scripts/unasync.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from socius.client._codec import decode
from socius.client._http import segment
from socius.client._models import (
    AdminReport,
    AdminUser,
    AuditEntry,
    EventPage,
    Page,
    Webhook,
    WebhookDelivery,
)

if TYPE_CHECKING:
    from socius.client._async import AsyncClient

__all__ = ["AsyncAdmin"]


class AsyncAdmin:
    """The administrator's API, sending with `client`'s tokens."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def users(
        self,
        *,
        q: str | None = None,
        status: str | None = None,
        is_admin: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[AdminUser]:
        """Accounts, newest first: `q` in the username, email or display name (or an
        exact id); `status` "active" or "disabled"; administrators or not."""
        params = {"q": q, "status": status, "is_admin": is_admin, "limit": limit}
        response = await self._client.request(
            "GET", "/v1/admin/users", params={**params, "cursor": cursor}
        )
        return decode(Page[AdminUser], response.content)

    async def iter_users(
        self,
        *,
        q: str | None = None,
        status: str | None = None,
        is_admin: bool | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[AdminUser]:
        """Every account `users` lists, following the cursors page by page."""
        cursor: str | None = None
        while True:
            page = await self.users(
                q=q, status=status, is_admin=is_admin, limit=limit, cursor=cursor
            )
            for user in page.items:
                yield user
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def user(self, user_id: str) -> AdminUser:
        response = await self._client.request("GET", f"/v1/admin/users/{segment(user_id)}")
        return decode(AdminUser, response.content)

    async def _act(self, user_id: str, action: str, reason: str | None) -> AdminUser:
        body: dict[str, Any] | None = None if reason is None else {"reason": reason}
        response = await self._client.request(
            "POST", f"/v1/admin/users/{segment(user_id)}/{action}", json=body
        )
        return decode(AdminUser, response.content)

    async def disable_user(self, user_id: str, *, reason: str | None = None) -> AdminUser:
        """Disable the account: its sessions end and its sockets close at once."""
        return await self._act(user_id, "disable", reason)

    async def enable_user(self, user_id: str, *, reason: str | None = None) -> AdminUser:
        return await self._act(user_id, "enable", reason)

    async def grant_admin(self, user_id: str, *, reason: str | None = None) -> AdminUser:
        return await self._act(user_id, "grant-admin", reason)

    async def revoke_admin(self, user_id: str, *, reason: str | None = None) -> AdminUser:
        """Refused (409 `last_admin`) for the last active administrator."""
        return await self._act(user_id, "revoke-admin", reason)

    async def audit(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        """The audit log, newest first: `actor` an administrator's id or "cli", `action`
        e.g. "user.disable", `target` the id acted on."""
        params = {"actor": actor, "action": action, "target": target, "limit": limit}
        response = await self._client.request(
            "GET", "/v1/admin/audit", params={**params, "cursor": cursor}
        )
        return decode(Page[AuditEntry], response.content)

    async def iter_audit(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[AuditEntry]:
        """Every entry `audit` lists, following the cursors page by page."""
        cursor: str | None = None
        while True:
            page = await self.audit(
                actor=actor, action=action, target=target, limit=limit, cursor=cursor
            )
            for entry in page.items:
                yield entry
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def reports(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[AdminReport]:
        """Reports of abuse, newest first; `status` "open" or "resolved"."""
        params = {"status": status, "limit": limit, "cursor": cursor}
        response = await self._client.request("GET", "/v1/admin/reports", params=params)
        return decode(Page[AdminReport], response.content)

    async def iter_reports(
        self, *, status: str | None = None, limit: int | None = None
    ) -> AsyncIterator[AdminReport]:
        """Every report `reports` lists, following the cursors page by page."""
        cursor: str | None = None
        while True:
            page = await self.reports(status=status, limit=limit, cursor=cursor)
            for report in page.items:
                yield report
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def report(self, report_id: str) -> AdminReport:
        response = await self._client.request("GET", f"/v1/admin/reports/{segment(report_id)}")
        return decode(AdminReport, response.content)

    async def resolve_report(
        self, report_id: str, action: str, *, note: str | None = None
    ) -> AdminReport:
        """Resolve a report: `action` "dismiss", "delete_message" (for everyone) or
        "disable_user" (the reported user or the message's sender); written to the audit
        log with `note`."""
        body: dict[str, Any] = {"action": action}
        if note is not None:
            body["note"] = note
        response = await self._client.request(
            "POST", f"/v1/admin/reports/{segment(report_id)}/resolve", json=body
        )
        return decode(AdminReport, response.content)

    async def events(
        self,
        *,
        after: int = 0,
        types: str | None = None,
        bodies: bool = False,
        limit: int | None = None,
    ) -> EventPage:
        """The durable event stream after position `after`: `types` comma-separated names
        or `prefix.*`; `bodies` attaches message bodies that still exist."""
        params = {"after": after, "types": types, "bodies": bodies or None, "limit": limit}
        response = await self._client.request("GET", "/v1/admin/events", params=params)
        return decode(EventPage, response.content)

    async def webhooks(self) -> list[Webhook]:
        response = await self._client.request("GET", "/v1/admin/webhooks")
        return decode(Page[Webhook], response.content).items

    async def create_webhook(
        self,
        url: str,
        *,
        types: list[str] | None = None,
        secret: str | None = None,
        enabled: bool = True,
        description: str | None = None,
        bodies: bool = False,
    ) -> Webhook:
        """A new endpoint for the events of `types` (all when None); a secret is made
        when none is given. `bodies`: message events carry the body while it exists."""
        body: dict[str, Any] = {"url": url, "enabled": enabled, "bodies": bodies}
        if types is not None:
            body["types"] = types
        if secret is not None:
            body["secret"] = secret
        if description is not None:
            body["description"] = description
        response = await self._client.request("POST", "/v1/admin/webhooks", json=body)
        return decode(Webhook, response.content)

    async def webhook(self, webhook_id: str) -> Webhook:
        response = await self._client.request("GET", f"/v1/admin/webhooks/{segment(webhook_id)}")
        return decode(Webhook, response.content)

    async def update_webhook(self, webhook_id: str, **changes: Any) -> Webhook:
        """Change `url`, `types`, `secret`, `enabled`, `description` or `bodies`."""
        response = await self._client.request(
            "PATCH", f"/v1/admin/webhooks/{segment(webhook_id)}", json=changes
        )
        return decode(Webhook, response.content)

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._client.request("DELETE", f"/v1/admin/webhooks/{segment(webhook_id)}")

    async def webhook_deliveries(
        self, webhook_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[WebhookDelivery]:
        """The endpoint's delivery attempts, newest first."""
        response = await self._client.request(
            "GET",
            f"/v1/admin/webhooks/{segment(webhook_id)}/deliveries",
            params={"limit": limit, "cursor": cursor},
        )
        return decode(Page[WebhookDelivery], response.content)

    async def ping_webhook(self, webhook_id: str) -> WebhookDelivery:
        """Send a signed `webhook.ping` event now; the delivery."""
        response = await self._client.request(
            "POST", f"/v1/admin/webhooks/{segment(webhook_id)}/ping"
        )
        return decode(WebhookDelivery, response.content)
