"""Migration 0013 indexes the messages already stored, and the index then follows every
body change by its triggers; PostgreSQL's search language can change, re-indexing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, update
from test_migrations import _on_a_fresh_postgres

from socius.storage.engine import make_engine
from socius.storage.migrate import upgrade
from socius.storage.search import SqlSearchRepository
from socius.storage.search_schema import apply_search_language
from socius.storage.tables import conversations, members, messages

VIEWER = 7
CID = 100
NOW = datetime.now(UTC)


def _message(mid: int, seq: int, body: str | None) -> dict[str, object]:
    return {
        "id": mid,
        "conversation_id": CID,
        "seq": seq,
        "sender_id": VIEWER,
        "client_msg_id": f"m{mid}",
        "body": body,
        "created_at": NOW - timedelta(minutes=10 - seq),
        "deleted_at": None if body is not None else NOW,
    }


async def _found(url: str, *words: str) -> list[int]:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            hits = await SqlSearchRepository(conn).messages(
                VIEWER, list(words), conversation_id=None, now=NOW, limit=50, offset=0
            )
            return [h.message.id for h in hits]
    finally:
        await engine.dispose()


async def _execute(url: str, *statements: object) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(statement)  # type: ignore[call-overload]
    finally:
        await engine.dispose()


async def _check_backfill_and_triggers(url: str) -> None:
    await upgrade(url, "0012")
    await _execute(
        url,
        insert(conversations).values(
            id=CID,
            kind="group",
            title="t",
            owner_id=VIEWER,
            last_seq=3,
            member_count=1,
            created_at=NOW,
            updated_at=NOW,
        ),
        insert(members).values(
            conversation_id=CID,
            user_id=VIEWER,
            role="owner",
            joined_at=NOW,
            last_read_seq=0,
            muted=False,
        ),
        insert(messages).values(
            [
                _message(1, 1, "the harbour at dawn"),
                _message(2, 2, None),  # deleted before the migration
                _message(3, 3, "dawn patrol runs at six"),
            ]
        ),
    )
    await upgrade(url)
    assert sorted(await _found(url, "dawn")) == [1, 3]
    assert await _found(url, "harbour", "dawn") == [1]

    # From now on the triggers keep it: an insert, an edit, a clear, a row deleted.
    await _execute(
        url,
        insert(messages).values([_message(4, 4, "harbour lights")]),
        update(messages).where(messages.c.id == 1).values(body="the quay at noon"),
        update(messages).where(messages.c.id == 3).values(body=None, deleted_at=NOW),
    )
    assert await _found(url, "harbour") == [4]
    assert await _found(url, "dawn") == []
    assert await _found(url, "quay") == [1]
    await _execute(url, messages.delete().where(messages.c.id == 4))
    assert await _found(url, "harbour") == []


def test_sqlite_migration_indexes_stored_messages(tmp_path):
    asyncio.run(_check_backfill_and_triggers(f"sqlite:///{tmp_path / 'search.db'}"))


def test_postgres_migration_indexes_stored_messages():
    _on_a_fresh_postgres(_check_backfill_and_triggers)


async def _check_language(url: str) -> None:
    await _check_backfill_and_triggers(url)
    await _execute(url, insert(messages).values([_message(5, 5, "she was running late")]))
    assert await _found(url, "runs") == []  # simple: no stemming
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            assert await apply_search_language(conn, "english")
        async with engine.begin() as conn:
            assert not await apply_search_language(conn, "english")  # already
    finally:
        await engine.dispose()
    assert await _found(url, "runs") == [5]  # re-indexed: running ~ runs
    await upgrade(url, search_language="simple")
    assert await _found(url, "runs") == []


def test_postgres_search_language_reindexes():
    _on_a_fresh_postgres(_check_language)
