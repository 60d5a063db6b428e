"""The attachments repository: uploads, who may read them, and what the purge takes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.attachments import Attachment
from socius.storage.tables import attachments, members

__all__ = ["SqlAttachmentRepository", "carried", "snapshots"]


def _attachment(row: Row[Any]) -> Attachment:
    return Attachment(
        id=row.id,
        owner_id=row.owner_id,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        created_at=row.created_at,
        width=row.width,
        height=row.height,
        filename=row.filename,
        message_id=row.message_id,
        conversation_id=row.conversation_id,
    )


def snapshots(items: Sequence[Attachment]) -> list[dict[str, Any]] | None:
    """A message's ``attachments`` column for ``items`` (NULL for none)."""
    return [a.snapshot() for a in items] or None


def carried(value: Any, sender_id: int | None, created_at: datetime) -> tuple[Attachment, ...]:
    """The attachments a message row carries (its ``attachments`` column)."""
    if not value:
        return ()
    return tuple(
        Attachment(
            id=int(item["id"]),
            owner_id=sender_id or 0,
            content_type=item["content_type"],
            size=int(item["size"]),
            sha256=item["sha256"],
            created_at=created_at,
            width=item.get("width"),
            height=item.get("height"),
            filename=item.get("filename"),
        )
        for item in value
    )


class SqlAttachmentRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, attachment: Attachment) -> None:
        await self._conn.execute(
            insert(attachments).values(
                id=attachment.id,
                owner_id=attachment.owner_id,
                content_type=attachment.content_type,
                size=attachment.size,
                sha256=attachment.sha256,
                width=attachment.width,
                height=attachment.height,
                filename=attachment.filename,
                message_id=None,
                conversation_id=None,
                created_at=attachment.created_at,
                doomed_at=None,
            )
        )

    async def readable(self, attachment_id: int, viewer: int) -> Attachment | None:
        """The attachment, when ``viewer`` uploaded it or is a member of the conversation
        it was sent in (and it is not doomed); in one statement."""
        member = exists(
            select(members.c.user_id).where(
                members.c.conversation_id == attachments.c.conversation_id,
                members.c.user_id == viewer,
            )
        )
        row = (
            await self._conn.execute(
                select(attachments).where(
                    attachments.c.id == attachment_id,
                    attachments.c.doomed_at.is_(None),
                    or_(attachments.c.owner_id == viewer, member),
                )
            )
        ).first()
        return _attachment(row) if row else None

    async def get_many(self, attachment_ids: Sequence[int]) -> list[Attachment]:
        """Those of the ids that exist and are not doomed."""
        if not attachment_ids:
            return []
        rows = await self._conn.execute(
            select(attachments).where(
                attachments.c.id.in_(list(attachment_ids)), attachments.c.doomed_at.is_(None)
            )
        )
        return [_attachment(row) for row in rows]

    async def link(
        self, attachment_ids: Sequence[int], owner_id: int, message_id: int, conversation_id: int
    ) -> int:
        """Attach the owner's unsent uploads to a message, in one statement; how many were
        (fewer than asked: another message or the purge took one first)."""
        result = await self._conn.execute(
            update(attachments)
            .where(
                attachments.c.id.in_(list(attachment_ids)),
                attachments.c.owner_id == owner_id,
                attachments.c.message_id.is_(None),
                attachments.c.doomed_at.is_(None),
            )
            .values(message_id=message_id, conversation_id=conversation_id)
        )
        return int(result.rowcount)

    async def doom_for_messages(self, message_ids: Sequence[int], when: datetime) -> int:
        """Nobody may read the attachments of these messages any more; how many."""
        if not message_ids:
            return 0
        result = await self._conn.execute(
            update(attachments)
            .where(
                attachments.c.message_id.in_(list(message_ids)),
                attachments.c.doomed_at.is_(None),
            )
            .values(doomed_at=when)
        )
        return int(result.rowcount)

    async def doom_owned_by(self, owner_id: int, when: datetime) -> int:
        """Every upload of an account being erased, sent or not; how many."""
        result = await self._conn.execute(
            update(attachments)
            .where(attachments.c.owner_id == owner_id, attachments.c.doomed_at.is_(None))
            .values(doomed_at=when)
        )
        return int(result.rowcount)

    async def doom_unsent(self, before: datetime, when: datetime, *, limit: int) -> int:
        """Uploads never sent and made before ``before`` (at most ``limit``); how many."""
        stale = (
            select(attachments.c.id)
            .where(
                attachments.c.message_id.is_(None),
                attachments.c.created_at < before,
                attachments.c.doomed_at.is_(None),
            )
            .limit(limit)
            .scalar_subquery()
        )
        result = await self._conn.execute(
            update(attachments)
            .where(
                attachments.c.id.in_(stale),
                attachments.c.message_id.is_(None),
                attachments.c.doomed_at.is_(None),
            )
            .values(doomed_at=when)
        )
        return int(result.rowcount)

    async def doomed(self, *, limit: int) -> list[int]:
        """Ids of doomed attachments, oldest first."""
        rows = await self._conn.execute(
            select(attachments.c.id)
            .where(attachments.c.doomed_at.is_not(None))
            .order_by(attachments.c.doomed_at, attachments.c.id)
            .limit(limit)
        )
        return [int(r.id) for r in rows]

    async def remove(self, attachment_ids: Sequence[int]) -> None:
        """Delete the rows of doomed attachments whose bytes are gone."""
        if attachment_ids:
            await self._conn.execute(
                delete(attachments).where(
                    and_(
                        attachments.c.id.in_(list(attachment_ids)),
                        attachments.c.doomed_at.is_not(None),
                    )
                )
            )
