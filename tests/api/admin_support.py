"""Helpers for the admin tests: the first administrator is made the way an operator makes
one (``socius admin grant-admin``: the same service call, as the command line)."""

from __future__ import annotations

from typing import Any

from conftest import App
from socius.services.audit import Actor

__all__ = ["grant_admin_from_cli"]


def grant_admin_from_cli(app: App, http: Any, user_id: str) -> None:
    """What ``socius admin grant-admin`` does, on the app's own services."""

    async def grant() -> None:
        await app.wiring.container.admin.set_admin(Actor.command_line(), int(user_id), True)

    http.blocking_portal.call(grant)
