"""Walk every table of the schema, as the live metadata has it: what erasure tests check.

A table added later is walked without anyone remembering to add it here.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from socius.storage.tables import metadata

__all__ = ["rows_as_text", "tables_holding"]


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def rows_as_text(http: Any, app: Any) -> dict[str, str]:
    """Every row of every table, one line a row, per table name."""

    async def dump() -> dict[str, str]:
        found: dict[str, str] = {}
        async with app.wiring.database.primary.connect() as conn:
            for table in metadata.sorted_tables:
                rows = await conn.execute(select(table))
                found[table.name] = "\n".join(" | ".join(_text(v) for v in row) for row in rows)
        return found

    result: dict[str, str] = http.blocking_portal.call(dump)
    return result


def tables_holding(http: Any, app: Any, *needles: str) -> dict[str, list[str]]:
    """The tables whose rows hold any of ``needles``: needle -> table names."""
    text = rows_as_text(http, app)
    return {
        needle: [name for name, rows in text.items() if needle in rows]
        for needle in needles
        if any(needle in rows for rows in text.values())
    }
