"""Public profiles: what anyone signed in may see of a user."""

from __future__ import annotations

from dataclasses import dataclass

from socius.domain.errors import NotFound
from socius.domain.pagination import check_limit, decode_cursor, encode_cursor
from socius.domain.users import User, normalize_login
from socius.services.ports import UnitOfWorkFactory

__all__ = ["Profile", "ProfileService", "SearchPage"]

_SEARCH_MAX_OFFSET = 1000


@dataclass(frozen=True, slots=True)
class Profile:
    user: User
    friends_count: int = 0
    followers_count: int = 0
    following_count: int = 0


@dataclass(frozen=True, slots=True)
class SearchPage:
    items: list[Profile]
    next_cursor: str | None


def _not_found() -> NotFound:
    return NotFound("no such user", code="user_not_found")


class ProfileService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def get(self, user_id: int) -> Profile:
        async with self._uow(write=False, replica=True) as uow:
            user = await uow.users.get(user_id)
        if user is None or not user.is_active:
            raise _not_found()
        return Profile(user)

    async def by_username(self, username: str) -> Profile:
        async with self._uow(write=False, replica=True) as uow:
            user = await uow.users.get_by_username(normalize_login(username))
        if user is None or not user.is_active:
            raise _not_found()
        return Profile(user)

    async def search(self, query: str, *, limit: int | None, cursor: str | None) -> SearchPage:
        size = check_limit(limit)
        position = decode_cursor(cursor) or {}
        offset = position.get("o", 0)
        if not isinstance(offset, int) or not 0 <= offset <= _SEARCH_MAX_OFFSET:
            offset = 0
        q = query.strip()
        if not q:
            return SearchPage([], None)
        async with self._uow(write=False, replica=True) as uow:
            users = await uow.users.search(q[:64], limit=size + 1, offset=offset)
        more = len(users) > size and offset + size < _SEARCH_MAX_OFFSET
        return SearchPage(
            [Profile(u) for u in users[:size]],
            encode_cursor({"o": offset + size}) if more else None,
        )
