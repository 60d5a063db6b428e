"""Helpers for the tests of OpenID Connect sign-in and passkeys: a browser's trip through
the provider, and account changes an operator (or a mail link) would make."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from conftest import App
from socius.domain.users import UserStatus

__all__ = ["PUBLIC", "back_from_provider", "disable", "fragment", "mark_email_verified"]

PUBLIC = "http://testserver.local"  # the test client's base URL, as SOCIUS_PUBLIC_URL


def back_from_provider(http: Any, authorization_url: str) -> httpx.Response:
    """Open the provider's authorization URL as a browser would (over real HTTP), follow
    its redirect back to socius's callback, and answer the callback's response."""
    at_provider = httpx.get(authorization_url, follow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["location"])
    assert f"{back.scheme}://{back.netloc}" == PUBLIC
    return http.get(f"{back.path}?{back.query}", follow_redirects=False)  # type: ignore[no-any-return]


def fragment(response: httpx.Response) -> dict[str, str]:
    """The values in the fragment of a redirect's Location."""
    assert response.status_code == 303, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).fragment).items()}


def _update(app: App, http: Any, user_id: str, changes: dict[str, Any]) -> None:
    async def run() -> None:
        async with app.wiring.database() as uow:
            await uow.users.update(int(user_id), changes)
            await uow.commit()

    http.blocking_portal.call(run)


def mark_email_verified(app: App, http: Any, user_id: str) -> None:
    """As following the mailed link does."""
    _update(app, http, user_id, {"email_verified_at": datetime.now(UTC)})


def disable(app: App, http: Any, user_id: str) -> None:
    """As an administrator's disable does (without its session revocation)."""
    _update(app, http, user_id, {"status": UserStatus.DISABLED})
