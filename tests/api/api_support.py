"""Helpers for API tests: the error envelope, and a user's event log through /v1/sync."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import Account


def error(response: httpx.Response) -> tuple[int, str]:
    """The status and error code of an answer that must be the error envelope."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


def logged(account: Account, cursor: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """The events of the account's log after ``cursor`` (``/v1/sync``, every page), oldest
    first, and the cursor at its end."""
    events: list[dict[str, Any]] = []
    while True:
        page = account.client.sync(cursor)
        if not page.items:
            return events, page.next_cursor
        events += [i.event for i in page.items]
        cursor = page.next_cursor
