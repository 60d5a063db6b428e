"""Migrations build exactly ``socius.storage.tables.metadata``, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from conftest import POSTGRES_URL, require_service
from socius.storage.engine import make_engine
from socius.storage.migrate import current_revision, head_revision, upgrade
from socius.storage.search_schema import in_metadata
from socius.storage.tables import metadata


def _snapshot(sync_conn) -> tuple[list, list]:
    """What the database holds: the schema difference to the metadata, and its shape."""
    context = MigrationContext.configure(
        sync_conn, opts={"compare_type": True, "include_name": in_metadata}
    )
    diff = compare_metadata(context, metadata)
    inspector = inspect(sync_conn)
    shape = []
    for table in sorted(inspector.get_table_names()):
        columns = [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)]
        indexes = sorted(
            (i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)
        )
        fks = sorted(
            (fk["name"] or "", tuple(fk["constrained_columns"]), fk["referred_table"])
            for fk in inspector.get_foreign_keys(table)
        )
        shape.append((table, columns, indexes, fks))
    return diff, shape


async def _run_sync(url: str, fn: Callable[..., Any], *args: Any, commit: bool = False) -> Any:
    """``fn(sync_connection, *args)`` on a connection of its own to ``url``."""
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            result = await conn.run_sync(fn, *args)
            if commit:
                await conn.commit()
            return result
    finally:
        await engine.dispose()


async def _inspect(url: str) -> tuple[list, list]:
    return await _run_sync(url, _snapshot)


async def _check_upgrade(url: str) -> None:
    assert await current_revision(url) is None
    await upgrade(url)
    assert await current_revision(url) == head_revision()
    diff, shape = await _inspect(url)
    assert diff == [], diff
    tables = {entry[0] for entry in shape}
    assert {t.name for t in metadata.sorted_tables} <= tables

    await upgrade(url)  # a second run is a no-op
    assert await current_revision(url) == head_revision()
    assert await _inspect(url) == (diff, shape)


def test_sqlite_upgrade_from_empty_matches_the_metadata(tmp_path):
    asyncio.run(_check_upgrade(f"sqlite:///{tmp_path / 'migrated.db'}"))


async def _execute(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _on_a_fresh_postgres(check: Callable[[str], Awaitable[None]]) -> None:
    """Run ``check(url)`` on a PostgreSQL database of its own, dropped afterwards."""
    require_service(POSTGRES_URL, "postgres")
    name = f"socius_migrate_{secrets.token_hex(4)}"
    base, _, _ = POSTGRES_URL.rpartition("/")
    asyncio.run(_execute(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(check(f"{base}/{name}"))
    finally:
        asyncio.run(_execute(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_postgres_upgrade_from_empty_matches_the_metadata():
    _on_a_fresh_postgres(_check_upgrade)


# ------------------------------------------- the logs' content erased by the migration


def _revision_before_erasable_logs() -> str:
    """The revision the erasable-logs migration follows (found by its title, so that
    re-numbering the chain does not break this test)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from socius.storage.migrate import migrations_dir

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    for script in ScriptDirectory.from_config(config).walk_revisions():
        if (script.doc or "").startswith("event logs name their message"):
            assert isinstance(script.down_revision, str)
            return script.down_revision
    raise AssertionError("the erasable-logs migration is missing")


async def _check_legacy_logs_are_erased(url: str) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import JSON, BigInteger, Column, MetaData, String, Table, Text, insert, select

    from socius.storage.tables import user_events
    from socius.storage.types import UtcDateTime

    await upgrade(url, _revision_before_erasable_logs())
    legacy = MetaData()
    old_events = Table(
        "user_events",
        legacy,
        Column("user_id", BigInteger),
        Column("seq", BigInteger),
        Column("type", String(40)),
        Column("payload", JSON),
        Column("created_at", UtcDateTime),
    )
    old_messages = Table(
        "messages",
        legacy,
        Column("id", BigInteger),
        Column("conversation_id", BigInteger),
        Column("seq", BigInteger),
        Column("sender_id", BigInteger),
        Column("client_msg_id", String(64)),
        Column("body", Text),
        Column("created_at", UtcDateTime),
        Column("edited_at", UtcDateTime),
        Column("deleted_at", UtcDateTime),
    )
    now = datetime.now(UTC)

    def message(mid: int, seq: int, body: str | None, **extra: object) -> dict[str, object]:
        return {
            "id": mid,
            "conversation_id": 7,
            "seq": seq,
            "sender_id": 1,
            "client_msg_id": f"c{mid}",
            "body": body,
            "created_at": now,
            "edited_at": None,
            "deleted_at": None,
            **extra,
        }

    def shown(mid: int, seq: int, body: str) -> dict[str, object]:
        return {"message": {"id": str(mid), "conversation_id": "7", "seq": seq, "body": body}}

    events = [
        ("message.created", shown(101, 1, "deleted words")),
        ("reaction.updated", {"conversation_id": "7", "message_id": "101", "emoji": "zz"}),
        ("message.created", shown(102, 2, "first draft")),
        ("message.updated", shown(102, 2, "second draft")),
        ("message.created", shown(103, 3, "plain")),
        ("friend.request", {"user_id": "5"}),
    ]
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(old_messages),
                [
                    message(101, 1, None, deleted_at=now),
                    message(102, 2, "final", edited_at=now),
                    message(103, 3, "plain"),
                ],
            )
            await conn.execute(
                insert(old_events),
                [
                    {"user_id": u, "seq": n, "type": t, "payload": p, "created_at": now}
                    for u in (1, 2)
                    for n, (t, p) in enumerate(events, start=1)
                ],
            )
        await upgrade(url)
        async with engine.connect() as conn:
            rows = list(
                await conn.execute(select(user_events).order_by(user_events.c.user_id, "seq"))
            )
    finally:
        await engine.dispose()
    for user in (1, 2):
        mine = [(r.seq, r.type, r.message_id, r.payload) for r in rows if r.user_id == user]
        tombstone = {"conversation_id": "7", "message_id": "101", "seq": 1}
        assert mine[:2] == [
            (1, "message.deleted", 101, tombstone),
            (2, "message.deleted", 101, tombstone),
        ]
        assert [(s, t, m, p["message"]["body"]) for s, t, m, p in mine[2:5]] == [
            (3, "message.created", 102, "final"),
            (4, "message.updated", 102, "final"),
            (5, "message.created", 103, "plain"),
        ]
        assert mine[5] == (6, "friend.request", None, {"user_id": "5"})
    text = repr(rows)
    for gone in ("deleted words", "zz", "first draft", "second draft"):
        assert gone not in text


def test_sqlite_migration_erases_what_the_logs_kept(tmp_path):
    asyncio.run(_check_legacy_logs_are_erased(f"sqlite:///{tmp_path / 'legacy.db'}"))


def test_postgres_migration_erases_what_the_logs_kept():
    _on_a_fresh_postgres(_check_legacy_logs_are_erased)


# ------------------------------------------- 0021: the covering list index, down and up


def _downgrade_sync(connection, revision: str) -> None:
    from alembic import command

    from socius.storage.migrate import _config

    cfg = _config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def _downgrade(url: str, revision: str) -> None:
    await _run_sync(url, _downgrade_sync, revision, commit=True)


def _list_index(sync_conn) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The key and INCLUDE columns of edges' list index."""
    (index,) = [i for i in inspect(sync_conn).get_indexes("edges")]
    assert index["name"] == "ix_edges_src_type_pos"
    include = index.get("include_columns") or index["dialect_options"].get("postgresql_include", [])
    return tuple(index["column_names"]), tuple(include)


async def _index_of(url: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return await _run_sync(url, _list_index)


async def _check_list_index_down_and_up(url: str) -> None:
    postgres = url.startswith("postgres")
    covering = ("dst", "created_at") if postgres else ()
    await upgrade(url)
    assert await _index_of(url) == (("src", "type", "pos"), covering)
    await _downgrade(url, "0020")
    assert await current_revision(url) == "0020"
    assert await _index_of(url) == (("src", "type", "pos"), ())
    await upgrade(url)
    assert await current_revision(url) == head_revision()
    assert await _index_of(url) == (("src", "type", "pos"), covering)
    diff, _ = await _inspect(url)
    assert diff == [], diff


def test_sqlite_list_index_migrates_down_and_up(tmp_path):
    asyncio.run(_check_list_index_down_and_up(f"sqlite:///{tmp_path / 'migrated.db'}"))


def test_postgres_list_index_migrates_down_and_up():
    _on_a_fresh_postgres(_check_list_index_down_and_up)


# ------------------------------------------- 0022: the graph write's function, down and up


async def _pair_write_functions(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM pg_proc WHERE proname = 'socius_pair_write'")
        )
    finally:
        await conn.close()


async def _check_pair_write_down_and_up(url: str) -> None:
    postgres = url.startswith("postgres")
    await upgrade(url)
    assert await current_revision(url) == head_revision()
    if postgres:
        assert await _pair_write_functions(url) == 1
    await _downgrade(url, "0021")
    assert await current_revision(url) == "0021"
    if postgres:
        assert await _pair_write_functions(url) == 0
    await upgrade(url)
    assert await current_revision(url) == head_revision()
    if postgres:
        assert await _pair_write_functions(url) == 1
    diff, _ = await _inspect(url)
    assert diff == [], diff


def test_sqlite_pair_write_migrates_down_and_up(tmp_path):
    asyncio.run(_check_pair_write_down_and_up(f"sqlite:///{tmp_path / 'migrated.db'}"))


def test_postgres_pair_write_migrates_down_and_up():
    _on_a_fresh_postgres(_check_pair_write_down_and_up)


# ------------------------------------ 0024: the graph write's function on generic plans


async def _pair_write_settings(url: str) -> list[str] | None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(
            "SELECT proconfig FROM pg_proc WHERE proname = 'socius_pair_write'"
        )
    finally:
        await conn.close()


async def _check_generic_plans_down_and_up(url: str) -> None:
    await upgrade(url)
    assert await _pair_write_settings(url) == ["plan_cache_mode=force_generic_plan"]
    await _downgrade(url, "0023")
    assert await current_revision(url) == "0023"
    assert await _pair_write_functions(url) == 1
    assert await _pair_write_settings(url) is None  # 0022's function, as it was
    await upgrade(url)
    assert await current_revision(url) == head_revision()
    assert await _pair_write_settings(url) == ["plan_cache_mode=force_generic_plan"]


# ------------------------------------- 0023: edge_counts WITHOUT ROWID on SQLite, down and up


def _edge_counts_state(sync_conn) -> tuple[bool, list[tuple[int, int, int]]]:
    """Whether edge_counts is a WITHOUT ROWID table (SQLite; PostgreSQL: False), its rows."""
    from sqlalchemy import text

    without_rowid = False
    if sync_conn.dialect.name == "sqlite":
        sql = sync_conn.execute(
            text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'edge_counts'")
        ).scalar_one()
        without_rowid = "WITHOUT ROWID" in sql.upper()
    rows = sync_conn.execute(text("SELECT src, type, count FROM edge_counts ORDER BY src, type"))
    return without_rowid, [tuple(r) for r in rows]


async def _check_edge_counts_down_and_up(url: str) -> None:
    from sqlalchemy import text

    sqlite = url.startswith("sqlite")
    await upgrade(url)
    rows = [(1, 1, 3), (1, 2, 5), (7, 3, 1)]

    def insert(sync_conn) -> None:
        for row in rows:
            sync_conn.execute(
                text("INSERT INTO edge_counts (src, type, count) VALUES (:s, :t, :c)"),
                {"s": row[0], "t": row[1], "c": row[2]},
            )

    await _run_sync(url, insert, commit=True)
    assert await _run_sync(url, _edge_counts_state) == (sqlite, rows)
    await _downgrade(url, "0022")
    assert await current_revision(url) == "0022"
    assert await _run_sync(url, _edge_counts_state) == (False, rows)  # the rows kept
    await upgrade(url)
    assert await current_revision(url) == head_revision()
    assert await _run_sync(url, _edge_counts_state) == (sqlite, rows)
    diff, _ = await _inspect(url)
    assert diff == [], diff


def test_postgres_pair_write_generic_plans_migrate_down_and_up():
    _on_a_fresh_postgres(_check_generic_plans_down_and_up)


def test_sqlite_edge_counts_migrate_down_and_up(tmp_path):
    asyncio.run(_check_edge_counts_down_and_up(f"sqlite:///{tmp_path / 'migrated.db'}"))


def test_postgres_edge_counts_migrate_down_and_up():
    _on_a_fresh_postgres(_check_edge_counts_down_and_up)
