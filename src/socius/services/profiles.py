"""Public profiles: what anyone signed in may see of a user, with the graph's counts.

Profiles are read through the look-aside cache (``p:<id>``); whatever changes a profile
or its counts invalidates that key after commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec

from socius.domain.errors import NotFound
from socius.domain.graph import EdgeType, ListedUserRow
from socius.domain.pagination import OffsetPosition, check_limit, decode_cursor, encode_cursor
from socius.domain.text import has_control_chars
from socius.domain.users import User, normalize_login
from socius.services.lookaside import LookAside, Lookup, msgpack_codec
from socius.services.ports import HotReads, UnitOfWork, UnitOfWorkFactory

__all__ = ["COUNTED", "Profile", "ProfileService", "SearchPage", "profile_key", "profile_of"]

_SEARCH_MAX_OFFSET = 1000
PROFILE_TTL = 300.0
COUNTED = (EdgeType.FRIEND, EdgeType.FOLLOWED_BY, EdgeType.FOLLOWS)


class Profile(msgspec.Struct, frozen=True, array_like=True):
    """The public face of a user: no email, no credentials."""

    id: int
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    is_private: bool
    created_at: datetime
    friends_count: int = 0
    followers_count: int = 0
    following_count: int = 0


_encode, _decode = msgpack_codec(Profile)


@dataclass(frozen=True, slots=True)
class SearchPage:
    items: list[Profile]
    next_cursor: str | None


def profile_key(user_id: int) -> str:
    return f"p:{user_id}"


def _not_found() -> NotFound:
    return NotFound("no such user", code="user_not_found")


def profile_of(user: User, counts: dict[EdgeType, int]) -> Profile:
    """The profile of ``user`` with their stored ``counts`` (as a load would build it)."""
    return _profile(user, counts)


def _profile(user: User, counts: dict[EdgeType, int]) -> Profile:
    return Profile(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        bio=user.bio,
        avatar_url=user.avatar_url,
        is_private=user.is_private,
        created_at=user.created_at,
        friends_count=counts.get(EdgeType.FRIEND, 0),
        followers_count=counts.get(EdgeType.FOLLOWED_BY, 0),
        following_count=counts.get(EdgeType.FOLLOWS, 0),
    )


async def load_profiles(uow: UnitOfWork, ids: Sequence[int]) -> dict[int, Profile]:
    """Active users' profiles with their counts, read in one query."""
    found = await uow.users.get_many_with_counts(list(ids), COUNTED)
    return {u.id: _profile(u, counts) for u, counts in found if u.is_active}


class ProfileService:
    def __init__(
        self, uow: UnitOfWorkFactory, cache: LookAside, *, reads: HotReads | None = None
    ) -> None:
        """``reads``: the driver's reads, for the misses (None or unavailable: units of
        work)."""
        self._uow = uow
        self._cache = cache
        self._reads = reads if reads is not None and reads.available else None

    async def _load_many(self, ids: list[int]) -> dict[int, Profile]:
        if self._reads is not None:  # one statement on the driver (decision 0026)
            found = await self._reads.users_with_counts(ids, COUNTED)
            return {u.id: _profile(u, counts) for u, counts in found if u.is_active}
        async with self._uow(write=False, replica=True) as uow:
            return await load_profiles(uow, ids)

    def ticket(self) -> tuple[int, float]:
        """Take before reading profiles that ``remember`` is then given."""
        return self._cache.ticket()

    def remember(
        self,
        found: Sequence[tuple[int, ListedUserRow | None]],
        ticket: tuple[int, float],
    ) -> None:
        """Keep in this node's L1 the profiles of users read (with their counts) since
        ``ticket`` by another read than ours (a list's head with its users: decision
        0032); none whose key was invalidated since. The shared cache is not filled:
        that takes a lease before the read."""
        friends, followers, following = COUNTED
        kept: list[tuple[str, object]] = []
        for user_id, row in found:
            profile = None
            if row is not None and row.active:
                counts = row.counts
                profile = Profile(
                    id=row.id,
                    username=row.username,
                    display_name=row.display_name,
                    bio=row.bio,
                    avatar_url=row.avatar_url,
                    is_private=row.is_private,
                    created_at=row.created_at,
                    friends_count=counts.get(friends, 0),
                    followers_count=counts.get(followers, 0),
                    following_count=counts.get(following, 0),
                )
            kept.append((f"p:{user_id}", profile))  # profile_key, inlined: 51 a page
        self._cache.remember_many(kept, ticket)

    def lookup(self, user_id: int) -> Lookup[Profile]:
        """What ``get`` reads, for a ``LookAside.get_each`` of several kinds of keys."""

        async def load() -> Profile | None:
            return (await self._load_many([user_id])).get(user_id)

        return Lookup(profile_key(user_id), load, PROFILE_TTL, _encode, _decode, self._cache.name)

    async def get(self, user_id: int) -> Profile:
        async def load() -> Profile | None:
            return (await self._load_many([user_id])).get(user_id)

        profile = await self._cache.get(
            profile_key(user_id), load, ttl=PROFILE_TTL, encode=_encode, decode=_decode
        )
        if profile is None:
            raise _not_found()
        return profile

    async def get_many(self, ids: Sequence[int]) -> dict[int, Profile]:
        """The profiles that exist among ``ids``."""
        found = await self._cache.get_many(
            ids,
            self._load_many,
            key=profile_key,
            ttl=PROFILE_TTL,
            encode=_encode,
            decode=_decode,
        )
        return {p.id: p for p in found if p is not None}

    async def by_username(self, username: str) -> Profile:
        name = normalize_login(username)
        if not name:
            raise _not_found()
        async with self._uow(write=False, replica=True) as uow:
            user = await uow.users.get_by_username(name)
        if user is None or not user.is_active:
            raise _not_found()
        return await self.get(user.id)

    async def invalidate(self, *user_ids: int, near_only: Sequence[str] = ()) -> None:
        """After a commit: the profiles of ``user_ids``, and ``near_only`` (node-local
        keys) in the same broadcast to every node."""
        await self._cache.invalidate(*(profile_key(u) for u in user_ids), near_only=near_only)

    async def search(
        self, viewer: int, query: str, *, limit: int | None, cursor: str | None
    ) -> SearchPage:
        """Users matching ``query``, best first; never one blocked either way with
        ``viewer``."""
        size = check_limit(limit)
        position = decode_cursor(cursor, OffsetPosition)
        offset = 0 if position is None else min(position.o, _SEARCH_MAX_OFFSET)
        q = query.strip()
        if not q or has_control_chars(q):
            return SearchPage([], None)
        async with self._uow(write=False, replica=True) as uow:
            users = await uow.users.search(q[:64], viewer=viewer, limit=size + 1, offset=offset)
            shown = users[:size]
            profiles = await load_profiles(uow, [u.id for u in shown])
        more = len(users) > size and offset + size < _SEARCH_MAX_OFFSET
        return SearchPage(
            [profiles[u.id] for u in shown if u.id in profiles],
            encode_cursor(OffsetPosition(o=offset + size)) if more else None,
        )
