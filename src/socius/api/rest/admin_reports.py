"""/v1/admin/reports: reports of abuse, and resolving them with an action (admins only).

Every resolution is written to the audit log (services/reports.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.params import Body, QueryParameter
from litestar.status_codes import HTTP_200_OK

from socius.api.dependencies import container_of
from socius.api.rest.admin_access import AdminActor, admin_router
from socius.api.rest.params import AuditCursor, IdPath, Limit
from socius.api.rest.reports import Note
from socius.api.rest.views import Page
from socius.domain.errors import NotFound
from socius.domain.ids import parse_id
from socius.domain.reports import Report, ReportAction, ReportStatus

__all__ = ["router"]


class ReportedMessageOut(msgspec.Struct, kw_only=True):
    """The reported message as it is now: `body` null once it is deleted."""

    id: str
    conversation_id: str
    sender_id: str | None
    body: str | None
    deleted: bool
    created_at: datetime


class AdminReportOut(msgspec.Struct, kw_only=True):
    """A report as administrators see it."""

    id: str
    created_at: datetime
    reporter_id: str | None
    """null: the moderation hook flagged the message (`rule` says which rule)"""
    target: str
    target_id: str
    user_id: str | None
    """the reported user, or the reported message's sender"""
    conversation_id: str | None
    reason: str
    note: str | None
    rule: str | None
    status: str
    resolved_at: datetime | None
    resolved_by: str | None
    action: str | None
    resolution_note: str | None
    message: ReportedMessageOut | None


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


def _out(r: Report) -> AdminReportOut:
    m = r.message
    return AdminReportOut(
        id=str(r.id),
        created_at=r.created_at,
        reporter_id=_text(r.reporter_id),
        target=r.target_type.value,
        target_id=str(r.target_id),
        user_id=_text(r.target_user_id),
        conversation_id=_text(r.conversation_id),
        reason=r.reason.value,
        note=r.note,
        rule=r.rule,
        status=r.status.value,
        resolved_at=r.resolved_at,
        resolved_by=_text(r.resolved_by),
        action=r.action.value if r.action else None,
        resolution_note=r.resolution_note,
        message=None
        if m is None
        else ReportedMessageOut(
            id=str(m.id),
            conversation_id=str(m.conversation_id),
            sender_id=_text(m.sender_id),
            body=m.body,
            deleted=m.deleted,
            created_at=m.created_at,
        ),
    )


class ResolveIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What to do about the report."""

    action: Literal["dismiss", "delete_message", "disable_user"]
    note: Note | None = None


def _report_id(text: str) -> int:
    value = parse_id(text)
    if value is None:
        raise NotFound("no such report", code="report_not_found")
    return value


@get(
    "/",
    summary="Reports, newest first (admins only)",
    description="Reports by users and by the moderation hook (`reporter_id` null), each "
    "with the reported message as it is now (its body is null once deleted). `status` "
    "narrows the list to open or resolved reports.",
)
async def list_reports(
    state: State,
    status: Annotated[
        Literal["open", "resolved"] | None, QueryParameter(description="only these")
    ] = None,
    limit: Limit = None,
    cursor: AuditCursor = None,
) -> Page[AdminReportOut]:
    page = await container_of(state).reports.page(
        status=ReportStatus(status) if status else None, limit=limit, cursor=cursor
    )
    return Page(items=[_out(r) for r in page.items], next_cursor=page.next_cursor)


@get("/{report_id:str}", summary="One report (admins only)")
async def get_report(state: State, report_id: IdPath) -> AdminReportOut:
    return _out(await container_of(state).reports.get(_report_id(report_id)))


@post(
    "/{report_id:str}/resolve",
    status_code=HTTP_200_OK,
    summary="Resolve a report with an action (admins only)",
    description="`dismiss`: nothing is done. `delete_message`: the reported message is "
    "deleted for everyone, as when its sender deletes it (422 `invalid_action` for a "
    "report of a user). `disable_user`: the reported user (or the message's sender) is "
    "disabled as `POST /v1/admin/users/{id}/disable` does it: every session ends and its "
    "sockets close (its own `user.disable` audit entry; 409 `last_admin`, 422 "
    "`cannot_target_self` as there). The resolution is written to the audit log "
    "(`report.resolve`, with the note as its reason). 404 `report_not_found`; 409 "
    "`report_resolved` for a report already resolved.",
)
async def resolve_report(
    state: State, admin: AdminActor, report_id: IdPath, data: Annotated[ResolveIn, Body()]
) -> AdminReportOut:
    report = await container_of(state).reports.resolve(
        admin, _report_id(report_id), ReportAction(data.action), data.note
    )
    return _out(report)


router = admin_router("/v1/admin/reports", [list_reports, get_report, resolve_report])
