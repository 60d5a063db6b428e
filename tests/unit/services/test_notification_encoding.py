"""Each notification is encoded once (decision 0038): the bytes it carries are exactly
what encoding its dict would give, for the inbox row, the log row and the bus frame."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from socius.domain.events import Event, JsonPayload
from socius.domain.ids import IdGenerator
from socius.services.delivery import Delivery, Fanned, shard_subject
from socius.storage.rows import json_texts

NOW = datetime(2026, 12, 5, 22, 0, 1, 250_000, tzinfo=UTC)


class _Bus:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def publish_many(self, items: list[tuple[str, bytes]]) -> None:
        self.sent += items


def _delivery(bus: Any = None) -> Delivery:
    return Delivery(bus or _Bus(), lambda: NOW, IdGenerator(node_id=1))


def test_notification_bytes_match_their_dicts() -> None:
    items = [
        (7, "message", {"conversation_id": "1", "message_id": "2", "sender_id": "3"}, 2),
        (8, "friend.request", {"from": {"id": "9", "name": 'a "quoted" name'}}, None),
    ]
    notes, logged = _delivery()._made(items, NOW)
    for note, event, (user, type_, payload, about) in zip(notes, logged, items, strict=True):
        assert isinstance(note.payload, JsonPayload)
        assert note.payload == payload
        assert note.payload.json == msgspec.json.encode(payload)
        assert isinstance(event.payload, JsonPayload)
        assert event.payload.json == msgspec.json.encode(dict(event.payload))
        assert event.payload["notification"] == {
            "id": str(note.id),
            "type": type_,
            "payload": payload,
            "created_at": "2026-12-05T22:00:01.250000Z",
            "read": False,
        }
        assert (event.user_id, note.user_id, event.message_id) == (user, user, about)
        assert json_texts([event.payload]) == [msgspec.json.encode(event.payload).decode()]


async def test_published_frames_carry_the_same_bytes() -> None:
    bus = _Bus()
    delivery = _delivery(bus)
    _, logged = delivery._made([(7, "reply", {"message_id": "5"}, 5)], NOW)
    stored = [Event(e.user_id, e.type, e.payload, 4, NOW, e.message_id) for e in logged]
    await delivery.publish(stored)
    [(subject, frame)] = bus.sent
    assert subject == shard_subject(7)
    [fanned] = msgspec.json.decode(frame, type=list[Fanned])
    assert (fanned.type, fanned.users, fanned.seqs) == ("notification", [7], [4])
    assert bytes(fanned.payload) == stored[0].payload.json


def test_the_notifiers_payloads_carry_their_own_json() -> None:
    from socius.domain.push import NotificationKind
    from socius.services.notifier import _Note

    for kind in (NotificationKind.MESSAGE, NotificationKind.REACTION):
        payload = _Note(7, kind, 123456789012, 223456789012, 42).payload()
        assert payload.json == msgspec.json.encode(dict(payload))
        actor = "user_id" if kind is NotificationKind.REACTION else "sender_id"
        assert payload == {
            "conversation_id": "123456789012",
            "message_id": "223456789012",
            actor: "42",
        }
