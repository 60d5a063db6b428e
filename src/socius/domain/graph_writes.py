"""What one change of the graph between two users reads and writes, as one unit: the
storage sends it in as few statements as its database allows (decision 0027)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from socius.domain.events import Event
from socius.domain.graph import EdgeType
from socius.domain.notifications import Notification
from socius.domain.stream import DomainEvent

__all__ = ["PAIR_CODES", "PairState", "PairWrite", "pair_code", "pair_of_code", "types_of_code"]


# A pair's state as a number below PAIR_CODES (decision 0053; socius_pair_write computes
# the same): bit ``type - 1`` for each edge type from the actor to the other user, then
# whether the other user is private (bit 10) and mutes the actor (bit 11).
PAIR_CODES = 1 << 12
_PRIVATE = 1 << 10
_MUTED = 1 << 11


def pair_code(types: frozenset[EdgeType], private: bool, muted: bool) -> int:
    code = sum(1 << (int(t) - 1) for t in types)
    return code | (_PRIVATE if private else 0) | (_MUTED if muted else 0)


def pair_of_code(code: int) -> tuple[frozenset[EdgeType], bool, bool]:
    """``pair_code``'s arguments back."""
    return types_of_code(code), bool(code & _PRIVATE), bool(code & _MUTED)


def types_of_code(code: int) -> frozenset[EdgeType]:
    """The edge types of a ``pair_code`` (its low bits)."""
    return _TYPES[code & (_PRIVATE - 1)]


_TYPES = [frozenset(t for t in EdgeType if code >> (int(t) - 1) & 1) for code in range(_PRIVATE)]


@dataclass(frozen=True, slots=True)
class PairState:
    """The pair as a graph write finds it: whether the actor's account is there, whether
    the other user's is there and active and whether it is private, the edge types from
    ``actor`` to ``other``, and whether ``other`` mutes ``actor``. Read under the pair's
    lock (the users' rows locked against erasure until the transaction ends), or as a
    write that checked it under the lock found it (``write_pair_checked``: PostgreSQL,
    decision 0053)."""

    actor_exists: bool
    other_active: bool
    other_private: bool
    types: frozenset[EdgeType]
    other_mutes_actor: bool

    @property
    def code(self) -> int:
        return pair_code(self.types, self.other_private, self.other_mutes_actor)


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
