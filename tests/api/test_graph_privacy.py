"""Who may see and do what in the graph: private accounts, blocks, acting only as oneself,
bad ids, suggestions, mutual friends, and paging through long lists."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from conftest import PASSWORD, Account
from socius.client import ApiError, Client
from socius.services.audit import Actor
from socius.services.graph_cache import HEAD_SIZE
from socius.services.suggestions import FANOUT


@pytest.fixture
def settings(make_settings: Callable[..., Any]) -> Any:
    """Room for the 120-friend tests' registrations and friend requests (the throttle and
    the per-user limits have their own tests)."""
    return make_settings(register_max_per_ip_per_hour=1000, limit_friend_requests=0)


LISTS = ("friends", "followers", "following", "mutual-friends")
FALSE_RELATIONSHIP = dict.fromkeys(
    (
        "friend",
        "request_sent",
        "request_received",
        "following",
        "followed_by",
        "follow_requested",
        "blocking",
        "blocked_by",
        "muting",
    ),
    False,
)


def befriend(a: Account, b: Account) -> None:
    a.client.request("POST", "/v1/friends/requests", json={"user_id": b.id})
    rel = b.client.request("POST", f"/v1/friends/requests/{a.id}/accept").json()
    assert rel["friend"] is True


def relationship(a: Account, b: Account) -> dict[str, Any]:
    (item,) = a.client.request("GET", "/v1/relationships", params={"ids": b.id}).json()["items"]
    assert item.pop("user_id") == b.id
    return item


def ids(client: Client, path: str, **params: Any) -> list[str]:
    return [u["id"] for u in client.request("GET", path, params=params).json()["items"]]


def error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def make_private(a: Account) -> None:
    assert a.client.request("PATCH", "/v1/me", json={"is_private": True}).json()["is_private"]


# ---------------------------------------------------------------------- private accounts


def test_private_lists_are_hidden_from_non_friends_only(register: Callable[..., Account]) -> None:
    owner, friend, follower, stranger, shared = (register() for _ in range(5))
    befriend(owner, friend)
    befriend(owner, shared)
    befriend(stranger, shared)
    befriend(follower, shared)
    follower.client.request("POST", f"/v1/users/{owner.id}/follow")
    owner.client.request("POST", f"/v1/users/{shared.id}/follow")
    make_private(owner)

    for viewer in (follower, stranger):  # following a private account is not enough
        for kind in LISTS:
            response = viewer.client.raw("GET", f"/v1/users/{owner.id}/{kind}")
            assert error(response) == (403, "private_account"), (kind, response.text)
        # The profile itself stays visible, with its counts.
        profile = viewer.client.request("GET", f"/v1/users/{owner.id}").json()
        assert profile["is_private"] is True
        assert (profile["friends_count"], profile["followers_count"]) == (2, 1)
        assert profile["following_count"] == 1

    assert set(ids(friend.client, f"/v1/users/{owner.id}/friends")) == {friend.id, shared.id}
    assert ids(friend.client, f"/v1/users/{owner.id}/followers") == [follower.id]
    assert ids(friend.client, f"/v1/users/{owner.id}/following") == [shared.id]
    assert ids(friend.client, f"/v1/users/{owner.id}/mutual-friends") == []
    assert ids(shared.client, f"/v1/users/{owner.id}/mutual-friends") == []
    assert set(ids(owner.client, f"/v1/users/{owner.id}/friends")) == {friend.id, shared.id}
    assert ids(owner.client, f"/v1/users/{owner.id}/followers") == [follower.id]

    # Going public again opens the lists to everyone.
    owner.client.request("PATCH", "/v1/me", json={"is_private": False})
    assert set(ids(stranger.client, f"/v1/users/{owner.id}/friends")) == {friend.id, shared.id}
    assert ids(stranger.client, f"/v1/users/{owner.id}/mutual-friends") == [shared.id]


def test_following_a_private_account_is_a_request_until_approved(
    register: Callable[..., Account],
) -> None:
    owner, fan, other = register(), register(), register()
    make_private(owner)
    rel = fan.client.request("POST", f"/v1/users/{owner.id}/follow").json()
    assert rel["follow_requested"] is True
    assert rel["following"] is False
    assert ids(owner.client, "/v1/follow-requests") == [fan.id]
    assert ids(owner.client, f"/v1/users/{owner.id}/followers") == []
    assert owner.client.request("GET", f"/v1/users/{owner.id}").json()["followers_count"] == 0
    # Nobody but the owner can answer it.
    response = other.client.raw("POST", f"/v1/follow-requests/{fan.id}/approve")
    assert error(response) == (404, "follow_request_not_found")
    assert ids(owner.client, "/v1/follow-requests") == [fan.id]

    rel = owner.client.request("POST", f"/v1/follow-requests/{fan.id}/approve").json()
    assert rel["followed_by"] is True
    assert relationship(fan, owner)["following"] is True
    assert ids(owner.client, "/v1/follow-requests") == []
    assert ids(owner.client, f"/v1/users/{owner.id}/followers") == [fan.id]
    assert owner.client.request("GET", f"/v1/users/{owner.id}").json()["followers_count"] == 1

    # A follower of a private account is still not a friend: the lists stay closed.
    response = fan.client.raw("GET", f"/v1/users/{owner.id}/followers")
    assert error(response) == (403, "private_account")


# ---------------------------------------------------------------------- blocks


def test_blocked_user_cannot_see_or_reach_the_blocker(register: Callable[..., Account]) -> None:
    blocker, blocked, bystander = register(), register(), register()
    befriend(blocker, bystander)
    blocker.client.request("POST", f"/v1/users/{blocked.id}/block")

    for viewer, target in ((blocked, blocker), (blocker, blocked)):  # hidden both ways
        response = viewer.client.raw("GET", f"/v1/users/{target.id}")
        assert error(response) == (404, "user_not_found")
        response = viewer.client.raw("GET", f"/v1/users/by-username/{target.username}")
        assert error(response) == (404, "user_not_found")
        for kind in LISTS:
            response = viewer.client.raw("GET", f"/v1/users/{target.id}/{kind}")
            assert error(response) == (404, "user_not_found"), kind

    # The blocked side is told the blocker does not exist; the blocker, to unblock first.
    for method, path, body in (
        ("POST", "/v1/friends/requests", {"user_id": blocker.id}),
        ("POST", f"/v1/users/{blocker.id}/follow", None),
    ):
        response = blocked.client.raw(method, path, json=body)
        assert error(response) == (404, "user_not_found"), path
    for method, path, body in (
        ("POST", "/v1/friends/requests", {"user_id": blocked.id}),
        ("POST", f"/v1/users/{blocked.id}/follow", None),
    ):
        response = blocker.client.raw(method, path, json=body)
        assert error(response) == (403, "blocked"), path

    # The bystander still sees both, and the blocker's friend list.
    assert bystander.client.request("GET", f"/v1/users/{blocked.id}").json()["id"] == blocked.id
    assert ids(bystander.client, f"/v1/users/{blocker.id}/friends") == [bystander.id]
    assert ids(blocker.client, "/v1/blocks") == [blocked.id]
    assert ids(blocked.client, "/v1/blocks") == []


def test_block_ends_everything_both_ways_and_unblock_restores_nothing(
    register: Callable[..., Account],
) -> None:
    a, b, c = register(), register(), register()
    befriend(a, b)
    a.client.request("POST", f"/v1/users/{b.id}/follow")
    b.client.request("POST", f"/v1/users/{a.id}/follow")
    a.client.request("POST", "/v1/friends/requests", json={"user_id": c.id})
    c.client.request("POST", f"/v1/users/{a.id}/follow")
    a.client.request("POST", f"/v1/users/{b.id}/mute")
    before = relationship(a, b)
    assert before["friend"]
    assert before["following"]
    assert before["followed_by"]

    rel = b.client.request("POST", f"/v1/users/{a.id}/block").json()
    assert {k: v for k, v in rel.items() if v is True} == {"blocking": True}
    assert relationship(a, b) == {**FALSE_RELATIONSHIP, "blocked_by": True, "muting": True}
    for u in (a, b):
        assert ids(u.client, "/v1/friends") == []
        profile = u.client.request("GET", f"/v1/users/{u.id}").json()
        assert profile["friends_count"] == 0
    assert ids(a.client, f"/v1/users/{a.id}/following") == []
    assert ids(a.client, f"/v1/users/{a.id}/followers") == [c.id]  # others are untouched
    assert ids(a.client, "/v1/friends/requests", direction="outgoing") == [c.id]

    b.client.request("DELETE", f"/v1/users/{a.id}/block")
    assert relationship(a, b) == {**FALSE_RELATIONSHIP, "muting": True}
    assert relationship(b, a) == FALSE_RELATIONSHIP
    assert ids(b.client, "/v1/blocks") == []
    assert ids(a.client, "/v1/friends") == []
    assert a.client.request("GET", f"/v1/users/{b.id}").json()["followers_count"] == 0
    # And they can start over.
    befriend(b, a)
    assert relationship(a, b)["friend"] is True


def test_pending_requests_either_way_end_with_a_block(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    make_private(b)
    a.client.request("POST", "/v1/friends/requests", json={"user_id": b.id})
    a.client.request("POST", f"/v1/users/{b.id}/follow")
    assert relationship(a, b)["follow_requested"] is True
    a.client.request("POST", f"/v1/users/{b.id}/block")
    assert ids(b.client, "/v1/friends/requests", direction="incoming") == []
    assert ids(b.client, "/v1/follow-requests") == []
    assert ids(a.client, "/v1/friends/requests", direction="outgoing") == []
    response = b.client.raw("POST", f"/v1/friends/requests/{a.id}/accept")
    assert error(response) == (404, "friend_request_not_found")
    response = b.client.raw("POST", f"/v1/follow-requests/{a.id}/approve")
    assert error(response) == (404, "follow_request_not_found")


# ---------------------------------------------------------------------- acting as oneself


def test_paths_name_only_the_other_party(register: Callable[..., Account]) -> None:
    """Mutations act as the token's user; another user's id in a path is only the target."""
    a, b, c = register(), register(), register()
    befriend(a, b)
    b.client.request("POST", "/v1/friends/requests", json={"user_id": c.id})  # b -> c pending
    a.client.request("POST", f"/v1/users/{b.id}/follow")

    # c "unfriends a" and "cancels b's request": c has no such edges, nothing else changes.
    assert c.client.request("DELETE", f"/v1/friends/{a.id}").json() == {
        **FALSE_RELATIONSHIP,
        "user_id": a.id,
    }
    rel = c.client.request("DELETE", f"/v1/friends/requests/{b.id}").json()
    assert rel["request_received"] is True  # c's view: b's request to c is still there
    # c cannot accept on a's behalf a request a never got; a's friendship with b is intact.
    response = c.client.raw("POST", f"/v1/friends/requests/{a.id}/accept")
    assert error(response) == (404, "friend_request_not_found")
    # c "unfollows b": only c's own follow could go, and there is none.
    c.client.request("DELETE", f"/v1/users/{b.id}/follow")

    assert relationship(a, b)["friend"] is True
    assert relationship(a, b)["following"] is True
    assert relationship(b, c)["request_sent"] is True
    assert relationship(c, a) == FALSE_RELATIONSHIP
    # The body names the target only: there is no field to act as someone else.
    response = c.client.raw(
        "POST", "/v1/friends/requests", json={"user_id": b.id, "from_user_id": a.id}
    )
    assert response.status_code in (400, 422)
    assert relationship(a, b)["request_sent"] is False
    # Without a token nothing is allowed.
    response = c.client.raw("POST", f"/v1/users/{a.id}/block", auth=False)
    assert response.status_code == 401
    assert relationship(a, c)["blocked_by"] is False


SELF_TARGETS = [
    ("POST", "/v1/friends/requests/{id}/accept"),
    ("POST", "/v1/friends/requests/{id}/decline"),
    ("DELETE", "/v1/friends/requests/{id}"),
    ("DELETE", "/v1/friends/{id}"),
    ("POST", "/v1/users/{id}/follow"),
    ("DELETE", "/v1/users/{id}/follow"),
    ("POST", "/v1/users/{id}/block"),
    ("DELETE", "/v1/users/{id}/block"),
    ("POST", "/v1/users/{id}/mute"),
    ("DELETE", "/v1/users/{id}/mute"),
    ("POST", "/v1/follow-requests/{id}/approve"),
    ("POST", "/v1/follow-requests/{id}/reject"),
    ("GET", "/v1/users/{id}/mutual-friends"),
]


def test_targeting_yourself_is_422(register: Callable[..., Account]) -> None:
    me = register()
    response = me.client.raw("POST", "/v1/friends/requests", json={"user_id": me.id})
    assert error(response) == (422, "cannot_target_self")
    for method, path in SELF_TARGETS:
        response = me.client.raw(method, path.format(id=me.id))
        assert error(response) == (422, "cannot_target_self"), path
    # Your own lists and relationship are fine to read.
    assert me.client.request("GET", f"/v1/users/{me.id}/friends").json()["items"] == []
    (rel,) = me.client.request("GET", "/v1/relationships", params={"ids": me.id}).json()["items"]
    assert rel == {**FALSE_RELATIONSHIP, "user_id": me.id}


# Malformed, and well-formed but nobody's (the last two).
BAD_IDS = ["abc", "-1", "0", "1.5", "12345678901234567890", "9" * 30, "١٢٣", "0x10", " 1"]
UNKNOWN_IDS = ["123456789", str(2**63 - 1)]


def test_malformed_and_unknown_ids_are_404(register: Callable[..., Account]) -> None:
    me = register()
    paths = [
        ("GET", "/v1/users/{id}"),
        ("GET", "/v1/users/{id}/friends"),
        ("GET", "/v1/users/{id}/followers"),
        ("GET", "/v1/users/{id}/following"),
        *SELF_TARGETS,
    ]
    for target in BAD_IDS + UNKNOWN_IDS:
        for method, path in paths:
            response = me.client.raw(method, path.format(id=target))
            assert response.status_code == 404, (method, path, target, response.text)
            assert response.json()["error"]["code"] in {
                "user_not_found",
                "friend_request_not_found",
                "follow_request_not_found",
            }
        response = me.client.raw("POST", "/v1/friends/requests", json={"user_id": target})
        if len(target) <= 20:
            assert error(response) == (404, "user_not_found"), target
        else:  # longer than any id: refused as bad input
            assert response.status_code == 422, target


def test_relationships_takes_at_most_100_ids(register: Callable[..., Account]) -> None:
    me, other = register(), register()
    fake = [str(10**17 + i) for i in range(99)]
    items = me.client.request(
        "GET", "/v1/relationships", params={"ids": ",".join([other.id, *fake])}
    ).json()["items"]
    assert len(items) == 100
    assert all(item == {**FALSE_RELATIONSHIP, "user_id": item["user_id"]} for item in items)
    response = me.client.raw(
        "GET", "/v1/relationships", params={"ids": ",".join([other.id, *fake, str(10**18)])}
    )
    assert error(response) == (422, "too_many_ids")
    response = me.client.raw("GET", "/v1/relationships", params={"ids": f"{other.id},nope"})
    assert error(response) == (422, "invalid_id")


# ---------------------------------------------------------------------- suggestions


def test_suggestions_exclude_and_rank_by_mutual_friends(register: Callable[..., Account]) -> None:
    me = register()
    f1, f2, f3 = register(), register(), register()
    three, one = register(), register()  # candidates: 3 mutual friends, 1 mutual friend
    asked, asker, blocked, blocker = (register() for _ in range(4))
    for f in (f1, f2, f3):
        befriend(me, f)
        befriend(f, three)
    befriend(f1, f2)  # a friend of a friend who is my friend too
    befriend(f1, one)
    for u in (asked, asker, blocked, blocker):
        befriend(f1, u)
    me.client.request("POST", "/v1/friends/requests", json={"user_id": asked.id})
    asker.client.request("POST", "/v1/friends/requests", json={"user_id": me.id})
    me.client.request("POST", f"/v1/users/{blocked.id}/block")
    blocker.client.request("POST", f"/v1/users/{me.id}/block")

    items = me.client.request("GET", "/v1/friends/suggestions").json()["items"]
    assert [(s["user"]["id"], s["mutual_count"]) for s in items] == [(three.id, 3), (one.id, 1)]
    assert items[0]["score"] > items[1]["score"] > 0

    # Once I ask "three", it is pending and no longer suggested; "one" stays.
    me.client.request("POST", "/v1/friends/requests", json={"user_id": three.id})
    items = me.client.request("GET", "/v1/friends/suggestions").json()["items"]
    assert [s["user"]["id"] for s in items] == [one.id]
    # The other side sees my request as pending too, so I am not suggested to them.
    suggested = {
        s["user"]["id"]
        for s in three.client.request("GET", "/v1/friends/suggestions").json()["items"]
    }
    assert me.id not in suggested
    assert three.id not in suggested


def test_suggestions_weigh_mutual_friends_by_adamic_adar(
    register: Callable[..., Account],
) -> None:
    """One mutual friend with few friends counts more than one with many."""
    me, quiet, busy, via_quiet, via_busy = (register() for _ in range(5))
    befriend(me, quiet)
    befriend(me, busy)
    befriend(busy, via_busy)  # asked first: without the weighting it would not lose
    befriend(quiet, via_quiet)
    crowd = [register() for _ in range(3)]
    for u in crowd:
        befriend(busy, u)
    # quiet has 2 friends, busy has 5; each candidate has one mutual friend.
    items = me.client.request("GET", "/v1/friends/suggestions").json()["items"]
    by_id = {s["user"]["id"]: s for s in items}
    assert set(by_id) == {via_quiet.id, via_busy.id, *(u.id for u in crowd)}
    assert items[0]["user"]["id"] == via_quiet.id
    assert by_id[via_quiet.id]["mutual_count"] == by_id[via_busy.id]["mutual_count"] == 1
    assert by_id[via_quiet.id]["score"] == pytest.approx(1 / math.log(2), abs=1e-5)
    assert by_id[via_busy.id]["score"] == pytest.approx(1 / math.log(5), abs=1e-5)


def test_suggestions_read_only_the_newest_friends_of_each_friend(
    app: Any, http: Any, register: Callable[..., Account]
) -> None:
    """Fan-out is bounded: a friend with more than FANOUT friends lends only the newest."""
    me, hub = register(), register()
    befriend(me, hub)
    graph, admin = app.wiring.container.graph, app.wiring.container.admin
    cli = Actor.command_line()

    async def befriend_many() -> list[str]:
        made = []
        for i in range(FANOUT + 5):
            user = await admin.create_user(cli, f"hubf_{i}_{me.id[-6:]}", PASSWORD)
            await graph.send_friend_request(int(hub.id), user.id)
            await graph.accept_friend_request(user.id, int(hub.id))
            made.append(str(user.id))
        return made

    oldest_first = http.blocking_portal.call(befriend_many)
    items = me.client.request("GET", "/v1/friends/suggestions", params={"limit": 100}).json()
    suggested = {s["user"]["id"]: s["mutual_count"] for s in items["items"]}
    # hub's newest FANOUT friends; I am the oldest of them, and never suggested to myself
    assert set(suggested) == set(oldest_first[-FANOUT:])
    assert set(suggested.values()) == {1}


def test_mutual_friends_are_exactly_the_shared_ones(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    shared = [register() for _ in range(3)]
    only_a, only_b = register(), register()
    for u in shared:
        befriend(a, u)
        befriend(b, u)
    befriend(a, only_a)
    befriend(b, only_b)
    b.client.request("POST", f"/v1/users/{shared[0].id}/follow")  # follows are not friends
    got = ids(a.client, f"/v1/users/{b.id}/mutual-friends")
    assert got == [u.id for u in reversed(shared)]  # newest first, by a's friendships
    assert set(ids(b.client, f"/v1/users/{a.id}/mutual-friends")) == {u.id for u in shared}
    # Paged, still each exactly once.
    page1 = a.client.request("GET", f"/v1/users/{b.id}/mutual-friends", params={"limit": 2})
    body = page1.json()
    page2 = a.client.request(
        "GET",
        f"/v1/users/{b.id}/mutual-friends",
        params={"limit": 2, "cursor": body["next_cursor"]},
    ).json()
    assert [u["id"] for u in body["items"] + page2["items"]] == got
    assert page2["next_cursor"] is None
    # Unfriending one side removes it from the mutual list.
    b.client.request("DELETE", f"/v1/friends/{shared[1].id}")
    assert ids(a.client, f"/v1/users/{b.id}/mutual-friends") == [shared[2].id, shared[0].id]


# ---------------------------------------------------------------------- paging


def pages(client: Client, path: str, limit: int, cursor: str | None = None) -> list[list[str]]:
    out = []
    while True:
        body = client.request("GET", path, params={"limit": limit, "cursor": cursor}).json()
        out.append([u["id"] for u in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return out
        assert body["items"], "a cursor after an empty page"


def test_paging_over_120_friends_and_a_cursor_survives_inserts(
    register: Callable[..., Account],
) -> None:
    me = register()
    friends = [register() for _ in range(120)]
    for f in friends:
        f.client.request("POST", "/v1/friends/requests", json={"user_id": me.id})
        me.client.request("POST", f"/v1/friends/requests/{f.id}/accept")
    newest_first = [f.id for f in reversed(friends)]

    for limit in (50, 7, 100):
        got = pages(me.client, "/v1/friends", limit)
        assert [len(p) for p in got[:-1]] == [limit] * (len(got) - 1)
        flat = [u for p in got for u in p]
        assert flat == newest_first, limit
    assert me.client.request("GET", f"/v1/users/{me.id}").json()["friends_count"] == 120
    # Someone else reads the same list the same way.
    assert [u for p in pages(friends[0].client, f"/v1/users/{me.id}/friends", 33) for u in p] == (
        newest_first
    )

    # Page 1, then new friends arrive, then the rest from page 1's cursor.
    first = me.client.request("GET", "/v1/friends", params={"limit": 50}).json()
    newcomers = [register() for _ in range(3)]
    for n in newcomers:
        me.client.request("POST", "/v1/friends/requests", json={"user_id": n.id})
        n.client.request("POST", f"/v1/friends/requests/{me.id}/accept")
    rest = pages(me.client, "/v1/friends", 50, cursor=first["next_cursor"])
    seen = [u["id"] for u in first["items"]] + [u for p in rest for u in p]
    assert seen == newest_first  # no duplicates, no gaps
    fresh = ids(me.client, "/v1/friends", limit=4)
    assert fresh == [n.id for n in reversed(newcomers)] + [newest_first[0]]


def test_bad_cursors_and_limits_are_rejected(register: Callable[..., Account]) -> None:
    me = register()
    for params in ({"cursor": "not-a-cursor!"}, {"cursor": "e30"}, {"cursor": "eyJwIjoieCJ9"}):
        response = me.client.raw("GET", "/v1/friends", params=params)
        assert response.status_code in (400, 422), params
    for limit in (0, 101, -1):
        response = me.client.raw("GET", "/v1/friends", params={"limit": limit})
        assert response.status_code in (400, 422), limit
    with pytest.raises(ApiError):
        me.client.request("GET", "/v1/friends/requests", params={"direction": "sideways"})


def test_paging_past_the_cached_head_of_a_list(
    app: Any, http: Any, register: Callable[..., Account]
) -> None:
    """A list longer than the cached head (201 rows) pages on from the database."""
    me = register()
    owner = int(me.id)
    container = app.wiring.container

    async def make_followers() -> list[str]:
        made = []
        for i in range(HEAD_SIZE + 9):
            user = await container.admin.create_user(
                Actor.command_line(), f"fan_{i}_{me.id[-6:]}", PASSWORD
            )
            await container.graph.follow(user.id, owner)
            made.append(str(user.id))
        return made

    followers = http.blocking_portal.call(make_followers)
    newest_first = list(reversed(followers))
    path = f"/v1/users/{me.id}/followers"
    for limit in (100, 30):
        got = [u for p in pages(me.client, path, limit) for u in p]
        assert got == newest_first, limit
    profile = me.client.request("GET", f"/v1/users/{me.id}").json()
    assert profile["followers_count"] == len(followers)
    # One more at the front: the head is refreshed, the tail still pages from the database.
    late = register()
    late.client.request("POST", f"/v1/users/{me.id}/follow")
    got = [u for p in pages(me.client, path, 100) for u in p]
    assert got == [late.id, *newest_first]
