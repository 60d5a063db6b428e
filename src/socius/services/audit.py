"""The audit log: every administrator action is written down, in its own transaction.

``AuditLog.record`` is the one way an action gets into the log, and it takes the unit of
work the action runs in: the entry commits with the change or not at all. Reading the log
is ``AuditLog.page``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from socius.domain.audit import AuditEntry, Via
from socius.domain.ids import IdGenerator
from socius.domain.pagination import AuditPosition, check_limit, decode_cursor, encode_cursor
from socius.services.events import DomainEvents
from socius.services.ports import Clock, UnitOfWork, UnitOfWorkFactory

__all__ = ["Actor", "AuditLog", "AuditPage", "Target"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who takes an administrator action. Through the API only ``AdminService.require_admin``
    makes one (after checking the flag); the command line's is ``Actor.command_line()``:
    whoever can run ``socius admin`` on the server's host has no account to name."""

    via: Via
    user_id: int | None = None
    request_id: str | None = None
    ip: str | None = None

    @classmethod
    def command_line(cls) -> Actor:
        return cls(Via.CLI)


@dataclass(frozen=True, slots=True)
class Target:
    """What an action was taken on."""

    type: str
    id: int


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[AuditEntry]
    next_cursor: str | None


class AuditLog:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        *,
        events: DomainEvents | None = None,
    ) -> None:
        self._events = events
        self._uow = uow
        self._clock = clock
        self._ids = ids

    async def record(
        self,
        uow: UnitOfWork,
        actor: Actor,
        action: str,
        *,
        target: Target | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Inside the action's own write unit of work: the entry commits with it."""
        entry = AuditEntry(
            id=self._ids.next_id(),
            created_at=self._clock(),
            via=actor.via,
            actor_id=actor.user_id,
            action=action,
            target_type=target.type if target else None,
            target_id=target.id if target else None,
            details={k: v for k, v in (details or {}).items() if v is not None},
            request_id=actor.request_id,
            ip=actor.ip or None,
        )
        await uow.audit.add(entry)
        if self._events is not None:  # the stream: ids and the action, no free text
            await self._events.append(
                uow,
                "admin." + action.replace(".", "_"),
                {
                    "audit_id": entry.id,
                    "via": entry.via.value,
                    "actor_id": entry.actor_id,
                    "target_type": entry.target_type,
                    "target_id": entry.target_id,
                },
            )
        return entry

    async def page(
        self,
        *,
        limit: int | None,
        cursor: str | None,
        actor_id: int | None = None,
        via: Via | None = None,
        action: str | None = None,
        target_id: int | None = None,
    ) -> AuditPage:
        """Entries newest first, narrowed by each filter given."""
        size = check_limit(limit)
        position = decode_cursor(cursor, AuditPosition)
        async with self._uow(write=False) as uow:
            found = await uow.audit.page(
                limit=size + 1,
                before_id=position.a if position else None,
                actor_id=actor_id,
                via=via,
                action=action,
                target_id=target_id,
            )
        items = found[:size]
        more = len(found) > size
        return AuditPage(items, encode_cursor(AuditPosition(a=items[-1].id)) if more else None)
