"""/v1/reports: report a user or a message to the administrators (docs/moderation.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Response, Router, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED

from socius.api.dependencies import Caller, container_of
from socius.api.options import with_options
from socius.api.rest.fields import IdText
from socius.domain.ids import parse_id
from socius.domain.reports import NOTE_MAX, NOTE_PATTERN, Report, ReportReason, ReportTarget

__all__ = ["Note", "ReportOut", "router"]

Note = Annotated[
    str,
    msgspec.Meta(
        max_length=NOTE_MAX,
        pattern=NOTE_PATTERN,
        description=f"at most {NOTE_MAX} characters, no control characters but line breaks",
    ),
]
Reason = Literal[
    "spam",
    "harassment",
    "hate",
    "sexual",
    "violence",
    "self_harm",
    "illegal",
    "impersonation",
    "other",
]


class ReportIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What is reported, and why."""

    target: Literal["user", "message"]
    id: IdText
    reason: Reason
    note: Note | None = None


class ReportOut(msgspec.Struct, kw_only=True):
    """A report as its reporter sees it."""

    id: str
    target: str
    target_id: str
    reason: str
    note: str | None
    status: str
    created_at: datetime


def report_out(r: Report) -> ReportOut:
    return ReportOut(
        id=str(r.id),
        target=r.target_type.value,
        target_id=str(r.target_id),
        reason=r.reason.value,
        note=r.note,
        status=r.status.value,
        created_at=r.created_at,
    )


@post(
    "/",
    status_code=HTTP_201_CREATED,
    summary="Report a user or a message",
    responses={
        200: ResponseSpec(
            ReportOut,
            description="You already have an open report on this target: that report "
            "(this one's reason and note are not kept)",
            generate_examples=False,
        )
    },
    description="Tell the administrators about a user (`target: user`) or a message "
    "(`target: message`, one in a conversation you are a member of). 201 with the new "
    "report; while your report on the same target is open, reporting it again answers "
    "200 with that report and stores nothing. 404 `user_not_found` / `message_not_found` "
    "for what you cannot see (unknown, deleted, not your conversation, blocked either "
    "way); 422 `cannot_report_self`; 429 `rate_limited` with Retry-After past the "
    "per-user report limit.",
)
async def create_report(
    data: JSONBody[ReportIn], state: State, principal: Caller
) -> Response[ReportOut]:
    report, created = await container_of(state).reports.report(
        principal.user_id,
        ReportTarget(data.target),
        parse_id(data.id),
        ReportReason(data.reason),
        data.note,
    )
    return Response(report_out(report), status_code=201 if created else 200)


router = Router(
    path="/v1/reports",
    route_handlers=with_options([create_report]),
    tags=["moderation"],
    security=[{"bearer": []}],
)
