"""The per-user event logs keep events for SOCIUS_EVENT_LOG_RETENTION_SECONDS.

Pruning drops whole prefixes of each log, in batches; a cursor from before what a log
keeps gets 410 ``cursor_expired`` on ``/v1/sync`` and close code 4410 on the socket, and
the client resyncs: reads its state through REST, then goes on from a null cursor. The app
runs on a clock the test moves.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from ws_support import authenticate, expect_close, recv

from conftest import Account, App, Clock, make_app
from contract import assert_error
from schema_walk import rows_as_text
from socius.services.inbox import cursor_for
from socius.settings import SettingsError, load_settings

KEEP = 60  # seconds
CONVERSATIONS = "/v1/conversations"


@pytest.fixture
def keep() -> int:
    return KEEP


@pytest.fixture
def app(make_settings: Callable[..., Any], clock: Clock, keep: int) -> App:
    return make_app(make_settings(event_log_retention_seconds=keep), clock=clock)


def send(a: Account, cid: str, body: str) -> dict[str, Any]:
    response = a.client.raw(
        "POST",
        f"{CONVERSATIONS}/{cid}/messages",
        json={"client_msg_id": uuid.uuid4().hex, "body": body},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def sync(a: Account, cursor: str | None, limit: int = 100) -> Any:
    return a.client.raw("GET", "/v1/sync", params={"cursor": cursor, "limit": limit})


def sync_items(a: Account, cursor: str | None = None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = sync(a, cursor).json()
        if not page["items"]:
            return items
        items += page["items"]
        cursor = page["next_cursor"]


def direct(a: Account, b: Account) -> str:
    return str(
        a.client.request(
            "POST", CONVERSATIONS, json={"kind": "direct", "member_ids": [b.id]}
        ).json()["id"]
    )


def prune(http: Any, app: App) -> int:
    """Run the retention to the end, as the background job would; events pruned."""
    total = 0
    while True:
        pruned, more = http.blocking_portal.call(app.wiring.container.retention.prune)
        total += pruned
        if not more:
            return total


def test_old_events_are_pruned_and_old_cursors_expire(
    app: App, http: Any, clock: Clock, register: Callable[..., Account]
) -> None:
    app.wiring.container.retention.batch = 2  # several batches, each a whole prefix
    a, b = register(), register()
    cid = direct(a, b)
    old = [send(a, cid, f"old {n}") for n in range(4)]
    early = sync_items(b)
    assert [i["event"]["type"] for i in early] == ["conversation.updated"] + ["message.created"] * 4
    clock.advance(KEEP + 1)
    new = [send(a, cid, f"new {n}") for n in range(2)]
    everything = sync_items(b)

    assert prune(http, app) >= 2 * 5  # both logs lost their first five events
    assert prune(http, app) == 0  # and nothing is left to prune

    # From the start: only what is kept, at the positions it always had.
    kept = sync_items(b)
    assert kept == everything[len(early) :]
    assert [i["event"]["message"]["id"] for i in kept] == [m["id"] for m in new]
    assert "old 0" not in rows_as_text(http, app)["user_events"]
    # A cursor at or after the last pruned position misses nothing.
    assert sync_items(b, early[-1]["cursor"]) == kept
    # A cursor before it has expired: 410, and the client is told how to go on.
    for stale in (early[0]["cursor"], early[-2]["cursor"], cursor_for(0)):
        error = assert_error(sync(b, stale), 410, "cursor_expired")
        assert "cursor null" in error["message"]
    # Resync: the state through REST, then the log from a null cursor.
    history = b.client.request("GET", f"{CONVERSATIONS}/{cid}/messages").json()["items"]
    assert [m["id"] for m in history] == [m["id"] for m in old + new]
    page = sync(b, None, limit=1).json()
    assert page["items"] == kept[:1]
    assert sync(b, page["next_cursor"]).json()["items"] == kept[1:]
    # A log with nothing left since the pruning goes on from where it stands.
    c = register()
    assert sync(c, None).json() == {"items": [], "next_cursor": cursor_for(0)}


def test_an_expired_cursor_closes_the_socket_with_4410(
    app: App, http: Any, clock: Clock, register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    cid = direct(a, b)
    send(b, cid, "old one")
    send(b, cid, "old two")
    old = sync_items(a)
    clock.advance(KEEP + 1)
    send(b, cid, "recent")
    recent = sync_items(a)[len(old) :]
    assert prune(http, app) > 0

    token = a.client.access_token or ""
    for cursor in (old[0]["cursor"], old[-2]["cursor"], cursor_for(0)):
        with http.websocket_connect("/v1/ws") as ws:
            ws.send_json({"type": "auth", "token": token, "cursor": cursor})
            error = recv(ws)
            assert (error["type"], error["code"]) == ("error", "cursor_expired")
            expect_close(ws, 4410)
    # From the last pruned position on, and from null, the socket works.
    with http.websocket_connect("/v1/ws") as ws:
        replayed, ready = authenticate(ws, token, old[-1]["cursor"])
        assert [(f["cursor"], f["event"]) for f in replayed] == [
            (i["cursor"], i["event"]) for i in recent
        ]
        assert ready == recent[-1]["cursor"]
    with http.websocket_connect("/v1/ws") as ws:
        assert authenticate(ws, token, None) == ([], recent[-1]["cursor"])


@pytest.mark.parametrize("keep", [0])
def test_a_retention_of_zero_keeps_everything(
    app: App, http: Any, clock: Clock, register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    send(b, direct(b, a), "kept for ever")
    first = sync_items(a)
    clock.advance(600)  # ten times what the other tests keep (tokens stay valid)
    assert prune(http, app) == 0
    assert sync_items(a, cursor_for(0)) == first
    with pytest.raises(SettingsError, match="SOCIUS_EVENT_LOG_RETENTION_SECONDS"):
        load_settings({"SOCIUS_EVENT_LOG_RETENTION_SECONDS": "-1"})
