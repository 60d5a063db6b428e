"""Migrations build exactly ``socius.storage.tables.metadata``, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from conftest import POSTGRES_URL, require_service
from socius.storage.engine import make_engine
from socius.storage.migrate import current_revision, head_revision, upgrade
from socius.storage.tables import metadata


def _snapshot(sync_conn) -> tuple[list, list]:
    """What the database holds: the schema difference to the metadata, and its shape."""
    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
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


async def _inspect(url: str) -> tuple[list, list]:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_snapshot)
    finally:
        await engine.dispose()


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


def test_postgres_upgrade_from_empty_matches_the_metadata():
    require_service(POSTGRES_URL, "postgres")
    name = f"socius_migrate_{secrets.token_hex(4)}"
    base, _, _ = POSTGRES_URL.rpartition("/")
    asyncio.run(_execute(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(_check_upgrade(f"{base}/{name}"))
    finally:
        asyncio.run(_execute(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
