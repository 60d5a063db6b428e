"""GET /v1/ws: authentication, replay, live delivery, resume, revocation, back-pressure.

Runs on both stacks: on ``postgres`` the app uses the Redis cache and the Redis bus.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from ws_support import (
    assert_pong_next,
    authenticate,
    connected,
    event_type,
    expect_close,
    realtime_of,
    recv,
    until,
)

from conftest import NATS_URL, PASSWORD, Account, make_app, require_service, unique_name
from socius.client import Client
from socius.domain.events import Event
from socius.services.delivery import Fanned
from socius.services.inbox import seq_of
from socius.settings import Settings

# ---------------------------------------------------------------------------- helpers


def _fanned(type_: str, payload: dict[str, Any], user_id: int, seq: int | None = None) -> bytes:
    """One event for one user as a shard's bus message carries it (decision 0050)."""
    raw = msgspec.Raw(msgspec.json.encode(payload))
    seqs = None if seq is None else [seq]
    return msgspec.json.encode([Fanned(type_, raw, None, [user_id], seqs)])


async def _fan_out(hub: Any, payload: bytes) -> None:
    """What the bus does with a shard's message, on the app's loop."""
    hub.fan_out(payload)


def direct(a: Account, b: Account) -> str:
    body = a.client.request(
        "POST", "/v1/conversations", json={"kind": "direct", "member_ids": [b.id]}
    ).json()
    return str(body["id"])


def send(sender: Account, conversation_id: str, body: str) -> dict[str, Any]:
    response = sender.client.request(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": secrets.token_hex(8), "body": body},
    )
    return dict(response.json())


def sync_all(account: Account, cursor: str | None) -> tuple[list[dict[str, Any]], str]:
    """Everything after ``cursor`` through /v1/sync; the items and the final cursor."""
    items: list[dict[str, Any]] = []
    while True:
        page = account.client.request("GET", "/v1/sync", params={"cursor": cursor}).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not page["items"]:
            assert cursor is not None
            return items, cursor


def position(account: Account) -> str:
    return sync_all(account, None)[1]


def bodies(frames: list[dict[str, Any]]) -> list[str]:
    return [f["event"]["message"]["body"] for f in frames if event_type(f) == "message.created"]


def is_message(body: str) -> Callable[[dict[str, Any]], bool]:
    def match(frame: dict[str, Any]) -> bool:
        return (
            frame["type"] == "event"
            and event_type(frame) == "message.created"
            and frame["event"]["message"]["body"] == body
        )

    return match


# ---------------------------------------------------------------------------- auth


def test_no_auth_frame_in_time_closes_4401(app: Any, http: TestClient[Any]) -> None:
    realtime_of(app).gateway.configure(auth_timeout=0.2)
    with http.websocket_connect("/v1/ws") as ws:
        assert expect_close(ws, 4401) == []


@pytest.mark.parametrize(
    "first",
    [
        "not json",
        '{"type": "ping"}',
        '{"type": "auth"}',
        '{"type": "auth", "token": "garbage", "cursor": null}',
        '{"type": "auth", "token": 42}',
        "[1, 2]",
    ],
)
def test_a_bad_first_frame_closes_4401(http: TestClient[Any], first: str) -> None:
    with http.websocket_connect("/v1/ws") as ws:
        ws.send_text(first)
        assert expect_close(ws, 4401) == []


def test_a_revoked_token_closes_4401(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a = register()
    token = a.auth.access_token
    a.client.logout()
    with http.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "auth", "token": token, "cursor": None})
        expect_close(ws, 4401)


def test_a_handshake_that_finds_no_slot_in_time_closes_1013_and_a_retry_gets_in(
    app: Any, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a = register()
    gateway = realtime_of(app).gateway
    gateway.configure(handshakes=0, admission_wait=0.2)  # every slot taken
    with http.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "auth", "token": a.auth.access_token, "cursor": None})
        assert expect_close(ws, 1013) == []
    gateway.configure(handshakes=1)
    with connected(http, a.auth.access_token) as (ws, replayed, _):
        assert replayed == []
        assert_pong_next(ws)


@pytest.mark.parametrize("cursor", ["%%%", "eyJzIjotMX0", "eyJzIjo5OTk5fQ"])  # junk, -1, 9999
def test_a_bad_cursor_gets_an_error_then_4400(
    http: TestClient[Any], register: Callable[..., Account], cursor: str
) -> None:
    a = register()
    with http.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "auth", "token": a.auth.access_token, "cursor": cursor})
        seen = expect_close(ws, 4400)
    assert seen == [{"type": "error", "code": "invalid_cursor", "message": "cursor is not valid"}]


# ---------------------------------------------------------------------------- replay and live


def test_replay_after_a_cursor_sends_exactly_the_missed_events_then_ready(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    conversation = direct(a, b)
    send(a, conversation, "before")
    cursor = position(b)
    for body in ("one", "two", "three"):
        send(a, conversation, body)
    expected, latest = sync_all(b, cursor)

    with connected(http, b.auth.access_token, cursor) as (ws, replayed, ready):
        assert bodies(replayed) == ["one", "two", "three"]
        # The same cursors and events as /v1/sync: the two are interchangeable.
        assert [{"cursor": f["cursor"], "event": f["event"]} for f in replayed] == expected
        assert ready == latest
        assert_pong_next(ws)


def test_a_null_cursor_starts_at_the_current_position(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    conversation = direct(a, b)
    send(a, conversation, "history")
    with connected(http, b.auth.access_token, None) as (ws, replayed, ready):
        assert replayed == []
        assert ready == position(b)
        send(a, conversation, "live")
        frame = recv(ws)
    assert is_message("live")(frame)
    assert sync_all(b, ready)[0] == [{"cursor": frame["cursor"], "event": frame["event"]}]


def test_live_delivery_of_a_message_sent_over_http(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    conversation = direct(a, b)
    with connected(http, b.auth.access_token, position(b)) as (ws, _, ready):
        sent = send(a, conversation, "hello")
        frame = recv(ws)
        assert frame["type"] == "event"
        assert frame["event"]["type"] == "message.created"
        assert frame["event"]["message"]["id"] == sent["id"]
        assert frame["event"]["message"]["body"] == "hello"
        assert sync_all(b, ready)[0] == [{"cursor": frame["cursor"], "event": frame["event"]}]
        # The sender's own devices hear about it too.
        with connected(http, a.auth.access_token, None) as (ws_a, _, _):
            send(a, conversation, "again")
            assert is_message("again")(recv(ws_a))
        assert is_message("again")(recv(ws))


def test_resume_with_the_last_cursor_gets_exactly_the_missed_events_once(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    conversation = direct(a, b)
    with connected(http, b.auth.access_token, position(b)) as (ws, _, _):
        send(a, conversation, "m1")
        send(a, conversation, "m2")
        first = [recv(ws), recv(ws)]
    assert bodies(first) == ["m1", "m2"]
    last_cursor = first[-1]["cursor"]

    for body in ("m3", "m4", "m5"):
        send(a, conversation, body)

    with connected(http, b.auth.access_token, last_cursor) as (ws, replayed, ready):
        assert bodies(replayed) == ["m3", "m4", "m5"]
        send(a, conversation, "m6")
        live = recv(ws)
        assert is_message("m6")(live)
        assert_pong_next(ws)  # nothing twice, nothing else
    seen = [f["cursor"] for f in first + replayed + [live]]
    assert len(set(seen)) == len(seen)
    # A cursor from a frame works on /v1/sync and gives the same thing.
    expected, _ = sync_all(b, last_cursor)
    assert expected == [{"cursor": f["cursor"], "event": f["event"]} for f in [*replayed, live]]
    assert ready == replayed[-1]["cursor"]


def test_a_gap_left_by_the_bus_is_filled_from_the_log_in_order(
    app: Any,
    http: TestClient[Any],
    register: Callable[..., Account],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = register(), register()
    conversation = direct(a, b)
    delivery = app.wiring.container.delivery
    publish = delivery.publish

    async def lossy(events: list[Event]) -> None:
        await publish([e for e in events if e.payload.get("message", {}).get("body") != "lost"])

    with connected(http, b.auth.access_token, position(b)) as (ws, _, ready):
        monkeypatch.setattr(delivery, "publish", lossy)
        send(a, conversation, "lost")
        send(a, conversation, "found")
        frames = [recv(ws), recv(ws)]
        assert bodies(frames) == ["lost", "found"]
        assert sync_all(b, ready)[0] == [
            {"cursor": f["cursor"], "event": f["event"]} for f in frames
        ]

        # The bus repeating an event already sent: dropped.
        hub = realtime_of(app).hub
        first = frames[0]
        again = _fanned(
            "message.created",
            {"message": first["event"]["message"]},
            int(b.id),
            seq_of(first["cursor"]),
        )
        marker = _fanned("typing", {"marker": True}, int(b.id))
        http.blocking_portal.call(_fan_out, hub, again)
        http.blocking_portal.call(_fan_out, hub, marker)
        assert recv(ws) == {"type": "event", "event": {"type": "typing", "marker": True}}


def test_the_periodic_check_fills_what_the_bus_lost_even_without_a_later_event(
    app: Any,
    http: TestClient[Any],
    register: Callable[..., Account],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = register(), register()
    conversation = direct(a, b)
    realtime_of(app).gateway.configure(recheck_interval=0.2)
    delivery = app.wiring.container.delivery

    async def dropped(_events: list[Event]) -> None:
        return None

    with connected(http, b.auth.access_token, position(b)) as (ws, _, _):
        monkeypatch.setattr(delivery, "publish", dropped)
        send(a, conversation, "silent")
        assert is_message("silent")(recv(ws))


# ---------------------------------------------------------------------------- client frames


def test_typing_reaches_the_other_member_without_a_cursor(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    conversation = direct(a, b)
    with (
        connected(http, a.auth.access_token) as (ws_a, _, _),
        connected(http, b.auth.access_token) as (ws_b, _, _),
    ):
        ws_a.send_json({"type": "typing", "conversation_id": conversation})
        frame = recv(ws_b)
        assert frame == {
            "type": "event",
            "event": {"type": "typing", "conversation_id": conversation, "user_id": a.id},
        }
        assert "cursor" not in frame
        assert_pong_next(ws_a)  # no echo to the typist
    # Not replayed: it never entered the log.
    assert all(i["event"]["type"] != "typing" for i in sync_all(b, None)[0])


def test_bad_client_frames_get_error_frames_and_the_socket_stays_open(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b, c = register(), register(), register()
    conversation = direct(a, b)
    with connected(http, c.auth.access_token) as (ws, _, _):
        ws.send_json({"type": "typing", "conversation_id": conversation})  # not a member
        assert recv(ws)["code"] == "conversation_not_found"
        ws.send_json({"type": "typing", "conversation_id": "nope"})
        assert recv(ws)["code"] == "conversation_not_found"
        for bad in ('{"type": "dance"}', "nonsense", '{"type": "typing"}', '{"no": "type"}'):
            ws.send_text(bad)
            frame = recv(ws)
            assert frame["type"] == "error"
            assert frame["code"] == "bad_frame"
        ws.send_json({"type": "ack", "cursor": "%%%"})
        assert recv(ws)["code"] == "invalid_cursor"
        ws.send_json({"type": "ack", "cursor": position(c)})
        assert_pong_next(ws)


def test_an_oversized_frame_closes_the_socket(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a = register()
    with connected(http, a.auth.access_token) as (ws, _, _):
        ws.send_text('{"type": "ping", "pad": "' + "x" * (64 * 1024) + '"}')
        expect_close(ws, 1009)


def test_a_non_member_never_receives_a_conversations_events(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b, c = register(), register(), register()
    conversation = direct(a, b)
    with connected(http, c.auth.access_token) as (ws, _, _):
        send(a, conversation, "private")
        ws_typing = {"type": "typing", "conversation_id": conversation}
        with connected(http, a.auth.access_token) as (ws_a, _, _):
            ws_a.send_json(ws_typing)
            assert_pong_next(ws_a)
        # A barrier on c's own subject, published after everything above.
        b.client.send_friend_request(c.id)
        frame = recv(ws)
        assert event_type(frame) == "friend.request", frame


# ---------------------------------------------------------------------------- revocation


def test_logout_closes_that_sessions_socket_only(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    b = register()
    other = Client(http=http)
    other.login(b.username, PASSWORD)
    assert other.access_token is not None
    with (
        connected(http, b.auth.access_token) as (ws_1, _, _),
        connected(http, other.access_token) as (ws_2, _, _),
    ):
        b.client.logout()
        expect_close(ws_1, 4401)
        assert_pong_next(ws_2)


def test_a_password_change_closes_the_other_sessions_sockets(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    b = register()
    other = Client(http=http)
    other.login(b.username, PASSWORD)
    assert other.access_token is not None
    with (
        connected(http, b.auth.access_token) as (ws_1, _, _),
        connected(http, other.access_token) as (ws_2, _, _),
    ):
        b.client.change_password(PASSWORD, "a brand new passphrase")
        expect_close(ws_2, 4401)
        assert_pong_next(ws_1)


def test_account_deletion_closes_every_socket_of_the_account(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    b = register()
    other = Client(http=http)
    other.login(b.username, PASSWORD)
    assert other.access_token is not None
    with (
        connected(http, b.auth.access_token) as (ws_1, _, _),
        connected(http, other.access_token) as (ws_2, _, _),
    ):
        b.client.delete_me(PASSWORD)
        expect_close(ws_1, 4401)
        expect_close(ws_2, 4401)


def test_the_periodic_check_closes_a_revoked_session_the_bus_did_not_announce(
    app: Any,
    http: TestClient[Any],
    register: Callable[..., Account],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = register()
    realtime_of(app).gateway.configure(recheck_interval=0.2)
    monkeypatch.setattr(app.wiring.container.revocations, "_on_revoked", None)
    with connected(http, b.auth.access_token) as (ws, _, _):
        b.client.logout()
        expect_close(ws, 4401)


# ---------------------------------------------------------------------------- back-pressure


def test_a_slow_consumer_is_closed_with_4408_and_resumes(
    app: Any, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    conversation = direct(a, b)
    gateway = realtime_of(app).gateway
    gateway.configure(send_queue=3)
    hub = realtime_of(app).hub

    async def flood() -> None:
        # Handed over in one go, faster than any client can read: the queue overflows.
        for i in range(50):
            hub.fan_out(_fanned("typing", {"n": i}, int(b.id)))

    with connected(http, b.auth.access_token, position(b)) as (ws, _, ready):
        http.blocking_portal.call(flood)
        seen = expect_close(ws, 4408)
    assert len(seen) <= 3

    gateway.configure(send_queue=1000)
    send(a, conversation, "after")
    with connected(http, b.auth.access_token, ready) as (ws, replayed, _):
        assert bodies(replayed) == ["after"]


def test_a_silent_client_is_closed_with_4408(
    app: Any, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a = register()
    realtime_of(app).gateway.configure(idle_timeout=1.0)
    with connected(http, a.auth.access_token) as (ws, _, _):
        expect_close(ws, 4408)


# ---------------------------------------------------------------------------- two nodes


@pytest.mark.parametrize("bus", ["redis", "nats"])
def test_a_client_on_node_b_receives_what_node_a_wrote(
    stack: str, bus: str, make_settings: Callable[..., Settings]
) -> None:
    if stack != "postgres":
        pytest.skip("nodes share a database and a bus only on PostgreSQL + Redis")
    overrides: dict[str, str] = {}
    if bus == "nats":
        require_service(NATS_URL, "nats")
        overrides["nats_url"] = NATS_URL
    node_a, node_b = make_app(make_settings(**overrides)), make_app(make_settings(**overrides))
    with (
        TestClient(node_a.asgi) as http,  # type: ignore[arg-type]
        TestClient(node_b.asgi) as http_b,  # type: ignore[arg-type]
    ):
        a, b = (
            Account(c, c.register(unique_name(), PASSWORD), PASSWORD)
            for c in (Client(http=http), Client(http=http))
        )
        conversation = direct(a, b)
        cursor = position(b)
        with connected(http_b, b.auth.access_token, cursor) as (ws, _, _):
            send(a, conversation, "across")
            frame, _ = until(ws, is_message("across"))
            assert sync_all(b, cursor)[0][-1] == {
                "cursor": frame["cursor"],
                "event": frame["event"],
            }
            b.client.logout()  # through node A: node B's socket closes at once
            expect_close(ws, 4401)


def test_a_second_auth_frame_is_a_bad_frame(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    a = register()
    with http.websocket_connect("/v1/ws") as ws:
        authenticate(ws, a.auth.access_token)
        ws.send_json({"type": "auth", "token": a.auth.access_token, "cursor": None})
        assert recv(ws)["code"] == "bad_frame"
