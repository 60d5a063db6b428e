"""The durable event stream: one record of every domain write, for other systems.

Unlike a user's event log (domain/events.py: what one user must be told), the stream has
one event per change, in one order for the whole deployment, and is read by operators'
pipelines: replay from any position, webhooks, analytics export.

An event carries ids, its type, its time and metadata; never content (message bodies,
names, addresses, free text). A body is attached when a reader asks and the message
still has one. Erasure appends a redaction event (``REDACTION_TYPES``): a consumer drops
what it kept about the message or account named, and an export made afterwards leaves
out every event about them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from socius.domain.errors import InvalidInput
from socius.domain.graph import EdgeType

__all__ = [
    "EVENT_SCHEMA_VERSION",
    "EVENT_TYPES",
    "FILTERS_PATTERN",
    "FILTER_PATTERN",
    "REDACTION_TYPES",
    "TYPE_PATTERN",
    "USER_FIELDS",
    "DomainEvent",
    "Redactions",
    "StreamedEvent",
    "check_types",
    "graph_event_type",
    "type_matches",
]

EVENT_SCHEMA_VERSION = 1
"""The version of the event envelope and of the export's columns (docs/events.md)."""

TYPE_PATTERN = r"^[a-z][a-z_]{0,31}(?:[.][a-z][a-z_]{0,31}){1,3}$"
_TYPE = re.compile(TYPE_PATTERN)

EVENT_TYPES: frozenset[str] = frozenset(
    {
        "account.created",
        "account.updated",
        "account.erased",
        "graph.blocked",
        "graph.unblocked",
        "graph.friend_added",
        "graph.friend_removed",
        "graph.friend_requested",
        "graph.friend_request_closed",
        "graph.followed",
        "graph.unfollowed",
        "graph.follow_requested",
        "graph.follow_approved",
        "graph.follow_request_closed",
        "graph.muted",
        "graph.unmuted",
        "graph.changed",
        "conversation.created",
        "conversation.members_added",
        "conversation.member_removed",
        "message.created",
        "message.edited",
        "message.reacted",
        "message.redacted",
        "admin.user_create",
        "admin.user_disable",
        "admin.user_enable",
        "admin.user_grant_admin",
        "admin.user_revoke_admin",
        "admin.keys_rotate",
        "admin.webhook_create",
        "admin.webhook_update",
        "admin.webhook_delete",
        "admin.webhook_ping",
        "admin.report_resolve",
        "report.created",
        "report.resolved",
    }
)
"""Every type the stream carries (docs/events.md describes each one's ``data``)."""

REDACTION_TYPES = frozenset({"account.erased", "message.redacted"})
"""Events that say something is gone: ``account.erased`` (``data.user_id``) and
``message.redacted`` (``data.message_id``: deleted, expired or erased with its author)."""

USER_FIELDS = ("user_id", "actor_id", "other_id", "sender_id", "target_id", "user_ids")
"""Fields of ``data`` that name accounts (``user_ids``: a list): an erased account's
events are left out of exports. (``target_id`` may name a webhook: ids never collide.)"""


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """One domain write, as appended to the outbox in the writing transaction."""

    id: int  # time-ordered, unique: the stream's de-duplication key (Nats-Msg-Id)
    type: str
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    message_id: int | None = None  # the message it is about (bodies on request)


@dataclass(frozen=True, slots=True)
class StreamedEvent:
    """An event as read from the stream: the event and its position there."""

    position: int
    event: DomainEvent
    body: str | None = None  # only when asked for, and the message still has content


_FILTER = r"[a-z][a-z_]{0,31}(?:[.][a-z][a-z_]{0,31}){0,3}(?:[.][*])?"
FILTER_PATTERN = f"^{_FILTER}$"
"""One type filter: a type name, or ``prefix.*`` for every type under a prefix. A name
that is no type (yet) is allowed and matches nothing."""
FILTERS_PATTERN = f"^{_FILTER}(?:,{_FILTER})*$"
"""Filters in one string, comma-separated (a query parameter)."""
_ONE_FILTER = re.compile(FILTER_PATTERN)


def check_types(types: Iterable[str] | None, *, field_name: str = "types") -> list[str]:
    """Event type filters (``FILTER_PATTERN``), each string comma-separated."""
    found: list[str] = []
    for raw in types or ():
        for name in (part.strip() for part in raw.split(",")):
            if not name:
                continue
            if _ONE_FILTER.fullmatch(name):
                found.append(name)
            else:
                raise InvalidInput(
                    f"unknown event type {name[:64]!r}",
                    code="invalid_event_type",
                    details={"field": field_name},
                )
    return sorted(set(found))


def type_matches(type_: str, filters: Sequence[str]) -> bool:
    """``type_`` is one of ``filters`` (exact names or ``prefix.*``); no filter: any."""
    if not filters:
        return True
    return any(type_ == f or (f.endswith(".*") and type_.startswith(f[:-1])) for f in filters)


_GRAPH_TYPES: tuple[tuple[EdgeType, bool, str], ...] = (
    (EdgeType.BLOCKS, True, "graph.blocked"),
    (EdgeType.BLOCKS, False, "graph.unblocked"),
    (EdgeType.FRIEND, True, "graph.friend_added"),
    (EdgeType.FRIEND, False, "graph.friend_removed"),
    (EdgeType.REQUEST_OUT, True, "graph.friend_requested"),
    (EdgeType.REQUEST_OUT, False, "graph.friend_request_closed"),
    (EdgeType.REQUEST_IN, False, "graph.friend_request_closed"),
    (EdgeType.FOLLOWS, True, "graph.followed"),
    (EdgeType.FOLLOWED_BY, True, "graph.follow_approved"),
    (EdgeType.FOLLOWS, False, "graph.unfollowed"),
    (EdgeType.FOLLOW_REQUEST_OUT, True, "graph.follow_requested"),
    (EdgeType.FOLLOW_REQUEST_OUT, False, "graph.follow_request_closed"),
    (EdgeType.FOLLOW_REQUEST_IN, False, "graph.follow_request_closed"),
    (EdgeType.MUTES, True, "graph.muted"),
    (EdgeType.MUTES, False, "graph.unmuted"),
)


def graph_event_type(added: Iterable[EdgeType], removed: Iterable[EdgeType]) -> str:
    """The stream type of one graph write, by the most telling edge it changed."""
    add, remove = set(added), set(removed)
    for edge, is_added, name in _GRAPH_TYPES:
        if edge in (add if is_added else remove):
            return name
    return "graph.changed"


@dataclass(slots=True)
class Redactions:
    """What redaction events have named so far: accounts erased, messages gone."""

    users: set[int] = field(default_factory=set)
    messages: set[int] = field(default_factory=set)

    def note(self, event: DomainEvent) -> None:
        if event.type == "account.erased":
            self.users.add(int(event.data.get("user_id", 0)))
        elif event.type == "message.redacted":
            self.messages.add(int(event.data.get("message_id", 0)))

    def covers(self, event: DomainEvent) -> bool:
        """The event is about an erased account or a message that is gone."""
        if event.type in REDACTION_TYPES:
            return False
        if event.message_id is not None and event.message_id in self.messages:
            return True
        for name in USER_FIELDS:
            value = event.data.get(name)
            values = value if isinstance(value, list) else [value]
            if any(_as_int(v) in self.users for v in values):
                return True
        return False


def _as_int(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def ids_text(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with ints as strings (JavaScript loses precision past 2^53)."""
    return {
        k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in data.items()
    }
