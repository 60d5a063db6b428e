"""Webhooks through the admin API, on both stacks, with a real local HTTP receiver.

- CRUD, each change audited; a secret is made when none is given; bad input is a 4xx.
- Deliveries follow Standard Webhooks: the receiver checks every signature with its own
  code; events arrive in stream order, of the types asked for.
- The receiver dies mid-stream (one request read and never answered, then the server
  stopped): after it returns, every event has arrived, exactly once by ``webhook-id``.
- An endpoint failing for 24 h is disabled; the delivery log tells each attempt.
- The SSRF guard refuses a loopback destination unless the setting allows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from admin_support import grant_admin_from_cli

from clock import Clock
from conftest import Account, App, make_app
from contract import assert_error, bearer
from event_support import jetstream_settings, relay
from socius.settings import Settings
from socius.stream.jetstream import JetStreamEventStream
from webhook_receiver import Receiver


@pytest.fixture(params=["database", "jetstream"])
def app(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], clock: Clock
) -> Iterator[App]:
    """The stream in the database or in a JetStream stream of the test's own."""
    options: dict[str, Any] = {
        "webhook_allow_private": True,
        "access_token_ttl_seconds": 10 * 24 * 3600,  # the tests move the clock by hours
    }
    if request.param == "jetstream":
        made = make_app(jetstream_settings(make_settings, **options), clock=clock)
    else:
        made = make_app(make_settings(**options), clock=clock)
    yield made
    stream = made.wiring.container.events.stream
    if isinstance(stream, JetStreamEventStream):

        async def drop() -> None:
            await stream.delete()
            await stream.close()

        asyncio.run(drop())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    made.start()
    yield made
    made.stop()


@pytest.fixture
def admin(app: App, http: Any, register: Callable[..., Account]) -> Account:
    account = register()
    grant_admin_from_cli(app, http, account.id)
    return account


def _token(account: Account) -> str:
    assert account.client.access_token is not None
    return account.client.access_token


def _deliver(app: App, http: Any) -> int:
    """The relay, then one round of webhook delivery."""
    relay(app, http)

    async def once() -> int:
        return await app.wiring.container.webhooks.deliver_due()

    result: int = http.blocking_portal.call(once)
    return result


def test_create_read_change_delete_each_audited(
    http: Any, admin: Account, receiver: Receiver
) -> None:
    auth = bearer(_token(admin))
    made = http.post(
        "/v1/admin/webhooks", json={"url": receiver.url, "types": ["graph.*"]}, headers=auth
    )
    assert made.status_code == 201, made.text
    hook = made.json()
    assert hook["secret"].startswith("whsec_")
    assert hook["types"] == ["graph.*"]
    assert hook["enabled"] is True
    listed = http.get("/v1/admin/webhooks", headers=auth).json()["items"]
    assert [h["id"] for h in listed] == [hook["id"]]
    changed = http.patch(
        f"/v1/admin/webhooks/{hook['id']}", json={"enabled": False}, headers=auth
    ).json()
    assert changed["enabled"] is False
    assert http.get(f"/v1/admin/webhooks/{hook['id']}", headers=auth).json()["enabled"] is False
    assert http.delete(f"/v1/admin/webhooks/{hook['id']}", headers=auth).status_code == 204
    assert_error(
        http.get(f"/v1/admin/webhooks/{hook['id']}", headers=auth), 404, "webhook_not_found"
    )
    actions = [e["action"] for e in http.get("/v1/admin/audit", headers=auth).json()["items"]]
    assert actions[:3] == ["webhook.delete", "webhook.update", "webhook.create"]

    for body, code in [
        ({"url": "ftp://example.com/x"}, "validation_error"),
        ({"url": "http://user:pw@example.com/"}, "validation_error"),
        ({"url": "https://example.com/", "types": ["Bad Type"]}, "validation_error"),
        ({"url": "https://example.com/", "secret": "short"}, "validation_error"),
        ({"url": "https://example.com/", "extra": 1}, "unknown_field"),
    ]:
        assert_error(http.post("/v1/admin/webhooks", json=body, headers=auth), 422, code)


def test_signed_in_order_and_exactly_once_across_a_receiver_outage(
    app: App,
    http: Any,
    clock: Clock,
    admin: Account,
    receiver: Receiver,
    register: Callable[..., Account],
) -> None:
    auth = bearer(_token(admin))
    relay(app, http)  # the admin's own events: before the endpoint existed
    hook = http.post(
        "/v1/admin/webhooks",
        json={"url": receiver.url, "types": ["account.created", "graph.*"]},
        headers=auth,
    ).json()
    receiver.secret = hook["secret"]
    people = [register() for _ in range(3)]
    people[0].client.follow(people[1].id)
    assert _deliver(app, http) == 4  # 3 accounts, 1 follow; not the admin's own events

    # The receiver reads the next event and dies before it answers; then it is down.
    receiver.drop_next = 1
    people[1].client.follow(people[2].id)
    people[2].client.follow(people[0].id)
    assert _deliver(app, http) == 0
    receiver.stop()
    more = [register() for _ in range(2)]
    clock.advance(60)
    assert _deliver(app, http) == 0  # refused: the server is gone
    state = http.get(f"/v1/admin/webhooks/{hook['id']}", headers=auth).json()
    assert state["attempts"] == 2
    assert state["enabled"] is True

    receiver.start()  # back, on the same port
    assert _deliver(app, http) == 0  # still waiting out the back-off
    clock.advance(3600)
    assert _deliver(app, http) == 4
    assert _deliver(app, http) == 0

    assert all(r.signature_ok for r in receiver.received)
    ids = receiver.unique_ids()
    assert len(receiver.received) == len(ids) + 1  # the one read and never answered
    bodies = {r.webhook_id: r.body for r in receiver.received}
    types = [bodies[i]["type"] for i in ids]
    assert types == ["account.created"] * 3 + ["graph.followed"] * 3 + ["account.created"] * 2
    positions = [bodies[i]["position"] for i in ids]
    assert positions == sorted(positions)
    assert [bodies[i]["data"]["user_id"] for i in ids[-2:]] == [m.id for m in more]

    log = http.get(
        f"/v1/admin/webhooks/{hook['id']}/deliveries", params={"limit": 100}, headers=auth
    ).json()["items"]
    assert [d["status"] for d in log].count("failed") == 2
    assert [d["status"] for d in log].count("delivered") == 8
    assert log[0]["status"] == "delivered"
    retried = [d for d in log if d["event_id"] == ids[4]]
    assert sorted(d["attempt"] for d in retried) == [1, 2, 3]


def test_an_endpoint_failing_for_a_day_is_disabled(
    app: App, http: Any, clock: Clock, admin: Account, receiver: Receiver
) -> None:
    auth = bearer(_token(admin))
    receiver.status = 500
    hook = http.post("/v1/admin/webhooks", json={"url": receiver.url}, headers=auth).json()
    receiver.secret = hook["secret"]
    ping = http.post(f"/v1/admin/webhooks/{hook['id']}/ping", headers=auth).json()
    assert (ping["status"], ping["status_code"], ping["event_type"]) == (
        "failed",
        500,
        "webhook.ping",
    )
    http.patch("/v1/admin/webhooks/" + hook["id"], json={"description": "x"}, headers=auth)

    async def state() -> Any:
        return await app.wiring.container.webhooks.get(int(hook["id"]))

    for _ in range(40):
        _deliver(app, http)
        clock.advance(3600)
    final = http.blocking_portal.call(state)
    assert final.enabled is False
    assert final.disabled_reason == "failing"
    assert all(r.signature_ok for r in receiver.received)
    assert len({r.webhook_id for r in receiver.received[1:]}) == 1  # one event, retried


def test_loopback_is_refused_without_the_setting(
    make_settings: Callable[..., Settings], register: Callable[..., Account]
) -> None:
    from litestar.testing import TestClient

    guarded = make_app(make_settings(event_relay_in_server=False))
    receiver = Receiver()
    receiver.start()
    try:
        with TestClient(guarded.asgi) as http:  # type: ignore[arg-type]
            from socius.client import Client

            me = Client(http=http)
            me.register("hookadmin", "correct horse battery staple")
            grant_admin_from_cli(guarded, http, me.me().id)
            auth = bearer(me.access_token or "")
            hook = http.post("/v1/admin/webhooks", json={"url": receiver.url}, headers=auth).json()
            ping = http.post(f"/v1/admin/webhooks/{hook['id']}/ping", headers=auth).json()
    finally:
        receiver.stop()
    assert ping["status"] == "failed"
    assert "not allowed" in ping["error"]
    assert receiver.received == []


def test_the_sdk_manages_webhooks(admin: Account, receiver: Receiver) -> None:
    sdk = admin.client.admin
    hook = sdk.create_webhook(receiver.url, types=["message.*"], description="bot")
    receiver.secret = hook.secret
    assert [h.id for h in sdk.webhooks()] == [hook.id]
    assert sdk.update_webhook(hook.id, enabled=False).enabled is False
    ping = sdk.ping_webhook(hook.id)
    assert (ping.status, ping.event_type) == ("delivered", "webhook.ping")
    assert receiver.received[0].signature_ok
    assert [d.id for d in sdk.webhook_deliveries(hook.id).items] == [ping.id]
    sdk.delete_webhook(hook.id)
    assert sdk.webhooks() == []


def test_bodies_only_to_an_endpoint_that_asks_and_only_while_they_exist(
    app: App,
    http: Any,
    admin: Account,
    receiver: Receiver,
    register: Callable[..., Account],
) -> None:
    auth = bearer(_token(admin))
    plain_receiver = Receiver()
    plain_receiver.start()
    try:
        wanting = http.post(
            "/v1/admin/webhooks",
            json={"url": receiver.url, "types": ["message.*"], "bodies": True},
            headers=auth,
        ).json()
        plain = http.post(
            "/v1/admin/webhooks",
            json={"url": plain_receiver.url, "types": ["message.*"]},
            headers=auth,
        ).json()
        assert (wanting["bodies"], plain["bodies"]) == (True, False)
        receiver.secret = wanting["secret"]
        plain_receiver.secret = plain["secret"]

        ann, bob = register(), register()
        ann.client.send_friend_request(bob.id)
        bob.client.accept_friend_request(ann.id)
        direct = ann.client.open_direct(bob.id)
        kept = ann.client.send_message(direct.id, "still here", client_msg_id="k1")
        gone = ann.client.send_message(direct.id, "taken back", client_msg_id="k2")
        deleted = http.delete(
            f"/v1/conversations/{direct.id}/messages/{gone.id}", headers=bearer(_token(ann))
        )
        assert deleted.status_code == 200, deleted.text
        _deliver(app, http)
    finally:
        plain_receiver.stop()

    def created(r: Receiver) -> dict[str, Any]:
        bodies = {x.webhook_id: x.body for x in r.received}
        return {
            b["data"]["message_id"]: b
            for b in (bodies[i] for i in r.unique_ids())
            if b["type"] == "message.created"
        }

    asked = created(receiver)
    assert set(asked) == {kept.id, gone.id}
    assert asked[kept.id]["body"] == "still here"
    assert "body" not in asked[gone.id]  # deleted before delivery: never sent
    assert all(r.signature_ok for r in receiver.received)
    not_asked = created(plain_receiver)
    assert set(not_asked) == {kept.id, gone.id}
    assert all("body" not in b for b in not_asked.values())

    changed = http.patch(
        f"/v1/admin/webhooks/{plain['id']}", json={"bodies": True}, headers=auth
    ).json()
    assert changed["bodies"] is True
    audit = http.get("/v1/admin/audit", headers=auth).json()["items"]
    assert audit[0]["action"] == "webhook.update"
    assert audit[0]["details"]["bodies"] is True
