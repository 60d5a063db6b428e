"""Events: what a user must be told about, written with the change that caused them.

Each user has a log of events numbered 1, 2, 3, ... (``seq``). Numbers are handed out in
the writing transaction under a per-user row lock, so a transaction that commits later
always holds higher numbers: a reader at position N never skips an event that commits
after it looked. A client's cursor is its position in its own log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Event"]


@dataclass(frozen=True, slots=True)
class Event:
    user_id: int  # who receives it
    type: str  # e.g. "friend.request", "message.created"
    payload: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None  # set once stored: the position in the recipient's log
    created_at: datetime | None = None
