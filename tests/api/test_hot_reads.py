"""storage/reads.py: the user read on the driver gives what the repository gives, sees every
commit at once, and /v1/me on it still refuses an account that is gone."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import pytest

from contract import bearer
from socius.domain.errors import Unavailable
from socius.domain.users import UserStatus
from socius.services.audit import Actor
from socius.storage.unit_of_work import Database


async def register(ahttp: Any, name: str) -> tuple[int, str]:
    r = await ahttp.post(
        "/v1/auth/register", json={"username": name, "password": "correct horse battery"}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    return int(body["user"]["id"]), body["access_token"]


async def test_the_driver_read_equals_the_repository_read(settings, ahttp):
    user_id, token = await register(ahttp, "hot_reads_1")
    r = await ahttp.patch("/v1/me", json={"display_name": "Hot Reader"}, headers=bearer(token))
    assert r.status_code == 200, r.text
    # A Database of this test's own (on this event loop) beside the app's.
    database = Database(settings.effective_database_url, pool_size=2)
    try:
        assert database.reads.available
        async with database(write=False) as uow:
            expected = await uow.users.get(user_id)
        found = await database.reads.user(user_id)
        assert found == expected
        assert found is not None
        assert found.display_name == "Hot Reader"
        assert await database.reads.user(user_id + 1_000_000) is None
    finally:
        await database.dispose()


async def test_me_reads_each_commit_and_refuses_an_account_gone(app, ahttp):
    user_id, token = await register(ahttp, "hot_reads_2")
    for name in ("First", "Second"):
        r = await ahttp.patch("/v1/me", json={"display_name": name}, headers=bearer(token))
        assert r.status_code == 200, r.text
        me = await ahttp.get("/v1/me", headers=bearer(token))
        assert me.json()["display_name"] == name

    # Disabled the way an operator does it (`socius admin disable-user`, the same service
    # call), on the app's loop: its commit drops the user from every node's L1, as every
    # write of the app does.
    async def disable() -> None:
        await app.wiring.container.admin.set_status(
            Actor.command_line(), user_id, UserStatus.DISABLED
        )

    await asyncio.to_thread(ahttp.blocking_portal.call, disable)
    refused = await ahttp.get("/v1/me", headers=bearer(token))
    assert refused.status_code == 401, refused.text
    # Disabling revokes the sessions too: whichever check sees it first refuses.
    assert refused.json()["error"]["code"] in {"session_revoked", "account_gone"}


async def test_a_read_beside_an_open_write_sees_only_what_is_committed(settings, ahttp):
    """On SQLite the reads share the driver writer's connection while it is idle (decision
    0042): one made while that connection's transaction is open must not see the
    transaction's uncommitted row, nor one rolled back."""
    user_id, _token = await register(ahttp, "hot_reads_3")
    database = Database(settings.effective_database_url, pool_size=2)

    async def shown() -> str:
        user = await database.reads.user(user_id)
        assert user is not None
        return user.display_name

    try:
        before = await shown()
        with contextlib.suppress(_Undo):
            async with database(driver=True) as uow:
                assert await uow.users.update_profile(user_id, {"display_name": "Rolled"}, [])
                assert await shown() == before  # open: not committed
                raise _Undo
        assert await shown() == before  # rolled back
        async with database(driver=True) as uow:
            assert await uow.users.update_profile(user_id, {"display_name": "Kept"}, [])
            assert await shown() == before  # open: not committed yet
            await uow.commit()
        assert await shown() == "Kept"
    finally:
        await database.dispose()


class _Undo(Exception):
    pass


_OTHERS = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


async def _end_sessions(admin: Any) -> None:
    """End every other session on this test's database, as a restart does, and wait until
    PostgreSQL has closed them all and the driver has read each close."""
    ended = await admin.fetchval(f"SELECT array_agg(pid) {_OTHERS}") or []
    await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", ended)
    async with asyncio.timeout(10):
        while await admin.fetchval(f"SELECT count(*) {_OTHERS} AND pid = ANY($1)", ended):  # noqa: ASYNC110 (polling PostgreSQL)
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)


async def test_connections_kept_across_a_restart_are_replaced(settings, stack, ahttp):
    """The driver pool's connections kept checked out between reads and between write
    units of work (decisions 0053, 0058) whose sessions a restart ended: asyncpg gives a
    closed connection's slot back to its pool and detaches it, so it must be set aside,
    not handed a statement ("released back to the pool": a 500). With the database up
    again no read nor unit of work fails; one whose session ends under it is an outage
    (503), and the next one succeeds."""
    if stack != "postgres":
        pytest.skip("PostgreSQL's sessions")
    user_id, _token = await register(ahttp, "hot_reads_kept")
    database = Database(settings.effective_database_url, pool_size=10)
    reads = database.reads
    admin = await asyncpg.connect("postgresql://" + database.url.partition("://")[2])

    async def unit_of_work() -> None:
        async with database(write=False, driver=True):
            await asyncio.sleep(0.01)  # the others' checkouts come meanwhile

    async def rename(name: str) -> None:
        async with database(driver=True) as uow:
            assert await uow.users.update_profile(user_id, {"display_name": name}, [])
            await uow.commit()

    async def lost_between_statements() -> None:
        async with database(driver=True) as uow:
            assert await uow.users.update_profile(user_id, {"display_name": "Lost"}, [])
            await _end_sessions(admin)
            await uow.users.update_profile(user_id, {"display_name": "Lost"}, [])

    try:
        for round_ in range(2):  # again: the connections the first round replaced
            # Several at once: some stay checked out after them.
            await asyncio.gather(*(reads.rows("SELECT pg_sleep(0.05)") for _ in range(5)))
            await asyncio.gather(*(unit_of_work() for _ in range(3)))
            await rename(f"Before {round_}")
            await _end_sessions(admin)
            found = await asyncio.gather(*(reads.rows("SELECT ?::int", i) for i in range(8)))
            assert [rows[0][0] for rows in found] == list(range(8))
            await asyncio.gather(*(unit_of_work() for _ in range(3)))
            await rename(f"After {round_}")
            user = await reads.user(user_id)
            assert user is not None
            assert user.display_name == f"After {round_}"

        # Ended under a read, and between two statements of a unit of work.
        slow = asyncio.create_task(reads.rows("SELECT pg_sleep(30)"))
        async with asyncio.timeout(10):
            while not await admin.fetchval(  # noqa: ASYNC110 (polling PostgreSQL)
                f"SELECT count(*) {_OTHERS} AND query = 'SELECT pg_sleep(30)'"
            ):
                await asyncio.sleep(0.02)
        await _end_sessions(admin)
        with pytest.raises(Unavailable):
            await slow
        with pytest.raises(Unavailable):
            await lost_between_statements()
        await rename("Again")
        user = await reads.user(user_id)
        assert user is not None
        assert user.display_name == "Again"
    finally:
        await admin.close()
        await database.dispose()
