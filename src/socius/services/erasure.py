"""Erasure that holds: a message's content leaves every place a client can read it.

A message deleted for everyone, by its timer, or with its sender's account keeps a
tombstone in its conversation; every event ever logged about it (its ``message.created``,
its edits, the reactions to it, a notification about it) becomes that tombstone, a
``message.deleted`` event, in each log where it sits and at the same position: cursors
and numbering stay as they were, the words go. An edit rewrites the logged copies to the
new version, so no old text survives either. Each rewrite runs in the transaction of the
change itself (one statement per message): once it commits, nobody reads the old content.

The events are found through the message they name (``Event.message_id``); writers of
events about a message must set it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from socius.services.ports import UnitOfWork

__all__ = [
    "MESSAGE_EVENTS",
    "TOMBSTONE",
    "forget_messages",
    "reactions_of",
    "recount_reactions",
    "reword_message",
]

TOMBSTONE = "message.deleted"
MESSAGE_EVENTS = ("message.created", "message.updated")  # they carry the message itself
REACTION_EVENT = "reaction.updated"
NOTIFICATION_EVENT = "notification"


async def forget_messages(uow: UnitOfWork, tombstones: Mapping[int, dict[str, Any]]) -> None:
    """Every logged event about these messages (message id -> its tombstone's payload)
    becomes their tombstone, in place, and the notifications about them go."""
    await uow.outbox.rewrite(list(tombstones.items()), as_type=TOMBSTONE)
    await uow.notifications.erase_about(list(tombstones))


async def reword_message(uow: UnitOfWork, message_id: int, payload: dict[str, Any]) -> None:
    """An edit: every logged event and notification about the message that carries it
    (under ``message``, as message events do; ``payload`` is ``{"message": ...}``) takes
    the new version: the message events with one statement, any other kind (a mention, a
    notification's copy in the log; rare) one by one."""
    await uow.outbox.rewrite([(message_id, payload)], types=MESSAGE_EVENTS)
    notes = await uow.notifications.about(message_id)
    await uow.notifications.set_payloads(
        [replace(n, payload=_reworded(n.payload, payload)) for n in notes if _carries(n.payload)]
    )
    others = await uow.outbox.about(message_id, except_types=_NO_COPY)
    await uow.outbox.set_payloads(
        [replace(e, payload=_reworded(e.payload, payload)) for e in others if _carries(e.payload)]
    )


# Events about a message that hold no copy of it, or are rewritten in one statement.
_NO_COPY = (*MESSAGE_EVENTS, TOMBSTONE, REACTION_EVENT)


def _carries(payload: dict[str, Any]) -> bool:
    """Whether a payload holds a copy of the message (itself, or in a notification)."""
    note = payload.get(NOTIFICATION_EVENT)
    return "message" in payload or (isinstance(note, dict) and _carries(note.get("payload", {})))


def _reworded(payload: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with its copy of the message replaced by ``new["message"]``."""
    if "message" in payload:
        return {**payload, **new}
    note = payload[NOTIFICATION_EVENT]
    return {**payload, NOTIFICATION_EVENT: {**note, "payload": _reworded(note["payload"], new)}}


async def reactions_of(uow: UnitOfWork, user_id: int) -> dict[int, int]:
    """Before an account's erasure: the messages it has reacted to, now (its reaction
    rows) or in the events its log still holds; message id -> conversation id."""
    reacted = await uow.conversations.reacted_by(user_id)
    mine = str(user_id)
    for e in await uow.outbox.of_type(user_id, REACTION_EVENT):
        if e.payload.get("user_id") == mine and e.message_id is not None:
            reacted.setdefault(e.message_id, int(e.payload["conversation_id"]))
    return reacted


async def recount_reactions(
    uow: UnitOfWork, reacted: dict[int, int], *, skip: set[int]
) -> dict[int, dict[str, Any]]:
    """After an account's reactions were deleted: every logged ``reaction.updated`` about
    the messages it reacted to (but those in ``skip``) says only the counts that stand now,
    without who reacted with what (the emoji the account chose is its content too). The
    payload per message, for those still live."""
    counts = await uow.conversations.reaction_counts(list(reacted))
    payloads: dict[int, dict[str, Any]] = {}
    for message_id, conversation_id in sorted(reacted.items()):
        if message_id in skip:
            continue
        message = await uow.conversations.message(conversation_id, message_id)
        if message is None or message.deleted:
            continue
        payloads[message_id] = {
            "conversation_id": str(conversation_id),
            "message_id": str(message_id),
            "reactions": counts.get(message_id, {}),
            "user_id": None,
            "emoji": None,
            "added": False,
        }
    await uow.outbox.rewrite(list(payloads.items()), types=(REACTION_EVENT,))
    return payloads
