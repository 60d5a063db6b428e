"""Notifications: the inbox of things that happened to a user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["Notification"]


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    user_id: int
    type: str
    payload: dict[str, Any]
    created_at: datetime
    read: bool = False
    message_id: int | None = None  # the message it is about: erased with it
