"""The conversations repository: conversations, their members, messages and reactions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    and_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.conversations import Conversation, ConversationKind, Member, Message, Role
from socius.domain.graph import EdgeType
from socius.storage.attachments import carried, snapshots
from socius.storage.tables import conversations, edges, members, messages, reactions
from socius.storage.threads import thread_summary

__all__ = ["SqlConversationRepository", "conversation_from_row", "message_from_row"]

# The statements of a send, built once: SQLAlchemy then skips building and hashing
# them on every call (half of a statement's cost here, see bench/send_cost.py).
_MEMBER_COLUMNS = (members.c.role, members.c.joined_at, members.c.last_read_seq, members.c.muted)
_BLOCK_TYPES = (int(EdgeType.BLOCKS), int(EdgeType.BLOCKED_BY))
_WITH_MEMBER = (
    select(conversations, *_MEMBER_COLUMNS)
    .outerjoin(
        members,
        and_(
            members.c.conversation_id == conversations.c.id,
            members.c.user_id == bindparam("user_id"),
        ),
    )
    .where(conversations.c.id == bindparam("cid"))
)
_WITH_MEMBER_LOCKED = _WITH_MEMBER.with_for_update(of=conversations)
# The same, with whether it is a direct conversation whose other member and the user are
# blocked either way (every edge has its inverse, so the user's own edges tell both ways).
# CASE evaluates the probe only for direct conversations: nothing more for a group.
_peer, _block = members.alias("peer"), edges.alias("block")
_PEER_BLOCKED = exists(
    select(_block.c.dst)
    .select_from(_peer)
    .join(
        _block,
        and_(
            _block.c.src == bindparam("user_id"),
            _block.c.type.in_(_BLOCK_TYPES),
            _block.c.dst == _peer.c.user_id,
        ),
    )
    .where(_peer.c.conversation_id == conversations.c.id, _peer.c.user_id != bindparam("user_id"))
)
_WITH_MEMBER_AND_BLOCK = _WITH_MEMBER.add_columns(
    case(
        (conversations.c.kind == ConversationKind.DIRECT.value, _PEER_BLOCKED), else_=false()
    ).label("blocked")
)
_WITH_MEMBER_AND_BLOCK_LOCKED = _WITH_MEMBER_AND_BLOCK.with_for_update(of=conversations)
# Who hears a member's typing and read receipts: the other members but those blocked
# either way with the speaker (by the speaker's edges: one short index range), and, for
# typing, those who mute the speaker (a mute has no inverse: one probe per member).
_speaker_blocks, _mute = edges.alias("speaker_blocks"), edges.alias("mute")
_AUDIENCE = select(members.c.user_id).where(
    members.c.conversation_id == bindparam("cid"),
    members.c.user_id != bindparam("speaker"),
    members.c.user_id.not_in(
        select(_speaker_blocks.c.dst).where(
            _speaker_blocks.c.src == bindparam("speaker"),
            _speaker_blocks.c.type.in_(_BLOCK_TYPES),
        )
    ),
)
_AUDIENCE_UNMUTED = _AUDIENCE.where(
    ~exists(
        select(_mute.c.src).where(
            _mute.c.src == members.c.user_id,
            _mute.c.type == int(EdgeType.MUTES),
            _mute.c.dst == bindparam("speaker"),
        )
    )
)
_MEMBER_IDS = select(members.c.user_id).where(members.c.conversation_id == bindparam("cid"))
_NEXT_SEQ = (
    update(conversations)
    .where(conversations.c.id == bindparam("cid"))
    .values(last_seq=conversations.c.last_seq + 1, last_message_at=bindparam("when"))
    .returning(conversations.c.last_seq)
)
_ADVANCE_READ = (
    update(members)
    .where(
        members.c.conversation_id == bindparam("cid"),
        members.c.user_id == bindparam("uid"),
        members.c.last_read_seq < bindparam("to_seq"),
    )
    .values(last_read_seq=bindparam("to_seq"))
    .returning(members.c.last_read_seq)
)
_ADD_MESSAGE = insert(messages)
_BY_CLIENT_ID = select(messages).where(
    messages.c.conversation_id == bindparam("cid"),
    messages.c.sender_id == bindparam("sender_id"),
    messages.c.client_msg_id == bindparam("client_msg_id"),
)


def _conversation(row: Row[Any]) -> Conversation:
    return Conversation(
        id=row.id,
        kind=ConversationKind(row.kind),
        title=row.title,
        owner_id=row.owner_id,
        message_ttl_seconds=row.message_ttl_seconds,
        last_seq=row.last_seq,
        member_count=row.member_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_message_at=row.last_message_at,
    )


conversation_from_row = _conversation


def _member(row: Row[Any]) -> Member:
    return Member(
        row.conversation_id,
        row.user_id,
        Role(row.role),
        row.joined_at,
        row.last_read_seq,
        muted=bool(row.muted),
    )


def _membership(conversation_id: int, user_id: int, row: Row[Any]) -> Member | None:
    """The member columns of a conversation row joined with one user's membership."""
    if row.role is None:
        return None
    return Member(
        conversation_id,
        user_id,
        Role(row.role),
        row.joined_at,
        row.last_read_seq,
        muted=bool(row.muted),
    )


def _message(row: Row[Any], reacted: dict[str, int] | None = None) -> Message:
    return Message(
        id=row.id,
        conversation_id=row.conversation_id,
        seq=row.seq,
        sender_id=row.sender_id,
        client_msg_id=row.client_msg_id,
        body=row.body,
        reply_to=row.reply_to,
        created_at=row.created_at,
        edited_at=row.edited_at,
        deleted_at=row.deleted_at,
        expires_at=row.expires_at,
        reactions=reacted or {},
        attachments=carried(row.attachments, row.sender_id, row.created_at),
        thread_root_id=row.thread_root_id,
        thread=thread_summary(row),
    )


message_from_row = _message


class SqlConversationRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"

    # conversations -------------------------------------------------------------------

    async def add(self, conversation: Conversation, *, direct_key: str | None) -> bool:
        """Insert; False when a direct conversation with that key already exists."""
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(conversations).values(
                        id=conversation.id,
                        kind=conversation.kind.value,
                        title=conversation.title,
                        owner_id=conversation.owner_id,
                        direct_key=direct_key,
                        message_ttl_seconds=conversation.message_ttl_seconds,
                        last_seq=0,
                        member_count=0,
                        last_message_at=None,
                        created_at=conversation.created_at,
                        updated_at=conversation.updated_at,
                    )
                )
        except IntegrityError:
            if direct_key is None:
                raise
            return False
        return True

    async def get(self, conversation_id: int, *, lock: bool = False) -> Conversation | None:
        """``lock``: hold the row until the transaction ends (serializes senders)."""
        stmt = select(conversations).where(conversations.c.id == conversation_id)
        if lock and self._postgres:
            stmt = stmt.with_for_update()
        row = (await self._conn.execute(stmt)).first()
        return _conversation(row) if row else None

    async def with_member(
        self, conversation_id: int, user_id: int, *, lock: bool = False
    ) -> tuple[Conversation | None, Member | None]:
        """The conversation and ``user_id``'s membership of it, in one statement.
        ``lock`` as in ``get``."""
        stmt = _WITH_MEMBER_LOCKED if lock and self._postgres else _WITH_MEMBER
        row = (await self._conn.execute(stmt, {"cid": conversation_id, "user_id": user_id})).first()
        if row is None:
            return None, None
        return _conversation(row), _membership(conversation_id, user_id, row)

    async def with_member_and_block(
        self, conversation_id: int, user_id: int, *, lock: bool = False
    ) -> tuple[Conversation | None, Member | None, bool]:
        """``with_member``, and whether the conversation is a direct one whose other member
        and ``user_id`` are blocked either way; in the same one statement."""
        locked = lock and self._postgres
        stmt = _WITH_MEMBER_AND_BLOCK_LOCKED if locked else _WITH_MEMBER_AND_BLOCK
        row = (await self._conn.execute(stmt, {"cid": conversation_id, "user_id": user_id})).first()
        if row is None:
            return None, None, False
        return _conversation(row), _membership(conversation_id, user_id, row), bool(row.blocked)

    async def by_direct_key(self, key: str) -> Conversation | None:
        row = (
            await self._conn.execute(select(conversations).where(conversations.c.direct_key == key))
        ).first()
        return _conversation(row) if row else None

    async def update(self, conversation_id: int, **values: Any) -> Conversation | None:
        row = (
            await self._conn.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id)
                .values(**values)
                .returning(*conversations.c)
            )
        ).first()
        return _conversation(row) if row else None

    async def next_seq(self, conversation_id: int, when: datetime) -> int:
        """The next message number; the caller holds the conversation's row lock."""
        row = (await self._conn.execute(_NEXT_SEQ, {"cid": conversation_id, "when": when})).one()
        return int(row.last_seq)

    async def for_user(
        self, user_id: int, *, limit: int, before: tuple[datetime, int] | None
    ) -> list[tuple[Conversation, Member]]:
        """The user's conversations, most recently active first."""
        activity = func.coalesce(conversations.c.last_message_at, conversations.c.created_at)
        stmt = (
            select(conversations, *_MEMBER_COLUMNS)
            .join(members, members.c.conversation_id == conversations.c.id)
            .where(members.c.user_id == user_id)
            .order_by(activity.desc(), conversations.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            when, cid = before
            stmt = stmt.where(
                or_(activity < when, and_(activity == when, conversations.c.id < cid))
            )
        rows = await self._conn.execute(stmt)
        found = []
        for row in rows:
            member = _membership(row.id, user_id, row)
            assert member is not None
            found.append((_conversation(row), member))
        return found

    # members -------------------------------------------------------------------------

    async def member(self, conversation_id: int, user_id: int) -> Member | None:
        row = (
            await self._conn.execute(
                select(members).where(
                    members.c.conversation_id == conversation_id, members.c.user_id == user_id
                )
            )
        ).first()
        return _member(row) if row else None

    async def member_ids(self, conversation_id: int) -> list[int]:
        rows = await self._conn.execute(_MEMBER_IDS, {"cid": conversation_id})
        return [row.user_id for row in rows]

    async def member_ids_many(self, conversation_ids: Sequence[int]) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {c: [] for c in conversation_ids}
        if not found:
            return found
        rows = await self._conn.execute(
            select(members.c.conversation_id, members.c.user_id).where(
                members.c.conversation_id.in_(list(found))
            )
        )
        for row in rows:
            found[row.conversation_id].append(row.user_id)
        return found

    async def audience(self, conversation_id: int, speaker: int, *, typing: bool) -> list[int]:
        """The members who hear ``speaker``'s typing (``typing``) or read receipts: all but
        the speaker and those blocked either way with them; for typing, also not those
        who mute the speaker."""
        stmt = _AUDIENCE_UNMUTED if typing else _AUDIENCE
        rows = await self._conn.execute(stmt, {"cid": conversation_id, "speaker": speaker})
        return [row.user_id for row in rows]

    async def set_muted(self, conversation_id: int, user_id: int, muted: bool) -> bool:
        """Set the member's mute of the conversation; False when they are not a member."""
        result = await self._conn.execute(
            update(members)
            .where(members.c.conversation_id == conversation_id, members.c.user_id == user_id)
            .values(muted=muted)
        )
        return bool(result.rowcount)

    async def members(
        self, conversation_id: int, *, limit: int, after_user_id: int | None
    ) -> list[Member]:
        stmt = (
            select(members)
            .where(members.c.conversation_id == conversation_id)
            .order_by(members.c.user_id)
            .limit(limit)
        )
        if after_user_id is not None:
            stmt = stmt.where(members.c.user_id > after_user_id)
        return [_member(row) for row in await self._conn.execute(stmt)]

    async def first_members(
        self, conversation_ids: Sequence[int], viewer: int, *, limit: int
    ) -> dict[int, list[Member]]:
        if not conversation_ids:
            return {}
        mine = members.alias("mine")
        ranked = (
            select(
                members,
                func.row_number()
                .over(partition_by=members.c.conversation_id, order_by=members.c.user_id)
                .label("rank"),
            )
            .where(
                members.c.conversation_id.in_(list(conversation_ids)),
                exists(
                    select(mine.c.user_id).where(
                        mine.c.conversation_id == members.c.conversation_id,
                        mine.c.user_id == viewer,
                    )
                ),
            )
            .subquery()
        )
        rows = await self._conn.execute(
            select(ranked)
            .where(ranked.c.rank <= limit)
            .order_by(ranked.c.conversation_id, ranked.c.user_id)
        )
        found: dict[int, list[Member]] = {}
        for row in rows:
            found.setdefault(row.conversation_id, []).append(_member(row))
        return found

    async def add_members(
        self,
        conversation_id: int,
        user_roles: Sequence[tuple[int, Role]],
        when: datetime,
        *,
        read_seq: int,
    ) -> list[int]:
        """Add those not yet members; the ids added."""
        present = set(await self.member_ids(conversation_id))
        fresh = [(u, r) for u, r in user_roles if u not in present]
        if fresh:
            await self._conn.execute(
                insert(members),
                [
                    {
                        "conversation_id": conversation_id,
                        "user_id": u,
                        "role": r.value,
                        "joined_at": when,
                        "last_read_seq": read_seq,
                        "muted": False,
                    }
                    for u, r in fresh
                ],
            )
            await self._conn.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id)
                .values(member_count=conversations.c.member_count + len(fresh))
            )
        return [u for u, _ in fresh]

    async def remove_member(self, conversation_id: int, user_id: int) -> bool:
        result = await self._conn.execute(
            delete(members).where(
                members.c.conversation_id == conversation_id, members.c.user_id == user_id
            )
        )
        if not result.rowcount:
            return False
        await self._conn.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(member_count=conversations.c.member_count - 1)
        )
        return True

    async def set_role(self, conversation_id: int, user_id: int, role: Role) -> bool:
        result = await self._conn.execute(
            update(members)
            .where(members.c.conversation_id == conversation_id, members.c.user_id == user_id)
            .values(role=role.value)
        )
        return bool(result.rowcount)

    async def advance_read(self, conversation_id: int, user_id: int, seq: int) -> int:
        """Move the read pointer forward to ``seq`` (never back); the pointer after."""
        moved = (
            await self._conn.execute(
                _ADVANCE_READ, {"cid": conversation_id, "uid": user_id, "to_seq": seq}
            )
        ).first()
        if moved is not None:
            return int(moved.last_read_seq)
        member = await self.member(conversation_id, user_id)
        return member.last_read_seq if member else 0

    # messages ------------------------------------------------------------------------

    async def add_message(self, message: Message) -> None:
        await self._conn.execute(
            _ADD_MESSAGE,
            {
                "id": message.id,
                "conversation_id": message.conversation_id,
                "seq": message.seq,
                "sender_id": message.sender_id,
                "client_msg_id": message.client_msg_id,
                "body": message.body,
                "reply_to": message.reply_to,
                "created_at": message.created_at,
                "expires_at": message.expires_at,
                "attachments": snapshots(message.attachments),
                "thread_root_id": message.thread_root_id,
            },
        )

    async def message_by_client_id(
        self, conversation_id: int, sender_id: int, client_msg_id: str
    ) -> Message | None:
        params = {"cid": conversation_id, "sender_id": sender_id, "client_msg_id": client_msg_id}
        row = (await self._conn.execute(_BY_CLIENT_ID, params)).first()
        return (await self._with_reactions([_message(row)]))[0] if row else None

    async def message(self, conversation_id: int, message_id: int) -> Message | None:
        row = (
            await self._conn.execute(
                select(messages).where(
                    messages.c.id == message_id, messages.c.conversation_id == conversation_id
                )
            )
        ).first()
        return (await self._with_reactions([_message(row)]))[0] if row else None

    async def history(
        self,
        conversation_id: int,
        *,
        limit: int,
        before_seq: int | None,
        after_seq: int | None,
        thread_root_id: int | None = None,
    ) -> list[Message]:
        """Oldest first: the ``limit`` messages after ``after_seq``, else those just before
        ``before_seq`` (or the newest). The main timeline leaves thread replies out;
        ``thread_root_id``: the replies of that thread instead (docs/threads.md)."""
        stmt = select(messages).where(
            messages.c.conversation_id == conversation_id,
            messages.c.thread_root_id.is_(None)
            if thread_root_id is None
            else messages.c.thread_root_id == thread_root_id,
        )
        if after_seq is not None:
            stmt = stmt.where(messages.c.seq > after_seq).order_by(messages.c.seq)
            if before_seq is not None:
                stmt = stmt.where(messages.c.seq < before_seq)
            found = [_message(r) for r in await self._conn.execute(stmt.limit(limit))]
        else:
            if before_seq is not None:
                stmt = stmt.where(messages.c.seq < before_seq)
            stmt = stmt.order_by(messages.c.seq.desc()).limit(limit)
            found = [_message(r) for r in await self._conn.execute(stmt)][::-1]
        return await self._with_reactions(found)

    async def last_messages(self, conversation_ids: Sequence[int]) -> dict[int, Message]:
        if not conversation_ids:
            return {}
        rows = await self._conn.execute(
            select(messages)
            .join(
                conversations,
                and_(
                    conversations.c.id == messages.c.conversation_id,
                    conversations.c.last_seq == messages.c.seq,
                ),
            )
            .where(messages.c.conversation_id.in_(list(conversation_ids)))
        )
        found = await self._with_reactions([_message(r) for r in rows])
        return {m.conversation_id: m for m in found}

    async def update_message(self, message_id: int, **values: Any) -> None:
        await self._conn.execute(
            update(messages).where(messages.c.id == message_id).values(**values)
        )

    async def expired(self, now: datetime, *, limit: int) -> list[Message]:
        rows = await self._conn.execute(
            select(messages)
            .where(messages.c.expires_at <= now, messages.c.deleted_at.is_(None))
            .order_by(messages.c.expires_at)
            .limit(limit)
        )
        return [_message(r) for r in rows]

    # reactions -----------------------------------------------------------------------

    async def react(self, message_id: int, user_id: int, emoji: str, when: datetime) -> None:
        exists = (
            await self._conn.execute(
                select(reactions.c.message_id).where(
                    reactions.c.message_id == message_id,
                    reactions.c.user_id == user_id,
                    reactions.c.emoji == emoji,
                )
            )
        ).first()
        if exists is None:
            await self._conn.execute(
                insert(reactions).values(
                    message_id=message_id, user_id=user_id, emoji=emoji, created_at=when
                )
            )

    async def unreact(self, message_id: int, user_id: int, emoji: str) -> None:
        await self._conn.execute(
            delete(reactions).where(
                reactions.c.message_id == message_id,
                reactions.c.user_id == user_id,
                reactions.c.emoji == emoji,
            )
        )

    async def unreact_all(self, message_id: int) -> None:
        await self._conn.execute(delete(reactions).where(reactions.c.message_id == message_id))

    async def reaction_counts(self, message_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        result: dict[int, dict[str, int]] = {}
        if message_ids:
            rows = await self._conn.execute(
                select(reactions.c.message_id, reactions.c.emoji, func.count().label("n"))
                .where(reactions.c.message_id.in_(list(message_ids)))
                .group_by(reactions.c.message_id, reactions.c.emoji)
            )
            for message_id, emoji, n in rows:
                result.setdefault(message_id, {})[emoji] = int(n)
        return result

    async def _with_reactions(self, found: list[Message]) -> list[Message]:
        counts = await self.reaction_counts([m.id for m in found if not m.deleted])
        return [replace(m, reactions=counts[m.id]) if m.id in counts else m for m in found]

    async def messages_by(self, user_id: int) -> list[Message]:
        """Everything the user wrote that still exists, oldest first (for their export)."""
        rows = await self._conn.execute(
            select(messages).where(messages.c.sender_id == user_id).order_by(messages.c.id)
        )
        return [_message(r) for r in rows]

    # erasure -----------------------------------------------------------------------

    async def lock_for_user(self, user_id: int) -> list[int]:
        """Lock, in id order, every conversation the user is in, wrote in or reacted in:
        the same lock the senders take first, so erasing waits for them instead of
        deadlocking."""
        reacted_in = (
            select(messages.c.conversation_id)
            .join(reactions, reactions.c.message_id == messages.c.id)
            .where(reactions.c.user_id == user_id)
        )
        involved = (
            select(members.c.conversation_id)
            .where(members.c.user_id == user_id)
            .union(
                select(messages.c.conversation_id).where(messages.c.sender_id == user_id),
                reacted_in,
            )
        ).subquery()
        stmt = (
            select(conversations.c.id)
            .where(conversations.c.id.in_(select(involved.c.conversation_id)))
            .order_by(conversations.c.id)
        )
        if self._postgres:
            stmt = stmt.with_for_update()
        return [row.id for row in await self._conn.execute(stmt)]

    async def reacted_by(self, user_id: int) -> dict[int, int]:
        """The messages the user has a reaction on: message id -> conversation id."""
        rows = await self._conn.execute(
            select(reactions.c.message_id, messages.c.conversation_id)
            .join(messages, messages.c.id == reactions.c.message_id)
            .where(reactions.c.user_id == user_id)
            .distinct()
        )
        return {int(m): int(c) for m, c in rows}

    async def erase_messages_by(self, user_id: int, when: datetime) -> list[Message]:
        """Erase the content of everything the user wrote; the messages that were live."""
        live = [
            _message(row)
            for row in await self._conn.execute(
                select(messages).where(
                    messages.c.sender_id == user_id, messages.c.deleted_at.is_(None)
                )
            )
        ]
        if live:
            await self._conn.execute(
                delete(reactions).where(reactions.c.message_id.in_([m.id for m in live]))
            )
        await self._conn.execute(
            update(messages)
            .where(messages.c.sender_id == user_id)
            .values(
                body=None,
                sender_id=None,
                deleted_at=func.coalesce(messages.c.deleted_at, when),
                attachments=None,
            )
        )
        await self._conn.execute(delete(reactions).where(reactions.c.user_id == user_id))
        return live
