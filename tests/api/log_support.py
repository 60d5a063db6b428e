"""Helpers for tests that read the per-user event logs: what may change at a position."""

from __future__ import annotations

from typing import Any


def about(event: dict[str, Any]) -> str | None:
    """The message an event is about, if any."""
    if "message" in event and event["type"] != "notification":
        return str(event["message"]["id"])
    found = event.get("message_id")
    return None if found is None else str(found)


def same_slot(before: dict[str, Any], now: dict[str, Any]) -> bool:
    """One log item (``{"cursor", "event"}``) read twice: the same, or rewritten by an
    edit or an erasure of the message it is about (the same cursor, the same message, and
    the newer version of the message or its tombstone)."""
    if before == now:
        return True
    old, new = before["event"], now["event"]
    rewritten = new["type"] == "message.deleted" or (
        old["type"] in ("message.created", "message.updated") and new["type"] == old["type"]
    )
    return before["cursor"] == now["cursor"] and about(old) == about(new) and rewritten
