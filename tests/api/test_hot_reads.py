"""storage/reads.py: the user read on the driver gives what the repository gives, sees every
commit at once, and /v1/me on it still refuses an account that is gone."""

from __future__ import annotations

from typing import Any

from contract import assert_error, bearer
from socius.domain.users import UserStatus
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
    database = Database(app.wiring.database.url, pool_size=2)
    try:
        async with database() as uow:
            await uow.users.update(user_id, {"status": UserStatus.DISABLED})
            await uow.commit()
    finally:
        await database.dispose()
    assert_error(await ahttp.get("/v1/me", headers=bearer(token)), 401, "account_gone")
