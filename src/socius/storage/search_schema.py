"""What migration 0013 adds for message search outside ``tables.metadata``, and the
PostgreSQL search language (docs/search.md).

The index is the database's own: an FTS5 table over ``messages`` (SQLite) or the
``messages.search_vector`` column with its GIN index (PostgreSQL), both kept by triggers.
Neither is in the metadata (a ``select(messages)`` must not drag the vector along), so
schema comparisons leave them out with ``include_name``.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "DEFAULT_SEARCH_LANGUAGE",
    "FTS_TABLE",
    "SEARCH_LANGUAGE_PATTERN",
    "VECTOR_COLUMN",
    "VECTOR_INDEX",
    "apply_search_language",
    "in_metadata",
]

FTS_TABLE = "messages_fts"
VECTOR_COLUMN = "search_vector"
VECTOR_INDEX = "ix_messages_search_vector"
DEFAULT_SEARCH_LANGUAGE = "simple"
SEARCH_LANGUAGE_PATTERN = r"^[a-z][a-z_]{0,62}$"
_LANGUAGE = re.compile(SEARCH_LANGUAGE_PATTERN)


def in_metadata(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Alembic's ``include_name``: False for the search index's own tables, column and
    index, which the metadata does not describe."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith(FTS_TABLE)
    if type_ == "column":
        return not (parent_names.get("table_name") == "messages" and name == VECTOR_COLUMN)
    if type_ == "index":
        return name != VECTOR_INDEX
    return True


async def apply_search_language(conn: AsyncConnection, language: str) -> bool:
    """PostgreSQL: index in text search configuration ``language`` from now on, and
    re-index the stored messages when it changes; True when it did. A no-op on SQLite
    (FTS5's tokenizer is language-neutral). The caller commits."""
    if conn.dialect.name != "postgresql":
        return False
    if not _LANGUAGE.match(language):
        raise ValueError(f"not a text search configuration name: {language!r}")
    current = (await conn.execute(text("SELECT socius_search_config()::text"))).scalar_one()
    if current == language:
        return False
    # Refuses a configuration the server does not have, before anything changes.
    await conn.execute(text("SELECT CAST(:language AS regconfig)"), {"language": language})
    await conn.execute(
        text(
            "CREATE OR REPLACE FUNCTION socius_search_config() RETURNS regconfig "
            f"LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT '{language}'::regconfig $$"
        )
    )
    await conn.execute(
        text(
            "UPDATE messages SET search_vector = to_tsvector(socius_search_config(), body) "
            "WHERE body IS NOT NULL"
        )
    )
    return True
