"""Graph events go to the outbox with the change that caused them; erasing an account
takes every edge with it and corrects everyone else's counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conftest import Account
from socius.domain.graph import EdgeType
from socius.storage import edges as edges_storage
from socius.storage.outbox import SqlOutboxRepository


def outbox(app: Any, http: Any, user: Account) -> list[tuple[str, str]]:
    """(type, payload user_id) of every graph event stored for ``user``, oldest first.
    (Each also adds a ``notification`` event for the inbox; the messaging tests cover those.)"""

    async def read() -> list[tuple[str, str]]:
        async with app.wiring.database(write=False) as uow:
            events = await uow.outbox.for_user(int(user.id), after_seq=0, limit=100)
        return [(e.type, e.payload.get("user_id")) for e in events if e.type != "notification"]

    return http.blocking_portal.call(read)


def befriend(a: Account, b: Account) -> None:
    a.client.request("POST", "/v1/friends/requests", json={"user_id": b.id})
    b.client.request("POST", f"/v1/friends/requests/{a.id}/accept")


def test_friend_and_follow_events_reach_the_right_user_once(
    app: Any, http: Any, register: Callable[..., Account]
) -> None:
    a, b, c = register(), register(), register()
    a.client.request("POST", "/v1/friends/requests", json={"user_id": b.id})
    a.client.request("POST", "/v1/friends/requests", json={"user_id": b.id})  # no-op
    assert outbox(app, http, b) == [("friend.request", a.id)]
    assert outbox(app, http, a) == []

    b.client.request("POST", f"/v1/friends/requests/{a.id}/accept")
    b.client.request("POST", f"/v1/friends/requests/{a.id}/accept")  # no-op
    b.client.request("POST", "/v1/friends/requests", json={"user_id": a.id})  # no-op: friends
    assert outbox(app, http, a) == [("friend.accepted", b.id)]
    assert outbox(app, http, b) == [("friend.request", a.id)]

    # Asking someone who asked you first is an acceptance: they are told so.
    c.client.request("POST", "/v1/friends/requests", json={"user_id": a.id})
    a.client.request("POST", "/v1/friends/requests", json={"user_id": c.id})
    assert outbox(app, http, c) == [("friend.accepted", a.id)]
    assert outbox(app, http, a)[-1] == ("friend.request", c.id)

    c.client.request("POST", f"/v1/users/{b.id}/follow")
    c.client.request("POST", f"/v1/users/{b.id}/follow")  # no-op
    assert outbox(app, http, b)[-1:] == [("follow.new", c.id)]
    assert len(outbox(app, http, b)) == 2


def test_silent_actions_write_no_events(
    app: Any, http: Any, register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    befriend(a, b)
    before = {u.id: outbox(app, http, u) for u in (a, b)}
    for method, path in (
        ("POST", f"/v1/users/{b.id}/mute"),
        ("DELETE", f"/v1/users/{b.id}/mute"),
        ("DELETE", f"/v1/friends/{b.id}"),
        ("DELETE", f"/v1/users/{b.id}/follow"),
        ("POST", f"/v1/friends/requests/{b.id}/decline"),
        ("DELETE", f"/v1/friends/requests/{b.id}"),
        ("POST", f"/v1/users/{b.id}/block"),
        ("DELETE", f"/v1/users/{b.id}/block"),
    ):
        a.client.request(method, path)
    # Refused actions write nothing either.
    b.client.request("POST", f"/v1/users/{a.id}/block")
    assert a.client.raw("POST", f"/v1/users/{b.id}/follow").status_code == 404
    assert b.client.raw("POST", f"/v1/users/{a.id}/follow").status_code == 403
    assert {u.id: outbox(app, http, u) for u in (a, b)} == before


def test_private_follow_events(app: Any, http: Any, register: Callable[..., Account]) -> None:
    owner, fan = register(), register()
    owner.client.request("PATCH", "/v1/me", json={"is_private": True})
    fan.client.request("POST", f"/v1/users/{owner.id}/follow")
    assert outbox(app, http, owner) == [("follow.request", fan.id)]
    owner.client.request("POST", f"/v1/follow-requests/{fan.id}/approve")
    owner.client.request("POST", f"/v1/follow-requests/{fan.id}/approve")  # no-op
    assert outbox(app, http, fan) == [("follow.accepted", owner.id)]
    assert outbox(app, http, owner) == [("follow.request", fan.id), ("follow.new", fan.id)]


def test_events_are_written_in_the_same_transaction_as_the_edges(
    app: Any,
    http: Any,
    register: Callable[..., Account],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the event cannot be stored, the change is not stored either."""
    a, b = register(), register()

    async def broken(self: Any, events: Any, when: Any) -> None:
        if events:
            raise RuntimeError("outbox down")

    def broken_numbers(per_user: Any, last: Any, when: Any) -> None:
        if per_user:
            raise RuntimeError("outbox down")

    class BrokenLog:
        """The log rows' payloads not JSON: PostgreSQL refuses them in the statement
        that writes the edges too (decision 0053: the one statement is the transaction)."""

        column_list = edges_storage._LOG.column_list
        real = edges_storage._LOG

        def convert(self, dialect: Any, rows: Any) -> list[Any]:
            out = self.real.convert(dialect, rows)
            out[3::6] = ["{not json"] * len(out[3::6])
            return out

    monkeypatch.setattr(SqlOutboxRepository, "add", broken)
    # A graph write stores its events with its edges (one statement on PostgreSQL): the
    # log rows fail in it; SQLite (no JSON check) fails once the log is written, before
    # the commit.
    monkeypatch.setattr(edges_storage, "_LOG", BrokenLog())
    monkeypatch.setattr(edges_storage, "numbered_events", broken_numbers)
    response = a.client.raw("POST", "/v1/friends/requests", json={"user_id": b.id})
    assert response.status_code == 500
    assert a.client.raw("POST", f"/v1/users/{b.id}/follow").status_code == 500
    monkeypatch.undo()

    (rel,) = a.client.request("GET", "/v1/relationships", params={"ids": b.id}).json()["items"]
    assert rel["request_sent"] is False
    assert rel["following"] is False
    assert b.client.request("GET", "/v1/friends/requests").json()["items"] == []
    assert b.client.request("GET", f"/v1/users/{b.id}").json()["followers_count"] == 0
    assert outbox(app, http, b) == []
    # And once the outbox works again, the same actions go through with their events.
    a.client.request("POST", "/v1/friends/requests", json={"user_id": b.id})
    assert outbox(app, http, b) == [("friend.request", a.id)]


# ---------------------------------------------------------------------- erasure


def test_deleting_an_account_removes_its_edges_and_fixes_the_counts(
    app: Any, http: Any, register: Callable[..., Account]
) -> None:
    gone = register()
    friend, friend2, follower, followee, asker, asked, blocked, muter, fof = (
        register() for _ in range(9)
    )
    befriend(gone, friend)
    befriend(friend2, gone)
    befriend(friend, friend2)
    befriend(friend, fof)
    follower.client.request("POST", f"/v1/users/{gone.id}/follow")
    gone.client.request("POST", f"/v1/users/{followee.id}/follow")
    friend.client.request("POST", f"/v1/users/{gone.id}/follow")
    asker.client.request("POST", "/v1/friends/requests", json={"user_id": gone.id})
    gone.client.request("POST", "/v1/friends/requests", json={"user_id": asked.id})
    gone.client.request("POST", f"/v1/users/{blocked.id}/block")
    muter.client.request("POST", f"/v1/users/{gone.id}/mute")
    others = [friend, friend2, follower, followee, asker, asked, blocked, muter, fof]

    # Warm every cache that mentions the user.
    for u in others:
        u.client.raw("GET", f"/v1/users/{u.id}")
        u.client.raw("GET", f"/v1/users/{gone.id}")
        u.client.request("GET", "/v1/relationships", params={"ids": gone.id})
        for path in ("/v1/friends", f"/v1/users/{u.id}/followers", f"/v1/users/{u.id}/following"):
            u.client.request("GET", path)
    suggested = fof.client.request("GET", "/v1/friends/suggestions").json()["items"]
    assert {s["user"]["id"] for s in suggested} == {friend2.id, gone.id}
    assert friend.client.request("GET", f"/v1/users/{friend.id}").json()["friends_count"] == 3

    gone.client.delete_me(gone.password)

    for u in others:
        assert u.client.raw("GET", f"/v1/users/{gone.id}").status_code == 404
        (rel,) = u.client.request("GET", "/v1/relationships", params={"ids": gone.id}).json()[
            "items"
        ]
        assert not any(v for k, v in rel.items() if k != "user_id"), rel
        lists = {
            "friends": "/v1/friends",
            "followers": f"/v1/users/{u.id}/followers",
            "following": f"/v1/users/{u.id}/following",
            "incoming": "/v1/friends/requests?direction=incoming",
            "outgoing": "/v1/friends/requests?direction=outgoing",
            "blocks": "/v1/blocks",
        }
        found = {
            name: [x["id"] for x in u.client.request("GET", path).json()["items"]]
            for name, path in lists.items()
        }
        assert all(gone.id not in v for v in found.values()), (u.username, found)
        profile = u.client.request("GET", f"/v1/users/{u.id}").json()
        assert profile["friends_count"] == len(found["friends"])
        assert profile["followers_count"] == len(found["followers"])
        assert profile["following_count"] == len(found["following"])
    assert friend.client.request("GET", f"/v1/users/{friend.id}").json()["friends_count"] == 2
    assert follower.client.request("GET", f"/v1/users/{follower.id}").json()["following_count"] == 0
    suggested = fof.client.request("GET", "/v1/friends/suggestions").json()["items"]
    assert [s["user"]["id"] for s in suggested] == [friend2.id]

    # In the database: no edge touches the user, and every count is its list's length.
    uid = int(gone.id)

    async def check() -> None:
        async with app.wiring.database(write=False) as uow:
            ids = [int(u.id) for u in others]
            counts = await uow.edges.counts([*ids, uid], list(EdgeType))
            assert all(n == 0 for n in counts[uid].values())
            for src in ids:
                assert await uow.edges.types_between(src, uid) == frozenset()
                for t in EdgeType:
                    rows = await uow.edges.range(src, t, limit=1000)
                    assert uid not in {r.dst for r in rows}
                    assert counts[src][t] == len(rows), (src, t)
            assert await uow.edges.types_between(uid, ids[0]) == frozenset()

    http.blocking_portal.call(check)
