"""Multi-row ``VALUES`` lists in plain SQL, with the values converted exactly as
SQLAlchemy would convert them for that column and database.

SQLAlchemy compiles a multi-row ``insert().values([...])`` anew for every row count and
cannot cache it: ~4 ms for 50 rows, against ~0.1 ms to run it (decision 0007). The
hottest writes (the per-user event logs) build their statement text here instead and run
it with ``exec_driver_sql``; the SQL stays the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Table
from sqlalchemy import types as sa_types
from sqlalchemy.engine import Dialect

from socius.domain.events import JsonPayload
from socius.storage.driver import json_texts, numbered

__all__ = ["ValuesList", "json_texts"]

# Both databases allow 32,766+ parameters per statement; stay well below.
MAX_PARAMS = 30_000
# Values converted once per object however many rows hold it (they stay alive, and so
# keep their ids, while the rows are converted).
_SHARED = (dict, list, datetime)
_MISSING = object()


class ValuesList:
    """Rows for ``(columns...)`` of ``table``, rendered as ``VALUES (...), (...)``."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.table = table
        self.columns = list(columns)
        self.column_list = ", ".join(self.columns)
        self._processors: dict[str, list[Callable[[Any], Any] | None]] = {}
        self._jsons: list[bool] | None = None

    def _bind(self, dialect: Dialect) -> list[Callable[[Any], Any] | None]:
        found = self._processors.get(dialect.name)
        if found is None:
            found = [
                self.table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in self.columns
            ]
            self._processors[dialect.name] = found
        return found

    def convert(self, dialect: Dialect, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """The values of ``rows``, converted for ``dialect``'s driver, flat. A JSON
        column's value is its JSON text: a ``JsonPayload``'s own, else msgspec's (what
        SQLAlchemy's processor does with ``json.dumps``, at a seventh of its cost; the
        text may differ in spacing and escapes, not in the value: decision 0040)."""
        processors = self._bind(dialect)
        jsons = self._json_columns()
        out: list[Any] = []
        # One timestamp in many rows (a write's one ``now``: its notifications, domain
        # events and log rows) is converted once (decision 0061).
        stamps: dict[int, Any] = {}
        for row in rows:
            for value, process, is_json in zip(row, processors, jsons, strict=True):
                if process is None:
                    out.append(value)
                elif is_json and value is not None:
                    raw = value.json if type(value) is JsonPayload else _json.encode(value)
                    out.append(raw.decode())
                elif type(value) is datetime:
                    done = stamps.get(id(value), _MISSING)
                    if done is _MISSING:
                        done = stamps[id(value)] = process(value)
                    out.append(done)
                else:
                    out.append(process(value))
        return out

    def _json_columns(self) -> list[bool]:
        found = self._jsons
        if found is None:
            found = self._jsons = [
                isinstance(self.table.c[name].type, sa_types.JSON) for name in self.columns
            ]
        return found

    def chunks(
        self, dialect: Dialect, rows: Sequence[Sequence[Any]]
    ) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """``(values_sql, parameters)`` for as few statements as the parameter limit
        allows; ``values_sql`` is ``VALUES (...), ...`` in the driver's placeholders."""
        width = len(self.columns)
        per_chunk = max(1, MAX_PARAMS // width)
        processors = self._bind(dialect)
        dollar = dialect.paramstyle == "numeric_dollar"
        one = "(" + ", ".join("?" * width) + ")"
        # One object in many rows (a message's payload in each member's event, the one
        # timestamp of a write) is converted once: JSON is encoded once per message.
        done: dict[int, Any] = {}
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            params: list[Any] = []
            for row in chunk:
                for value, process in zip(row, processors, strict=True):
                    if process is None:
                        params.append(value)
                    elif type(value) is JsonPayload:  # encoded already (JSON columns)
                        params.append(value.json.decode())
                    elif type(value) in _SHARED:
                        key = id(value)
                        converted = done.get(key, _MISSING)
                        if converted is _MISSING:
                            converted = done[key] = process(value)
                        params.append(converted)
                    else:
                        params.append(process(value))
            values = "VALUES " + ", ".join(one for _ in chunk)
            yield (numbered(values) if dollar else values), tuple(params)


_json = msgspec.json.Encoder()
