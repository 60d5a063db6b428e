"""Delivery invariants under random schedules.

A seeded random schedule of sends (some of them retries, some replies), edits, deletes,
reactions, read pointers and typing runs against a group and a direct conversation, while
client devices "reconnect" at arbitrary points: each syncs from the cursor it remembers,
a page or a few at a time, and sometimes falls back to an older checkpoint (cursor and
local state saved together) as an app restored from a backup would.

At every step a device's log must be exactly what it saw before when it replays (same
cursor, same event), with no gaps and no duplicates; at the end, every device's local
model of each conversation, built from its events alone, equals the server's history,
and a user in no conversation has heard nothing of either.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from api_support import logged
from log_support import same_slot

from conftest import Account

CONVERSATIONS = "/v1/conversations"
EMOJI = ["👍", "ok", "🔥"]


@dataclass
class Device:
    """One client app: a cursor into its user's log and a local copy of conversations."""

    account: Account
    cursor: str | None = None
    position: int = 0  # how many of the user's events this state reflects
    model: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    where: dict[str, tuple[str, int]] = field(default_factory=dict)  # message id -> (cid, seq)
    seen: list[dict[str, Any]] = field(default_factory=list)  # the log, as first received
    checkpoint: tuple[Any, ...] | None = None

    def apply(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("message.created", "message.updated"):
            m = event["message"]
            self.model.setdefault(m["conversation_id"], {})[m["seq"]] = copy.deepcopy(m)
            self.where[m["id"]] = (m["conversation_id"], m["seq"])
        elif kind == "message.deleted":
            # In place of the message (and of each event about it, once it is erased).
            tombstone = copy.deepcopy(event["message"])
            assert tombstone["id"] == event["message_id"]
            self.model.setdefault(event["conversation_id"], {})[event["seq"]] = tombstone
            self.where[event["message_id"]] = (event["conversation_id"], event["seq"])
        elif kind == "reaction.updated":
            cid, seq = self.where[event["message_id"]]
            assert cid == event["conversation_id"]
            self.model[cid][seq]["reactions"] = dict(event["reactions"])

    def sync(self, *, limit: int, pages: int | None) -> None:
        done = 0
        while pages is None or done < pages:
            response = self.account.client.request(
                "GET", "/v1/sync", params={"cursor": self.cursor, "limit": limit}
            )
            page = response.json()
            done += 1
            if not page["items"]:
                assert self.cursor is None or page["next_cursor"] == self.cursor
                return
            assert len(page["items"]) <= limit
            for item in page["items"]:
                if self.position < len(self.seen):
                    # A replay after going back: the same event at the same place, or its
                    # message's later version or tombstone (edits and erasure rewrite it).
                    assert same_slot(self.seen[self.position], item), (self.position, item)
                    self.seen[self.position] = item
                else:
                    self.seen.append(item)
                self.position += 1
                self.apply(item["event"])
            assert page["next_cursor"] == page["items"][-1]["cursor"]
            self.cursor = page["next_cursor"]

    def save(self) -> None:
        self.checkpoint = (
            self.cursor,
            self.position,
            copy.deepcopy(self.model),
            dict(self.where),
        )

    def restore(self) -> None:
        assert self.checkpoint is not None
        cursor, position, model, where = self.checkpoint
        self.cursor, self.position = cursor, position
        self.model, self.where = copy.deepcopy(model), dict(where)


@dataclass
class Sent:
    cid: str
    id: str
    sender: Account
    client_msg_id: str
    seq: int
    deleted: bool = False


def history(account: Account, cid: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = account.client.request(
            "GET",
            f"{CONVERSATIONS}/{cid}/messages",
            params={"after_seq": items[-1]["seq"] if items else 0, "limit": 100},
        ).json()["items"]
        if not page:
            return items
        items += page


class Schedule:
    def __init__(self, rng: random.Random, users: list[Account], outsider: Account) -> None:
        self.rng = rng
        owner, second, third = users
        self.owner = owner
        self.group = owner.client.request(
            "POST",
            CONVERSATIONS,
            json={"kind": "group", "title": "g", "member_ids": [second.id, third.id]},
        ).json()["id"]
        self.dm = second.client.request(
            "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [owner.id]}
        ).json()["id"]
        self.members = {self.group: users, self.dm: [owner, second]}
        self.sent: list[Sent] = []
        self.reacted: set[tuple[str, str, str]] = set()  # (message id, user id, emoji)
        # The owner on two devices; every other user on one; the outsider too.
        self.devices = [Device(owner), Device(owner), Device(second), Device(third)]
        self.outsider = Device(outsider)

    def send(self) -> None:
        cid = self.rng.choice(list(self.members))
        sender = self.rng.choice(self.members[cid])
        earlier = [s for s in self.sent if s.cid == cid and s.sender is sender]
        if earlier and self.rng.random() < 0.15:  # a retry of an earlier send
            original = self.rng.choice(earlier)
            response = self._post(sender, cid, original.client_msg_id, "retry", None)
            assert response.status_code == 200, response.text
            assert (response.json()["id"], response.json()["seq"]) == (original.id, original.seq)
            return
        in_conversation = [s for s in self.sent if s.cid == cid]
        reply_to = None
        if in_conversation and self.rng.random() < 0.2:
            reply_to = self.rng.choice(in_conversation).id
        cmid = uuid.uuid4().hex
        body = f"msg {len(self.sent)} " + "x" * self.rng.randrange(0, 40)
        response = self._post(sender, cid, cmid, body, reply_to)
        assert response.status_code == 201, response.text
        m = response.json()
        assert m["seq"] == 1 + sum(1 for s in self.sent if s.cid == cid)
        self.sent.append(Sent(cid, m["id"], sender, cmid, m["seq"]))

    def _post(self, sender: Account, cid: str, cmid: str, body: str, reply_to: str | None) -> Any:
        payload: dict[str, Any] = {"client_msg_id": cmid, "body": body}
        if reply_to is not None:
            payload["reply_to"] = reply_to
        return sender.client.raw("POST", f"{CONVERSATIONS}/{cid}/messages", json=payload)

    def _live(self) -> list[Sent]:
        return [s for s in self.sent if not s.deleted]

    def edit(self) -> None:
        live = self._live()
        if not live:
            return
        target = self.rng.choice(live)
        editor = self.rng.choice(self.members[target.cid])
        path = f"{CONVERSATIONS}/{target.cid}/messages/{target.id}"
        response = editor.client.raw("PATCH", path, json={"body": f"edited {uuid.uuid4().hex}"})
        expected = 200 if editor is target.sender else 403
        assert response.status_code == expected, response.text

    def delete(self) -> None:
        live = self._live()
        if not live:
            return
        target = self.rng.choice(live)
        actor = self.rng.choice(self.members[target.cid])
        path = f"{CONVERSATIONS}/{target.cid}/messages/{target.id}"
        response = actor.client.raw("DELETE", path)
        allowed = actor is target.sender or (target.cid == self.group and actor is self.owner)
        assert response.status_code == (200 if allowed else 403), response.text
        if allowed:
            target.deleted = True
            self.reacted = {r for r in self.reacted if r[0] != target.id}

    def react(self) -> None:
        live = self._live()
        if not live:
            return
        target = self.rng.choice(live)
        user = self.rng.choice(self.members[target.cid])
        emoji = self.rng.choice(EMOJI)
        key = (target.id, user.id, emoji)
        on = key not in self.reacted or self.rng.random() < 0.2  # sometimes a repeat
        path = f"{CONVERSATIONS}/{target.cid}/messages/{target.id}/reactions/{emoji}"
        response = user.client.raw("PUT" if on else "DELETE", path)
        assert response.status_code == 200, response.text
        if on:
            self.reacted.add(key)
        else:
            self.reacted.discard(key)
        counts: dict[str, int] = {}
        for mid, _, e in self.reacted:
            if mid == target.id:
                counts[e] = counts.get(e, 0) + 1
        assert response.json()["reactions"] == counts

    def read(self) -> None:
        cid = self.rng.choice(list(self.members))
        user = self.rng.choice(self.members[cid])
        seq = self.rng.randrange(0, 3 + sum(1 for s in self.sent if s.cid == cid))
        response = user.client.raw("POST", f"{CONVERSATIONS}/{cid}/read", json={"seq": seq})
        assert response.status_code == 200, response.text

    def typing(self) -> None:
        cid = self.rng.choice(list(self.members))
        user = self.rng.choice(self.members[cid])
        assert user.client.raw("POST", f"{CONVERSATIONS}/{cid}/typing").status_code == 204

    def reconnect(self) -> None:
        device = self.rng.choice([*self.devices, self.outsider])
        pages = self.rng.choice([1, 1, 2, 3, None])
        device.sync(limit=self.rng.randint(1, 8), pages=pages)

    def checkpoint(self) -> None:
        device = self.rng.choice(self.devices)
        if device.checkpoint is None or self.rng.random() < 0.5:
            device.save()
        else:
            device.restore()

    def run(self, steps: int) -> None:
        actions = [
            (self.send, 6),
            (self.edit, 2),
            (self.delete, 1),
            (self.react, 2),
            (self.read, 1),
            (self.typing, 1),
            (self.reconnect, 4),
            (self.checkpoint, 1),
        ]
        functions, weights = zip(*actions, strict=True)
        for _ in range(steps):
            self.rng.choices(functions, weights=weights)[0]()

    def check(self) -> None:
        for device in [*self.devices, self.outsider]:
            device.sync(limit=100, pages=None)
            # Everything the user's log holds, read afresh, is what the device took in.
            fresh = Device(device.account)
            fresh.sync(limit=100, pages=None)
            assert len(fresh.seen) == len(device.seen)
            for seen, now in zip(device.seen, fresh.seen, strict=True):
                assert same_slot(seen, now), (seen, now)
            assert device.position == len(device.seen)
        for device in self.devices:
            for cid, people in self.members.items():
                if device.account not in people:
                    assert cid not in device.model
                    continue
                server = history(device.account, cid)
                local = [device.model.get(cid, {})[s] for s in sorted(device.model.get(cid, {}))]
                assert local == server, (cid, device.account.id)
        # Both of the owner's devices ended in the same place.
        assert self.devices[0].model == self.devices[1].model
        # The outsider heard nothing of either conversation.
        assert self.outsider.model == {}
        for item in self.outsider.seen:
            text = repr(item["event"])
            assert self.group not in text, item
            assert self.dm not in text, item


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_device_ends_with_the_servers_history(
    register: Callable[..., Account], seed: int
) -> None:
    rng = random.Random(seed)
    users = [register() for _ in range(3)]
    schedule = Schedule(rng, users, register())
    schedule.run(120)
    schedule.check()
    assert len(schedule.sent) > 20
    assert any(s.deleted for s in schedule.sent)


def test_a_send_appends_to_the_logs_in_one_statement_on_postgresql(
    stack: str, register: Callable[..., Account], count_queries: Callable[[], Any]
) -> None:
    """On PostgreSQL the members' log counters and events of a send (or a group of them)
    are written by one statement, one round trip while the counters are locked (decision
    0029); SQLite takes the counters, then writes the events. Every member's log gets the
    message either way."""
    owner, a, b = register(), register(), register()
    cid = owner.client.create_group("logs", [a.id, b.id]).id
    with count_queries() as statements:
        sent = owner.client.raw(
            "POST",
            f"/v1/conversations/{cid}/messages",
            json={"client_msg_id": "one-statement", "body": "hello"},
        )
        assert sent.status_code == 201, sent.text
    writes = [s for s in statements if "user_seqs" in s or "INTO user_events" in s]
    assert len(writes) == (1 if stack == "postgres" else 2), writes
    mid = sent.json()["id"]
    for member in (owner, a, b):
        events, _ = logged(member)
        created = [e for e in events if e["type"] == "message.created"]
        assert [e["message"]["id"] for e in created] == [mid]
