"""Statements a SQLAlchemy engine sends, as in-process benches count them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

__all__ = ["counting"]

_TRANSACTION = ("BEGIN", "COMMIT", "ROLLBACK")


@contextmanager
def counting(engine: Any, *, transactions: bool = True) -> Iterator[list[str]]:
    """The statements ``engine`` sends inside the block, in order (without BEGIN, COMMIT
    and ROLLBACK when ``transactions`` is false)."""
    seen: list[str] = []

    def record(_c: object, _cur: object, statement: str, *_a: object) -> None:
        if transactions or not statement.startswith(_TRANSACTION):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
