"""Message search (docs/search.md, decision 0020): a member's own conversations, best
first.

Who sees what is the message list's rule: a current member reads a conversation's whole
history (across a block too: a direct conversation turns read-only, not hidden), and only
its live messages; a conversation the caller is not in is a 404 like everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from socius.domain.conversations import not_found
from socius.domain.pagination import OffsetPosition, check_limit, decode_cursor, encode_cursor
from socius.domain.search import MAX_SEARCH_OFFSET, SearchHit, query_words
from socius.services.ports import Clock, UnitOfWorkFactory

__all__ = ["HitPage", "SearchService"]


@dataclass(frozen=True, slots=True)
class HitPage:
    items: list[SearchHit]
    next_cursor: str | None


class SearchService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def messages(
        self,
        actor: int,
        q: str,
        *,
        conversation_id: int | None,
        limit: int | None,
        cursor: str | None,
    ) -> HitPage:
        """The messages matching every word of ``q`` in ``actor``'s conversations (or in
        ``conversation_id``, 404 unless a member), best first; pages go
        ``MAX_SEARCH_OFFSET`` results deep."""
        size = check_limit(limit)
        position = decode_cursor(cursor, OffsetPosition)
        offset = 0 if position is None else position.o
        words = query_words(q)
        if offset >= MAX_SEARCH_OFFSET:
            return HitPage([], None)
        # The primary, not a replica: a member who just left must not still find.
        async with self._uow(write=False) as uow:
            if conversation_id is not None:
                conversation, member = await uow.conversations.with_member(conversation_id, actor)
                if conversation is None or member is None:
                    raise not_found()
            hits = await uow.search.messages(
                actor,
                words,
                conversation_id=conversation_id,
                now=self._clock(),
                limit=min(size, MAX_SEARCH_OFFSET - offset) + 1,
                offset=offset,
            )
        more = len(hits) > size and offset + size < MAX_SEARCH_OFFSET
        return HitPage(
            hits[:size], encode_cursor(OffsetPosition(o=offset + size)) if more else None
        )
