"""Public profiles: what anyone signed in may see of a user, with the graph's counts.

Profiles are read through the look-aside cache (``p:<id>``); whatever changes a profile
or its counts invalidates that key after commit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
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

__all__ = [
    "COUNTED",
    "Profile",
    "ProfileService",
    "SearchPage",
    "profile_key",
    "profile_of",
    "profiles_read_here",
]

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


class _ReadHere:
    """Profiles this task read with ``remember``, and the L1 generation (``NearCache``'s
    count of drops) their read began at."""

    __slots__ = ("gen", "profiles")

    def __init__(self) -> None:
        self.gen = -1
        self.profiles: dict[int, Profile | None] = {}


_READ_HERE: ContextVar[_ReadHere | None] = ContextVar("profiles_read_here", default=None)


@contextmanager
def profiles_read_here() -> Iterator[None]:
    """Within (one request's task): the profiles ``remember`` is given are handed as
    read to this task's next ``get_many`` of them, without a look-up of each in L1 (a
    page's users read with its head, then rendered: decision 0039), but only while L1
    has dropped none of them since their read began (other keys may have been: decision
    0054): exactly what L1 would have answered, so a body built from them keeps the
    ticket rule of its deps (services/near_cache.py)."""
    token = _READ_HERE.set(_ReadHere())
    try:
        yield
    finally:
        _READ_HERE.reset(token)


def profile_key(user_id: int) -> str:
    return f"p:{user_id}"


def _none_dropped(dropped: list[str] | None, held: dict[int, Profile | None]) -> bool:
    """Whether no profile of ``held`` is among the ``dropped`` keys (None: unknown)."""
    return dropped is not None and not any(
        key[:2] == "p:" and key[2:].isdigit() and int(key[2:]) in held for key in dropped
    )


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


def _listed_profile(row: ListedUserRow) -> Profile:
    """The profile of a user read with their counts of ``COUNTED`` (``ListedUserRow``:
    in that order, the order of the profile's counts)."""
    friends, followers, following = row.counts
    return Profile(  # positional: the fields in their order
        row.id,
        row.username,
        row.display_name,
        row.bio,
        row.avatar_url,
        row.is_private,
        row.created_at,
        friends,
        followers,
        following,
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
            # a profile's columns only (decision 0039)
            return {
                row.id: _listed_profile(row)
                for row in await self._reads.listed_users(ids, COUNTED)
                if row.active
            }
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
        kept: list[tuple[str, object]] = []
        here = _READ_HERE.get()
        for user_id, row in found:
            profile = _listed_profile(row) if row is not None and row.active else None
            kept.append((f"p:{user_id}", profile))  # profile_key, inlined: 51 a page
            if here is not None:
                here.profiles[user_id] = profile
        self._cache.remember_many(kept, ticket)
        if here is not None:  # the oldest read's generation: any drop since, unused
            here.gen = ticket[0] if here.gen < 0 else min(here.gen, ticket[0])

    @staticmethod
    def from_row(row: ListedUserRow | None) -> Profile | None:
        """The profile a load reads from ``row`` (None: no user, or not active)."""
        return _listed_profile(row) if row is not None and row.active else None

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
        here = _READ_HERE.get()
        if here is not None and here.profiles:
            held = here.profiles  # read by this request: as L1 holds them unless dropped
            if all(i in held for i in ids) and _none_dropped(
                self._cache.dropped_since(here.gen), held
            ):
                return {i: p for i in ids if (p := held[i]) is not None}
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
