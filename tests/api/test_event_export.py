"""The analytics export, on both stacks: the stream to Parquet, partitioned by day and
type, with the documented schema; the DuckDB queries of docs/analytics.md run on it and
give the right numbers; nothing about an erased account or a deleted message is in an
export made after the erasure; a second run resumes; other options are refused."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from admin_support import grant_admin_from_cli

from conftest import PASSWORD, Account, App, make_app
from contract import bearer
from event_support import relay
from socius.settings import Settings
from socius.stream.export import ExportError, ExportResult, export_events

DOCS = Path(__file__).parents[2] / "docs" / "analytics.md"


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> App:
    return make_app(make_settings(event_relay_in_server=False))


def _queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


def _export(app: App, http: Any, out: Path, **options: Any) -> ExportResult:
    async def run() -> ExportResult:
        return await export_events(app.wiring.container.events.stream, out, **options)

    result: ExportResult = http.blocking_portal.call(run)
    return result


def test_the_export_and_the_documented_queries(
    app: App, http: Any, register: Callable[..., Account], tmp_path: Path
) -> None:
    ann, ben, cid, dee = (register() for _ in range(4))
    grant_admin_from_cli(app, http, ann.id)
    for other in (ben, cid):
        ann.client.send_friend_request(other.id)
        other.client.accept_friend_request(ann.id)
    ben.client.send_friend_request(cid.id)
    cid.client.accept_friend_request(ben.id)
    direct = ann.client.open_direct(ben.id)
    ann.client.send_message(direct.id, "one", client_msg_id="a")
    gone = ben.client.send_message(direct.id, "two", client_msg_id="b")
    http.delete(
        f"/v1/conversations/{direct.id}/messages/{gone.id}",
        headers=bearer(ben.client.access_token or ""),
    ).raise_for_status()
    group = http.post(
        "/v1/conversations",
        json={"kind": "group", "title": "g", "member_ids": [ben.id, cid.id, dee.id]},
        headers=bearer(ann.client.access_token or ""),
    ).json()
    for n, who in enumerate((ann, ben, cid, dee)):
        who.client.send_message(group["id"], f"hi {n}", client_msg_id=f"g{n}")
    dee.client.delete_me(PASSWORD)
    relay(app, http)

    out = tmp_path / "export"
    result = _export(app, http, out)
    assert result.files > 0
    assert not result.resumed
    files = sorted(out.glob("day=*/event_type=*/part-*.parquet"))
    assert {f.parent.name for f in files} >= {
        "event_type=message.created",
        "event_type=graph.friend_added",
        "event_type=account.erased",
    }
    schema = pq.read_schema(files[0])
    assert schema.metadata[b"socius.schema_version"] == b"1"
    assert schema.names == [
        "position",
        "id",
        "type",
        "occurred_at",
        "actor_id",
        "subject_id",
        "conversation_id",
        "conversation_kind",
        "message_id",
        "data",
    ]

    everything = f"read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
    db = duckdb.connect()
    # Nothing about the erased account, nor the deleted message, but the redactions.
    about_dee = db.execute(
        f"SELECT type FROM {everything} WHERE data LIKE '%{dee.id}%'"  # noqa: S608
    ).fetchall()
    assert about_dee == [("account.erased",)]
    about_gone = db.execute(
        f"SELECT type FROM {everything} WHERE message_id = {gone.id}"  # noqa: S608
    ).fetchall()
    assert about_gone == [("message.redacted",)]

    dau, per_kind, growth = (
        db.execute(q.replace("'export/**/*.parquet'", f"'{out}/**/*.parquet'")).fetchall()
        for q in _queries()
    )
    assert [row[1] for row in dau] == [3]  # ann, ben, cid (dee is erased)
    assert per_kind == [("direct", 1), ("group", 3)]  # less the deleted and dee's
    assert [row[1:] for row in growth] == [(3, 0, 3)]

    # Run again: resumes, nothing new.
    again = _export(app, http, out)
    assert (again.resumed, again.written) == (True, 0)
    with pytest.raises(ExportError):
        _export(app, http, out, types=["message.created"])

    # An erasure after that export: running it again starts over without the account.
    before = db.execute(
        f"SELECT count(*) FROM {everything} WHERE actor_id = {cid.id}"  # noqa: S608
    ).fetchone()
    assert before is not None
    assert before[0] > 0
    cid.client.delete_me(PASSWORD)
    relay(app, http)
    third = _export(app, http, out)
    assert third.resumed is False
    left = db.execute(
        f"SELECT count(*) FROM {everything} "  # noqa: S608
        f"WHERE (actor_id = {cid.id} OR subject_id = {cid.id}) AND type <> 'account.erased'"
    ).fetchone()
    assert left == (0,)
