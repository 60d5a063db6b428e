"""The social graph as a hypothesis state machine, driven through the HTTP API.

Four users do random graph actions (friend requests and answers, unfriend, follow and
follow requests, block, mute, going private). A small model, written from the rules in
docs/api.md and independent of ``socius.domain.graph``, says what every action must answer
and what the graph must then be. After every step, for every user:

- the relationship object towards each other user (``GET /v1/relationships``),
- every list of theirs (friends, followers, following, incoming and outgoing friend
  requests, blocks, follow requests), in order, newest first,
- the counts on their profile, equal to the lengths of those lists.

Other rules look at the graph from another user's side: profiles and lists across
blocks and private accounts, mutual friends, suggestions.

One app per run, on a fresh SQLite file with the in-process cache; the second test runs
the same machine on a PostgreSQL database of its own with Redis under a fresh prefix.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import redis
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from litestar.testing import TestClient

from conftest import FAST_HASHING, POSTGRES_URL, REDIS_URL, _execute, make_app, require_service
from socius.client import Client
from socius.settings import Settings, load_settings
from socius.storage.migrate import upgrade
from socius.storage.tables import metadata

N = 4
PASSWORD = "correct horse battery staple"
RELATIONSHIP_FIELDS = (
    "friend",
    "request_sent",
    "request_received",
    "following",
    "followed_by",
    "follow_requested",
    "blocking",
    "blocked_by",
    "muting",
)
LISTS = {
    "friends": "/v1/friends",
    "incoming": "/v1/friends/requests?direction=incoming",
    "outgoing": "/v1/friends/requests?direction=outgoing",
    "blocks": "/v1/blocks",
    "follow_requests": "/v1/follow-requests",
    "followers": "/v1/users/{me}/followers",
    "following": "/v1/users/{me}/following",
}
Outcome = tuple[int, str | None]  # expected status, and error code when it fails
OK: Outcome = (200, None)
USER_NOT_FOUND: Outcome = (404, "user_not_found")
BLOCKED: Outcome = (403, "blocked")


@dataclass
class GraphModel:
    """The graph by its meaning. Each edge remembers the step that made it (for order)."""

    friends: dict[frozenset[int], int] = field(default_factory=dict)
    requests: dict[tuple[int, int], int] = field(default_factory=dict)  # (from, to)
    follows: dict[tuple[int, int], int] = field(default_factory=dict)  # (follower, followee)
    follow_requests: dict[tuple[int, int], int] = field(default_factory=dict)  # (from, to)
    blocks: dict[tuple[int, int], int] = field(default_factory=dict)  # (blocker, blocked)
    mutes: dict[tuple[int, int], int] = field(default_factory=dict)
    private: list[bool] = field(default_factory=lambda: [False] * N)
    clock: int = 0

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def are_friends(self, a: int, b: int) -> bool:
        return frozenset((a, b)) in self.friends

    def blocked_either_way(self, a: int, b: int) -> bool:
        return (a, b) in self.blocks or (b, a) in self.blocks

    def reach(self, a: int, b: int) -> Outcome | None:
        """Whether ``a`` may reach ``b``: the blocked side is told ``b`` does not exist."""
        if (b, a) in self.blocks:
            return USER_NOT_FOUND
        if (a, b) in self.blocks:
            return BLOCKED
        return None

    def relationship(self, a: int, b: int) -> dict[str, bool]:
        return {
            "friend": self.are_friends(a, b),
            "request_sent": (a, b) in self.requests,
            "request_received": (b, a) in self.requests,
            "following": (a, b) in self.follows,
            "followed_by": (b, a) in self.follows,
            "follow_requested": (a, b) in self.follow_requests,
            "blocking": (a, b) in self.blocks,
            "blocked_by": (b, a) in self.blocks,
            "muting": (a, b) in self.mutes,
        }

    def lists(self, u: int) -> dict[str, list[int]]:
        """Each of ``u``'s lists, newest first."""

        def newest(found: dict[int, int]) -> list[int]:
            return sorted(found, key=lambda o: -found[o])

        others = [o for o in range(N) if o != u]
        return {
            "friends": newest(
                {o: self.friends[frozenset((u, o))] for o in others if self.are_friends(u, o)}
            ),
            "incoming": newest({o: s for (o, t), s in self.requests.items() if t == u}),
            "outgoing": newest({t: s for (o, t), s in self.requests.items() if o == u}),
            "blocks": newest({t: s for (o, t), s in self.blocks.items() if o == u}),
            "follow_requests": newest(
                {o: s for (o, t), s in self.follow_requests.items() if t == u}
            ),
            "followers": newest({o: s for (o, t), s in self.follows.items() if t == u}),
            "following": newest({t: s for (o, t), s in self.follows.items() if o == u}),
        }

    def moves(self, action: str) -> list[tuple[int, int]]:
        """The (actor, other) pairs for which ``action`` changes something now."""
        m = self
        effective: dict[str, Callable[[int, int], bool]] = {
            "friend_request": lambda a, b: (
                not m.blocked_either_way(a, b)
                and not m.are_friends(a, b)
                and (a, b) not in m.requests
            ),
            "accept": lambda a, b: (b, a) in m.requests,
            "decline": lambda a, b: (b, a) in m.requests,
            "cancel": lambda a, b: (a, b) in m.requests,
            "unfriend": lambda a, b: m.are_friends(a, b),
            "follow": lambda a, b: (
                not m.blocked_either_way(a, b)
                and (a, b) not in m.follows
                and (a, b) not in m.follow_requests
            ),
            "unfollow": lambda a, b: (a, b) in m.follows or (a, b) in m.follow_requests,
            "approve": lambda a, b: (b, a) in m.follow_requests,
            "reject": lambda a, b: (b, a) in m.follow_requests,
            "block": lambda a, b: (a, b) not in m.blocks,
            "unblock": lambda a, b: (a, b) in m.blocks,
            "mute": lambda a, b: (a, b) not in m.mutes,
            "unmute": lambda a, b: (a, b) in m.mutes,
        }
        test = effective[action]
        return [(a, b) for a in range(N) for b in range(N) if a != b and test(a, b)]

    # actions: each returns what the API must answer, and changes the model if it succeeds

    def friend_request(self, a: int, b: int) -> Outcome:
        if (refused := self.reach(a, b)) is not None:
            return refused
        if self.are_friends(a, b) or (a, b) in self.requests:
            return OK
        if (b, a) in self.requests:
            del self.requests[b, a]
            self.friends[frozenset((a, b))] = self.tick()
        else:
            self.requests[a, b] = self.tick()
        return OK

    def accept(self, a: int, b: int) -> Outcome:
        if self.are_friends(a, b):
            return OK
        if (b, a) not in self.requests:
            return (404, "friend_request_not_found")
        del self.requests[b, a]
        self.friends[frozenset((a, b))] = self.tick()
        return OK

    def decline(self, a: int, b: int) -> Outcome:
        self.requests.pop((b, a), None)
        return OK

    def cancel(self, a: int, b: int) -> Outcome:
        self.requests.pop((a, b), None)
        return OK

    def unfriend(self, a: int, b: int) -> Outcome:
        self.friends.pop(frozenset((a, b)), None)
        return OK

    def follow(self, a: int, b: int) -> Outcome:
        if (refused := self.reach(a, b)) is not None:
            return refused
        if (a, b) in self.follows or (a, b) in self.follow_requests:
            return OK
        if self.private[b]:
            self.follow_requests[a, b] = self.tick()
        else:
            self.follows[a, b] = self.tick()
        return OK

    def unfollow(self, a: int, b: int) -> Outcome:
        self.follows.pop((a, b), None)
        self.follow_requests.pop((a, b), None)
        return OK

    def approve(self, a: int, b: int) -> Outcome:
        if (b, a) in self.follows:
            return OK
        if (b, a) not in self.follow_requests:
            return (404, "follow_request_not_found")
        del self.follow_requests[b, a]
        self.follows[b, a] = self.tick()
        return OK

    def reject(self, a: int, b: int) -> Outcome:
        self.follow_requests.pop((b, a), None)
        return OK

    def block(self, a: int, b: int) -> Outcome:
        self.friends.pop(frozenset((a, b)), None)
        for pairs in (self.requests, self.follows, self.follow_requests):
            pairs.pop((a, b), None)
            pairs.pop((b, a), None)
        if (a, b) not in self.blocks:
            self.blocks[a, b] = self.tick()
        return OK

    def unblock(self, a: int, b: int) -> Outcome:
        self.blocks.pop((a, b), None)
        return OK

    def mute(self, a: int, b: int) -> Outcome:
        self.mutes.setdefault((a, b), self.tick())
        return OK

    def unmute(self, a: int, b: int) -> Outcome:
        self.mutes.pop((a, b), None)
        return OK


ACTIONS: dict[str, tuple[str, str]] = {
    # name: (method, path); "{id}" is the other user
    "friend_request": ("POST", "/v1/friends/requests"),
    "accept": ("POST", "/v1/friends/requests/{id}/accept"),
    "decline": ("POST", "/v1/friends/requests/{id}/decline"),
    "cancel": ("DELETE", "/v1/friends/requests/{id}"),
    "unfriend": ("DELETE", "/v1/friends/{id}"),
    "follow": ("POST", "/v1/users/{id}/follow"),
    "unfollow": ("DELETE", "/v1/users/{id}/follow"),
    "approve": ("POST", "/v1/follow-requests/{id}/approve"),
    "reject": ("POST", "/v1/follow-requests/{id}/reject"),
    "block": ("POST", "/v1/users/{id}/block"),
    "unblock": ("DELETE", "/v1/users/{id}/block"),
    "mute": ("POST", "/v1/users/{id}/mute"),
    "unmute": ("DELETE", "/v1/users/{id}/mute"),
}
# Left to pick actions and users at random, most steps would be no-ops or errors (accept
# with no request, approve with no follow request...). So a step mostly picks an action
# that can change something now and a pair it changes (every action equally likely);
# otherwise a random action between random users (idempotent no-ops and refusals), an
# action on oneself, going private or public, or a look from another user's side.
MODES = ["effective"] * 6 + ["random", "self", "set_private", "look"]
LOOKS = ["view_profile", "suggestions", *["friends", "followers", "following", "mutual-friends"]]


class GraphMachine(RuleBasedStateMachine):
    make_settings: Callable[[], Settings]
    cleanup: Callable[[], None] = staticmethod(lambda: None)

    def __init__(self) -> None:
        super().__init__()
        self.http: TestClient[Any] = TestClient(make_app(self.make_settings()).asgi)  # type: ignore[arg-type]
        self.http.__enter__()
        self.model = GraphModel()
        self.clients: list[Client] = []
        self.ids: list[str] = []
        for i in range(N):
            client = Client(http=self.http)
            auth = client.register(f"u{i}_{secrets.token_hex(4)}", PASSWORD)
            self.clients.append(client)
            self.ids.append(auth.user.id)
        self.index = {uid: i for i, uid in enumerate(self.ids)}
        self.dirty = set(range(N))  # users whose lists the last step may have changed
        self.steps = 0

    def teardown(self) -> None:
        try:
            self.http.__exit__(None, None, None)
        finally:
            self.cleanup()

    # helpers

    def send(self, actor: int, method: str, path: str, **kwargs: Any) -> Any:
        response = self.clients[actor].raw(method, path, **kwargs)
        assert response.status_code < 500, (method, path, response.status_code, response.text)
        return response

    def expect(self, response: Any, outcome: Outcome) -> None:
        status, code = outcome
        assert response.status_code == status, (response.request.url, response.text)
        if code is not None:
            assert response.json()["error"]["code"] == code, response.text

    def names(self, items: list[dict[str, Any]]) -> list[int]:
        return [self.index[item["id"]] for item in items]

    @initialize(private=st.lists(st.booleans(), min_size=N, max_size=N))
    def start_private(self, private: list[bool]) -> None:
        """Some users start private, so that follow requests come up early."""
        for u, flag in enumerate(private):
            if flag:
                self.set_private(u, True)

    # the one rule

    @rule(
        mode=st.sampled_from(MODES),
        actor=st.integers(0, N - 1),
        offset=st.integers(1, N - 1),
        which=st.integers(0, 999),
        flag=st.booleans(),
    )
    def step(self, mode: str, actor: int, offset: int, which: int, flag: bool) -> None:
        other = (actor + offset) % N
        names = sorted(ACTIONS)
        self.steps += 1
        if mode == "effective":
            # (+ steps: hypothesis draws small numbers most; this spreads the choices.)
            open_actions = [a for a in names if self.model.moves(a)]  # block is always open
            action = open_actions[(which + self.steps) % len(open_actions)]
            moves = self.model.moves(action)
            actor, other = moves[(which + actor + offset) % len(moves)]
            self.act(actor, other, action)
        elif mode == "random":
            self.act(actor, other, names[which % len(names)])
        elif mode == "self":
            self.act_on_self(actor, names[which % len(names)])
        elif mode == "set_private":
            self.set_private(actor, flag)
        else:
            look = LOOKS[which % len(LOOKS)]
            if look == "view_profile":
                self.view_profile(actor, other)
            elif look == "suggestions":
                self.suggestions(actor)
            else:
                self.view_list(actor, other, look)

    def act(self, actor: int, other: int, action: str) -> None:
        self.dirty |= {actor, other}
        method, path = ACTIONS[action]
        before = self.model.relationship(actor, other)
        expected = getattr(self.model, action)(actor, other)
        if action == "friend_request":
            response = self.send(actor, method, path, json={"user_id": self.ids[other]})
        else:
            response = self.send(actor, method, path.format(id=self.ids[other]))
        self.expect(response, expected)
        changed = before != self.model.relationship(actor, other)
        event(f"{action}: {response.status_code}{'' if changed else ' (no change)'}")
        if response.status_code == 200:
            body = response.json()
            assert body["user_id"] == self.ids[other]
            assert {f: body[f] for f in RELATIONSHIP_FIELDS} == self.model.relationship(
                actor, other
            ), (action, before)

    def act_on_self(self, actor: int, action: str) -> None:
        method, path = ACTIONS[action]
        me = self.ids[actor]
        if action == "friend_request":
            response = self.send(actor, method, path, json={"user_id": me})
        else:
            response = self.send(actor, method, path.format(id=me))
        self.expect(response, (422, "cannot_target_self"))

    def set_private(self, actor: int, private: bool) -> None:
        self.dirty.add(actor)
        response = self.send(actor, "PATCH", "/v1/me", json={"is_private": private})
        self.expect(response, OK)
        assert response.json()["is_private"] is private
        self.model.private[actor] = private

    def view_profile(self, viewer: int, owner: int) -> None:
        response = self.send(viewer, "GET", f"/v1/users/{self.ids[owner]}")
        if self.model.blocked_either_way(viewer, owner):
            self.expect(response, USER_NOT_FOUND)
            return
        self.expect(response, OK)
        self.check_profile(response.json(), owner)

    def view_list(self, viewer: int, owner: int, kind: str) -> None:
        response = self.send(viewer, "GET", f"/v1/users/{self.ids[owner]}/{kind}")
        if self.model.blocked_either_way(viewer, owner):
            self.expect(response, USER_NOT_FOUND)
            return
        if self.model.private[owner] and not self.model.are_friends(viewer, owner):
            self.expect(response, (403, "private_account"))
            return
        self.expect(response, OK)
        items = response.json()["items"]
        shown = self.names(items)
        if kind == "mutual-friends":
            mine = self.model.lists(viewer)["friends"]
            theirs = set(self.model.lists(owner)["friends"])
            assert shown == [f for f in mine if f in theirs]  # in the viewer's order
        else:
            assert shown == self.model.lists(owner)[kind]
        for item in items:
            self.check_profile(item, self.index[item["id"]])

    def suggestions(self, viewer: int) -> None:
        response = self.send(viewer, "GET", "/v1/friends/suggestions")
        self.expect(response, OK)
        m = self.model
        for item in response.json()["items"]:
            s = self.index[item["user"]["id"]]
            assert s != viewer
            assert not m.are_friends(viewer, s)
            assert (viewer, s) not in m.requests
            assert (s, viewer) not in m.requests
            assert not m.blocked_either_way(viewer, s)
            assert item["mutual_count"] >= 1
            assert item["score"] > 0

    # what must hold after every step

    def check_profile(self, profile: dict[str, Any], u: int) -> None:
        lists = self.model.lists(u)
        assert profile["id"] == self.ids[u]
        assert profile["is_private"] is self.model.private[u]
        counts = (profile["friends_count"], profile["followers_count"], profile["following_count"])
        assert counts == (len(lists["friends"]), len(lists["followers"]), len(lists["following"]))

    @invariant()
    def relationships_match(self) -> None:
        for u in range(N):
            others = [o for o in range(N) if o != u]
            response = self.send(
                u, "GET", "/v1/relationships", params={"ids": ",".join(self.ids[o] for o in others)}
            )
            self.expect(response, OK)
            items = response.json()["items"]
            assert [self.index[r["user_id"]] for r in items] == others
            for o, item in zip(others, items, strict=True):
                assert {f: item[f] for f in RELATIONSHIP_FIELDS} == self.model.relationship(u, o), (
                    u,
                    o,
                )

    @invariant()
    def lists_and_counts_match(self) -> None:
        # A step changes the lists and counts of the pair it acts on only: check every list
        # of those users (and the profiles listed in them); view_list reads the others'.
        for u in sorted(self.dirty):
            expected = self.model.lists(u)
            for name, path in LISTS.items():
                response = self.send(u, "GET", path.format(me=self.ids[u]))
                self.expect(response, OK)
                body = response.json()
                assert body["next_cursor"] is None
                assert self.names(body["items"]) == expected[name], (u, name)
                for item in body["items"]:
                    self.check_profile(item, self.index[item["id"]])
            response = self.send(u, "GET", f"/v1/users/{self.ids[u]}")
            self.expect(response, OK)
            self.check_profile(response.json(), u)
        self.dirty.clear()


RUN: dict[str, Any] = {
    "stateful_step_count": 20,
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow],
}
NO_THROTTLES = {"register_max_per_ip_per_hour": 1_000_000}


def test_graph_model_sqlite(sqlite_template: Path) -> None:
    made: list[Path] = []

    def fresh_sqlite() -> Settings:
        folder = Path(tempfile.mkdtemp(prefix="socius-graph-"))
        shutil.copy(sqlite_template, folder / "socius.db")
        made.append(folder)
        return load_settings(
            {},
            data_dir=str(folder),
            log_json=False,
            log_level="warning",
            database_pool_size=2,
            **FAST_HASHING,
            **NO_THROTTLES,
        )

    def cleanup() -> None:
        while made:
            shutil.rmtree(made.pop(), ignore_errors=True)

    machine = type(
        "SqliteGraphMachine",
        (GraphMachine,),
        {"make_settings": staticmethod(fresh_sqlite), "cleanup": staticmethod(cleanup)},
    )
    run_state_machine_as_test(machine, settings=settings(max_examples=20, **RUN))


@pytest.fixture
def own_postgres_database() -> Any:
    """A PostgreSQL database of this test's own, created, migrated and dropped here."""
    require_service(POSTGRES_URL, "postgres")
    require_service(REDIS_URL, "redis")
    name = f"socius_graph_model_{secrets.token_hex(4)}"
    base, _, _ = POSTGRES_URL.rpartition("/")
    url = f"{base}/{name}"
    asyncio.run(_execute(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(upgrade(url))
        yield url
    finally:
        asyncio.run(_execute(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_graph_model_postgres_redis(own_postgres_database: str) -> None:
    url = own_postgres_database
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    prefixes: list[str] = []

    def fresh_postgres() -> Settings:
        asyncio.run(_execute(url, f"TRUNCATE {tables}"))
        prefix = f"socius-test:graph-model:{secrets.token_hex(6)}:"
        prefixes.append(prefix)
        return load_settings(
            {},
            database_url=url,
            redis_url=REDIS_URL,
            redis_prefix=prefix,
            log_json=False,
            log_level="warning",
            database_pool_size=2,
            **FAST_HASHING,
            **NO_THROTTLES,
        )

    def cleanup() -> None:
        r = redis.Redis.from_url(REDIS_URL)
        try:
            while prefixes:
                keys = list(r.scan_iter(match=prefixes.pop() + "*", count=1000))
                if keys:
                    r.delete(*keys)
        finally:
            r.close()

    machine = type(
        "PostgresGraphMachine",
        (GraphMachine,),
        {"make_settings": staticmethod(fresh_postgres), "cleanup": staticmethod(cleanup)},
    )
    run_state_machine_as_test(machine, settings=settings(max_examples=8, **RUN))
