"""Helpers for the event stream tests: settings with the relay left to the test, a stream
of one's own on JetStream, and reading the stream through the admin API."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from conftest import NATS_URL, App, require_service
from contract import bearer
from socius.settings import Settings

__all__ = ["jetstream_settings", "read_events", "relay"]


def jetstream_settings(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    """The stack's settings with the event stream in a JetStream stream of its own."""
    require_service(NATS_URL, "nats")
    tag = secrets.token_hex(4)
    return make_settings(
        nats_url=NATS_URL,
        event_stream="jetstream",
        event_stream_name=f"SOCIUS_TEST_{tag.upper()}",
        event_subject_prefix=f"socius-test.{tag}.events.",
        event_relay_in_server=False,
        **overrides,
    )


def relay(app: App, http: Any) -> int:
    """One round of the app's relay: how many events it published."""

    async def once() -> int:
        return await app.wiring.container.relay.run_once() or 0

    result: int = http.blocking_portal.call(once)
    return result


def read_events(http: Any, token: str, **params: Any) -> list[dict[str, Any]]:
    """Every event of the stream through GET /v1/admin/events, page by page."""
    found: list[dict[str, Any]] = []
    after = params.pop("after", 0)
    while True:
        response = http.get(
            "/v1/admin/events",
            params={"after": after, "limit": 100, **params},
            headers=bearer(token),
        )
        assert response.status_code == 200, response.text
        page = response.json()
        found += page["items"]
        if not page["items"]:
            return found
        after = page["next_after"]
