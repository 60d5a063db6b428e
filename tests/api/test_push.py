"""Push through the public API, on both stacks, with a real local HTTP receiver standing in
for the push services (docs/push.md).

- A user with no live socket gets a Web Push on their registered subscription: the
  receiver decrypts it with the subscription's private key (RFC 8291) and checks the
  VAPID JWT against the server's public key; it carries ids, never the body, with a
  per-conversation Topic.
- A user with a live socket gets no push; once the socket is gone, the next message
  pushes.
- A push service answering 410 (or 404) gets the device removed; 5xx is retried with
  back-off until it succeeds.
- The gateway kind gets the documented JSON, with the operator's secret.
- Devices: list, delete (another's: 404), bounds on input.

The relay and the notifier run in the app's background, as in production.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ws_support import connected

from conftest import PASSWORD, Account, App, make_app, unique_name
from contract import assert_error, bearer
from event_support import jetstream_settings
from push_receiver import Browser, PushReceiver, check_vapid
from socius.settings import Settings

SECRET = "gateway-secret-for-tests"
DEADLINE = 20.0


@pytest.fixture
def receiver() -> Iterator[PushReceiver]:
    made = PushReceiver()
    made.start()
    yield made
    made.stop()


@pytest.fixture
def app(make_settings: Callable[..., Settings], receiver: PushReceiver) -> App:
    return make_app(
        make_settings(
            event_relay_in_server=True,
            push_allow_private=True,
            push_gateway_url=receiver.url("/gateway"),
            push_gateway_secret=SECRET,
            push_retry_base_seconds=0.05,
        )
    )


def _token(account: Account) -> str:
    assert account.client.access_token is not None
    return account.client.access_token


def wait_for(found: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll until ``found()`` is truthy (never a timed assertion: a deadline only)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = found()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _subscribe(http: Any, account: Account, receiver: PushReceiver, path: str) -> Browser:
    browser = Browser()
    made = http.post(
        "/v1/me/devices",
        json={
            "kind": "webpush",
            "endpoint": receiver.url(path),
            "keys": {"p256dh": browser.p256dh, "auth": browser.auth},
            "expirationTime": None,
        },
        headers=bearer(_token(account)),
    )
    assert made.status_code == 201, made.text
    assert made.json()["kind"] == "webpush"
    return browser


def send(account: Account, conversation_id: str, body: str, **extra: Any) -> Any:
    return account.client.send_message(
        conversation_id, body, client_msg_id=secrets.token_hex(8), **extra
    )


def _inbox(account: Account) -> list[Any]:
    return account.client.notifications().items


def test_offline_user_gets_an_encrypted_signed_push_without_the_body(
    http: Any, register: Callable[..., Account], receiver: PushReceiver
) -> None:
    alice, bob = register(), register()
    browser = _subscribe(http, bob, receiver, "/bob")
    public_key = bob.client.vapid_public_key()
    direct = alice.client.open_direct(bob.id)
    sent = send(alice, direct.id, "the secret plan")

    [pushed] = wait_for(lambda: receiver.to("/bob"), "a push to bob")
    data = browser.decrypt(pushed)
    assert data["type"] == "message"
    assert data["conversation_id"] == direct.id
    assert data["message_id"] == sent.id
    assert "secret" not in pushed.body.decode("latin-1")
    assert "secret" not in str(data)
    assert pushed.headers["topic"] == f"c{direct.id}"
    assert int(pushed.headers["ttl"]) > 0
    claims = check_vapid(pushed, public_key=public_key, audience=receiver.origin)
    assert claims["sub"].startswith("mailto:")
    assert claims["exp"] > time.time()

    [note] = _inbox(bob)
    assert note.id == data["notification_id"]
    assert note.type == "message"
    assert note.payload == {
        "conversation_id": direct.id,
        "message_id": sent.id,
        "sender_id": alice.id,
    }
    assert _inbox(alice) == []  # the sender is not notified of their own message
    wait_for(lambda: bob.client.devices()[0].last_pushed_at, "the device's last push time")


def test_online_user_gets_no_push_until_the_socket_is_gone(
    app: App, http: Any, register: Callable[..., Account], receiver: PushReceiver
) -> None:
    alice, bob = register(), register()
    browser = _subscribe(http, bob, receiver, "/bob")
    direct = alice.client.open_direct(bob.id)
    with connected(http, _token(bob)):
        send(alice, direct.id, "while you are here")
        wait_for(lambda: _inbox(bob), "bob's notification")
        # The round that wrote it has decided whom to push to (and pushed) by then.
        http.blocking_portal.call(app.wiring.container.notifier.settle)
    assert receiver.to("/bob") == []  # online: the notification, no push

    second = send(alice, direct.id, "and now you are away")
    [pushed] = wait_for(lambda: receiver.to("/bob"), "a push once offline")
    assert browser.decrypt(pushed)["message_id"] == second.id


@pytest.mark.parametrize("status", [404, 410])
def test_gone_device_is_removed(
    status: int, http: Any, register: Callable[..., Account], receiver: PushReceiver
) -> None:
    alice, bob = register(), register()
    _subscribe(http, bob, receiver, "/gone")
    receiver.statuses = [status]
    direct = alice.client.open_direct(bob.id)
    send(alice, direct.id, "are you there?")
    wait_for(lambda: receiver.to("/gone"), "the push")
    wait_for(lambda: bob.client.devices() == [], "the device removed")
    send(alice, direct.id, "hello?")
    wait_for(lambda: len(_inbox(bob)) == 2, "the second notification")
    assert len(receiver.to("/gone")) == 1  # never pushed again


def test_server_errors_are_retried_with_backoff(
    http: Any, register: Callable[..., Account], receiver: PushReceiver
) -> None:
    alice, bob = register(), register()
    browser = _subscribe(http, bob, receiver, "/flaky")
    receiver.statuses = [503, 500]
    direct = alice.client.open_direct(bob.id)
    sent = send(alice, direct.id, "try again")
    tries = wait_for(lambda: (found := receiver.to("/flaky")) and len(found) >= 3 and found, "3")
    assert [browser.decrypt(p)["message_id"] for p in tries] == [sent.id] * 3
    assert len(bob.client.devices()) == 1  # a 5xx never removes a device


def test_gateway_gets_the_documented_json(
    http: Any, register: Callable[..., Account], receiver: PushReceiver
) -> None:
    alice, bob = register(), register()
    device = bob.client.register_gateway_device("device-token-1", platform="fcm")
    assert (device.kind, device.platform, device.endpoint) == ("gateway", "fcm", None)
    direct = alice.client.open_direct(bob.id)
    sent = send(alice, direct.id, "@nobody private words")
    [pushed] = wait_for(lambda: receiver.to("/gateway"), "a gateway push")
    assert pushed.headers["authorization"] == f"Bearer {SECRET}"
    assert pushed.headers["content-type"] == "application/json"
    body = pushed.json()
    assert body["token"] == "device-token-1"
    assert body["platform"] == "fcm"
    assert body["device_id"] == device.id
    assert body["collapse_key"] == f"c{direct.id}"
    assert body["data"]["type"] == "message"
    assert body["data"]["message_id"] == sent.id
    assert "private" not in pushed.body.decode()


def test_devices_list_delete_and_bounds(
    http: Any, register: Callable[..., Account], receiver: PushReceiver
) -> None:
    bob, eve = register(), register()
    _subscribe(http, bob, receiver, "/one")
    second = bob.client.register_gateway_device("tok")
    assert {d.kind for d in bob.client.devices()} == {"webpush", "gateway"}
    auth = bearer(_token(eve))
    assert_error(http.delete(f"/v1/me/devices/{second.id}", headers=auth), 404, "device_not_found")
    exported = bob.client.export()
    assert {d["kind"] for d in exported["push_devices"]} == {"webpush", "gateway"}
    assert exported["notification_settings"]["mention"] is True
    bob.client.delete_device(second.id)
    assert [d.kind for d in bob.client.devices()] == ["webpush"]
    browser = Browser()
    keys = {"p256dh": browser.p256dh, "auth": browser.auth}
    for body, status, code in [
        (
            {"kind": "webpush", "endpoint": "ftp://x.example/p", "keys": keys},
            422,
            "validation_error",
        ),
        (
            {"kind": "webpush", "endpoint": receiver.url("/x"), "keys": {**keys, "auth": "A" * 20}},
            422,
            "validation_error",
        ),
        ({"kind": "webpush", "endpoint": receiver.url("/x")}, 422, "validation_error"),
        ({"kind": "gateway"}, 422, "validation_error"),
        ({"kind": "gateway", "token": "has space"}, 422, "validation_error"),
        ({"kind": "carrier-pigeon", "token": "x"}, 422, "validation_error"),
        ({"kind": "gateway", "token": "x", "extra": 1}, 422, "unknown_field"),
    ]:
        assert_error(http.post("/v1/me/devices", json=body, headers=auth), status, code)
    assert_error(http.get("/v1/me/devices"), 401)


def test_registering_an_endpoint_again_moves_it(
    http: Any, register: Callable[..., Account], receiver: PushReceiver
) -> None:
    bob, carol = register(), register()
    _subscribe(http, bob, receiver, "/shared")
    _subscribe(http, carol, receiver, "/shared")  # the browser now signed in as carol
    assert bob.client.devices() == []
    assert len(carol.client.devices()) == 1


def test_online_on_another_node_gets_no_push(
    stack: str,
    make_settings: Callable[..., Settings],
    app: App,
    http: Any,
    register: Callable[..., Account],
    receiver: PushReceiver,
) -> None:
    """Presence is the cluster's: bob's socket is on node B, the notifier runs on node A
    (this test's app), and bob gets no push until that socket is gone."""
    if stack == "sqlite":
        pytest.skip("an embedded node shares no presence with another process")
    from litestar.testing import TestClient

    node_b = make_app(make_settings(push_allow_private=True))  # no relay, no notifier
    alice, bob = register(), register()
    browser = _subscribe(http, bob, receiver, "/bob")
    direct = alice.client.open_direct(bob.id)
    notifier = app.wiring.container.notifier

    async def bob_online() -> bool:
        return int(bob.id) in await notifier.online([int(bob.id)])

    with TestClient(node_b.asgi) as http_b, connected(http_b, _token(bob)):  # type: ignore[arg-type]
        wait_for(lambda: http.blocking_portal.call(bob_online), "bob online, seen from A")
        send(alice, direct.id, "you are on the other node")
        wait_for(lambda: _inbox(bob), "bob's notification")
        http.blocking_portal.call(notifier.settle)
        assert receiver.to("/bob") == []
    wait_for(lambda: not http.blocking_portal.call(bob_online), "bob offline, seen from A")
    later = send(alice, direct.id, "now you are gone")
    [pushed] = wait_for(lambda: receiver.to("/bob"), "a push once offline everywhere")
    assert browser.decrypt(pushed)["message_id"] == later.id


def test_settings_and_mutes_suppress_pushes(
    http: Any, register: Callable[..., Account], receiver: PushReceiver
) -> None:
    alice, bob, carol = register(), register(), register()
    browser = _subscribe(http, bob, receiver, "/bob")
    group = alice.client.create_group("g", [bob.id, carol.id])
    bob.client.update_notification_settings(message=False)
    send(alice, group.id, "not for a push")
    carol.client.mute_conversation(group.id)
    mention = send(alice, group.id, f"@{bob.username} this one")
    [pushed] = wait_for(lambda: receiver.to("/bob"), "the mention's push")
    assert browser.decrypt(pushed)["type"] == "mention"
    assert browser.decrypt(pushed)["message_id"] == mention.id
    bob.client.mute(alice.id)
    send(alice, group.id, f"@{bob.username} muted now")
    later = send(carol, group.id, f"@{bob.username} from carol")  # ("message" is off)
    pushes = wait_for(lambda: (got := receiver.to("/bob")) and len(got) == 2 and got, "2")
    assert browser.decrypt(pushes[1])["message_id"] == later.id  # alice's: none


def test_the_notifier_reads_a_jetstream_stream(
    make_settings: Callable[..., Settings], receiver: PushReceiver
) -> None:
    """The clustered stream (JetStream) feeds the notifier as the database one does; the
    relay and the notifier are driven one round at a time here."""
    import asyncio

    from litestar.testing import TestClient

    from socius.client import Client
    from socius.stream.jetstream import JetStreamEventStream

    made = make_app(jetstream_settings(make_settings, push_allow_private=True))
    container = made.wiring.container
    try:
        with TestClient(made.asgi) as http2:  # type: ignore[arg-type]
            alice, bob = Client(http=http2), Client(http=http2)
            alice.register(unique_name(), PASSWORD)
            bob_id = bob.register(unique_name(), PASSWORD).user.id
            browser = Browser()
            bob.register_webpush_device(receiver.url("/js"), browser.p256dh, browser.auth)
            direct = alice.open_direct(bob_id)
            sent = alice.send_message(direct.id, "over JetStream", client_msg_id="js-1")

            async def rounds() -> None:
                while await container.relay.run_once():
                    pass
                while await container.notifier.run_once():
                    pass
                await container.notifier.settle()

            http2.blocking_portal.call(rounds)
            [pushed] = wait_for(lambda: receiver.to("/js"), "a push fed by JetStream")
            assert browser.decrypt(pushed)["message_id"] == sent.id
            assert [n.type for n in bob.notifications().items] == ["message"]
    finally:
        stream = container.events.stream
        if isinstance(stream, JetStreamEventStream):

            async def drop() -> None:
                await stream.delete()
                await stream.close()

            asyncio.run(drop())
