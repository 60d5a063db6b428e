"""Message search over the index migration 0013 keeps (docs/search.md).

SQLite: the FTS5 table ``messages_fts``, ranked by BM25, snippets by ``snippet()``.
PostgreSQL: ``messages.search_vector`` (GIN), ranked by ``ts_rank``, snippets by
``ts_headline``, in the configuration ``socius_search_config()`` names. Either way only
the page's own rows get a snippet, and a message that is deleted, erased (body cleared:
the triggers drop it from the index in the same transaction) or past its expiry (the
sweep may not have cleared it yet) never matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.search import MARK_END, MARK_START, SearchHit, highlighted
from socius.storage.conversations import SqlConversationRepository, message_from_row
from socius.storage.search_schema import FTS_TABLE, VECTOR_COLUMN
from socius.storage.tables import members, messages

__all__ = ["SqlSearchRepository"]

_fts = table(FTS_TABLE, column("rowid"))
_MATCH = text(f"{FTS_TABLE} MATCH :match")
# The body alone is ranked: the conversation column only narrows the match.
_BM25 = func.bm25(literal_column(FTS_TABLE), 1.0, 0.0)
_CONVERSATIONS_OF = select(members.c.conversation_id).where(
    members.c.user_id == bindparam("viewer")
)
MAX_NARROWED = 500
"""Up to this many conversations, SQLite's text match is ANDed with them in the index."""
_SNIPPETS = text(
    "SELECT rowid, snippet(messages_fts, 0, char(2), char(3), '…', 24) AS snippet "
    "FROM messages_fts WHERE messages_fts MATCH :match AND rowid IN :ids"
).bindparams(bindparam("ids", expanding=True))

_config = func.socius_search_config()
_vector: ColumnElement[Any] = literal_column(f"messages.{VECTOR_COLUMN}")
# One stretch of up to 30 words around the best cover (a short message whole). The
# default parser reads ``<...>`` as a markup tag and leaves it out of the headline.
_HEADLINE = f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=30, MinWords=12"


def _tsquery() -> ColumnElement[Any]:
    # The words are written into the statement (they are ``\w+`` runs, and SQLAlchemy
    # quotes them), not bound: a prepared statement switches to a generic plan after five
    # runs, planned for no words in particular, and the best plan depends on them (a rare
    # word: the GIN index; a common one: the caller's conversations first). Measured over
    # 1 M messages, a common word went from 0.25 s to 1.4 s on the generic plan.
    return func.plainto_tsquery(_config, bindparam("q", type_=String, literal_execute=True))


class SqlSearchRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"

    async def messages(
        self,
        viewer: int,
        words: Sequence[str],
        *,
        conversation_id: int | None,
        now: datetime,
        limit: int,
        offset: int,
    ) -> list[SearchHit]:
        """The messages holding every one of ``words`` in the conversations ``viewer`` is
        a member of now (or in ``conversation_id`` alone), best first: the ``limit``
        after the first ``offset``."""
        live = [
            messages.c.deleted_at.is_(None),
            messages.c.body.isnot(None),
            or_(messages.c.expires_at.is_(None), messages.c.expires_at > now),
        ]
        if conversation_id is not None:
            live.append(messages.c.conversation_id == conversation_id)
        mine = and_(
            members.c.conversation_id == messages.c.conversation_id,
            members.c.user_id == viewer,
        )
        if self._postgres:
            found = await self._postgres_hits(words, live, mine, limit, offset)
        else:
            if conversation_id is not None:
                narrow = [conversation_id]
            else:
                rows = await self._conn.execute(_CONVERSATIONS_OF, {"viewer": viewer})
                narrow = [int(r.conversation_id) for r in rows]
                if not narrow:
                    return []
            found = await self._sqlite_hits(
                words, narrow if len(narrow) <= MAX_NARROWED else [], live, mine, limit, offset
            )
        counts = await SqlConversationRepository(self._conn).reaction_counts(
            [hit.message.id for hit in found]
        )
        return [
            replace(hit, message=replace(hit.message, reactions=counts[hit.message.id]))
            if hit.message.id in counts
            else hit
            for hit in found
        ]

    async def _sqlite_hits(
        self,
        words: Sequence[str],
        narrow: Sequence[int],
        live: list[ColumnElement[bool]],
        mine: ColumnElement[bool],
        limit: int,
        offset: int,
    ) -> list[SearchHit]:
        # Each word a quoted string in the body column: FTS5 reads nothing in it as an
        # operator. ``narrow``: the conversations to match in (the index's own doclists
        # skip the rest), none for all (the join with members filters then).
        match = " ".join(f'body:"{w}"' for w in words)
        narrowed = match
        if narrow:
            narrowed += " AND conversation_id:(" + " OR ".join(f'"{c}"' for c in narrow) + ")"
        score = _BM25.label("score")
        stmt = (
            select(messages, score)
            .select_from(_fts.join(messages, messages.c.id == _fts.c.rowid).join(members, mine))
            .where(_MATCH.bindparams(match=narrowed), *live)
            .order_by(score, messages.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = list(await self._conn.execute(stmt))
        if not rows:
            return []
        # Snippets for this page's rows alone: snippet() in the ranked query would make
        # one for every match.
        marked = {
            int(r.rowid): str(r.snippet)
            for r in await self._conn.execute(
                _SNIPPETS, {"match": match, "ids": [r.id for r in rows]}
            )
        }
        return [
            SearchHit(message_from_row(r), highlighted(marked.get(r.id, r.body or "")))
            for r in rows
        ]

    async def _postgres_hits(
        self,
        words: Sequence[str],
        live: list[ColumnElement[bool]],
        mine: ColumnElement[bool],
        limit: int,
        offset: int,
    ) -> list[SearchHit]:
        query = _tsquery()
        ranked = (
            select(messages, func.ts_rank(_vector, query).label("score"))
            .join(members, mine)
            .where(_vector.op("@@")(query), *live)
            .order_by(literal_column("score").desc(), messages.c.id.desc())
            .limit(limit)
            .offset(offset)
            .subquery("ranked")
        )
        headline = func.ts_headline(_config, ranked.c.body, query, literal(_HEADLINE))
        stmt = select(ranked, headline.label("snippet")).order_by(
            ranked.c.score.desc(), ranked.c.id.desc()
        )
        rows = await self._conn.execute(stmt, {"q": " ".join(words)})
        return [SearchHit(message_from_row(r), highlighted(str(r.snippet))) for r in rows]
