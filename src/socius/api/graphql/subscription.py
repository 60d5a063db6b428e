"""The Subscription root, over ``graphql-transport-ws`` at /graphql.

Every subscription is fed by the caller's own delivery, as ``GET /v1/ws`` is (feed.py):
what reaches it is exactly what the caller's log and bus subject carry, so it is
authorized the same way (a conversation's events reach its members only; typing and
presence respect blocks and mutes) and ``events`` resumes from a cursor like the socket.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from socius.api.graphql import inputs
from socius.api.graphql.context import GraphContext, viewer
from socius.api.graphql.feed import frames
from socius.api.graphql.types import Message, Presence, StreamEvent, message_of_payload
from socius.domain.errors import Unavailable
from socius.domain.ids import parse_id
from socius.realtime import Realtime

__all__ = ["Subscription", "TypingEvent"]


def _realtime(info: strawberry.Info) -> Realtime:
    context: GraphContext = info.context
    realtime = context.container.realtime
    if realtime is None:
        raise Unavailable("real-time delivery is not configured")
    return realtime


@strawberry.type(description="Someone is typing in a conversation (ephemeral).")
class TypingEvent:
    conversation_id: strawberry.ID
    user_id: strawberry.ID


def _event(frame: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The event of type ``type_`` that ``frame`` carries, if it carries one."""
    event = frame.get("event")
    if frame.get("type") == "event" and isinstance(event, dict) and event.get("type") == type_:
        return event
    return None


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Your events, as `GET /v1/ws` sends them: with a `cursor` (from an "
        "earlier item, or `/v1/sync`), everything after it is replayed first; then a "
        "`ready` item; then live events. Without one, the stream starts now (`ready` says "
        "where). Typing and presence come without a cursor and are never replayed."
    )
    async def events(
        self, info: strawberry.Info, cursor: str | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        principal = await viewer(info)
        async with aclosing(frames(_realtime(info), principal, cursor)) as stream:
            async for frame in stream:
                event = frame.get("event")
                yield StreamEvent(
                    type=str(event.get("type") if isinstance(event, dict) else frame["type"]),
                    cursor=frame.get("cursor"),
                    event=None if event is None else JSON(event),
                )

    @strawberry.subscription(
        description="New messages of a conversation you are in (`conversation_not_found` "
        "for any other), from now on."
    )
    async def message_created(
        self, info: strawberry.Info, conversation_id: strawberry.ID
    ) -> AsyncGenerator[Message, None]:
        principal = await viewer(info)
        cid = inputs.conversation_id(conversation_id)
        context: GraphContext = info.context
        await context.container.messaging.get(principal.user_id, cid)  # a member, or 404
        async with aclosing(frames(_realtime(info), principal, None)) as stream:
            async for frame in stream:
                event = _event(frame, "message.created")
                message = (event or {}).get("message") or {}
                if message.get("conversation_id") == str(cid):
                    yield message_of_payload(message)

    @strawberry.subscription(
        description="Who is typing, in the conversation given or in all of yours. Not "
        "across a block, nor from someone you mute."
    )
    async def typing(
        self, info: strawberry.Info, conversation_id: strawberry.ID | None = None
    ) -> AsyncGenerator[TypingEvent, None]:
        principal = await viewer(info)
        only = None
        if conversation_id is not None:
            only = inputs.conversation_id(conversation_id)
            context: GraphContext = info.context
            await context.container.messaging.get(principal.user_id, only)
        async with aclosing(frames(_realtime(info), principal, None)) as stream:
            async for frame in stream:
                event = _event(frame, "typing")
                if event is not None and only in (None, _int(event.get("conversation_id"))):
                    yield TypingEvent(
                        conversation_id=strawberry.ID(str(event["conversation_id"])),
                        user_id=strawberry.ID(str(event["user_id"])),
                    )

    @strawberry.subscription(
        description="Your friends going online and offline (never across a block)."
    )
    async def presence(self, info: strawberry.Info) -> AsyncGenerator[Presence, None]:
        principal = await viewer(info)
        async with aclosing(frames(_realtime(info), principal, None)) as stream:
            async for frame in stream:
                event = _event(frame, "presence")
                if event is not None:
                    seen = event.get("last_seen_at")
                    yield Presence(
                        user_id=strawberry.ID(str(event["user_id"])),
                        online=bool(event.get("online")),
                        last_seen_at=None if seen is None else datetime.fromisoformat(seen),
                    )


def _int(text: object) -> int | None:
    return parse_id(text) if isinstance(text, str) else None
