"""Events: what a user must be told about, written to the outbox with the change."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Event"]


@dataclass(frozen=True, slots=True)
class Event:
    user_id: int  # who receives it
    type: str  # e.g. "friend.request"
    payload: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # set once stored
    created_at: datetime | None = None
