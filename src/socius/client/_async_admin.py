"""Administrator calls (`/v1/admin`), reached as `AsyncClient.admin`.

Every call needs an administrator's token: others get ApiError 403 `admin_required`.
`_sync_admin.py` is generated from this file by scripts/unasync.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from socius.client._codec import decode
from socius.client._http import segment
from socius.client._models import AdminUser, AuditEntry, Page

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
