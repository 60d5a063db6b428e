"""The statements of a group of sends (group commit, decision 0011): each one covers every
message of the group, so a group of N costs about what one send did.

On PostgreSQL the lists go as arrays (``unnest``), so every statement keeps one text
whatever the group's size (one server-side prepare per connection); on SQLite, which runs
on the loop and prepares in microseconds, as ``IN``/``VALUES`` lists or ``executemany``.
The reads and updates go to the driver directly once the transaction is open (the first
statement, the locks, goes through SQLAlchemy and opens it: ``storage/driver.py``).

On PostgreSQL a group's writes are one statement (``write``, decision 0055): the
messages, the conversations' ``last_seq``, the senders' read pointers, the stream's
events and the members' logs, as data-modifying CTEs; and the direct peers' facts one
(``peers``). Every statement of a group is a round trip with the conversations locked,
and each round trip costs a wake-up of the worker and of the backend on a busy machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.conversations import (
    Conversation,
    ConversationKind,
    Message,
    Peer,
    SendFacts,
    SendTarget,
)
from socius.domain.events import Event
from socius.domain.graph import EdgeType
from socius.domain.stream import DomainEvent
from socius.storage.attachments import snapshots
from socius.storage.conversations import conversation_from_row
from socius.storage.driver import direct, fetch, json_texts, on_driver, write_timestamp
from socius.storage.id_lists import one_of
from socius.storage.outbox import PG_APPEND_TAIL, by_user, log_arrays, numbered_events
from socius.storage.rows import ValuesList
from socius.storage.tables import conversations, messages

__all__ = ["SqlSendRepository"]

_MESSAGES = ValuesList(
    messages,
    [
        "id",
        "conversation_id",
        "seq",
        "sender_id",
        "client_msg_id",
        "body",
        "reply_to",
        "created_at",
        "expires_at",
        "attachments",
        "thread_root_id",
    ],
)

# The facts' kinds 1 and 2 (below), up to the joins that pick the peers: the messages
# sent before under the keys, and each (sender, conversation)'s other member.
_SENT_AND_PEERS = (
    "UNION ALL SELECT 1, m.conversation_id, m.sender_id, m.client_msg_id, NULL, m.id, NULL "
    "FROM messages m JOIN unnest(?::bigint[], ?::bigint[], ?::text[]) AS k(cid, sid, cmid) "
    "ON m.conversation_id = k.cid AND m.sender_id = k.sid AND m.client_msg_id = k.cmid "
    "UNION ALL SELECT 2, k.a, p.user_id, u.status, u.dm_policy, k.c, "
    "ARRAY(SELECT e.type::int FROM edges e WHERE e.src = k.a AND e.dst = p.user_id) "
    "FROM unnest(?::bigint[], ?::bigint[]) AS k(a, c) "
)

_PG = {
    "members": "SELECT conversation_id, user_id FROM members "
    "WHERE conversation_id = ANY(?::bigint[])",
    "by_client_ids": "SELECT m.conversation_id, m.sender_id, m.client_msg_id, m.id "
    "FROM messages m JOIN unnest(?::bigint[], ?::bigint[], ?::text[]) AS k(cid, sid, cmid) "
    "ON m.conversation_id = k.cid AND m.sender_id = k.sid AND m.client_msg_id = k.cmid",
    "in_conversations": "SELECT id, conversation_id FROM messages WHERE id = ANY(?::bigint[])",
    "edges": "SELECT e.src, e.dst, e.type FROM edges e "
    "JOIN unnest(?::bigint[], ?::bigint[]) AS k(src, dst) ON e.src = k.src AND e.dst = k.dst",
    "advance": "UPDATE conversations AS c SET last_seq = k.seq, last_message_at = ? "
    "FROM unnest(?::bigint[], ?::bigint[]) AS k(id, seq) WHERE c.id = k.id",
    "read_up_to": "UPDATE members AS m SET last_read_seq = k.seq "
    "FROM unnest(?::bigint[], ?::bigint[], ?::bigint[]) AS k(cid, uid, seq) "
    "WHERE m.conversation_id = k.cid AND m.user_id = k.uid AND m.last_read_seq < k.seq",
    # What a group reads once its conversations are locked, in one statement (one
    # snapshot, taken after the locks): kind 0, the members (conversation, user); kind
    # 1, the messages sent before under the keys (conversation, sender, client_msg_id,
    # id); kind 2, for each (sender, direct conversation), the other member with their
    # status and DM policy (NULL: no such user) and the edge types from the sender to them.
    "facts": "SELECT 0, conversation_id, user_id, NULL::text, NULL::text, NULL::bigint, "  # noqa: S608 (no values)
    "NULL::int[] FROM members WHERE conversation_id = ANY(?::bigint[]) "
    f"{_SENT_AND_PEERS}"
    "JOIN members p ON p.conversation_id = k.c AND p.user_id <> k.a "
    "LEFT JOIN users u ON u.id = p.user_id",
    # The same on the driver (decision 0060), the transaction's second statement, the
    # first (``BEGIN`` and the locks) having read nothing: also kind 3, each conversation
    # found (id, last_seq, kind, message TTL); and kind 2 for the (sender, conversation)
    # pairs whose conversation is direct (the kinds are read here, not known before).
    "locked_facts": "SELECT 3, id, last_seq, kind::text, NULL::text, "  # noqa: S608 (no values)
    "message_ttl_seconds::bigint, NULL::int[] FROM conversations WHERE id = ANY(?::bigint[]) "
    "UNION ALL SELECT 0, conversation_id, user_id, NULL, NULL, NULL, NULL "
    "FROM members WHERE conversation_id = ANY(?::bigint[]) "
    f"{_SENT_AND_PEERS}"
    "JOIN conversations d ON d.id = k.c AND d.kind = 'direct' "
    "JOIN members p ON p.conversation_id = k.c AND p.user_id <> k.a "
    "LEFT JOIN users u ON u.id = p.user_id",
    # A group's writes in one statement. Unreferenced data-modifying CTEs run to the end
    # all the same. The log counters are taken as ``outbox.py`` takes them (ascending
    # user id, the arrays' order) and stay locked to the commit; the conversations are
    # locked already, and so, through them, the members' rows.
    "write": "WITH msg AS (INSERT INTO messages (id, conversation_id, seq, sender_id, "  # noqa: S608
    "client_msg_id, body, reply_to, created_at, expires_at, attachments, thread_root_id) "
    "SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::text[], "
    "?::text[], ?::bigint[], ?::timestamptz[], ?::timestamptz[], ?::json[], ?::bigint[])), "
    "adv AS (UPDATE conversations AS c SET last_seq = k.seq, last_message_at = ? "
    "FROM unnest(?::bigint[], ?::bigint[]) AS k(id, seq) WHERE c.id = k.id), "
    "rd AS (UPDATE members AS m SET last_read_seq = k.seq "
    "FROM unnest(?::bigint[], ?::bigint[], ?::bigint[]) AS k(cid, uid, seq) "
    "WHERE m.conversation_id = k.cid AND m.user_id = k.uid AND m.last_read_seq < k.seq), "
    "dom AS (INSERT INTO domain_events (id, type, occurred_at, data, message_id) "
    "SELECT * FROM unnest(?::bigint[], ?::text[], ?::timestamptz[], ?::json[], ?::bigint[])), "
    + PG_APPEND_TAIL,
}


def _fact_arrays(
    keys: Sequence[tuple[int, int, str]], pairs: Sequence[tuple[int, int]]
) -> tuple[list[int], list[int], list[str], list[int], list[int]]:
    """The arrays of ``_SENT_AND_PEERS``' parameters: the keys' columns, then the
    (sender, conversation) pairs'."""
    return (
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [a for a, _ in pairs],
        [c for _, c in pairs],
    )


def _add_facts(
    rows: Sequence[Sequence[Any]], facts: SendFacts, found: dict[int, SendTarget] | None = None
) -> None:
    """The rows of ``facts`` or ``locked_facts`` into ``facts`` (kinds 0, 1, 2) and, of the
    latter, the conversations found into ``found`` (kind 3)."""
    members = facts.members
    for kind, x, y, text, policy, n, types in rows:
        if kind == 0:
            members.setdefault(int(x), set()).add(int(y))
        elif kind == 1:
            facts.earlier[(int(x), int(y), str(text))] = int(n)
        elif kind == 2:
            facts.peers[(int(x), int(n))] = (int(y), text, policy, {EdgeType(t) for t in types})
        else:
            assert found is not None, "kind 3: locked_facts only"
            found[int(x)] = SendTarget(ConversationKind(text), int(y), n)
            members.setdefault(int(x), set())


# What the listeners (the statement counts, the SQL spans) are told of the first statement
# on the driver, sent as ``BEGIN; SELECT ... FOR UPDATE`` with the ids inlined (integers).
_LOCK_ANNOUNCED = "SELECT id FROM conversations WHERE id = ANY(?::bigint[]) ORDER BY id FOR UPDATE"
# SQLite: the lists as placeholders, ``{}`` filled with ``?, ?...`` (never with values).
_LITE = {
    "members": "SELECT conversation_id, user_id FROM members WHERE conversation_id IN ({})",
    # Joined with the VALUES list, not ``(a, b) IN (VALUES ...)``: SQLite scans the whole
    # table for a row-value IN, and searches the unique index for each row of a join.
    "by_client_ids": "SELECT m.conversation_id, m.sender_id, m.client_msg_id, m.id "
    "FROM (VALUES {}) AS k JOIN messages m ON m.conversation_id = k.column1 "
    "AND m.sender_id = k.column2 AND m.client_msg_id = k.column3",
    "in_conversations": "SELECT id, conversation_id FROM messages WHERE id IN ({})",
    "edges": "SELECT e.src, e.dst, e.type FROM (VALUES {}) AS k "
    "JOIN edges e ON e.src = k.column1 AND e.dst = k.column2",
    "users": "SELECT id, status, dm_policy FROM users WHERE id IN ({})",
}
_LITE_ADVANCE = "UPDATE conversations SET last_seq = ?, last_message_at = ? WHERE id = ?"
_LITE_READ_UP_TO = (
    "UPDATE members SET last_read_seq = ? "
    "WHERE conversation_id = ? AND user_id = ? AND last_read_seq < ?"
)


def _marks(n: int, width: int = 1) -> str:
    one = "?" if width == 1 else "(" + ", ".join("?" * width) + ")"
    return ", ".join(one for _ in range(n))


class SqlSendRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"

    @property
    def writes_at_once(self) -> bool:
        """Does ``write`` take a group's writes (PostgreSQL)? Else the caller runs
        ``insert``, ``advance``, ``read_up_to`` and the logs' appends one by one."""
        return self._postgres

    async def lock(self, conversation_ids: Sequence[int]) -> dict[int, Conversation]:
        """The conversations, each locked (PostgreSQL ``FOR UPDATE``, in ascending id
        order: the one order of every writer) until the transaction ends."""
        ids = sorted(set(conversation_ids))
        stmt = (
            select(conversations)
            .where(one_of(conversations.c.id, ids, self._conn.dialect.name))
            .order_by(conversations.c.id)
        )
        if self._postgres:
            stmt = stmt.with_for_update()
        rows = await self._conn.execute(stmt)
        return {row.id: conversation_from_row(row) for row in rows}

    async def _rows(self, name: str, lite: str, *args: Any) -> Sequence[Sequence[Any]]:
        if self._postgres:
            assert direct(self._conn), "the transaction opens with the locks"
            return await fetch(self._conn, _PG[name], *args)
        flat = [v for arg in args for v in (arg if isinstance(arg, list) else [arg])]
        return await fetch(self._conn, lite, *flat)

    async def member_ids(self, conversation_ids: Sequence[int]) -> dict[int, set[int]]:
        ids = list(conversation_ids)
        found: dict[int, set[int]] = {c: set() for c in ids}
        if ids:
            lite = _LITE["members"].format(_marks(len(ids)))
            for cid, uid in await self._rows("members", lite, ids):
                found[int(cid)].add(int(uid))
        return found

    async def by_client_ids(
        self, keys: Sequence[tuple[int, int, str]]
    ) -> dict[tuple[int, int, str], int]:
        """The messages already sent under ``(conversation, sender, client_msg_id)``:
        key -> message id."""
        if not keys:
            return {}
        if self._postgres:
            rows = await self._rows(
                "by_client_ids",
                "",
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
            )
        else:
            sql = _LITE["by_client_ids"].format(_marks(len(keys), 3))
            rows = await fetch(self._conn, sql, *[v for k in keys for v in k])
        return {(int(c), int(s), str(m)): int(i) for c, s, m, i in rows}

    async def in_conversations(self, message_ids: Sequence[int]) -> dict[int, int]:
        """Message id -> its conversation id, for those of ``message_ids`` that exist."""
        ids = sorted(set(message_ids))
        if not ids:
            return {}
        lite = _LITE["in_conversations"].format(_marks(len(ids)))
        return {int(m): int(c) for m, c in await self._rows("in_conversations", lite, ids)}

    async def edges_between(
        self, pairs: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], set[EdgeType]]:
        """The edge types from ``src`` to ``dst`` of each pair."""
        found: dict[tuple[int, int], set[EdgeType]] = {p: set() for p in pairs}
        if not found:
            return found
        keys = list(found)
        if self._postgres:
            rows = await self._rows("edges", "", [s for s, _ in keys], [d for _, d in keys])
        else:
            sql = _LITE["edges"].format(_marks(len(keys), 2))
            rows = await fetch(self._conn, sql, *[v for k in keys for v in k])
        for src, dst, type_ in rows:
            found[(int(src), int(dst))].add(EdgeType(type_))
        return found

    async def facts(
        self,
        conversation_ids: Sequence[int],
        keys: Sequence[tuple[int, int, str]],
        direct: Sequence[tuple[int, int]],
    ) -> SendFacts:
        """With the conversations locked: their members, the messages sent before under
        ``keys`` and, for each ``(sender, conversation)`` of ``direct``, the conversation's
        other member (PostgreSQL: one statement; SQLite: three or four)."""
        if not self._postgres:
            members = await self.member_ids(conversation_ids)
            earlier = await self.by_client_ids(keys)
            return SendFacts(members, earlier, await self._peers_lite(direct, members))
        found = SendFacts({c: set() for c in conversation_ids}, {}, {})
        if not conversation_ids:
            return found
        rows = await self._rows("facts", "", list(conversation_ids), *_fact_arrays(keys, direct))
        _add_facts(rows, found)
        return found

    async def lock_with_facts(
        self,
        conversation_ids: Sequence[int],
        keys: Sequence[tuple[int, int, str]],
        senders: Sequence[tuple[int, int]],
    ) -> tuple[dict[int, SendTarget], SendFacts]:
        """On the driver (PostgreSQL), opening the transaction: ``lock`` sent with its
        ``BEGIN`` (one round trip, the ids inlined), then ``facts`` with the conversations
        found (one more, its snapshot taken after the locks, as ``facts``'s); ``senders``
        are ``(sender, conversation)`` pairs, the direct ones kept (decision 0060)."""
        driver = on_driver(self._conn)
        assert driver is not None, "a unit of work on the driver"
        assert self._postgres
        ids = sorted(set(conversation_ids))
        found: dict[int, SendTarget] = {}
        facts = SendFacts({}, {}, {})
        if not ids:
            return found, facts
        inlined = ", ".join(f"{i:d}" for i in ids)
        await driver.begin_with(
            # Integers of ours (``:d``), inlined: BEGIN goes with it only without parameters.
            f"SELECT id FROM conversations WHERE id IN ({inlined}) ORDER BY id FOR UPDATE",  # noqa: S608
            _LOCK_ANNOUNCED,
            ids,
        )
        rows = await driver.fetch(_PG["locked_facts"], ids, ids, *_fact_arrays(keys, senders))
        _add_facts(rows, facts, found)
        return found, facts

    async def _peers_lite(
        self, direct: Sequence[tuple[int, int]], members: dict[int, set[int]]
    ) -> dict[tuple[int, int], Peer]:
        pairs = {(a, c): p for a, c in direct for p in members.get(c, set()) if p != a}
        if not pairs:
            return {}
        ids = sorted(set(pairs.values()))
        sql = _LITE["users"].format(_marks(len(ids)))
        users = {int(i): (s, d) for i, s, d in await fetch(self._conn, sql, *ids)}
        edges = await self.edges_between(sorted({(a, p) for (a, _), p in pairs.items()}))
        return {
            (a, c): (p, *users.get(p, (None, None)), edges[(a, p)]) for (a, c), p in pairs.items()
        }

    async def write(
        self,
        new: Sequence[Message],
        last_seqs: dict[int, int],
        pointers: Sequence[tuple[int, int, int]],
        domain: Sequence[DomainEvent],
        log: Sequence[Event],
        when: datetime,
    ) -> list[Event]:
        """PostgreSQL (``writes_at_once``), the caller holding the conversations' locks:
        in one statement the new messages, each conversation's ``last_seq`` (and last
        activity ``when``), the ``(conversation, user, seq)`` read pointers (never back),
        the stream's ``domain`` events and ``log`` appended to their recipients' logs;
        the logged events with their numbers, by user (as ``outbox.add`` answers)."""
        assert self._postgres
        at = write_timestamp(when, "postgresql")
        per_user = by_user(log)
        carried = [snapshots(m.attachments) for m in new]
        rows = await self._rows(
            "write",
            "",
            [m.id for m in new],
            [m.conversation_id for m in new],
            [m.seq for m in new],
            [m.sender_id for m in new],
            [m.client_msg_id for m in new],
            [m.body for m in new],
            [m.reply_to for m in new],
            [m.created_at for m in new],
            [m.expires_at for m in new],
            [None if c is None else t for c, t in zip(carried, json_texts(carried), strict=True)],
            [m.thread_root_id for m in new],
            at,
            list(last_seqs),
            list(last_seqs.values()),
            [p[0] for p in pointers],
            [p[1] for p in pointers],
            [p[2] for p in pointers],
            [d.id for d in domain],
            [d.type for d in domain],
            [d.occurred_at for d in domain],
            json_texts([d.data for d in domain]),
            [d.message_id for d in domain],
            *log_arrays(per_user, at),
        )
        return numbered_events(per_user, {int(u): int(s) for u, s in rows}, when)

    async def insert(self, new: Sequence[Message]) -> None:
        """The new messages, in multi-row INSERTs."""
        rows = [
            (
                m.id,
                m.conversation_id,
                m.seq,
                m.sender_id,
                m.client_msg_id,
                m.body,
                m.reply_to,
                m.created_at,
                m.expires_at,
                snapshots(m.attachments),
                m.thread_root_id,
            )
            for m in new
        ]
        for values, params in _MESSAGES.chunks(self._conn.dialect, rows):
            await self._conn.exec_driver_sql(
                f"INSERT INTO messages ({_MESSAGES.column_list}) {values}", params
            )

    async def advance(self, last_seqs: dict[int, int], when: datetime) -> None:
        """Each conversation's ``last_seq`` (and last activity ``when``); the caller holds
        their locks."""
        if not last_seqs:
            return
        at = write_timestamp(when, self._conn.dialect.name)
        if self._postgres:
            await self._rows("advance", "", at, list(last_seqs), list(last_seqs.values()))
        else:
            await self._conn.exec_driver_sql(
                _LITE_ADVANCE, [(seq, at, cid) for cid, seq in last_seqs.items()]
            )

    async def read_up_to(self, pointers: Sequence[tuple[int, int, int]]) -> None:
        """Move each ``(conversation, user, seq)`` read pointer forward (never back)."""
        if not pointers:
            return
        if self._postgres:
            await self._rows(
                "read_up_to",
                "",
                [p[0] for p in pointers],
                [p[1] for p in pointers],
                [p[2] for p in pointers],
            )
        else:
            await self._conn.exec_driver_sql(
                _LITE_READ_UP_TO, [(seq, cid, uid, seq) for cid, uid, seq in pointers]
            )
