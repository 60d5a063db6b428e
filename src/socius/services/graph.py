"""The friend/follow/block graph: mutations by the rules in domain.graph, and its lists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import msgspec

from socius.domain.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from socius.domain.events import Event
from socius.domain.graph import (
    EdgeRow,
    EdgeType,
    Plan,
    Relationship,
    check_not_self,
    plan_accept_friend,
    plan_approve_follow,
    plan_block,
    plan_cancel_friend_request,
    plan_decline_friend,
    plan_follow,
    plan_friend_request,
    plan_mute,
    plan_reject_follow,
    plan_unblock,
    plan_unfollow,
    plan_unfriend,
    plan_unmute,
)
from socius.domain.graph_writes import PairState, PairWrite, pair_of_code
from socius.domain.ids import IdGenerator
from socius.domain.pagination import EdgePosition, check_limit, decode_cursor, encode_cursor
from socius.domain.stream import graph_event_type
from socius.services.delivery import Delivery
from socius.services.graph_cache import GraphCache, head_key
from socius.services.lookaside import deferred_fills
from socius.services.pair_plans import Planner, plan_classes
from socius.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from socius.services.profiles import Profile, ProfileService, profile_key, profiles_read_here
from socius.services.rate_limits import UserLimits
from socius.services.rendered import RenderedBodies

__all__ = ["MAX_RELATIONSHIP_IDS", "EdgePage", "GraphService", "ListedUser"]

MAX_RELATIONSHIP_IDS = 100
# A checked write whose pair moved this many times in a row is sent under the lock.
_CHECKED_TRIES = 3


def _follow(rel: Relationship, other_private: bool) -> Plan:
    return plan_follow(rel, other_is_private=other_private)


def _ignoring_privacy(plan: Callable[[Relationship], Plan]) -> Planner:
    def planner(rel: Relationship, _other_private: bool) -> Plan:
        return plan(rel)

    return planner


# One planner object per change: their classes of states are computed once (pair_plans).
_PLANNERS: dict[Callable[[Relationship], Plan], Planner] = {
    plan: _ignoring_privacy(plan)
    for plan in (
        plan_friend_request,
        plan_accept_friend,
        plan_decline_friend,
        plan_cancel_friend_request,
        plan_unfriend,
        plan_unfollow,
        plan_approve_follow,
        plan_reject_follow,
        plan_block,
        plan_unblock,
        plan_mute,
        plan_unmute,
    )
}


class ListedUser(msgspec.Struct, frozen=True, gc=False):
    # Structs, not frozen dataclasses: a page makes 50 (decision 0039).
    profile: Profile
    since: datetime


class EdgePage(msgspec.Struct, frozen=True):
    items: list[ListedUser]
    next_cursor: str | None


def _user_not_found() -> NotFound:
    return NotFound("no such user", code="user_not_found")


class GraphService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        profiles: ProfileService,
        cache: GraphCache,
        delivery: Delivery,
        *,
        limits: UserLimits | None = None,
        bodies: RenderedBodies | None = None,
    ) -> None:
        """``bodies``: where this node keeps rendered response bodies (none: not kept)."""
        self._uow = uow
        self._bodies = bodies or RenderedBodies(None)
        self._clock = clock
        self._ids = ids
        self._profiles = profiles
        self._cache = cache
        self._delivery = delivery
        self._limits = limits or UserLimits.off()

    # mutations -----------------------------------------------------------------------

    async def _apply(self, actor: int, other: int, planner: Planner) -> Relationship:
        check_not_self(actor, other)
        async with self._uow(driver=True) as uow:  # its statements all on the driver
            edges = uow.edges
            done = None
            if edges.checks_pairs:
                done = await self._write_checked(uow, actor, other, planner)
            if done is None:
                # The pair's lock, then one read for the users, the edges between them and
                # whether the other mutes the actor; one write for all of it (0027).
                await edges.lock_pair(actor, other)
                state = await edges.pair_state(actor, other)
                _check_users(state)
                before = Relationship(other, state.types)
                plan = planner(before, state.other_private)
                if plan.changes_nothing:
                    return before
                change = self._pair_write(uow, actor, other, plan, state)
                done = plan, before, await edges.write_pair(change)
            found, before, stored = done
            if found is None:
                return before
            changed = {*found.add, *found.remove}

            # Invalidate (every node's L1 too) before the events are published and the
            # relay is woken: a client that reacts to one reads the new state. The events
            # go with the invalidation: one round trip on Redis (decision 0040).
            async def announce() -> None:
                messages = self._delivery.messages(stored) if stored else ()
                if not await self._cache.pair_changed(actor, other, changed, then=messages):
                    self._delivery.unpublished()

            uow.after_commit(announce)
            await uow.commit()
        return Relationship(other, (before.edges - set(found.remove)) | set(found.add))

    async def _write_checked(
        self, uow: UnitOfWork, actor: int, other: int, planner: Planner
    ) -> tuple[Plan | None, Relationship, list[Event]] | None:
        """PostgreSQL (decision 0053): the change planned before the pair is read, for
        the class of states where it does the same as in the emptiest one where it does
        anything (``pair_plans``), and sent as one statement by itself that takes the
        pair's lock, reads it and writes only if the pair is in that class; else the
        pair as found is planned and sent again. (plan, relationship before, stored
        events); (None, relationship) when the change does nothing; None when the pair
        kept moving: the caller takes the lock and reads it."""
        classes = plan_classes(planner)
        code = classes.first
        types, private, muted = pair_of_code(code)
        state = PairState(True, True, private, types, muted)
        for _ in range(_CHECKED_TRIES):
            plan = planner(Relationship(other, state.types), state.other_private)
            change = self._pair_write(uow, actor, other, plan, state)
            state, stored = await uow.edges.write_pair_checked(change, classes.members[code])
            before = Relationship(other, state.types)
            if stored is not None:
                return plan, before, stored
            _check_users(state)
            plan = planner(before, state.other_private)
            if plan.changes_nothing:
                return None, before, []
            code = state.code
        return None

    def _pair_write(
        self, uow: UnitOfWork, actor: int, other: int, plan: Plan, state: PairState
    ) -> PairWrite:
        """What ``plan`` stores: its edges, the events to log, the inbox rows and the
        stream's event."""
        now = self._clock()
        events = _events(plan, actor, other)
        # A mute keeps the event, which tells a change of state, but not the
        # notification: none to someone who mutes the other party.
        muting = {actor} if EdgeType.MUTES in state.types else set()
        if state.other_mutes_actor:
            muting.add(other)
        log, notes = self._delivery.prepare(
            events, [e for e in events if e.user_id not in muting], now
        )
        domain = self._delivery.prepare_domain(
            uow,
            graph_event_type(plan.add, plan.remove),
            {
                "actor_id": actor,
                "other_id": other,
                "added": [t.name.lower() for t in plan.add],
                "removed": [t.name.lower() for t in plan.remove],
            },
        )
        return PairWrite(
            actor,
            other,
            remove=plan.remove,
            add=plan.add,
            pos=self._ids.next_id(),
            created_at=now,
            log=log,
            notifications=notes,
            domain=domain,
        )

    async def send_friend_request(self, actor: int, other: int) -> Relationship:
        await self._limits.friend_requests.check(actor)
        return await self._apply(actor, other, _PLANNERS[plan_friend_request])

    async def accept_friend_request(self, actor: int, other: int) -> Relationship:
        return await self._apply(actor, other, _PLANNERS[plan_accept_friend])

    async def decline_friend_request(self, actor: int, other: int) -> Relationship:
        return await self._apply(actor, other, _PLANNERS[plan_decline_friend])

    async def cancel_friend_request(self, actor: int, other: int) -> Relationship:
        return await self._apply(actor, other, _PLANNERS[plan_cancel_friend_request])

    async def unfriend(self, actor: int, other: int) -> Relationship:
        return await self._apply(actor, other, _PLANNERS[plan_unfriend])

    async def follow(self, actor: int, other: int) -> Relationship:
        return await self._apply(actor, other, _follow)

    async def unfollow(self, actor: int, other: int) -> Relationship:
        return await self._apply(actor, other, _PLANNERS[plan_unfollow])

    async def approve_follow_request(self, actor: int, other: int) -> Relationship:
        return await self._apply(actor, other, _PLANNERS[plan_approve_follow])

    async def reject_follow_request(self, actor: int, other: int) -> Relationship:
        return await self._apply(actor, other, _PLANNERS[plan_reject_follow])

    async def block(self, actor: int, other: int) -> Relationship:
        return await self._apply(actor, other, _PLANNERS[plan_block])

    async def unblock(self, actor: int, other: int) -> Relationship:
        return await self._apply(actor, other, _PLANNERS[plan_unblock])

    async def mute(self, actor: int, other: int) -> Relationship:
        return await self._apply(actor, other, _PLANNERS[plan_mute])

    async def unmute(self, actor: int, other: int) -> Relationship:
        return await self._apply(actor, other, _PLANNERS[plan_unmute])

    # reads ---------------------------------------------------------------------------

    async def relationship(self, viewer: int, other: int) -> Relationship:
        return Relationship(other, await self._cache.relationship(viewer, other))

    async def relationships(self, viewer: int, others: Sequence[int]) -> list[Relationship]:
        if len(others) > MAX_RELATIONSHIP_IDS:
            raise InvalidInput(
                f"at most {MAX_RELATIONSHIP_IDS} ids",
                code="too_many_ids",
                details={"field": "ids"},
            )
        unique = list(dict.fromkeys(others))
        found = await self._cache.relationships(viewer, unique)
        return [Relationship(o, found[o]) for o in unique]

    async def _blocked_with(self, viewer: int, others: Sequence[int]) -> set[int]:
        """Those of ``others`` blocked either way with ``viewer``: from the viewer's one
        cached set of blocks (decision 0026), or pair by pair when it is too long to hold."""
        held = await self._cache.blocked(viewer)
        if held is not None:
            return {o for o in others if o in held} if held else set()
        found = await self._cache.relationships(viewer, list(dict.fromkeys(others)))
        return {u for u, t in found.items() if EdgeType.BLOCKS in t or EdgeType.BLOCKED_BY in t}

    async def visible_profile(self, viewer: int, user_id: int) -> Profile:
        """A profile, hidden (404) across a block either way."""
        if viewer != user_id and await self._blocked_with(viewer, (user_id,)):
            raise _user_not_found()
        return await self._profiles.get(user_id)

    async def visible_profile_body(
        self, viewer: int, user_id: int, render: Callable[[Profile], bytes]
    ) -> bytes:
        """``render(visible_profile(viewer, user_id))``: the block check each time, the
        body of the profile (the same for every viewer) kept while the profile is."""
        if viewer != user_id and await self._blocked_with(viewer, (user_id,)):
            raise _user_not_found()

        async def build() -> tuple[bytes, list[str]]:
            return render(await self._profiles.get(user_id)), [profile_key(user_id)]

        return await self._bodies.body(f"b:profile:{user_id}", build)

    async def visible_profiles(self, viewer: int, user_ids: Sequence[int]) -> dict[int, Profile]:
        """The profiles among ``user_ids`` that ``viewer`` may see (``visible_profile`` for
        many: one cached multi-get of relationships, one of profiles); the rest are left
        out: unknown, erased, or blocked either way."""
        others = [u for u in dict.fromkeys(user_ids) if u != viewer]
        hidden = await self._blocked_with(viewer, others) if others else set()
        shown = [u for u in dict.fromkeys(user_ids) if u not in hidden]
        return await self._profiles.get_many(shown) if shown else {}

    async def check_list_visible(self, viewer: int, owner: int) -> None:
        """May ``viewer`` see ``owner``'s friend and follower lists?"""
        if viewer == owner:
            return
        if await self._blocked_with(viewer, (owner,)):
            raise _user_not_found()
        await self._check_not_private(viewer, owner)

    async def _check_not_private(self, viewer: int, owner: int) -> None:
        """The rest of ``check_list_visible``, once no block is found between them."""
        profile = await self._profiles.get(owner)
        if profile.is_private and EdgeType.FRIEND not in await self._cache.relationship(
            viewer, owner
        ):
            raise Forbidden("this account's lists are private", code="private_account")

    async def _prefetch(
        self, viewer: int, owner: int, head: EdgeType | None, limit: int | None
    ) -> None:
        """Before a read of ``owner``'s lists, what it reads first (the viewer's blocks,
        the owner's profile and, for a first page, the list's head) into this node's L1
        in one cache round trip, where they were three (decision 0032). Only while L1
        holds them: else each is read again where it is used."""
        if not self._cache.remembers:
            return
        first: tuple[EdgeType, int] | None = None
        if head is not None:
            try:
                size = check_limit(limit)
            except InvalidInput:  # answered after the visibility checks, as before
                size = None
            if size is not None:  # the page and its probe row, as _first_page_body asks
                first = (head, size + 1)
        # Their misses read in one statement (decision 0059), each of them filled.
        lookups, together = self._cache.first_read(viewer, owner, first, users=self._profiles)
        await self._cache.get_each(lookups, together)

    async def list_edges(
        self,
        viewer: int,
        owner: int,
        type_: EdgeType,
        *,
        limit: int | None,
        cursor: str | None,
    ) -> EdgePage:
        """One page of ``owner``'s edges of ``type_``, newest first, as profiles; those
        blocked either way with ``viewer`` left out."""
        await self.check_list_visible(viewer, owner)
        return await self._page(owner, type_, limit, cursor, viewer=viewer)

    async def list_edges_body(
        self,
        viewer: int,
        owner: int,
        type_: EdgeType,
        *,
        limit: int | None,
        cursor: str | None,
        render: Callable[[EdgePage], bytes],
    ) -> bytes:
        """``render(list_edges(...))``. A first page seen by a viewer who blocks no one
        and whom no one blocks hides no one: it is the owner's own first page, whose body
        is kept (``list_own_body``) and shared by every such viewer."""
        return await _reading_lists(
            self._list_edges_body(viewer, owner, type_, limit, cursor, render)
        )

    async def _list_edges_body(
        self,
        viewer: int,
        owner: int,
        type_: EdgeType,
        limit: int | None,
        cursor: str | None,
        render: Callable[[EdgePage], bytes],
    ) -> bytes:
        if viewer == owner:
            if cursor is None:
                return await self._first_page_body(owner, type_, check_limit(limit), render)
            return render(await self._page(owner, type_, limit, cursor))
        await self._prefetch(viewer, owner, type_ if cursor is None else None, limit)
        # The viewer's blocks, read once for the visibility check and the page
        # (``check_list_visible`` and ``_blocked_with`` each read them again).
        held = await self._cache.blocked(viewer)
        if held is None:  # too many to hold: pair by pair
            await self.check_list_visible(viewer, owner)
        else:
            if owner in held:
                raise _user_not_found()
            await self._check_not_private(viewer, owner)
            if cursor is None and not held:
                return await self._first_page_body(owner, type_, check_limit(limit), render)
        return render(await self._page(owner, type_, limit, cursor, viewer=viewer))

    async def list_own(
        self, viewer: int, type_: EdgeType, *, limit: int | None, cursor: str | None
    ) -> EdgePage:
        return await self._page(viewer, type_, limit, cursor)

    async def list_own_body(
        self,
        viewer: int,
        type_: EdgeType,
        *,
        limit: int | None,
        cursor: str | None,
        render: Callable[[EdgePage], bytes],
    ) -> bytes:
        """``render(list_own(...))``; a first page's body is kept while its list head and
        its users' profiles are (later pages may be read from a replica: not kept)."""
        if cursor is not None:
            return render(await self._page(viewer, type_, limit, cursor))
        return await _reading_lists(
            self._first_page_body(viewer, type_, check_limit(limit), render)
        )

    async def _first_page_body(
        self, owner: int, type_: EdgeType, size: int, render: Callable[[EdgePage], bytes]
    ) -> bytes:
        """The body of ``owner``'s first page of ``size``, hiding no one: kept while its
        list head and its users' profiles are."""

        async def build() -> tuple[bytes, list[str]]:
            rows = await self._cache.edge_page(
                owner, type_, limit=size + 1, before_pos=None, users=self._profiles
            )
            deps = [head_key(owner, type_)]
            deps += [profile_key(r.dst) for r in rows[:size]]
            return render(await self._render(rows, size)), deps

        return await self._bodies.body(f"b:list:{owner}:{int(type_)}:{size}", build)

    async def _page(
        self,
        owner: int,
        type_: EdgeType,
        limit: int | None,
        cursor: str | None,
        *,
        viewer: int | None = None,
    ) -> EdgePage:
        size = check_limit(limit)
        before = _position(cursor)
        rows = await self._cache.edge_page(
            owner, type_, limit=size + 1, before_pos=before, users=self._profiles
        )
        hidden: set[int] = set()
        if rows and viewer is not None and viewer != owner:  # (own lists hold no one blocked)
            hidden = await self._blocked_with(viewer, [r.dst for r in rows[:size]])
        return await self._render(rows, size, hidden=hidden)

    async def mutual_friends(
        self, viewer: int, other: int, *, limit: int | None, cursor: str | None
    ) -> EdgePage:
        check_not_self(viewer, other)
        with profiles_read_here():
            return await self._mutual_friends(viewer, other, limit, cursor)

    async def _mutual_friends(
        self, viewer: int, other: int, limit: int | None, cursor: str | None
    ) -> EdgePage:
        async with deferred_fills():
            await self._prefetch(viewer, other, None, limit)
            await self.check_list_visible(viewer, other)
            size = check_limit(limit)
            rows = await self._cache.mutual(
                viewer,
                other,
                EdgeType.FRIEND,
                limit=size + 1,
                before_pos=_position(cursor),
                users=self._profiles,
            )
            return await self._render(rows, size)

    async def _render(
        self, rows: list[EdgeRow], size: int, *, hidden: set[int] | None = None
    ) -> EdgePage:
        """A page of ``size`` of ``rows`` (one more says there is a next page); users in
        ``hidden`` are left out, and the cursor still moves past them."""
        shown = rows[:size]
        listed = [r for r in shown if not hidden or r.dst not in hidden]
        profiles = await self._profiles.get_many([r.dst for r in listed])
        items = [ListedUser(profiles[r.dst], r.created_at) for r in listed if r.dst in profiles]
        more = len(rows) > size
        return EdgePage(
            items, encode_cursor(EdgePosition(p=shown[-1].pos)) if more and shown else None
        )


async def _reading_lists(body: Awaitable[bytes]) -> bytes:
    """Await a list body's build with the head's fill deferred with its users' (decision
    0032) and its users handed to the page as read (decision 0039)."""
    with profiles_read_here():
        async with deferred_fills():
            return await body


def _position(cursor: str | None) -> int | None:
    position = decode_cursor(cursor, EdgePosition)
    return None if position is None else position.p


def _check_users(state: PairState) -> None:
    if not state.other_active:
        raise _user_not_found()
    if not state.actor_exists:
        raise Unauthenticated("the account no longer exists", code="account_gone")


def _events(plan: Plan, actor: int, other: int) -> list[Event]:
    events = []
    for type_, to in plan.events:
        recipient, about = (other, actor) if to == "other" else (actor, other)
        events.append(Event(user_id=recipient, type=type_, payload={"user_id": str(about)}))
    return events
