"""Reports of abuse: users report a user or a message they can see; the moderation hook
reports the messages it flags; administrators list them and resolve each with an action
(docs/moderation.md, decision 0023).

- A reporter has one open report per target: reporting it again answers the open one
  (nothing new is stored, nothing is emitted).
- What a reporter cannot see does not exist for them: 404, as everywhere.
- Resolving carries the action out through the service that owns it (a message deleted
  for everyone as its sender deletes it; an account disabled as ``/v1/admin`` disables
  it, which ends its sessions and closes its sockets), then closes the report with an
  audit entry, in the administrators' lock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from socius.domain.audit import AuditAction, TargetType
from socius.domain.conversations import Message
from socius.domain.errors import Conflict, InvalidInput, NotFound
from socius.domain.ids import IdGenerator
from socius.domain.pagination import AuditPosition, check_limit, decode_cursor, encode_cursor
from socius.domain.reports import (
    Report,
    ReportAction,
    ReportReason,
    ReportStatus,
    ReportTarget,
    Verdict,
    check_note,
)
from socius.domain.users import UserStatus
from socius.services.admin import AdminService
from socius.services.audit import Actor, AuditLog, Target
from socius.services.events import DomainEvents
from socius.services.graph import GraphService
from socius.services.messaging import MessagingService
from socius.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from socius.services.rate_limits import RateLimit

__all__ = ["ReportPage", "ReportService"]


@dataclass(frozen=True, slots=True)
class ReportPage:
    items: list[Report]
    next_cursor: str | None


def _no_such_report() -> NotFound:
    return NotFound("no such report", code="report_not_found")


def _self() -> InvalidInput:
    return InvalidInput("you cannot report yourself", code="cannot_report_self")


class ReportService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        *,
        graph: GraphService,
        messaging: MessagingService,
        admin: AdminService,
        audit: AuditLog,
        events: DomainEvents | None,
        limit: RateLimit,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._graph = graph
        self._messaging = messaging
        self._admin = admin
        self._audit = audit
        self._events = events
        self._limit = limit

    # reporting -----------------------------------------------------------------------

    async def report(
        self,
        actor: int,
        target: ReportTarget,
        target_id: int | None,
        reason: ReportReason,
        note: str | None = None,
    ) -> tuple[Report, bool]:
        """The report, and whether it is new (False: ``actor``'s open report on the same
        target). 404 for what ``actor`` cannot see; 429 past the per-user limit."""
        note = check_note(note)
        await self._limit.check(actor)  # before looking: no probing for what exists
        if target is ReportTarget.USER:
            if target_id is None:
                raise NotFound("no such user", code="user_not_found")
            if target_id == actor:
                raise _self()
            await self._graph.visible_profile(actor, target_id)  # 404 across a block
        elif target_id is None:
            raise NotFound("no such message", code="message_not_found")
        async with self._uow() as uow:
            target_user: int | None = target_id
            conversation: int | None = None
            if target is ReportTarget.MESSAGE:
                message = await uow.reports.message_seen_by(target_id, actor)
                if message is None:
                    raise NotFound("no such message", code="message_not_found")
                if message.sender_id == actor:
                    raise _self()
                target_user, conversation = message.sender_id, message.conversation_id
            made = Report(
                id=self._ids.next_id(),
                created_at=self._clock(),
                reporter_id=actor,
                target_type=target,
                target_id=target_id,
                target_user_id=target_user,
                conversation_id=conversation,
                reason=reason,
                note=note,
            )
            stored = await uow.reports.add(made)
            if stored.id != made.id:
                return stored, False
            await self._created(uow, stored)
            await uow.commit()
        return stored, True

    async def flag(self, message: Message, verdict: Verdict) -> Report:
        """The moderation hook flagged ``message`` (stored): a report by the system."""
        async with self._uow() as uow:
            report = await uow.reports.add(
                Report(
                    id=self._ids.next_id(),
                    created_at=self._clock(),
                    reporter_id=None,
                    target_type=ReportTarget.MESSAGE,
                    target_id=message.id,
                    target_user_id=message.sender_id,
                    conversation_id=message.conversation_id,
                    reason=verdict.reason,
                    note=None,
                    rule=(verdict.rule or "classifier")[:64],
                )
            )
            await self._created(uow, report)
            await uow.commit()
        return report

    async def _created(self, uow: UnitOfWork, report: Report) -> None:
        if self._events is not None:  # ids and the reason; never the note
            await self._events.append(
                uow,
                "report.created",
                {
                    "report_id": report.id,
                    "actor_id": report.reporter_id,
                    "target_type": report.target_type.value,
                    "target_id": report.target_id,
                    "user_id": report.target_user_id,
                    "conversation_id": report.conversation_id,
                    "reason": report.reason.value,
                    "rule": report.rule,
                },
            )

    # administrators ------------------------------------------------------------------

    async def page(
        self, *, status: ReportStatus | None, limit: int | None, cursor: str | None
    ) -> ReportPage:
        """Reports newest first, each with the reported message as it now is."""
        size = check_limit(limit)
        position = decode_cursor(cursor, AuditPosition)
        async with self._uow(write=False) as uow:
            found = await uow.reports.page(
                limit=size + 1, before_id=position.a if position else None, status=status
            )
        items = found[:size]
        more = len(found) > size
        return ReportPage(items, encode_cursor(AuditPosition(a=items[-1].id)) if more else None)

    async def get(self, report_id: int) -> Report:
        async with self._uow(write=False) as uow:
            report = await uow.reports.get(report_id)
        if report is None:
            raise _no_such_report()
        return report

    async def resolve(
        self, actor: Actor, report_id: int, action: ReportAction, note: str | None = None
    ) -> Report:
        """Carry ``action`` out, then close the report with an audit entry. The action
        comes first, through its own service (and, for ``disable_user``, its own audit
        entry): a failure between the two leaves the report open, and resolving it again
        is safe, as both actions are idempotent."""
        note = check_note(note)
        report = await self.get(report_id)
        if report.status is not ReportStatus.OPEN:
            raise Conflict("this report is already resolved", code="report_resolved")
        details: dict[str, object] = {
            "action": action.value,
            "report_target_type": report.target_type.value,
            # ids as strings, as the API shows every id
            "report_target_id": str(report.target_id),
            "user_id": None if report.target_user_id is None else str(report.target_user_id),
            "reason": note,
        }
        if action is ReportAction.DELETE_MESSAGE:
            if report.target_type is not ReportTarget.MESSAGE or report.conversation_id is None:
                raise InvalidInput(
                    "delete_message resolves reports of messages only", code="invalid_action"
                )
            removed = await self._messaging.delete_as_moderator(
                report.conversation_id, report.target_id
            )
            details["message_deleted"] = removed is not None
        elif action is ReportAction.DISABLE_USER:
            if report.target_user_id is None:
                raise InvalidInput("this report names no account", code="invalid_action")
            outcome = await self._admin.set_status(
                actor, report.target_user_id, UserStatus.DISABLED, reason=note
            )
            details["user_disabled"] = outcome.changed
        async with self._uow() as uow:
            await self._admin.begin_action(uow, actor)
            now = self._clock()
            if not await uow.reports.resolve(
                report.id, when=now, by=actor.user_id, action=action, note=note
            ):
                raise Conflict("this report is already resolved", code="report_resolved")
            await self._audit.record(
                uow,
                actor,
                AuditAction.REPORT_RESOLVE,
                target=Target(TargetType.REPORT.value, report.id),
                details=details,
            )
            if self._events is not None:
                await self._events.append(
                    uow,
                    "report.resolved",
                    {
                        "report_id": report.id,
                        "actor_id": actor.user_id,
                        "action": action.value,
                        "target_type": report.target_type.value,
                        "target_id": report.target_id,
                        "user_id": report.target_user_id,
                    },
                )
            await uow.commit()
        resolved = replace(
            report,
            status=ReportStatus.RESOLVED,
            resolved_at=now,
            resolved_by=actor.user_id,
            action=action,
            resolution_note=note,
        )
        if action is ReportAction.DELETE_MESSAGE:
            return await self.get(report.id)  # the message as it now is
        return resolved
