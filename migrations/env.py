"""Alembic environment: runs on the connection that socius.storage.migrate hands over."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from socius.storage.engine import make_engine
from socius.storage.search_schema import in_metadata
from socius.storage.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=in_metadata,  # the search index: triggers and FTS5, not the metadata
        # socius.storage.migrate passes one in to report progress (`socius migrate`).
        on_version_apply=context.config.attributes.get("on_version_apply"),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = make_engine(url, pool_size=1)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # the plain alembic CLI: SOCIUS_DATABASE_URL or sqlalchemy.url
    import os

    url = os.environ.get("SOCIUS_DATABASE_URL") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set SOCIUS_DATABASE_URL (or use `socius migrate`)")
    asyncio.run(_run_with_own_engine(url))
