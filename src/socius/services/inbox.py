"""The notification inbox and the event log a client syncs from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from socius.domain.errors import Gone
from socius.domain.events import Event
from socius.domain.notifications import Notification
from socius.domain.pagination import (
    LogPosition,
    NotificationPosition,
    check_limit,
    decode_cursor,
    encode_cursor,
)
from socius.services.ports import UnitOfWorkFactory

__all__ = [
    "InboxService",
    "NotificationPage",
    "SyncPage",
    "cursor_expired",
    "cursor_for",
    "seq_of",
]


@dataclass(frozen=True, slots=True)
class NotificationPage:
    items: list[Notification]
    next_cursor: str | None
    unread_count: int


@dataclass(frozen=True, slots=True)
class SyncPage:
    items: list[Event]
    next_cursor: str


def cursor_for(seq: int) -> str:
    """The opaque cursor at position ``seq`` of a user's log."""
    return encode_cursor(LogPosition(s=seq))


def seq_of(cursor: str | None) -> int:
    """The log position in a cursor (0: from the start); InvalidCursor for a bad one."""
    position = decode_cursor(cursor, LogPosition)
    return 0 if position is None else position.s


def cursor_expired() -> Gone:
    """A cursor from before what the log keeps (retention): resync, then go on."""
    return Gone(
        "the cursor is older than the events kept: re-read your state through the API, "
        "then continue with cursor null",
        code="cursor_expired",
        details={"field": "cursor"},
    )


class InboxService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def notifications(
        self, user_id: int, *, limit: int | None, cursor: str | None
    ) -> NotificationPage:
        size = check_limit(limit)
        position = decode_cursor(cursor, NotificationPosition)
        before = position.n if position else None
        async with self._uow(write=False) as uow:
            found = await uow.notifications.page(user_id, limit=size + 1, before_id=before)
            unread = await uow.notifications.unread_count(user_id)
        shown = found[:size]
        more = len(found) > size and shown
        return NotificationPage(
            shown, encode_cursor(NotificationPosition(n=shown[-1].id)) if more else None, unread
        )

    async def mark_read(self, user_id: int, up_to_id: int) -> int:
        async with self._uow() as uow:
            changed = await uow.notifications.mark_read(user_id, up_to_id)
            await uow.commit()
        return changed

    async def sync(self, user_id: int, *, cursor: str | None, limit: int | None) -> SyncPage:
        """Events after ``cursor``, oldest first, and the cursor to continue from. Without
        a cursor: from the oldest event kept. A cursor from before that: Gone."""
        after = seq_of(cursor)
        size = check_limit(limit)
        async with self._uow(write=False) as uow:
            page = await uow.outbox.page(user_id, after_seq=after, limit=size)
        if cursor and after < page.pruned_to:
            raise cursor_expired()
        events = page.events
        last = events[-1].seq if events and events[-1].seq is not None else None
        return SyncPage(
            events, cursor_for(last if last is not None else max(after, page.pruned_to))
        )

    async def position(self, user_id: int) -> int:
        async with self._uow(write=False) as uow:
            return await uow.outbox.last_seq(user_id)

    async def positions(self, user_ids: Sequence[int]) -> dict[int, int]:
        """``position`` of many users in one query (the gateway batches its checks)."""
        async with self._uow(write=False) as uow:
            found = await uow.outbox.last_seqs(user_ids)
        return {u: found.get(u, 0) for u in user_ids}

    async def events_between(self, user_id: int, after: int, upto: int) -> list[Event]:
        """The user's events in (after, upto], to replay or fill a gap the bus left; Gone
        when some of them were pruned already."""
        async with self._uow(write=False) as uow:
            page = await uow.outbox.page(user_id, after_seq=after, limit=upto - after)
        if after < page.pruned_to:
            raise cursor_expired()
        return page.events
