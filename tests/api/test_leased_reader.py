"""The lease of work one node at a time may run (services/leased_reader.py), on both
stacks: the relay and the suggestion refresher hold one (the notifier too).

- The holder renews it once half of it is gone, not at every ``hold``.
- A node refused it asks again only ``refused_wait`` later: no statement meanwhile.
- A standby takes over once the holder has died (its lease expired), and publishes what
  the dead holder left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from admin_support import grant_admin_from_cli
from litestar.testing import TestClient
from sqlalchemy import event

from clock import Clock
from conftest import PASSWORD, App, make_app
from event_support import read_events
from socius.client import Client
from socius.services.leased_reader import Lease
from socius.services.relay import Relay


def _lease(app: App, clock: Clock, *, refused_wait: float = 5.0) -> Lease:
    return Lease(
        app.wiring.database, clock, name="test_lease", lease_seconds=15, refused_wait=refused_wait
    )


def test_a_standby_asks_again_only_after_its_wait_and_takes_over_when_the_holder_dies(
    app: App, http: TestClient[Any], count_queries: Callable[[], Any]
) -> None:
    clock = Clock()
    holder, standby = _lease(app, clock), _lease(app, clock)

    async def rounds() -> list[Any]:
        seen: list[Any] = [await holder.hold(), await standby.hold(), standby.resting]
        with count_queries() as statements:
            seen.append(await standby.hold())  # resting: refused without asking
            seen.append(await holder.hold())  # a quarter of a lease: not renewed yet
        seen.append(statements)
        clock.advance(5.1)  # the wait is over: it asks, and the holder still has it
        seen += [standby.resting, await standby.hold(), standby.resting]
        clock.advance(4)  # past half of the holder's lease: the holder renews it
        with count_queries() as statements:
            seen.append(await holder.hold())
        seen.append(len([s for s in statements if "leases" in s]))
        # The holder dies (no release, no more renewals): its lease runs out 15 s after
        # the renewal; the standby's next ask after that takes it.
        clock.advance(15.1)
        seen += [await standby.hold(), standby.resting, await holder.hold()]
        return seen

    assert http.blocking_portal.call(rounds) == [
        True,  # the holder takes the free lease
        False,  # the standby is refused
        True,  # and rests
        False,
        True,
        [],  # neither asked the database
        False,  # the wait is over
        False,  # refused again
        True,  # and rests again
        True,
        1,  # one statement on the lease: the renewal
        True,  # the standby took over
        False,  # and works
        False,  # the old holder, back, is refused
    ]


def test_a_released_lease_is_taken_by_the_next_ask(app: App, http: TestClient[Any]) -> None:
    clock = Clock()
    first, second = _lease(app, clock, refused_wait=0), _lease(app, clock, refused_wait=0)

    async def rounds() -> list[bool]:
        seen = [await first.hold(), await second.hold()]
        await first.release()
        seen += [await second.hold(), await first.hold()]
        return seen

    assert http.blocking_portal.call(rounds) == [True, False, True, False]


def test_a_standby_relay_publishes_what_a_dead_relay_left(
    make_settings: Callable[..., Any],
) -> None:
    """Two relays on one database: the first publishes, then dies holding the lease; the
    other, refused and resting meanwhile, publishes what was left once the dead one's
    lease has expired. Every event arrives once."""
    clock = Clock()
    served = make_app(make_settings(event_relay_in_server=False), clock=clock)
    with TestClient(served.asgi) as http:  # type: ignore[arg-type]
        c = served.wiring.container
        standby = Relay(served.wiring.database, c.events.stream, clock, lease_seconds=15)
        admin = Client(http=http)
        admin.register("leaseadmin", PASSWORD)

        http.blocking_portal.call(c.relay.run_once)  # account.created; the lease taken
        grant_admin_from_cli(served, http, admin.me().id)  # one more event: the grant

        async def takeover() -> list[int | None]:
            seen = [await standby.run_once()]  # the grant to publish: refused the lease
            statements: list[str] = []
            engine = served.wiring.database.primary.sync_engine
            record = lambda *a: statements.append(a[2])  # noqa: E731
            event.listen(engine, "before_cursor_execute", record)
            try:
                seen.append(await standby.run_once())  # resting: not even a read
            finally:
                event.remove(engine, "before_cursor_execute", record)
            seen.append(len(statements))
            clock.advance(15.1)  # the dead relay's lease has run out
            seen += [await standby.run_once(), await standby.run_once()]
            return seen

        assert http.blocking_portal.call(takeover) == [None, None, 0, 1, 0]
        types = [e["type"] for e in read_events(http, admin.access_token or "")]
    assert types == ["account.created", "admin.user_grant_admin"]


def test_a_consumer_position_moves_by_compare_and_set_on_either_unit_of_work(
    app: App, http: TestClient[Any]
) -> None:
    """``push.move`` (the refresher's and the notifier's position) moves a consumer only
    from where it is: the same answers in a unit of work on the driver (the refresher's,
    decision 0061) and in one through SQLAlchemy (the notifier's)."""
    database = app.wiring.database

    async def moves(driver: bool, name: str) -> list[Any]:
        seen: list[Any] = []
        for before, after in [(0, 5), (0, 7), (3, 7), (5, 7), (7, 9)]:
            async with database(driver=driver) as uow:
                seen.append(await uow.push.move(name, before, after))
                await uow.commit()
        async with database(write=False) as uow:
            seen.append(await uow.push.position(name))
        return seen

    expected = [True, False, False, True, True, 9]
    assert http.blocking_portal.call(moves, True, "test_consumer_driver") == expected
    assert http.blocking_portal.call(moves, False, "test_consumer_built") == expected
