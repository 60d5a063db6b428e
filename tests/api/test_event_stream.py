"""The durable event stream through the admin API, on both stacks, in the database and in
JetStream.

- Every domain write appends one event, in its own transaction; the relay moves them to
  the stream in order, once each, and the admin API reads them from any position,
  filtered by type, with message bodies only on request and only while they exist.
- Erasure appends a redaction event; the admin route needs an administrator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from admin_support import grant_admin_from_cli
from litestar.testing import TestClient

from conftest import PASSWORD, Account, App, make_app
from contract import assert_error, bearer
from event_support import jetstream_settings, read_events, relay
from socius.settings import Settings


@pytest.fixture(params=["database", "jetstream"])
def settings(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Settings:
    if request.param == "jetstream":
        return jetstream_settings(make_settings)
    return make_settings(event_relay_in_server=False)


@pytest.fixture
def app(settings: Settings) -> Any:
    made = make_app(settings)
    yield made
    stream = made.wiring.container.events.stream
    if hasattr(stream, "delete"):
        import asyncio

        async def drop() -> None:
            await stream.delete()
            await stream.close()

        asyncio.run(drop())


def _token(account: Account) -> str:
    token = account.client.access_token
    assert token is not None
    return token


def test_each_write_is_one_event_in_order_once(
    app: App, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    alice, bob = register(), register()
    grant_admin_from_cli(app, http, alice.id)
    alice.client.send_friend_request(bob.id)
    bob.client.accept_friend_request(alice.id)
    bob.client.follow(alice.id)
    chat = alice.client.open_direct(bob.id)
    kept = alice.client.send_message(chat.id, "hello bob", client_msg_id="m1")
    gone = alice.client.send_message(chat.id, "oops", client_msg_id="m2")
    alice.client.send_message(chat.id, "hello bob", client_msg_id="m1")  # a retry: nothing new
    http.delete(
        f"/v1/conversations/{chat.id}/messages/{gone.id}", headers=bearer(_token(alice))
    ).raise_for_status()

    assert relay(app, http) > 0
    assert relay(app, http) == 0  # everything went in the first round
    events = read_events(http, _token(alice))
    types = [e["type"] for e in events]
    assert types == [
        "account.created",
        "account.created",
        "admin.user_grant_admin",
        "graph.friend_requested",
        "graph.friend_added",
        "graph.followed",
        "conversation.created",
        "message.created",
        "message.created",
        "message.redacted",
    ]
    positions = [e["position"] for e in events]
    assert positions == sorted(set(positions))
    assert len({e["id"] for e in events}) == len(events)
    created = [e for e in events if e["type"] == "message.created"]
    assert created[0]["data"] == {
        "message_id": kept.id,
        "conversation_id": chat.id,
        "conversation_kind": "direct",
        "sender_id": alice.id,
        "seq": str(kept.seq),
    }
    assert all("body" not in e["data"] for e in events)
    assert all(e["body"] is None for e in events)  # not asked for
    accepted = events[4]["data"]
    assert (accepted["actor_id"], accepted["other_id"]) == (bob.id, alice.id)
    assert "friend" in accepted["added"]
    assert events[2]["data"]["target_id"] == alice.id  # the audit hook: ids, no reason

    # Bodies on request, and only while the message has one.
    with_bodies = read_events(http, _token(alice), types="message.created", bodies="true")
    assert [e["body"] for e in with_bodies] == ["hello bob", None]

    # From any position, filtered by names or prefixes.
    later = read_events(http, _token(alice), after=positions[5])
    assert [e["position"] for e in later] == positions[6:]
    graph = read_events(http, _token(alice), types="graph.*,account.created")
    assert [e["type"] for e in graph] == types[:2] + types[3:6]
    # --from TIME: before everything is the start; after everything is the head.
    from datetime import UTC, datetime, timedelta

    async def start_after(when: datetime) -> int:
        return await app.wiring.container.events.start_after(when)

    now = datetime.now(UTC)
    assert http.blocking_portal.call(start_after, now - timedelta(days=1)) == 0
    # A time is the events' occurred_at, whenever the relay stored them (here: all at
    # once, after the last one occurred).
    times = [datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) for e in events]
    for k in range(len(events)):
        earlier = [e for e, t in zip(events, times, strict=True) if t < times[k]]
        when = times[k]
        assert http.blocking_portal.call(start_after, when) == (
            earlier[-1]["position"] if earlier else 0
        )
    assert http.blocking_portal.call(start_after, now + timedelta(days=1)) == positions[-1]
    page = alice.client.admin.events(after=positions[2], types="graph.*", limit=2)
    assert [e.type for e in page.items] == types[3:5]
    assert page.next_after == positions[4]


def test_erasure_appends_a_redaction_event(
    app: App, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    admin, leaving = register(), register()
    grant_admin_from_cli(app, http, admin.id)
    leaving.client.follow(admin.id)
    leaving.client.delete_me(PASSWORD)
    relay(app, http)
    events = read_events(http, _token(admin), types="account.*")
    assert [(e["type"], e["data"]["user_id"]) for e in events][-1] == (
        "account.erased",
        leaving.id,
    )


def test_an_account_made_by_an_administrator_is_account_created_too(
    app: App, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    """A consumer following ``account.*`` sees every new account, however it was made:
    ``socius admin create-user`` writes ``account.created`` (via ``admin``) beside the
    audit's ``admin.user_create``."""
    from socius.services.audit import Actor

    admin = register()
    grant_admin_from_cli(app, http, admin.id)

    async def create() -> int:
        user = await app.wiring.container.admin.create_user(
            Actor.command_line(), "madebyadmin", PASSWORD
        )
        return user.id

    made = str(http.blocking_portal.call(create))
    relay(app, http)
    events = read_events(http, _token(admin))
    assert [(e["type"], e["data"].get("user_id"), e["data"].get("via")) for e in events] == [
        ("account.created", admin.id, "register"),
        ("admin.user_grant_admin", None, "cli"),
        ("account.created", made, "admin"),
        ("admin.user_create", None, "cli"),
    ]
    assert events[3]["data"]["target_id"] == made


def test_bad_filters_are_refused(
    app: App, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    admin = register()
    grant_admin_from_cli(app, http, admin.id)
    for params, code in [
        ({"types": "Nope!"}, "validation_error"),
        ({"types": "message.,graph.*"}, "validation_error"),
        ({"after": "-1"}, "validation_error"),
        ({"limit": "0"}, "validation_error"),
    ]:
        response = http.get("/v1/admin/events", params=params, headers=bearer(_token(admin)))
        assert_error(response, 422, code)


def test_the_servers_own_relay_publishes_after_each_commit(
    make_settings: Callable[..., Settings],
) -> None:
    import time

    from socius.client import Client

    served = make_app(make_settings(event_relay_in_server=True))
    with TestClient(served.asgi) as http:  # type: ignore[arg-type]
        admin = Client(http=http)
        admin.register("relayadmin", PASSWORD)
        grant_admin_from_cli(served, http, admin.me().id)
        deadline = time.monotonic() + 30  # background work: wait for it, bounded
        types: list[str] = []
        while time.monotonic() < deadline and "admin.user_grant_admin" not in types:
            response = http.get("/v1/admin/events", headers=bearer(admin.access_token or ""))
            types = [e["type"] for e in response.json()["items"]]
            time.sleep(0.05)
        assert types == ["account.created", "admin.user_grant_admin"]
        scraped = http.get("/metrics").text
    relayed = [
        line
        for line in scraped.splitlines()
        if "stream_events_relayed_total " in line and not line.startswith("#")
    ]
    assert relayed
    assert float(relayed[0].rsplit(" ", 1)[1]) == 2


def test_the_database_stream_keeps_events_for_max_age(
    make_settings: Callable[..., Settings], register: Callable[..., Account]
) -> None:
    from clock import Clock

    clock = Clock()
    kept = make_app(make_settings(event_stream_max_age_seconds=3600), clock=clock)
    with TestClient(kept.asgi) as http:  # type: ignore[arg-type]
        from socius.client import Client

        old = Client(http=http)
        old.register("oldtimer", PASSWORD)
        relay(kept, http)
        clock.advance(7200)
        admin = Client(http=http)
        admin.register("newcomer", PASSWORD)
        grant_admin_from_cli(kept, http, admin.me().id)
        relay(kept, http)
        events = read_events(http, admin.access_token or "")
    assert [e["type"] for e in events] == ["account.created", "admin.user_grant_admin"]
    assert events[0]["data"]["user_id"] == admin.me().id


def test_a_busy_relay_renews_its_lease_at_half_time_not_every_round(
    app: App, http: TestClient[Any], register: Callable[..., Account], count_queries: Any
) -> None:
    """Rounds that follow each other (a relay under load) take the lease once: one write
    transaction per round (marking its batch sent), not two. Every event still arrives."""
    alice, bob = register(), register()
    relay(app, http)  # the sign-ups; the lease is taken here
    rounds: list[list[str]] = []
    for _ in range(3):
        alice.client.follow(bob.id)
        alice.client.unfollow(bob.id)
        with count_queries() as statements:
            assert relay(app, http) == 2
        rounds.append(statements)
    leases = [s for r in rounds for s in r if "leases" in s]
    assert leases == [], leases
    grant_admin_from_cli(app, http, alice.id)
    relay(app, http)
    types = [e["type"] for e in read_events(http, _token(alice))]
    assert types.count("graph.followed") == 3
    assert types.count("graph.unfollowed") == 3
