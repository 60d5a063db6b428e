"""Events: what a user must be told about, written with the change that caused them.

Each user has a log of events numbered 1, 2, 3, ... (``seq``). Numbers are handed out in
the writing transaction under a per-user row lock, so a transaction that commits later
always holds higher numbers: a reader at position N never skips an event that commits
after it looked. A client's cursor is its position in its own log.

An event about a message names it (``message_id``), so that erasing or editing the
message can rewrite every logged copy in place: the positions stay, the old content goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Event", "JsonPayload", "LogPage", "json_payload"]


class JsonPayload(dict[str, Any]):
    """A payload that carries its JSON already (``json``, the bytes msgspec makes of it):
    the log row, the inbox row and the bus frame reuse them instead of each encoding it
    again (decision 0038). Read like any dict; never changed once made."""

    __slots__ = ("json",)
    json: bytes


def json_payload(data: dict[str, Any], json: bytes) -> JsonPayload:
    """``data`` with its JSON (no ``__init__`` in Python: this is a hot path)."""
    made = JsonPayload(data)
    made.json = json
    return made


@dataclass(frozen=True, slots=True)
class Event:
    user_id: int  # who receives it
    type: str  # e.g. "friend.request", "message.created"
    payload: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None  # set once stored: the position in the recipient's log
    created_at: datetime | None = None
    message_id: int | None = None  # the message the event is about, if any


@dataclass(frozen=True, slots=True)
class LogPage:
    """Events read from a log, and how far that log has been pruned: positions up to
    ``pruned_to`` are gone (retention), so a cursor below it has expired."""

    pruned_to: int
    events: list[Event]
