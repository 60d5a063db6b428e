"""The reports repository: abuse reports, the reported message joined in when read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.reports import (
    Report,
    ReportAction,
    ReportedMessage,
    ReportReason,
    ReportStatus,
    ReportTarget,
)
from socius.storage.tables import members, messages, reports

__all__ = ["SqlReportRepository"]

_OPEN = ReportStatus.OPEN.value
_MESSAGE = ReportTarget.MESSAGE.value
_JOINED = (
    messages.c.id.label("m_id"),
    messages.c.conversation_id.label("m_conversation_id"),
    messages.c.sender_id.label("m_sender_id"),
    messages.c.body.label("m_body"),
    messages.c.deleted_at.label("m_deleted_at"),
    messages.c.created_at.label("m_created_at"),
)


def _message(row: Any, prefix: str = "") -> ReportedMessage:
    def get(name: str) -> Any:
        return getattr(row, prefix + name)

    deleted = get("deleted_at") is not None
    return ReportedMessage(
        id=get("id"),
        conversation_id=get("conversation_id"),
        sender_id=get("sender_id"),
        body=None if deleted else get("body"),
        deleted=deleted or get("body") is None,
        created_at=get("created_at"),
    )


def _report(row: Row[Any], *, joined: bool = False) -> Report:
    return Report(
        id=row.id,
        created_at=row.created_at,
        reporter_id=row.reporter_id,
        target_type=ReportTarget(row.target_type),
        target_id=row.target_id,
        target_user_id=row.target_user_id,
        conversation_id=row.conversation_id,
        reason=ReportReason(row.reason),
        note=row.note,
        status=ReportStatus(row.status),
        rule=row.rule,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        action=ReportAction(row.action) if row.action else None,
        resolution_note=row.resolution_note,
        message=_message(row, "m_") if joined and row.m_id is not None else None,
    )


class SqlReportRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert

    async def add(self, report: Report) -> Report:
        """Insert ``report``; when its reporter already has an open report on the same
        target, nothing is inserted and that one is returned (one statement, so two
        reports sent at once make one)."""
        stmt = (
            self._insert(reports)
            .values(
                id=report.id,
                created_at=report.created_at,
                reporter_id=report.reporter_id,
                target_type=report.target_type.value,
                target_id=report.target_id,
                target_user_id=report.target_user_id,
                conversation_id=report.conversation_id,
                reason=report.reason.value,
                note=report.note,
                rule=report.rule,
                status=report.status.value,
            )
            .on_conflict_do_nothing(
                index_elements=[reports.c.reporter_id, reports.c.target_type, reports.c.target_id],
                # A literal: PostgreSQL matches the partial index by its predicate's text.
                index_where=text("status = 'open'"),
            )
            .returning(reports.c.id)
        )
        if (await self._conn.execute(stmt)).scalar_one_or_none() is not None:
            return report
        existing = await self._conn.execute(
            select(reports).where(
                reports.c.reporter_id == report.reporter_id,
                reports.c.target_type == report.target_type.value,
                reports.c.target_id == report.target_id,
                reports.c.status == _OPEN,
            )
        )
        row = existing.first()
        return _report(row) if row is not None else report

    async def get(self, report_id: int, *, lock: bool = False) -> Report | None:
        stmt = select(reports, *_JOINED).select_from(
            reports.outerjoin(
                messages,
                and_(reports.c.target_type == _MESSAGE, messages.c.id == reports.c.target_id),
            )
        )
        stmt = stmt.where(reports.c.id == report_id)
        if lock and self._conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=reports)
        row = (await self._conn.execute(stmt)).first()
        return None if row is None else _report(row, joined=True)

    async def page(
        self, *, limit: int, before_id: int | None = None, status: ReportStatus | None = None
    ) -> list[Report]:
        """Reports newest first, each with its message as it now is."""
        stmt = (
            select(reports, *_JOINED)
            .select_from(
                reports.outerjoin(
                    messages,
                    and_(reports.c.target_type == _MESSAGE, messages.c.id == reports.c.target_id),
                )
            )
            .order_by(reports.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            stmt = stmt.where(reports.c.id < before_id)
        if status is not None:
            stmt = stmt.where(reports.c.status == status.value)
        return [_report(row, joined=True) for row in await self._conn.execute(stmt)]

    async def by_reporter(self, user_id: int, *, limit: int) -> list[Report]:
        """The reports ``user_id`` made, oldest first (for their export)."""
        stmt = (
            select(reports)
            .where(reports.c.reporter_id == user_id)
            .order_by(reports.c.id)
            .limit(limit)
        )
        return [_report(row) for row in await self._conn.execute(stmt)]

    async def resolve(
        self,
        report_id: int,
        *,
        when: datetime,
        by: int | None,
        action: ReportAction,
        note: str | None,
    ) -> bool:
        """Close an open report; False when it was not open (resolved meanwhile)."""
        done = await self._conn.execute(
            update(reports)
            .where(reports.c.id == report_id, reports.c.status == _OPEN)
            .values(
                status=ReportStatus.RESOLVED.value,
                resolved_at=when,
                resolved_by=by,
                action=action.value,
                resolution_note=note,
            )
        )
        return bool(done.rowcount)

    async def message_seen_by(self, message_id: int, user_id: int) -> ReportedMessage | None:
        """The message, when ``user_id`` is a member of its conversation and it is not
        deleted; else None."""
        row = (
            await self._conn.execute(
                select(*_JOINED)
                .select_from(
                    messages.join(
                        members,
                        and_(
                            members.c.conversation_id == messages.c.conversation_id,
                            members.c.user_id == user_id,
                        ),
                    )
                )
                .where(messages.c.id == message_id, messages.c.deleted_at.is_(None))
            )
        ).first()
        if row is None:
            return None
        found = _message(row, "m_")
        return None if found.deleted else found

    async def erase_user(self, user_id: int) -> None:
        """The account is being erased: the free text of the reports it made, and of
        those about it, goes (the reports stay, by id, for the record)."""
        await self._conn.execute(
            update(reports)
            .where(or_(reports.c.reporter_id == user_id, reports.c.target_user_id == user_id))
            .values(note=None, resolution_note=None)
        )
