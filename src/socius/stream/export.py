"""The analytics export: the event stream as Parquet files, partitioned by day and type.

Layout (Hive-style, what DuckDB, Spark and pandas read as partitions)::

    OUT/day=2026-12-04/event_type=message.created/part-000000000042.parquet
    OUT/_socius_export.json          the export's parameters and how far it got

Each file holds the events of one day and type from one batch of the stream; its name is
the first position in it, so writing a batch again (a resumed export) replaces the same
files. Schema ``EXPORT_SCHEMA`` (version ``EVENT_SCHEMA_VERSION``, in each file's
metadata); docs/analytics.md describes it.

Erasure: before writing, the export reads every redaction event of the stream and leaves
out each event about an erased account or a redacted message. A resumed export that finds
redactions newer than its files starts over, so nothing erased before an export run is
in what that run leaves behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socius.domain.stream import (
    EVENT_SCHEMA_VERSION,
    REDACTION_TYPES,
    DomainEvent,
    Redactions,
    StreamedEvent,
    type_matches,
)
from socius.services.ports import EventStream

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ExportError", "ExportResult", "MissingExtra", "export_events", "export_schema"]

STATE = "_socius_export.json"
_BATCH = 1000
_ACTOR_FIELDS = ("actor_id", "user_id", "sender_id")
_SUBJECT_FIELDS = ("other_id", "target_id")


class MissingExtra(Exception):
    """pyarrow is not installed."""


class ExportError(Exception):
    """The output directory holds another export, or cannot be written."""


@dataclass(frozen=True, slots=True)
class ExportResult:
    written: int  # events written by this run
    skipped: int  # left out: erased or redacted
    files: int
    resumed: bool
    last_position: int


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingExtra(
            "the analytics export needs pyarrow: pip install 'socius[analytics]'"
        ) from exc
    return pa, pq


def export_schema() -> pa.Schema:
    pa, _ = _pyarrow()
    return pa.schema(
        [
            ("position", pa.int64()),
            ("id", pa.int64()),
            ("type", pa.string()),
            ("occurred_at", pa.timestamp("us", tz="UTC")),
            ("actor_id", pa.int64()),
            ("subject_id", pa.int64()),
            ("conversation_id", pa.int64()),
            ("conversation_kind", pa.string()),
            ("message_id", pa.int64()),
            ("data", pa.string()),
        ],
        metadata={
            "socius.schema": "events",
            "socius.schema_version": str(EVENT_SCHEMA_VERSION),
        },
    )


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _first(data: dict[str, Any], names: Sequence[str]) -> int | None:
    for name in names:
        found = _int(data.get(name))
        if found is not None:
            return found
    return None


def _row(item: StreamedEvent) -> dict[str, Any]:
    e = item.event
    kind = e.data.get("conversation_kind")
    return {
        "position": item.position,
        "id": e.id,
        "type": e.type,
        "occurred_at": e.occurred_at,
        "actor_id": _first(e.data, _ACTOR_FIELDS),
        "subject_id": _first(e.data, _SUBJECT_FIELDS),
        "conversation_id": _int(e.data.get("conversation_id")),
        "conversation_kind": kind if isinstance(kind, str) else None,
        "message_id": e.message_id,
        "data": json.dumps(e.data, sort_keys=True, separators=(",", ":")),
    }


async def _redactions(stream: EventStream) -> tuple[Redactions, int]:
    """Every redaction in the stream, and the position of the last one (0: none)."""
    found = Redactions()
    after, last = 0, 0
    while True:
        page = await stream.read(after=after, types=sorted(REDACTION_TYPES), limit=_BATCH)
        if not page:
            return found, last
        for item in page:
            found.note(item.event)
            last = item.position
        after = page[-1].position


def _params(since: datetime | None, until: datetime | None, types: Sequence[str]) -> dict[str, Any]:
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "types": sorted(types),
        "schema_version": EVENT_SCHEMA_VERSION,
    }


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


def _open(out: Path, params: dict[str, Any], *, restart: bool) -> dict[str, Any] | None:
    """The state of the export in ``out`` (None: a new one), after checking that ``out``
    holds this export or nothing."""
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE
    if state_path.exists():
        state: dict[str, Any] = json.loads(state_path.read_text())
        if state.get("params") != params and not restart:
            raise ExportError(
                f"{out} holds an export with other parameters: use another directory or --restart"
            )
        return state
    if any(out.iterdir()):
        raise ExportError(f"{out} is not empty and holds no socius export")
    return None


def _clear(out: Path) -> None:
    for part in out.glob("day=*"):
        shutil.rmtree(part)


def _write_parquet(
    pa: Any, pq: Any, schema: pa.Schema, folder: Path, rows: list[dict[str, Any]]
) -> None:
    """One file, written whole or not at all; named after its first position."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{rows[0]['position']:012d}.parquet"
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    os.replace(tmp, path)


def _in_window(event: DomainEvent, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or event.occurred_at >= since) and (
        until is None or event.occurred_at < until
    )


async def export_events(
    stream: EventStream,
    out: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    types: Sequence[str] = (),
    restart: bool = False,
    on_progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> ExportResult:
    """Export the stream's events (of ``types``, occurring in [since, until)) to ``out``.
    ``on_progress(done, total)`` is called per batch, in stream positions."""
    pa, pq = _pyarrow()
    schema = export_schema()
    state_path = out / STATE
    params = _params(since, until, types)
    state = _open(out, params, restart=restart)
    redactions, redacted_at = await _redactions(stream)
    resumed = state is not None and not restart
    if state is not None and (restart or redacted_at > int(state.get("redactions_at", 0))):
        _clear(out)  # something was erased since those files were written
        state, resumed = None, False
    after = int(state["after"]) if state else (await stream.position_at(since) if since else 0)
    head = await stream.head()
    start = after
    written = skipped = files = 0
    on_progress(0, max(head - start, 0))
    while after < head:
        page = await stream.read(after=after, types=types, limit=_BATCH)
        if not page:
            break
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for item in page:
            if item.position > head:
                break
            event = item.event
            if not _in_window(event, since, until) or not type_matches(event.type, types):
                continue
            if redactions.covers(event):
                skipped += 1
                continue
            day = event.occurred_at.date().isoformat()
            groups.setdefault((day, event.type), []).append(_row(item))
        for (day, type_), rows in groups.items():
            folder = out / f"day={day}" / f"event_type={type_}"
            _write_parquet(pa, pq, schema, folder, rows)
            written += len(rows)
            files += 1
        after = min(page[-1].position, head)
        _write_json(state_path, {"params": params, "after": after, "redactions_at": redacted_at})
        on_progress(after - start, max(head - start, 0))
    _write_json(state_path, {"params": params, "after": after, "redactions_at": redacted_at})
    return ExportResult(written, skipped, files, resumed, after)
