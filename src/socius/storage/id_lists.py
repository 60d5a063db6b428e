"""``column IN (ids)`` written so that each query keeps one shape whatever the list's length.

SQLAlchemy expands an IN list into one placeholder per value, so every length is another
statement: on PostgreSQL another server-side prepare (and asyncpg's per-connection cache
of prepared statements churns). There the list goes as one array, ``= ANY($1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY

__all__ = ["one_of"]

_BIGINT_ARRAY = ARRAY(BigInteger)


def one_of(column: Any, ids: Sequence[int], dialect: str) -> ColumnElement[bool]:
    """``column`` is one of ``ids`` (64-bit integers)."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=_BIGINT_ARRAY))  # type: ignore[no-any-return]
    return column.in_(list(ids))  # type: ignore[no-any-return]
