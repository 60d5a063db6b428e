"""Redis goes away while the clustered stack runs, and comes back.

Every use of Redis is exercised meanwhile through the public API: the look-aside caches
(profiles, graph, suggestions), the login and registration throttles, presence, the
revocation list and the Redis event bus. Each degrades (the database answers, live
delivery waits) or answers 503 ``unavailable`` with ``Retry-After``; none is a 500. A
socket that cannot subscribe is closed with 1013 (try later), and once Redis is back
sockets connect and receive live events again.

tests/integration/test_cache_outage.py covers a Redis that never answered (identity);
this one stops a private ``redis-server`` (tests/private_servers.py) mid-run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from litestar.testing.websocket_test_session import WebSocketTestSession

from conftest import PASSWORD, close_code, make_app, unique_name
from private_servers import PrivateRedis, private_redis
from socius.client import ApiError, Client
from socius.services.delivery import shard_subject

WAIT = 30.0  # seconds a test waits for Redis's return to be noticed


@pytest.fixture
def redis_server(stack: str, tmp_path: Path) -> Iterator[PrivateRedis]:
    if stack != "postgres":
        pytest.skip("Redis is part of the clustered stack")
    with private_redis(tmp_path / "redis") as server:
        yield server


def authenticate(ws: WebSocketTestSession, token: str) -> dict[str, Any]:
    ws.send_json({"type": "auth", "token": token, "cursor": None})
    frame = ws.receive_json(timeout=10)
    assert isinstance(frame, dict)
    return frame


def connect_when_ready(http: TestClient[Any], token: str) -> WebSocketTestSession:
    """A socket that got ``ready``; sockets closed with 1013 (try later) are retried, as a
    client does, until Redis's return has been noticed."""
    deadline = time.monotonic() + WAIT
    while True:
        ws = http.websocket_connect("/v1/ws").__enter__()
        try:
            kind: Any = authenticate(ws, token)["type"]
        except WebSocketDisconnect as closed:
            kind = closed.code
        if kind == "ready":
            return ws
        assert kind == 1013, kind
        ws.close()
        assert time.monotonic() < deadline, "no socket got ready after Redis came back"
        time.sleep(0.2)  # a client's back-off before reconnecting, not an assertion


def test_every_redis_use_degrades_or_answers_503(make_settings, redis_server):
    app = make_app(make_settings(redis_url=redis_server.url))
    answers: list[httpx.Response] = []
    with TestClient(app.asgi) as http:  # type: ignore[arg-type]
        http.event_hooks["response"].append(answers.append)
        alice, bob, carol = Client(http=http), Client(http=http), Client(http=http)
        a = alice.register(unique_name(), PASSWORD)
        b = bob.register(unique_name(), PASSWORD)
        c = carol.register(unique_name(), PASSWORD)
        alice.send_friend_request(b.user.id)
        bob.accept_friend_request(a.user.id)
        chat = alice.open_direct(b.user.id)
        alice.send_message(chat.id, "before the outage", client_msg_id="before")
        spare = Client(http=http)
        spare.login(a.user.username, PASSWORD)
        assert bob.get_user(a.user.id).username == a.user.username  # cached now

        with http.websocket_connect("/v1/ws") as live:
            assert authenticate(live, str(bob.access_token))["type"] == "ready"
            redis_server.stop()
            outage_from = len(answers)

            # The caches: the database answers.
            assert alice.me().id == a.user.id
            assert bob.get_user(a.user.id).id == a.user.id
            assert [f.id for f in bob.friends().items] == [a.user.id]
            assert [f.id for f in carol.user_friends(a.user.id).items] == [b.user.id]
            assert alice.relationships([b.user.id])[0].friend
            alice.suggestions()
            alice.update_me(display_name="Alice in the dark")
            assert bob.get_user(a.user.id).display_name == "Alice in the dark"
            # Graph writes and their invalidation.
            carol.send_friend_request(a.user.id)
            alice.accept_friend_request(c.user.id)
            assert {f.id for f in alice.friends().items} == {b.user.id, c.user.id}
            # Presence reads as offline; the bus is down: the log keeps every event.
            presence = alice.request("GET", "/v1/presence", params={"ids": b.user.id}).json()
            assert [p["online"] for p in presence["items"]] == [False]
            sent = alice.send_message(chat.id, "during the outage", client_msg_id="during")
            alice.request("POST", f"/v1/conversations/{chat.id}/typing")
            bob.mark_read(chat.id, sent.seq)
            assert [m.body for m in bob.messages(chat.id)][-1] == "during the outage"
            assert bob.sync().items
            # The throttles fail open; the revocation list falls back to the database.
            with pytest.raises(ApiError) as info:
                Client(http=http).login(a.user.username, "not the password")
            assert info.value.status == 401
            Client(http=http).register(unique_name(), PASSWORD)
            spare_token = spare.access_token
            spare.logout()
            response = http.get("/v1/me", headers={"Authorization": f"Bearer {spare_token}"})
            assert response.status_code == 401
            assert bob.refresh().access_token
            # A socket of someone whose bus shard this node does not hold yet cannot
            # subscribe: try later. One whose shard it holds (bob's) is let in, as the open
            # one lives on: both catch up from their logs (decision 0050).
            with http.websocket_connect("/v1/ws") as late:
                late.send_json({"type": "auth", "token": carol.access_token, "cursor": None})
                if shard_subject(int(c.user.id)) == shard_subject(int(b.user.id)):
                    assert late.receive_json(timeout=10)["type"] == "ready"
                else:
                    assert close_code(late) == 1013
            live.send_json({"type": "ping"})
            assert live.receive_json(timeout=10) == {"type": "pong"}
            during = answers[outage_from:]
            metrics = http.get("/metrics").text
            assert re.search(r"^cache_errors_total\{[^}]*\} [1-9]", metrics, re.MULTILINE)
            assert re.search(r"^bus_errors_total\{[^}]*\} [1-9]", metrics, re.MULTILINE)

        redis_server.start()
        ws = connect_when_ready(http, str(bob.access_token))
        try:
            after = alice.send_message(chat.id, "after the outage", client_msg_id="after")
            while True:
                frame = ws.receive_json(timeout=10)
                event = frame.get("event") or {}
                if event.get("type") == "message.created":
                    assert event["message"]["id"] == after.id
                    break
        finally:
            ws.close()

    assert during
    failed = [(r.request.url.path, r.status_code) for r in answers if r.status_code >= 500]
    assert all(status == 503 for _, status in failed), failed
    for response in answers:
        if response.status_code == 503:
            assert response.headers.get("retry-after"), response.request.url
            assert response.json()["error"]["code"] == "unavailable"
