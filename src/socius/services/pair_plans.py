"""The states of a pair that a graph change plans alike (decision 0053).

A change's plan (``domain.graph``'s planners) and what its write stores depend on the
pair's state alone: the edge types from the actor to the other user, whether the other
user is private, and whether they mute the actor (``domain.graph_writes.pair_code``).
For one planner the 4,096 states fall into classes that plan alike: the same edges
added and removed, the same events, the same notifications left out for a mute. A
write planned for one state of a class is right for every state of it.

On PostgreSQL a graph write is planned before the pair is read, for the class of the
emptiest state in which the change does anything (a follow: no edge; an unfollow: a
follow), and sent with that class; the database stores it only if the pair, read
under its lock, is in the class, and answers the pair as it found it otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from socius.domain.errors import DomainError
from socius.domain.graph import EdgeType, Plan, Relationship
from socius.domain.graph_writes import PAIR_CODES, pair_of_code

__all__ = ["PlanClasses", "Planner", "plan_classes"]

# The plan of a change from the relationship and whether the other user is private.
Planner = Callable[[Relationship, bool], Plan]


@dataclass(frozen=True, slots=True)
class PlanClasses:
    """``first``: the emptiest state in which the change does anything; ``members``:
    each state's class, as a bitmap over the states (bit ``code`` of byte ``code // 8``,
    least significant first: PostgreSQL's ``get_bit`` on ``bytea``)."""

    first: int
    members: dict[int, bytes]


@functools.cache
def plan_classes(planner: Planner) -> PlanClasses:
    """``planner``'s classes (computed once per planner: 4,096 plans)."""
    keys: dict[int, object] = {}
    for code in range(PAIR_CODES):
        types, private, muted = pair_of_code(code)
        try:
            plan = planner(Relationship(0, types), private)
        except DomainError:
            continue  # refused in this state: in no class, always read first
        if plan.changes_nothing:
            continue  # nothing to write: the read is the answer
        # A mute, either way, leaves a notification out (GraphService._pair_write).
        keys[code] = (plan, EdgeType.MUTES in types, muted)
    by_key: dict[object, bytearray] = {}
    for code, key in keys.items():
        bits = by_key.setdefault(key, bytearray(PAIR_CODES // 8))
        bits[code >> 3] |= 1 << (code & 7)
    frozen = {key: bytes(bits) for key, bits in by_key.items()}
    first = min(keys, key=lambda c: (c.bit_count(), c))
    return PlanClasses(first, {code: frozen[key] for code, key in keys.items()})
