"""What one change of the graph between two users reads and writes, as one unit: the
storage sends it in as few statements as its database allows (decision 0027)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from socius.domain.events import Event
from socius.domain.graph import EdgeType
from socius.domain.notifications import Notification
from socius.domain.stream import DomainEvent
from socius.domain.users import User

__all__ = ["PairState", "PairWrite"]


@dataclass(frozen=True, slots=True)
class PairState:
    """The pair as a graph write finds it, once its lock is held: the two users (those
    that exist, each row locked against erasure until the transaction ends), the edge
    types from ``actor`` to ``other``, and whether ``other`` mutes ``actor``."""

    users: dict[int, User]
    types: frozenset[EdgeType]
    other_mutes_actor: bool


@dataclass(frozen=True, slots=True)
class PairWrite:
    """Everything one graph write stores, in its transaction.

    ``remove``/``add``: the edge types from ``actor`` to ``other`` (each with its
    inverse, and the counts moved by one; a removed edge is there and an added one is
    not: the pair is locked and was read). ``log``: events for the recipients' logs
    (``seq`` unset), numbered by the storage in list order per user. ``notifications``:
    inbox rows. ``domain``: the durable stream's events."""

    actor: int
    other: int
    remove: tuple[EdgeType, ...]
    add: tuple[EdgeType, ...]
    pos: int
    created_at: datetime
    log: list[Event] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    domain: list[DomainEvent] = field(default_factory=list)
