"""The social graph: typed edges, relationships, and the rules for changing them.

Edges are directed ``(src, type, dst)``. Every edge type but ``MUTES`` has an inverse
that is stored with it (``FOLLOWS`` from a to b is ``FOLLOWED_BY`` from b to a), so all
that is known about a pair, seen from ``a``, is the set of edge types from ``a`` to ``b``.

The rules are pure: given the relationship as it is, they return a ``Plan`` of edges to
add and remove (seen from the actor) and the events to emit. Services apply plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

import msgspec

from socius.domain.errors import Forbidden, InvalidInput, NotFound

__all__ = [
    "INVERSE",
    "EdgeRow",
    "EdgeType",
    "ListedUserRow",
    "Plan",
    "Relationship",
    "check_not_self",
    "plan_accept_friend",
    "plan_approve_follow",
    "plan_block",
    "plan_cancel_friend_request",
    "plan_decline_friend",
    "plan_follow",
    "plan_friend_request",
    "plan_mute",
    "plan_reject_follow",
    "plan_unblock",
    "plan_unfollow",
    "plan_unfriend",
    "plan_unmute",
]


class EdgeType(IntEnum):
    FRIEND = 1
    FOLLOWS = 2
    FOLLOWED_BY = 3
    BLOCKS = 4
    BLOCKED_BY = 5
    REQUEST_OUT = 6
    REQUEST_IN = 7
    FOLLOW_REQUEST_OUT = 8
    FOLLOW_REQUEST_IN = 9
    MUTES = 10


INVERSE: dict[EdgeType, EdgeType | None] = {
    EdgeType.FRIEND: EdgeType.FRIEND,
    EdgeType.FOLLOWS: EdgeType.FOLLOWED_BY,
    EdgeType.FOLLOWED_BY: EdgeType.FOLLOWS,
    EdgeType.BLOCKS: EdgeType.BLOCKED_BY,
    EdgeType.BLOCKED_BY: EdgeType.BLOCKS,
    EdgeType.REQUEST_OUT: EdgeType.REQUEST_IN,
    EdgeType.REQUEST_IN: EdgeType.REQUEST_OUT,
    EdgeType.FOLLOW_REQUEST_OUT: EdgeType.FOLLOW_REQUEST_IN,
    EdgeType.FOLLOW_REQUEST_IN: EdgeType.FOLLOW_REQUEST_OUT,
    EdgeType.MUTES: None,  # private to the muter: the muted user never learns of it
}


class EdgeRow(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One edge of a list: where it points and when it was made (``pos`` orders it).

    A Struct (not a dataclass): a page builds 51 of them, a frozen dataclass's
    ``__init__`` costs several times a Struct's; and list heads are cached as these
    rows, encoded ``[dst, pos, created_at]`` (services/graph_cache.py)."""

    dst: int
    pos: int
    created_at: datetime


class ListedUserRow(msgspec.Struct, frozen=True, gc=False):
    """A listed user's public columns and ``counts`` (of the edge types the read was
    asked for, in their order), read with its edge (decision 0032); ``active``: whether
    the account is active (else it is left out of lists). A Struct, with counts a tuple:
    a page builds 51 (decision 0052)."""

    id: int
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    is_private: bool
    created_at: datetime
    active: bool
    counts: tuple[int, ...]


# What a block ends, both ways (the inverses go with them).
_ENDED_BY_BLOCK = (
    EdgeType.FRIEND,
    EdgeType.REQUEST_OUT,
    EdgeType.REQUEST_IN,
    EdgeType.FOLLOWS,
    EdgeType.FOLLOWED_BY,
    EdgeType.FOLLOW_REQUEST_OUT,
    EdgeType.FOLLOW_REQUEST_IN,
)


@dataclass(frozen=True, slots=True)
class Relationship:
    """Everything ``user_id`` is to the viewer, from the viewer's side."""

    user_id: int
    edges: frozenset[EdgeType]

    @property
    def friend(self) -> bool:
        return EdgeType.FRIEND in self.edges

    @property
    def request_sent(self) -> bool:
        return EdgeType.REQUEST_OUT in self.edges

    @property
    def request_received(self) -> bool:
        return EdgeType.REQUEST_IN in self.edges

    @property
    def following(self) -> bool:
        return EdgeType.FOLLOWS in self.edges

    @property
    def followed_by(self) -> bool:
        return EdgeType.FOLLOWED_BY in self.edges

    @property
    def follow_requested(self) -> bool:
        return EdgeType.FOLLOW_REQUEST_OUT in self.edges

    @property
    def follow_request_received(self) -> bool:
        return EdgeType.FOLLOW_REQUEST_IN in self.edges

    @property
    def blocking(self) -> bool:
        return EdgeType.BLOCKS in self.edges

    @property
    def blocked_by(self) -> bool:
        return EdgeType.BLOCKED_BY in self.edges

    @property
    def muting(self) -> bool:
        return EdgeType.MUTES in self.edges

    @property
    def blocked_either_way(self) -> bool:
        return self.blocking or self.blocked_by


@dataclass(frozen=True, slots=True)
class Plan:
    """Edges to add and remove, from the actor to the other user, and events to emit.

    ``events`` name the event type and who receives it: "actor" or "other".
    """

    add: tuple[EdgeType, ...] = ()
    remove: tuple[EdgeType, ...] = ()
    events: tuple[tuple[str, str], ...] = field(default=())

    @property
    def changes_nothing(self) -> bool:
        return not self.add and not self.remove


NOTHING = Plan()


def check_not_self(actor: int, other: int) -> None:
    if actor == other:
        raise InvalidInput("you cannot do that to yourself", code="cannot_target_self")


def _reachable(rel: Relationship) -> None:
    """Neither side may reach the other across a block."""
    if rel.blocked_by:
        # Toward the blocked user the blocker's profile and lists behave as missing.
        raise NotFound("no such user", code="user_not_found")
    if rel.blocking:
        raise Forbidden("you have blocked this user; unblock them first", code="blocked")


def plan_friend_request(rel: Relationship) -> Plan:
    _reachable(rel)
    if rel.friend or rel.request_sent:
        return NOTHING
    if rel.request_received:  # they asked first: this is a yes
        return Plan(
            add=(EdgeType.FRIEND,),
            remove=(EdgeType.REQUEST_IN,),
            events=(("friend.accepted", "other"),),
        )
    return Plan(add=(EdgeType.REQUEST_OUT,), events=(("friend.request", "other"),))


def plan_accept_friend(rel: Relationship) -> Plan:
    if rel.friend:
        return NOTHING
    if not rel.request_received:
        raise NotFound("no friend request from this user", code="friend_request_not_found")
    _reachable(rel)
    return Plan(
        add=(EdgeType.FRIEND,),
        remove=(EdgeType.REQUEST_IN,),
        events=(("friend.accepted", "other"),),
    )


def plan_decline_friend(rel: Relationship) -> Plan:
    return Plan(remove=(EdgeType.REQUEST_IN,)) if rel.request_received else NOTHING


def plan_cancel_friend_request(rel: Relationship) -> Plan:
    return Plan(remove=(EdgeType.REQUEST_OUT,)) if rel.request_sent else NOTHING


def plan_unfriend(rel: Relationship) -> Plan:
    return Plan(remove=(EdgeType.FRIEND,)) if rel.friend else NOTHING


def plan_follow(rel: Relationship, *, other_is_private: bool) -> Plan:
    _reachable(rel)
    if rel.following or rel.follow_requested:
        return NOTHING
    if other_is_private:
        return Plan(add=(EdgeType.FOLLOW_REQUEST_OUT,), events=(("follow.request", "other"),))
    return Plan(add=(EdgeType.FOLLOWS,), events=(("follow.new", "other"),))


def plan_unfollow(rel: Relationship) -> Plan:
    remove = tuple(t for t in (EdgeType.FOLLOWS, EdgeType.FOLLOW_REQUEST_OUT) if t in rel.edges)
    return Plan(remove=remove)


def plan_approve_follow(rel: Relationship) -> Plan:
    """The actor (a private account) lets the other user follow them."""
    if rel.followed_by:
        return NOTHING
    if not rel.follow_request_received:
        raise NotFound("no follow request from this user", code="follow_request_not_found")
    return Plan(
        add=(EdgeType.FOLLOWED_BY,),
        remove=(EdgeType.FOLLOW_REQUEST_IN,),
        events=(("follow.accepted", "other"), ("follow.new", "actor")),
    )


def plan_reject_follow(rel: Relationship) -> Plan:
    return Plan(remove=(EdgeType.FOLLOW_REQUEST_IN,)) if rel.follow_request_received else NOTHING


def plan_block(rel: Relationship) -> Plan:
    remove = tuple(t for t in _ENDED_BY_BLOCK if t in rel.edges)
    add = () if rel.blocking else (EdgeType.BLOCKS,)
    return Plan(add=add, remove=remove)


def plan_unblock(rel: Relationship) -> Plan:
    return Plan(remove=(EdgeType.BLOCKS,)) if rel.blocking else NOTHING


def plan_mute(rel: Relationship) -> Plan:
    return NOTHING if rel.muting else Plan(add=(EdgeType.MUTES,))


def plan_unmute(rel: Relationship) -> Plan:
    return Plan(remove=(EdgeType.MUTES,)) if rel.muting else NOTHING
